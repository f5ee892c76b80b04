//! `selectlab proxy`: the lawful adversary on real TCP traffic.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::proxy::{self, ProxyConfig, cutter::Profile};

#[derive(clap::Args)]
pub(super) struct ProxyArgs {
    /// Where clients connect (port 0: any; the first line printed says which).
    #[arg(long)]
    listen: SocketAddr,
    /// The server to forward to.
    #[arg(long)]
    to: SocketAddr,
    /// The run's seed, of every random choice it makes: the same seed plans the same cuts.
    #[arg(long, default_value_t = super::DEFAULT_SEED)]
    seed: u64,
    /// faithful (a plain relay) or adversary.
    #[arg(long, default_value = "adversary", value_parser = ["faithful", "adversary"])]
    profile: String,
    /// Let the adversary reset connections (off by default).
    #[arg(long)]
    resets: bool,
    /// Write the transcript here instead of standard error.
    #[arg(long)]
    transcript: Option<PathBuf>,
    /// Most connections at once; one more is closed at once.
    #[arg(long, default_value_t = proxy::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Most bytes held per direction of a connection.
    #[arg(long, default_value_t = 1 << 20)]
    max_buffered_bytes: usize,
    /// Stop after this many seconds; default: run until killed.
    #[arg(long = "run-for-s", value_parser = super::parse_secs)]
    run_for: Option<Duration>,
}

impl ProxyArgs {
    pub(super) fn run(self, out: &mut dyn Write) -> ExitCode {
        let sink: Box<dyn Write + Send> = match &self.transcript {
            Some(path) => match std::fs::File::create(path) {
                Ok(f) => Box::new(std::io::BufWriter::new(f)),
                Err(e) => {
                    return super::cannot_run(
                        "proxy",
                        format!("cannot write {}: {e}", path.display()),
                    );
                }
            },
            None => Box::new(std::io::stderr()),
        };
        let config = ProxyConfig {
            listen: self.listen,
            to: self.to,
            seed: self.seed,
            profile: if self.profile == "faithful" {
                Profile::Faithful
            } else {
                Profile::Adversary
            },
            resets: self.resets,
            max_connections: self.max_connections,
            max_buffered_bytes: self.max_buffered_bytes,
            run_for: self.run_for,
        };
        let (to, profile, seed) = (self.to, &self.profile, self.seed);
        let ran = proxy::run(&config, sink, |bound| {
            let _ = writeln!(out, "proxy on {bound} to {to} ({profile}, seed {seed})");
            let _ = out.flush();
        });
        match ran {
            Ok(stats) => {
                let _ = writeln!(out, "{stats:?}");
                ExitCode::SUCCESS
            }
            Err(e) => super::cannot_run("proxy", e),
        }
    }
}
