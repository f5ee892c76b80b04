//! Socket calls: creation, naming, options, descriptor flags, close and dup.
//!
//! Each function here takes the simulator's path when its descriptor is simulated (or, for a
//! creating call, when the process runs in the simulator), and libc's otherwise.

use libc::{c_int, c_uint, c_ulong, c_void, sockaddr, socklen_t};
use selectlab_wire::{Op, Request};

use crate::real::real;
use crate::state::{
    self, Kind, Mode, adopt, forward, is_sim, mode, refuse, release, reserve, reserve_at, set_errno,
};

/// Largest address the shim passes on (`sizeof(struct sockaddr_storage)`).
const MAX_ADDR_BYTES: usize = 128;

/// Largest socket option value passed on (SO_LINGER's is 8 bytes; timeouts 16).
const MAX_OPTION_BYTES: usize = 64;

/// The bytes of a caller's address argument.
///
/// # Safety
/// `addr` must be null or point to `len` readable bytes.
pub(crate) unsafe fn addr_in(addr: *const sockaddr, len: socklen_t) -> Result<Vec<u8>, i32> {
    if addr.is_null() {
        return Err(libc::EFAULT);
    }
    if len as usize > MAX_ADDR_BYTES {
        return Err(libc::EINVAL);
    }
    // SAFETY: the caller promises `len` readable bytes at `addr`.
    Ok(unsafe { std::slice::from_raw_parts(addr.cast::<u8>(), len as usize) }.to_vec())
}

/// Copies an address out as the kernel does: truncated to the caller's buffer, with the full
/// length written back.
///
/// # Safety
/// `addr` and `len` must be null, or `len` readable and writable and `addr` writable for `*len`
/// bytes.
pub(crate) unsafe fn addr_out(bytes: &[u8], addr: *mut sockaddr, len: *mut socklen_t) {
    if addr.is_null() || len.is_null() {
        return;
    }
    // SAFETY: the caller promises `len` is valid and `addr` holds `*len` bytes.
    unsafe {
        let n = bytes.len().min(*len as usize);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), addr.cast::<u8>(), n);
        *len = bytes.len() as socklen_t;
    }
}

/// Whether `fd` is a real socket (getsockopt SO_TYPE succeeds only on sockets).
fn is_real_socket(fd: c_int) -> bool {
    let mut ty: c_int = 0;
    let mut len = size_of::<c_int>() as socklen_t;
    // SAFETY: `ty` and `len` are valid for the call's writes.
    let r = unsafe {
        libc::syscall(
            libc::SYS_getsockopt,
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            &mut ty as *mut c_int,
            &mut len as *mut socklen_t,
        )
    };
    r == 0
}

/// A socket call on a descriptor the simulator does not own: in the simulated program it must
/// not be a socket (one made by a raw syscall bypassed the shim); in a child process it is
/// refused outright.
pub(crate) fn check_real(fd: c_int, what: &str) {
    match mode() {
        Mode::Dormant => {}
        Mode::Descendant => state::owner_or_refuse(what),
        Mode::Owner => {
            if fd != state::channel_fd() && is_real_socket(fd) {
                refuse(&format!(
                    "{what} on descriptor {fd}, a real socket made without the shim (a raw \
                     syscall, or a statically linked library); its traffic would leave the \
                     simulator"
                ))
            }
        }
    }
}

/// The C convention for an int-returning call.
pub(crate) fn int(ret: i64) -> c_int {
    ret as c_int
}

/// Whether `fd` is an open real descriptor.
pub(crate) fn is_open_real(fd: c_int) -> bool {
    // SAFETY: F_GETFD reads a descriptor's flags; no memory is passed.
    unsafe { libc::syscall(libc::SYS_fcntl, fd, libc::F_GETFD) >= 0 }
}

/// A new simulated descriptor of `kind` from an operation with no payload (socket,
/// epoll_create1).
pub(crate) fn create_simulated(what: &str, op: Op, args: &[i64], kind: Kind) -> c_int {
    create(what, (op, kind), args, Vec::new(), |_| {})
}

/// Reserves one placeholder, asks for a descriptor there, and adopts or frees it.
fn create(
    what: &str,
    (op, kind): (Op, Kind),
    args: &[i64],
    data: Vec<u8>,
    out: impl FnOnce(&[u8]),
) -> c_int {
    state::owner_or_refuse(what);
    let fd = match reserve(None) {
        Ok(fd) => fd,
        Err(e) => {
            set_errno(e);
            return -1;
        }
    };
    let mut all = args.to_vec();
    all.push(i64::from(fd));
    let ret = forward(what, Request::new(op, &all).with_data(data), out);
    if ret < 0 {
        state::close_real(fd);
        return -1;
    }
    adopt(fd, kind);
    fd
}

