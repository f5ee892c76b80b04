//! A tokio server inside the simulator: the comparison chat server (`compare/tokio/`), built here, on
//! tokio's current_thread runtime. mio wakes its loop through an eventfd and Rust's runtime
//! polls descriptors 0, 1 and 2 at start; both run inside, and `check --sim` judges the server
//! (its unbounded per-client queue is a real fault, named by `memory`). The multi-threaded
//! runtime is refused by name, with the hint.

use std::path::PathBuf;
use std::process::Command;

use crate::guest::{sim, text};

/// Builds the comparison crate's tokio server; its path, or `None` (said) if it cannot be
/// built here (no network for the crates, say).
fn tokio_chat() -> Option<PathBuf> {
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("compare");
    let built = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "selectlab-compare-tokio"])
        .arg("--target-dir")
        .arg(&target)
        .output()
        .expect("cargo runs");
    if !built.status.success() {
        eprintln!(
            "skipped: the tokio server did not build: {}",
            text(&built.stderr)
        );
        return None;
    }
    Some(target.join("debug").join("tokio_chat"))
}

#[test]
fn a_tokio_current_thread_server_runs_inside_and_is_judged() {
    let Some(server) = tokio_chat() else {
        return;
    };
    let server = server.to_str().expect("a UTF-8 path");
    let checks = [
        "conversation",
        "split-line",
        "crowd",
        "slow-reader",
        "memory",
    ];
    let mut command = Command::new(env!("CARGO_BIN_EXE_selectlab"));
    command.args(["check", "--sim"]);
    for check in checks {
        command.args(["--only", check]);
    }
    let out = command
        .args(["--", server, "127.0.0.1:0", "--current-thread"])
        .output()
        .expect("selectlab runs");
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}{}", text(&out.stderr));
    for passed in &checks[..4] {
        assert!(
            report.contains(&format!("PASS {passed}")),
            "{passed}: {report}"
        );
    }
    assert!(
        report.contains("FAIL memory") && report.contains("a queue with no bound"),
        "{report}"
    );
    assert!(
        report.contains("eventfd(0) = "),
        "mio's waker is a simulated eventfd: {report}"
    );

    let threaded = sim(&[
        "--clients",
        "2",
        "--lines",
        "1",
        "--",
        server,
        "127.0.0.1:0",
    ]);
    assert_eq!(threaded.status.code(), Some(2));
    let why = text(&threaded.stderr);
    assert!(
        why.contains("a second thread") && why.contains("current_thread"),
        "{why}"
    );
}
