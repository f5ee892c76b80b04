//! The `selectlab` command line. See the README for each command.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use selectlab::addr::Target;
use selectlab::programs::{demo, goodbye, udp};
use selectlab::real::RealKernel;
use selectlab::socket::{Net, share};

/// The seed's default port, on loopback (never the wildcard address unless asked).
const DEFAULT_ADDR: &str = "127.0.0.1:33333";

#[derive(Parser)]
#[command(
    name = "selectlab",
    version,
    about = "Socket and select programming, tested against the kernel"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a simulated session as a transcript (deterministic for a given seed).
    Demo {
        /// Which demo: `chat` (the default), `goodbye` or `lt-vs-et`.
        #[arg(default_value = "chat", value_parser = ["chat", "goodbye", "lt-vs-et"])]
        which: String,
        /// 0 is faithful Linux; other seeds add the lawful adversary's short reads and writes.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// The seed's TCP "good bye" server and client (real sockets).
    Goodbye {
        #[command(subcommand)]
        role: Role,
    },
    /// The seed's UDP echo server and client (real sockets).
    Udp {
        #[command(subcommand)]
        role: Role,
    },
    /// The seed's select chat room: server and client (real sockets).
    Chat {
        #[command(subcommand)]
        role: ChatRole,
    },
    /// Measure the simulator on the chat workload (prints numbers; asserts nothing).
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
    /// Switch each bug of the zoo on in turn and run the suite's detectors on it; exit 0
    /// only when every bug was caught (and the detectors pass the bug-free programs).
    Zoo {
        /// Only these bugs (repeatable); default: all of them.
        #[arg(long = "bug", value_parser = parse_bug)]
        bugs: Vec<selectlab::bugs::Bug>,
        /// Wall-time budget per random detector per bug, in seconds.
        #[arg(long = "budget-s", default_value = "10", value_parser = parse_secs)]
        budget: Duration,
        /// Random cases per random detector per bug (whichever budget runs out first).
        #[arg(long, default_value_t = 2000)]
        cases: u32,
        /// Print the bug names, one per line, and nothing else.
        #[arg(long)]
        list: bool,
        /// Run every detector class on every bug and print the table of who catches what.
        #[arg(long)]
        matrix: bool,
        /// Skip the real-socket load (simulator only).
        #[arg(long)]
        no_real: bool,
        /// Where to write each counterexample's transcript.
        #[arg(long, default_value = "target/zoo")]
        out: std::path::PathBuf,
        /// Seed of the random detectors' inputs.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Load any chat server that speaks the seed's protocol (selectlab's, `ncat --chat`, yours)
    /// with real clients; count deliveries, losses, duplicates, reordering and latency.
    Load {
        /// The server, host:port.
        addr: std::net::SocketAddr,
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
        #[arg(long = "deadline-s", default_value = "60", value_parser = parse_secs)]
        deadline: Duration,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Run named conformance checks against any running chat server that speaks the seed's
    /// protocol; exit 0 when every check passed, 1 when any failed or skipped, 2 when nothing
    /// could run.
    Check {
        /// The server, host:port (required unless --list).
        #[arg(required_unless_present = "list")]
        addr: Option<std::net::SocketAddr>,
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
    },
    /// A TCP proxy that applies the lawful adversary to real traffic in both directions:
    /// writes cut down to 1 byte, pauses that coalesce, and (with --resets) resets. Logs each
    /// decision in the transcript format to standard error (or --transcript).
    Proxy {
        /// Where clients connect (port 0: any; the first line printed says which).
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// The server to forward to.
        #[arg(long)]
        to: std::net::SocketAddr,
        /// The decision source's seed: the same seed plans the same cuts.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// faithful (a plain relay) or adversary.
        #[arg(long, default_value = "adversary", value_parser = ["faithful", "adversary"])]
        profile: String,
        /// Let the adversary reset connections (off by default).
        #[arg(long)]
        resets: bool,
        /// Write the transcript here instead of standard error.
        #[arg(long)]
        transcript: Option<std::path::PathBuf>,
        /// Most connections at once; one more is closed at once.
        #[arg(long, default_value_t = selectlab::proxy::DEFAULT_MAX_CONNECTIONS)]
        max_connections: usize,
        /// Most bytes held per direction of a connection.
        #[arg(long, default_value_t = 1 << 20)]
        max_buffered_bytes: usize,
        /// Stop after this many seconds; default: run until killed.
        #[arg(long = "run-for-s", value_parser = parse_secs)]
        run_for: Option<Duration>,
    },
    /// Run scenario scripts (format v1) on the kernel, the simulator, or both.
    Scenario {
        /// Script files.
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
        /// real, sim or both (both also requires the two to agree line by line).
        #[arg(long, default_value = "both", value_parser = ["real", "sim", "both"])]
        transport: String,
        /// Backend for scripts without a `backend` header.
        #[arg(long, default_value = "epoll", value_parser = ["select", "poll", "epoll"])]
        backend: String,
    },
}

#[derive(Subcommand)]
enum BenchWhat {
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

#[derive(Subcommand)]
enum Role {
    /// Serve on ADDR (host:port, [v6]:port or unix:/path).
    Serve {
        #[arg(long, default_value = DEFAULT_ADDR)]
        addr: String,
        /// Stop after this many connections (TCP) or datagrams (UDP); default: serve for ever.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Send each line of standard input to ADDR and print the replies.
    Client {
        #[arg(long, default_value = DEFAULT_ADDR)]
        addr: String,
    },
}

#[derive(Subcommand)]
enum ChatRole {
    /// Serve the room on ADDR.
    Serve {
        #[arg(long, default_value = DEFAULT_ADDR)]
        addr: String,
        /// select, poll, epoll (level-triggered), epoll-et (edge-triggered) or epoll-oneshot.
        #[arg(long, default_value = "epoll", value_parser = ["select", "poll", "epoll", "epoll-et", "epoll-oneshot"])]
        backend: String,
        /// Switch on a bug from the zoo (repeatable; `selectlab zoo --list` names them), to
        /// see what it does to real clients.
        #[arg(long = "bug", value_parser = parse_bug)]
        bugs: Vec<selectlab::bugs::Bug>,
        /// Stop once this many clients have come and gone; default: serve for ever.
        #[arg(long)]
        count: Option<u64>,
        /// Longest line, in bytes: a longer one gets its sender an error and a disconnect.
        #[arg(long, default_value_t = selectlab::chat::server::DEFAULT_MAX_LINE_BYTES)]
        max_line_bytes: usize,
        /// The hard limit: most bytes queued for one client; past it, it is disconnected.
        #[arg(long, default_value_t = selectlab::chat::server::DEFAULT_OUTBOUND_CAP_BYTES)]
        outbound_cap_bytes: usize,
        /// The soft limit: while a client has more queued, the server reads no input
        /// (back-pressure on the senders).
        #[arg(long, default_value_t = selectlab::chat::server::DEFAULT_OUTBOUND_SOFT_BYTES)]
        outbound_soft_bytes: usize,
        /// Seconds a client may stay above the soft limit before it is disconnected.
        #[arg(long = "slow-consumer-timeout-s", default_value = "10", value_parser = parse_secs)]
        slow_consumer_timeout: Duration,
        /// Most clients at once; one more gets `server full`.
        #[arg(long, default_value_t = selectlab::chat::server::DEFAULT_MAX_CLIENTS)]
        max_clients: usize,
        /// Stop after this many seconds in any case; default: serve for ever.
        #[arg(long = "run-for-s", value_parser = parse_secs)]
        run_for: Option<Duration>,
    },
    /// Join the room at ADDR: standard input lines go out, what others say is printed;
    /// `exit` leaves.
    Client {
        #[arg(long, default_value = DEFAULT_ADDR)]
        addr: String,
    },
}

/// A duration in seconds (fractions allowed), as flags ending in `-s` take it.
fn parse_secs(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("{text:?} is not a number of seconds (0 or more)"))
}

/// A zoo bug by its catalogue name.
fn parse_bug(name: &str) -> Result<selectlab::bugs::Bug, String> {
    selectlab::bugs::Bug::from_name(name)
        .ok_or_else(|| format!("no bug named {name:?} (selectlab zoo --list names them)"))
}

/// `selectlab check`: the checks' findings as they come, then a summary line.
fn check(
    addr: Option<std::net::SocketAddr>,
    clients: usize,
    only: Vec<String>,
    (json, list, via_proxy): (bool, bool, bool),
    out: &mut dyn Write,
) -> ExitCode {
    use selectlab::check::{self, Verdict};
    if list {
        for c in check::CHECKS {
            let _ = writeln!(out, "{:<24} {}", c.name, c.about);
        }
        return ExitCode::SUCCESS;
    }
    let Some(server) = addr else {
        eprintln!("selectlab: check: an address is required");
        return ExitCode::from(2);
    };
    let config = check::Config {
        server,
        clients,
        only,
        via_proxy,
    };
    let printed = check::run(&config, |finding| {
        let _ = if json {
            writeln!(out, "{}", finding.json())
        } else {
            writeln!(out, "{finding}")
        };
        let _ = out.flush();
    });
    let findings = match printed {
        Ok(findings) => findings,
        Err(e) => {
            eprintln!("selectlab: check: {e}");
            return ExitCode::from(2);
        }
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    let result = match cli.command {
        Command::Demo { which, seed } => match which.as_str() {
            "lt-vs-et" => selectlab::programs::lt_vs_et::demo(&mut out)
                .map(|()| true)
                .map_err(Into::into),
            "goodbye" => demo::run(seed, &mut out).map(|()| true),
            _ => demo::chat(seed, &mut out).map(|()| true),
        },
        Command::Chat { role } => chat(role, &mut out),
        Command::Bench {
            what:
                BenchWhat::Readiness {
                    transport,
                    idle,
                    json,
                    plot,
                },
        } => {
            use selectlab::programs::bench_readiness::{self as bench, Transport};
            let transports = match transport.as_str() {
                "real" => vec![Transport::Real],
                "sim" => vec![Transport::Sim],
                _ => vec![Transport::Real, Transport::Sim],
            };
            let points = bench::measure(&transports, &idle, &mut std::io::stderr());
            let text = if json {
                bench::json_lines(&points)
            } else {
                bench::table(&points, &idle)
            };
            let _ = write!(out, "{text}");
            match plot.map(|path| bench::plot(&points, &path)) {
                Some(Err(why)) => {
                    eprintln!("selectlab: bench readiness: {why}");
                    return ExitCode::from(2);
                }
                _ => Ok(true),
            }
        }
        Command::Bench {
            what:
                BenchWhat::Chat {
                    transport,
                    clients,
                    lines,
                    backend,
                    json,
                },
        } => {
            let (backend, mode) = selectlab::programs::chat_cli::parse_backend(&backend)
                .expect("clap checked the value");
            if transport == "real" {
                selectlab::programs::bench::real_chat(clients, lines, backend, mode, &mut out)
            } else if let Err(why) = selectlab::programs::bench::check_sim_clients(clients) {
                eprintln!("selectlab: bench chat: {why}");
                return ExitCode::from(2);
            } else {
                use selectlab::programs::bench;
                bench::sim_chat(clients, lines, backend, mode).map(|run| {
                    bench::print_sim_chat(&run, (clients, lines, backend, mode), json, &mut out);
                    true
                })
            }
        }
        Command::Zoo {
            bugs,
            budget: time,
            cases,
            list,
            matrix,
            no_real,
            out: out_dir,
            seed,
        } => {
            if list {
                for info in selectlab::zoo::CATALOGUE {
                    let _ = writeln!(out, "{}", info.name);
                }
                return ExitCode::SUCCESS;
            }
            let options = selectlab::zoo::run::Options {
                bugs,
                budget: selectlab::zoo::detect::Budget {
                    cases,
                    time,
                    shrink: true,
                },
                matrix,
                real: !no_real,
                out_dir: Some(out_dir),
                seed,
            };
            Ok(selectlab::zoo::run::run(&options, &mut out))
        }
        Command::Load {
            addr,
            clients,
            lines,
            bytes,
            deadline,
            json,
        } => {
            let config = selectlab::programs::load::LoadConfig {
                addr,
                clients,
                lines,
                bytes,
                deadline,
                progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            };
            match selectlab::programs::load::run(&config) {
                Ok(report) => {
                    if json {
                        let _ = writeln!(out, "{}", report.json());
                    } else {
                        let _ = writeln!(out, "{report}");
                    }
                    Ok(report.perfect())
                }
                Err(e) => {
                    eprintln!("selectlab: load: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        Command::Check {
            addr,
            clients,
            only,
            json,
            list,
            via_proxy,
        } => return check(addr, clients, only, (json, list, via_proxy), &mut out),
        Command::Proxy {
            listen,
            to,
            seed,
            profile,
            resets,
            transcript,
            max_connections,
            max_buffered_bytes,
            run_for,
        } => {
            use selectlab::proxy::{self, ProxyConfig, cutter::Profile};
            let sink: Box<dyn Write + Send> = match transcript {
                Some(path) => match std::fs::File::create(&path) {
                    Ok(f) => Box::new(std::io::BufWriter::new(f)),
                    Err(e) => {
                        eprintln!("selectlab: proxy: cannot write {}: {e}", path.display());
                        return ExitCode::from(2);
                    }
                },
                None => Box::new(std::io::stderr()),
            };
            let config = ProxyConfig {
                listen,
                to,
                seed,
                profile: if profile == "faithful" {
                    Profile::Faithful
                } else {
                    Profile::Adversary
                },
                resets,
                max_connections,
                max_buffered_bytes,
                run_for,
            };
            let ran = proxy::run(&config, sink, |bound| {
                let _ = writeln!(out, "proxy on {bound} to {to} ({profile}, seed {seed})");
                let _ = out.flush();
            });
            match ran {
                Ok(stats) => {
                    let _ = writeln!(out, "{stats:?}");
                    Ok(true)
                }
                Err(e) => {
                    eprintln!("selectlab: proxy: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        Command::Goodbye { role } => run_role(role, &mut out, Proto::Tcp),
        Command::Udp { role } => run_role(role, &mut out, Proto::Udp),
        Command::Scenario {
            files,
            transport,
            backend,
        } => {
            return scenarios(&files, &transport, &backend, &mut out);
        }
    };
    let _ = out.flush();
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("selectlab: {}: {e}", e.class());
            ExitCode::from(1)
        }
    }
}

fn chat(role: ChatRole, out: &mut dyn Write) -> Result<bool, selectlab::error::SockError> {
    use selectlab::chat::client::Ending;
    use selectlab::programs::chat_cli;
    let net: Net = share(RealKernel::new());
    match role {
        ChatRole::Serve {
            addr,
            backend,
            count,
            max_line_bytes,
            outbound_cap_bytes,
            outbound_soft_bytes,
            slow_consumer_timeout,
            max_clients,
            bugs,
            run_for,
        } => {
            let addr = selectlab::socket::resolve(
                &net,
                goodbye_family(&net, &addr)?,
                &Target::parse(&addr)?,
            )?;
            let (backend, mode) =
                chat_cli::parse_backend(&backend).expect("clap checked the value");
            let limits = selectlab::chat::server::Limits {
                max_line_bytes,
                outbound_cap_bytes,
                outbound_soft_bytes,
                slow_consumer_timeout,
                max_clients,
            };
            let options = chat_cli::ServeOptions {
                backend,
                mode,
                limits,
                stop_after: count,
                run_for,
                bugs: bugs
                    .into_iter()
                    .fold(selectlab::bugs::Bugs::NONE, selectlab::bugs::Bugs::with),
            };
            chat_cli::serve(&mut RealKernel::new(), &addr, options, out).map(|()| true)
        }
        ChatRole::Client { addr } => {
            let addr = selectlab::socket::resolve(
                &net,
                goodbye_family(&net, &addr)?,
                &Target::parse(&addr)?,
            )?;
            Ok(chat_cli::client(&addr, out)? == Ending::ByeBye)
        }
    }
}

fn goodbye_family(
    net: &Net,
    addr: &str,
) -> Result<selectlab::addr::Family, selectlab::error::SockError> {
    goodbye::family_of(net, &Target::parse(addr)?)
}

/// Parses every script first (a malformed one is exit status 2 before anything runs), then runs
/// them all; exit status 1 if any failed.
fn scenarios(
    files: &[std::path::PathBuf],
    transport: &str,
    backend: &str,
    out: &mut dyn Write,
) -> ExitCode {
    use selectlab::scenario::{check, parse};
    let mut scripts = Vec::with_capacity(files.len());
    for path in files {
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
    let transport = check::Transport::parse(transport).expect("clap checked the value");
    let backend = selectlab::readiness::Backend::parse(backend).expect("clap checked the value");
    let failed = scripts
        .iter()
        .filter(|s| !check::check(s, transport, backend, out))
        .count();
    let _ = writeln!(out, "{} scenario(s), {failed} failed", scripts.len());
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

enum Proto {
    Tcp,
    Udp,
}

fn stdin_lines() -> impl Iterator<Item = Vec<u8>> {
    std::io::stdin()
        .lock()
        .split(b'\n')
        .map_while(Result::ok)
        .map(|mut l| {
            if l.last() == Some(&b'\r') {
                l.pop();
            }
            l
        })
}

fn run_role(
    role: Role,
    out: &mut dyn Write,
    proto: Proto,
) -> Result<bool, selectlab::error::SockError> {
    let net: Net = share(RealKernel::new());
    match role {
        Role::Serve { addr, count } => {
            let target = Target::parse(&addr)?;
            let limit = count.unwrap_or(u64::MAX);
            match proto {
                Proto::Tcp => {
                    let listener = goodbye::listen(&net, &target)?;
                    let _ = writeln!(out, "i'm waiting for connection...");
                    let _ = out.flush();
                    for _ in 0..limit {
                        if let Err(e) = goodbye::serve_one(&listener, out) {
                            let _ = writeln!(out, "connection failed: {e}");
                        }
                        let _ = out.flush();
                    }
                }
                Proto::Udp => {
                    let sock = udp::bind(&net, &target)?;
                    let _ = writeln!(out, "i'm waiting for datagrams...");
                    let _ = out.flush();
                    for _ in 0..limit {
                        udp::echo_one(&sock, out)?;
                        let _ = out.flush();
                    }
                }
            }
            Ok(true)
        }
        Role::Client { addr } => {
            let target = Target::parse(&addr)?;
            let mut lines = stdin_lines();
            match proto {
                Proto::Tcp => goodbye::client(&net, &target, &mut lines, out),
                Proto::Udp => udp::client(&net, &target, &mut lines, out).map(|()| true),
            }
        }
    }
}
