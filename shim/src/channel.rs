//! The calls to selectlab: each request out, and its reply back.
//!
//! The first call (the hello, or the first after an exec) crosses the channel's socket, and its
//! reply brings the shared-memory slot (`selectlab-slot`) as a descriptor: later calls cross
//! there, with no system call while both sides run. A side that finds the other asleep on the
//! slot rings a [`BELL`] on the socket. A fork of the program does not use the slot its parent
//! uses: it speaks on the socket, as a process without one.

use std::os::fd::BorrowedFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use selectlab_slot::{Bell, Slot};
use selectlab_wire::{
    BELL, MAX_MESSAGE_BYTES, PARK_ERRNO, Reply, Request, SPIN_LOOKS, SPIN_YIELDS,
};

use crate::state::{self, die};

/// The virtual time of selectlab's last reply (ns on the monotonic clock; -1 before the
/// first): what every simulated clock reads, plus its offset, until the program's next call.
static VIRTUAL_NOW_NS: AtomicI64 = AtomicI64::new(-1);

/// The virtual time of selectlab's last reply, if there was one (see [`Reply::now_ns`]).
pub(crate) fn virtual_now_ns() -> Option<i64> {
    Some(VIRTUAL_NOW_NS.load(Relaxed)).filter(|ns| *ns >= 0)
}

/// The channel's buffers, reused by every call (calls come from one thread): what is sent,
/// and what comes back (kept at its full size, so it is not cleared on every call); and the
/// slot, once selectlab has sent it.
struct Link {
    out: Vec<u8>,
    into: Vec<u8>,
    slot: Option<Slot>,
}

static LINK: Mutex<Link> = Mutex::new(Link {
    out: Vec::new(),
    into: Vec::new(),
    slot: None,
});

/// Sends `req` to selectlab and waits for its reply. The caller's errno is left as it was (a
/// successful libc call does not touch it). A call made while another is in flight on this
/// thread (from a signal handler) is refused: waiting for the channel would deadlock.
pub(crate) fn call(req: &Request) -> Reply {
    // SAFETY: reads this thread's errno.
    let saved_errno = unsafe { *libc::__errno_location() };
    let fd = state::channel_fd();
    let mut guard = match LINK.try_lock() {
        Ok(guard) => guard,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => state::refuse(
            "a signal handler called into the simulator while a call was in flight; \
             signals are not simulated",
        ),
    };
    let link = &mut *guard;
    link.out.clear();
    req.encode(&mut link.out);
    if link.into.len() < MAX_MESSAGE_BYTES {
        link.into.resize(MAX_MESSAGE_BYTES, 0);
    }
    let got = match link.slot.as_ref().filter(|_| !state::is_a_fork()) {
        Some(slot) => through_slot(fd, slot, &link.out, &mut link.into),
        None => through_socket(fd, &link.out, &mut link.into, &mut link.slot),
    };
    let reply = match Reply::decode(&link.into[..got]) {
        Ok(reply) if reply.errno == PARK_ERRNO => {
            // The slot was this start's: the parked program's orders cross the socket, and
            // each child gets a slot of its own.
            link.slot = None;
            crate::parked::serve(fd, &mut link.into, &mut link.slot)
        }
        Ok(reply) => reply,
        Err(e) => die(&format!("selectlab's reply did not decode: {e}")),
    };
    VIRTUAL_NOW_NS.store(reply.now_ns, Relaxed);
    state::set_errno(saved_errno);
    reply
}

/// Posts `out` in the slot and waits there for the reply, copied into `into`: its length.
fn through_slot(fd: i32, slot: &Slot, out: &[u8], into: &mut [u8]) -> usize {
    let replies = slot.replies();
    let seen = replies.seq();
    if slot.requests().post(out) == Bell::Ring {
        ring(fd);
    }
    if !replies.wait(seen, SPIN_LOOKS, SPIN_YIELDS) {
        sleep_until_rung(fd, replies, seen);
    }
    replies
        .read(into)
        .unwrap_or_else(|| die("selectlab's reply is longer than the slot"))
}

