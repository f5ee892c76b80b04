//! Every `--json` output parsed back into its record, from the real command line, and each
//! record's field names held to the manual's table ("JSON records" in `docs/src/commands.md`):
//! the names are an interface, so a field that goes missing or is renamed fails here.

use std::collections::BTreeSet;
use std::process::Command;

use selectlab::check::FindingRecord;
use selectlab::cli::bench::chat::SimChatRecord;
use selectlab::cli::bench::guest::GuestBench;
use selectlab::cli::bench::readiness::PointRecord;
use selectlab::fuzz_campaign::BenchRecord;
use selectlab::load::LoadRecord;
use selectlab::zoo::fuzz::FuzzRecord;
use selectlab::zoo::run::BugRecord;
use serde::de::DeserializeOwned;

use crate::util::start;

const BIN: &str = env!("CARGO_BIN_EXE_selectlab");

/// Runs `selectlab args…` and parses every line of its standard output as a `T`.
fn records<T: DeserializeOwned>(args: &[&str]) -> (Vec<T>, std::process::ExitStatus) {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("selectlab runs");
    let text = String::from_utf8(out.stdout).expect("JSON is UTF-8");
    let parsed = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (parsed, out.status)
}

/// A selectlab chat server in its own process for `lifetime_s` at most.
fn server(lifetime_s: &str) -> (crate::util::Server, String) {
    let args = [
        "chat",
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--run-for-s",
        lifetime_s,
    ];
    let (server, addr) = start(BIN, &args).expect("a server");
    (server, addr.to_string())
}

#[test]
fn check_prints_one_finding_record_per_check() {
    let (_server, addr) = server("30");
    let (findings, status) = records::<FindingRecord>(&[
        "check", &addr, "--only", "prefix", "--only", "binary", "--json",
    ]);
    assert!(status.success());
    let names: Vec<&str> = findings.iter().map(|f| f.check.as_str()).collect();
    assert_eq!(names, ["prefix", "binary"]);
    for f in &findings {
        assert_eq!(f.verdict, "pass", "{f:?}");
        assert!(!f.evidence.is_empty() && f.seconds > 0.0, "{f:?}");
    }
}

#[test]
fn load_prints_one_load_record() {
    let (_server, addr) = server("30");
    let args = [
        "load",
        &addr,
        "--clients",
        "3",
        "--lines",
        "5",
        "--deadline-s",
        "20",
        "--json",
    ];
    let (reports, status) = records::<LoadRecord>(&args);
    assert!(status.success());
    let [r] = &reports[..] else {
        panic!("one record: {reports:?}")
    };
    assert!(
        r.perfect && r.expected == 3 * 2 * 5 && r.delivered == r.expected,
        "{r:?}"
    );
    assert!(r.elapsed_s > 0.0 && r.p50_us <= r.p99_us, "{r:?}");
}

#[test]
fn bench_chat_prints_one_sim_chat_record_with_the_backend_flag_name() {
    let args = [
        "bench",
        "chat",
        "--clients",
        "3",
        "--lines",
        "2",
        "--backend",
        "epoll-et",
        "--json",
    ];
    let (runs, status) = records::<SimChatRecord>(&args);
    assert!(status.success());
    let [r] = &runs[..] else {
        panic!("one record: {runs:?}")
    };
    assert_eq!(
        (r.transport.as_str(), r.backend.as_str()),
        ("sim", "epoll-et")
    );
    // Three join notices to those already in, and each of six lines to two others.
    assert_eq!(r.delivered, 3 + 3 * 2 * 2);
    assert!(r.syscalls > 0 && r.seconds > 0.0);
}

