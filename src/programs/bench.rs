//! `selectlab bench chat`: the chat workload the project is compared on (clients each sending
//! lines that fan out to every other client), in the simulator or on real loopback sockets
//! (selectlab's server in a thread, [`load`](super::load) as the clients). A measurement, not
//! a test: it prints numbers and asserts nothing about them.

use std::io::Write;
use std::time::Instant;

use crate::chat::session::{Session, SessionConfig, Step};
use crate::error::SockError;
use crate::kernel::Mode;
use crate::readiness::Backend;

/// Bytes in each benchmark line (the comparison workload's 64).
pub const BENCH_LINE_BYTES: usize = 64;

/// Whether the simulator can run `clients` clients; never clamps silently: the error names the
/// limit.
pub fn check_sim_clients(clients: usize) -> Result<(), String> {
    let max = crate::chat::session::MAX_SESSION_CLIENTS;
    if (2..=max).contains(&clients) {
        Ok(())
    } else {
        Err(format!(
            "--clients must be 2 to {max} in the simulator (MAX_SESSION_CLIENTS), not {clients}"
        ))
    }
}

/// Runs `clients` simulated clients sending `lines` lines each (round-robin) through the chat
/// room on `backend`, without transcripts, and prints the deliveries per second.
pub fn sim_chat(
    clients: usize,
    lines: usize,
    backend: Backend,
    mode: Mode,
    out: &mut dyn Write,
) -> Result<(), SockError> {
    check_sim_clients(clients).map_err(|_| SockError::Error(nix::errno::Errno::EINVAL))?;
    let mut steps: Vec<Step> = (0..clients).map(Step::Join).collect();
    for i in 0..lines {
        for c in 0..clients {
            let mut text = format!("{c:02}:{i:06} ").into_bytes();
            text.resize(BENCH_LINE_BYTES - 1, b'.');
            steps.push(Step::Say(c, text));
        }
    }
    let config = SessionConfig {
        backend,
        mode,
        transcript: false,
        ..SessionConfig::default()
    };
    let started = Instant::now();
    let outcome = Session::new(config)?.run(&steps)?;
    let secs = started.elapsed().as_secs_f64();
    let delivered: usize = outcome.clients.iter().map(|c| c.lines.len()).sum();
    let sent = clients * lines;
    let _ = writeln!(
        out,
        "sim chat: {clients} clients x {lines} lines of {BENCH_LINE_BYTES} bytes, {backend}{}",
        mode_name(mode)
    );
    let _ = writeln!(out, "  lines sent         {sent}");
    let _ = writeln!(
        out,
        "  lines delivered    {delivered} (including join notices)"
    );
    let _ = writeln!(out, "  server events      {}", outcome.stats.events);
    let _ = writeln!(
        out,
        "  server sends       {} ({:.2} lines per send)",
        outcome.stats.sends,
        delivered as f64 / outcome.stats.sends.max(1) as f64
    );
    let _ = writeln!(out, "  wall time          {secs:.3} s");
    let _ = writeln!(
        out,
        "  deliveries/s       {:.0}",
        delivered as f64 / secs.max(1e-9)
    );
    Ok(())
}

/// Runs selectlab's server on real loopback sockets (`backend`, default flags) under
/// `clients` x `lines` lines of [`BENCH_LINE_BYTES`], and prints the load's report.
pub fn real_chat(
    clients: usize,
    lines: usize,
    backend: Backend,
    mode: Mode,
    out: &mut dyn Write,
) -> Result<bool, SockError> {
    use super::chat_cli::{ServeOptions, serve_in_thread};
    use super::load::{self, LoadConfig};
    let deadline = std::time::Duration::from_secs(120);
    let options = ServeOptions {
        backend,
        mode,
        limits: crate::chat::server::Limits::default(),
        stop_after: Some(clients as u64),
        run_for: Some(deadline + std::time::Duration::from_secs(1)),
        bugs: crate::zoo::Bugs::NONE,
    };
    let (addr, server) = serve_in_thread(options)?;
    let config = LoadConfig {
        addr,
        clients,
        lines,
        bytes: BENCH_LINE_BYTES,
        deadline,
        progress: false,
    };
    let report = load::run(&config);
    let _ = server.join();
    match report {
        Ok(r) => {
            let _ = writeln!(
                out,
                "real chat: selectlab chat serve --backend {backend}{}",
                mode_name(mode)
            );
            let _ = writeln!(out, "{r}");
            Ok(r.perfect())
        }
        Err(e) => {
            let _ = writeln!(out, "real chat: {e}");
            Ok(false)
        }
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match (mode.edge, mode.oneshot) {
        (true, _) => " (edge-triggered)",
        (_, true) => " (one-shot)",
        _ => "",
    }
}
