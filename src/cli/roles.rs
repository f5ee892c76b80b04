//! `selectlab goodbye` and `selectlab udp`: the tutorial's TCP and UDP servers and clients on real
//! sockets.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use crate::addr::{Family, Target};
use crate::error::SockError;
use crate::programs::{goodbye, udp};
use crate::real_kernel::RealKernel;
use crate::socket::{Net, share};

#[derive(clap::Subcommand)]
pub(super) enum Role {
    /// Serve on ADDR (host:port, [v6]:port or unix:/path).
    Serve {
        #[arg(long, default_value = super::DEFAULT_ADDR)]
        addr: String,
        /// Stop after this many connections (TCP) or datagrams (UDP); default: serve for ever.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Send each line of standard input to ADDR and print the replies.
    Client {
        #[arg(long, default_value = super::DEFAULT_ADDR)]
        addr: String,
    },
}

/// Which of the tutorial's two pairs.
pub(super) enum Proto {
    Tcp,
    Udp,
}

pub(super) fn run(role: Role, proto: Proto, out: &mut dyn Write) -> ExitCode {
    let net: Net = share(RealKernel::new());
    super::status(match role {
        Role::Serve { addr, count } => Target::parse(&addr)
            .and_then(|target| serve(&net, &target, proto, count.unwrap_or(u64::MAX), out))
            .map(|()| true),
        Role::Client { addr } => Target::parse(&addr).and_then(|target| {
            let mut lines = stdin_lines();
            match proto {
                Proto::Tcp => goodbye::client(&net, &target, &mut lines, out),
                Proto::Udp => udp::client(&net, &target, &mut lines, out).map(|()| true),
            }
        }),
    })
}

/// Serves `limit` connections (TCP) or datagrams (UDP), as the tutorial's servers do.
fn serve(
    net: &Net,
    target: &Target,
    proto: Proto,
    limit: u64,
    out: &mut dyn Write,
) -> Result<(), SockError> {
    match proto {
        Proto::Tcp => {
            let listener = goodbye::listen(net, target)?;
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
            let sock = udp::bind(net, target)?;
            let _ = writeln!(out, "i'm waiting for datagrams...");
            let _ = out.flush();
            for _ in 0..limit {
                udp::echo_one(&sock, out)?;
                let _ = out.flush();
            }
        }
    }
    Ok(())
}

/// Standard input's lines, without their `\n` (or `\r\n`).
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

/// The family ADDR names (resolving a host name through the kernel when it must).
pub(super) fn family(net: &Net, addr: &str) -> Result<Family, SockError> {
    goodbye::family_of(net, &Target::parse(addr)?)
}