/// socket(2): every socket the program makes is simulated.
#[unsafe(no_mangle)]
pub extern "C" fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    if !state::simulated_process() {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe { real!(socket: fn(c_int, c_int, c_int) -> c_int)(domain, ty, protocol) };
    }
    let args = [domain, ty, protocol].map(i64::from);
    create_simulated("socket", Op::Socket, &args, Kind::Socket)
}

/// socketpair(2): both ends simulated.
///
/// # Safety
/// `sv` must point to two writable ints.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn socketpair(
    domain: c_int,
    ty: c_int,
    protocol: c_int,
    sv: *mut c_int,
) -> c_int {
    if !state::simulated_process() {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe {
            real!(socketpair: fn(c_int, c_int, c_int, *mut c_int) -> c_int)(
                domain, ty, protocol, sv,
            )
        };
    }
    state::owner_or_refuse("socketpair");
    let (a, b) = match (reserve(None), reserve(None)) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => {
            for fd in [a, b].into_iter().flatten() {
                state::close_real(fd);
            }
            set_errno(libc::EMFILE);
            return -1;
        }
    };
    let args = [domain, ty, protocol, a, b].map(i64::from);
    if forward("socketpair", Request::new(Op::SocketPair, &args), |_| {}) < 0 {
        state::close_real(a);
        state::close_real(b);
        return -1;
    }
    adopt(a, Kind::Socket);
    adopt(b, Kind::Socket);
    // SAFETY: the caller promises two writable ints at `sv`.
    unsafe {
        *sv = a;
        *sv.add(1) = b;
    }
    0
}

/// Forwards a call that takes a descriptor and an address (bind, connect).
///
/// # Safety
/// As for [`addr_in`].
unsafe fn with_addr(what: &str, op: Op, fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    // SAFETY: passed on from the caller's promise.
    match unsafe { addr_in(addr, len) } {
        Ok(bytes) => int(forward(
            what,
            Request::new(op, &[fd.into()]).with_data(bytes),
            |_| {},
        )),
        Err(e) => {
            set_errno(e);
            -1
        }
    }
}

/// bind(2).
///
/// # Safety
/// `addr` must point to `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    if !is_sim(fd) {
        check_real(fd, "bind");
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe {
            real!(bind: fn(c_int, *const sockaddr, socklen_t) -> c_int)(fd, addr, len)
        };
    }
    // SAFETY: the caller's promise, passed on.
    unsafe { with_addr("bind", Op::Bind, fd, addr, len) }
}

/// connect(2). On a blocking socket selectlab waits (in virtual time) for the handshake.
///
/// # Safety
/// `addr` must point to `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    if !is_sim(fd) {
        check_real(fd, "connect");
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe {
            real!(connect: fn(c_int, *const sockaddr, socklen_t) -> c_int)(fd, addr, len)
        };
    }
    // SAFETY: the caller's promise, passed on.
    unsafe { with_addr("connect", Op::Connect, fd, addr, len) }
}

/// listen(2).
#[unsafe(no_mangle)]
pub extern "C" fn listen(fd: c_int, backlog: c_int) -> c_int {
    if !is_sim(fd) {
        check_real(fd, "listen");
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe { real!(listen: fn(c_int, c_int) -> c_int)(fd, backlog) };
    }
    int(forward(
        "listen",
        Request::new(Op::Listen, &[fd.into(), backlog.into()]),
        |_| {},
    ))
}

/// accept4(2): the new connection gets a placeholder and a simulated socket.
///
/// # Safety
/// `addr` and `len` as for getpeername.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn accept4(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    if !is_sim(fd) {
        check_real(fd, "accept");
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe {
            real!(accept4: fn(c_int, *mut sockaddr, *mut socklen_t, c_int) -> c_int)(
                fd, addr, len, flags,
            )
        };
    }
    let args = [fd, flags].map(i64::from);
    // SAFETY: the caller's promise about `addr` and `len`.
    create(
        "accept",
        (Op::Accept, Kind::Socket),
        &args,
        Vec::new(),
        |peer| unsafe { addr_out(peer, addr, len) },
    )
}

/// accept(2): accept4 with no flags.
///
/// # Safety
/// As for [`accept4`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: the caller's promise, passed on.
    unsafe { accept4(fd, addr, len, 0) }
}

