//! `selectlab view FILE`: a transcript drawn as an HTML page (or an SVG picture).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::view::{self, MAX_VIEW_INPUT_BYTES};

#[derive(clap::Args)]
pub(super) struct ViewArgs {
    /// A transcript: a `sim --transcript` file, an insta `.snap`, or a saved `check --sim`
    /// or `zoo` report with its transcript.
    file: PathBuf,
    /// Where to write the page [default: FILE with `.html`].
    #[arg(short, long)]
    out: Option<PathBuf>,
    /// Write a static SVG picture instead of the page [default name: FILE with `.svg`].
    #[arg(long)]
    svg: bool,
}

impl ViewArgs {
    pub(super) fn run(self, out: &mut dyn Write) -> ExitCode {
        let text = match read_bounded(&self.file) {
            Ok(text) => text,
            Err(why) => return super::cannot_run("view", why),
        };
        let timeline = view::parse::parse(&text);
        if timeline.events.is_empty() {
            return super::cannot_run(
                "view",
                format!(
                    "{}: no transcript records or notes in it (lines like `[   0.000000] fd3 accept(...) = 4`)",
                    self.file.display()
                ),
            );
        }
        let (drawn, ext) = if self.svg {
            (view::svg(&timeline), "svg")
        } else {
            let title = format!("selectlab view: {}", self.file.display());
            (view::page(&timeline, &title), "html")
        };
        let path = self.out.unwrap_or_else(|| self.file.with_extension(ext));
        if let Err(e) = std::fs::write(&path, drawn) {
            return super::cannot_run("view", format!("writing {}: {e}", path.display()));
        }
        let _ = writeln!(
            out,
            "view: {}: {} hosts, {} rows, {} deliveries",
            path.display(),
            timeline.lanes.len(),
            timeline.events.len(),
            timeline.arrows.len()
        );
        ExitCode::SUCCESS
    }
}

/// The file's text, refused past [`MAX_VIEW_INPUT_BYTES`]; bytes that are not UTF-8 are shown
/// as U+FFFD.
fn read_bounded(path: &PathBuf) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    (file.take(MAX_VIEW_INPUT_BYTES + 1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_VIEW_INPUT_BYTES {
        return Err(format!(
            "{}: over {} MiB; a transcript that long cannot be drawn",
            path.display(),
            MAX_VIEW_INPUT_BYTES >> 20
        ));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
