//! `check --sim` on servers in other dialects (`tests/fixtures/dialects/`): each correct one
//! passes with no dialect flag (its dialect learned and printed), each fault fails with its
//! own symptom and never with a complaint about wording, the tutorial's dialect is still
//! enforced on request, and what cannot be judged says so with exit status 2.

use std::process::Command;

use selectlab::check::sim::{self as sim_check, DialectChoice, SimCheckConfig};
use selectlab::check::{Finding, Verdict};
use selectlab::session::Symptom;

use super::guest::python;

fn fixture(name: &str) -> String {
    format!("tests/fixtures/dialects/{name}.py")
}

fn config(command: &[&str], only: &[&str], dialect: DialectChoice) -> SimCheckConfig {
    SimCheckConfig {
        command: command.iter().map(Into::into).collect(),
        seed: 1,
        cases: 8,
        only: only.iter().map(|s| s.to_string()).collect(),
        shrink: false,
        dialect,
        launch: Default::default(),
        pcap: None,
        fresh_starts: false,
    }
}

fn run(command: &[&str], only: &[&str]) -> Vec<Finding> {
    sim_check::run(&config(command, only, DialectChoice::Auto), |_| {})
        .expect("it runs")
        .findings
}

/// The words a check says when it complains about wording rather than behaviour.
const WORDING: [&str; 4] = [
    "not the protocol's",
    "nobody said",
    "neither a relayed line nor a notice",
    "without the frame",
];

/// Runs every check on the correct server `name` with no dialect flag: its dialect is learned
/// (`relay` its relay frame) and every check passes.
fn passes_in_its_own_dialect(name: &str, relay: &str) {
    if !python() {
        return;
    }
    let findings = run(&[crate::util::python3(), "-S", &fixture(name)], &[]);
    assert_eq!(findings.len(), sim_check::SIM_CHECKS.len() + 1, "{name}");
    let dialect = &findings[0];
    assert_eq!(dialect.name, sim_check::DIALECT_FINDING);
    assert_eq!(dialect.evidence[0], format!("relay: {relay}"), "{name}");
    for f in &findings {
        assert_eq!(f.verdict, Verdict::Pass, "{name}: {f}");
    }
}

#[test]
fn an_address_prefix_server_passes() {
    passes_in_its_own_dialect("addr", "<{n}.{n}.{n}.{n}:{who}> {text}");
}

#[test]
fn an_irc_style_server_passes() {
    passes_in_its_own_dialect("irc", "[{n}:{n}:{n}] <user{who}> {text}");
}

#[test]
fn a_server_that_relays_bare_lines_passes() {
    passes_in_its_own_dialect("bare", "{text}");
}

/// Named by descriptor, with no notices: a newcomer given a departed client's number speaks
/// under that client's old name, and is read as itself.
#[test]
fn a_server_that_names_clients_by_descriptor_passes() {
    if !python() {
        return;
    }
    let findings = run(
        &[crate::util::python3(), "-S", &fixture("bare"), "--fd-names"],
        &[],
    );
    assert_eq!(findings[0].evidence[0], "relay: {who}: {text}");
    for f in &findings {
        assert_eq!(f.verdict, Verdict::Pass, "{f}");
    }
}

#[test]
fn a_server_that_names_its_users_passes() {
    passes_in_its_own_dialect("named", "user{who}: {text}");
}

