//! Randomness: the simulated program's random bytes come from the run's seed, so that the same
//! seed gives the same run (a Python server seeds `random` from getrandom at start; a C one
//! may read `/dev/urandom`). Processes selectlab did not start as the program (children) get
//! the kernel's.
//!
//! getrandom and getentropy are answered here. `/dev/urandom` and `/dev/random` opened by the
//! program are real descriptors marked here; `read` (see `data`) asks [`reads_seeded`] and
//! takes seeded bytes for them, checking the descriptor is still the device (a mark left by a
//! close the shim did not see, say `close_range`, then does no harm). `fopen` of either gives
//! a stream that reads the same way (see `stdio`).

use std::ffi::CStr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use libc::{c_char, c_int, c_uint, c_void, size_t, ssize_t};
use selectlab_wire::{MAX_DATA_BYTES, Op, Request};

use crate::real::real;
use crate::state::{forward, set_errno, the_program};

/// The random devices' paths.
const RANDOM_DEVICES: [&CStr; 2] = [c"/dev/urandom", c"/dev/random"];
/// Their device numbers (major 1, minors 8 and 9: drivers/char/mem.c).
const RANDOM_DEVICE_NUMBERS: [(u32, u32); 2] = [(1, 8), (1, 9)];
/// Most draws arc4random_uniform makes.
const MAX_UNIFORM_DRAWS: usize = 64;
/// Descriptors the marks cover (one bit each).
const MAX_MARKED_FD: usize = 65_535;

/// One bit per descriptor number: set when the program opened a random device there.
static MARKED: [AtomicU64; (MAX_MARKED_FD + 1) / 64] =
    [const { AtomicU64::new(0) }; (MAX_MARKED_FD + 1) / 64];

/// getentropy's most bytes per call (EIO beyond, as glibc says).
const MAX_GETENTROPY_BYTES: size_t = 256;

/// The flags getrandom knows (GRND_NONBLOCK, GRND_RANDOM, GRND_INSECURE); others are EINVAL.
const KNOWN_FLAGS: c_uint = 0x1 | 0x2 | 0x4;

/// Asks selectlab for at most `len` bytes into `buf`; how many came.
///
/// # Safety
/// `buf` must be writable for `len` bytes.
pub(crate) unsafe fn seeded(what: &str, buf: *mut c_void, len: size_t) -> ssize_t {
    let len = len.min(MAX_DATA_BYTES);
    let req = Request::new(Op::Random, &[len as i64]);
    forward(what, req, |bytes| {
        let n = bytes.len().min(len);
        // SAFETY: the caller's promise: `buf` holds `len` bytes, and `n` ≤ `len`.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), n) }
    }) as ssize_t
}

/// getrandom(2): bytes from the run's seed, at most a reply's worth per call (Linux may also
/// return fewer than asked beyond 256 bytes). GRND_RANDOM and GRND_NONBLOCK never block here.
///
/// # Safety
/// `buf` must be writable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn getrandom(buf: *mut c_void, len: size_t, flags: c_uint) -> ssize_t {
    if !the_program() {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe {
            real!(getrandom: fn(*mut c_void, size_t, c_uint) -> ssize_t)(buf, len, flags)
        };
    }
    if flags & !KNOWN_FLAGS != 0 {
        set_errno(libc::EINVAL);
        return -1;
    }
    if buf.is_null() && len > 0 {
        set_errno(libc::EFAULT);
        return -1;
    }
    // SAFETY: the caller's promise about `buf`.
    unsafe { seeded("getrandom", buf, len) }
}

/// getentropy(3): `len` (at most 256) bytes from the run's seed. glibc's own calls the kernel
/// directly, past [`getrandom`], so it is interposed too.
///
/// # Safety
/// `buf` must be writable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn getentropy(buf: *mut c_void, len: size_t) -> c_int {
    if !the_program() {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe { real!(getentropy: fn(*mut c_void, size_t) -> c_int)(buf, len) };
    }
    if len > MAX_GETENTROPY_BYTES {
        set_errno(libc::EIO);
        return -1;
    }
    if buf.is_null() && len > 0 {
        set_errno(libc::EFAULT);
        return -1;
    }
    // SAFETY: the caller's promise about `buf`; one reply holds 256 bytes.
    if unsafe { seeded("getentropy", buf, len) } < 0 {
        return -1;
    }
    0
}

/// Fills `buf` from the run's seed, a reply's worth at a time.
///
/// # Safety
/// `buf` must be writable for `len` bytes.
unsafe fn fill_seeded(what: &str, buf: *mut u8, len: size_t) {
    let mut done = 0;
    while done < len {
        // SAFETY: the caller's promise; `done` < `len`.
        let n = unsafe { seeded(what, buf.add(done).cast(), len - done) };
        if n <= 0 {
            crate::state::die(&format!("{what}: no seeded bytes from selectlab"));
        }
        done += n as size_t;
    }
}

