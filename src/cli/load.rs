//! `selectlab load`: real clients against any chat server that speaks the tutorial's protocol.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use crate::load::{self, LoadConfig};

#[derive(clap::Args)]
pub(super) struct LoadArgs {
    /// The server, host:port.
    addr: SocketAddr,
    /// Clients (each a reader and a writer thread).
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// Lines each client sends.
    #[arg(long, default_value_t = 2000)]
    lines: usize,
    /// Bytes per line, newline included.
    #[arg(long, default_value_t = 64)]
    bytes: usize,
    /// The whole run's deadline, in seconds.
    #[arg(long = "deadline-s", default_value = "60", value_parser = super::parse_secs)]
    deadline: Duration,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

impl LoadArgs {
    pub(super) fn run(self, out: &mut dyn Write) -> ExitCode {
        let config = LoadConfig {
            addr: self.addr,
            clients: self.clients,
            lines: self.lines,
            bytes: self.bytes,
            deadline: self.deadline,
            progress: super::progress_bar(0, "load"),
        };
        let report = match load::run(&config) {
            Ok(report) => report,
            Err(e) => return super::cannot_run("load", e),
        };
        let _ = if self.json {
            writeln!(out, "{}", report.json())
        } else {
            writeln!(out, "{report}")
        };
        super::status(Ok(report.perfect()))
    }
}
