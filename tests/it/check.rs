//! `selectlab check` judged in both directions: it passes selectlab's own server on every
//! backend and a small correct Python server, and it fails each broken variant of that server
//! on the check that names its fault. A checker that cannot fail is worse than none.

use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use crate::util::{self, Server, start};

use selectlab::check::{self, Config, Finding, Judgement, Verdict};

/// `selectlab chat serve --backend` values: every backend and mode.
const BACKEND_NAMES: [&str; 5] = ["select", "poll", "epoll", "epoll-et", "epoll-oneshot"];

/// How long any server these tests start lives: it stops by itself.
const SERVER_LIFETIME: Duration = Duration::from_secs(90);

fn run(server: SocketAddr, only: &[&str]) -> Vec<Finding> {
    let config = Config {
        server,
        clients: 6,
        only: only.iter().map(|s| s.to_string()).collect(),
        via_proxy: false,
        restart: Vec::new(),
        deadline: check::CHECK_DEADLINE,
    };
    check::run(&config, |_| {}).expect("the checks run")
}

fn failures(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .filter(|f| f.verdict != Verdict::Pass)
        .map(|f| f.to_string())
        .collect()
}

#[test]
fn selectlab_passes_every_check_on_every_backend() {
    let lifetime = SERVER_LIFETIME.as_secs().to_string();
    let runs: Vec<_> = BACKEND_NAMES
        .iter()
        .map(|&backend| {
            let args = [
                "chat",
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--backend",
                backend,
                "--run-for-s",
                &lifetime,
            ];
            let (server, addr) = start(env!("CARGO_BIN_EXE_selectlab"), &args).expect("a server");
            thread::spawn(move || {
                let findings = run(addr, &[]);
                drop(server);
                (backend, findings)
            })
        })
        .collect();
    for r in runs {
        let (name, findings) = r.join().unwrap();
        assert_eq!(findings.len(), check::CHECKS.len());
        assert_eq!(failures(&findings), Vec::<String>::new(), "{name}");
    }
}

fn fixture(bug: Option<&str>) -> Option<(Server, SocketAddr)> {
    match bug {
        Some(bug) => fixture_with(&["--bug", bug]),
        None => fixture_with(&[]),
    }
}

/// The fixture, with `more` arguments.
fn fixture_with(more: &[&str]) -> Option<(Server, SocketAddr)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/chat_server.py");
    let lifetime = SERVER_LIFETIME.as_secs().to_string();
    let mut args = vec!["-S", path, "--lifetime", &lifetime];
    args.extend(more);
    start(crate::util::python3(), &args)
}

/// How long the dying fixture takes to crash: far longer than the server takes to relay a
/// line, as a busy machine may make it, so that only waiting for the server to catch up
/// after a check (not a fixed wait) names the check that killed it.
const DYING: &str = "0.5";

#[test]
fn the_python_fixture_passes_and_each_broken_variant_fails_its_check() {
    if fixture(None).is_none() {
        eprintln!("skipped: python3 is not installed");
        return;
    }
    // Each fault of the catalogue, and the check that must catch it.
    let broken = [
        ("no-framing", "split-writes"),
        ("echo", "no-echo"),
        ("table-mutated", "resets-during-broadcast"),
        ("sendall", "slow-reader"),
        ("eof-ignored", "exit-announced"),
        ("silent-reset", "reset-mid-line"),
        ("bare-prefix", "prefix"),
        ("lose-lines", "delivery"),
        ("merge-lines", "merged-writes"),
        ("escape-binary", "binary"),
        ("fragment-long", "long-line"),
        ("no-join", "join-announced"),
        ("replay-reset", "reset-after-lines"),
        ("crowd-cap", "many-joins"),
        ("blocking-slow", "paused-reader"),
        ("close-kills", "quick-close"),
    ];
    let good = thread::spawn(|| {
        let (_fx, addr) = fixture(None).unwrap();
        run(addr, &[])
    });
    let bad: Vec<_> = broken
        .iter()
        .map(|&(bug, catcher)| {
            thread::spawn(move || {
                let (_fx, addr) = fixture(Some(bug)).unwrap();
                (bug, catcher, run(addr, &[catcher]))
            })
        })
        .collect();
    for b in bad {
        let (bug, catcher, findings) = b.join().unwrap();
        assert_eq!(findings.len(), 1);
        assert_eq!(
            findings[0].verdict,
            Verdict::Fail,
            "--bug {bug}: {catcher} should fail: {}",
            findings[0]
        );
    }
    let findings = good.join().unwrap();
    assert_eq!(
        failures(&findings),
        Vec::<String>::new(),
        "the correct fixture"
    );
}

