//! The tutorial's programs (the TCP "good bye" pair and the UDP echo pair) on both transports, and
//! against foreign peers on real loopback sockets: the tutorial's own Python programs (ported to
//! Python 3 in `tests/tutorial/`) and OpenBSD netcat.
//!
//! Real sockets only ever bind 127.0.0.1, on port 0 or on a port just obtained that way. Every
//! child process is reaped within a bounded time (and killed if the test fails first), and every
//! wait loop has a deadline.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use selectlab::addr::{Family, SockType, Target};
use selectlab::programs::goodbye::{self, Reply, Served};
use selectlab::programs::{demo, udp};
use selectlab::real_kernel::RealKernel;
use selectlab::sim::Sim;
use selectlab::sim::transcript::Call;
use selectlab::socket::{Net, Socket, share};

/// The reply as text, for comparing with what programs print.
const REPLY: &str = "server receive your messages, good bye.";
/// The line our `goodbye serve` prints once it is listening.
const TCP_READY: &str = "i'm waiting for connection...";
/// The line our `udp serve` prints once it is bound.
const UDP_READY: &str = "i'm waiting for datagrams...";
/// How long a server gets to start listening.
const READY_WITHIN: Duration = Duration::from_secs(5);
/// How long any child process (or server thread) gets to finish before it is killed.
const FINISH_WITHIN: Duration = Duration::from_secs(10);
/// The step of every polling loop (well under the 50 ms limit).
const POLL_STEP: Duration = Duration::from_millis(10);
/// Timeout, in seconds, put on in-process sockets so that a bug fails a test instead of hanging it.
const SOCKET_TIMEOUT_SECS: f64 = 5.0;

const BIN: &str = env!("CARGO_BIN_EXE_selectlab");

