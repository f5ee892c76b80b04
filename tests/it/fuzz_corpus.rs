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