/// arc4random_buf(3): seeded bytes for the program (glibc's calls the kernel directly).
///
/// # Safety
/// `buf` must be writable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn arc4random_buf(buf: *mut c_void, len: size_t) {
    if !the_program() {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe { real!(arc4random_buf: fn(*mut c_void, size_t) -> ())(buf, len) };
    }
    // SAFETY: the caller's promise.
    unsafe { fill_seeded("arc4random_buf", buf.cast(), len) }
}

/// arc4random(3): four seeded bytes.
#[unsafe(no_mangle)]
pub extern "C" fn arc4random() -> u32 {
    let mut word = [0u8; 4];
    // SAFETY: `word` is writable for its 4 bytes.
    unsafe { arc4random_buf(word.as_mut_ptr().cast(), word.len()) };
    u32::from_ne_bytes(word)
}

/// arc4random_uniform(3): uniform below `upper` (0 for 0 and 1), by rejecting the draws
/// that would bias it, as glibc does.
#[unsafe(no_mangle)]
pub extern "C" fn arc4random_uniform(upper: u32) -> u32 {
    if upper <= 1 {
        return 0;
    }
    // The smallest value from which draws are taken: 2^32 mod upper values below it would
    // come up once more than the others.
    let floor = upper.wrapping_neg() % upper;
    // Each draw is rejected with a chance under one half: 64 in a row never happen.
    let mut r = arc4random();
    for _ in 0..MAX_UNIFORM_DRAWS {
        if r >= floor {
            break;
        }
        r = arc4random();
    }
    r % upper
}

/// Whether `path` names a random device.
///
/// # Safety
/// `path` must be null or a C string.
pub(crate) unsafe fn is_random_device(path: *const c_char) -> bool {
    // SAFETY: the caller's promise.
    !path.is_null() && RANDOM_DEVICES.contains(&unsafe { CStr::from_ptr(path) })
}

fn slot(fd: c_int) -> Option<(&'static AtomicU64, u64)> {
    let i = usize::try_from(fd).ok().filter(|i| *i <= MAX_MARKED_FD)?;
    Some((&MARKED[i / 64], 1 << (i % 64)))
}

/// Marks `fd` (an open's result) when the program opened a random device: its reads are
/// seeded from now on.
///
/// # Safety
/// `path` must be null or a C string.
pub(crate) unsafe fn note_open(fd: c_int, path: *const c_char) -> c_int {
    // SAFETY: the caller's promise.
    if fd >= 0
        && the_program()
        && unsafe { is_random_device(path) }
        && let Some((word, bit)) = slot(fd)
    {
        word.fetch_or(bit, Relaxed);
    }
    fd
}

/// Whether a read of `fd` takes seeded bytes: it was marked and is still a random device
/// (else the stale mark is dropped).
pub(crate) fn reads_seeded(fd: c_int) -> bool {
    let Some((word, bit)) = slot(fd) else {
        return false;
    };
    if word.load(Relaxed) & bit == 0 {
        return false;
    }
    // SAFETY: stat is plain data; the kernel fills it, or fails and we look no further.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is writable; fstat through the syscall, past the shim's own fstat.
    let ok = unsafe { libc::syscall(libc::SYS_fstat, fd, &mut st) } == 0;
    let device = (libc::major(st.st_rdev), libc::minor(st.st_rdev));
    let still =
        ok && st.st_mode & libc::S_IFMT == libc::S_IFCHR && RANDOM_DEVICE_NUMBERS.contains(&device);
    if !still {
        word.fetch_and(!bit, Relaxed);
    }
    still && the_program()
}

/// Defines an open-family function: libc's, then [`note_open`] on what it returns. Optional
/// modes are read as one machine word, as the ABIs pass a variadic int (stable Rust cannot
/// define a C-variadic function).
macro_rules! marked_open {
    ($(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty),*), path $path:ident) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// As for libc's function of this name.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> c_int {
            // SAFETY: the arguments are the caller's, passed on unchanged.
            let fd = unsafe { real!($name: fn($($ty),*) -> c_int)($($arg),*) };
            // SAFETY: the caller's promise: the path is a C string.
            unsafe { note_open(fd, $path) }
        }
    };
}

marked_open!(
    /// open(2): the program's opens of a random device are marked.
    open(path: *const c_char, flags: c_int, mode: c_uint), path path
);
marked_open!(
    /// open64: open's other name.
    open64(path: *const c_char, flags: c_int, mode: c_uint), path path
);
marked_open!(
    /// openat(2), marked as open is.
    openat(dirfd: c_int, path: *const c_char, flags: c_int, mode: c_uint), path path
);
marked_open!(
    /// openat64: openat's other name.
    openat64(dirfd: c_int, path: *const c_char, flags: c_int, mode: c_uint), path path
);
marked_open!(
    /// __open_2: open from a fortified build (no mode).
    __open_2(path: *const c_char, flags: c_int), path path
);
marked_open!(
    /// __open64_2: __open_2's other name.
    __open64_2(path: *const c_char, flags: c_int), path path
);
marked_open!(
    /// __openat_2: openat from a fortified build (no mode).
    __openat_2(dirfd: c_int, path: *const c_char, flags: c_int), path path
);
marked_open!(
    /// __openat64_2: __openat_2's other name.
    __openat64_2(dirfd: c_int, path: *const c_char, flags: c_int), path path
);
