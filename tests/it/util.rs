//! Helpers shared by the integration tests: building connected pairs on any kernel.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use selectlab::addr::{Family, SockType};

/// A property's case count: `PROPTEST_CASES` when set (it raises or lowers every property
/// test alike), else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
use selectlab::kernel::{Fd, Kernel};

/// The kinds of connected pairs the differential tests exercise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairKind {
    TcpV4,
    TcpV6,
    UnixStream,
    UnixSeqPacket,
    UdpV4,
    UdpV6,
    UnixDgram,
}

pub const ALL_KINDS: [PairKind; 7] = [
    PairKind::TcpV4,
    PairKind::TcpV6,
    PairKind::UnixStream,
    PairKind::UnixSeqPacket,
    PairKind::UdpV4,
    PairKind::UdpV6,
    PairKind::UnixDgram,
];

impl PairKind {
    pub fn is_stream(self) -> bool {
        matches!(
            self,
            PairKind::TcpV4 | PairKind::TcpV6 | PairKind::UnixStream
        )
    }
}

/// A connected TCP pair (see `selectlab::endpoints::tcp_pair`); set-up failures panic.
pub fn tcp_pair(k: &mut dyn Kernel, family: Family) -> (Fd, Fd) {
    selectlab::endpoints::tcp_pair(k, family).expect("tcp pair")
}

/// A connected pair of the given kind.
pub fn make_pair(k: &mut dyn Kernel, kind: PairKind) -> (Fd, Fd) {
    match kind {
        PairKind::TcpV4 => tcp_pair(k, Family::Inet),
        PairKind::TcpV6 => tcp_pair(k, Family::Inet6),
        PairKind::UdpV4 => selectlab::endpoints::udp_pair(k, Family::Inet).expect("udp pair"),
        PairKind::UdpV6 => selectlab::endpoints::udp_pair(k, Family::Inet6).expect("udp pair"),
        PairKind::UnixStream => k.socketpair(SockType::Stream).expect("socketpair"),
        PairKind::UnixSeqPacket => k.socketpair(SockType::SeqPacket).expect("socketpair"),
        PairKind::UnixDgram => k.socketpair(SockType::Dgram).expect("socketpair"),
    }
}

/// A loopback address that refuses connections for as long as the returned socket lives: a
/// TCP socket bound there but not listening holds the port, so no other test's socket can take
/// it (a port merely freed could be reused at once).
pub fn refusing_addr() -> (std::os::fd::OwnedFd, std::net::SocketAddr) {
    use nix::sys::socket::{SockFlag, SockaddrIn, bind, getsockname, socket};
    use std::os::fd::AsRawFd;
    let held = socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .expect("a socket");
    bind(held.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).expect("bind loopback");
    let bound: SockaddrIn = getsockname(held.as_raw_fd()).expect("its name");
    (
        held,
        std::net::SocketAddr::from(([127, 0, 0, 1], bound.port())),
    )
}

/// A server in its own process (as users run one: a test process full of other servers and
/// clients would crowd select's FD_SETSIZE), killed when dropped and gone by itself anyway.
pub struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `program args…`, which prints its port somewhere in its first line (the last
/// number in it), and returns it with its address; `None` when it cannot be started.
pub fn start(program: &str, args: &[&str]) -> Option<(Server, SocketAddr)> {
    let mut command = Command::new(program);
    command.args(args);
    start_command(command)
}

/// [`start`] for a command already set up (its environment, say).
pub fn start_command(mut command: Command) -> Option<(Server, SocketAddr)> {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut server = Server(child);
    let mut first = String::new();
    BufReader::new(server.0.stdout.take()?)
        .read_line(&mut first)
        .ok()?;
    let digits: String = first
        .split(|c: char| !c.is_ascii_digit())
        .rfind(|s| !s.is_empty())?
        .to_string();
    let port: u16 = digits.parse().ok()?;
    Some((server, SocketAddr::from(([127, 0, 0, 1], port))))
}

/// A loopback port that was free a moment ago (bound on port 0, then let go), for a program
/// that must be told its port; `None` if none could be had.
pub fn free_port() -> Option<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
    Some(listener.local_addr().ok()?.port())
}

