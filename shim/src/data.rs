//! Data calls: read, write, their vectored forms, recv and send with their address and
//! message forms, and the `__*_chk` entry points of glibc's fortified builds.

use libc::{c_int, c_void, iovec, msghdr, size_t, sockaddr, socklen_t, ssize_t};
use selectlab_wire::{MAX_DATA_BYTES, Op, Request, put_addr, take_addr};

use crate::entropy;
use crate::real::real;
use crate::sockets::{addr_in, addr_out, check_real};
use crate::state::{self, forward, is_sim, refuse, set_errno};

/// Most bytes one forwarded receive or send carries (the message's payload, less room for an
/// address block). A longer send goes out in several; a longer receive is short, as a stream
/// receive may be.
const MAX_CHUNK_BYTES: usize = MAX_DATA_BYTES - 256;

/// Most iovecs one sendmsg or recvmsg takes (Linux's UIO_MAXIOV); more is EMSGSIZE.
const IOV_MAX: usize = 1024;

/// Receives into `buf` from simulated `fd`; the sender's address, if asked for, into `addr`.
///
/// # Safety
/// `buf` must be writable for `len` bytes; `addr` and `addr_len` as for [`addr_out`].
unsafe fn recv_into(
    what: &str,
    fd: c_int,
    buf: *mut u8,
    len: usize,
    flags: c_int,
    addr: *mut sockaddr,
    addr_len: *mut socklen_t,
) -> ssize_t {
    let want_addr = i64::from(!addr.is_null());
    let cap = len.min(MAX_CHUNK_BYTES) as i64;
    let req = Request::new(Op::Recv, &[fd.into(), cap, flags.into(), want_addr]);
    forward(what, req, |data| {
        let Ok((from, bytes)) = take_addr(data) else {
            state::die("selectlab's receive reply has no address block");
        };
        let n = bytes.len().min(len);
        if n > 0 {
            // SAFETY: the caller promises `len` writable bytes at `buf`; `0 < n ≤ len`.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, n) };
        }
        // SAFETY: the address arguments are the caller's.
        unsafe { addr_out(from, addr, addr_len) };
    }) as ssize_t
}

/// Sends `bytes` (to `addr`, if given) on simulated `fd`, in pieces of at most
/// [`MAX_CHUNK_BYTES`]: stops at the first short piece, and reports what went out before an
/// error. A send without MSG_NOSIGNAL that finds the connection gone, having sent nothing,
/// raises SIGPIPE, as Linux does (`sk_stream_error`; a send that took some bytes returns their
/// count instead, with neither the error nor the signal).
fn send_bytes(what: &str, fd: c_int, bytes: &[u8], flags: c_int, addr: &[u8]) -> ssize_t {
    let mut sent = 0usize;
    for piece in bytes.chunks(MAX_CHUNK_BYTES) {
        let mut data = Vec::with_capacity(piece.len() + addr.len() + 4);
        put_addr(&mut data, addr);
        data.extend_from_slice(piece);
        let req = Request::new(Op::Send, &[fd.into(), flags.into()]).with_data(data);
        let n = forward(what, req, |_| {});
        if n < 0 {
            // SAFETY: reads this thread's errno, which `forward` just set.
            let errno = unsafe { *libc::__errno_location() };
            if sent == 0 && errno == libc::EPIPE && flags & libc::MSG_NOSIGNAL == 0 {
                // SAFETY: raising a signal in the calling thread; its handler (or its default
                // action) is the program's, as with a real socket.
                unsafe { libc::raise(libc::SIGPIPE) };
                set_errno(errno);
            }
            return if sent > 0 { sent as ssize_t } else { -1 };
        }
        sent += n as usize;
        if (n as usize) < piece.len() {
            break;
        }
    }
    if bytes.is_empty() {
        // An empty send is still a call (a zero-length datagram is real).
        let mut data = Vec::new();
        put_addr(&mut data, addr);
        let req = Request::new(Op::Send, &[fd.into(), flags.into()]).with_data(data);
        return forward(what, req, |_| {}) as ssize_t;
    }
    sent as ssize_t
}

/// The bytes of a caller's buffer.
///
/// # Safety
/// `buf` must be readable for `len` bytes (or `len` 0).
unsafe fn bytes_of<'a>(buf: *const c_void, len: usize) -> &'a [u8] {
    if len == 0 || buf.is_null() {
        return &[];
    }
    // SAFETY: the caller's promise.
    unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) }
}

/// The iovecs of a vectored call, gathered.
///
/// # Safety
/// `iov` must point to `count` iovecs, each readable for its length.
unsafe fn gather(iov: *const iovec, count: c_int) -> Vec<u8> {
    let mut out = Vec::new();
    if iov.is_null() {
        return out;
    }
    for i in 0..count.max(0) as usize {
        // SAFETY: the caller promises `count` iovecs, each describing readable memory.
        unsafe {
            let v = &*iov.add(i);
            out.extend_from_slice(bytes_of(v.iov_base, v.iov_len));
        }
    }
    out
}