/// The manual's promise (`docs/src/testing-your-server.md`): every check ends within its
/// deadline (15 s unless `--deadline-s` says otherwise) and the moment it takes to judge what it
/// heard, whatever the server does. A server whose every loop turn takes 20 ms more reads
/// `slow-reader`'s 8 MB at a crawl; the writer gives up at the deadline instead of waiting on.
#[test]
fn a_crawling_server_cannot_hold_a_check_past_its_deadline() {
    let Some((_fx, addr)) = fixture(Some("crawl")) else {
        eprintln!("skipped: python3 is not installed");
        return;
    };
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_selectlab"))
        .args(["check", "--help"])
        .output()
        .expect("selectlab runs");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("[default: 15]"), "{help}");
    // A deadline shorter than the default holds the same way, in less of the suite's time.
    let deadline = Duration::from_secs(3);
    let config = Config {
        server: addr,
        clients: 6,
        only: vec!["slow-reader".into()],
        via_proxy: false,
        restart: Vec::new(),
        deadline,
    };
    let findings = check::run(&config, |_| {}).expect("the checks run");
    let judging = Duration::from_secs(1);
    assert!(findings[0].elapsed >= deadline, "{}", findings[0]);
    assert!(findings[0].elapsed < deadline + judging, "{}", findings[0]);
}

/// A write the server refused fails the check; only the checker's own trouble skips it.
#[test]
fn a_write_the_server_refused_is_a_failure_not_a_skip() {
    use selectlab::check::peer::SendFailure;
    use std::io::{Error, ErrorKind};
    let failure = |error: Error| SendFailure {
        who: "c1".into(),
        error,
    };
    for kind in [
        ErrorKind::ConnectionReset,
        ErrorKind::BrokenPipe,
        ErrorKind::TimedOut,
        ErrorKind::WouldBlock,
    ] {
        let judged = check::all_sent(vec![failure(Error::from(kind))]);
        assert!(
            matches!(judged, Err(Judgement::Fail(_))),
            "{kind:?}: {judged:?}"
        );
    }
    let own = failure(Error::other("the socket could not be shared with a writer"));
    let judged = check::all_sent(vec![own]);
    assert!(matches!(judged, Err(Judgement::Skip(_))), "{judged:?}");
    assert!(check::all_sent(Vec::new()).is_ok());
}

#[test]
fn bad_arguments_and_an_empty_port_are_refused_before_any_check() {
    let (_held, addr) = util::refusing_addr();
    let config = |clients, only: &[&str]| Config {
        server: addr,
        clients,
        only: only.iter().map(|s| s.to_string()).collect(),
        via_proxy: false,
        restart: Vec::new(),
        deadline: check::CHECK_DEADLINE,
    };
    assert!(matches!(
        check::run(&config(1, &[]), |_| {}),
        Err(check::CheckError::BadArgs(_))
    ));
    assert!(matches!(
        check::run(&config(6, &["no-such-check"]), |_| {}),
        Err(check::CheckError::BadArgs(_))
    ));
    assert!(matches!(
        check::run(&config(6, &[]), |_| {}),
        Err(check::CheckError::NothingListens(_))
    ));
}

#[test]
fn a_host_name_is_looked_up_and_a_bad_one_refused() {
    let Some((_fx, addr)) = fixture(None) else {
        return;
    };
    let cli = |target: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_selectlab"))
            .args(["check", target, "--only", "delivery"])
            .output()
            .expect("selectlab runs")
    };
    let named = cli(&format!("localhost:{}", addr.port()));
    let text = String::from_utf8_lossy(&named.stdout);
    assert_eq!(named.status.code(), Some(0), "{text}");
    assert!(text.contains("PASS delivery"), "{text}");
    // Refused before any lookup (a test machine may have no resolver to ask).
    let bad = cli("localhost:no-port");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("localhost:no-port"));
}

