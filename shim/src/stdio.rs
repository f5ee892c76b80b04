//! stdio where the shim must see the I/O. glibc's FILE reads and writes through its internal
//! calls, which no preload sees, so two kinds of stream are made here, whose reads, writes,
//! seeks and close are the shim's own (glibc's `fopencookie`):
//! - `fdopen` on a simulated descriptor;
//! - `fopen` of a random device by the program (its reads are seeded, see `entropy`).
//!
//! Each behaves as glibc's stream on that descriptor does: `fileno` gives the descriptor, it is
//! fully buffered in 4096-byte blocks (glibc takes a socket's or a device's st_blksize), a
//! short write is retried, and a seek is the descriptor's (ESPIPE on a socket).

use libc::{FILE, c_char, c_int, c_void, off64_t, size_t, ssize_t};

use crate::data::{read, write};
use crate::entropy::{is_random_device, note_open};
use crate::real::real;
use crate::sockets::close;
use crate::state::{is_sim, set_errno, the_program};

/// glibc's `cookie_io_functions_t`.
#[repr(C)]
struct CookieIo {
    read: unsafe extern "C" fn(*mut c_void, *mut c_char, size_t) -> ssize_t,
    write: unsafe extern "C" fn(*mut c_void, *const c_char, size_t) -> ssize_t,
    seek: unsafe extern "C" fn(*mut c_void, *mut off64_t, c_int) -> c_int,
    close: unsafe extern "C" fn(*mut c_void) -> c_int,
}

unsafe extern "C" {
    fn fopencookie(cookie: *mut c_void, mode: *const c_char, io: CookieIo) -> *mut FILE;
    fn setvbuf(stream: *mut FILE, buf: *mut c_char, mode: c_int, size: size_t) -> c_int;
}

/// The start of glibc's `struct _IO_FILE` (bits/types/struct_FILE.h, a public and stable
/// layout: the getc_unlocked macros read it), up to the descriptor `fileno` returns.
#[repr(C)]
struct FilePrefix {
    flags: c_int,
    buffers: [*mut c_char; 11],
    markers: *mut c_void,
    chain: *mut c_void,
    fileno: c_int,
}

const _: () = assert!(std::mem::offset_of!(FilePrefix, fileno) == 112);

/// The buffer glibc gives a stream on a socket or a character device (their st_blksize).
const STREAM_BUFFER_BYTES: size_t = 4096;

/// The descriptor a cookie carries (the cookie is the number itself, nothing allocated).
fn fd_of(cookie: *mut c_void) -> c_int {
    cookie as usize as c_int
}

unsafe extern "C" fn cookie_read(cookie: *mut c_void, buf: *mut c_char, size: size_t) -> ssize_t {
    // SAFETY: glibc hands its buffer with `size` writable bytes.
    unsafe { read(fd_of(cookie), buf.cast(), size) }
}

/// Writes all of `buf` unless a write fails, as glibc's writes to a file descriptor do (a
/// cookie write that returns less marks the stream in error).
unsafe extern "C" fn cookie_write(
    cookie: *mut c_void,
    buf: *const c_char,
    size: size_t,
) -> ssize_t {
    let mut done = 0;
    while done < size {
        // SAFETY: glibc hands `size` readable bytes; `done` < `size`.
        let n = unsafe { write(fd_of(cookie), buf.add(done).cast(), size - done) };
        match n {
            n if n > 0 => done += n as size_t,
            _ if done > 0 => break,
            n => return n,
        }
    }
    done as ssize_t
}

/// A seek: ESPIPE on a simulated socket, else the descriptor's own lseek.
unsafe extern "C" fn cookie_seek(
    cookie: *mut c_void,
    offset: *mut off64_t,
    whence: c_int,
) -> c_int {
    let fd = fd_of(cookie);
    if is_sim(fd) {
        set_errno(libc::ESPIPE);
        return -1;
    }
    // SAFETY: glibc hands a valid offset to read and update.
    let at = unsafe { libc::lseek64(fd, *offset, whence) };
    if at < 0 {
        return -1;
    }
    // SAFETY: as above.
    unsafe { *offset = at };
    0
}

unsafe extern "C" fn cookie_close(cookie: *mut c_void) -> c_int {
    close(fd_of(cookie))
}

