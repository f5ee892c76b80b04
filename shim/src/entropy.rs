//! Randomness: the simulated program's random bytes come from the run's seed, so that the same
//! seed gives the same run (a Python server seeds `random` from getrandom at start).
//! Processes selectlab did not start as the program (children) get the kernel's.

use libc::{c_int, c_uint, c_void, size_t, ssize_t};
use selectlab_wire::{MAX_DATA_BYTES, Op, Request};

use crate::real::real;
use crate::state::{Mode, forward, mode, set_errno};

/// getentropy's most bytes per call (EIO beyond, as glibc says).
const MAX_GETENTROPY_BYTES: size_t = 256;

/// The flags getrandom knows (GRND_NONBLOCK, GRND_RANDOM, GRND_INSECURE); others are EINVAL.
const KNOWN_FLAGS: c_uint = 0x1 | 0x2 | 0x4;

/// Asks selectlab for at most `len` bytes into `buf`; how many came.
///
/// # Safety
/// `buf` must be writable for `len` bytes.
unsafe fn seeded(what: &str, buf: *mut c_void, len: size_t) -> ssize_t {
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
    if mode() != Mode::Owner {
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
    if mode() != Mode::Owner {
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