#[test]
fn a_server_that_dies_is_named_in_the_check_it_died_in_and_the_rest_skip() {
    // close-kills: a client that leaves having said nothing crashes it, as join-announced's
    // clients do.
    let Some((_fx, addr)) = fixture_with(&["--bug", "close-kills", "--dying", DYING]) else {
        return;
    };
    let findings = run(
        addr,
        &["prefix", "join-announced", "exit-announced", "quick-close"],
    );
    let verdicts: Vec<Verdict> = findings.iter().map(|f| f.verdict.clone()).collect();
    assert_eq!(
        verdicts,
        [Verdict::Pass, Verdict::Fail, Verdict::Skip, Verdict::Skip],
        "{findings:#?}"
    );
    assert_eq!(
        findings[1].evidence[0],
        "the server went away during `join-announced`"
    );
    for f in &findings[2..] {
        assert_eq!(f.evidence, ["the server went away during `join-announced`"]);
    }
}

#[test]
fn a_server_started_for_each_check_has_its_death_pinned_to_the_check_that_killed_it() {
    let Some(port) = util::free_port() else {
        return;
    };
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/chat_server.py");
    let port_arg = port.to_string();
    let lifetime = SERVER_LIFETIME.as_secs().to_string();
    let command = [
        crate::util::python3(),
        "-S",
        path,
        "--port",
        &port_arg,
        "--lifetime",
        &lifetime,
        "--bug",
        "close-kills",
        "--dying",
        DYING,
    ];
    let config = Config {
        server: SocketAddr::from(([127, 0, 0, 1], port)),
        clients: 6,
        only: ["prefix", "join-announced", "exit-announced", "quick-close"]
            .map(String::from)
            .to_vec(),
        via_proxy: false,
        restart: command.map(Into::into).to_vec(),
        deadline: check::CHECK_DEADLINE,
    };
    let findings = check::run(&config, |_| {}).expect("the checks run");
    let verdicts: Vec<&str> = findings.iter().map(|f| f.verdict.name()).collect();
    // Each check meets a fresh server: only those whose clients leave having said nothing kill
    // it, and each death names its exit status and the server's last words.
    assert_eq!(verdicts, ["pass", "fail", "pass", "fail"], "{findings:#?}");
    // quick-close's room could no longer gather once the server reset a client: the check
    // ends there, not at its deadline.
    assert!(findings[3].elapsed < config.deadline, "{}", findings[3]);
    for f in [&findings[1], &findings[3]] {
        let evidence = f.evidence.join("\n");
        assert!(
            evidence.contains(&format!(
                "the server went away during `{}`: it exited with code 1",
                f.name
            )) && evidence.contains("stderr| "),
            "{f}"
        );
    }
}

/// Takes every connection at a loopback address and reads it, and never says a word; stops
/// when `stop` is set or after [`SERVER_LIFETIME`].
fn silent_server(stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> SocketAddr {
    use std::io::Read;
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    listener.set_nonblocking(true).expect("non-blocking");
    let until = std::time::Instant::now() + SERVER_LIFETIME;
    thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) && std::time::Instant::now() < until {
            match listener.accept() {
                Ok((mut conn, _)) => {
                    let _ = conn.set_nonblocking(false);
                    let _ = conn.set_read_timeout(Some(SERVER_LIFETIME));
                    thread::spawn(move || while matches!(conn.read(&mut [0; 4096]), Ok(1..)) {});
                }
                Err(_) => thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    addr
}

#[test]
fn a_server_that_relays_nothing_fails_its_checks_and_is_never_said_to_have_gone() {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let config = Config {
        server: silent_server(std::sync::Arc::clone(&stop)),
        clients: 6,
        only: vec!["prefix".into()],
        via_proxy: false,
        restart: Vec::new(),
        deadline: Duration::from_secs(2),
    };
    // The pair's probes never come back: it waits for them once, before the check, and
    // the run ends.
    let findings = check::run(&config, |_| {}).expect("the checks run");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(findings.len(), 1);
    for f in &findings {
        assert_eq!(f.verdict, Verdict::Fail, "{f}");
        assert!(!f.evidence.join("\n").contains("went away"), "{f}");
    }
}