#[test]
fn a_select_server_in_c_passes_and_its_capacity_is_named_when_a_crowd_passes_it() {
    let flags = selectlab::zoo::foreign::C_FLAGS;
    let Some((dir, program)) = super::guest::compiled_with("dialects/numbered", flags) else {
        return;
    };
    let program = program.to_str().expect("a UTF-8 path");
    let findings = run(&[program], &[]);
    assert_eq!(findings[0].evidence[0], "relay: [{who}] {text}");
    for f in &findings {
        assert_eq!(f.verdict, Verdict::Pass, "{f}");
    }
    // Past descriptor 1023 select cannot watch a connection, and the server closes it at
    // once: the report says so in those words, not as lines that went missing.
    let crowded = run(&[program, "--reserve", "900"], &["many-joins"]);
    let many = &crowded[1];
    assert_eq!(many.verdict, Verdict::Fail, "{many}");
    let named = "turned-away: the server turned away the last 82 clients of the crowd: it closed each at \
                 once, before a byte either way, having let 118 in";
    assert_eq!(many.evidence[0], named, "{many}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_learned_dialect_says_what_each_server_chose() {
    if !python() {
        return;
    }
    let learned = |name: &str| {
        run(&[crate::util::python3(), "-S", &fixture(name)], &["idle"])[0]
            .evidence
            .join("\n")
    };
    let irc = learned("irc");
    for line in [
        "joined: *** user{who} has joined",
        "left: *** user{who} has left",
        "greeting: Welcome, user{who}!",
        "echo: no",
        "empty-lines: relayed",
    ] {
        assert!(irc.contains(line), "{line} in {irc}");
    }
    let bare = learned("bare");
    assert!(
        bare.contains("joined: -\nleft: -") && bare.contains("empty-lines: dropped"),
        "{bare}"
    );
}

#[test]
fn each_fault_fails_with_its_own_symptom_and_never_on_wording() {
    if !python() {
        return;
    }
    // (fixture, fault, the check that reaches it, its kind and words); "dialect" is the calm
    // calibration run, which a server that cannot survive a departure already fails.
    let cases = [
        (
            "addr",
            "sigpipe",
            "resets-during-broadcast",
            Symptom::Signalled,
            "killed by SIGPIPE",
        ),
        (
            "named",
            "sigpipe",
            "resets-during-broadcast",
            Symptom::Signalled,
            "killed by SIGPIPE",
        ),
        (
            "irc",
            "freeze",
            "slow-reader",
            Symptom::Blocked,
            "blocks for ever in send",
        ),
        ("irc", "eof-spin", "dialect", Symptom::Spin, "it spins"),
        (
            "bare",
            "error-path",
            "reset-after-lines",
            Symptom::Exited,
            "exited with code 1",
        ),
        (
            "addr",
            "eof-flood",
            "dialect",
            Symptom::Extra,
            "more than all they gave it could make",
        ),
        ("named", "half-close", "dialect", Symptom::Spin, "it spins"),
        (
            "irc",
            "quit-on-quick-close",
            "quick-close",
            Symptom::Exited,
            "exited with code 0",
        ),
    ];
    for (name, bug, only, kind, symptom) in cases {
        // The calibration runs before any check: ask for the quickest.
        let asked = if only == sim_check::DIALECT_FINDING {
            "idle"
        } else {
            only
        };
        let findings = run(
            &[crate::util::python3(), "-S", &fixture(name), "--bug", bug],
            &[asked],
        );
        let f = findings
            .iter()
            .find(|f| f.name == only)
            .expect("the check ran");
        assert_eq!(f.verdict, Verdict::Fail, "{name} --bug {bug}: {f}");
        assert!(f.evidence[0].contains(symptom), "{name} --bug {bug}: {f}");
        assert_eq!(f.kind, Some(kind), "{name} --bug {bug}: {f}");
        for word in WORDING {
            assert!(!f.evidence[0].contains(word), "{name} --bug {bug}: {f}");
        }
    }
}

#[test]
fn a_program_that_dies_shows_its_last_words() {
    if !python() {
        return;
    }
    let findings = run(
        &[
            crate::util::python3(),
            "-S",
            &fixture("bare"),
            "--bug",
            "error-path",
        ],
        &["reset-after-lines"],
    );
    let f = &findings[1];
    assert!(
        f.evidence
            .iter()
            .any(|l| l.contains("stderr| NameError: name 'peer_fd' is not defined")),
        "{f}"
    );
}

#[test]
fn the_tutorials_dialect_is_still_enforced_on_request() {
    if !python() {
        return;
    }
    let strict = config(
        &[crate::util::python3(), "-S", &fixture("addr")],
        &["conversation"],
        DialectChoice::Tutorial,
    );
    let findings = sim_check::run(&strict, |_| {}).expect("it runs").findings;
    assert_eq!(
        findings.len(),
        1,
        "no calibration when the dialect is given"
    );
    assert_eq!(findings[0].verdict, Verdict::Fail);
    assert!(
        findings[0].evidence[0].contains("not the protocol's"),
        "{}",
        findings[0]
    );
}

#[test]
fn a_server_that_ticks_often_is_not_a_spin() {
    if !python() {
        return;
    }
    // select(2) with a 0.2 ms timeout: 25 000 waits in `idle`'s 5 s, each one timed out.
    let findings = run(
        &[
            crate::util::python3(),
            "-S",
            &fixture("irc"),
            "--tick",
            "0.0002",
        ],
        &["idle"],
    );
    assert!(
        findings.iter().all(|f| f.verdict == Verdict::Pass),
        "{}",
        findings[1]
    );
}

/// `selectlab check --sim` with `args`: its exit status, standard output and error.
fn cli(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_selectlab"))
        .args(["check", "--sim"])
        .args(args)
        .output()
        .expect("selectlab runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn what_cannot_be_judged_says_so_once_with_exit_status_2() {
    if !python() {
        return;
    }
    let threaded = "import socket, threading\n\
        threading.Thread(target=lambda: None).start()\n\
        s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); s.accept()\n";
    for (program, why) in [
        ("print('no server here')", "never listened"),
        (threaded, "cannot run it faithfully"),
    ] {
        let (code, out, err) = cli(&["--", crate::util::python3(), "-S", "-c", program]);
        assert_eq!(code, Some(2), "{out}{err}");
        assert!(err.contains("cannot judge") && err.contains(why), "{err}");
        assert!(!out.contains("FAIL"), "no verdicts: {out}");
    }
}

#[test]
fn a_program_reads_the_file_given_as_its_standard_input_then_end_of_file() {
    if !python() {
        return;
    }
    let dir = tempfile::tempdir().expect("scratch");
    let motd = dir.path().join("motd.txt");
    std::fs::write(&motd, "Ahoy\nthe rest of the file\n").expect("written");
    let irc = fixture("irc");
    let program = [
        "--",
        crate::util::python3(),
        "-S",
        &irc,
        "--greeting-from-stdin",
    ];
    let only = ["--only", "conversation"];
    let given = [
        &["--stdin", motd.to_str().expect("utf-8")][..],
        &only,
        &program,
    ]
    .concat();
    let (code, out, err) = cli(&given);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("greeting: Ahoy, user{who}!"), "{out}");
    // Without it, the console is a pipe where nobody types: a read of it waits for ever.
    let (code, out, err) = cli(&[&only[..], &program].concat());
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(
        err.contains("blocked in a receive on blocking descriptor 0"),
        "{err}"
    );
    let (code, _, err) = cli(&[&["--stdin", "/nonexistent/motd"][..], &program].concat());
    assert_eq!(code, Some(2));
    assert!(err.contains("--stdin /nonexistent/motd"), "{err}");
}

#[test]
fn a_dialect_file_is_read_and_a_bad_one_refused() {
    if !python() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("selectlab-dialect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch");
    let good = dir.join("named.dialect");
    std::fs::write(&good, "relay: user{who}: {text}\njoined: user{who} joined the chat\nleft: user{who} left the chat\n").expect("written");
    let bad = dir.join("bad.dialect");
    std::fs::write(&bad, "relay: no payload here\n").expect("written");
    let named = fixture("named");
    let (code, out, err) = cli(&[
        "--dialect",
        good.to_str().unwrap(),
        "--only",
        "conversation",
        "--",
        crate::util::python3(),
        "-S",
        &named,
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, _, err) = cli(&[
        "--dialect",
        bad.to_str().unwrap(),
        "--",
        crate::util::python3(),
        "-S",
        &named,
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("exactly one {text}"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_blocking_read_after_a_spurious_wake_up_is_a_warning_not_a_fault() {
    if !python() {
        return;
    }
    // freeze keeps its sockets blocking: Linux never wakes a TCP reader for nothing, so only
    // `portability` (select(2) BUGS) can make its read block.
    let command = [
        crate::util::python3(),
        "-S",
        &fixture("addr"),
        "--bug",
        "freeze",
    ];
    let findings = run(&command, &["adversary", "portability"]);
    let verdicts: Vec<&str> = findings.iter().map(|f| f.verdict.name()).collect();
    assert_eq!(verdicts, ["pass", "pass", "warn"], "{findings:#?}");
    assert!(
        findings[2].evidence[0].contains("blocked in a receive"),
        "{}",
        findings[2]
    );
    assert_eq!(selectlab::check::exit_status(&findings, false), 0);
    assert_eq!(selectlab::check::exit_status(&findings, true), 1);
}

#[test]
fn ncat_chat_runs_inside_and_its_four_faults_are_named() {
    if !super::guest::have("ncat") {
        eprintln!("skipped: ncat is not installed");
        return;
    }
    let command = ["ncat", "--chat", "-l", "127.0.0.1", "0"];
    let findings = run(
        &command,
        &[
            "conversation",
            "slow-reader",
            "resets-during-broadcast",
            "adversary",
        ],
    );
    let dialect = findings[0].evidence.join("\n");
    assert!(
        dialect.starts_with("relay: <user{who}> {text}"),
        "{dialect}"
    );
    // Each symptom was confirmed by hand over real loopback sockets (docs: testing your server).
    for (check, symptom) in [
        ("conversation", "without the frame of a relayed line"),
        ("slow-reader", "blocks for ever in send"),
        ("resets-during-broadcast", "getpeername for sd"),
        ("adversary", "the server changed it or made it up"),
    ] {
        let f = findings
            .iter()
            .find(|f| f.name == check)
            .expect("the check ran");
        assert_eq!(f.verdict, Verdict::Fail, "{f}");
        assert!(f.evidence.join("\n").contains(symptom), "{check}: {f}");
    }
}
