//! Linux's memory accounting for AF_UNIX sends, so that the simulator's writes turn short and
//! fail with EAGAIN at the same write as Linux's do, for any write size.
//!
//! A send cuts its bytes into skbs; each skb's `truesize` (its head's kmalloc object plus
//! `struct sk_buff`, plus whole pages for its fragments) is charged to the *sender's*
//! `sk_wmem_alloc` until the reader consumes it. `sock_alloc_send_pskb` allocates one more skb
//! while the charge is below `sk_sndbuf` (so the last one may overshoot), else EAGAIN; a
//! stream write that stopped part-way returns what it sent. Followed here, from Linux 6.x:
//!
//! - `unix_stream_sendmsg` (net/unix/af_unix.c): skbs of at most `(sk_sndbuf >> 1) - 64` and
//!   `SKB_MAX_HEAD(0) + UNIX_SKB_FRAGS_SZ` bytes; the part past `SKB_MAX_HEAD(0)`, page
//!   aligned, goes to fragments of order up to `get_order(UNIX_SKB_FRAGS_SZ)`.
//! - `unix_dgram_sendmsg` (datagram and seqpacket): one skb per message; past
//!   `SKB_MAX_ALLOC`, up to `MAX_SKB_FRAGS` pages go to fragments (order up to
//!   `PAGE_ALLOC_COSTLY_ORDER`); EMSGSIZE past `sk_sndbuf - 32`.
//! - `alloc_skb_with_frags` (net/core/skbuff.c): each fragment chunk is the largest page order
//!   not above what is left; `truesize` grows by the whole chunk.
//! - `__alloc_skb` / `__build_skb_around`: the head is a kmalloc object of
//!   `SKB_HEAD_ALIGN(header)` rounded up to its slab class (or to whole pages past 8 KiB);
//!   `truesize = SKB_TRUESIZE(object − shared info)`.
//! - `sock_alloc_send_pskb` (net/core/sock.c): `sk_wmem_alloc_get(sk) < sk_sndbuf` to go on.
//! - `unix_writable`: POLLOUT while `sk_wmem_alloc` (its refcount, one more than the charge)
//!   times four is at most `sk_sndbuf`.
//!
//! The struct sizes are x86_64's. Checked against Linux 6.18 by `tests/it/unix_accounting.rs`.

/// The page size.
pub const PAGE_BYTES: usize = 4096;
/// `SMP_CACHE_BYTES`: SKB_DATA_ALIGN's unit.
const CACHE_LINE_BYTES: usize = 64;
/// `SKB_DATA_ALIGN(sizeof(struct skb_shared_info))` on x86_64.
const SHINFO_BYTES: usize = 320;
/// `SKB_DATA_ALIGN(sizeof(struct sk_buff))` on x86_64.
const SKB_STRUCT_BYTES: usize = 256;
/// `SKB_MAX_HEAD(0)`: the head bytes that fit one page with the shared info.
const SKB_MAX_HEAD0_BYTES: usize = PAGE_BYTES - SHINFO_BYTES;
/// `UNIX_SKB_FRAGS_SZ`: `PAGE_SIZE << get_order(32768)`.
const UNIX_SKB_FRAGS_BYTES: usize = 32_768;
/// `get_order(UNIX_SKB_FRAGS_SZ)`.
const UNIX_FRAGS_ORDER: u32 = 3;
/// `SKB_MAX_ALLOC`: `SKB_WITH_OVERHEAD(PAGE_SIZE << 2)`.
const SKB_MAX_ALLOC_BYTES: usize = (PAGE_BYTES << 2) - SHINFO_BYTES;
/// `MAX_SKB_FRAGS`.
const MAX_SKB_FRAGS: usize = 17;
/// `PAGE_ALLOC_COSTLY_ORDER`.
const COSTLY_ORDER: u32 = 3;
/// The kmalloc slab classes (SLUB); larger objects come whole pages at a time.
const KMALLOC_CLASSES: [usize; 13] = [
    8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192,
];
/// `unix_dgram_sendmsg` refuses a message longer than `sk_sndbuf` minus this.
pub const DGRAM_SNDBUF_SLACK_BYTES: usize = 32;

fn align_up(n: usize, unit: usize) -> usize {
    n.div_ceil(unit) * unit
}

/// `kmalloc_size_roundup`.
fn kmalloc_object(bytes: usize) -> usize {
    match KMALLOC_CLASSES.iter().find(|&&c| c >= bytes) {
        Some(&class) => class,
        None => bytes.next_power_of_two().max(PAGE_BYTES),
    }
}

/// The truesize of an skb head holding `header` bytes.
fn head_truesize(header: usize) -> usize {
    kmalloc_object(align_up(header, CACHE_LINE_BYTES) + SHINFO_BYTES) + SKB_STRUCT_BYTES
}

