//! `selectlab scenario`: scenario scripts (format v1) on the kernel, the simulator, or both.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::readiness::Backend;
use crate::scenario::{judge, parse};

#[derive(clap::Args)]
pub(super) struct ScenarioArgs {
    /// Script files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// real, sim or both (both also requires the two to agree line by line).
    #[arg(long, default_value = "both", value_parser = ["real", "sim", "both"])]
    transport: String,
    /// Backend for scripts without a `backend` header.
    #[arg(long, default_value = "epoll", value_parser = ["select", "poll", "epoll"])]
    backend: String,
    /// Draw the simulator's transcript of the script as an HTML page in this file (one
    /// script, on sim or both).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Write the script's simulated traffic to this pcap file (one script, on sim or both).
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
}

impl ScenarioArgs {
    /// Parses every script first (a malformed one is exit status 2 before anything runs), then
    /// runs them all; exit status 1 if any failed.
    pub(super) fn run(self, out: &mut dyn Write) -> ExitCode {
        let mut scripts = Vec::with_capacity(self.files.len());
        for path in &self.files {
            let name = path.display().to_string();
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("{name}: error: cannot read: {e}");
                    return ExitCode::from(2);
                }
            };
            match parse::parse(&name, &text) {
                Ok(s) => scripts.push(s),
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            }
        }
        let transport = judge::Transport::parse(&self.transport).expect("clap checked the value");
        let backend = Backend::parse(&self.backend).expect("clap checked the value");
        let pictures = self.html.is_some() || self.pcap.is_some();
        if pictures && (scripts.len() != 1 || transport == judge::Transport::Real) {
            eprintln!(
                "selectlab: scenario: --html and --pcap draw one script's simulated run: give one file, on --transport sim or both"
            );
            return ExitCode::from(2);
        }
        let mut failed = 0;
        for script in &scripts {
            let (passed, sim) = judge::judge(script, transport, backend, self.pcap.is_some(), out);
            failed += usize::from(!passed);
            if let Some(sim) = sim.filter(|_| pictures) {
                let title = format!("selectlab scenario {}", script.file);
                let text = sim.transcript().to_string();
                let (html, pcap) = (self.html.as_deref(), self.pcap.as_deref());
                if let Err(why) = super::write_pictures(html, pcap, &title, &text, sim.capture()) {
                    eprintln!("selectlab: scenario: {why}");
                    return ExitCode::from(2);
                }
            }
        }
        let _ = writeln!(out, "{} scenario(s), {failed} failed", scripts.len());
        ExitCode::from(u8::from(failed > 0))
    }
}
