//! The fork server: a program parked at a call (selectlab answered it with
//! [`PARK_ERRNO`](selectlab_wire::PARK_ERRNO)) forks on each order, and each child goes on from
//! that call as the program itself, on a channel of its own. So a check's many sessions start
//! from one start of the program, not one each.
//!
//! selectlab parks only a program with one thread (`fork` copies only the calling thread).

use selectlab_wire::{CHANNEL_FD_ENV, CHANNEL_PATH_ENV, Op, Reply, Request, STDERR_FILE};

use crate::state::{self, die};

/// Serves fork orders on `channel` until selectlab closes it (then the parked program exits).
/// Returns only in a child: the reply to the parked call, read on the child's own channel,
/// which has taken `channel`'s number.
pub(crate) fn serve(channel: i32, buf: &mut [u8]) -> Reply {
    loop {
        let n = state::receive(channel, buf);
        if n <= 0 {
            // SAFETY: _exit ends the process at once; selectlab is done with it.
            unsafe { libc::_exit(0) }
        }
        let order = match Reply::decode(&buf[..n as usize]) {
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
            return become_the_program(channel, own, &path, buf);
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
        }
        state::close_real(own);
    }
}

/// In the child: takes the new channel at the old one's number (the program's descriptors are
/// untouched), its standard error beside it, its own pid as the program's, then reads the reply
/// to the parked call.
fn become_the_program(channel: i32, own: i32, path: &str, buf: &mut [u8]) -> Reply {
    // SAFETY: integer arguments; a new group of its own (see `serve`).
    unsafe { libc::setpgid(0, 0) };
    // SAFETY: both descriptors are open and differ; the channel stays open across exec, as at
    // start. (A system call: the shim's own dup3 is the program's.)
    if unsafe { libc::syscall(libc::SYS_dup3, own, channel, 0) } < 0 {
        die("cannot take the forked program's channel");
    }
    state::close_real(own);
    redirect_stderr(path);
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
    let n = state::receive(channel, buf);
    if n <= 0 {
        // SAFETY: as in `serve`: selectlab ended the run before it began.
        unsafe { libc::_exit(125) }
    }
    Reply::decode(&buf[..n as usize])
        .unwrap_or_else(|e| die(&format!("selectlab's reply did not decode: {e}")))
}

/// Points descriptor 2 at [`STDERR_FILE`] beside the channel's socket at `path`.
fn redirect_stderr(path: &str) {
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
    // (Where descriptor 2 was closed, the file opens there and stays.)
    if let Some(fd) =
        state::open_beside(std::path::Path::new(path), STDERR_FILE, flags).filter(|&fd| fd != 2)
    {
        // SAFETY: both descriptors are open and differ; dup3 replaces the inherited standard
        // error.
        unsafe { libc::syscall(libc::SYS_dup3, fd, 2, 0) };
        state::close_real(fd);
    }
}

/// Sends selectlab `op` with one argument on `fd` (a channel it may have closed already).
fn tell(fd: i32, op: Op, arg: i64) {
    let mut msg = Vec::new();
    Request::new(op, &[arg]).encode(&mut msg);
    // SAFETY: the pointer and length describe `msg`; a failed send is selectlab gone.
    unsafe {
        libc::syscall(
            libc::SYS_sendto,
            fd,
            msg.as_ptr(),
            msg.len(),
            libc::MSG_NOSIGNAL,
            0,
            0,
        )
    };
}

/// Waits for child `pid` to end: its exit code, or 128 + the signal that killed it (-1 if it
/// cannot be waited for, as when the program ignores SIGCHLD).
fn exit_code_of(pid: libc::pid_t) -> i64 {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid int for the kernel to fill.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        if r < 0 && errno() != libc::EINTR {
            return -1;
        }
    }
    if libc::WIFEXITED(status) {
        i64::from(libc::WEXITSTATUS(status))
    } else {
        128 + i64::from(libc::WTERMSIG(status))
    }
}

fn errno() -> i32 {
    // SAFETY: reads this thread's errno.
    unsafe { *libc::__errno_location() }
}
