//! `selectlab bench chat`, `bench guest`, `bench readiness` and `bench fuzz`: measurements
//! that assert nothing (`bench fuzz` fails only when a target finds a failing input).
//!
//! - [`chat`]: the chat workload in the simulator, or on loopback with `selectlab load`.
//! - [`guest`]: a foreign program's speed inside the simulator against real loopback.
//! - [`readiness`]: one wait's cost for select, poll and epoll as idle descriptors grow.
//! - `bench fuzz` is [`fuzz_campaign`]'s.

use std::io::Write;
use std::process::ExitCode;

use crate::fuzz_campaign;
use crate::programs::chat_room;

pub mod chat;
pub mod guest;
pub mod readiness;

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
    /// Each cargo-fuzz target run for a time, as CI runs it: executions per second, edges
    /// covered, corpus size; exit 1 if a target found a failing input. Needs cargo-fuzz.
    Fuzz {
        /// Only these targets (repeatable); default: all five.
        #[arg(long = "target", value_parser = clap::builder::PossibleValuesParser::new(crate::fuzzing::TARGETS))]
        targets: Vec<String>,
        /// Seconds per target (1 to 86 400).
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=crate::fuzz_campaign::MAX_RUN_S))]
        seconds: u64,
        /// libFuzzer's seed.
        #[arg(long, default_value_t = 20261127)]
        seed: u64,
        /// Start from the committed seed inputs (`fuzz/corpus/<target>/`), or from nothing.
        #[arg(long, default_value = "seeded", value_parser = ["seeded", "empty"])]
        corpus: String,
        /// One JSON object per target instead of the table.
        #[arg(long)]
        json: bool,
        /// Also draw edges covered against time, one line per target, as an SVG here.
        #[arg(long)]
        plot: Option<std::path::PathBuf>,
        /// The selectlab checkout whose fuzz/ crate runs.
        #[arg(long, default_value = ".")]
        repo: std::path::PathBuf,
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
            BenchWhat::Fuzz {
                targets,
                seconds,
                seed,
                corpus,
                json,
                plot,
                repo,
            } => {
                let targets = if targets.is_empty() {
                    crate::fuzzing::TARGETS.map(String::from).to_vec()
                } else {
                    targets
                };
                let plan = fuzz_campaign::BenchPlan {
                    targets,
                    seconds,
                    seed,
                    seeded: corpus == "seeded",
                };
                fuzz(&plan, &repo, json, plot.as_deref(), out)
            }
            BenchWhat::Guest {
                clients,
                lines,
                json,
                command,
            } => match guest::run(&command, clients, lines) {
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
    let (backend, mode) = chat_room::parse_backend(backend).expect("clap checked the value");
    if transport == "real" {
        return super::status(chat::real_chat(
            clients,
            lines,
            backend,
            mode,
            super::progress_bar(0, "bench"),
            out,
        ));
    }
    if let Err(why) = chat::check_sim_clients(clients) {
        return super::cannot_run("bench chat", why);
    }
    super::status(
        chat::sim_chat(
            clients,
            lines,
            backend,
            mode,
            &super::progress_bar(0, "bench"),
        )
        .map(|run| {
            chat::print_sim_chat(&run, (clients, lines, backend, mode), json, out);
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
    use readiness::Transport;
    let transports = match transport {
        "real" => vec![Transport::Real],
        "sim" => vec![Transport::Sim],
        _ => vec![Transport::Real, Transport::Sim],
    };
    let points = readiness::measure(
        &transports,
        idle,
        readiness::POINT_BUDGET,
        &mut std::io::stderr(),
        &super::progress_bar(0, "bench"),
    );
    let text = if json {
        readiness::json_lines(&points)
    } else {
        readiness::table(&points, idle)
    };
    let _ = write!(out, "{text}");
    match plot.map(|path| readiness::plot(&points, &path)) {
        Some(Err(why)) => super::cannot_run("bench readiness", why),
        _ => ExitCode::SUCCESS,
    }
}

fn fuzz(
    plan: &fuzz_campaign::BenchPlan,
    repo: &std::path::Path,
    json: bool,
    plot: Option<&std::path::Path>,
    out: &mut dyn Write,
) -> ExitCode {
    let workspace = match fuzz_campaign::Workspace::find(repo) {
        Ok(w) => w,
        Err(why) => return super::cannot_run("bench fuzz", why),
    };
    if !json {
        let _ = writeln!(out, "{}", fuzz_campaign::BenchRecord::TABLE_HEAD);
    }
    let mut runs = Vec::new();
    let mut clean = true;
    for target in &plan.targets {
        let (record, report) = match fuzz_campaign::bench(&workspace, target, plan) {
            Ok(r) => r,
            Err(why) => return super::cannot_run("bench fuzz", why),
        };
        let line = if json {
            crate::json::line(&record)
        } else {
            record.table_row()
        };
        let _ = writeln!(out, "{line}");
        if let Some(failure) = &report.failure {
            clean = false;
            eprintln!(
                "{}\nselectlab: bench fuzz: {target} found a failing input",
                failure.log_tail
            );
        }
        runs.push((target.as_str(), report));
    }
    let named: Vec<_> = runs.iter().map(|(t, r)| (*t, r)).collect();
    if let Some(Err(why)) = plot.map(|path| fuzz_campaign::plot_coverage(&named, path)) {
        return super::cannot_run("bench fuzz", why);
    }
    super::status(Ok(clean))
}
