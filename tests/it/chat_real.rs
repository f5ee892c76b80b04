//! The chat room on real sockets (loopback, port 0): a few dozen clients on each backend, and
//! foreign peers — OpenBSD netcat and a Python select client talking to our server, and
//! `ncat --chat` serving our client. Every server and child is bounded in time.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use selectlab::chat::server::Limits;
use selectlab::kernel::{Kernel, Mode};
use selectlab::programs::chat_room::{CHAT_BACKLOG, ServeOptions, serve_on};
use selectlab::readiness::Backend;
use selectlab::real_kernel::RealKernel;

const CLIENTS: usize = 24;
const LINES_PER_CLIENT: usize = 3;
/// Every blocking read in these tests gives up after this long.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts a chat server on 127.0.0.1 port 0 in a thread; it stops after `stop_after` clients
/// came and went. Returns its port and the thread.
fn start_server(
    backend: Backend,
    mode: Mode,
    stop_after: u64,
) -> (u16, thread::JoinHandle<String>) {
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        let mut k = RealKernel::new();
        let addr = selectlab::addr::SockAddr::Inet("127.0.0.1:0".parse().unwrap());
        let listener = selectlab::chat::serve::listen(&mut k, &addr, CHAT_BACKLOG).expect("listen");
        let port = k.getsockname(listener).unwrap().inet().unwrap().port();
        tx.send(port).unwrap();
        let mut log = Vec::new();
        let options = ServeOptions {
            backend,
            mode,
            limits: Limits::default(),
            stop_after: Some(stop_after),
            // Every server a test starts stops by itself.
            run_for: Some(Duration::from_secs(60)),
            bugs: selectlab::bugs::Bugs::NONE,
        };
        serve_on(&mut k, listener, options, &mut log).expect("serve");
        String::from_utf8(log).unwrap()
    });
    (
        rx.recv_timeout(READ_TIMEOUT).expect("server started"),
        handle,
    )
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    s
}

/// Reads lines until `want` lines containing `marker` have arrived (bounded by the timeout).
fn read_until(reader: &mut BufReader<TcpStream>, marker: &str, want: usize) -> Vec<String> {
    let mut got = Vec::new();
    let mut line = String::new();
    while got.len() < want {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .expect("a line before the timeout");
        assert!(n > 0, "the server closed early; had {got:?}");
        if line.contains(marker) {
            got.push(line.trim_end().to_string());
        }
    }
    got
}

#[test]
fn a_few_dozen_real_clients_on_every_backend() {
    for (backend, mode) in [
        (Backend::Select, Mode::LEVEL),
        (Backend::Poll, Mode::LEVEL),
        (Backend::Epoll, Mode::LEVEL),
        (Backend::Epoll, Mode::EDGE),
    ] {
        let (port, server) = start_server(backend, mode, CLIENTS as u64);
        let mut clients: Vec<BufReader<TcpStream>> = (0..CLIENTS)
            .map(|_| BufReader::new(connect(port)))
            .collect();
        // Everyone is in once the first client has heard the others enter.
        read_until(&mut clients[0], "entered room", CLIENTS - 1);
        for (i, c) in clients.iter_mut().enumerate() {
            for j in 0..LINES_PER_CLIENT {
                writeln!(c.get_mut(), "line {j} from client {i}").unwrap();
            }
        }
        for (i, c) in clients.iter_mut().enumerate() {
            let said = read_until(c, " say: ", (CLIENTS - 1) * LINES_PER_CLIENT);
            assert!(
                said.iter()
                    .all(|l| !l.ends_with(&format!("from client {i}"))),
                "{backend}: an echo to the sender"
            );
            for other in (0..CLIENTS).filter(|o| *o != i) {
                let theirs: Vec<&String> = said
                    .iter()
                    .filter(|l| l.ends_with(&format!(" from client {other}")))
                    .collect();
                let order: Vec<String> = (0..LINES_PER_CLIENT)
                    .map(|j| format!("line {j} from client {other}"))
                    .collect();
                assert_eq!(
                    theirs.len(),
                    LINES_PER_CLIENT,
                    "{backend} {mode:?}: client {i} from {other}"
                );
                assert!(
                    theirs
                        .iter()
                        .zip(&order)
                        .all(|(l, o)| l.ends_with(o.as_str())),
                    "{backend}: order"
                );
            }
        }
        drop(clients);
        let log = server.join().expect("the server thread ends by itself");
        assert_eq!(log.matches(" connect.").count(), CLIENTS, "{log}");
    }
}

/// A child process killed if it outlives its test.
struct Bounded(Child);

