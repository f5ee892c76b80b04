//! The README, the changelog and the manual (`docs/src/`) hold to the repository and to the
//! binary: every relative link points to a file that exists, and every `selectlab` command line
//! shown in a fenced code block names a real subcommand and only flags that its `--help` lists.
//! What follows ` -- ` on a command line is the program's own arguments, and is not checked.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_selectlab");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The documents checked: README.md, CHANGELOG.md and every page under docs/src/.
fn documents() -> Vec<PathBuf> {
    let root = Path::new(ROOT);
    let mut found = vec![root.join("README.md"), root.join("CHANGELOG.md")];
    let mut dirs = vec![root.join("docs/src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("docs/src is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The lines of `text`, each with whether it is inside a fenced code block (fences included).
fn lines_with_fences(text: &str) -> Vec<(bool, &str)> {
    let mut fenced = false;
    text.lines()
        .map(|line| {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
                return (true, line);
            }
            (fenced, line)
        })
        .collect()
}

/// The targets of the markdown links and images on a line: `[text](target)`.
fn link_targets(line: &str) -> Vec<&str> {
    line.match_indices("](")
        .filter_map(|(at, _)| {
            let rest = &line[at + 2..];
            let end = rest.find(')')?;
            // A link may carry a title after a space: `[text](target "title")`.
            rest[..end].split_whitespace().next()
        })
        .collect()
}

#[test]
fn every_relative_link_points_to_a_file_that_exists() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = read(&doc);
        for (n, (fenced, line)) in lines_with_fences(&text).into_iter().enumerate() {
            if fenced {
                continue;
            }
            for target in link_targets(line) {
                let external = ["http://", "https://", "mailto:", "#"];
                if external.iter().any(|p| target.starts_with(p)) {
                    continue;
                }
                let file = target.split('#').next().unwrap_or(target);
                checked += 1;
                let resolved = doc.parent().expect("a document's folder").join(file);
                if !resolved.exists() {
                    broken.push(format!("{}:{}: {target}", doc.display(), n + 1));
                }
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} relative links found: is the parser blind?"
    );
    assert!(
        broken.is_empty(),
        "links to nothing:\n{}",
        broken.join("\n")
    );
}

/// What `selectlab ... --help` says: its subcommands and its long flags.
#[derive(Debug, Default)]
struct Help {
    subcommands: BTreeSet<String>,
    flags: BTreeSet<String>,
}

impl Help {
    fn of(path: &[String]) -> Help {
        let out = Command::new(BIN)
            .args(path)
            .arg("--help")
            .output()
            .expect("selectlab runs");
        let text = String::from_utf8(out.stdout).expect("help is UTF-8");
        assert!(out.status.success(), "selectlab {path:?} --help: {text}");
        let mut help = Help::default();
        let mut in_commands = false;
        for line in text.lines() {
            let trimmed = line.trim_start();
            if line.starts_with("Commands:") {
                in_commands = true;
            } else if line.trim().is_empty() || !line.starts_with(' ') {
                in_commands = false;
            } else if in_commands {
                let name = trimmed.split_whitespace().next().unwrap_or_default();
                help.subcommands.insert(name.to_string());
            } else if trimmed.starts_with('-') {
                // `-h, --help  Print help` or `--seed <SEED>  ...`: the first long flag names it.
                let long = trimmed.split_whitespace().find(|w| w.starts_with("--"));
                if let Some(flag) = long.map(flag_name) {
                    help.flags.insert(flag.to_string());
                }
            }
        }
        help
    }
}

/// Every `--help` asked for so far, by subcommand path.
#[derive(Default)]
struct Helps(HashMap<Vec<String>, Help>);

impl Helps {
    fn get(&mut self, path: &[String]) -> &Help {
        self.0
            .entry(path.to_vec())
            .or_insert_with(|| Help::of(path))
    }
}

/// `--flag` out of a word that starts with one, such as `[--flag`, `--flag=3` or `--help,`.
fn flag_name(word: &str) -> &str {
    let word = word.trim_start_matches(['[', '(']);
    assert!(word.starts_with("--"), "{word} is no flag");
    let end = word[2..]
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .map_or(word.len(), |i| i + 2);
    &word[..end]
}

/// The `selectlab` command lines in the fenced code blocks of `text`, as words, without a
/// shell prompt, a trailing comment or `&`, and without what follows ` -- ` (or a
/// synopsis's ` [-- `). A line ending in
/// `\` continues on the next.
fn command_lines(text: &str) -> Vec<Vec<&str>> {
    let mut commands = Vec::new();
    let mut pending: Vec<&str> = Vec::new();
    for (fenced, line) in lines_with_fences(text) {
        if !fenced {
            continue;
        }
        let continues = line.trim_end().ends_with('\\');
        pending.extend(line.split_whitespace().filter(|w| *w != "\\"));
        if continues {
            continue;
        }
        let mut words: Vec<&str> = std::mem::take(&mut pending);
        if words.first() == Some(&"$") {
            words.remove(0);
        }
        let is_selectlab = |w: &&str| *w == "selectlab" || w.ends_with("/selectlab");
        if !words.first().is_some_and(is_selectlab) {
            continue;
        }
        let end = words
            .iter()
            // `--` ends selectlab's own words, and so does `[--` in a synopsis.
            .position(|w| *w == "--" || *w == "[--" || w.starts_with('#') || *w == "&")
            .unwrap_or(words.len());
        words.truncate(end);
        commands.push(words[1..].to_vec());
    }
    commands
}

#[test]
fn every_command_shown_names_a_real_subcommand_and_real_flags() {
    let mut helps = Helps::default();
    let top = helps.get(&[]).subcommands.clone();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        for words in command_lines(&read(&doc)) {
            checked += 1;
            let shown = format!("{}: selectlab {}", doc.display(), words.join(" "));
            let Some(sub) = words.first().filter(|w| top.contains(**w)) else {
                wrong.push(format!("{shown}\n    no such subcommand"));
                continue;
            };
            // `selectlab bench fuzz ...`: descend while the next word is a subcommand.
            let mut path = vec![sub.to_string()];
            for word in &words[1..] {
                if helps.get(&path).subcommands.contains(*word) {
                    path.push(word.to_string());
                } else {
                    break;
                }
            }
            let known = &helps.get(&path).flags;
            for word in &words[path.len()..] {
                if !word.trim_start_matches(['[', '(']).starts_with("--") {
                    continue;
                }
                let flag = flag_name(word);
                if !known.contains(flag) {
                    wrong.push(format!(
                        "{shown}\n    `selectlab {} --help` lists no {flag}",
                        path.join(" ")
                    ));
                }
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} command lines found: is the parser blind?"
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