/// Runs the selectlab binary with `args`; its output.
pub fn selectlab(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_selectlab"))
        .args(args)
        .output()
        .expect("selectlab runs")
}

/// A descriptor watched by a level-triggered and an edge-triggered epoll instance, for the
/// differential sequences that compare what poll and each instance report.
pub struct Watched {
    pub fd: Fd,
    /// The level-triggered instance, then the edge-triggered one.
    pub instances: [Fd; 2],
    events: selectlab::kernel::Events,
}

impl Watched {
    /// `fd`, registered for `events` in a new instance of each mode.
    pub fn new(k: &mut dyn Kernel, fd: Fd, events: selectlab::kernel::Events) -> Watched {
        use selectlab::kernel::{CtlOp, Mode};
        let instances = [Mode::LEVEL, Mode::EDGE].map(|mode| {
            let ep = k.epoll_create().expect("an epoll instance");
            k.epoll_ctl(ep, CtlOp::Add, fd, events, mode, 7)
                .expect("registered");
            ep
        });
        Watched {
            fd,
            instances,
            events,
        }
    }

    /// A poll that does not wait, in words.
    pub fn poll(&self, k: &mut dyn Kernel) -> String {
        let mut p = [selectlab::kernel::PollFd::new(self.fd, self.events)];
        let r = k.poll(&mut p, Some(std::time::Duration::ZERO));
        format!("poll: {r:?} {}", p[0].revents)
    }

    /// An epoll_wait that does not wait, on the edge-triggered instance or the other, in words.
    pub fn wait(&self, k: &mut dyn Kernel, edge: bool) -> String {
        let mut got = Vec::new();
        let ep = self.instances[usize::from(edge)];
        let r = k.epoll_wait(ep, &mut got, 4, Some(std::time::Duration::ZERO));
        format!("wait edge={edge}: {r:?} {got:?}")
    }

    /// Closes the instances and the descriptor.
    pub fn close(self, k: &mut dyn Kernel) {
        for fd in self.instances.into_iter().chain([self.fd]) {
            k.close(fd).expect("closed");
        }
    }
}

/// Whether the kernel under the tests is gVisor (CI machines may be), which reports itself as
/// Linux 4.4.0 with this build string: where it differs from Linux, a differential test prints
/// the difference instead of failing (Linux is the reference).
pub fn kernel_is_gvisor() -> bool {
    std::fs::read_to_string("/proc/version")
        .is_ok_and(|v| v.contains("4.4.0 #1 SMP Sun Jan 10 15:06:54 PST 2016"))
}

/// The Python the tests start: `python3` as PATH finds it, resolved once to the interpreter's
/// own file (`sys.executable`). A version manager's `python3` may be a script (pyenv's shims
/// run bash, and pyenv, before the interpreter): the suite starts Python several hundred
/// times, and that script was a third of its CPU time. `python3` itself where it cannot be
/// resolved. Tests whose reviewed snapshots show the command line say `python3`.
///
/// The tests start it with `-S` (no `site` module): the fixtures use the standard library only,
/// and a machine's site-packages then neither changes them nor slows them (a `.pth` start-up
/// hook that imports a package cost 24 ms of each 50 ms start here).
pub fn python3() -> &'static str {
    resolved_python3().unwrap_or("python3")
}

/// Whether a `python3` runs here (asked once, with the resolution above).
pub fn have_python3() -> bool {
    resolved_python3().is_some()
}

fn resolved_python3() -> Option<&'static str> {
    static RESOLVED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    RESOLVED
        .get_or_init(|| {
            let asked = Command::new("python3")
                .args(["-c", "import sys; print(sys.executable)"])
                .output();
            asked
                .ok()
                .filter(|out| out.status.success())
                .and_then(|out| String::from_utf8(out.stdout).ok())
                .map(|path| path.trim().to_string())
                .filter(|path| !path.is_empty())
        })
        .as_deref()
}
