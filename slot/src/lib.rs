//! The shared-memory channel between a guest program's shim and selectlab: two mailboxes in
//! one `memfd` that both processes map, one for the program's requests, one for selectlab's
//! replies.
//!
//! Calls strictly alternate (the program makes one, selectlab answers it), so each mailbox
//! holds at most one message, and its writer writes it only after the reader has taken the
//! last one. A message is announced by bumping the mailbox's sequence number; the reader spins
//! on that number a while ([`Mailbox::wait`]) and, if nothing comes, says it *dozes*
//! ([`Mailbox::doze`]) and sleeps elsewhere (on the SEQPACKET socket the two sides keep for
//! set-up and descriptors). A writer that finds its reader dozing rings a bell there. While
//! both sides run, a call and its reply cross with no system call at all. Each side paces its
//! waits by what its last ones found, so that on a busy machine it neither spins on a core the
//! writer needs nor yields it to a stranger.
//!
//! The mapping is shared with a program selectlab does not trust: every length read from it is
//! checked, and its bytes are copied out before they are decoded, never borrowed.
//!
//! This crate holds the `unsafe` the mapping needs; selectlab's own crate has none.

#![deny(missing_docs)]

use std::cell::Cell;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rustix::fs::{MemfdFlags, SealFlags};
use rustix::mm::{MapFlags, ProtFlags};

/// Where a mailbox's fields sit in its header; the header is one cache line, so the two
/// mailboxes' counters never share one.
const SEQ_AT: usize = 0;
const DOZING_AT: usize = 4;
const LEN_AT: usize = 8;
const HEADER_BYTES: usize = 64;

/// A yield that gives the core away for longer than this ran another task: the core is
/// shared, and spinning on it only delays the writer. (A yield on a free core returns in
/// 0.2 µs on the machine measured, and one in 10 000 takes more than 2 µs; a scheduler's time
/// slice is milliseconds.)
pub const CONTENDED_YIELD: Duration = Duration::from_micros(2);

/// A yield that gives the core away this long, after which the message has not come, ran a
/// stranger for its time slice (the writer, run in turn on this core, answers in
/// microseconds).
pub const STRANGERS_YIELD: Duration = Duration::from_micros(50);

/// How many waits after a yield that ran a stranger go straight from spinning to sleep.
pub const WAITS_WITHOUT_YIELDS: u32 = 64;

/// How a side waits (see [`Mailbox::wait`]): what its last waits found decides how the next
/// one spins and whether it yields. Kept apart from the waiting itself, so that each rule can
/// be tested without a scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pace {
    /// How many looks a wait spins before it yields.
    spins: u32,
    /// How many of the waits after this one sleep rather than yield.
    sleep_first: u32,
    /// Whether this wait sleeps rather than yields.
    sleeping: bool,
}

/// What a wait does after a yield.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Yield {
    /// Look, and yield again.
    Again,
    /// Give up yielding: sleep until the bell.
    Sleep,
}

impl Pace {
    /// A side's first wait: spin all it may, yield all it may.
    const EAGER: Pace = Pace {
        spins: u32::MAX,
        sleep_first: 0,
        sleeping: false,
    };

    /// The pace of the next wait, which may spin at most `spins` looks (at least one).
    fn begin(self, spins: u32) -> Pace {
        Pace {
            spins: self.spins.clamp(1, spins.max(1)),
            sleep_first: self.sleep_first.saturating_sub(1),
            sleeping: self.sleep_first > 0,
        }
    }

    /// The message came while the wait spun: the writer runs beside this side, so the next
    /// wait spins twice as long.
    fn spun(&mut self) {
        self.spins = self.spins.saturating_mul(2);
    }

    /// A yield (the wait's first, or a later one) gave the core away for `away`, after which
    /// the message had come (`came`) or not.
    fn yielded(&mut self, first: bool, away: Duration, came: bool) -> Yield {
        if first && away > CONTENDED_YIELD {
            self.spins /= 2;
        }
        if away > STRANGERS_YIELD && !came {
            self.sleep_first = WAITS_WITHOUT_YIELDS;
            return Yield::Sleep;
        }
        Yield::Again
    }
}

/// The monotonic clock, read by rustix (never through libc, whose clock the shim replaces).
fn monotonic() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// The writer's word on whether to ring the bell after [`Mailbox::post`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bell {
    /// The reader dozes: wake it.
    Ring,
    /// The reader is spinning (or will look before it dozes).
    Quiet,
}

