//! `selectlab bench`: how fast the simulator runs the chat workload the project is compared on
//! (clients each sending lines that fan out to every other client). A measurement, not a test:
//! it prints numbers and asserts nothing about them.

use std::io::Write;
use std::time::Instant;

use crate::chat::session::{Session, SessionConfig, Step};
use crate::error::SockError;
use crate::kernel::Mode;
use crate::readiness::Backend;

/// Bytes in each benchmark line (the comparison workload's 64).
pub const BENCH_LINE_BYTES: usize = 64;

/// Runs `clients` simulated clients sending `lines` lines each (round-robin) through the chat
/// room on `backend`, without transcripts, and prints the deliveries per second.
pub fn sim_chat(
    clients: usize,
    lines: usize,
    backend: Backend,
    mode: Mode,
    out: &mut dyn Write,
) -> Result<(), SockError> {
    let clients = clients.clamp(2, crate::chat::session::MAX_SESSION_CLIENTS);
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
        if mode.edge { " (edge)" } else { "" }
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
