//! `selectlab bench chat` and `selectlab bench readiness`: measurements that assert nothing.

use std::io::Write;
use std::process::ExitCode;

use crate::programs::{bench, bench_guest, bench_readiness, chat_cli};

#[derive(clap::Subcommand)]
pub(super) enum BenchWhat {
    /// The chat workload: N clients, each line fanned out to the N - 1 others.
    Chat {
        /// sim (the simulator, no sockets) or real (loopback sockets, selectlab's server in a
        /// thread, `selectlab load` as the clients).
        #[arg(long, default_value = "sim", value_parser = ["sim", "real"])]
        transport: String,
        /// Clients (in the simulator: 2 to 1000, MAX_SESSION_CLIENTS).
        #[arg(long, default_value_t = 50)]
        clients: usize,
        /// Lines each client sends.
        #[arg(long, default_value_t = 40)]
        lines: usize,
        /// select, poll, epoll, epoll-et or epoll-oneshot.
        #[arg(long, default_value = "epoll", value_parser = ["select", "poll", "epoll", "epoll-et", "epoll-oneshot"])]
        backend: String,
        /// One JSON object instead of the text (simulator only).
        #[arg(long)]
        json: bool,
    },
    /// A foreign program inside the simulator (calls answered per second) beside the same
    /// program on real loopback (deliveries per second), on the chat workload.
    Guest {
        /// Clients.
        #[arg(long, default_value_t = 20)]
        clients: usize,
        /// Lines each client says.
        #[arg(long, default_value_t = 200)]
        lines: usize,
        /// One JSON object instead of the text.
        #[arg(long)]
        json: bool,
        /// The program and its arguments (it prints its port on its first line).
        #[arg(last = true, required = true)]
        command: Vec<std::ffi::OsString>,
    },
    /// One wait's cost with one ready descriptor among K idle ones, for select, poll and
    /// epoll, on the kernel and in the simulator.
    Readiness {
        /// real, sim, or both.
        #[arg(long, default_value = "both", value_parser = ["real", "sim", "both"])]
        transport: String,
        /// Idle descriptor counts, comma-separated.
        #[arg(long, default_value = "10,100,1000,10000", value_delimiter = ',')]
        idle: Vec<usize>,
        /// One JSON object per point instead of the table.
        #[arg(long)]
        json: bool,
        /// Also write a log-log SVG plot here.
        #[arg(long)]
        plot: Option<std::path::PathBuf>,
    },
}

impl BenchWhat {
    pub(super) fn run(self, out: &mut dyn Write) -> ExitCode {
        match self {
            BenchWhat::Chat {
                transport,
                clients,
                lines,
                backend,
                json,
            } => chat(&transport, (clients, lines), &backend, json, out),
            BenchWhat::Readiness {
                transport,
                idle,
                json,
                plot,
            } => readiness(&transport, &idle, json, plot, out),
            BenchWhat::Guest {
                clients,
                lines,
                json,
                command,
            } => match bench_guest::run(&command, clients, lines) {
                Ok(b) if json => {
                    let _ = writeln!(out, "{}", crate::json::line(&b));
                    ExitCode::SUCCESS
                }
                Ok(b) => {
                    let _ = writeln!(out, "{b}");
                    ExitCode::SUCCESS
                }
                Err(why) => super::cannot_run("bench guest", why),
            },
        }
    }
}

fn chat(
    transport: &str,
    (clients, lines): (usize, usize),
    backend: &str,
    json: bool,
    out: &mut dyn Write,
) -> ExitCode {
    let (backend, mode) = chat_cli::parse_backend(backend).expect("clap checked the value");
    if transport == "real" {
        return super::status(bench::real_chat(
            clients,
            lines,
            backend,
            mode,
            super::progress_bar(0, "bench"),
            out,
        ));
    }
    if let Err(why) = bench::check_sim_clients(clients) {
        return super::cannot_run("bench chat", why);
    }
    super::status(
        bench::sim_chat(
            clients,
            lines,
            backend,
            mode,
            &super::progress_bar(0, "bench"),
        )
        .map(|run| {
            bench::print_sim_chat(&run, (clients, lines, backend, mode), json, out);
            true
        }),
    )
}

fn readiness(
    transport: &str,
    idle: &[usize],
    json: bool,
    plot: Option<std::path::PathBuf>,
    out: &mut dyn Write,
) -> ExitCode {
    use bench_readiness::Transport;
    let transports = match transport {
        "real" => vec![Transport::Real],
        "sim" => vec![Transport::Sim],
        _ => vec![Transport::Real, Transport::Sim],
    };
    let points = bench_readiness::measure(
        &transports,
        idle,
        &mut std::io::stderr(),
        &super::progress_bar(0, "bench"),
    );
    let text = if json {
        bench_readiness::json_lines(&points)
    } else {
        bench_readiness::table(&points, idle)
    };
    let _ = write!(out, "{text}");
    match plot.map(|path| bench_readiness::plot(&points, &path)) {
        Some(Err(why)) => super::cannot_run("bench readiness", why),
        _ => ExitCode::SUCCESS,
    }
}