impl Bounded {
    /// Waits (bounded) for the child to end; returns its standard output if still captured.
    fn wait_output(mut self, limit: Duration) -> String {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.0.try_wait().unwrap().is_some() {
                let mut out = String::new();
                if let Some(stdout) = self.0.stdout.as_mut() {
                    std::io::Read::read_to_string(stdout, &mut out).unwrap();
                }
                return out;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!("child did not finish within {limit:?}");
    }
}

impl Drop for Bounded {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The child's output, line by line: the returned function waits (bounded) for the next line
/// containing `marker` and returns it.
fn output_lines(child: &mut Bounded) -> impl Fn(&str) -> String + use<> {
    let (tx, lines) = mpsc::channel();
    let stdout = child.0.stdout.take().expect("stdout is piped");
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    move |marker: &str| loop {
        let line = lines
            .recv_timeout(READ_TIMEOUT)
            .expect("the child printed it in time");
        if line.contains(marker) {
            return line;
        }
    }
}

fn available(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

#[test]
fn netcat_and_a_python_select_client_talk_to_our_server() {
    let (port, server) = start_server(Backend::Epoll, Mode::LEVEL, 3);
    let mut observer = BufReader::new(connect(port));
    let mut peers = 0;
    if available("nc.openbsd", "-h") {
        let mut nc = Bounded(
            Command::new("nc.openbsd")
                .args(["-q", "1", "127.0.0.1", &port.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        read_until(&mut observer, "entered room", 1);
        nc.0.stdin
            .take()
            .unwrap()
            .write_all(b"hello from nc\n")
            .unwrap();
        let said = read_until(&mut observer, " say: ", 1);
        assert!(said[0].ends_with("say: hello from nc"), "{said:?}");
        read_until(&mut observer, "left room", 1);
        nc.wait_output(READ_TIMEOUT);
        peers += 1;
    } else {
        eprintln!("skipped nc: not installed (CI installs netcat-openbsd)");
    }
    if available(crate::util::python3(), "--version") {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/tutorial/selectclient.py"
        );
        let mut py = Bounded(
            Command::new(crate::util::python3())
                .arg("-S")
                .args(["-u", script, "127.0.0.1", &port.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let wait_line = output_lines(&mut py);
        read_until(&mut observer, "entered room", 1);
        writeln!(observer.get_mut(), "hello python").unwrap();
        assert!(wait_line(" say: ").ends_with("say: hello python"));
        let mut stdin = py.0.stdin.take().unwrap();
        stdin.write_all(b"hello from python\n").unwrap();
        let said = read_until(&mut observer, " say: ", 1);
        assert!(said[0].ends_with("say: hello from python"), "{said:?}");
        stdin.write_all(b"exit\n").unwrap();
        drop(stdin);
        wait_line("ByeBye~~");
        read_until(&mut observer, "left room", 1);
        py.wait_output(READ_TIMEOUT);
        peers += 1;
    } else {
        eprintln!("skipped python3: not installed");
    }
    // Stand in for any peer that was skipped, so the server's count is reached.
    for _ in peers..2 {
        drop(connect(port));
    }
    drop(observer);
    server.join().expect("server ends");
}

/// Most attempts at starting ncat on a free port (another process may take the port between
/// our probe and ncat's bind).
const NCAT_ATTEMPTS: usize = 5;

/// Starts `ncat --chat` on a free loopback port; returns it, the port, and a connected observer.
fn start_ncat_chat() -> (Bounded, u16, TcpStream) {
    for _ in 0..NCAT_ATTEMPTS {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut ncat = Bounded(
            Command::new("ncat")
                .args(["--chat", "-l", "127.0.0.1", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        // Wait (bounded) for it to listen, or to give up on the port.
        let start = Instant::now();
        while start.elapsed() < READ_TIMEOUT && ncat.0.try_wait().unwrap().is_none() {
            if let Ok(observer) = TcpStream::connect(("127.0.0.1", port)) {
                return (ncat, port, observer);
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("ncat never listened in {NCAT_ATTEMPTS} attempts");
}

#[test]
fn our_client_talks_through_ncat_chat() {
    if !available("ncat", "--version") {
        eprintln!("skipped: ncat not installed (CI installs the Debian package ncat)");
        return;
    }
    let (_ncat, port, observer) = start_ncat_chat();
    observer.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let mut observer = BufReader::new(observer);
    let mut ours = Bounded(
        Command::new(env!("CARGO_BIN_EXE_selectlab"))
            .args(["chat", "client", "--addr", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let wait_line = output_lines(&mut ours);
    let mut stdin = ours.0.stdin.take().unwrap();
    stdin.write_all(b"hello from selectlab\n").unwrap();
    read_until(&mut observer, "hello from selectlab", 1);
    writeln!(observer.get_mut(), "hello back").unwrap();
    wait_line("hello back");
    stdin.write_all(b"Exit\n").unwrap();
    drop(stdin);
    wait_line("ByeBye~~");
    ours.wait_output(READ_TIMEOUT);
}

/// The tutorial stamps lines with `time.strftime`, local time: so does the real server, in the
/// zone `TZ` names. `XST-8` is a POSIX rule (eight hours east of UTC) that needs no tz database.
#[test]
fn the_real_server_stamps_local_time() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_selectlab"));
    command
        .args([
            "chat",
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--run-for-s",
            "20",
        ])
        .env("TZ", "XST-8");
    let (_server, addr) = crate::util::start_command(command).expect("a server");
    let mut first = BufReader::new(connect(addr.port()));
    let _second = connect(addr.port());
    let before = jiff::Timestamp::now();
    let notice = read_until(&mut first, "entered room", 1).remove(0);
    let stamp = notice.get(..19).expect("a stamp");
    let shown = jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", stamp).expect("a time");
    let east_8h = jiff::tz::TimeZone::fixed(jiff::tz::offset(8));
    let seconds_off = (before.to_zoned(east_8h).datetime() - shown)
        .total(jiff::Unit::Second)
        .expect("a span")
        .abs();
    assert!(seconds_off < 5.0, "{notice:?} is not UTC+8 now ({before})");
}