/// A stream on `fd` whose I/O is the shim's, or null with errno (a bad `mode`: EINVAL).
///
/// # Safety
/// `mode` must be a NUL-terminated string.
unsafe fn shim_stream(fd: c_int, mode: *const c_char) -> *mut FILE {
    let io = CookieIo {
        read: cookie_read,
        write: cookie_write,
        seek: cookie_seek,
        close: cookie_close,
    };
    // SAFETY: the cookie is a number, never dereferenced; `mode` is the caller's string
    // (glibc checks it, EINVAL for a bad one).
    let stream = unsafe { fopencookie(fd as usize as *mut c_void, mode, io) };
    if stream.is_null() {
        return stream;
    }
    // SAFETY: `stream` is a live FILE that glibc just made; FilePrefix is its first fields.
    // glibc marks a cookie stream's descriptor -2 ("no file"); any number ≥ 0 reads the same
    // to its own code (its cookie functions do the I/O), and fileno then answers `fd`.
    unsafe {
        (*stream.cast::<FilePrefix>()).fileno = fd;
        setvbuf(
            stream,
            std::ptr::null_mut(),
            libc::_IOFBF,
            STREAM_BUFFER_BYTES,
        );
    }
    stream
}

/// fdopen(3): on a simulated descriptor, a stream whose I/O is the shim's.
///
/// # Safety
/// `mode` must be a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fdopen(fd: c_int, mode: *const c_char) -> *mut FILE {
    if !is_sim(fd) {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe { real!(fdopen: fn(c_int, *const c_char) -> *mut FILE)(fd, mode) };
    }
    // SAFETY: the caller's promise about `mode`.
    unsafe { shim_stream(fd, mode) }
}

/// fopen(3): the program's fopen of a random device for reading is a stream whose reads are
/// seeded; anything else is libc's.
///
/// # Safety
/// `path` and `mode` must be NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fopen(path: *const c_char, mode: *const c_char) -> *mut FILE {
    // SAFETY: the caller's promise about both strings.
    if unsafe { !seeded_device_stream(path, mode) } {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe { real!(fopen: fn(*const c_char, *const c_char) -> *mut FILE)(path, mode) };
    }
    // SAFETY: as above.
    unsafe { open_seeded_stream(path, mode) }
}

/// fopen64: fopen's other name.
///
/// # Safety
/// As for [`fopen`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fopen64(path: *const c_char, mode: *const c_char) -> *mut FILE {
    // SAFETY: the caller's promise about both strings.
    if unsafe { !seeded_device_stream(path, mode) } {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe {
            real!(fopen64: fn(*const c_char, *const c_char) -> *mut FILE)(path, mode)
        };
    }
    // SAFETY: as above.
    unsafe { open_seeded_stream(path, mode) }
}

/// Whether an fopen is the program reading a random device (mode `r`, with `b` or `e`).
///
/// # Safety
/// `path` and `mode` must be null or NUL-terminated strings.
unsafe fn seeded_device_stream(path: *const c_char, mode: *const c_char) -> bool {
    if mode.is_null() || !the_program() {
        return false;
    }
    // SAFETY: the caller's promise.
    let mode = unsafe { std::ffi::CStr::from_ptr(mode) }.to_bytes();
    // SAFETY: the caller's promise.
    mode.first() == Some(&b'r') && !mode.contains(&b'+') && unsafe { is_random_device(path) }
}

/// Opens the device read-only (close-on-exec with `e`), marks it, and makes its stream.
///
/// # Safety
/// `path` and `mode` must be NUL-terminated strings.
unsafe fn open_seeded_stream(path: *const c_char, mode: *const c_char) -> *mut FILE {
    // SAFETY: the caller's promise.
    let cloexec = unsafe { std::ffi::CStr::from_ptr(mode) }
        .to_bytes()
        .contains(&b'e');
    let flags = libc::O_RDONLY | if cloexec { libc::O_CLOEXEC } else { 0 };
    // SAFETY: `path` is the caller's C string; the open is libc's own.
    let fd =
        unsafe { real!(open: fn(*const c_char, c_int, libc::c_uint) -> c_int)(path, flags, 0) };
    // SAFETY: as above.
    let fd = unsafe { note_open(fd, path) };
    if fd < 0 {
        return std::ptr::null_mut();
    }
    // SAFETY: the caller's promise about `mode`.
    let stream = unsafe { shim_stream(fd, mode) };
    if stream.is_null() {
        close(fd);
    }
    stream
}
