//! Who may use the simulator, which descriptors are simulated, and the channel to selectlab.
//!
//! Every simulated descriptor has a *placeholder* in the real descriptor table: an `O_PATH`
//! open of `/dev/null`. The real kernel then hands out the lowest free number for it, exactly
//! the number Linux would give the socket, and files the program opens later never collide
//! with a simulated socket. A call that bypasses the shim and reaches the placeholder fails
//! (EBADF, ENOTSOCK) instead of touching the network.

use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicU64, Ordering::Relaxed};

use selectlab_wire::{Op, Request};

/// How this process relates to the simulator.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Mode {
    /// Loaded outside selectlab (no channel): every call goes to the real kernel.
    Dormant = 0,
    /// The program selectlab started (or what it exec'd into): calls go to the simulator.
    Owner = 1,
    /// A process the program started: it must not use the network at all.
    Descendant = 2,
}

static MODE: AtomicU8 = AtomicU8::new(Mode::Dormant as u8);
static OWNER_PID: AtomicI32 = AtomicI32::new(0);
static OWNER_TID: AtomicI32 = AtomicI32::new(0);
static CHANNEL_FD: AtomicI32 = AtomicI32::new(-1);
/// The owner thread's pthread handle: telling it apart costs no system call (see
/// [`surely_owner`]).
static OWNER_THREAD: AtomicU64 = AtomicU64::new(0);
/// Set in a child of `fork` (glibc runs pthread_atfork's child handlers there), which keeps
/// its parent's thread handle.
static FORKED: AtomicBool = AtomicBool::new(false);
static AFTER_FORK_HANDLER: Once = Once::new();

extern "C" fn after_fork_in_child() {
    FORKED.store(true, Relaxed);
}

/// Descriptors above this are never simulated (a placeholder there is refused).
pub(crate) const MAX_SIM_FD: i32 = 65_535;

/// What a simulated descriptor is, as fstat tells it (0 in [`KINDS`]: not simulated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    Socket = 1,
    /// A pipe (the simulated standard input).
    Fifo = 2,
    /// An epoll instance, an eventfd or a timerfd: Linux's one anonymous inode.
    AnonInode = 3,
}

/// Per descriptor number: the [`Kind`] of the simulated descriptor there, or 0.
static KINDS: [AtomicU8; MAX_SIM_FD as usize + 1] =
    [const { AtomicU8::new(0) }; MAX_SIM_FD as usize + 1];

pub(crate) fn mode() -> Mode {
    match MODE.load(Relaxed) {
        1 => Mode::Owner,
        2 => Mode::Descendant,
        _ => Mode::Dormant,
    }
}

