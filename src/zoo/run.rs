//! `selectlab zoo`: switch each bug on in turn, run the detectors, report who caught it.
//!
//! Before any bug, the detectors run on the reference programs (no bug switched on): a
//! detector that complains about them would catch everything and prove nothing, so that is
//! reported as a false alarm and fails the run.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;

use super::detect::{self, Budget, Caught, Class};
use super::{Bug, Bugs, CATALOGUE};

/// How a zoo run goes.
#[derive(Debug, Clone)]
pub struct Options {
    /// The bugs to switch on, one at a time (empty: all of them).
    pub bugs: Vec<Bug>,
    /// What the random detectors may spend per bug.
    pub budget: Budget,
    /// Run every class on every bug (for the table in `docs/src/zoo.md`), not only until one
    /// catches it.
    pub matrix: bool,
    /// Whether the real-socket load may run (it needs loopback and a few seconds per bug).
    pub real: bool,
    /// Where counterexample transcripts go (`None`: nowhere).
    pub out_dir: Option<PathBuf>,
    /// Whether each counterexample is drawn too, as `<out_dir>/<name>.html`.
    pub html: bool,
    /// Seed of the random detectors' inputs.
    pub seed: u64,
    /// Print one JSON object per bug ([`BugRecord`]) instead of the text report.
    pub json: bool,
    /// Where to show the bugs done so far ([`ProgressBar::hidden`] for nowhere); its length
    /// is set here.
    pub progress: ProgressBar,
}

/// One bug's verdict as `selectlab zoo --json` prints it, one object per line. The field names
/// are an interface (`docs/src/commands.md` lists them, a test parses them back).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BugRecord {
    /// The bug's catalogue name (`reference` for the bug-free programs' false alarm).
    pub name: String,
    /// `caught`, `missed` or `false-alarm`.
    pub verdict: String,
    /// The first class that caught it (`generic`, `targeted`, `adversary`, `fuzzer`,
    /// `real-load`).
    pub detector: Option<String>,
    /// Cases that class ran, the failing one included.
    pub cases: Option<u32>,
    /// Wall time spent on the bug, in seconds (to the millisecond).
    pub seconds: f64,
    /// The kind of fault it showed ([`Symptom::name`](crate::session::Symptom::name)).
    pub kind: Option<String>,
    /// What failed, in one line.
    pub symptom: Option<String>,
    /// Every class that caught it (with `--matrix`, every class ran).
    pub caught_by: Vec<String>,
    /// Where its counterexample transcript was written, if it was.
    pub counterexample: Option<String>,
}

impl BugRecord {
    fn new(name: &str, verdict: &str, v: &Verdict, counterexample: Option<String>) -> BugRecord {
        BugRecord {
            name: name.to_string(),
            verdict: verdict.to_string(),
            detector: v.caught.as_ref().map(|c| c.class.name().to_string()),
            cases: v.caught.as_ref().map(|c| c.cases),
            seconds: crate::json::round(v.elapsed.as_secs_f64(), 3),
            kind: v.caught.as_ref().map(|c| c.symptom.name().to_string()),
            symptom: v.caught.as_ref().map(|c| c.headline.clone()),
            caught_by: v
                .by_class
                .iter()
                .filter(|(_, caught)| *caught)
                .map(|(class, _)| class.name().to_string())
                .collect(),
            counterexample,
        }
    }
}

/// What happened to one bug.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The bug.
    pub bug: Bug,
    /// The first counterexample, if any class found one.
    pub caught: Option<Caught>,
    /// The classes that ran, and whether each caught it.
    pub by_class: Vec<(Class, bool)>,
    /// Wall time spent on it.
    pub elapsed: Duration,
}

/// Runs the classes the options allow on `bugs`: in order until one catches it, or all of
/// them in matrix mode.
pub fn hunt(bug: Option<Bug>, options: &Options) -> Verdict {
    let bugs = bug.map_or(Bugs::NONE, Bugs::only);
    let started = Instant::now();
    let mut caught: Option<Caught> = None;
    let mut by_class = Vec::new();
    for class in Class::ALL {
        if class == Class::RealLoad && !options.real {
            continue;
        }
        if caught.is_some() && !options.matrix {
            break;
        }
        let found = match class {
            Class::Generic | Class::Targeted => detect::faithful(bugs, options.budget, class),
            Class::Adversary => detect::adversary(bugs, options.budget, options.seed),
            Class::Fuzzer => detect::fuzzer(bugs, options.budget, options.seed),
            Class::RealLoad => detect::real_load(bugs),
        };
        by_class.push((class, found.is_some()));
        if caught.is_none() {
            caught = found;
        }
    }
    Verdict {
        bug: bug.unwrap_or(Bug::EtWriteQuantumNoRearm),
        caught,
        by_class,
        elapsed: started.elapsed(),
    }
}

