//! `check --sim`'s sessions start as forks of the program parked at its first listen: each
//! check's transcript is the one a fresh start gives, byte for byte, for Python and C servers,
//! correct and faulty, in the tutorial's dialect or one learned; a program that cannot be
//! forked faithfully (a second thread, a start that goes otherwise) starts afresh each time,
//! and the report says why.

use selectlab::check::Verdict;
use selectlab::check::sim::{self as sim_check, DialectChoice, SimCheckConfig};

use super::guest::{compiled_with, python};

fn config(command: &[&str], dialect: DialectChoice, fresh_starts: bool) -> SimCheckConfig {
    SimCheckConfig {
        command: command.iter().map(Into::into).collect(),
        seed: 3,
        cases: 2,
        only: Vec::new(),
        shrink: false,
        dialect,
        launch: Default::default(),
        pcap: None,
        fresh_starts,
    }
}

/// Every check's transcript, fresh and forked, must be the same; the forked run must have
/// forked.
fn same_both_ways(command: &[&str], dialect: DialectChoice) {
    let fresh = sim_check::transcripts(&config(command, dialect.clone(), true))
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        fresh.starts.contains("each started afresh: --fresh-starts"),
        "{}",
        fresh.starts
    );
    let forked = sim_check::transcripts(&config(command, dialect, false))
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        forked.starts.contains("1 started afresh"),
        "{command:?}: {}",
        forked.starts
    );
    let (fresh, forked) = (fresh.checks, forked.checks);
    assert_eq!(fresh.len(), sim_check::SIM_CHECKS.len());
    assert_eq!(fresh.len(), forked.len());
    for ((name, a), (_, b)) in fresh.iter().zip(&forked) {
        assert!(a.lines().count() > 10, "{name}: a short transcript:\n{a}");
        if a != b {
            let at = a.lines().zip(b.lines()).position(|(x, y)| x != y);
            panic!("{command:?} {name}: the forked transcript departs at line {at:?}");
        }
    }
}

#[test]
fn a_forked_python_server_gives_a_fresh_starts_transcript_in_every_check() {
    if !python() {
        return;
    }
    same_both_ways(
        &[
            crate::util::python3(),
            "-S",
            "tests/fixtures/chat_server.py",
        ],
        DialectChoice::Tutorial,
    );
    // A faulty one (its failures' transcripts are the ones reviewed).
    same_both_ways(
        &[
            crate::util::python3(),
            "-S",
            "tests/tutorial/selectserver.py",
            "127.0.0.1",
            "0",
        ],
        DialectChoice::Tutorial,
    );
}

#[test]
fn a_forked_c_server_gives_a_fresh_starts_transcript_in_every_check() {
    let Some((dir, program)) = compiled_with("epoll_chat", &["-O1"]) else {
        return;
    };
    let program = program.to_str().expect("a UTF-8 path");
    same_both_ways(&[program], DialectChoice::Auto);
    // With a second thread, it cannot be forked: each session starts afresh, and says why.
    let mut c = config(&[program, "--helper-thread"], DialectChoice::Auto, false);
    c.only = vec!["split-line".into()];
    let checked = sim_check::run(&c, |_| {}).expect("it runs");
    assert!(checked.findings.iter().all(|f| f.verdict == Verdict::Pass));
    assert_eq!(
        checked.starts,
        "2 sessions, each started afresh: it runs 2 threads at its first listen, and a fork \
         would copy one"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_program_whose_second_start_goes_otherwise_starts_afresh_and_the_report_says_where() {
    if !python() {
        return;
    }
    // Its first start opens a socket more than its later ones (a marker file tells them apart).
    let dir = tempfile::tempdir().expect("scratch");
    let marker = dir.path().join("started");
    let script = format!(
        "import os, runpy, socket, sys\n\
         if not os.path.exists({marker:?}):\n    open({marker:?}, 'w').close(); socket.socket()\n\
         sys.argv = ['chat_server.py']\n\
         runpy.run_path('tests/fixtures/chat_server.py', run_name='__main__')\n",
        marker = marker.to_str().expect("UTF-8")
    );
    let mut c = config(
        &[crate::util::python3(), "-S", "-c", &script],
        DialectChoice::Tutorial,
        false,
    );
    c.only = vec!["conversation".into()];
    let checked = sim_check::run(&c, |_| {}).expect("it runs");
    assert_eq!(checked.findings[0].verdict, Verdict::Pass);
    assert!(
        checked.starts.starts_with(
            "1 session, started afresh: its second start went \
             otherwise at call"
        ),
        "{}",
        checked.starts
    );
}

#[test]
fn a_start_the_adversary_reaches_goes_afresh_from_the_first_session_it_diverges_in() {
    if !python() {
        return;
    }
    // Before it listens it talks to itself through a socket pair: under the adversary a send
    // or a receive may come out short, so a forked session's replay diverges.
    let script = "import runpy, socket, sys\n\
                  a, b = socket.socketpair()\n\
                  for _ in range(20):\n    a.send(b'x' * 200); b.recv(200)\n\
                  sys.argv = ['chat_server.py']\n\
                  runpy.run_path('tests/fixtures/chat_server.py', run_name='__main__')\n";
    let mut c = config(
        &[crate::util::python3(), "-S", "-c", script],
        DialectChoice::Tutorial,
        false,
    );
    c.only = vec!["conversation".into(), "adversary".into()];
    let checked = sim_check::run(&c, |_| {}).expect("it runs");
    assert!(checked.findings.iter().all(|f| f.verdict == Verdict::Pass));
    assert_eq!(
        checked.starts,
        "3 sessions, each started afresh: a forked session's start came out otherwise than the \
         recorded one (the adversary shortened a send or a receive it made before it listened, \
         say)"
    );
}

#[test]
fn a_forked_program_that_ignores_sigchld_still_has_its_exit_code_told() {
    if !python() {
        return;
    }
    // SIGCHLD ignored, children are reaped by the kernel unwaited: the fork server sets it
    // aside while it serves, so the crash below is told with its own exit code.
    let script = "import runpy, signal, sys\n\
                  signal.signal(signal.SIGCHLD, signal.SIG_IGN)\n\
                  sys.argv = ['chat_server.py', '--bug', 'close-kills']\n\
                  runpy.run_path('tests/fixtures/chat_server.py', run_name='__main__')\n";
    let mut c = config(
        &[crate::util::python3(), "-S", "-c", script],
        DialectChoice::Tutorial,
        false,
    );
    c.only = vec!["conversation".into(), "quick-close".into()];
    let checked = sim_check::run(&c, |_| {}).expect("it runs");
    assert!(checked.starts.contains("1 forked"), "{}", checked.starts);
    let quick = &checked.findings[1];
    assert_eq!(quick.verdict, Verdict::Fail, "{quick}");
    assert!(
        quick.evidence[0].contains("it exited with code 1"),
        "{quick}"
    );
}
