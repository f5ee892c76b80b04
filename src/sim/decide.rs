//! The one decision source: every choice the simulator makes goes through [`Decider`].
//!
//! Three sources, one interface:
//! - [`Decider::faithful`]: exactly what Linux loopback does (whole writes while there is room,
//!   reads return everything queued, no EINTR, no faults).
//! - [`Decider::seeded`]: a seeded PRNG acting as a *lawful adversary* (short reads and writes,
//!   EINTR on blocking waits, resets, dropped SYNs, EMFILE on accept), each with a rate in
//!   [`Adversity`].
//! - [`Decider::bytes`]: a fuzzer's bytes, read through `arbitrary::Unstructured`; when the bytes
//!   run out every choice falls back to the faithful one. [`Decider::bytes_with`] limits the
//!   bytes to the kinds of choice an [`Adversity`] enables (a non-zero rate enables a kind).
//!
//! Every choice is lawful: it is something POSIX and Linux allow the real kernel to do.

use arbitrary::Unstructured;

/// Rates of the lawful adversary's choices, in parts per thousand of the calls where the choice
/// is possible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adversity {
    /// A send or recv moves fewer bytes than it could (any count ≥ 1).
    pub short_io_per_mille: u16,
    /// A blocking wait returns EINTR.
    pub eintr_per_mille: u16,
    /// A send or recv on an established stream finds the connection reset.
    pub reset_per_mille: u16,
    /// A connection attempt's SYN is lost (the connect retries, and may time out).
    pub syn_drop_per_mille: u16,
    /// accept fails with EMFILE (the connection stays queued).
    pub emfile_per_mille: u16,
    /// accept fails with ENFILE: the system's file table is full (the connection stays queued,
    /// as with EMFILE). Off in the presets the reference programs' transcripts were made with.
    pub enfile_per_mille: u16,
    /// A UDP sendto finds the send buffer full (EAGAIN): on a real device datagrams wait in
    /// its queue; on loopback never. Off in the presets the reference transcripts used.
    pub udp_send_full_per_mille: u16,
    /// A wait reports a descriptor ready that is not (select(2), BUGS).
    pub spurious_per_mille: u16,
    /// An epoll_wait returns only some of the ready events, as if it had returned a moment
    /// earlier; the rest stay ready and are coalesced with later changes into the next wait.
    pub defer_per_mille: u16,
    /// A runnable peer host is held back and does not make its syscall before the program's
    /// next one (as when its thread is not scheduled). Never held back, every runnable peer
    /// makes one syscall between any two of the program's: the fixed fair order.
    pub hold_back_per_mille: u16,
}

impl Adversity {
    /// No adversity at all: the seeded source then behaves like the faithful one.
    pub const NONE: Adversity = Adversity {
        short_io_per_mille: 0,
        eintr_per_mille: 0,
        reset_per_mille: 0,
        syn_drop_per_mille: 0,
        emfile_per_mille: 0,
        enfile_per_mille: 0,
        udp_send_full_per_mille: 0,
        spurious_per_mille: 0,
        defer_per_mille: 0,
        hold_back_per_mille: 0,
    };

    /// Partial I/O and interruptions, but no data-destroying faults: every byte still arrives.
    pub const PARTIAL_IO: Adversity = Adversity {
        short_io_per_mille: 500,
        eintr_per_mille: 200,
        hold_back_per_mille: 500,
        ..Adversity::NONE
    };

    /// Everything the adversary may do, at rates that still let sessions make progress.
    pub const HOSTILE: Adversity = Adversity {
        short_io_per_mille: 500,
        eintr_per_mille: 200,
        reset_per_mille: 5,
        syn_drop_per_mille: 50,
        emfile_per_mille: 50,
        enfile_per_mille: 0,
        udp_send_full_per_mille: 0,
        spurious_per_mille: 100,
        defer_per_mille: 100,
        hold_back_per_mille: 500,
    };
}

/// A choice the simulator (or `selectlab proxy`, on real traffic) made that differs from what
/// faithful Linux loopback would do; it is written into the transcript next to the call it
/// changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// A send accepted `taken` of `offered` bytes.
    ShortWrite {
        /// Bytes accepted.
        taken: u32,
        /// Bytes the faithful kernel would have accepted.
        offered: u32,
    },
    /// A recv returned `taken` of `offered` available bytes.
    ShortRead {
        /// Bytes returned.
        taken: u32,
        /// Bytes the faithful kernel would have returned.
        offered: u32,
    },
    /// A blocking wait was interrupted.
    Eintr,
    /// The connection was reset by the network.
    Reset,
    /// A SYN was lost.
    SynDrop,
    /// accept ran out of descriptors.
    Emfile,
    /// accept found the system's file table full.
    Enfile,
    /// A UDP sendto found the send buffer full.
    SendBufferFull,
    /// A wait reported readiness that was not there.
    Spurious,
    /// The proxy held a direction back this long before its next write: what arrives
    /// meanwhile goes out together.
    Pause {
        /// The pause, in milliseconds.
        millis: u32,
    },
    /// An epoll_wait returned `reported` of `ready` events (the rest come with the next wait).
    Deferred {
        /// Events returned.
        reported: u32,
        /// Events that were ready.
        ready: u32,
    },
}

