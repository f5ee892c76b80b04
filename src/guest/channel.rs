//! The channel to a program's shim: its calls in, selectlab's replies out.
//!
//! The shim connects to a SOCK_SEQPACKET socket and says hello there. The reply brings a
//! shared-memory slot (`selectlab-slot`) as an `SCM_RIGHTS` descriptor. From then on a call
//! and its reply cross in the slot, where each side spins while the other runs, and a side that
//! found the other asleep rings a [`BELL`] on the socket. The socket still carries what comes
//! from a process without the slot: the first call after an exec (whose reply brings the slot
//! again), a refusal from a second thread or a child, and the fork server's word.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::io::Errno;
use rustix::net::{self as rn, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use selectlab_slot::{Bell, Slot};
use selectlab_wire::{
    BELL, MAX_MESSAGE_BYTES, Op, PARK_ERRNO, Reply, Request, SPIN_LOOKS, SPIN_YIELDS,
};

use super::replay::{Recording, Replay};
use super::spawn::{Process, SpawnError};

/// How long (real time) a program may compute without making a call selectlab answers.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(60);

/// How often (real time) a wait for the program's next call checks whether it has exited.
const EXIT_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Most stale bells read in a row before a message (each wakes a side that had already looked
/// again; one or two at a time, never this many).
const MAX_STALE_BELLS: usize = 64;

/// The connected channel to the program's shim.
pub struct Channel {
    fd: OwnedFd,
    /// What came last (kept at its full size, so a receive never has to grow it).
    buf: Vec<u8>,
    /// What goes out, reused from reply to reply.
    out: Vec<u8>,
    script: Script,
    /// Where calls cross; gone once the program is parked (the fork server's orders cross the
    /// socket).
    slot: Option<SlotEnd>,
    /// Whether the last request came on the socket: its reply goes there too (with the slot,
    /// which a process that has just started or exec'd lacks).
    on_socket: bool,
}

/// selectlab's end of the slot.
struct SlotEnd {
    slot: Slot,
    /// The descriptor the shim maps it by.
    fd: OwnedFd,
    /// The sequence number of the last request taken.
    seen: u32,
}

/// What a channel does with the program's start (see [`super::replay`]).
enum Script {
    /// Nothing: every message crosses.
    Live,
    /// Notes each call and reply until the first listen.
    Recording(Recording),
    /// Plays a recorded start (the program, forked at its listen, made those calls already),
    /// then goes live.
    Replaying(Replay),
}

impl Channel {
    /// The channel on a shim's connection `fd`, with a fresh slot for it.
    pub(crate) fn new(fd: OwnedFd) -> Result<Channel, SpawnError> {
        let (slot, slot_fd) = Slot::create(MAX_MESSAGE_BYTES)
            .map_err(|e| SpawnError::Unfit(format!("the shared-memory channel: {e}")))?;
        Ok(Channel {
            fd,
            buf: vec![0; MAX_MESSAGE_BYTES + 1],
            out: Vec::new(),
            script: Script::Live,
            slot: Some(SlotEnd {
                seen: slot.requests().seq(),
                slot,
                fd: slot_fd,
            }),
            on_socket: true,
        })
    }

    /// The program's next request; None when the program (and every process holding its end)
    /// has exited. Waits at most [`SILENCE_LIMIT`] of real time.
    /// `process`, if given, is the program at the other end: once it has exited, the channel
    /// counts as closed.
    pub fn next_request(
        &mut self,
        mut process: Option<&mut Process>,
    ) -> Result<Option<Request>, SpawnError> {
        if let Script::Replaying(replay) = &mut self.script {
            if let Some(req) = replay.next() {
                return Ok(Some(req));
            }
            if replay.diverged() {
                return Err(SpawnError::Unfit(
                    "its start went otherwise than the recorded one".to_string(),
                ));
            }
            self.script = Script::Live;
        }
        let n = match self.receive(process.as_deref_mut())? {
            0 => return Ok(None),
            n => n,
        };
        let req = Request::decode(&self.buf[..n])
            .map_err(|e| SpawnError::Unfit(format!("the shim sent {e}")))?;
        if req.op == Op::Exited {
            // A forked program has gone; its parent says how.
            if let Some(process) = process {
                process.ended(i32::try_from(req.args[0]).unwrap_or(-1));
            }
            return Ok(None);
        }
        if let Script::Recording(recording) = &mut self.script
            && recording.asked(&req)
        {
            self.script = Script::Live;
        }
        Ok(Some(req))
    }

    /// The shim's first message, its hello.
    pub fn hello(&mut self) -> Result<Request, SpawnError> {
        self.next_request(None)?
            .filter(|r| r.op == Op::Hello)
            .ok_or_else(|| SpawnError::Unfit("a shim connected without saying hello".to_string()))
    }

    /// Records the program's start from its next request on (see [`super::replay`]).
    pub(crate) fn record(&mut self, recording: Recording) {
        self.script = Script::Recording(recording);
    }

    /// Replays a recorded start as the program's first requests.
    pub(crate) fn replay(&mut self, replay: Replay) {
        self.script = Script::Replaying(replay);
    }

    /// Parks the program at its pending call: it becomes a fork server (see
    /// [`selectlab_wire::PARK_ERRNO`]), whose orders and answers cross the socket.
    pub(crate) fn park(&mut self) {
        self.send(&Reply::err(PARK_ERRNO));
        self.slot = None;
        self.on_socket = true;
    }

    /// Orders a parked program to fork a child that connects at `path`: the child's pid.
    pub(crate) fn order_fork(&mut self, path: &Path) -> Result<u32, SpawnError> {
        let order = Reply::err(PARK_ERRNO).with_data(path.as_os_str().as_encoded_bytes().to_vec());
        self.send(&order);
        let told = self
            .next_request(None)?
            .filter(|r| r.op == Op::Forked)
            .ok_or_else(|| SpawnError::Unfit("the parked program did not fork".to_string()))?;
        // A pid, or fork's error as -errno; anything else is no answer of the shim's.
        match told.args[0] {
            pid if pid > 0 => u32::try_from(pid).map_err(|_| unfit_fork(pid)),
            err if (-4095..0).contains(&err) => Err(SpawnError::Channel(
                "fork",
                Errno::from_raw_os_error(-(err as i32)),
            )),
            other => Err(unfit_fork(other)),
        }
    }

    /// One message's length in `buf` (0: the other side is gone): looked for in the slot a
    /// while, then waited for (the slot, or the socket) at most [`SILENCE_LIMIT`].
    fn receive(&mut self, mut process: Option<&mut Process>) -> Result<usize, SpawnError> {
        if let Some(end) = &self.slot {
            if end.slot.requests().wait(end.seen, SPIN_LOOKS, SPIN_YIELDS) {
                return self.take_from_slot();
            }
        } else {
            for _ in 0..SPIN_YIELDS {
                match self.recv_now() {
                    Ok(n) => return Ok(n),
                    // Give the core to the program if it is waiting for one (a busy machine).
                    Err(Errno::AGAIN | Errno::INTR) => std::thread::yield_now(),
                    Err(e) => return Err(SpawnError::Channel("reading the program's call", e)),
                }
            }
        }
        // Waits in slices, so that a program that has exited is seen as gone even while a child
        // it left running still holds its end of the channel.
        let started = Instant::now();
        loop {
            let doze = self
                .slot
                .as_ref()
                .map(|end| (end.slot.requests().doze(), end.seen));
            if doze
                .as_ref()
                .is_some_and(|(doze, seen)| doze.arrived(*seen))
            {
                drop(doze);
                return self.take_from_slot();
            }
            let rung = readable(&self.fd, EXIT_CHECK_INTERVAL)
                .map_err(|e| SpawnError::Channel("waiting for the program", e))?;
            drop(doze);
            if rung {
                match self.recv_now() {
                    // A bell: the request is in the slot (or it was, and a stale bell rang).
                    Err(Errno::AGAIN) => continue,
                    Ok(n) => return Ok(n),
                    Err(e) => return Err(SpawnError::Channel("reading the program's call", e)),
                }
            }
            if process.as_deref_mut().is_some_and(Process::has_exited) {
                // Its last message (a refusal sent just before it exited) may have come after
                // the wait above gave up: it is read, not lost.
                return Ok(self.recv_now().unwrap_or(0));
            }
            if started.elapsed() >= SILENCE_LIMIT {
                return Err(SpawnError::Unfit(format!(
                    "the program made no call for {} s of real time (computing, or blocked \
                     outside the simulator)",
                    SILENCE_LIMIT.as_secs()
                )));
            }
        }
    }

    /// Copies the request waiting in the slot into `buf`: its length.
    fn take_from_slot(&mut self) -> Result<usize, SpawnError> {
        let end = self.slot.as_mut().expect("a request in the slot");
        let requests = end.slot.requests();
        end.seen = requests.seq();
        self.on_socket = false;
        requests
            .read(&mut self.buf)
            .ok_or_else(|| SpawnError::Unfit("the program wrote past its channel's slot".into()))
    }

    /// One message from the socket without waiting, bells skipped (0: the other side is gone;
    /// EAGAIN: none but bells). A program that exits with a reply unread leaves ECONNRESET
    /// pending on this end (unix_release_sock), and Linux reports it before any message still
    /// queued: the refusal a second thread sent just before the exit, say. The error is
    /// reported once, so the queue is read again after it.
    fn recv_now(&mut self) -> Result<usize, Errno> {
        let mut reset = false;
        for _ in 0..MAX_STALE_BELLS {
            match rn::recv(&self.fd, &mut self.buf[..], RecvFlags::DONTWAIT) {
                Ok((n, _)) if self.buf[..n] == BELL => {}
                Ok((n, _)) => {
                    self.on_socket = true;
                    return Ok(n);
                }
                Err(Errno::CONNRESET) if !reset => reset = true,
                Err(Errno::AGAIN | Errno::CONNRESET) if reset => return Ok(0),
                Err(e) => return Err(e),
            }
        }
        Err(Errno::AGAIN)
    }

    /// Sends the reply to the program's last request (stamped with the virtual time, see
    /// [`Reply::now_ns`]). A program that is gone is no error here:
    /// the next [`Channel::next_request`] finds it gone. While a start is replayed, a reply
    /// the program had already is compared with the recorded one, not sent.
    pub fn reply(&mut self, reply: &Reply) {
        match &mut self.script {
            Script::Replaying(replay) if replay.owes() => return replay.answered(reply),
            Script::Recording(recording) => recording.answered(reply),
            _ => {}
        }
        self.send(reply);
    }

    /// Sends a message to the shim where its request came from: in the slot, or on the socket
    /// with the slot's descriptor.
    fn send(&mut self, reply: &Reply) {
        let bytes = &mut self.out;
        bytes.clear();
        reply.encode(bytes);
        match &self.slot {
            Some(end) if !self.on_socket => {
                if end.slot.replies().post(bytes) == Bell::Ring {
                    let _ = rn::send(&self.fd, &BELL, SendFlags::NOSIGNAL);
                }
            }
            Some(end) => {
                let fds = [end.fd.as_fd()];
                let mut space =
                    [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
                let mut control = SendAncillaryBuffer::new(&mut space);
                control.push(SendAncillaryMessage::ScmRights(&fds));
                let _ = rn::sendmsg(
                    &self.fd,
                    &[std::io::IoSlice::new(bytes)],
                    &mut control,
                    SendFlags::NOSIGNAL,
                );
            }
            None => {
                let _ = rn::send(&self.fd, bytes, SendFlags::NOSIGNAL);
            }
        }
    }
}

/// A parked program's word on its fork that is neither a pid nor an errno.
fn unfit_fork(told: i64) -> SpawnError {
    SpawnError::Unfit(format!(
        "the parked program told {told} for its fork's child (neither a pid nor an errno)"
    ))
}

/// Waits (real time, at most `limit`) for `fd` to be readable; false when the time ran out.
pub(crate) fn readable(fd: &OwnedFd, limit: Duration) -> Result<bool, Errno> {
    let limit = Timespec {
        tv_sec: limit.as_secs() as i64,
        tv_nsec: i64::from(limit.subsec_nanos()),
    };
    loop {
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        match poll(&mut fds, Some(&limit)) {
            Ok(n) => return Ok(n > 0),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::libc;
    use rustix::net::{AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, SocketType};

    /// The shim's end, played by the test: the socket, and the slot once it came.
    struct Shim {
        socket: OwnedFd,
        slot: Option<Slot>,
    }

    impl Shim {
        fn say_on_socket(&self, req: &Request) {
            let mut bytes = Vec::new();
            req.encode(&mut bytes);
            rn::send(&self.socket, &bytes, SendFlags::empty()).unwrap();
        }

        /// A reply on the socket (bells skipped, as the shim skips them), keeping the slot
        /// it brings.
        fn hear_on_socket(&mut self) -> Reply {
            loop {
                if let Some(reply) = self.hear_one_on_socket() {
                    return reply;
                }
            }
        }

        fn hear_one_on_socket(&mut self) -> Option<Reply> {
            let mut buf = vec![0; MAX_MESSAGE_BYTES];
            let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            let got = rn::recvmsg(&self.socket, &mut iov, &mut control, RecvFlags::empty())
                .unwrap()
                .bytes;
            if buf[..got] == BELL {
                return None;
            }
            for message in control.drain() {
                if let RecvAncillaryMessage::ScmRights(mut fds) = message {
                    self.slot = Some(Slot::map(fds.next().unwrap()).unwrap());
                }
            }
            Some(Reply::decode(&buf[..got]).unwrap())
        }

        fn call_in_slot(&self, req: &Request) -> Bell {
            let mut bytes = Vec::new();
            req.encode(&mut bytes);
            self.slot.as_ref().unwrap().requests().post(&bytes)
        }

        fn hear_in_slot(&self, seen: u32) -> Reply {
            let replies = self.slot.as_ref().unwrap().replies();
            assert!(replies.wait(seen, 0, 0), "a reply in the slot");
            let mut buf = vec![0; MAX_MESSAGE_BYTES];
            let n = replies.read(&mut buf).unwrap();
            Reply::decode(&buf[..n]).unwrap()
        }
    }

    fn pair() -> (Channel, Shim) {
        let (ours, theirs) = rn::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            rn::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let shim = Shim {
            socket: theirs,
            slot: None,
        };
        (Channel::new(ours).unwrap(), shim)
    }

    /// A channel whose shim has said hello and holds the slot.
    fn greeted() -> (Channel, Shim) {
        let (mut channel, mut shim) = pair();
        shim.say_on_socket(&Request::new(Op::Hello, &[1, 1]));
        channel.hello().unwrap();
        channel.reply(&Reply::ok(0));
        shim.hear_on_socket();
        (channel, shim)
    }

    /// The shim listens, in the slot, and selectlab takes the call: the replies' sequence
    /// number before it.
    fn listening(channel: &mut Channel, shim: &Shim) -> u32 {
        let seen = shim.slot.as_ref().unwrap().replies().seq();
        shim.call_in_slot(&Request::new(Op::Listen, &[3, 5]));
        let req = channel.next_request(None).unwrap().unwrap();
        assert_eq!((req.op, req.args[1]), (Op::Listen, 5));
        seen
    }

    /// Whether a message (a bell) waits on the shim's socket.
    fn rung(shim: &Shim) -> bool {
        readable(&shim.socket, Duration::ZERO).unwrap()
    }

    #[test]
    fn the_hello_crosses_the_socket_and_its_reply_brings_the_slot() {
        let (mut channel, mut shim) = pair();
        shim.say_on_socket(&Request::new(Op::Hello, &[7, 7]));
        assert_eq!(channel.hello().unwrap().args[0], 7);
        channel.reply(&Reply::ok(0));
        assert_eq!(shim.hear_on_socket().ret, 0);
        assert!(shim.slot.is_some(), "the reply brought the slot");

        let seen = shim.slot.as_ref().unwrap().replies().seq();
        assert_eq!(
            shim.call_in_slot(&Request::new(Op::Listen, &[3, 5])),
            Bell::Quiet
        );
        let req = channel.next_request(None).unwrap().unwrap();
        assert_eq!((req.op, req.args[1]), (Op::Listen, 5));
        channel.reply(&Reply::ok(0).at(42));
        assert_eq!(shim.hear_in_slot(seen).now_ns, 42);
        assert!(!rung(&shim), "a spinning shim needs no bell");
    }

    #[test]
    fn a_dozing_shim_is_rung_and_a_call_after_an_exec_is_answered_on_the_socket() {
        let (mut channel, mut shim) = greeted();
        let seen = listening(&mut channel, &shim);
        let doze = shim.slot.as_ref().unwrap().replies().doze();
        channel.reply(&Reply::ok(0));
        assert!(doze.arrived(seen) && rung(&shim), "the reply, and a bell");
        drop(doze);

        // The program exec'd: its new image has no slot, and asks on the socket (behind a
        // stale bell of its old image's, which selectlab skips).
        shim.slot = None;
        rn::send(&shim.socket, &BELL, SendFlags::empty()).unwrap();
        shim.say_on_socket(&Request::new(Op::Hello, &[1, 1]));
        assert_eq!(channel.next_request(None).unwrap().unwrap().op, Op::Hello);
        channel.reply(&Reply::ok(0));
        assert_eq!(shim.hear_one_on_socket(), None, "the bell first");
        assert_eq!(shim.hear_on_socket().ret, 0);
        assert!(shim.slot.is_some(), "the slot again");
    }

    #[test]
    fn a_parked_program_hears_its_orders_on_the_socket() {
        let (mut channel, mut shim) = greeted();
        let seen = listening(&mut channel, &shim);
        channel.park();
        assert_eq!(shim.hear_in_slot(seen).errno, PARK_ERRNO);
        shim.say_on_socket(&Request::new(Op::Forked, &[4242]));
        assert_eq!(channel.order_fork(Path::new("/x")).unwrap(), 4242);
        let order = shim.hear_on_socket();
        assert_eq!((order.errno, order.data), (PARK_ERRNO, b"/x".to_vec()));
    }

    #[test]
    fn a_fork_that_failed_or_names_no_child_is_an_error() {
        let (mut channel, mut shim) = greeted();
        listening(&mut channel, &shim);
        channel.park();
        shim.say_on_socket(&Request::new(Op::Forked, &[-i64::from(libc::EAGAIN)]));
        match channel.order_fork(Path::new("/x")) {
            Err(SpawnError::Channel("fork", e)) => assert_eq!(e, Errno::AGAIN),
            other => panic!("{:?}", other.map_err(|e| e.to_string())),
        }
        // Neither a pid nor an errno: refused with what was told, never a panic.
        for told in [0, -5000, i64::MIN, 1 << 40] {
            shim.hear_on_socket();
            shim.say_on_socket(&Request::new(Op::Forked, &[told]));
            let e = channel.order_fork(Path::new("/x")).expect_err("no child");
            assert!(e.to_string().contains(&format!("told {told} ")), "{e}");
        }
    }

    #[test]
    fn a_call_that_comes_while_selectlab_sleeps_rings_it_awake() {
        let (mut channel, shim) = greeted();
        let caller = std::thread::spawn(move || {
            // Late enough that selectlab has given up spinning and sleeps on the socket (were
            // it still spinning, it would take the call there, and the test still holds).
            std::thread::sleep(Duration::from_millis(50));
            let bell = shim.call_in_slot(&Request::new(Op::Listen, &[3, 5]));
            if bell == Bell::Ring {
                rn::send(&shim.socket, &BELL, SendFlags::empty()).unwrap();
            }
            shim
        });
        let req = channel
            .next_request(None)
            .unwrap()
            .expect("the call, not an end");
        assert_eq!(req.op, Op::Listen);
        drop(caller.join().unwrap());
    }

    #[test]
    fn a_message_sent_just_before_an_exit_is_read_behind_the_reset() {
        let (mut channel, shim) = pair();
        // A reply the program never read makes its exit a reset on selectlab's end, which
        // Linux reports before the message the program sent last.
        channel.reply(&Reply::ok(0));
        shim.say_on_socket(&Request::new(Op::Refuse, &[]).with_data(b"why".to_vec()));
        drop(shim);
        let last = channel.next_request(None).unwrap().expect("the message");
        assert_eq!((last.op, last.data), (Op::Refuse, b"why".to_vec()));
        assert!(
            channel.next_request(None).unwrap().is_none(),
            "then it is gone"
        );
    }
}
