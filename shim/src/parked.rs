//! The fork server: a program parked at a call (selectlab answered it with
//! [`PARK_ERRNO`](selectlab_wire::PARK_ERRNO)) forks on each order, and each child goes on from
//! that call as the program itself, on a channel of its own. So a check's many sessions start
//! from one start of the program, not one each.
//!
//! selectlab parks only a program with one thread (`fork` copies only the calling thread).

use selectlab_slot::Slot;
use selectlab_wire::{CHANNEL_FD_ENV, CHANNEL_PATH_ENV, Op, Reply, Request, STDERR_FILE};

use crate::state::{self, die};

/// Most forks one parked program serves: far more than a check's sessions ask for.
const MAX_FORKS: u32 = 1 << 24;

/// Serves fork orders on `channel` until selectlab closes it (then the parked program exits),
/// one child at a time (selectlab runs one session at a time). Returns only in a child: the
/// reply to the parked call, read on the child's own channel, which has taken `channel`'s
/// number (with the slot it brings, in `slot`).
pub(crate) fn serve(channel: i32, buf: &mut [u8], slot: &mut Option<Slot>) -> Reply {
    let held = Held::hold();
    // The last child, ended but not reaped: its pid, and so its process group, stay taken
    // until the next order, by when selectlab has heard it ended and no longer signals it.
    let mut ended = None;
    for _ in 0..MAX_FORKS {
        let n = crate::channel::receive(channel, buf, &mut None);
        if let Some(pid) = ended.take() {
            reap(pid);
        }
        if n == 0 {
            // SAFETY: _exit ends the process at once; selectlab is done with it.
            unsafe { libc::_exit(0) }
        }
        let order = match Reply::decode(&buf[..n]) {
            Ok(order) if order.errno == selectlab_wire::PARK_ERRNO => order,
            _ => die("a parked program's order did not decode"),
        };
        let Ok(path) = String::from_utf8(order.data) else {
            die("a fork order's path is not UTF-8");
        };
        let own = crate::connect(&path);
        // SAFETY: selectlab parks a single-threaded program only, and fork copies the calling
        // thread: the child is the program as it stood at the parked call.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            held.restore();
            return become_the_program(channel, own, &path, buf, slot);
        }
        let told = if pid < 0 {
            -i64::from(errno())
        } else {
            i64::from(pid)
        };
        if pid > 0 {
            // Its own process group (set here as well as in the child, so that selectlab's
            // signal to the group finds it however the two race), stopped with all it starts.
            // SAFETY: integer arguments.
            unsafe { libc::setpgid(pid, pid) };
        }
        tell(channel, Op::Forked, told);
        if pid > 0 {
            tell(own, Op::Exited, exit_code_of(pid));
            ended = Some(pid);
        }
        state::close_real(own);
    }
    die("a parked program served its most forks (MAX_FORKS)")
}

/// The program's signal mask and SIGCHLD action, set aside while it serves forks: there every
/// signal is held (a handler of the program's that called into the shim would be refused, and
/// end the fork server), and SIGCHLD has its default action (ignored, a child's end could not
/// be waited for). Each child gets the program's own back.
struct Held {
    mask: libc::sigset_t,
    child_action: libc::sigaction,
}

impl Held {
    fn hold() -> Held {
        // SAFETY: all-zero sigset_t and sigaction are valid values of these plain C structs,
        // filled by the calls below before they are read.
        let (mut all, mut mask, mut child_action, mut default): (
            libc::sigset_t,
            libc::sigset_t,
            libc::sigaction,
            libc::sigaction,
        ) = unsafe { std::mem::zeroed() };
        default.sa_sigaction = libc::SIG_DFL;
        // SAFETY: each pointer is to a local of the right type, alive for the call.
        unsafe {
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut mask);
            libc::sigaction(libc::SIGCHLD, &default, &mut child_action);
        }
        Held { mask, child_action }
    }

    fn restore(&self) {
        // SAFETY: the values were filled by `hold`; a null old value is allowed.
        unsafe {
            libc::sigaction(libc::SIGCHLD, &self.child_action, std::ptr::null_mut());
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.mask, std::ptr::null_mut());
        }
    }
}