pub(crate) fn set_owner(pid: i32, tid: i32, channel: i32) {
    OWNER_PID.store(pid, Relaxed);
    OWNER_TID.store(tid, Relaxed);
    // SAFETY: pthread_self takes no arguments and cannot fail.
    OWNER_THREAD.store(unsafe { libc::pthread_self() } as u64, Relaxed);
    AFTER_FORK_HANDLER.call_once(|| {
        // SAFETY: registers a handler that only stores to an atomic, safe in a forked child.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
    CHANNEL_FD.store(channel, Relaxed);
    MODE.store(Mode::Owner as u8, Relaxed);
}

/// In a child forked from the parked program (see `parked`): it is the program now, with its
/// own pid and thread id.
pub(crate) fn set_forked_owner(pid: i32, tid: i32) {
    OWNER_PID.store(pid, Relaxed);
    OWNER_TID.store(tid, Relaxed);
    FORKED.store(false, Relaxed);
}

pub(crate) fn set_descendant(channel: i32) {
    CHANNEL_FD.store(channel, Relaxed);
    MODE.store(Mode::Descendant as u8, Relaxed);
}

pub(crate) fn channel_fd() -> i32 {
    CHANNEL_FD.load(Relaxed)
}

/// Whether `fd` is a simulated descriptor.
pub(crate) fn is_sim(fd: i32) -> bool {
    kind_of(fd).is_some()
}

/// What simulated descriptor `fd` is; None when it is not one.
pub(crate) fn kind_of(fd: i32) -> Option<Kind> {
    let slot = KINDS.get(usize::try_from(fd).ok()?)?;
    match slot.load(Relaxed) {
        1 => Some(Kind::Socket),
        2 => Some(Kind::Fifo),
        3 => Some(Kind::AnonInode),
        _ => None,
    }
}

/// The simulated descriptors from `first` to `last` (both included), lowest first.
pub(crate) fn sim_fds_in(first: u32, last: u32) -> Vec<i32> {
    let last = last.min(MAX_SIM_FD as u32);
    (first..=last)
        .map(|fd| fd as i32)
        .filter(|&fd| is_sim(fd))
        .collect()
}

fn mark(fd: i32, kind: Option<Kind>) {
    if let Some(slot) = usize::try_from(fd).ok().and_then(|i| KINDS.get(i)) {
        slot.store(kind.map_or(0, |k| k as u8), Relaxed);
    }
}

/// Sets the calling thread's errno.
pub(crate) fn set_errno(e: i32) {
    // SAFETY: __errno_location returns the calling thread's errno slot, valid for the thread's
    // lifetime.
    unsafe { *libc::__errno_location() = e };
}

/// Writes `msg` to the real standard error (raw syscall: no shim, no buffering).
fn say(msg: &str) {
    let line = format!("selectlab shim: {msg}\n");
    // SAFETY: the pointer and length describe `line`, alive for the call.
    unsafe { libc::syscall(libc::SYS_write, 2, line.as_ptr(), line.len()) };
}

/// The shim cannot go on (its own trouble, not the program's): says why and exits.
pub(crate) fn die(msg: &str) -> ! {
    say(msg);
    // SAFETY: _exit ends the process at once; nothing of ours needs unwinding.
    unsafe { libc::_exit(125) }
}

/// Refuses to run the program further, because what it did cannot be simulated faithfully:
/// tells selectlab why (which reports it), over the channel, or through the refusal file beside
/// the channel's socket when the channel is gone; says it on standard error too then, and exits.
pub(crate) fn refuse(why: &str) -> ! {
    let mut msg = Vec::new();
    Request::new(Op::Refuse, &[])
        .with_data(why.as_bytes().to_vec())
        .encode(&mut msg);
    let fd = channel_fd();
    let told = fd >= 0 && crate::channel::send(fd, &msg);
    if !told {
        leave_refusal(why);
        say(&format!("refused: {why}"));
    }
    // SAFETY: as in `die`.
    unsafe { libc::_exit(125) }
}

/// Writes `why` to the refusal file, unless another process wrote it first.
fn leave_refusal(why: &str) {
    let Some(socket) = std::env::var_os(selectlab_wire::CHANNEL_PATH_ENV) else {
        return;
    };
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC;
    if let Some(fd) = open_beside(
        std::path::Path::new(&socket),
        selectlab_wire::REFUSAL_FILE,
        flags,
    ) {
        // SAFETY: the pointer and length describe `why`; the descriptor is ours to close.
        unsafe {
            libc::syscall(libc::SYS_write, fd, why.as_ptr(), why.len());
            libc::syscall(libc::SYS_close, fd);
        }
    }
}

/// Opens the file `name` beside the channel's socket at `socket` with `flags` (mode 0600 if it
/// makes it), by system call: the shim's own `open` is the program's.
pub(crate) fn open_beside(socket: &std::path::Path, name: &str, flags: i32) -> Option<i32> {
    let path = socket.with_file_name(name);
    let path = std::ffi::CString::new(path.into_os_string().into_encoded_bytes()).ok()?;
    // SAFETY: `path` is a C string; the call opens a file or fails.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            path.as_ptr(),
            flags,
            0o600,
        )
    };
    (fd >= 0).then_some(fd as i32)
}

fn pid_tid() -> (i32, i32) {
    // SAFETY: getpid and gettid take no arguments and cannot fail.
    unsafe {
        (
            libc::syscall(libc::SYS_getpid) as i32,
            libc::syscall(libc::SYS_gettid) as i32,
        )
    }
}

/// Whether the caller is the program selectlab runs, on its one thread (known without a system
/// call on that thread, see [`surely_owner`]). A simulated descriptor used from anywhere else
/// is refused: a second thread or a forked child would make the run depend on the real
/// scheduler.
pub(crate) fn owner_or_refuse(what: &str) {
    if surely_owner() {
        return;
    }
    let (pid, tid) = pid_tid();
    match mode() {
        Mode::Owner if pid != OWNER_PID.load(Relaxed) => refuse(&format!(
            "a forked child (pid {pid}) called {what}; only the program selectlab started runs \
             in the simulator"
        )),
        Mode::Owner if tid != OWNER_TID.load(Relaxed) => refuse(&format!(
            "a second thread (tid {tid}) called {what}; a simulated program must be \
             single-threaded, or its run would depend on the real scheduler (an async \
             runtime on one thread runs: tokio's current_thread runtime, for one)"
        )),
        Mode::Descendant => refuse(&format!(
            "a child process (pid {pid}) called {what}; only the program selectlab started \
             runs in the simulator"
        )),
        _ => {}
    }
}

