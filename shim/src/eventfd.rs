//! eventfd: the program's counters are simulated, so that a loop that wakes itself through one
//! (mio's and tokio's waker, libuv's async handle) waits in virtual time beside its sockets.
//! Reads and writes reach it through `read` and `write` (see `data`); glibc's `eventfd_read`
//! and `eventfd_write` call its internal read and write, which no preload sees, so they are
//! defined here on top of the shim's own.

use libc::{c_int, c_uint, c_void};
use selectlab_wire::Op;

use crate::data::{read, write};
use crate::real::real;
use crate::sockets::create_simulated;
use crate::state::{self, Kind, is_sim};

/// glibc's `eventfd_t`.
type EventfdT = u64;

/// eventfd(2): a simulated counter for the program (its flags are checked by selectlab).
#[unsafe(no_mangle)]
pub extern "C" fn eventfd(initval: c_uint, flags: c_int) -> c_int {
    if !state::simulated_process() {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe { real!(eventfd: fn(c_uint, c_int) -> c_int)(initval, flags) };
    }
    let args = [initval.into(), flags.into()];
    create_simulated("eventfd", Op::EventFd, &args, Kind::AnonInode)
}

/// eventfd_read(3): an 8-byte read; 0, or -1 with errno.
///
/// # Safety
/// `value` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn eventfd_read(fd: c_int, value: *mut EventfdT) -> c_int {
    if !is_sim(fd) {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe { real!(eventfd_read: fn(c_int, *mut EventfdT) -> c_int)(fd, value) };
    }
    // SAFETY: the caller promises `value` is writable for its 8 bytes.
    let n = unsafe { read(fd, value.cast::<c_void>(), size_of::<EventfdT>()) };
    if n == size_of::<EventfdT>() as isize {
        0
    } else {
        -1
    }
}

/// eventfd_write(3): an 8-byte write; 0, or -1 with errno.
#[unsafe(no_mangle)]
pub extern "C" fn eventfd_write(fd: c_int, value: EventfdT) -> c_int {
    if !is_sim(fd) {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe { real!(eventfd_write: fn(c_int, EventfdT) -> c_int)(fd, value) };
    }
    let bytes = value.to_ne_bytes();
    // SAFETY: `bytes` is readable for its 8 bytes.
    let n = unsafe { write(fd, bytes.as_ptr().cast::<c_void>(), bytes.len()) };
    if n == bytes.len() as isize { 0 } else { -1 }
}