/// In the child: takes the new channel at the old one's number (the program's descriptors are
/// untouched), its standard error beside it, its own pid as the program's, then reads the reply
/// to the parked call.
fn become_the_program(
    channel: i32,
    own: i32,
    path: &str,
    buf: &mut [u8],
    slot: &mut Option<Slot>,
) -> Reply {
    // SAFETY: integer arguments; a new group of its own (see `serve`).
    unsafe { libc::setpgid(0, 0) };
    // SAFETY: both descriptors are open and differ; the channel stays open across exec, as at
    // start. (A system call: the shim's own dup3 is the program's.)
    if unsafe { libc::syscall(libc::SYS_dup3, own, channel, 0) } < 0 {
        die("cannot take the forked program's channel");
    }
    state::close_real(own);
    if let Some(parked) = std::env::var_os(CHANNEL_PATH_ENV) {
        redirect_stderr(std::path::Path::new(&parked), path);
    }
    // SAFETY: getpid and gettid take no arguments and cannot fail.
    let (pid, tid) = unsafe {
        (
            libc::syscall(libc::SYS_getpid) as i32,
            libc::syscall(libc::SYS_gettid) as i32,
        )
    };
    state::set_forked_owner(pid, tid);
    crate::exec::set_own(crate::OWNER_ENV, &pid.to_string());
    crate::exec::set_own(CHANNEL_PATH_ENV, path);
    crate::exec::capture(&[
        (CHANNEL_FD_ENV, channel.to_string()),
        (crate::OWNER_ENV, pid.to_string()),
        (CHANNEL_PATH_ENV, path.to_string()),
    ]);
    let n = crate::channel::receive(channel, buf, slot);
    if n == 0 {
        // SAFETY: as in `serve`: selectlab ended the run before it began.
        unsafe { libc::_exit(125) }
    }
    Reply::decode(&buf[..n])
        .unwrap_or_else(|e| die(&format!("selectlab's reply did not decode: {e}")))
}

/// Points descriptor 2 at [`STDERR_FILE`] beside the channel's socket at `path` (selectlab
/// copied there what the program wrote before it was parked), if descriptor 2 is still the one
/// selectlab gave it, beside the parked program's socket at `parked`: one it closed or replaced
/// is its own, and stays.
fn redirect_stderr(parked: &std::path::Path, path: &str) {
    let given = parked.with_file_name(STDERR_FILE);
    let (Some(now), Some(given)) = (file_id(2, c""), path_id(&given)) else {
        return;
    };
    if now != given {
        return;
    }
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND;
    if let Some(fd) = state::open_beside(std::path::Path::new(path), STDERR_FILE, flags) {
        // SAFETY: both descriptors are open and differ (2 is open); dup3 replaces it.
        unsafe { libc::syscall(libc::SYS_dup3, fd, 2, 0) };
        state::close_real(fd);
    }
}

/// The device and inode of the file at `path`.
fn path_id(path: &std::path::Path) -> Option<(u64, u64)> {
    let path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    file_id(libc::AT_FDCWD, &path)
}

/// The device and inode of descriptor `fd` (with an empty `path`), or of `path` from `fd`, by
/// system call (the shim's own stat calls are the program's).
fn file_id(fd: i32, path: &std::ffi::CStr) -> Option<(u64, u64)> {
    let flags = if path.is_empty() {
        libc::AT_EMPTY_PATH
    } else {
        0
    };
    // SAFETY: an all-zero `stat` is a valid value of the plain C struct the kernel fills.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a C string and `st` a writable stat, both alive for the call.
    let r = unsafe { libc::syscall(libc::SYS_newfstatat, fd, path.as_ptr(), &mut st, flags) };
    (r == 0).then_some((st.st_dev, st.st_ino))
}

/// Sends selectlab `op` with one argument on `fd` (a channel it may have closed already).
fn tell(fd: i32, op: Op, arg: i64) {
    let mut msg = Vec::new();
    Request::new(op, &[arg]).encode(&mut msg);
    // A failed send is selectlab gone.
    crate::channel::send(fd, &msg);
}

/// Most waits for a child interrupted before one returns.
const MAX_WAIT_TRIES: u32 = 1 << 16;

/// Waits for child `pid` to end, leaving it unreaped (see [`reap`]): its exit code, or 128 + the
/// signal that killed it (-1 if it cannot be waited for).
fn exit_code_of(pid: libc::pid_t) -> i64 {
    for _ in 0..MAX_WAIT_TRIES {
        // SAFETY: an all-zero siginfo_t is a valid value for the kernel to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let id = libc::id_t::try_from(pid).unwrap_or(0);
        let flags = libc::WEXITED | libc::WNOWAIT;
        // SAFETY: `info` is a writable siginfo_t alive for the call.
        if unsafe { libc::waitid(libc::P_PID, id, &mut info, flags) } == 0 {
            // SAFETY: waitid filled `info` for a child that ended (WEXITED).
            let status = i64::from(unsafe { info.si_status() });
            return match info.si_code {
                libc::CLD_EXITED => status,
                _ => 128 + status,
            };
        }
        if errno() != libc::EINTR {
            return -1;
        }
    }
    -1
}

/// Reaps child `pid`, which has ended.
fn reap(pid: libc::pid_t) {
    let mut status = 0;
    for _ in 0..MAX_WAIT_TRIES {
        // SAFETY: `status` is a valid int for the kernel to fill.
        if unsafe { libc::waitpid(pid, &mut status, 0) } >= 0 || errno() != libc::EINTR {
            return;
        }
    }
}

fn errno() -> i32 {
    // SAFETY: reads this thread's errno.
    unsafe { *libc::__errno_location() }
}
