//! stdio on a simulated descriptor. glibc's FILE reads and writes through its internal calls,
//! which no preload sees, so `fdopen` on a simulated descriptor makes a stream whose reads,
//! writes and close are the shim's own (glibc's `fopencookie`). It behaves as fdopen's stream
//! does: `fileno` gives the descriptor, it is fully buffered in 4096-byte blocks (what glibc
//! takes from a socket's st_blksize), a short write is retried, and seeking fails with ESPIPE.

use libc::{FILE, c_char, c_int, c_void, off64_t, size_t, ssize_t};

use crate::data::{read, write};
use crate::real::real;
use crate::sockets::close;
use crate::state::{is_sim, set_errno};

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

/// The buffer glibc gives a stream on a socket (its st_blksize).
const SOCKET_STREAM_BUFFER_BYTES: size_t = 4096;

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

unsafe extern "C" fn cookie_seek(_: *mut c_void, _: *mut off64_t, _: c_int) -> c_int {
    set_errno(libc::ESPIPE);
    -1
}

unsafe extern "C" fn cookie_close(cookie: *mut c_void) -> c_int {
    close(fd_of(cookie))
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
    // to its own code (its cookie functions do the I/O), and fileno then answers the socket.
    unsafe {
        (*stream.cast::<FilePrefix>()).fileno = fd;
        setvbuf(
            stream,
            std::ptr::null_mut(),
            libc::_IOFBF,
            SOCKET_STREAM_BUFFER_BYTES,
        );
    }
    stream
}
