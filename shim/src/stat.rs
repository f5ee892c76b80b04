//! fstat on a simulated descriptor: what Linux says of a socket, a pipe or an anonymous inode
//! (epoll, eventfd, timerfd), not of its placeholder (an `O_PATH` open of `/dev/null`, a
//! character device). Python's `socket.socket(fileno=…)` and many C programs ask it whether a
//! descriptor is a socket.

use libc::{c_char, c_int, stat, stat64};

use crate::real::real;
use crate::state::{Kind, is_sim, kind_of};

/// Where simulated inode numbers start: Linux numbers each socket's and pipe's inode in its
/// pseudo file system; selectlab numbers them by descriptor, out of the way of small numbers.
/// Every anonymous-inode file shares one inode, as on Linux: this number.
const SIM_INODE_BASE: u64 = 1 << 40;

/// Fills `st` as Linux's fstat does: a socket is S_IFSOCK with every permission bit, a pipe
/// S_IFIFO and an anonymous inode no type at all, both mode 0600 (the anonymous inode was made
/// by root at boot); one link, no size, 4096-byte blocks, and times of zero. The devices are
/// pseudo file systems' whose numbers differ by machine: 0 here.
///
/// # Safety
/// `st` must be writable (as `struct stat`, which `struct stat64` is on 64-bit Linux).
unsafe fn simulated_stat(fd: c_int, st: *mut stat) {
    // SAFETY: stat is plain data; all zeroes is a valid value.
    let mut s: stat = unsafe { std::mem::zeroed() };
    s.st_nlink = 1;
    s.st_blksize = 4096;
    s.st_ino = SIM_INODE_BASE + fd as u64;
    // SAFETY: geteuid and getegid cannot fail and touch no memory of ours.
    (s.st_uid, s.st_gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    match kind_of(fd) {
        Some(Kind::Socket) | None => s.st_mode = libc::S_IFSOCK | 0o777,
        Some(Kind::Fifo) => s.st_mode = libc::S_IFIFO | 0o600,
        Some(Kind::AnonInode) => {
            s.st_mode = 0o600;
            s.st_ino = SIM_INODE_BASE;
            (s.st_uid, s.st_gid) = (0, 0);
        }
    }
    // SAFETY: the caller's promise about `st`.
    unsafe { st.write(s) };
}

/// Whether an `*at` call's `dirfd`, `path` and `flags` name simulated descriptor `dirfd` itself
/// (AT_EMPTY_PATH with an empty path), as fstat would.
///
/// # Safety
/// `path` must be null or a C string.
unsafe fn names_simulated(dirfd: c_int, path: *const c_char, flags: c_int) -> bool {
    // SAFETY: the caller's promise; null is checked first.
    let empty = !path.is_null() && unsafe { *path } == 0;
    is_sim(dirfd) && empty && flags & libc::AT_EMPTY_PATH != 0
}

/// fstat(2).
///
/// # Safety
/// `st` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fstat(fd: c_int, st: *mut stat) -> c_int {
    if !is_sim(fd) {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe { real!(fstat: fn(c_int, *mut stat) -> c_int)(fd, st) };
    }
    // SAFETY: the caller's promise about `st`.
    unsafe { simulated_stat(fd, st) };
    0
}

/// fstat64: fstat's other name (the same structure on 64-bit Linux).
///
/// # Safety
/// `st` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fstat64(fd: c_int, st: *mut stat64) -> c_int {
    // SAFETY: struct stat64 is struct stat on 64-bit Linux; the caller's promise.
    unsafe { fstat(fd, st.cast()) }
}

/// __fxstat64, how programs built against glibc before 2.33 call fstat.
///
/// # Safety
/// `st` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __fxstat64(version: c_int, fd: c_int, st: *mut stat64) -> c_int {
    if !is_sim(fd) {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe {
            real!(__fxstat64: fn(c_int, c_int, *mut stat64) -> c_int)(version, fd, st)
        };
    }
    // SAFETY: as above.
    unsafe { simulated_stat(fd, st.cast()) };
    0
}