/// SplitMix64: tiny, fast, and good enough to schedule an adversary or draw a harness's random
/// inputs (not for cryptography).
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `n` random bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// A value in `0..n` (n > 0), by multiply-shift (no modulo bias worth caring about here).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

#[derive(Debug, Clone)]
enum Source {
    Faithful,
    Seeded(SplitMix64, Adversity),
    Bytes(Vec<u8>, usize, Adversity),
}

/// The simulator's single source of nondeterminism.
#[derive(Debug, Clone)]
pub struct Decider {
    source: Source,
    /// The random bytes a program inside asks for (getrandom): a stream of their own, so that
    /// asking for them changes none of the adversary's choices, from the same seed.
    entropy: SplitMix64,
}

/// The entropy stream of a run with no seed of its own (faithful, or a fuzzer's bytes): the
/// same every time.
const UNSEEDED_ENTROPY: u64 = 0x5e1e_c71a_b5ee_d000;

/// Mixed into a seed for its entropy stream, so that it differs from the adversary's.
const ENTROPY_STREAM: u64 = 0x9e37_79b9_7f4a_7c15;

impl Decider {
    /// Exactly what Linux loopback does; the mode the differential tests compare against.
    pub fn faithful() -> Decider {
        Decider {
            source: Source::Faithful,
            entropy: SplitMix64(UNSEEDED_ENTROPY),
        }
    }

    /// A seeded lawful adversary.
    pub fn seeded(seed: u64, adversity: Adversity) -> Decider {
        Decider {
            source: Source::Seeded(SplitMix64(seed), adversity),
            entropy: SplitMix64(seed ^ ENTROPY_STREAM),
        }
    }

    /// A fuzzer's bytes pick every choice (faithful once they run out).
    pub fn bytes(data: &[u8]) -> Decider {
        Decider::bytes_with(data, Adversity::HOSTILE)
    }

    /// A fuzzer's bytes pick the choices of the kinds `enabled` has a non-zero rate for; the
    /// other kinds never happen.
    pub fn bytes_with(data: &[u8], enabled: Adversity) -> Decider {
        Decider {
            source: Source::Bytes(data.to_vec(), 0, enabled),
            entropy: SplitMix64(UNSEEDED_ENTROPY),
        }
    }

    /// The same decider, with the program's random bytes drawn from `seed` (a faithful run
    /// has no seed of its own, and a program's randomness is no adversary's choice).
    pub fn with_entropy_seed(self, seed: u64) -> Decider {
        Decider {
            entropy: SplitMix64(seed ^ ENTROPY_STREAM),
            ..self
        }
    }

    /// The same decider, with the program's random bytes those of a run with no seed: the same
    /// whatever the adversary's seed (a check's sessions differ in the adversary's choices
    /// alone).
    pub fn with_unseeded_entropy(self) -> Decider {
        Decider {
            entropy: SplitMix64(UNSEEDED_ENTROPY),
            ..self
        }
    }

    /// Fills `buf` with the next random bytes a program asked for (getrandom, getentropy).
    pub fn entropy(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.entropy.next().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }

    /// Whether an event with the given rate happens now. For the byte source, one byte decides.
    fn happens(&mut self, rate: impl Fn(&Adversity) -> u16) -> bool {
        match &mut self.source {
            Source::Faithful => false,
            Source::Seeded(rng, adv) => {
                let r = u64::from(rate(adv));
                r > 0 && rng.below(1000) < r
            }
            Source::Bytes(_, _, enabled) if rate(enabled) == 0 => false,
            Source::Bytes(data, pos, _) => {
                let mut u = Unstructured::new(data.get(*pos..).unwrap_or_default());
                let before = u.len();
                let yes = u.arbitrary::<bool>().unwrap_or(false);
                *pos += before - u.len();
                yes
            }
        }
    }

