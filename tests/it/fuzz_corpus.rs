//! Every committed fuzz input — the seed corpora in fuzz/corpus/<target>/ and the crashes kept
//! as regressions in fuzz/regressions/<target>/ — replayed through the same library functions
//! the fuzz targets call, on stable, without cargo-fuzz.

use std::path::Path;

use selectlab::fuzzing::{TARGETS, run_target};

fn replay(dir: &Path, target: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(dir.join(target)) else {
        return 0;
    };
    let mut files: Vec<_> = entries.map(|e| e.expect("readable entry").path()).collect();
    files.sort();
    for f in &files {
        let data = std::fs::read(f).expect("readable input");
        let outcome = std::panic::catch_unwind(|| run_target(target, &data));
        assert!(
            matches!(outcome, Ok(true)),
            "{target}: {} fails",
            f.display()
        );
    }
    files.len()
}

#[test]
fn every_corpus_file_and_regression_input_passes() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for target in TARGETS {
        let seeds = replay(&fuzz.join("corpus"), target);
        assert!(seeds > 0, "{target} has no seed corpus");
        replay(&fuzz.join("regressions"), target);
    }
}

/// The inputs `selectlab zoo --fuzz` kept, one per bug the fuzzer found (`fuzz/regressions/zoo/
/// <bug>`): each still fails with its bug switched on, and passes without.
#[test]
fn every_input_the_fuzzer_kept_still_finds_its_bug() {
    use selectlab::bugs::Bugs;
    use selectlab::fuzzing::chat_session;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/zoo");
    let entries = std::fs::read_dir(&dir).expect("fuzz/regressions/zoo exists");
    let mut kept = 0;
    for entry in entries {
        let path = entry.expect("readable entry").path();
        let name = path.file_name().expect("a file").to_string_lossy();
        let bug = Bugs::parse_list(&name).unwrap_or_else(|why| panic!("{name}: {why}"));
        let data = std::fs::read(&path).expect("readable input");
        // A bug may show as a failed property or as one of the server's own assertions.
        let with_bug = std::panic::catch_unwind(|| chat_session(&data, bug));
        assert!(
            !matches!(with_bug, Ok(Ok(()))),
            "{name}: the kept input no longer finds the bug"
        );
        assert_eq!(
            chat_session(&data, Bugs::NONE),
            Ok(()),
            "{name}: a false alarm"
        );
        kept += 1;
    }
    assert!(kept > 0, "no input kept in {}", dir.display());
}