/// __fxstat: __fxstat64's other name.
///
/// # Safety
/// `st` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __fxstat(version: c_int, fd: c_int, st: *mut stat) -> c_int {
    // SAFETY: the same structure; the caller's promise.
    unsafe { __fxstat64(version, fd, st.cast()) }
}

/// fstatat(2): with AT_EMPTY_PATH and an empty path it is fstat of `dirfd`.
///
/// # Safety
/// `path` must be a C string and `st` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fstatat(
    dirfd: c_int,
    path: *const c_char,
    st: *mut stat,
    flags: c_int,
) -> c_int {
    // SAFETY: the caller's promise: `path` is a C string.
    if unsafe { names_simulated(dirfd, path, flags) } {
        // SAFETY: the caller's promise about `st`.
        unsafe { simulated_stat(dirfd, st) };
        return 0;
    }
    // SAFETY: the arguments are the caller's, passed on unchanged.
    unsafe {
        real!(fstatat: fn(c_int, *const c_char, *mut stat, c_int) -> c_int)(dirfd, path, st, flags)
    }
}

/// fstatat64: fstatat's other name.
///
/// # Safety
/// As for [`fstatat`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fstatat64(
    dirfd: c_int,
    path: *const c_char,
    st: *mut stat64,
    flags: c_int,
) -> c_int {
    // SAFETY: the same structure; the caller's promise.
    unsafe { fstatat(dirfd, path, st.cast(), flags) }
}

/// statx(2): with AT_EMPTY_PATH and an empty path on a simulated descriptor, what fstat says,
/// in statx's form (the basic fields; no birth time, as sockfs and pipefs keep none).
///
/// # Safety
/// `path` must be a C string and `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn statx(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mask: libc::c_uint,
    out: *mut libc::statx,
) -> c_int {
    // SAFETY: the caller's promise: `path` is a C string.
    if unsafe { !names_simulated(dirfd, path, flags) } {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe {
            real!(statx: fn(c_int, *const c_char, c_int, libc::c_uint, *mut libc::statx) -> c_int)(
                dirfd, path, flags, mask, out,
            )
        };
    }
    // SAFETY: stat is plain data; all zeroes is a valid value, filled next.
    let mut st: stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is writable.
    unsafe { simulated_stat(dirfd, &mut st) };
    // SAFETY: statx is plain data; all zeroes is a valid value.
    let mut x: libc::statx = unsafe { std::mem::zeroed() };
    x.stx_mask = libc::STATX_BASIC_STATS;
    x.stx_blksize = st.st_blksize as u32;
    x.stx_nlink = st.st_nlink as u32;
    (x.stx_uid, x.stx_gid) = (st.st_uid, st.st_gid);
    x.stx_mode = st.st_mode as u16;
    x.stx_ino = st.st_ino;
    // SAFETY: the caller's promise about `out`.
    unsafe { out.write(x) };
    0
}

/// __fxstatat64: fstatat from programs built against glibc before 2.33.
///
/// # Safety
/// As for [`fstatat`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __fxstatat64(
    version: c_int,
    dirfd: c_int,
    path: *const c_char,
    st: *mut stat64,
    flags: c_int,
) -> c_int {
    // SAFETY: the caller's promise: `path` is a C string.
    if unsafe { names_simulated(dirfd, path, flags) } {
        // SAFETY: the same structure; the caller's promise about `st`.
        unsafe { simulated_stat(dirfd, st.cast()) };
        return 0;
    }
    // SAFETY: the arguments are the caller's, passed on unchanged.
    unsafe {
        real!(__fxstatat64: fn(c_int, c_int, *const c_char, *mut stat64, c_int) -> c_int)(
            version, dirfd, path, st, flags,
        )
    }
}

/// __fxstatat: __fxstatat64's other name.
///
/// # Safety
/// As for [`fstatat`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __fxstatat(
    version: c_int,
    dirfd: c_int,
    path: *const c_char,
    st: *mut stat,
    flags: c_int,
) -> c_int {
    // SAFETY: the same structure; the caller's promise.
    unsafe { __fxstatat64(version, dirfd, path, st.cast(), flags) }
}
