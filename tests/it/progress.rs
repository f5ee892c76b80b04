//! Long runs draw a progress line on standard error when it is a terminal, and nothing when it
//! is not (logs and CI output stay clean). The terminal is `script`'s pseudo-terminal.

use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_selectlab");
/// A short simulated bench: 4 clients, 30 rounds.
const BENCH: [&str; 6] = ["bench", "chat", "--clients", "4", "--lines", "30"];

#[test]
fn the_bar_shows_on_a_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: script (util-linux) is not installed");
        return;
    }
    let command = format!("{BIN} {}", BENCH.join(" "));
    let run = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script runs");
    let seen = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{seen}");
    assert!(seen.contains("bench ["), "no bar on the terminal: {seen:?}");
    assert!(
        seen.contains("/30 rounds"),
        "the bar counts rounds: {seen:?}"
    );
}

#[test]
fn nothing_but_the_report_when_not_a_terminal() {
    let run = Command::new(BIN)
        .args(BENCH)
        .stdin(Stdio::null())
        .output()
        .expect("selectlab runs");
    assert!(run.status.success());
    assert_eq!(String::from_utf8_lossy(&run.stderr), "");
    let report = String::from_utf8_lossy(&run.stdout);
    assert!(
        !report.contains('\r') && !report.contains("bench ["),
        "{report:?}"
    );
}
