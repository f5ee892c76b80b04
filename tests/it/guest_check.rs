//! `selectlab check --sim -- CMD`: the suite's detectors on other people's unmodified servers.
//! The Python fixture passes on both its loops; each of its faults fails on its own symptom,
//! the three real sockets cannot see among them (a busy loop, a registration a dup keeps
//! alive, a lost edge-triggered wake-up);
//! the tutorial's own server is caught with reviewed transcripts; a failure's replay line gives
//! the same report, byte for byte, and its case is shrunk.

use std::process::Command;

use selectlab::check::Verdict;
use selectlab::check::sim::{self as sim_check, DialectChoice, SimCheckConfig};
use selectlab::session::Symptom;

use super::guest::python;

const FIXTURE: &str = "tests/fixtures/chat_server.py";
const TUTORIAL_SERVER: &str = "tests/tutorial/selectserver.py";

fn config(command: &[&str], only: &[&str], shrink: bool) -> SimCheckConfig {
    SimCheckConfig {
        command: command.iter().map(Into::into).collect(),
        seed: 1,
        cases: 8,
        only: only.iter().map(|s| s.to_string()).collect(),
        shrink,
        // The fixture's faults include its wording (no time stamp, no join notice): the
        // tutorial's protocol, judged strictly.
        dialect: DialectChoice::Tutorial,
        launch: Default::default(),
        pcap: None,
        fresh_starts: false,
    }
}

#[test]
fn the_fixture_passes_every_check_on_both_its_loops() {
    if !python() {
        return;
    }
    for lp in ["selectors", "epoll-et"] {
        let c = config(
            &[crate::util::python3(), "-S", FIXTURE, "--loop", lp],
            &[],
            false,
        );
        let findings = sim_check::run(&c, |_| {}).expect("it runs").findings;
        assert_eq!(findings.len(), sim_check::SIM_CHECKS.len());
        for f in &findings {
            assert_eq!(f.verdict, Verdict::Pass, "{lp}: {f}");
        }
    }
}

#[test]
fn each_fault_of_the_fixture_fails_the_check_that_reaches_it_with_its_own_symptom() {
    if !python() {
        return;
    }
    let cases: &[(&[&str], &str, Symptom, &str)] = &[
        (
            &["--bug", "no-framing"],
            "split-line",
            Symptom::Unreadable,
            "not the protocol's",
        ),
        (
            &["--bug", "echo"],
            "conversation",
            Symptom::Echoed,
            "c1 says \"hello, everyone\"",
        ),
        (
            &["--bug", "sendall"],
            "paused-reader",
            Symptom::Lost,
            "c2 left, should be c2 says \"back\"",
        ),
        (
            &["--bug", "eof-ignored"],
            "quick-close",
            Symptom::Spin,
            "it spins",
        ),
        (
            &["--bug", "silent-reset"],
            "conversation",
            Symptom::Lost,
            "should be c3 left",
        ),
        (
            &["--bug", "crawl"],
            "conversation",
            Symptom::Blocked,
            "blocked in a sleep",
        ),
        (&["--bug", "busy-loop"], "idle", Symptom::Spin, "it spins"),
        // libuv#1099: a dup keeps a closed socket's registration, and its end of stream spins.
        (
            &["--bug", "dup-kept"],
            "quick-close",
            Symptom::Spin,
            "it spins",
        ),
        (
            &["--bug", "bare-prefix"],
            "conversation",
            Symptom::Unreadable,
            "not the protocol's",
        ),
        (
            &["--bug", "lose-lines"],
            "burst",
            Symptom::Lost,
            "should be c1 says \"a\"",
        ),
        (
            &["--bug", "merge-lines"],
            "split-line",
            Symptom::Torn,
            "three writes and t",
        ),
        (
            &["--bug", "no-join"],
            "crowd",
            Symptom::Lost,
            "should be c2 entered",
        ),
        (
            &["--bug", "replay-reset"],
            "conversation",
            Symptom::Extra,
            "c3 says \"so it seems\", should be c3 left",
        ),
        (
            &["--bug", "crowd-cap"],
            "many-joins",
            Symptom::TurnedAway,
            "the server turned away the last 50 clients of the crowd",
        ),
        (
            &["--bug", "blocking-slow"],
            "paused-reader",
            Symptom::Blocked,
            "blocked in a send on blocking",
        ),
        (
            &["--bug", "close-kills"],
            "quick-close",
            Symptom::Exited,
            "exited with code 1",
        ),
        (
            &["--bug", "escape-binary"],
            "adversary",
            Symptom::Torn,
            "c3 says",
        ),
        // A recipient's send fails mid-broadcast (a reset): the next in the table is skipped.
        (
            &["--bug", "table-mutated"],
            "resets-during-broadcast",
            Symptom::Lost,
            "should be c7 entered",
        ),
        (
            &["--bug", "fragment-long"],
            "long-line",
            Symptom::Torn,
            "neither refused nor delivered whole",
        ),
        // Edge-triggered, one read per edge: what a read leaves waits for an edge that never
        // comes. Real sockets read a short line whole; a burst leaves bytes behind.
        (
            &["--loop", "epoll-et", "--bug", "et-read-once"],
            "burst",
            Symptom::Lost,
            "should be c1 says \"a\"",
        ),
    ];
    for (args, only, kind, symptom) in cases {
        let command: Vec<&str> = [crate::util::python3(), "-S", FIXTURE]
            .iter()
            .chain(args.iter())
            .copied()
            .collect();
        let findings = sim_check::run(&config(&command, &[only], false), |_| {})
            .expect("it runs")
            .findings;
        let f = &findings[0];
        assert_eq!(f.verdict, Verdict::Fail, "{args:?} passed {only}: {f}");
        assert!(f.evidence[0].contains(symptom), "{args:?}: {f}");
        assert_eq!(f.kind, Some(*kind), "{args:?}: {f}");
        let replay = f.evidence.iter().find(|l| l.starts_with("replay: "));
        assert!(
            replay
                .is_some_and(|l| l.starts_with("replay: selectlab check --sim")
                    && l.ends_with(&args.join(" "))),
            "{f}"
        );
    }
}