/// The truesize `alloc_skb_with_frags` adds for `data` fragment bytes, pages of order up to
/// `order`.
fn frags_truesize(mut data: usize, mut order: u32) -> usize {
    let mut truesize = 0;
    while data > 0 {
        while order > 0 && align_up(data, PAGE_BYTES) < PAGE_BYTES << order {
            order -= 1;
        }
        let chunk = PAGE_BYTES << order;
        truesize += chunk;
        data -= data.min(chunk);
    }
    truesize
}

/// The next skb of a stream write with `left` bytes still to send: (its bytes, its truesize).
pub fn unix_stream_skb(left: usize, sndbuf: usize) -> (usize, usize) {
    let size = left
        .min((sndbuf >> 1).saturating_sub(64).max(1))
        .min(SKB_MAX_HEAD0_BYTES + UNIX_SKB_FRAGS_BYTES);
    let data = size.saturating_sub(SKB_MAX_HEAD0_BYTES);
    let data = size.min(align_up(data, PAGE_BYTES));
    let truesize = head_truesize(size - data) + frags_truesize(data, UNIX_FRAGS_ORDER);
    (size, truesize)
}

/// How much of a `len`-byte stream write Linux takes when `wmem` is already charged:
/// (bytes taken, truesize charged for them). Zero bytes means EAGAIN.
pub fn unix_stream_take(len: usize, wmem: usize, sndbuf: usize) -> (usize, usize) {
    let (mut sent, mut charged) = (0, 0);
    while sent < len && wmem + charged < sndbuf {
        let (size, truesize) = unix_stream_skb(len - sent, sndbuf);
        sent += size;
        charged += truesize;
    }
    (sent, charged)
}

/// The truesize of one datagram or record of `len` bytes.
pub fn unix_dgram_truesize(len: usize) -> usize {
    let data = if len > SKB_MAX_ALLOC_BYTES {
        align_up(
            (len - SKB_MAX_ALLOC_BYTES).min(MAX_SKB_FRAGS * PAGE_BYTES),
            PAGE_BYTES,
        )
    } else {
        0
    };
    head_truesize(len - data.min(len)) + frags_truesize(data, COSTLY_ORDER)
}

/// `unix_writable`: POLLOUT while the charge, plus the refcount's one, is a quarter of the
/// send buffer at most.
pub fn unix_writable(wmem: usize, sndbuf: usize) -> bool {
    (wmem + 1) * 4 <= sndbuf
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNDBUF: usize = 212_992;

    /// Non-blocking sends of `size` bytes on a fresh socketpair until EAGAIN: (bytes, calls).
    fn fill(stream: bool, size: usize) -> (usize, usize) {
        let (mut wmem, mut total, mut calls) = (0, 0, 0);
        loop {
            let (taken, charged) = if stream {
                unix_stream_take(size, wmem, SNDBUF)
            } else if wmem < SNDBUF {
                (size, unix_dgram_truesize(size))
            } else {
                (0, 0)
            };
            if taken == 0 {
                return (total, calls);
            }
            wmem += charged;
            total += taken;
            calls += 1;
        }
    }

    /// Bytes and calls until EAGAIN.
    type Filled = (usize, usize);

    /// Linux 6.18 x86_64, measured with Python on a socketpair at the default SO_SNDBUF:
    /// (write size, stream bytes and calls, datagram/seqpacket bytes and calls).
    const LINUX: [(usize, Filled, Filled); 13] = [
        (1, (278, 278), (278, 278)),
        (100, (27_800, 278), (27_800, 278)),
        (1000, (93_000, 93), (93_000, 93)),
        (3776, (185_024, 49), (185_024, 49)),
        (3777, (166_188, 44), (98_202, 26)),
        (4096, (180_224, 44), (106_496, 26)),
        (8192, (196_608, 24), (106_496, 13)),
        (16_064, (208_832, 13), (208_832, 13)),
        (16_065, (208_845, 13), (176_715, 11)),
        (36_544, (219_264, 6), (219_264, 6)),
        (65_536, (233_152, 4), (262_144, 4)),
        (100_000, (236_544, 3), (300_000, 3)),
        (200_000, (236_544, 2), (400_000, 2)),
    ];

    #[test]
    fn the_model_stops_where_linux_stops() {
        for (size, stream, dgram) in LINUX {
            assert_eq!(fill(true, size), stream, "stream writes of {size}");
            assert_eq!(fill(false, size), dgram, "datagrams of {size}");
        }
    }

    #[test]
    fn writable_is_a_quarter_of_the_send_buffer() {
        assert!(unix_writable(SNDBUF / 4 - 1, SNDBUF));
        assert!(!unix_writable(SNDBUF / 4, SNDBUF));
    }
}