/// Receives into the iovecs of a vectored call.
///
/// # Safety
/// `iov` must point to `count` iovecs, each writable for its length; `addr` as for
/// [`addr_out`].
unsafe fn scatter_recv(
    what: &str,
    fd: c_int,
    iov: *const iovec,
    count: c_int,
    flags: c_int,
    addr: *mut sockaddr,
    addr_len: *mut socklen_t,
) -> ssize_t {
    let vecs = if iov.is_null() || count <= 0 {
        &[][..]
    } else {
        // SAFETY: the caller promises `count` iovecs at a non-null `iov`.
        unsafe { std::slice::from_raw_parts(iov, count as usize) }
    };
    let total = vecs.iter().fold(0usize, |t, v| t.saturating_add(v.iov_len));
    let mut buf = vec![0u8; total.min(MAX_CHUNK_BYTES)];
    // SAFETY: `buf` is ours; the address arguments are the caller's.
    let n = unsafe { recv_into(what, fd, buf.as_mut_ptr(), buf.len(), flags, addr, addr_len) };
    if n > 0 {
        let mut rest = &buf[..n as usize];
        for v in vecs
            .iter()
            .filter(|v| v.iov_len > 0 && !v.iov_base.is_null())
        {
            let k = rest.len().min(v.iov_len);
            // SAFETY: each iovec is writable for its length; `k` is no more.
            unsafe { std::ptr::copy_nonoverlapping(rest.as_ptr(), v.iov_base.cast::<u8>(), k) };
            rest = &rest[k..];
        }
    }
    n
}

/// read(2).
///
/// # Safety
/// `buf` must be writable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, len: size_t) -> ssize_t {
    if !is_sim(fd) {
        if entropy::reads_seeded(fd) {
            // SAFETY: the caller's promise about `buf`.
            return unsafe { entropy::seeded("read", buf, len) };
        }
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe { real!(read: fn(c_int, *mut c_void, size_t) -> ssize_t)(fd, buf, len) };
    }
    // SAFETY: the caller's promise, passed on.
    unsafe {
        recv_into(
            "read",
            fd,
            buf.cast(),
            len,
            0,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    }
}

/// write(2): on a simulated socket, a send without MSG_NOSIGNAL.
///
/// # Safety
/// `buf` must be readable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, len: size_t) -> ssize_t {
    if !is_sim(fd) {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe { real!(write: fn(c_int, *const c_void, size_t) -> ssize_t)(fd, buf, len) };
    }
    // SAFETY: the caller's promise.
    send_bytes("write", fd, unsafe { bytes_of(buf, len) }, 0, &[])
}

/// readv(2).
///
/// # Safety
/// `iov` must point to `count` writable iovecs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn readv(fd: c_int, iov: *const iovec, count: c_int) -> ssize_t {
    if !is_sim(fd) {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe { real!(readv: fn(c_int, *const iovec, c_int) -> ssize_t)(fd, iov, count) };
    }
    // SAFETY: the caller's promise, passed on.
    unsafe {
        scatter_recv(
            "readv",
            fd,
            iov,
            count,
            0,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    }
}

/// writev(2).
///
/// # Safety
/// `iov` must point to `count` readable iovecs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn writev(fd: c_int, iov: *const iovec, count: c_int) -> ssize_t {
    if !is_sim(fd) {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe { real!(writev: fn(c_int, *const iovec, c_int) -> ssize_t)(fd, iov, count) };
    }
    // SAFETY: the caller's promise.
    send_bytes("writev", fd, &unsafe { gather(iov, count) }, 0, &[])
}

/// recv(2).
///
/// # Safety
/// `buf` must be writable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn recv(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t {
    // SAFETY: the caller's promise, passed on.
    unsafe {
        recvfrom(
            fd,
            buf,
            len,
            flags,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    }
}

/// recvfrom(2).
///
/// # Safety
/// `buf` must be writable for `len` bytes; `addr` and `addr_len` null or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn recvfrom(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    addr_len: *mut socklen_t,
) -> ssize_t {
    if !is_sim(fd) {
        check_real(fd, "recv");
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe {
            real!(recvfrom: fn(c_int, *mut c_void, size_t, c_int, *mut sockaddr, *mut socklen_t) -> ssize_t)(
                fd, buf, len, flags, addr, addr_len,
            )
        };
    }
    // SAFETY: the caller's promise, passed on.
    unsafe { recv_into("recv", fd, buf.cast(), len, flags, addr, addr_len) }
}

/// send(2).
///
/// # Safety
/// `buf` must be readable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn send(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> ssize_t {
    // SAFETY: the caller's promise, passed on.
    unsafe { sendto(fd, buf, len, flags, std::ptr::null(), 0) }
}