/// Why a slot could not be made or mapped.
#[derive(Debug)]
pub enum SlotError {
    /// A system call failed.
    Io(&'static str, rustix::io::Errno),
    /// The descriptor's size is not one this crate made.
    Size(u64),
}

impl std::fmt::Display for SlotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SlotError::Io(what, e) => write!(f, "{what}: {e}"),
            SlotError::Size(n) => write!(f, "a slot of {n} bytes is not one selectlab made"),
        }
    }
}

impl std::error::Error for SlotError {}

/// Two mailboxes in one shared mapping: [`Slot::requests`] (the program writes, selectlab
/// reads) and [`Slot::replies`] (the other way).
pub struct Slot {
    base: NonNull<u8>,
    map_bytes: usize,
    capacity: usize,
    /// How this side's next wait goes (see [`Mailbox::wait`]): this process's own, not shared.
    pace: Cell<Pace>,
}

// SAFETY: the mapping is plain shared memory, valid until `Drop` unmaps it; every access
// through it is atomic or a raw copy (see `Mailbox`), so moving it to another thread is safe.
unsafe impl Send for Slot {}

impl Slot {
    /// A new slot whose mailboxes hold messages of up to `capacity` bytes, and the descriptor
    /// that maps it again in the other process (close-on-exec; its size is sealed).
    pub fn create(capacity: usize) -> Result<(Slot, OwnedFd), SlotError> {
        let fd = rustix::fs::memfd_create(
            "selectlab-slot",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )
        .or_else(|_| rustix::fs::memfd_create("selectlab-slot", MemfdFlags::CLOEXEC))
        .map_err(|e| SlotError::Io("memfd_create", e))?;
        let bytes = map_bytes(capacity);
        rustix::fs::ftruncate(&fd, bytes as u64).map_err(|e| SlotError::Io("ftruncate", e))?;
        // The program may not shrink it under selectlab (a read past the end would SIGBUS).
        // Where seals are not implemented (some sandboxes) the slot goes unsealed: the
        // program holds no descriptor of it once it has mapped it.
        let seals = SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL;
        let _ = rustix::fs::fcntl_add_seals(&fd, seals);
        Ok((Slot::map(&fd)?, fd))
    }

    /// Maps the slot `fd` (from [`Slot::create`], in the other process).
    pub fn map(fd: impl AsFd) -> Result<Slot, SlotError> {
        let size = rustix::fs::fstat(&fd)
            .map_err(|e| SlotError::Io("fstat", e))?
            .st_size as u64;
        let capacity = capacity_of(size).ok_or(SlotError::Size(size))?;
        let map_bytes = map_bytes(capacity);
        // SAFETY: a fresh shared mapping of the whole file at an address the kernel picks;
        // nothing else in this process refers to that memory.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                map_bytes,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )
        }
        .map_err(|e| SlotError::Io("mmap", e))?;
        let base = NonNull::new(ptr.cast::<u8>()).ok_or(SlotError::Size(size))?;
        Ok(Slot {
            base,
            map_bytes,
            capacity,
            pace: Cell::new(Pace::EAGER),
        })
    }

    /// The mailbox of the program's requests.
    pub fn requests(&self) -> Mailbox<'_> {
        self.mailbox(0)
    }

    /// The mailbox of selectlab's replies.
    pub fn replies(&self) -> Mailbox<'_> {
        self.mailbox(1)
    }

    fn mailbox(&self, index: usize) -> Mailbox<'_> {
        let offset = index * (HEADER_BYTES + self.capacity);
        debug_assert!(offset + HEADER_BYTES + self.capacity <= self.map_bytes);
        Mailbox {
            // SAFETY: `offset` is inside the mapping (asserted above).
            header: unsafe { self.base.add(offset) },
            capacity: self.capacity,
            pace: &self.pace,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // SAFETY: `base` and `map_bytes` are the mapping made in `map`, and no `Mailbox`
        // outlives the slot (it borrows it).
        let _ = unsafe { rustix::mm::munmap(self.base.as_ptr().cast(), self.map_bytes) };
    }
}

/// The bytes a slot of `capacity` maps: both mailboxes, whole pages.
fn map_bytes(capacity: usize) -> usize {
    let page = rustix::param::page_size();
    (2 * (HEADER_BYTES + capacity)).div_ceil(page) * page
}