/// shutdown(2).
#[unsafe(no_mangle)]
pub extern "C" fn shutdown(fd: c_int, how: c_int) -> c_int {
    if !is_sim(fd) {
        check_real(fd, "shutdown");
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe { real!(shutdown: fn(c_int, c_int) -> c_int)(fd, how) };
    }
    int(forward(
        "shutdown",
        Request::new(Op::Shutdown, &[fd.into(), how.into()]),
        |_| {},
    ))
}

/// close(2). The shim's own channel looks closed to the program (EBADF), so a program that
/// closes every descriptor it did not open keeps running in the simulator.
#[unsafe(no_mangle)]
pub extern "C" fn close(fd: c_int) -> c_int {
    if !is_sim(fd) {
        if state::simulated_process() && fd == state::channel_fd() {
            set_errno(libc::EBADF);
            return -1;
        }
        // SAFETY: the argument is the caller's, passed on unchanged.
        return unsafe { real!(close: fn(c_int) -> c_int)(fd) };
    }
    if state::forked_child() {
        // A forked child's simulated descriptors are copies of its parent's: closing one drops
        // the copy alone, as Linux's close drops one reference to the open file (Python's
        // subprocess closes every inherited descriptor before it execs). Only the real
        // placeholder goes: after a vfork the child shares its parent's memory, and with it
        // the record of simulated numbers, which must stay the parent's.
        state::close_real(fd);
        return 0;
    }
    let ret = forward("close", Request::new(Op::Close, &[fd.into()]), |_| {});
    // Linux frees the number even when close reports an error.
    release(fd);
    int(ret)
}

/// close_range(2): in the range, simulated descriptors are closed as [`close`] closes them
/// (unless the flags ask only for close-on-exec, which the placeholders carry), and the rest
/// by the kernel; the channel to selectlab is left open, as [`close`] leaves it.
#[unsafe(no_mangle)]
pub extern "C" fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    let known = (libc::CLOSE_RANGE_CLOEXEC | libc::CLOSE_RANGE_UNSHARE) as c_int;
    if first <= last && flags & !known == 0 && flags & libc::CLOSE_RANGE_CLOEXEC as c_int == 0 {
        for fd in state::sim_fds_in(first, last) {
            close(fd);
        }
    }
    let channel = state::channel_fd();
    let spared = state::simulated_process()
        && u32::try_from(channel).is_ok_and(|c| (first..=last).contains(&c));
    if !spared {
        return real_close_range(first, last, flags);
    }
    let channel = channel as c_uint;
    let below = (channel > first).then(|| real_close_range(first, channel - 1, flags));
    let above = (channel < last).then(|| real_close_range(channel + 1, last, flags));
    below
        .into_iter()
        .chain(above)
        .find(|&r| r != 0)
        .unwrap_or(0)
}

/// The kernel's close_range, by system call (glibc before 2.34 has no wrapper).
fn real_close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    // SAFETY: close_range takes three integers and touches no memory of ours.
    unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) as c_int }
}

/// closefrom(3): [`close_range`] from `low` up. Where the kernel has no close_range (before
/// Linux 5.9), each number up to the descriptor limit is closed in turn, as glibc falls back.
#[unsafe(no_mangle)]
pub extern "C" fn closefrom(low: c_int) {
    let low = low.max(0) as c_uint;
    if close_range(low, c_uint::MAX, 0) == 0 {
        return;
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    let top = limit.rlim_cur.min(MAX_CLOSEFROM_FALLBACK_FDS) as c_int;
    for fd in low as c_int..top {
        close(fd);
    }
}

/// Most descriptor numbers closefrom's fallback walks when the limit is larger (or infinite).
const MAX_CLOSEFROM_FALLBACK_FDS: u64 = 1 << 20;

/// Forwards getsockname or getpeername.
///
/// # Safety
/// As for [`addr_out`].
unsafe fn name(what: &str, op: Op, fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: the caller's promise about `addr` and `len`.
    int(forward(what, Request::new(op, &[fd.into()]), |a| unsafe {
        addr_out(a, addr, len)
    }))
}

/// getsockname(2).
///
/// # Safety
/// `len` must be valid and `addr` hold `*len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn getsockname(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    if !is_sim(fd) {
        check_real(fd, "getsockname");
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe {
            real!(getsockname: fn(c_int, *mut sockaddr, *mut socklen_t) -> c_int)(fd, addr, len)
        };
    }
    // SAFETY: the caller's promise, passed on.
    unsafe { name("getsockname", Op::SockName, fd, addr, len) }
}