/// Whether the caller is surely the program on its one thread, known without a system call:
/// the owner's thread handle, in a process that has not forked since. `false` means only
/// "ask [`owner_or_refuse`]", which decides with getpid and gettid. (A `vfork` child shares its
/// parent's memory and handle until it execs, and is taken for the owner here: it may only
/// exec or exit.)
pub(crate) fn surely_owner() -> bool {
    mode() == Mode::Owner
        && !FORKED.load(Relaxed)
        // SAFETY: pthread_self takes no arguments and cannot fail.
        && unsafe { libc::pthread_self() } as u64 == OWNER_THREAD.load(Relaxed)
}

/// Whether this process is a fork of the one that became the owner, known without a system
/// call (a fork server's child is the owner again, see [`set_forked_owner`]).
pub(crate) fn is_a_fork() -> bool {
    FORKED.load(Relaxed)
}

/// Whether the caller is a forked child of the program (sharing its simulated descriptors'
/// numbers, copies of its parent's, until it execs).
pub(crate) fn forked_child() -> bool {
    mode() == Mode::Owner && pid_tid().0 != OWNER_PID.load(Relaxed)
}

/// Whether the caller is the program itself (not a forked child or a descendant).
pub(crate) fn the_program() -> bool {
    mode() == Mode::Owner && !forked_child()
}

/// Whether calls of the caller go to the simulator: the owner's do (after the checks of
/// [`owner_or_refuse`]); a descendant's socket calls are refused there too.
pub(crate) fn simulated_process() -> bool {
    mode() != Mode::Dormant
}

/// Forwards a call on the owner's behalf and turns the reply into the C convention: the result,
/// or -1 with errno set. The reply's data is handed to `data`.
pub(crate) fn forward(what: &str, req: Request, data: impl FnOnce(&[u8])) -> i64 {
    owner_or_refuse(what);
    let reply = crate::channel::call(&req);
    if reply.ret < 0 {
        set_errno(reply.errno);
        return -1;
    }
    data(&reply.data);
    reply.ret
}

/// Reserves a real descriptor number for a new simulated one: the lowest free (or the lowest
/// free ≥ `min`).
pub(crate) fn reserve(min: Option<i32>) -> Result<i32, i32> {
    // SAFETY: the path is a NUL-terminated constant; the flags ask for a descriptor that
    // refers to nothing readable or writable.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            c"/dev/null".as_ptr(),
            libc::O_PATH | libc::O_CLOEXEC,
        )
    } as i32;
    if fd < 0 {
        // SAFETY: reads this thread's errno.
        return Err(unsafe { *libc::__errno_location() });
    }
    let fd = match min {
        Some(min) if fd < min => {
            // SAFETY: fd is ours; F_DUPFD_CLOEXEC with an integer argument.
            let moved = unsafe { libc::syscall(libc::SYS_fcntl, fd, libc::F_DUPFD_CLOEXEC, min) };
            close_real(fd);
            if moved < 0 {
                // SAFETY: reads this thread's errno.
                return Err(unsafe { *libc::__errno_location() });
            }
            moved as i32
        }
        _ => fd,
    };
    if fd > MAX_SIM_FD {
        close_real(fd);
        refuse(&format!(
            "descriptor {fd} is past the simulated range (0..={MAX_SIM_FD})"
        ));
    }
    Ok(fd)
}

/// Makes `fd` (a number the program chose, as for dup2) a placeholder.
pub(crate) fn reserve_at(fd: i32) -> Result<(), i32> {
    if !(0..=MAX_SIM_FD).contains(&fd) {
        return Err(libc::EBADF);
    }
    let placeholder = reserve(None)?;
    if placeholder != fd {
        // SAFETY: both descriptors are valid numbers; dup3 replaces whatever `fd` was.
        let r = unsafe { libc::syscall(libc::SYS_dup3, placeholder, fd, libc::O_CLOEXEC) };
        close_real(placeholder);
        if r < 0 {
            // SAFETY: reads this thread's errno.
            return Err(unsafe { *libc::__errno_location() });
        }
    }
    Ok(())
}

/// Closes a real descriptor (a placeholder) without the shim.
pub(crate) fn close_real(fd: i32) {
    // SAFETY: closing a descriptor number has no memory effects.
    unsafe { libc::syscall(libc::SYS_close, fd) };
}

/// A placeholder became a simulated descriptor of this kind.
pub(crate) fn adopt(fd: i32, kind: Kind) {
    mark(fd, Some(kind));
}

/// A simulated descriptor is gone: free its number.
pub(crate) fn release(fd: i32) {
    mark(fd, None);
    close_real(fd);
}

/// Forgets that `fd` is simulated without closing it (dup2 replaced it).
pub(crate) fn forget(fd: i32) {
    mark(fd, None);
}
