//! `selectlab demo`: a simulated session printed as a transcript.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::error::SockError;
use crate::programs::{demo, lt_vs_et};
use crate::sim::capture::Capture;

#[derive(clap::Args)]
pub(super) struct DemoArgs {
    /// Which demo: `chat` (the default), `goodbye` or `lt-vs-et`.
    #[arg(default_value = "chat", value_parser = ["chat", "goodbye", "lt-vs-et"])]
    which: String,
    /// The run's seed: every random choice it makes (here, the adversary's).
    #[arg(long, default_value_t = super::DEFAULT_SEED)]
    seed: u64,
    /// Let the seeded lawful adversary act: short reads and writes, EINTR, spurious wakeups
    /// (chat and goodbye).
    #[arg(long)]
    adversary: bool,
    /// Draw the session as an HTML page (every kernel call, as `selectlab view` does) in this
    /// file (chat and goodbye).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Write the session's simulated traffic to this pcap file (chat and goodbye).
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
}

impl DemoArgs {
    pub(super) fn run(self, out: &mut dyn Write) -> ExitCode {
        let pictures = self.html.is_some() || self.pcap.is_some();
        if pictures && self.which == "lt-vs-et" {
            return super::cannot_run(
                "demo",
                "lt-vs-et runs on the real kernel: it has no simulated transcript to draw",
            );
        }
        let drawn = match self.which.as_str() {
            "lt-vs-et" => lt_vs_et::demo(out).map(|()| None).map_err(Into::into),
            "goodbye" => self.goodbye(out),
            _ => demo::chat(self.kernel(), out).and_then(|()| self.chat_detail()),
        };
        match drawn {
            Ok(Some((title, text, capture))) => {
                let (html, pcap) = (self.html.as_deref(), self.pcap.as_deref());
                match super::write_pictures(html, pcap, &title, &text, &capture) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(why) => super::cannot_run("demo", why),
                }
            }
            ran => super::status(ran.map(|_| true)),
        }
    }

    /// Who runs the demo's kernel.
    fn kernel(&self) -> demo::Adversary {
        self.adversary.then_some(self.seed)
    }

    /// The flags that chose the kernel, for a page's title.
    fn flags(&self) -> String {
        match self.kernel() {
            None => String::new(),
            Some(seed) => format!(" --adversary --seed {seed}"),
        }
    }

    /// The good-bye demo; its text and traffic, for the pictures asked for.
    fn goodbye(&self, out: &mut dyn Write) -> Result<Option<Drawn>, SockError> {
        let mut text = Vec::new();
        let capture = demo::run(self.kernel(), &mut text, self.pcap.is_some())?;
        let _ = out.write_all(&text);
        let title = format!("selectlab demo goodbye{}", self.flags());
        let wanted = self.html.is_some() || self.pcap.is_some();
        Ok(wanted.then(|| (title, String::from_utf8_lossy(&text).into_owned(), capture)))
    }

    /// For the pictures asked for, the chat session again with every kernel call and its
    /// traffic: the same run (same seed, same calls).
    fn chat_detail(&self) -> Result<Option<Drawn>, SockError> {
        if self.html.is_none() && self.pcap.is_none() {
            return Ok(None);
        }
        let outcome = demo::chat_session(self.kernel(), true)?;
        let title = format!("selectlab demo chat{}", self.flags());
        Ok(Some((title, outcome.transcript, outcome.capture)))
    }
}

/// A page's title, the transcript it draws, and the traffic.
type Drawn = (String, String, Capture);
