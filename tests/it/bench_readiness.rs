//! `selectlab bench readiness` measures every point it is asked for (a smoke test of the
//! harness: the numbers themselves are the benchmark's business, never a test's).

use std::time::Duration;

use indicatif::ProgressBar;
use selectlab::cli::bench::readiness::{PointRecord, Transport, json_lines, measure, table};

/// No time budget: each point is measured over the fewest waits the benchmark takes.
const FEWEST_WAITS: Duration = Duration::ZERO;

#[test]
fn every_point_is_measured_on_both_transports() {
    let idle = [1, 20];
    let mut notes = Vec::new();
    let points = measure(
        &[Transport::Real, Transport::Sim],
        &idle,
        FEWEST_WAITS,
        &mut notes,
        &ProgressBar::hidden(),
    );
    assert_eq!(points.len(), 2 * 3 * idle.len());
    for p in &points {
        assert!(p.ns_per_wait.as_ref().is_ok_and(|ns| *ns > 0.0), "{p:?}");
    }
    assert!(notes.is_empty(), "{}", String::from_utf8_lossy(&notes));
    let json = json_lines(&points);
    assert_eq!(json.lines().count(), points.len());
    for (line, p) in json.lines().zip(&points) {
        let record: PointRecord = serde_json::from_str(line).expect("a point record");
        assert_eq!(record.idle_fds, p.idle_fds);
        assert_eq!(record.backend, p.backend.to_string());
    }
    assert_eq!(table(&points, &idle).lines().count(), 2 + 6);
}

#[test]
fn select_past_fd_setsize_is_a_note_not_a_number() {
    let mut notes = Vec::new();
    let points = measure(
        &[Transport::Sim],
        &[2000],
        FEWEST_WAITS,
        &mut notes,
        &ProgressBar::hidden(),
    );
    let select = points
        .iter()
        .find(|p| p.backend.to_string() == "select")
        .unwrap();
    assert!(
        select
            .ns_per_wait
            .as_ref()
            .is_err_and(|why| why.contains("FD_SETSIZE"))
    );
    assert!(String::from_utf8_lossy(&notes).contains("FD_SETSIZE"));
}