/// sendto(2).
///
/// # Safety
/// `buf` must be readable for `len` bytes; `addr` null or readable for `addr_len`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sendto(
    fd: c_int,
    buf: *const c_void,
    len: size_t,
    flags: c_int,
    addr: *const sockaddr,
    addr_len: socklen_t,
) -> ssize_t {
    if !is_sim(fd) {
        check_real(fd, "send");
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe {
            real!(sendto: fn(c_int, *const c_void, size_t, c_int, *const sockaddr, socklen_t) -> ssize_t)(
                fd, buf, len, flags, addr, addr_len,
            )
        };
    }
    let to = if addr.is_null() {
        Vec::new()
    } else {
        // SAFETY: the caller's promise about `addr`.
        match unsafe { addr_in(addr, addr_len) } {
            Ok(a) => a,
            Err(e) => {
                set_errno(e);
                return -1;
            }
        }
    };
    // SAFETY: the caller's promise about `buf`.
    send_bytes("send", fd, unsafe { bytes_of(buf, len) }, flags, &to)
}

/// recvmsg(2): the data and the sender's address; no ancillary data comes back.
///
/// # Safety
/// `msg` must be a valid msghdr whose buffers are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t {
    if !is_sim(fd) {
        check_real(fd, "recvmsg");
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe { real!(recvmsg: fn(c_int, *mut msghdr, c_int) -> ssize_t)(fd, msg, flags) };
    }
    // SAFETY: the caller promises a valid msghdr.
    unsafe {
        let m = &mut *msg;
        if m.msg_iovlen > IOV_MAX {
            set_errno(libc::EMSGSIZE);
            return -1;
        }
        let n = scatter_recv(
            "recvmsg",
            fd,
            m.msg_iov,
            m.msg_iovlen as c_int,
            flags,
            m.msg_name.cast(),
            &mut m.msg_namelen,
        );
        m.msg_controllen = 0;
        m.msg_flags = 0;
        n
    }
}

/// sendmsg(2): the data, to the address if one is given. Ancillary data (descriptors,
/// credentials) is refused: the simulator does not carry it.
///
/// # Safety
/// `msg` must be a valid msghdr whose buffers are readable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    if !is_sim(fd) {
        check_real(fd, "sendmsg");
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe {
            real!(sendmsg: fn(c_int, *const msghdr, c_int) -> ssize_t)(fd, msg, flags)
        };
    }
    // SAFETY: the caller promises a valid msghdr.
    let m = unsafe { &*msg };
    if m.msg_controllen > 0 {
        refuse("sendmsg with ancillary data (SCM_RIGHTS, credentials) is not simulated");
    }
    if m.msg_iovlen > IOV_MAX {
        set_errno(libc::EMSGSIZE);
        return -1;
    }
    let to = if m.msg_name.is_null() {
        Vec::new()
    } else {
        // SAFETY: msg_name holds msg_namelen bytes.
        match unsafe { addr_in(m.msg_name.cast(), m.msg_namelen) } {
            Ok(a) => a,
            Err(e) => {
                set_errno(e);
                return -1;
            }
        }
    };
    // SAFETY: msg_iov holds msg_iovlen readable iovecs.
    let bytes = unsafe { gather(m.msg_iov, m.msg_iovlen as c_int) };
    send_bytes("sendmsg", fd, &bytes, flags, &to)
}

/// glibc's overflow report for the fortified entry points.
pub(crate) fn chk_fail() -> ! {
    // SAFETY: __chk_fail takes nothing and does not return.
    unsafe { real!(__chk_fail: fn() -> ())() };
    std::process::abort()
}

/// __read_chk: read(2) from a fortified build (`buf_len` is the buffer's known size).
///
/// # Safety
/// As for [`read`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __read_chk(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    buf_len: size_t,
) -> ssize_t {
    if len > buf_len {
        chk_fail();
    }
    // SAFETY: the caller's promise, passed on.
    unsafe { read(fd, buf, len) }
}

/// __recv_chk: recv(2) from a fortified build.
///
/// # Safety
/// As for [`recv`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __recv_chk(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    buf_len: size_t,
    flags: c_int,
) -> ssize_t {
    if len > buf_len {
        chk_fail();
    }
    // SAFETY: the caller's promise, passed on.
    unsafe { recv(fd, buf, len, flags) }
}

/// __recvfrom_chk: recvfrom(2) from a fortified build.
///
/// # Safety
/// As for [`recvfrom`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __recvfrom_chk(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    buf_len: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    addr_len: *mut socklen_t,
) -> ssize_t {
    if len > buf_len {
        chk_fail();
    }
    // SAFETY: the caller's promise, passed on.
    unsafe { recvfrom(fd, buf, len, flags, addr, addr_len) }
}