/// The whole run: prints one line per bug and the summary; true when the reference passed
/// and every bug was caught.
pub fn run(options: &Options, out: &mut dyn Write) -> bool {
    let chosen: Vec<Bug> = if options.bugs.is_empty() {
        CATALOGUE.iter().map(|i| i.bug).collect()
    } else {
        options.bugs.clone()
    };
    let progress = &options.progress;
    progress.set_length(chosen.len() as u64 + 1);
    progress.set_message("reference");
    let reference = hunt(None, options);
    progress.inc(1);
    if let Some(c) = &reference.caught {
        progress.finish_and_clear();
        let _ = writeln!(out, "{}", false_alarm(&reference, c, options));
        return false;
    }
    if !options.json {
        let _ = progress.suspend(|| {
            writeln!(
                out,
                "reference: no detector complains ({:.1} s)",
                reference.elapsed.as_secs_f64()
            )
        });
    }
    let mut verdicts = Vec::new();
    for bug in &chosen {
        progress.set_message(bug.name());
        let v = hunt(Some(*bug), options);
        let _ = progress.suspend(|| writeln!(out, "{}", report(&v, options)));
        progress.inc(1);
        verdicts.push(v);
    }
    progress.finish_and_clear();
    let caught = verdicts.iter().filter(|v| v.caught.is_some()).count();
    if options.json {
        return caught == verdicts.len();
    }
    if options.matrix {
        let _ = write!(out, "{}", matrix(&verdicts));
    }
    let _ = writeln!(out, "zoo: {caught} of {} bugs caught", verdicts.len());
    caught == verdicts.len()
}

/// The report of a detector that fails the bug-free programs; writes the transcript where the
/// options say.
fn false_alarm(reference: &Verdict, c: &Caught, options: &Options) -> String {
    let written = write_evidence(options, "reference", &c.evidence);
    if options.json {
        let record = BugRecord::new("reference", "false-alarm", reference, written);
        return crate::json::line(&record);
    }
    format!(
        "FALSE ALARM: the {} detector fails the reference programs (no bug on){}:\n{}",
        c.class,
        written.map_or(String::new(), |p| format!("; counterexample: {p}")),
        shorten(&c.evidence)
    )
}

/// One bug's report: a text line (and its symptom), or a JSON object; writes the transcript
/// where the options say.
fn report(v: &Verdict, options: &Options) -> String {
    let written = v
        .caught
        .as_ref()
        .and_then(|c| write_evidence(options, v.bug.name(), &c.evidence));
    if options.json {
        let verdict = if v.caught.is_some() {
            "caught"
        } else {
            "missed"
        };
        return crate::json::line(&BugRecord::new(v.bug.name(), verdict, v, written));
    }
    line(v, written)
}

/// The width of a report's bug names: the longest (checked by the zoo's tests).
pub const NAME_COLUMN: usize = 34;

/// One text report line, and the symptom under it.
fn line(v: &Verdict, written: Option<String>) -> String {
    let secs = v.elapsed.as_secs_f64();
    let Some(c) = &v.caught else {
        let ran: Vec<&str> = v.by_class.iter().map(|(c, _)| c.name()).collect();
        return format!(
            "MISSED {:<NAME_COLUMN$} nothing from {} in {secs:.1} s",
            v.bug.to_string(),
            ran.join(", ")
        );
    };
    format!(
        "caught {:<NAME_COLUMN$} by {} after {} case{} ({secs:.2} s){}\n       {}",
        v.bug.to_string(),
        c.class,
        c.cases,
        if c.cases == 1 { "" } else { "s" },
        written.map_or(String::new(), |p| format!("; counterexample: {p}")),
        c.shown_symptom()
    )
}

/// Writes a counterexample to `<out_dir>/<name>.txt`; its path, if it was written.
fn write_evidence(options: &Options, name: &str, evidence: &str) -> Option<String> {
    let dir = options.out_dir.as_ref()?;
    let path = dir.join(format!("{name}.txt"));
    std::fs::create_dir_all(dir).ok()?;
    std::fs::write(&path, evidence).ok()?;
    if options.html {
        let page = crate::view::page(
            &crate::view::parse::parse(evidence),
            &format!("selectlab zoo: {name}"),
        );
        let drawn = path.with_extension("html");
        std::fs::write(&drawn, page).ok()?;
        return Some(format!("{} (drawn: {})", path.display(), drawn.display()));
    }
    Some(path.display().to_string())
}

/// The detector-class table (markdown), and what each class catches alone.
fn matrix(verdicts: &[Verdict]) -> String {
    let mut t = String::from("\n| bug | category |");
    for class in Class::ALL {
        t.push_str(&format!(" {class} |"));
    }
    t.push_str("\n|---|---|");
    t.push_str(&"---|".repeat(Class::ALL.len()));
    t.push('\n');
    let caught_by = |v: &Verdict, class: Class| v.by_class.contains(&(class, true));
    for v in verdicts {
        t.push_str(&format!(
            "| `{}` | {} |",
            v.bug,
            super::info(v.bug).category
        ));
        for class in Class::ALL {
            let ran = v.by_class.iter().any(|(c, _)| *c == class);
            t.push_str(match (ran, caught_by(v, class)) {
                (false, _) => " – |",
                (true, true) => " ✓ |",
                (true, false) => " · |",
            });
        }
        t.push('\n');
    }
    t.push_str("| **caught** | |");
    for class in Class::ALL {
        let n = verdicts.iter().filter(|v| caught_by(v, class)).count();
        t.push_str(&format!(" {n} |"));
    }
    t.push_str("\n| **alone** | |");
    for class in Class::ALL {
        let alone = verdicts
            .iter()
            .filter(|v| {
                caught_by(v, class) && Class::ALL.iter().all(|o| *o == class || !caught_by(v, *o))
            })
            .count();
        t.push_str(&format!(" {alone} |"));
    }
    t.push_str("\n\n");
    t
}

/// The first lines of a long piece of evidence.
fn shorten(evidence: &str) -> String {
    evidence.lines().take(20).collect::<Vec<_>>().join("\n")
}