/// getpeername(2).
///
/// # Safety
/// `len` must be valid and `addr` hold `*len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    if !is_sim(fd) {
        check_real(fd, "getpeername");
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe {
            real!(getpeername: fn(c_int, *mut sockaddr, *mut socklen_t) -> c_int)(fd, addr, len)
        };
    }
    // SAFETY: the caller's promise, passed on.
    unsafe { name("getpeername", Op::PeerName, fd, addr, len) }
}

/// getsockopt(2).
///
/// # Safety
/// `len` must be valid and `value` hold `*len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn getsockopt(
    fd: c_int,
    level: c_int,
    opt: c_int,
    value: *mut c_void,
    len: *mut socklen_t,
) -> c_int {
    if !is_sim(fd) {
        check_real(fd, "getsockopt");
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe {
            real!(getsockopt: fn(c_int, c_int, c_int, *mut c_void, *mut socklen_t) -> c_int)(
                fd, level, opt, value, len,
            )
        };
    }
    let req = Request::new(Op::GetSockOpt, &[fd, level, opt].map(i64::from));
    int(forward("getsockopt", req, |v| {
        if value.is_null() || len.is_null() {
            return;
        }
        // SAFETY: the caller promises `len` valid and `value` writable for `*len` bytes. Unlike
        // an address, an option's written length is what was copied (Linux: min(optlen, size)).
        unsafe {
            let n = v.len().min(*len as usize);
            std::ptr::copy_nonoverlapping(v.as_ptr(), value.cast::<u8>(), n);
            *len = n as socklen_t;
        }
    }))
}

/// setsockopt(2).
///
/// # Safety
/// `value` must point to `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn setsockopt(
    fd: c_int,
    level: c_int,
    opt: c_int,
    value: *const c_void,
    len: socklen_t,
) -> c_int {
    if !is_sim(fd) {
        check_real(fd, "setsockopt");
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe {
            real!(setsockopt: fn(c_int, c_int, c_int, *const c_void, socklen_t) -> c_int)(
                fd, level, opt, value, len,
            )
        };
    }
    if value.is_null() || len as usize > MAX_OPTION_BYTES {
        set_errno(if value.is_null() {
            libc::EFAULT
        } else {
            libc::EINVAL
        });
        return -1;
    }
    // SAFETY: the caller promises `len` readable bytes at `value`.
    let bytes = unsafe { std::slice::from_raw_parts(value.cast::<u8>(), len as usize) }.to_vec();
    let req = Request::new(Op::SetSockOpt, &[fd, level, opt].map(i64::from)).with_data(bytes);
    int(forward("setsockopt", req, |_| {}))
}

/// Duplicates simulated `fd` onto `new`, a number already reserved.
fn dup_onto(fd: c_int, new: c_int) -> c_int {
    if forward(
        "dup",
        Request::new(Op::Dup, &[fd.into(), new.into()]),
        |_| {},
    ) < 0
    {
        state::close_real(new);
        return -1;
    }
    adopt(new, state::kind_of(fd).unwrap_or(Kind::Socket));
    new
}

/// fcntl(2) on a simulated descriptor: F_GETFL and F_SETFL (O_NONBLOCK), F_GETFD and F_SETFD
/// (close-on-exec, kept on the placeholder by the real kernel), F_DUPFD and F_DUPFD_CLOEXEC.
/// Anything else is refused: the simulator would not know what it means.
///
/// The third argument is read as one machine word, which is how the x86-64 and AArch64 Linux
/// ABIs pass fcntl's optional int or pointer (stable Rust cannot define a C-variadic function).
///
/// # Safety
/// As for libc's fcntl with this command.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    let passthrough = || {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        unsafe { real!(fcntl: fn(c_int, c_int, c_ulong) -> c_int)(fd, cmd, arg) }
    };
    if !is_sim(fd) {
        return passthrough();
    }
    match cmd {
        libc::F_GETFD | libc::F_SETFD => passthrough(),
        libc::F_GETFL => int(forward(
            "fcntl",
            Request::new(Op::GetFlags, &[fd.into()]),
            |_| {},
        )),
        libc::F_SETFL => {
            let req = Request::new(Op::SetFlags, &[fd.into(), arg as i64]);
            int(forward("fcntl", req, |_| {}))
        }
        libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => {
            state::owner_or_refuse("fcntl");
            match reserve(Some(arg as c_int)) {
                Ok(new) => dup_onto(fd, new),
                Err(e) => {
                    set_errno(e);
                    -1
                }
            }
        }
        _ => refuse(&format!(
            "fcntl command {cmd} on simulated descriptor {fd} is not simulated"
        )),
    }
}

