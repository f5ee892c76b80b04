//! `selectlab chat serve` and `selectlab chat client`: the chat room on real sockets.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use crate::addr::{SockAddr, Target};
use crate::bugs::{Bug, Bugs};
use crate::chat::client::Ending;
use crate::chat::server::{self, Limits};
use crate::error::SockError;
use crate::programs::chat_room;
use crate::real_kernel::RealKernel;
use crate::socket::{Net, share};

#[derive(clap::Subcommand)]
pub(super) enum ChatRole {
    /// Serve the room on ADDR.
    Serve(ServeArgs),
    /// Join the room at ADDR: standard input lines go out, what others say is printed;
    /// `exit` leaves.
    Client {
        #[arg(long, default_value = super::DEFAULT_ADDR)]
        addr: String,
    },
}

#[derive(clap::Args)]
pub(super) struct ServeArgs {
    #[arg(long, default_value = super::DEFAULT_ADDR)]
    addr: String,
    /// select, poll, epoll (level-triggered), epoll-et (edge-triggered) or epoll-oneshot.
    #[arg(long, default_value = "epoll", value_parser = ["select", "poll", "epoll", "epoll-et", "epoll-oneshot"])]
    backend: String,
    /// Switch on a bug from the zoo (repeatable; `selectlab zoo --list` names them), to
    /// see what it does to real clients.
    #[arg(long = "bug", value_parser = super::parse_bug)]
    bugs: Vec<Bug>,
    /// Stop once this many clients have come and gone; default: serve for ever.
    #[arg(long)]
    count: Option<u64>,
    /// Longest line, in bytes: a longer one gets its sender an error and a disconnect.
    #[arg(long, default_value_t = server::DEFAULT_MAX_LINE_BYTES)]
    max_line_bytes: usize,
    /// The hard limit: most bytes queued for one client; past it, it is disconnected.
    #[arg(long, default_value_t = server::DEFAULT_OUTBOUND_CAP_BYTES)]
    outbound_cap_bytes: usize,
    /// The soft limit: while a client has more queued, the server reads no input
    /// (back-pressure on the senders).
    #[arg(long, default_value_t = server::DEFAULT_OUTBOUND_SOFT_BYTES)]
    outbound_soft_bytes: usize,
    /// Seconds a client may stay above the soft limit before it is disconnected.
    #[arg(long = "slow-consumer-timeout-s", default_value = "10", value_parser = super::parse_secs)]
    slow_consumer_timeout: Duration,
    /// Most clients at once; one more gets `server full`.
    #[arg(long, default_value_t = server::DEFAULT_MAX_CLIENTS)]
    max_clients: usize,
    /// Stop after this many seconds in any case; default: serve for ever.
    #[arg(long = "run-for-s", value_parser = super::parse_secs)]
    run_for: Option<Duration>,
}

impl ChatRole {
    pub(super) fn run(self, out: &mut dyn Write) -> ExitCode {
        super::status(match self {
            ChatRole::Serve(args) => args.serve(out).map(|()| true),
            ChatRole::Client { addr } => resolve(&addr)
                .and_then(|addr| chat_room::client(&addr, out))
                .map(|ending| ending == Ending::ByeBye),
        })
    }
}

impl ServeArgs {
    fn serve(self, out: &mut dyn Write) -> Result<(), SockError> {
        let addr = resolve(&self.addr)?;
        let (backend, mode) =
            chat_room::parse_backend(&self.backend).expect("clap checked the value");
        let options = chat_room::ServeOptions {
            backend,
            mode,
            limits: Limits {
                max_line_bytes: self.max_line_bytes,
                outbound_cap_bytes: self.outbound_cap_bytes,
                outbound_soft_bytes: self.outbound_soft_bytes,
                slow_consumer_timeout: self.slow_consumer_timeout,
                max_clients: self.max_clients,
            },
            stop_after: self.count,
            run_for: self.run_for,
            bugs: self.bugs.into_iter().fold(Bugs::NONE, Bugs::with),
        };
        chat_room::serve(&mut RealKernel::new(), &addr, options, out)
    }
}

/// ADDR (`host:port`, `[v6]:port` or `unix:/path`) as a socket address.
fn resolve(addr: &str) -> Result<SockAddr, SockError> {
    let net: Net = share(RealKernel::new());
    crate::socket::resolve(
        &net,
        super::roles::family(&net, addr)?,
        &Target::parse(addr)?,
    )
}