/// The capacity a slot of `size` bytes was made with (the largest that maps to it).
fn capacity_of(size: u64) -> Option<usize> {
    let size = usize::try_from(size).ok()?;
    let capacity = (size / 2).checked_sub(HEADER_BYTES)?;
    (NonZeroUsize::new(capacity).is_some() && map_bytes(capacity) == size).then_some(capacity)
}

/// One direction of a [`Slot`].
#[derive(Clone, Copy)]
pub struct Mailbox<'a> {
    header: NonNull<u8>,
    capacity: usize,
    pace: &'a Cell<Pace>,
}

impl<'a> Mailbox<'a> {
    fn word(&self, at: usize) -> &AtomicU32 {
        // SAFETY: the header is inside the mapping, page-aligned plus a multiple of 64, so
        // `at` (a multiple of 4 below 64) is an aligned u32 there, alive as long as `self`
        // borrows the slot; every access to it, from either process, is atomic.
        unsafe { self.header.add(at).cast::<AtomicU32>().as_ref() }
    }

    /// The sequence number of the last message posted: a reader remembers it, and waits for
    /// it to change.
    pub fn seq(&self) -> u32 {
        self.word(SEQ_AT).load(Ordering::Acquire)
    }

    /// Whether a message newer than `seen` (a [`Mailbox::seq`]) is here.
    pub fn arrived(&self, seen: u32) -> bool {
        self.word(SEQ_AT).load(Ordering::SeqCst) != seen
    }

    /// Posts `message` (at most the slot's capacity: a longer one is our own bug). Says
    /// whether the reader dozes and must be woken.
    pub fn post(&self, message: &[u8]) -> Bell {
        assert!(message.len() <= self.capacity, "a message past the slot");
        // SAFETY: the data area follows the header and holds `capacity` bytes of the
        // mapping; the reader copies it only after the sequence number below moves.
        unsafe {
            std::ptr::copy_nonoverlapping(
                message.as_ptr(),
                self.header.add(HEADER_BYTES).as_ptr(),
                message.len(),
            )
        };
        self.word(LEN_AT)
            .store(message.len() as u32, Ordering::Relaxed);
        self.word(SEQ_AT).fetch_add(1, Ordering::SeqCst);
        // SeqCst on both sides (here, and in `Doze`) makes one of the two see the other: the
        // reader sees the message before it sleeps, or the writer sees it dozing.
        match self.word(DOZING_AT).load(Ordering::SeqCst) {
            0 => Bell::Quiet,
            _ => Bell::Ring,
        }
    }

    /// Copies the message last posted to the front of `into`: its length, or None when the
    /// writer claims more than the slot (or `into`) holds.
    pub fn read(&self, into: &mut [u8]) -> Option<usize> {
        let len = self.word(LEN_AT).load(Ordering::Relaxed) as usize;
        if len > self.capacity || len > into.len() {
            return None;
        }
        // SAFETY: `len` bytes of the data area are inside the mapping, and `into` holds them
        // (both checked above); the bytes are copied, never borrowed, so a writer that breaks
        // the protocol can garble them but not this process's memory.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.header.add(HEADER_BYTES).as_ptr(),
                into.as_mut_ptr(),
                len,
            )
        };
        Some(len)
    }

    /// Waits for a message newer than `seen`: up to `spins` looks with a pause between them,
    /// then up to `yields` more, each after giving the core away. Whether it came; if not, the
    /// caller dozes ([`Mailbox::doze`]) and sleeps until the writer's bell.
    ///
    /// Spinning and yielding pay only while the writer runs beside this side, or on its core
    /// in turn. On a busy machine they cost: a look is time the writer may have wanted, and a
    /// yield may hand the core to a stranger for a whole time slice, while a sleeper that is
    /// rung is run at once. A yield that took more than [`CONTENDED_YIELD`] shows that another
    /// task ran. Then the next wait spins half as long (a wait that needed no yield spins twice
    /// as long, up to `spins`). A yield that took more than [`STRANGERS_YIELD`], after which
    /// the message has not come, ran a stranger: this wait and the next
    /// [`WAITS_WITHOUT_YIELDS`] sleep instead of yielding.
    pub fn wait(&self, seen: u32, spins: u32, yields: u32) -> bool {
        let mut pace = self.pace.get().begin(spins);
        let came = self.look(seen, yields, &mut pace);
        self.pace.set(pace);
        came
    }

    fn look(&self, seen: u32, yields: u32, pace: &mut Pace) -> bool {
        for _ in 0..pace.spins {
            if self.arrived(seen) {
                pace.spun();
                return true;
            }
            std::hint::spin_loop();
        }
        if pace.sleeping {
            return self.arrived(seen);
        }
        for tried in 0..yields {
            if self.arrived(seen) {
                return true;
            }
            let before = monotonic();
            std::thread::yield_now();
            let away = monotonic().saturating_sub(before);
            if pace.yielded(tried == 0, away, self.arrived(seen)) == Yield::Sleep {
                return false;
            }
        }
        self.arrived(seen)
    }

    /// Marks the reader dozing until the returned guard goes: check
    /// [`Mailbox::arrived`] once more through it, then sleep until the bell.
    pub fn doze(self) -> Doze<'a> {
        self.word(DOZING_AT).store(1, Ordering::SeqCst);
        Doze { mailbox: self }
    }
}

