//! The bug zoo's fast form: every bug switched on in turn must be caught by the suite's
//! simulated detectors within a fixed case budget, and the same detectors must pass the
//! reference programs. A detector that loses its power fails the build here.
//! (`selectlab zoo` runs the full form, real-socket loads included.)

use std::time::Duration;

use selectlab::bugs::Bug;
use selectlab::zoo::CATALOGUE;
use selectlab::zoo::detect::Budget;
use selectlab::zoo::run::{NAME_COLUMN, Options, hunt};

/// Random cases per random detector per bug.
const CASES: u32 = 300;

fn options() -> Options {
    Options {
        bugs: Vec::new(),
        // The case count decides; the time is only a backstop against a hang.
        budget: Budget {
            cases: CASES,
            time: Duration::from_secs(120),
            shrink: false,
        },
        matrix: false,
        real: false,
        out_dir: None,
        html: false,
        seed: 0,
        json: false,
        progress: indicatif::ProgressBar::hidden(),
    }
}

#[test]
fn the_detectors_pass_the_reference_programs() {
    let v = hunt(None, &options());
    if let Some(c) = v.caught {
        panic!("false alarm from the {} detector:\n{}", c.class, c.evidence);
    }
}

/// Every bug is caught, and how is pinned in `snapshots/zoo_fast_form.snap`: which detector,
/// after how many cases, with what symptom. The detectors are deterministic, so a change in a
/// bug's behaviour or a detector's power (a bug caught later, or differently) shows up there
/// for review.
#[test]
fn every_bug_in_the_zoo_is_caught() {
    assert!(CATALOGUE.len() >= 40, "the zoo holds at least 40 bugs");
    let verdicts: Vec<_> = CATALOGUE
        .iter()
        .map(|info| hunt(Some(info.bug), &options()))
        .collect();
    let missed: Vec<Bug> = (verdicts.iter())
        .filter(|v| v.caught.is_none())
        .map(|v| v.bug)
        .collect();
    assert!(missed.is_empty(), "missed: {missed:?}");
    let table: String = (verdicts.iter())
        .filter_map(|v| v.caught.as_ref().map(|c| (v.bug, c)))
        .map(|(bug, c)| {
            format!(
                "{:<NAME_COLUMN$} {:<9} {:>3}  {}\n",
                bug.to_string(),
                c.class.to_string(),
                c.cases,
                c.shown_symptom()
            )
        })
        .collect();
    insta::with_settings!({ snapshot_path => "../../snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!("zoo_fast_form", table);
    });
}

/// `zoo --list` names all 58 catalogue entries, the 14 absent ones with their reason, and
/// asking for an absent one says why it is absent instead of "no bug named".
#[test]
fn the_list_names_the_whole_catalogue_and_an_absent_bug_says_why() {
    let selectlab = env!("CARGO_BIN_EXE_selectlab");
    let out = std::process::Command::new(selectlab)
        .args(["zoo", "--list"])
        .output()
        .expect("selectlab runs");
    let list = String::from_utf8_lossy(&out.stdout);
    assert_eq!(list.lines().count(), 58, "{list}");
    assert_eq!(
        list.lines()
            .filter(|l| l.contains("(not in the zoo: "))
            .count(),
        14
    );
    let out = std::process::Command::new(selectlab)
        .args(["zoo", "--bug", "hup_in_read_eagain_loop"])
        .output()
        .expect("selectlab runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "is in the catalogue but not in the zoo (cannot: on Linux a read with HUP set"
        ),
        "{err}"
    );
}

/// A counterexample is shrunk and carries its transcript, which `selectlab zoo` writes to
/// `target/zoo/NAME.txt` for review (found by cargo-mutants: with the transcript switched off
/// in the detectors' sessions, no test noticed).
#[test]
fn a_counterexample_is_shrunk_and_carries_its_transcript() {
    let mut o = options();
    o.budget.shrink = true;
    let caught = hunt(Some(Bug::BtOfflineNamesLastClient), &o)
        .caught
        .expect("caught");
    let evidence = &caught.evidence;
    assert!(evidence.contains(" steps: "), "{evidence}");
    assert!(evidence.contains("server listens on"), "{evidence}");
}

#[test]
fn the_absent_entries_that_live_in_foreign_fixtures_are_caught_there() {
    if !super::guest::python() {
        return;
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_selectlab"))
        .args(["zoo", "--foreign"])
        .output()
        .expect("selectlab runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for caught in [
        "caught dup_keeps_epoll_interest",
        "caught sigpipe_kills_server",
        "caught failed_del_leaves_stale_entry",
        "caught fd_set_overflow",
        "caught accept_emfile_spin_libuv",
        "caught stale_events_after_fd_reuse",
        "caught unbounded_ws_queue",
    ] {
        assert!(text.contains(caught), "{caught}: {text}");
    }
    assert!(
        text.contains("8 of 8 foreign fixtures' faults caught"),
        "{text}"
    );
}

#[test]
fn the_name_column_is_as_wide_as_the_longest_bug_name() {
    let longest = Bug::ALL.iter().map(|b| b.to_string().len()).max();
    assert_eq!(longest, Some(NAME_COLUMN));
}
