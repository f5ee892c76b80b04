//! `selectlab check ADDR`: named conformance checks against any running chat server.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use crate::check::{self, Verdict};

#[derive(clap::Args)]
pub(super) struct CheckArgs {
    /// The server, host:port (required unless --list).
    #[arg(required_unless_present = "list")]
    addr: Option<SocketAddr>,
    /// Clients in the `delivery` check.
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// Run only this check (repeatable).
    #[arg(long)]
    only: Vec<String>,
    /// One JSON object per check.
    #[arg(long)]
    json: bool,
    /// Print each check's name and what it does, and exit.
    #[arg(long)]
    list: bool,
    /// A proxy (`selectlab proxy`) stands between: judge the addresses in notices by
    /// those the server gives each client's lines.
    #[arg(long)]
    via_proxy: bool,
}

impl CheckArgs {
    /// The checks' findings as they come, then a summary line.
    pub(super) fn run(self, out: &mut dyn Write) -> ExitCode {
        if self.list {
            for c in check::CHECKS {
                let _ = writeln!(out, "{:<24} {}", c.name, c.about);
            }
            return ExitCode::SUCCESS;
        }
        let Some(server) = self.addr else {
            return super::cannot_run("check", "an address is required");
        };
        let config = check::Config {
            server,
            clients: self.clients,
            only: self.only,
            via_proxy: self.via_proxy,
        };
        let json = self.json;
        // The bar names the check under way: the one after the last reported.
        let names: Vec<&str> = check::selected(&config)
            .map(|checks| checks.iter().map(|c| c.name).collect())
            .unwrap_or_default();
        let progress = super::progress_bar(names.len() as u64, "check");
        progress.set_message(names.first().copied().unwrap_or_default());
        let printed = check::run(&config, |finding| {
            let _ = progress.suspend(|| {
                if json {
                    writeln!(out, "{}", finding.json())
                } else {
                    writeln!(out, "{finding}")
                }
                .and_then(|()| out.flush())
            });
            progress.inc(1);
            let next = usize::try_from(progress.position()).unwrap_or(usize::MAX);
            progress.set_message(names.get(next).copied().unwrap_or_default());
        });
        progress.finish_and_clear();
        let findings = match printed {
            Ok(findings) => findings,
            Err(e) => return super::cannot_run("check", e),
        };
        if !json {
            let count = |v: Verdict| findings.iter().filter(|f| f.verdict == v).count();
            let _ = writeln!(
                out,
                "check: {} passed, {} failed, {} skipped",
                count(Verdict::Pass),
                count(Verdict::Fail),
                count(Verdict::Skip)
            );
        }
        ExitCode::from(check::exit_status(&findings))
    }
}