/// Sleeps on the socket until the reply newer than `seen` is in the slot. Only bells come on
/// the socket meanwhile; its end means selectlab ended the run (it kills the program too).
fn sleep_until_rung(fd: i32, replies: selectlab_slot::Mailbox<'_>, seen: u32) {
    loop {
        let doze = replies.doze();
        if doze.arrived(seen) {
            return;
        }
        let mut bell = [0u8; 8];
        // SAFETY: the pointer and capacity describe `bell`, which the kernel fills.
        let n = unsafe { libc::syscall(libc::SYS_recvfrom, fd, bell.as_mut_ptr(), 8, 0, 0, 0) };
        match n {
            1 if bell[0] == BELL[0] => {}
            // SAFETY: reads this thread's errno.
            _ if n < 0 && unsafe { *libc::__errno_location() } == libc::EINTR => {}
            n if n <= 0 => {
                // SAFETY: _exit ends the process at once; selectlab is gone.
                unsafe { libc::_exit(125) }
            }
            _ => die("selectlab spoke on the socket while the slot was in use"),
        }
    }
}

/// Rings the bell on the socket: selectlab sleeps. (A failed send is selectlab gone, which
/// the wait for the reply finds.)
fn ring(fd: i32) {
    send(fd, &BELL);
}

/// Sends one message on the channel's socket `fd` by system call (the shim's own `send` is the
/// program's), never raising SIGPIPE: whether it went.
pub(crate) fn send(fd: i32, message: &[u8]) -> bool {
    // SAFETY: the pointer and length describe `message`, alive for the call.
    let sent = unsafe {
        libc::syscall(
            libc::SYS_sendto,
            fd,
            message.as_ptr(),
            message.len(),
            libc::MSG_NOSIGNAL,
            0,
            0,
        )
    };
    sent >= 0
}

/// Sends `out` on the socket and receives the reply into `into` (and the slot it brings, if
/// it brings one, into `slot`): its length.
fn through_socket(fd: i32, out: &[u8], into: &mut [u8], slot: &mut Option<Slot>) -> usize {
    if !send(fd, out) {
        die("lost the channel to selectlab");
    }
    match receive(fd, into, slot) {
        0 => {
            // selectlab ended the run (it kills the program too); nothing more to do.
            // SAFETY: as in `die`.
            unsafe { libc::_exit(125) }
        }
        n => n,
    }
}

/// Receives one message on the socket into `buf`, bells skipped: a few non-blocking tries
/// first (the reply is usually microseconds away), then a blocking receive. A slot that comes
/// with it replaces `slot`. Its length; 0 when selectlab is gone.
pub(crate) fn receive(fd: i32, buf: &mut [u8], slot: &mut Option<Slot>) -> usize {
    // SAFETY: the channel's descriptor stays open for the process's life (the shim never
    // closes it), so borrowing it for this call is sound.
    let socket = unsafe { BorrowedFd::borrow_raw(fd) };
    let mut tries = 0;
    loop {
        let flags = if tries < SPIN_YIELDS {
            RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC
        } else {
            RecvFlags::CMSG_CLOEXEC
        };
        tries = tries.saturating_add(1);
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [std::io::IoSliceMut::new(buf)];
        match rustix::net::recvmsg(socket, &mut iov, &mut control, flags) {
            Ok(got) if got.bytes == BELL.len() && buf[0] == BELL[0] => {}
            Ok(got) => {
                for message in control.drain() {
                    if let RecvAncillaryMessage::ScmRights(fds) = message {
                        for fd in fds {
                            *slot = Some(Slot::map(&fd).unwrap_or_else(|e| {
                                die(&format!("cannot map selectlab's slot: {e}"))
                            }));
                        }
                    }
                }
                return got.bytes;
            }
            // Give the core to selectlab if it is waiting for one (a busy machine).
            Err(rustix::io::Errno::AGAIN) => std::thread::yield_now(),
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return 0,
        }
    }
}