/// A reader dozing on a mailbox (see [`Mailbox::doze`]); it wakes when this goes.
pub struct Doze<'a> {
    mailbox: Mailbox<'a>,
}

impl Doze<'_> {
    /// Whether a message newer than `seen` came (so there is no need to sleep).
    pub fn arrived(&self, seen: u32) -> bool {
        self.mailbox.arrived(seen)
    }
}

impl Drop for Doze<'_> {
    fn drop(&mut self) {
        self.mailbox.word(DOZING_AT).store(0, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_crosses_between_two_mappings() {
        let (ours, fd) = Slot::create(1000).unwrap();
        let theirs = Slot::map(&fd).unwrap();
        let seen = theirs.requests().seq();
        assert!(!theirs.requests().arrived(seen));
        assert_eq!(ours.requests().post(b"hello"), Bell::Quiet);
        assert!(theirs.requests().wait(seen, 1, 1));
        let mut into = [9; 6];
        assert_eq!(theirs.requests().read(&mut into), Some(5));
        assert_eq!(&into, b"hello\x09");
        assert_eq!(
            theirs.requests().read(&mut [0; 4]),
            None,
            "too long for the buffer"
        );
        assert_eq!(theirs.requests().seq(), seen.wrapping_add(1), "one message");
        let replies = ours.replies().seq();
        ours.requests().post(b"again");
        assert_eq!(ours.replies().seq(), replies, "the other mailbox is apart");
    }

    #[test]
    fn a_dozing_reader_is_rung_and_a_woken_one_is_not() {
        let (slot, _fd) = Slot::create(64).unwrap();
        let doze = slot.replies().doze();
        assert_eq!(slot.replies().post(b"x"), Bell::Ring);
        drop(doze);
        assert_eq!(slot.replies().post(b"y"), Bell::Quiet);
    }

    #[test]
    fn a_wait_ends_when_the_message_comes_or_its_looks_run_out() {
        let (slot, fd) = Slot::create(64).unwrap();
        let seen = slot.replies().seq();
        assert!(!slot.replies().wait(seen, 100, 100), "nothing came");
        let writer = std::thread::spawn(move || {
            let theirs = Slot::map(&fd).unwrap();
            theirs.replies().post(b"late");
        });
        let mut came = false;
        for _ in 0..10_000 {
            if slot.replies().wait(seen, 1000, 1000) {
                came = true;
                break;
            }
        }
        writer.join().unwrap();
        assert!(came, "a message posted from another mapping is seen");
        assert!(slot.replies().wait(seen, 0, 0), "and seen again at once");
    }

    #[test]
    fn a_wait_that_spun_to_its_message_spins_twice_as_long_next_time() {
        let mut pace = Pace::EAGER.begin(200);
        assert_eq!((pace.spins, pace.sleeping), (200, false));
        pace.spun();
        assert_eq!(pace.begin(200).spins, 200, "never past the most");
        let mut small = Pace { spins: 10, ..pace }.begin(200);
        small.spun();
        assert_eq!(small.begin(200).spins, 20);
        assert_eq!(
            Pace { spins: 0, ..pace }.begin(200).spins,
            1,
            "at least one look"
        );
    }

    #[test]
    fn a_yield_that_ran_another_task_halves_the_spinning_once_a_wait() {
        let fast = Duration::from_nanos(200);
        let slow = Duration::from_micros(10);
        let mut pace = Pace::EAGER.begin(200);
        assert_eq!(pace.yielded(true, fast, false), Yield::Again);
        assert_eq!(pace.spins, 200, "the core was free");
        assert_eq!(pace.yielded(true, CONTENDED_YIELD, false), Yield::Again);
        assert_eq!(pace.spins, 200, "not more than the bound");
        assert_eq!(pace.yielded(true, slow, true), Yield::Again);
        assert_eq!(pace.spins, 100);
        assert_eq!(pace.yielded(false, slow, false), Yield::Again);
        assert_eq!(pace.spins, 100, "only the wait's first yield counts");
    }

    #[test]
    fn a_yield_that_ran_a_stranger_sends_the_next_waits_to_sleep() {
        let long = Duration::from_millis(3);
        let mut pace = Pace::EAGER.begin(200);
        assert_eq!(
            pace.yielded(false, long, true),
            Yield::Again,
            "the writer ran"
        );
        assert_eq!(pace.yielded(false, STRANGERS_YIELD, false), Yield::Again);
        assert_eq!(pace.yielded(false, long, false), Yield::Sleep);
        for _ in 0..WAITS_WITHOUT_YIELDS {
            pace = pace.begin(200);
            assert!(pace.sleeping);
        }
        assert!(!pace.begin(200).sleeping, "then it yields again");
    }

    #[test]
    fn a_sleeping_wait_looks_once_more_and_gives_up() {
        let (slot, _fd) = Slot::create(64).unwrap();
        let replies = slot.replies();
        slot.pace.set(Pace {
            sleep_first: 1,
            ..Pace::EAGER
        });
        // Were it to yield, u32::MAX yields would hold the test for hours.
        assert!(!replies.wait(replies.seq(), 1, u32::MAX));
        assert!(!slot.pace.get().begin(1).sleeping, "the next wait yields");
    }

    #[test]
    fn the_clock_the_pacing_reads_moves() {
        let start = monotonic();
        let moved = (0..100_000_000).any(|_| monotonic() > start);
        assert!(moved);
    }

    #[test]
    fn a_message_may_fill_the_slot() {
        let (slot, _fd) = Slot::create(64).unwrap();
        let full = vec![7; slot.capacity];
        slot.requests().post(&full);
        let mut into = vec![0; slot.capacity];
        assert_eq!(slot.requests().read(&mut into), Some(slot.capacity));
        assert_eq!(into, full);
    }

    #[test]
    fn a_dropped_slot_is_unmapped() {
        let (slot, fd) = Slot::create(64).unwrap();
        // This slot's mappings only (other tests map slots of their own meanwhile).
        let inode = rustix::fs::fstat(&fd).unwrap().st_ino.to_string();
        let mappings = || {
            let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
            (maps.lines())
                .filter(|l| l.split_whitespace().nth(4) == Some(inode.as_str()))
                .count()
        };
        let again = Slot::map(&fd).unwrap();
        assert_eq!(mappings(), 2);
        drop(again);
        assert_eq!(mappings(), 1);
        drop(slot);
        assert_eq!(mappings(), 0);
    }

    #[test]
    fn a_length_past_the_slot_is_refused() {
        let (slot, _fd) = Slot::create(64).unwrap();
        slot.requests()
            .word(LEN_AT)
            .store(1 << 20, Ordering::Relaxed);
        assert_eq!(slot.requests().read(&mut vec![0; 1 << 21]), None);
    }

    #[test]
    fn only_a_slot_of_the_right_size_maps() {
        let fd = rustix::fs::memfd_create("odd", MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, 100).unwrap();
        assert!(matches!(Slot::map(&fd), Err(SlotError::Size(100))));
        rustix::fs::ftruncate(&fd, 8192 + 100).unwrap();
        let odd = Slot::map(&fd).err().expect("not a whole number of pages");
        assert_eq!(
            odd.to_string(),
            "a slot of 8292 bytes is not one selectlab made"
        );
        let (_slot, fd) = Slot::create(128 * 1024 + 56).unwrap();
        let size = rustix::fs::fstat(&fd).unwrap().st_size as u64;
        assert!(capacity_of(size).unwrap() >= 128 * 1024 + 56);
        assert!(
            rustix::fs::ftruncate(&fd, 8).is_err(),
            "sealed against shrinking"
        );
        assert!(rustix::fs::ftruncate(&fd, size * 2).is_err(), "and growing");
    }
}