#[test]
fn bench_guest_prints_one_record_with_both_halves_and_the_case_rate() {
    if Command::new(crate::util::python3())
        .arg("-S")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: python3 is not installed");
        return;
    }
    let fixture = "tests/fixtures/chat_server.py";
    let args = [
        "bench",
        "guest",
        "--clients",
        "3",
        "--lines",
        "5",
        "--json",
        "--",
        crate::util::python3(),
        "-S",
        fixture,
    ];
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("selectlab runs");
    assert!(out.status.success());
    // The fixture prints its port, which goes nowhere: the record is the whole output.
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let r: GuestBench = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!((r.clients, r.lines), (3, 5));
    assert!(r.sim_calls > 0 && r.sim_calls_per_s > 0.0, "{r:?}");
    assert!(r.real_deliveries_per_s.is_some_and(|d| d > 0.0), "{r:?}");
    assert!(r.check_sessions_per_s.is_some_and(|s| s > 0.0), "{r:?}");
}

#[test]
fn bench_readiness_prints_one_point_record_per_backend() {
    let args = [
        "bench",
        "readiness",
        "--transport",
        "sim",
        "--idle",
        "10",
        "--json",
    ];
    let (points, status) = records::<PointRecord>(&args);
    assert!(status.success());
    let backends: Vec<&str> = points.iter().map(|p| p.backend.as_str()).collect();
    assert_eq!(backends, ["select", "poll", "epoll"]);
    assert!(
        points
            .iter()
            .all(|p| p.transport == "sim" && p.idle_fds == 10 && p.ns_per_wait > 0.0)
    );
}

#[test]
fn zoo_prints_one_bug_record_per_bug() {
    let dir = std::env::temp_dir().join(format!("selectlab-zoo-json-{}", std::process::id()));
    let out = dir.to_str().expect("a UTF-8 temporary directory");
    let args = [
        "zoo",
        "--bug",
        "et_single_accept",
        "--no-real",
        "--cases",
        "30",
        "--budget-s",
        "20",
        "--out",
        out,
        "--json",
    ];
    let (bugs, status) = records::<BugRecord>(&args);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success());
    let [b] = &bugs[..] else {
        panic!("one record: {bugs:?}")
    };
    assert_eq!(
        (b.name.as_str(), b.verdict.as_str()),
        ("et_single_accept", "caught")
    );
    assert!(
        b.detector.is_some() && b.cases.is_some() && b.symptom.is_some() && b.kind.is_some(),
        "{b:?}"
    );
    assert!(b.caught_by.contains(b.detector.as_ref().unwrap()), "{b:?}");
}

/// The field names of `record` serialized.
fn fields<T: serde::Serialize>(record: T) -> BTreeSet<String> {
    match serde_json::to_value(record).expect("a record serializes") {
        serde_json::Value::Object(map) => map.keys().cloned().collect(),
        other => panic!("a record is an object, not {other}"),
    }
}

#[test]
fn the_manual_lists_every_record_field() {
    let manual =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/src/commands.md"))
            .expect("the manual's page of commands");
    let documented = |command: &str| -> BTreeSet<String> {
        let row = manual
            .lines()
            .find(|l| l.starts_with(&format!("| `{command} --json` |")))
            .unwrap_or_else(|| panic!("the manual's JSON table has no row for {command}"));
        let cells: Vec<&str> = row.split('|').collect();
        cells[3]
            .split(',')
            .map(|f| f.trim().trim_matches('`').to_string())
            .collect()
    };
    assert_eq!(documented("check"), fields(FindingRecord::default()));
    assert_eq!(documented("load"), fields(LoadRecord::default()));
    assert_eq!(documented("bench chat"), fields(SimChatRecord::default()));
    assert_eq!(
        documented("bench readiness"),
        fields(PointRecord::default())
    );
    assert_eq!(documented("zoo"), fields(BugRecord::default()));
    assert_eq!(documented("bench guest"), fields(GuestBench::default()));
    // These two run cargo-fuzz (too slow for `cargo test`); their lines are parsed back by
    // the unit tests of `campaign` and `zoo::fuzz`.
    assert_eq!(documented("bench fuzz"), fields(BenchRecord::default()));
    assert_eq!(documented("zoo --fuzz"), fields(FuzzRecord::default()));
}
