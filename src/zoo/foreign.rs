//! `selectlab zoo --foreign`: the catalogue's entries that cannot be switches of the reference
//! ([`ABSENT`](super::ABSENT)), each placed where it can or cannot live in someone else's
//! program. One held by a fault of a foreign fixture is run through `check --sim`, which must
//! catch it; the others say why no fixture holds them: Linux rules them out for any
//! single-threaded program, or they are a design choice rather than a fault.

use std::time::{Duration, Instant};

use crate::check::Verdict;
use crate::check::sim::{self as sim_check, DialectChoice, SimCheckConfig};
use crate::session::dialect::Dialect;

/// Where a catalogue entry lives outside the reference.
#[derive(Debug, Clone, Copy)]
pub enum Held {
    /// A fault of a foreign fixture.
    Fixture {
        /// Its command line, from the checkout; a first word that is a C source (`.c`) is
        /// compiled first ([`C_FLAGS`]).
        command: &'static [&'static str],
        /// How its lines are read.
        dialect: Reading,
        /// The check that must catch it.
        check: &'static str,
        /// Words of the symptom.
        symptom: &'static str,
    },
    /// Linux gives no single-threaded program the conditions for it (why).
    Linux(&'static str),
    /// A choice of design, not a fault (why).
    Design(&'static str),
}

/// How a fixture's lines are read.
#[derive(Debug, Clone, Copy)]
pub enum Reading {
    /// Its dialect is learned, as `check --sim` does by default.
    Learned,
    /// The tutorial's protocol, strictly.
    Tutorial,
    /// This dialect (for a fault that leaves the calm calibration nothing to learn from).
    Template(&'static str),
}

/// The `named` fixture's dialect, written out.
const NAMED_DIALECT: &str =
    "relay: user{who}: {text}\njoined: user{who} joined the chat\nleft: user{who} left the chat";

/// Each absent entry of the catalogue, by name, and where it lives.
pub const FOREIGN: &[(&str, Held)] = &[
    (
        "et_register_after_failed_send",
        Held::Linux(
            "epoll_ctl re-polls the file as it registers it; only a second thread can take the edge first, and check --sim refuses threads",
        ),
    ),
    (
        "et_pended_send_race",
        Held::Linux("the same window as et_register_after_failed_send: it needs a second thread"),
    ),
    (
        "hup_in_read_eagain_loop",
        Held::Linux("a read with HUP set returns data, then 0 or the pending error, never EAGAIN"),
    ),
    (
        "accept_emfile_spin_libuv",
        Held::Fixture {
            command: &[
                "tests/fixtures/dialects/numbered.c",
                "--bug",
                "emfile-spin",
                "--max-fds",
                "64",
            ],
            dialect: Reading::Learned,
            check: "many-joins",
            symptom: "it spins",
        },
    ),
    (
        "dup_keeps_epoll_interest",
        Held::Fixture {
            command: &[
                "python3",
                "tests/fixtures/chat_server.py",
                "--bug",
                "dup-kept",
            ],
            dialect: Reading::Tutorial,
            check: "quick-close",
            symptom: "it spins",
        },
    ),
    (
        "stale_events_after_fd_reuse",
        Held::Fixture {
            command: &[
                "python3",
                "tests/fixtures/dialects/named.py",
                "--bug",
                "stale-events",
            ],
            dialect: Reading::Learned,
            check: "fd-reuse",
            symptom: "never heard \"made it\"",
        },
    ),
    (
        "failed_del_leaves_stale_entry",
        Held::Fixture {
            command: &[
                "python3",
                "tests/fixtures/dialects/named.py",
                "--bug",
                "failed-del",
            ],
            dialect: Reading::Learned,
            check: "quick-close",
            symptom: "should be c4 says \"someone now\"",
        },
    ),
    (
        "fd_set_overflow",
        Held::Fixture {
            command: &[
                "tests/fixtures/dialects/numbered.c",
                "--bug",
                "fd-set-overflow",
                "--reserve",
                "900",
            ],
            dialect: Reading::Learned,
            check: "many-joins",
            symptom: "killed by SIGABRT",
        },
    ),
    (
        "select_replaced_by_poll",
        Held::Design("moving off select for its 1024 limit is a design decision"),
    ),
    (
        "sigpipe_kills_server",
        Held::Fixture {
            command: &[
                "python3",
                "tests/fixtures/dialects/addr.py",
                "--bug",
                "sigpipe",
            ],
            dialect: Reading::Learned,
            check: "resets-during-broadcast",
            symptom: "killed by SIGPIPE",
        },
    ),
    (
        "epoll_wait_error_as_timeout",
        Held::Linux(
            "the only error Linux gives a correct program's epoll_wait is EINTR, which a timeout rightly stands for",
        ),
    ),
    (
        "eagain_added_to_byte_count",
        // Every line of a calm run loses its newline to the count: nothing is relayed to learn
        // a dialect from, so the fixture's is given.
        Held::Fixture {
            command: &[
                "python3",
                "tests/fixtures/dialects/named.py",
                "--bug",
                "eagain-count",
            ],
            dialect: Reading::Template(NAMED_DIALECT),
            check: "conversation",
            symptom: "should have heard",
        },
    ),
    (
        "short_header_recv_fatal",
        Held::Design(
            "the chat protocol has no binary header; a line split over reads is the framing faults",
        ),
    ),
    (
        "unbounded_ws_queue",
        Held::Fixture {
            command: &[
                "python3",
                "tests/fixtures/dialects/bare.py",
                "--bug",
                "unbounded-queue",
            ],
            dialect: Reading::Learned,
            check: "memory",
            symptom: "a queue with no bound",
        },
    ),
];

/// One entry's outcome.
#[derive(Debug, Clone)]
pub struct ForeignRow {
    /// The catalogue's name.
    pub name: &'static str,
    /// Where it lives.
    pub held: Held,
    /// For a fixture: whether the check caught it, and its first line of evidence.
    pub caught: Option<(bool, String)>,
    /// How long its check took.
    pub elapsed: Duration,
}

/// Runs each fixture entry's check (faithful and seeded as `check --sim` is by default) and
/// gives every entry's row, calling `report` with each as it comes.
pub fn run(mut report: impl FnMut(&ForeignRow)) -> Vec<ForeignRow> {
    let mut rows = Vec::with_capacity(FOREIGN.len());
    let built = tempfile::tempdir();
    for &(name, held) in FOREIGN {
        let started = Instant::now();
        let caught = match held {
            Held::Fixture {
                command,
                dialect,
                check,
                symptom,
            } => Some(match (&built, command.split_first()) {
                (Ok(dir), Some((source, args))) if source.ends_with(".c") => {
                    match compiled(source, dir.path()) {
                        Ok(program) => {
                            let program = program.to_string_lossy();
                            let command: Vec<&str> = std::iter::once(&*program)
                                .chain(args.iter().copied())
                                .collect();
                            judge(&command, dialect, check, symptom)
                        }
                        Err(why) => (false, why),
                    }
                }
                (Err(e), _) => (false, format!("no directory to build in: {e}")),
                _ => judge(command, dialect, check, symptom),
            }),
            _ => None,
        };
        let row = ForeignRow {
            name,
            held,
            caught,
            elapsed: started.elapsed(),
        };
        report(&row);
        rows.push(row);
    }
    rows
}

/// How a C fixture is built: optimised, and with `_FORTIFY_SOURCE` as distributions build
/// their packages (glibc then stops a program that writes past an `fd_set`).
pub const C_FLAGS: &[&str] = &["-O2", "-D_FORTIFY_SOURCE=2"];

/// The C fixture `source` compiled into `dir`, or why it could not be.
fn compiled(source: &str, dir: &std::path::Path) -> Result<std::path::PathBuf, String> {
    let stem = std::path::Path::new(source)
        .file_stem()
        .map_or("fixture".into(), |s| s.to_string_lossy());
    let program = dir.join(&*stem);
    let built = std::process::Command::new("cc")
        .args(C_FLAGS)
        .arg("-o")
        .arg(&program)
        .arg(source)
        .output()
        .map_err(|e| format!("cannot run the C compiler (cc): {e}"))?;
    if !built.status.success() {
        return Err(format!(
            "cc {source} failed: {}",
            String::from_utf8_lossy(&built.stderr).trim()
        ));
    }
    Ok(program)
}

/// Runs `check` on the fixture: caught when it fails (or warns) with `symptom`.
fn judge(command: &[&str], dialect: Reading, check: &str, symptom: &str) -> (bool, String) {
    let dialect = match dialect {
        Reading::Learned => DialectChoice::Auto,
        Reading::Tutorial => DialectChoice::Tutorial,
        Reading::Template(text) => match Dialect::parse(text) {
            Ok(d) => DialectChoice::Given("(the fixture's)".into(), d),
            Err(why) => return (false, why),
        },
    };
    let config = SimCheckConfig {
        command: command.iter().map(Into::into).collect(),
        seed: 1,
        cases: 8,
        only: vec![check.to_string()],
        shrink: false,
        dialect,
        launch: Default::default(),
        pcap: None,
        fresh_starts: false,
    };
    match sim_check::run(&config, |_| {}) {
        Err(why) => (false, why),
        Ok(checked) => {
            let finding = checked.findings.iter().find(|f| f.name == check);
            let first = finding.and_then(|f| f.evidence.first()).cloned();
            let failed =
                finding.is_some_and(|f| matches!(f.verdict, Verdict::Fail | Verdict::Warn));
            let first = first.unwrap_or_default();
            (failed && first.contains(symptom), first)
        }
    }
}

/// A row as the text report prints it.
pub fn line(row: &ForeignRow) -> String {
    let secs = row.elapsed.as_secs_f64();
    match (row.held, &row.caught) {
        (Held::Fixture { command, check, .. }, Some((caught, evidence))) => format!(
            "{} {:<31} by {check} in {} ({secs:.2} s)\n       {evidence}",
            if *caught { "caught" } else { "MISSED" },
            row.name,
            shown(command),
        ),
        (Held::Linux(why), _) => format!("linux  {:<31} {why}", row.name),
        (Held::Design(why), _) => format!("design {:<31} {why}", row.name),
        (Held::Fixture { .. }, None) => format!("MISSED {:<31} not run", row.name),
    }
}

/// A fixture's command as the report names it: the fixture and its arguments, without an
/// interpreter.
fn shown(command: &[&str]) -> String {
    match command.first() {
        Some(first) if first.ends_with(".c") => command.join(" "),
        _ => command.get(1..).unwrap_or_default().join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_absent_entry_has_its_place_and_no_other_does() {
        let absent: Vec<&str> = super::super::ABSENT.iter().map(|a| a.name).collect();
        let placed: Vec<&str> = FOREIGN.iter().map(|(name, _)| *name).collect();
        assert_eq!(placed, absent);
    }
}