fn tutorial_script(name: &str) -> String {
    format!("{}/tests/tutorial/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn loopback(port: u16) -> Target {
    Target::host("127.0.0.1", port)
}

fn port_of(sock: &Socket) -> u16 {
    sock.getsockname()
        .expect("getsockname")
        .inet()
        .expect("an IP socket")
        .port()
}

fn lines(items: &[&str]) -> impl Iterator<Item = Vec<u8>> {
    items
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect::<Vec<_>>()
        .into_iter()
}

// ---------------------------------------------------------------------------------------------
// 1. The good-bye exchange through the library, on both transports.
// ---------------------------------------------------------------------------------------------

#[test]
fn goodbye_exchange_on_the_real_kernel() {
    let (port_tx, port_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    // The server runs in its own thread with its own kernel handle: `Net` is an `Rc`, which
    // cannot cross threads, so the thread makes its own and only sends back plain values.
    std::thread::spawn(move || {
        let net: Net = share(RealKernel::new());
        let mut listener = goodbye::listen(&net, &loopback(0)).expect("listen");
        // Bounds accept(), should the client never come.
        listener
            .settimeout(Some(SOCKET_TIMEOUT_SECS))
            .expect("settimeout");
        port_tx.send(port_of(&listener)).expect("send port");
        let mut log = Vec::new();
        let served = goodbye::serve_one(&listener, &mut log);
        let _ = done_tx.send((served, log));
    });
    let port = port_rx
        .recv_timeout(FINISH_WITHIN)
        .expect("the server thread reports its port");

    let net: Net = share(RealKernel::new());
    let mut out = Vec::new();
    let said_goodbye =
        goodbye::client(&net, &loopback(port), &mut lines(&["hello"]), &mut out).expect("client");
    assert!(said_goodbye, "the client must see 'good bye'");
    assert_eq!(String::from_utf8_lossy(&out), format!("{REPLY}\n"));

    let (served, log) = done_rx
        .recv_timeout(FINISH_WITHIN)
        .expect("the server thread finishes");
    let log = String::from_utf8_lossy(&log).into_owned();
    match served.expect("serve_one") {
        Served::Answered { peer, message } => {
            assert_eq!(message, b"hello");
            assert_eq!(
                peer.inet().map(|a| a.ip()),
                Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
            );
            assert!(log.contains(&format!("connected by {peer}\n")), "{log}");
            assert!(
                log.contains(&format!("receive from {peer}:hello\n")),
                "{log}"
            );
        }
        other => panic!("expected an answered peer, got {other:?}"),
    }
}

#[test]
fn goodbye_exchange_in_the_simulator() {
    let net: Net = share(Sim::faithful());
    // The simulator is one thread: its calls are interleaved by hand, as the demo does, and a
    // blocking call made out of turn fails with EDEADLK instead of hanging.
    let listener = goodbye::listen(&net, &loopback(0)).expect("listen");
    let target = loopback(port_of(&listener));
    let client = Socket::new(&net, Family::Inet, SockType::Stream).expect("socket");
    client.connect(&target).expect("connect");
    client.sendall(b"hello").expect("sendall");

    let mut log = Vec::new();
    let served = goodbye::serve_one(&listener, &mut log).expect("serve_one");
    let reply = goodbye::read_reply(&client).expect("read_reply");

    // Against the tutorial's text, not the library's constant, so a changed reply is caught.
    assert_eq!(reply, Reply::GoodBye(REPLY.as_bytes().to_vec()));
    let peer = client.getsockname().expect("getsockname");
    assert_eq!(
        served,
        Served::Answered {
            peer: peer.clone(),
            message: b"hello".to_vec()
        }
    );
    assert_eq!(
        String::from_utf8_lossy(&log),
        format!("connected by {peer}\nreceive from {peer}:hello\n")
    );
    // After the reply the server hung up: the next read is end of stream.
    assert_eq!(client.recv(1024).expect("recv"), b"");
}

// ---------------------------------------------------------------------------------------------
// 2. A client that says nothing gets nothing.
// ---------------------------------------------------------------------------------------------

/// Serves two silent clients on `net`, one that half-closes (so it can still read, and can
/// check that nothing arrives) and one that closes outright (the tutorial's case).
fn serve_silent_clients(net: &Net) {
    let listener = goodbye::listen(net, &loopback(0)).expect("listen");
    let target = loopback(port_of(&listener));

    // Half-close: the server reads end of stream, and must answer with its own end of stream,
    // not with the reply.
    let mut quiet = Socket::new(net, Family::Inet, SockType::Stream).expect("socket");
    quiet
        .settimeout(Some(SOCKET_TIMEOUT_SECS))
        .expect("settimeout");
    quiet.connect(&target).expect("connect");
    let quiet_addr = quiet.getsockname().expect("getsockname");
    quiet
        .shutdown(selectlab::kernel::Shutdown::Write)
        .expect("shutdown");
    let mut log = Vec::new();
    let served = goodbye::serve_one(&listener, &mut log).expect("serve_one");
    assert_eq!(
        served,
        Served::Silent {
            peer: quiet_addr.clone()
        }
    );
    assert_eq!(
        quiet.recv(1024).expect("recv"),
        b"",
        "a silent client must get no reply"
    );
    assert_eq!(
        String::from_utf8_lossy(&log),
        format!("connected by {quiet_addr}\n{quiet_addr} closed without a message\n")
    );

    // Full close before the server even accepts.
    let mut gone = Socket::new(net, Family::Inet, SockType::Stream).expect("socket");
    gone.connect(&target).expect("connect");
    let gone_addr = gone.getsockname().expect("getsockname");
    gone.close().expect("close");
    let served = goodbye::serve_one(&listener, &mut Vec::new()).expect("serve_one");
    assert_eq!(served, Served::Silent { peer: gone_addr });
}

#[test]
fn silent_client_gets_no_reply_on_the_real_kernel() {
    let net: Net = share(RealKernel::new());
    serve_silent_clients(&net);
}

#[test]
fn silent_client_gets_no_reply_in_the_simulator() {
    let sim = share(Sim::faithful());
    let net: Net = sim.clone();
    serve_silent_clients(&net);
    // The transcript proves it: no byte was ever sent by anyone.
    let sim = sim.borrow();
    let sends: Vec<String> = sim
        .transcript()
        .records()
        .iter()
        .filter(|r| matches!(r.call, Call::Send | Call::Sendto))
        .map(|r| r.to_string())
        .collect();
    assert!(sends.is_empty(), "unexpected sends: {sends:?}");
}

// ---------------------------------------------------------------------------------------------
// 3. The demo is deterministic, and the adversary shows.
// ---------------------------------------------------------------------------------------------

/// The good-bye demo's text: faithful (None), or under the adversary with this seed.
fn demo_output(adversary: Option<u64>) -> String {
    let mut out = Vec::new();
    demo::run(adversary, &mut out, false).expect("demo");
    String::from_utf8(out).expect("the demo prints UTF-8")
}

#[test]
fn demo_is_deterministic_per_seed() {
    for adversary in [None, Some(7)] {
        assert_eq!(
            demo_output(adversary),
            demo_output(adversary),
            "{adversary:?} must give the same bytes twice"
        );
    }
}

#[test]
fn demo_shows_the_adversary_and_still_says_good_bye() {
    let goodbye_line = format!("client got: {REPLY}\n");
    let faithful = demo_output(None);
    assert!(!faithful.contains("adversary:"), "{faithful}");
    assert_eq!(faithful.matches(&goodbye_line).count(), 3, "{faithful}");

    let adversarial = demo_output(Some(7));
    assert!(adversarial.contains("adversary: short"), "{adversarial}");
    assert_eq!(
        adversarial.matches(&goodbye_line).count(),
        3,
        "{adversarial}"
    );
}

/// Under short reads every client must still print the whole reply. Regression: seeds 2, 3, 6,
/// ... printed "good bye" without the final "." when `read_reply` stopped at the marker.
#[test]
fn demo_prints_whole_replies_under_short_reads() {
    let goodbye_line = format!("client got: {REPLY}\n");
    for seed in 1..=20 {
        let out = demo_output(Some(seed));
        assert_eq!(out.matches(&goodbye_line).count(), 3, "seed {seed}:\n{out}");
    }
}

// ---------------------------------------------------------------------------------------------
// Child processes, with deadlines.
// ---------------------------------------------------------------------------------------------

/// A free TCP port on loopback: bound to port 0, read, released. Another process could take it
/// in between; on loopback in a test run that race is accepted.
fn free_tcp_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// The same for UDP.
fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    s.local_addr().expect("local_addr").port()
}

/// Whether `program` can be started at all (the foreign peers are optional on a developer's
/// machine; CI installs them).
fn available(program: &str, probe_arg: &str) -> bool {
    let found = Command::new(program)
        .arg(probe_arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        println!("skipped: {program} not found");
    }
    found
}

/// What a finished child left behind.
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// A running child whose stdout is read line by line as it comes (so a test can wait for a
/// server's "ready" line), and which is killed and reaped if the test ends before it does.
struct Proc {
    name: String,
    child: Child,
    lines: Receiver<String>,
    stdout_seen: String,
    stdout_reader: Option<JoinHandle<()>>,
    stderr_reader: Option<JoinHandle<String>>,
}

impl Proc {
    /// Starts `cmd`; `input`, if any, is written to its stdin, which is then closed (EOF).
    fn spawn(mut cmd: Command, input: Option<&[u8]>) -> Proc {
        let name = format!("{cmd:?}");
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
            // A few bytes always fit in the pipe, so this cannot block on a slow reader.
            stdin.write_all(data).expect("write stdin");
        }
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stdout_reader = std::thread::spawn(move || forward_lines(stdout, tx));
        let mut stderr = child.stderr.take().expect("piped stderr");
        let stderr_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        Proc {
            name,
            child,
            lines,
            stdout_seen: String::new(),
            stdout_reader: Some(stdout_reader),
            stderr_reader: Some(stderr_reader),
        }
    }

    /// Waits until the child prints `line` (a server's "I am listening" line); the error says
    /// why it did not. Waiting for the line, rather than probing with a connection, matters: a
    /// probe would be accepted and served, and use up a `--count 1` server's only connection.
    fn wait_for_line(&mut self, line: &str, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.stdout_seen.push_str(&l);
                    if l.trim_end_matches(['\r', '\n']) == line {
                        return Ok(());
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "{} did not print {line:?} within {within:?}",
                        self.name
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let f = self.finish(FINISH_WITHIN);
                    return Err(format!(
                        "{} exited ({}) before printing {line:?}\nstdout: {}\nstderr: {}",
                        self.name, f.status, f.stdout, f.stderr
                    ));
                }
            }
        }
    }

    /// Waits for the child to exit (killing it past `within`) and gathers its output.
    fn finish(&mut self, within: Duration) -> Finished {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{} did not finish within {within:?} and was killed\nstdout so far: {}",
                    self.name, self.stdout_seen
                );
            }
            std::thread::sleep(POLL_STEP);
        };
        // The pipes close with the child, so the readers end now.
        if let Some(h) = self.stdout_reader.take() {
            let _ = h.join();
        }
        while let Ok(l) = self.lines.try_recv() {
            self.stdout_seen.push_str(&l);
        }
        let stderr = self
            .stderr_reader
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        Finished {
            status,
            stdout: self.stdout_seen.clone(),
            stderr,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // A failed assertion must not leave a server running.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends each line of `out` (newline included) to `tx`, until end of file.
fn forward_lines(out: ChildStdout, tx: mpsc::Sender<String>) {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(out);
    loop {
        let mut bytes = Vec::new();
        match reader.read_until(b'\n', &mut bytes) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if tx
                    .send(String::from_utf8_lossy(&bytes).into_owned())
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

fn selectlab(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    cmd
}

/// How many fresh ports a server is tried on before a test gives up.
const SERVER_START_ATTEMPTS: usize = 3;

/// Starts the server that `command` builds for a port from `free_port`, and waits until it
/// prints `ready`; returns it and its port. A port free when chosen can still be taken before
/// the server binds it (any socket on the machine may pick it as its ephemeral port), so a
/// server that fails to come up is tried again, a bounded number of times, on a new port.
fn start_server(
    free_port: fn() -> u16,
    ready: &str,
    command: impl Fn(u16) -> Command,
) -> (Proc, u16) {
    let mut failures = Vec::new();
    for _ in 0..SERVER_START_ATTEMPTS {
        let port = free_port();
        let mut server = Proc::spawn(command(port), None);
        match server.wait_for_line(ready, READY_WITHIN) {
            Ok(()) => return (server, port),
            Err(why) => failures.push(why),
        }
    }
    panic!(
        "no server came up in {SERVER_START_ATTEMPTS} attempts:\n{}",
        failures.join("\n")
    )
}

/// Starts `selectlab goodbye serve --count 1` on a fresh loopback port and waits until it
/// listens; returns it and the port.
fn start_our_tcp_server() -> (Proc, u16) {
    start_server(free_tcp_port, TCP_READY, |port| {
        let addr = format!("127.0.0.1:{port}");
        selectlab(&["goodbye", "serve", "--addr", &addr, "--count", "1"])
    })
}

/// Finishes one of our servers and checks that it exited cleanly after serving `message`.
fn assert_served(mut server: Proc, message: &str) {
    let s = server.finish(FINISH_WITHIN);
    assert!(
        s.status.success(),
        "server: {}\n{}{}",
        s.status,
        s.stdout,
        s.stderr
    );
    assert!(
        s.stdout.contains("receive from ('127.0.0.1', ")
            && s.stdout.contains(&format!(":{message}\n")),
        "server log: {}",
        s.stdout
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Interoperability with the tutorial's own programs (Python 3 ports).
// ---------------------------------------------------------------------------------------------

#[test]
fn our_server_answers_the_tutorials_python_client() {
    if !available(crate::util::python3(), "--version") {
        return;
    }
    let (server, port) = start_our_tcp_server();
    let mut client = Proc::spawn(
        {
            let mut c = Command::new(crate::util::python3());
            c.arg("-S")
                .arg(tutorial_script("client.py"))
                .arg("127.0.0.1")
                .arg(port.to_string());
            c
        },
        Some(b"hello from python\n"),
    );
    let c = client.finish(FINISH_WITHIN);
    assert!(c.status.success(), "client: {}\n{}", c.status, c.stderr);
    // The tutorial's client prompts without a newline, then prints the reply on its own line.
    assert_eq!(c.stdout, format!("Please input message: {REPLY}\n"));
    assert_served(server, "hello from python");
}

#[test]
fn our_client_talks_to_the_tutorials_python_server() {
    if !available(crate::util::python3(), "--version") {
        return;
    }
    let (mut server, port) = start_server(free_tcp_port, TCP_READY, |port| {
        let mut c = Command::new(crate::util::python3());
        // -u: unbuffered, so the "waiting" line reaches the pipe as soon as it is printed.
        c.arg("-S")
            .arg("-u")
            .arg(tutorial_script("server.py"))
            .args(["127.0.0.1", &port.to_string(), "1"]);
        c
    });

    let addr = format!("127.0.0.1:{port}");
    let mut client = Proc::spawn(
        selectlab(&["goodbye", "client", "--addr", &addr]),
        Some(b"hello from selectlab\n"),
    );
    let c = client.finish(FINISH_WITHIN);
    // Exit 0 means the client saw "good bye" (1 would mean the server hung up without it).
    assert!(c.status.success(), "client: {}\n{}", c.status, c.stderr);
    assert_eq!(c.stdout, format!("{REPLY}\n"));

    let s = server.finish(FINISH_WITHIN);
    assert!(
        s.status.success(),
        "python server: {}\n{}",
        s.status,
        s.stderr
    );
    assert!(
        s.stdout.contains("receive from ('127.0.0.1', ")
            && s.stdout.contains("):hello from selectlab\n"),
        "python server log: {}",
        s.stdout
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Interoperability with OpenBSD netcat.
// ---------------------------------------------------------------------------------------------

#[test]
fn our_server_answers_netcat() {
    if !available("nc.openbsd", "-h") {
        return;
    }
    let (server, port) = start_our_tcp_server();
    // Like `printf 'hello\n' | nc -q 1 127.0.0.1 PORT`: -q 1 quits a second after stdin's end
    // at the latest, and sooner once the server hangs up.
    let mut nc = Command::new("nc.openbsd");
    nc.args(["-q", "1", "127.0.0.1", &port.to_string()]);
    let mut nc = Proc::spawn(nc, Some(b"hello\n"));
    let n = nc.finish(FINISH_WITHIN);
    assert!(n.status.success(), "nc: {}\n{}", n.status, n.stderr);
    // The reply is sent as is, with no newline of its own.
    assert_eq!(n.stdout, REPLY);
    // netcat sends the newline too, so the message is "hello\n" and the log line ends twice.
    assert_served(server, "hello\n");
}

// ---------------------------------------------------------------------------------------------
// 6. UDP echo.
// ---------------------------------------------------------------------------------------------

#[test]
fn udp_echo_through_the_binary() {
    let (server, port) = start_server(free_udp_port, UDP_READY, |port| {
        let addr = format!("127.0.0.1:{port}");
        selectlab(&["udp", "serve", "--addr", &addr, "--count", "1"])
    });
    let addr = format!("127.0.0.1:{port}");

    let mut client = Proc::spawn(
        selectlab(&["udp", "client", "--addr", &addr]),
        Some(b"ping\n"),
    );
    let c = client.finish(FINISH_WITHIN);
    assert!(c.status.success(), "client: {}\n{}", c.status, c.stderr);
    // "timed out" here would mean the echo never came back.
    assert_eq!(c.stdout, "ping\n");
    assert_served(server, "ping");
}

/// One datagram out, echoed by `udp::echo_one`, read back; all in one thread, which works on
/// both transports because the datagram is queued before the server reads it.
fn udp_echo_in_one_thread(net: &Net) {
    let mut server = udp::bind(net, &loopback(0)).expect("bind");
    server
        .settimeout(Some(SOCKET_TIMEOUT_SECS))
        .expect("settimeout");
    let server_addr = server.getsockname().expect("getsockname");
    let mut client = Socket::new(net, Family::Inet, SockType::Dgram).expect("socket");
    client
        .settimeout(Some(SOCKET_TIMEOUT_SECS))
        .expect("settimeout");

    assert_eq!(
        client
            .sendto(b"ping", &loopback(port_of(&server)))
            .expect("sendto"),
        4
    );
    let mut log = Vec::new();
    assert_eq!(udp::echo_one(&server, &mut log).expect("echo_one"), 4);
    let (data, from) = client.recvfrom(udp::UDP_ECHO_MAX_BYTES).expect("recvfrom");
    assert_eq!(data, b"ping");
    assert_eq!(from, Some(server_addr));

    // The client never bound, so its own name is the wildcard (0.0.0.0) with the port sendto
    // picked; the server saw the packet come from loopback, on that port.
    let client_port = port_of(&client);
    assert_eq!(
        String::from_utf8_lossy(&log),
        format!("receive from ('127.0.0.1', {client_port}):ping\n")
    );
}

#[test]
fn udp_echo_in_the_simulator() {
    let net: Net = share(Sim::faithful());
    udp_echo_in_one_thread(&net);
}

#[test]
fn udp_echo_on_the_real_kernel_in_one_thread() {
    let net: Net = share(RealKernel::new());
    udp_echo_in_one_thread(&net);
}
