//! The `selectlab` command line. See the README for each command.

use std::io::{BufRead, Write};
use std::process::ExitCode;

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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    let result = match cli.command {
        Command::Demo { seed } => demo::run(seed, &mut out).map(|()| true),
        Command::Goodbye { role } => run_role(role, &mut out, Proto::Tcp),
        Command::Udp { role } => run_role(role, &mut out, Proto::Udp),
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
