//! `selectlab bench chat`: the chat workload the project is compared on (clients each sending
//! lines that fan out to every other client), in the simulator or on real loopback sockets
//! (selectlab's server in a thread, [`load`](crate::load) as the clients). A measurement, not
//! a test: it prints numbers and asserts nothing about them.

use std::io::Write;
use std::time::Instant;

use indicatif::ProgressBar;

use crate::error::SockError;
use crate::kernel::Mode;
use crate::readiness::Backend;
use crate::session::{Session, SessionConfig, Step};

/// Bytes in each benchmark line (the comparison workload's 64).
pub const BENCH_LINE_BYTES: usize = 64;
/// Clients that connect at once in the simulated benchmark (under the session's listen
/// backlog of 128, so none waits for a SYN retransmission).
const BENCH_JOIN_BATCH: usize = 100;

/// Whether the simulator can run `clients` clients; never clamps silently: the error names the
/// limit.
pub fn check_sim_clients(clients: usize) -> Result<(), String> {
    let max = crate::session::MAX_SESSION_CLIENTS;
    if (2..=max).contains(&clients) {
        Ok(())
    } else {
        Err(format!(
            "--clients must be 2 to {max} in the simulator (MAX_SESSION_CLIENTS), not {clients}"
        ))
    }
}

/// What one simulated run measured.
#[derive(Debug, Clone, Copy)]
pub struct SimRun {
    /// Lines sent.
    pub sent: u64,
    /// Lines delivered (join notices included).
    pub delivered: u64,
    /// The server's events and sends.
    pub events: u64,
    /// The server's sends.
    pub sends: u64,
    /// Simulated calls, server and clients.
    pub syscalls: u64,
    /// Wall-clock seconds.
    pub secs: f64,
}

/// Runs `clients` simulated clients sending `lines` lines each (round-robin) through the chat
/// room on `backend`, without transcripts; clients count what they hear instead of keeping it.
pub fn sim_chat(
    clients: usize,
    lines: usize,
    backend: Backend,
    mode: Mode,
    progress: &ProgressBar,
) -> Result<SimRun, SockError> {
    check_sim_clients(clients).map_err(|_| SockError::Error(nix::errno::Errno::EINVAL))?;
    let config = SessionConfig {
        backend,
        mode,
        transcript: false,
        keep_lines: false,
        // The server's descriptor and the client's, per client.
        fd_limit: 2 * clients + 64,
        ..SessionConfig::default()
    };
    let started = Instant::now();
    let mut session = Session::new(config)?;
    // Clients connect in crowds, as real clients would, each crowd within the listen backlog.
    for joined in (BENCH_JOIN_BATCH..clients + BENCH_JOIN_BATCH).step_by(BENCH_JOIN_BATCH) {
        session.step(&Step::Crowd(joined.min(clients)))?;
    }
    let texts: Vec<Vec<u8>> = (0..clients)
        .map(|c| {
            let mut text = format!("{c:03}:").into_bytes();
            text.resize(BENCH_LINE_BYTES - 1, b'.');
            text
        })
        .collect();
    // Each round, every client says one line (one write each), all at once.
    let round: Vec<(usize, &[u8])> = texts
        .iter()
        .enumerate()
        .map(|(c, t)| (c, t.as_slice()))
        .collect();
    progress.set_length(lines as u64);
    progress.set_message("rounds");
    for _ in 0..lines {
        session.chorus(&round)?;
        progress.inc(1);
    }
    progress.finish_and_clear();
    let outcome = session.finish();
    Ok(SimRun {
        sent: (clients * lines) as u64,
        delivered: outcome.clients.iter().map(|c| c.lines_heard).sum(),
        events: outcome.stats.events,
        sends: outcome.stats.sends,
        syscalls: outcome.syscalls,
        secs: started.elapsed().as_secs_f64(),
    })
}

/// A simulated run as `selectlab bench chat --json` prints it (one object). The field names
/// are an interface (`docs/src/commands.md` lists them, a test parses them back).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimChatRecord {
    /// `sim`.
    pub transport: String,
    /// The backend and mode, as `--backend` names them (`epoll-et`, `epoll-oneshot`, ...).
    pub backend: String,
    /// Clients.
    pub clients: usize,
    /// Lines each client sent.
    pub lines: usize,
    /// Lines delivered (join notices included).
    pub delivered: u64,
    /// Simulated calls, server and clients.
    pub syscalls: u64,
    /// Wall-clock seconds (to a tenth of a millisecond).
    pub seconds: f64,
    /// Deliveries per second of wall time, rounded.
    pub deliveries_per_s: u64,
    /// Simulated calls per second of wall time, rounded.
    pub syscalls_per_s: u64,
}

/// Prints a simulated run, as text or as one JSON object.
pub fn print_sim_chat(
    r: &SimRun,
    (clients, lines, backend, mode): (usize, usize, Backend, Mode),
    json: bool,
    out: &mut dyn Write,
) {
    let per_sec = |n: u64| n as f64 / r.secs.max(1e-9);
    if json {
        let record = SimChatRecord {
            transport: "sim".to_string(),
            backend: crate::programs::chat_room::backend_name(backend, mode),
            clients,
            lines,
            delivered: r.delivered,
            syscalls: r.syscalls,
            seconds: crate::json::round(r.secs, 4),
            deliveries_per_s: per_sec(r.delivered).round() as u64,
            syscalls_per_s: per_sec(r.syscalls).round() as u64,
        };
        let _ = writeln!(out, "{}", crate::json::line(&record));
        return;
    }
    let _ = writeln!(
        out,
        "sim chat: {clients} clients x {lines} lines of {BENCH_LINE_BYTES} bytes, {backend}{}",
        mode_name(mode)
    );
    let _ = writeln!(out, "  lines sent         {}", r.sent);
    let n = clients as u64;
    let expected = n * (n - 1) / 2 + n * (n - 1) * lines as u64;
    let _ = writeln!(
        out,
        "  lines delivered    {} (join notices included; {expected} expected)",
        r.delivered
    );
    let _ = writeln!(out, "  server events      {}", r.events);
    let _ = writeln!(
        out,
        "  server sends       {} ({:.2} lines per send)",
        r.sends,
        r.delivered as f64 / r.sends.max(1) as f64
    );
    let _ = writeln!(
        out,
        "  simulated calls    {} ({:.0} per second)",
        r.syscalls,
        per_sec(r.syscalls)
    );
    let _ = writeln!(out, "  wall time          {:.3} s", r.secs);
    let _ = writeln!(out, "  deliveries/s       {:.0}", per_sec(r.delivered));
}

/// Runs selectlab's server on real loopback sockets (`backend`, default flags) under
/// `clients` x `lines` lines of [`BENCH_LINE_BYTES`], and prints the load's report.
pub fn real_chat(
    clients: usize,
    lines: usize,
    backend: Backend,
    mode: Mode,
    progress: ProgressBar,
    out: &mut dyn Write,
) -> Result<bool, SockError> {
    use crate::load::{self, LoadConfig};
    use crate::programs::chat_room::{ServeOptions, serve_in_thread};
    let deadline = std::time::Duration::from_secs(120);
    let options = ServeOptions {
        backend,
        mode,
        limits: crate::chat::server::Limits::default(),
        stop_after: Some(clients as u64),
        run_for: Some(deadline + std::time::Duration::from_secs(1)),
        bugs: crate::bugs::Bugs::NONE,
    };
    let (addr, server) = serve_in_thread(options)?;
    let config = LoadConfig {
        addr,
        clients,
        lines,
        bytes: BENCH_LINE_BYTES,
        deadline,
        progress,
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
