//! `selectlab scenario` on the command line: a malformed script is refused with its file and
//! line and exit status 2 before anything runs; a failed expectation is exit status 1.

use crate::util::selectlab;

#[test]
fn a_malformed_script_is_refused_with_file_and_line_before_anything_runs() {
    let dir = std::env::temp_dir().join(format!("selectlab-scn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.scn");
    std::fs::write(&good, "pair a b\nsend b 1 => 1\n").unwrap();
    let bad = dir.join("bad.scn");
    std::fs::write(&bad, "pair a b\n\n# fine so far\nsend x 1\n").unwrap();
    let out = selectlab(&["scenario", good.to_str().unwrap(), bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.scn:4: error: unknown name `x`"),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "nothing ran: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failed_expectation_is_exit_status_1() {
    let dir = std::env::temp_dir().join(format!("selectlab-scn-fail-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("wrong.scn");
    std::fs::write(&f, "pair a b\nrecv a 1 => 1\n").unwrap();
    let out = selectlab(&["scenario", f.to_str().unwrap(), "--transport", "sim"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("=> EAGAIN   FAILED: expected 1"));
    std::fs::remove_dir_all(&dir).unwrap();
}
