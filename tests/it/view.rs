//! `selectlab view`: a real counterexample from the suite drawn as a page and as SVG, and the
//! page loaded in headless Chromium (Debian's package; CI installs it): no console error, one
//! lane per host, an arrow per delivery, the script's row count shown, a screenshot in
//! `target/view/`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A shrunk counterexample the suite keeps: the tutorial's server dying mid-broadcast.
const COUNTEREXAMPLE: &str = "snapshots/tutorial_server_dies_in_broadcast.snap";

fn out_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("view");
    std::fs::create_dir_all(&dir).expect("target/tmp/view");
    dir
}

fn view(args: &[&str]) -> std::process::Output {
    crate::util::selectlab(&[&["view"], args].concat())
}

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

#[test]
fn a_counterexample_becomes_a_page_and_a_picture_with_its_lanes_and_deliveries() {
    let text = std::fs::read_to_string(COUNTEREXAMPLE).expect("the snapshot");
    let timeline = selectlab::view::parse::parse(&text);
    assert_eq!(timeline.lanes, ["main", "c1", "c2", "c3"]);
    assert!(timeline.failed && timeline.events.iter().any(|e| e.failure));
    assert!(
        timeline.arrows.len() > 10,
        "{} arrows",
        timeline.arrows.len()
    );

    let dir = out_dir();
    let html = dir.join("counterexample.html");
    let run = view(&[COUNTEREXAMPLE, "-o", html.to_str().unwrap()]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let page = std::fs::read_to_string(&html).expect("the page");
    for fetch in ["<link", "src=\"http", "src='http", "@import", "url(http"] {
        assert!(!page.contains(fetch), "the page fetches nothing: {fetch}");
    }
    assert_eq!(count(&page, "class=\"arrow\""), timeline.arrows.len());
    assert_eq!(count(&page, "<g class=\"ev "), timeline.events.len());

    let svg = dir.join("counterexample.svg");
    let run = view(&["--svg", COUNTEREXAMPLE, "-o", svg.to_str().unwrap()]);
    assert!(run.status.success());
    let picture = std::fs::read_to_string(&svg).expect("the picture");
    assert!(picture.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert_eq!(count(&picture, "class=\"arrow\""), timeline.arrows.len());
}

#[test]
fn a_file_without_a_transcript_or_missing_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("a folder");
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "nothing here\n").unwrap();
    let run = view(&[empty.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("no transcript records"));
    let run = view(&[dir.path().join("absent.txt").to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("absent.txt"));
}

/// Headless Chromium with the flags a closed network needs.
fn chromium(profile: &Path, extra: &[&str], page: &Path) -> Option<std::process::Output> {
    let binary = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok())?;
    let output = Command::new("timeout")
        .arg("120")
        .arg(binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    Some(output)
}

#[test]
fn the_page_works_in_a_real_browser() {
    let dir = out_dir();
    let html = dir.join("browser.html");
    let run = view(&[COUNTEREXAMPLE, "-o", html.to_str().unwrap()]);
    assert!(run.status.success());
    let text = std::fs::read_to_string(COUNTEREXAMPLE).unwrap();
    let timeline = selectlab::view::parse::parse(&text);
    let profile = tempfile::tempdir().expect("a profile folder");
    let Some(dom) = chromium(profile.path(), &["--dump-dom"], &html) else {
        eprintln!("skipped: chromium is not installed (CI installs the Debian package chromium)");
        return;
    };
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let log = String::from_utf8_lossy(&dom.stderr);
    let console_errors: Vec<&str> = (log.lines())
        .filter(|l| l.contains("CONSOLE") && (l.contains("ERROR") || l.contains("Uncaught")))
        .collect();
    assert!(
        console_errors.is_empty(),
        "console errors: {console_errors:?}"
    );
    let dom = String::from_utf8_lossy(&dom.stdout);
    for (i, lane) in timeline.lanes.iter().enumerate() {
        assert!(
            dom.contains(&format!("class=\"head lane-{i}\"")),
            "lane {lane}"
        );
    }
    assert_eq!(
        count(&dom, "class=\"arrow\""),
        timeline.arrows.len(),
        "an arrow per delivery"
    );
    let rows = timeline.events.len();
    assert!(
        dom.contains(&format!("{rows} of {rows} rows shown")),
        "the page's script ran to the end"
    );
    let shot = dir.join("counterexample.png");
    let profile = tempfile::tempdir().expect("a profile folder");
    let arg = format!("--screenshot={}", shot.display());
    let taken = chromium(profile.path(), &[&arg, "--window-size=1400,1000"], &html).unwrap();
    assert!(
        taken.status.success(),
        "{}",
        String::from_utf8_lossy(&taken.stderr)
    );
    assert!(
        std::fs::metadata(&shot).is_ok_and(|m| m.len() > 10_000),
        "a screenshot"
    );
}