    /// A count in `1..=max` (max ≥ 1), used when `happens` chose a short transfer.
    fn count(&mut self, max: usize) -> usize {
        debug_assert!(max >= 1);
        match &mut self.source {
            Source::Faithful => max,
            Source::Seeded(rng, _) => 1 + rng.below(max as u64) as usize,
            Source::Bytes(data, pos, _) => {
                let mut u = Unstructured::new(data.get(*pos..).unwrap_or_default());
                let before = u.len();
                let n = u.int_in_range(1..=max).unwrap_or(max);
                *pos += before - u.len();
                n
            }
        }
    }

    /// How many of `max` bytes a send accepts (lawful: any count from 1 to `max`).
    pub fn send_len(&mut self, max: usize) -> (usize, Option<Choice>) {
        self.transfer_len(max, |taken, offered| Choice::ShortWrite { taken, offered })
    }

    /// How many of `max` available bytes a recv returns (lawful: any count from 1 to `max`).
    pub fn recv_len(&mut self, max: usize) -> (usize, Option<Choice>) {
        self.transfer_len(max, |taken, offered| Choice::ShortRead { taken, offered })
    }

    fn transfer_len(
        &mut self,
        max: usize,
        choice: impl Fn(u32, u32) -> Choice,
    ) -> (usize, Option<Choice>) {
        if max <= 1 || !self.happens(|a| a.short_io_per_mille) {
            return (max, None);
        }
        let n = self.count(max - 1);
        let clamp = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        (n, Some(choice(clamp(n), clamp(max))))
    }

    /// Whether a blocking wait is interrupted by a signal.
    pub fn eintr(&mut self) -> bool {
        self.happens(|a| a.eintr_per_mille)
    }

    /// Whether the network resets an established connection at this call.
    pub fn reset(&mut self) -> bool {
        self.happens(|a| a.reset_per_mille)
    }

    /// Whether a SYN is lost.
    pub fn syn_drop(&mut self) -> bool {
        self.happens(|a| a.syn_drop_per_mille)
    }

    /// Whether accept fails with EMFILE.
    pub fn emfile(&mut self) -> bool {
        self.happens(|a| a.emfile_per_mille)
    }

    /// Whether accept fails with ENFILE.
    pub fn enfile(&mut self) -> bool {
        self.happens(|a| a.enfile_per_mille)
    }

    /// Whether a UDP sendto finds the send buffer full.
    pub fn udp_send_full(&mut self) -> bool {
        self.happens(|a| a.udp_send_full_per_mille)
    }

    /// Whether a wait reports a spurious readiness.
    pub fn spurious(&mut self) -> bool {
        self.happens(|a| a.spurious_per_mille)
    }

    /// Whether an epoll_wait returns only some of the ready events.
    pub fn defer(&mut self) -> bool {
        self.happens(|a| a.defer_per_mille)
    }

    /// Whether a runnable peer host is held back before the program's next syscall.
    pub fn hold_back(&mut self) -> bool {
        self.happens(|a| a.hold_back_per_mille)
    }

    /// Which of `n` candidates (n ≥ 1) a choice falls on.
    pub fn pick(&mut self, n: usize) -> usize {
        self.count(n) - 1
    }

    /// Whether this source can ever deviate from faithful Linux (false only for `faithful`).
    pub fn is_faithful(&self) -> bool {
        matches!(self.source, Source::Faithful)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faithful_never_deviates() {
        let mut d = Decider::faithful();
        for max in 1..100 {
            assert_eq!(d.send_len(max), (max, None));
            assert_eq!(d.recv_len(max), (max, None));
            assert!(
                !d.eintr()
                    && !d.reset()
                    && !d.syn_drop()
                    && !d.emfile()
                    && !d.spurious()
                    && !d.defer()
                    && !d.hold_back()
            );
        }
    }

    #[test]
    fn seeded_short_io_stays_lawful_and_is_reproducible() {
        let run = |seed| {
            let mut d = Decider::seeded(seed, Adversity::PARTIAL_IO);
            (1..500).map(|max| d.send_len(max).0).collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        assert_ne!(a, run(8));
        for (i, n) in a.iter().enumerate() {
            assert!(*n >= 1 && *n <= i + 1, "send_len({}) = {n}", i + 1);
        }
        assert!(
            a.iter().enumerate().any(|(i, n)| *n < i + 1),
            "no short write at 50%"
        );
    }

    #[test]
    fn bytes_source_falls_back_to_faithful_when_exhausted() {
        let mut d = Decider::bytes(&[1, 0xff]);
        let (n, c) = d.send_len(10);
        assert!(c.is_some() && n < 10);
        for _ in 0..10 {
            assert_eq!(d.send_len(10), (10, None));
        }
    }
}
