//! Every script in tests/scenarios/ runs on the kernel and in the simulator, and each must hold
//! every expectation and agree line by line; and the parser's errors name their line.
//!
//! One #[test] runs all scripts in turn, and no other test here opens descriptors: tests of one
//! binary run on parallel threads, and a script that closes a registered descriptor must not see
//! its number reused by another thread. (The command-line tests, which spawn processes and so
//! open pipes, live in scenario_cli.rs.)

use std::path::PathBuf;

use selectlab::readiness::Backend;
use selectlab::scenario::judge::{Transport, judge};
use selectlab::scenario::parse::parse;

fn scenario_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/scenarios exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "scn"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_scenario_holds_on_both_transports() {
    let files = scenario_files();
    assert!(
        files.len() >= 30,
        "the library has {} scenarios",
        files.len()
    );
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("readable scenario");
        let script = parse(&path.display().to_string(), &text).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            script.commands.iter().any(|c| c.expect.is_some()),
            "{}: no expectation",
            path.display()
        );
        let mut report = Vec::new();
        if !judge(&script, Transport::Both, Backend::Epoll, false, &mut report).0 {
            failures.push(String::from_utf8_lossy(&report).into_owned());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn parse_errors_name_their_line() {
    let cases = [
        ("frob a", "unknown command `frob`"),
        ("pair a", "wrong number of arguments to `pair`"),
        ("pair a b\npair a c", "name `a` is already used"),
        ("send a 1", "unknown name `a`"),
        ("pair a b\nregister a sideways", "unknown flag `sideways`"),
        ("pair a b\nregister a in edge", "unknown mode `edge`"),
        ("pair a b\nwait 0 max 0", "`max` must be at least 1"),
        ("pair a b\nwait -1", "`-1` is not a number"),
        ("pair a b\nwait 99999999", "larger than the limit"),
        ("pair a b\nsend a \"unterminated", "unterminated string"),
        ("pair a b\nrecv a 1 =>", "`=>` needs an expected result"),
        ("pair a b\nrecv a 1 => EAGIAN", "can never match"),
        (
            "pair a b\nbackend poll",
            "`backend` must come once, before the first command",
        ),
        ("backend kqueue", "unknown backend `kqueue`"),
        ("pair 1a b", "is not a name"),
        ("tcp a b v5", "expected v4 or v6"),
        ("pair a b\ndup d a at", "usage: dup D A [at N]"),
        ("timer t sundial", "unknown clock `sundial`"),
        ("timer t\narm t 5 every", "usage: arm T MS [every MS] [abs]"),
        (
            "timer t\narm t 5 abs abs",
            "usage: arm T MS [every MS] [abs]",
        ),
    ];
    for (text, message) in cases {
        let err = parse("t.scn", text).expect_err(text);
        let line = text.lines().count();
        assert_eq!(err.line, line, "{text}");
        let shown = err.to_string();
        assert!(
            shown.starts_with(&format!("t.scn:{line}: error: ")),
            "{shown}"
        );
        assert!(shown.contains(message), "{text}: {shown}");
    }
}

#[test]
fn quoted_text_comments_and_expectations() {
    let s = parse("t.scn", "pair a b # a comment\nsend a \"hi # not a comment\\n\" => 17 # done\nwait 0 => a:in b:in,out\n").unwrap();
    assert_eq!(s.commands.len(), 3);
    assert_eq!(s.commands[0].text, "pair a b");
    assert_eq!(s.commands[1].text, "send a \"hi # not a comment\\n\"");
    assert_eq!(
        s.commands[2].expect,
        Some(selectlab::scenario::Expect::Exactly("a:in b:in,out".into()))
    );
    match &s.commands[1].op {
        selectlab::scenario::Op::Send {
            payload: selectlab::scenario::Payload::Text(t),
            ..
        } => {
            assert_eq!(t, b"hi # not a comment\n")
        }
        other => panic!("{other:?}"),
    }
}