/// fcntl64: glibc's name for fcntl with 64-bit file offsets (the same for sockets).
///
/// # Safety
/// As for [`fcntl`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    if !is_sim(fd) {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe { real!(fcntl64: fn(c_int, c_int, c_ulong) -> c_int)(fd, cmd, arg) };
    }
    // SAFETY: the caller's promise, passed on.
    unsafe { fcntl(fd, cmd, arg) }
}

/// ioctl(2) on a simulated descriptor: FIONBIO (non-blocking on or off), FIONREAD (bytes
/// waiting), FIOCLEX and FIONCLEX (close-on-exec, on the placeholder). Others are refused.
/// The third argument is read as a machine word, as for [`fcntl`].
///
/// # Safety
/// `arg` must point to an int, as these requests require.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ioctl(fd: c_int, request: c_ulong, arg: *mut c_int) -> c_int {
    let passthrough = || {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        unsafe { real!(ioctl: fn(c_int, c_ulong, *mut c_int) -> c_int)(fd, request, arg) }
    };
    if !is_sim(fd) {
        return passthrough();
    }
    match request {
        libc::FIOCLEX | libc::FIONCLEX => passthrough(),
        libc::FIONBIO => {
            // SAFETY: FIONBIO's argument points to an int.
            let on = unsafe { *arg } != 0;
            let flags = if on { libc::O_NONBLOCK } else { 0 };
            let req = Request::new(Op::SetFlags, &[fd.into(), flags.into()]);
            int(forward("ioctl", req, |_| {}))
        }
        libc::FIONREAD => {
            let n = forward(
                "ioctl",
                Request::new(Op::BytesWaiting, &[fd.into()]),
                |_| {},
            );
            if n >= 0 {
                // SAFETY: FIONREAD's argument points to a writable int.
                unsafe { *arg = n as c_int };
            }
            if n < 0 { -1 } else { 0 }
        }
        _ => refuse(&format!(
            "ioctl request {request:#x} on simulated descriptor {fd} is not simulated"
        )),
    }
}

/// dup(2): the lowest free number, as Linux gives.
#[unsafe(no_mangle)]
pub extern "C" fn dup(fd: c_int) -> c_int {
    if !is_sim(fd) {
        // SAFETY: the argument is the caller's, passed on unchanged.
        return unsafe { real!(dup: fn(c_int) -> c_int)(fd) };
    }
    state::owner_or_refuse("dup");
    match reserve(None) {
        Ok(new) => dup_onto(fd, new),
        Err(e) => {
            set_errno(e);
            -1
        }
    }
}

/// dup3(2): `new` becomes a copy of `fd`, whichever of them is simulated.
#[unsafe(no_mangle)]
pub extern "C" fn dup3(fd: c_int, new: c_int, flags: c_int) -> c_int {
    if !is_sim(fd) && !is_sim(new) {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe { real!(dup3: fn(c_int, c_int, c_int) -> c_int)(fd, new, flags) };
    }
    if fd == new {
        set_errno(libc::EINVAL);
        return -1;
    }
    if !is_sim(fd) {
        // A real descriptor replaces a simulated one, which is closed first; but a bad `fd`
        // leaves `new` as it was, as Linux does.
        if !is_open_real(fd) {
            set_errno(libc::EBADF);
            return -1;
        }
        // In a forked child the real dup3 replaces the child's copy alone (a child setting up
        // its standard input before exec does this); the record of simulated numbers is left
        // as it is, as the parent's own after a vfork, whose memory the child shares.
        if !state::forked_child() {
            state::owner_or_refuse("dup2");
            forward("close", Request::new(Op::Close, &[new.into()]), |_| {});
            state::forget(new);
        }
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe { real!(dup3: fn(c_int, c_int, c_int) -> c_int)(fd, new, flags) };
    }
    state::owner_or_refuse("dup2");
    if !is_sim(new)
        && let Err(e) = reserve_at(new)
    {
        set_errno(e);
        return -1;
    }
    // Selectlab's dup closes a simulated `new` first, as dup2 does.
    state::forget(new);
    dup_onto(fd, new)
}

/// dup2(2): as dup3, except that `fd == new` returns `new` when `fd` is open.
#[unsafe(no_mangle)]
pub extern "C" fn dup2(fd: c_int, new: c_int) -> c_int {
    if !is_sim(fd) && !is_sim(new) {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe { real!(dup2: fn(c_int, c_int) -> c_int)(fd, new) };
    }
    if fd == new {
        return new;
    }
    dup3(fd, new, 0)
}