/// The report of `selectlab check --sim` for `args`, with the wall times taken out, and the
/// checkout's own path (in a traceback) shown as `.`.
fn report(args: &[&str]) -> (String, Option<i32>) {
    let out = Command::new(env!("CARGO_BIN_EXE_selectlab"))
        .args(["check", "--sim"])
        .args(args)
        .output()
        .expect("selectlab runs");
    let text = String::from_utf8_lossy(&out.stdout).replace(env!("CARGO_MANIFEST_DIR"), ".");
    let timeless: Vec<&str> = text
        .lines()
        .map(|l| {
            l.rsplit_once(" (")
                .filter(|(_, t)| t.ends_with(" s)"))
                .map_or(l, |(l, _)| l)
        })
        .collect();
    (timeless.join("\n"), out.status.code())
}

#[test]
fn the_tutorials_own_server_is_caught_and_its_shrunk_counterexamples_are_reviewed() {
    if !python() {
        return;
    }
    // The tutorial's faults as the checks meet them: each recv chunk is one "say:" (any two-line
    // write shows it first: split-line, conversation, paused-reader); a failed recv replays
    // the previous data (reset-after-lines); a recipient that fails
    // (sendall on a non-blocking socket) is removed from the dict being iterated, and the
    // server dies (slow-reader).
    for (only, name) in [
        ("split-line", "tutorial_server_frames_nothing"),
        ("reset-after-lines", "tutorial_server_replays_after_reset"),
        ("slow-reader", "tutorial_server_dies_in_broadcast"),
    ] {
        let (text, code) = report(&[
            "--only",
            only,
            "--",
            "python3",
            TUTORIAL_SERVER,
            "127.0.0.1",
            "0",
        ]);
        assert_eq!(code, Some(1), "{text}");
        insta::with_settings!({ snapshot_path => "../../snapshots", prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(name, text);
        });
    }
}

#[test]
fn a_failures_replay_line_gives_the_same_report_and_its_case_is_shrunk() {
    if !python() {
        return;
    }
    let (first, code) = report(&[
        "--",
        crate::util::python3(),
        "-S",
        TUTORIAL_SERVER,
        "127.0.0.1",
        "0",
    ]);
    assert_eq!(code, Some(1));
    let replay = first
        .lines()
        .find_map(|l| l.trim().strip_prefix("replay: selectlab check --sim "))
        .expect("a replay line");
    let args: Vec<&str> = replay.split(' ').collect();
    let (again, _) = report(&args);
    // The first failure's whole evidence (its shrunk transcript included) comes back.
    let failure = |text: &str| -> String {
        let mut lines = text.lines().skip_while(|l| !l.starts_with("FAIL"));
        let head = lines.next().unwrap_or_default().to_string();
        let rest: Vec<&str> = lines.take_while(|l| l.starts_with(' ')).collect();
        format!("{head}\n{}", rest.join("\n"))
    };
    assert_eq!(failure(&first), failure(&again));
    assert!(
        failure(&first).contains("shrunk to 3 of 14 steps: c2 joins; c3 joins; c3 sends"),
        "{first}"
    );
    assert!(
        failure(&first).lines().count() > 30,
        "a transcript: {first}"
    );
}

#[test]
fn an_adversary_case_shrinks_its_choices_and_replays_alone_from_its_seed() {
    if !python() {
        return;
    }
    let (text, code) = report(&[
        "--only",
        "adversary",
        "--",
        crate::util::python3(),
        "-S",
        FIXTURE,
        "--bug",
        "escape-binary",
    ]);
    assert_eq!(code, Some(1), "{text}");
    let replay = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("replay: selectlab check --sim "))
        .expect("a replay line");
    assert!(replay.contains("--cases 1 --only adversary"), "{replay}");
    // Faithful Linux shows this fault once a binary line is sent: the shrink turns every
    // kind of adversary choice off.
    assert!(text.contains("adversary left on: nothing"), "{text}");
    let (again, _) = report(&replay.split(' ').collect::<Vec<_>>());
    assert!(again.contains("FAIL adversary"), "{again}");
}
