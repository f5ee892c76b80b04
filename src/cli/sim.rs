//! `selectlab sim -- CMD ARGS...`: runs someone else's unmodified program inside the simulator.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::guest::{self, End, GuestConfig, GuestReport, PeerCommand};

#[derive(clap::Args)]
pub(super) struct SimArgs {
    /// The run's seed, of every random choice it makes: the program's random bytes
    /// (getrandom, /dev/urandom, …), and the lawful adversary's choices with --adversary.
    #[arg(long, default_value_t = super::DEFAULT_SEED)]
    seed: u64,
    /// Let the seeded lawful adversary act on the program's calls: short reads and writes,
    /// EINTR, spurious and partial wake-ups, resets, EMFILE.
    #[arg(long)]
    adversary: bool,
    /// Simulated chat clients that connect once the program listens.
    #[arg(long, default_value_t = 0)]
    clients: usize,
    /// Lines each client says.
    #[arg(long, default_value_t = 10)]
    lines: usize,
    /// Write every simulated call to this file (the transcript format).
    #[arg(long)]
    transcript: Option<PathBuf>,
    /// Draw the transcript as an HTML page (as `selectlab view` does) in this file.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Write what the calls put on the simulated wire (TCP and UDP over IP) to this pcap
    /// file, for Wireshark or tshark; timestamps are virtual time.
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// Another program to run beside it, as a peer (its words split as a shell splits them,
    /// quotes kept whole; it starts once the program listens). Repeat for more.
    #[arg(long = "peer", value_name = "COMMAND")]
    peers: Vec<String>,
    /// A file for the standard input of the peer at the same position (else it has none).
    #[arg(long = "peer-stdin", value_name = "FILE")]
    peer_stdin: Vec<PathBuf>,
    /// Stop after this much virtual time.
    #[arg(long = "run-for-s", default_value = "60", value_parser = super::parse_secs)]
    run_for: Duration,
    /// Start the programs with PATH and HOME alone, not selectlab's own environment.
    #[arg(long)]
    clean_env: bool,
    /// The program and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<OsString>,
}

impl SimArgs {
    pub(super) fn run(self, out: &mut dyn Write) -> ExitCode {
        let mut peers = Vec::with_capacity(self.peers.len());
        for (i, line) in self.peers.iter().enumerate() {
            // Split as a POSIX shell splits words: quotes keep a word with spaces whole.
            let Some(words) = shlex::split(line) else {
                return super::cannot_run("sim", format!("--peer {line:?}: unbalanced quotes"));
            };
            peers.push(PeerCommand {
                command: words.into_iter().map(OsString::from).collect(),
                stdin: self.peer_stdin.get(i).cloned(),
            });
        }
        let config = GuestConfig {
            command: self.command,
            seed: self.seed,
            adversary: self.adversary,
            clients: self.clients,
            lines: self.lines,
            run_for: self.run_for,
            peers,
            env: super::environment(self.clean_env),
            capture: self.pcap.is_some(),
            quiet: false,
        };
        if self.peer_stdin.len() > config.peers.len() {
            return super::cannot_run("sim", "more --peer-stdin files than --peer programs");
        }
        if config.peers.iter().any(|p| p.command.is_empty()) {
            return super::cannot_run("sim", "an empty --peer command");
        }
        let report = match guest::run(&config) {
            Ok(report) => report,
            Err(e) => return super::cannot_run("sim", e),
        };
        // Rendered only when asked for: a run of many calls spends longer writing it out than
        // answering them.
        let transcript = if self.transcript.is_some() || self.html.is_some() {
            report.transcript.to_string()
        } else {
            String::new()
        };
        if let Some(path) = &self.transcript
            && let Err(e) = std::fs::write(path, transcript_file(&config, &transcript))
        {
            return super::cannot_run("sim", format!("writing {}: {e}", path.display()));
        }
        let title = format!("selectlab sim: {}", label(&config.command));
        if let Err(why) = super::write_pictures(
            self.html.as_deref(),
            self.pcap.as_deref(),
            &title,
            &transcript,
            &report.capture,
        ) {
            return super::cannot_run("sim", why);
        }
        let _ = writeln!(out, "{}", summary(&report));
        let peers_ok = report.peers.iter().all(|(_, exit)| *exit == Some(0));
        match (&report.end, &report.delivery) {
            (End::Refused(why), _) => super::cannot_run("sim", format!("refused: {why}")),
            (End::Spinning(_), _) => ExitCode::from(1),
            _ if !peers_ok => ExitCode::from(1),
            // Blocked for ever with nothing to show for it (a server whose peers all did their
            // work and left may well wait for the next one: that is the peers' verdict).
            (End::Blocked(_), None) if report.peers.is_empty() => ExitCode::from(1),
            // With clients, the verdict is theirs: did every one hear every line?
            (_, Some(delivery)) => super::status(Ok(delivery.complete())),
            (End::Exited(code), None) => super::status(Ok(*code == 0)),
            (_, None) => ExitCode::SUCCESS,
        }
    }
}

/// The command line, for a page's title.
fn label(command: &[OsString]) -> String {
    let words: Vec<String> = (command.iter())
        .map(|w| w.to_string_lossy().into_owned())
        .collect();
    shlex::try_join(words.iter().map(String::as_str)).unwrap_or_else(|_| words.join(" "))
}

/// The report's lines: how the run ended, its size, and the delivery.
fn summary(report: &GuestReport) -> String {
    let end = match &report.end {
        End::Exited(code) => format!("the program exited with status {code}"),
        End::Delivered => {
            "every client heard every line; selectlab stopped the program".to_string()
        }
        End::Stopped(why) | End::Blocked(why) => format!("selectlab stopped the program: {why}"),
        End::Refused(why) => format!("refused: {why}"),
        End::Spinning(symptom) => format!("selectlab stopped the program: {symptom}"),
    };
    let mut text = format!(
        "sim: {end}\nsim: {} calls in {:.3} s of virtual time",
        report.calls,
        report.virtual_time.as_secs_f64()
    );
    for (label, exit) in &report.peers {
        match exit {
            Some(code) => {
                text.push_str(&format!("\nsim: peer `{label}` exited with status {code}"))
            }
            None => text.push_str(&format!("\nsim: peer `{label}` had not exited; stopped")),
        }
    }
    if let Some(d) = &report.delivery {
        let heard: usize = d.heard.iter().sum();
        let owed = d.owed_each * d.heard.len();
        text.push_str(&format!("\nsim: delivered {heard} of {owed} lines"));
    }
    text
}

/// A transcript file: a header (the command, the seed, the environment), then the records.
fn transcript_file(config: &guest::GuestConfig, records: &str) -> String {
    let adversary = if config.adversary { "on" } else { "off" };
    format!(
        "# selectlab sim: {}\n# seed {}, adversary {adversary}\n# environment: {}\n{records}",
        label(&config.command),
        config.seed,
        config.env.describe()
    )
}
