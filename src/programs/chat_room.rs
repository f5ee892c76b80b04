//! `selectlab chat serve` and `selectlab chat client` on real sockets.

use std::io::Write;
use std::time::Duration;

use nix::errno::Errno;

use crate::addr::{SockAddr, SockType};
use crate::bugs::Bugs;
use crate::chat::client::{ChatClientApp, Ending};
use crate::chat::serve::{ChatApp, ServeConfig, Stats, listen};
use crate::chat::server::Limits;
use crate::endpoints;
use crate::error::SockError;
use crate::kernel::{FD_SETSIZE, Fd, Kernel, Mode};
use crate::reactor::Reactor;
use crate::readiness::Backend;
use crate::real_kernel::RealKernel;

/// The chat server's listen backlog.
pub const CHAT_BACKLOG: u32 = 1024;
/// Descriptors select must leave for the listener, stdio and the epoll-less rest.
const SELECT_RESERVED_FDS: usize = 16;

/// `--backend` values: select, poll, epoll (level), epoll-et and epoll-oneshot.
pub fn parse_backend(name: &str) -> Option<(Backend, Mode)> {
    match name {
        "epoll-et" => Some((Backend::Epoll, Mode::EDGE)),
        "epoll-oneshot" => Some((Backend::Epoll, Mode::ONESHOT)),
        other => Backend::parse(other).map(|b| (b, Mode::LEVEL)),
    }
}

/// The `--backend` name of `backend` in `mode`: the inverse of [`parse_backend`].
pub fn backend_name(backend: Backend, mode: Mode) -> String {
    match (mode.edge, mode.oneshot) {
        (true, _) => format!("{backend}-et"),
        (_, true) => format!("{backend}-oneshot"),
        _ => backend.to_string(),
    }
}

/// How `selectlab chat serve` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOptions {
    /// The readiness backend.
    pub backend: Backend,
    /// Level- or edge-triggered.
    pub mode: Mode,
    /// The room's limits.
    pub limits: Limits,
    /// Stop once this many clients have come and gone (`None`: serve for ever).
    pub stop_after: Option<u64>,
    /// Stop after this long in any case (`None`: no deadline).
    pub run_for: Option<Duration>,
    /// Zoo bugs to switch on ([`Bugs::NONE`]: the reference server).
    pub bugs: Bugs,
}

/// Opens the listener on `addr` and serves (see [`serve_on`]).
pub fn serve(
    kernel: &mut dyn Kernel,
    addr: &SockAddr,
    options: ServeOptions,
    out: &mut dyn Write,
) -> Result<(), SockError> {
    let listener = listen(kernel, addr, CHAT_BACKLOG)?;
    serve_on(kernel, listener, options, out).map(|_| ())
}

/// Serves on a listening socket until `stop_after` clients have come and gone (for ever
/// without it) or `run_for` has passed, writing the server log to `out` as it happens.
/// Returns the server's counters.
pub fn serve_on(
    kernel: &mut dyn Kernel,
    listener: Fd,
    options: ServeOptions,
    out: &mut dyn Write,
) -> Result<Stats, SockError> {
    let ServeOptions {
        backend,
        mode,
        mut limits,
        stop_after,
        run_for,
        bugs,
    } = options;
    if backend == Backend::Select {
        // select cannot watch descriptors ≥ FD_SETSIZE: keep the room below it.
        limits.max_clients = limits
            .max_clients
            .min(FD_SETSIZE as usize - SELECT_RESERVED_FDS);
    }
    let mut reactor = Reactor::new(kernel, backend)?;
    reactor.set_bugs(bugs);
    let mut app = ChatApp::new(
        &mut reactor.io(kernel),
        listener,
        ServeConfig { limits, mode, bugs },
    )?;
    let _ = writeln!(
        out,
        "chat server on {} ({backend}{})",
        kernel.getsockname(listener)?,
        match (mode.edge, mode.oneshot) {
            (true, _) => ", edge-triggered",
            (_, true) => ", one-shot",
            _ => "",
        }
    );
    let _ = out.flush();
    let deadline = run_for.map(|d| kernel.now() + d);
    loop {
        let timeout = deadline.map(|d| d.saturating_sub(kernel.now()));
        reactor.turn(kernel, &mut app, timeout)?;
        for (_, line) in app.take_log() {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
        let done = stop_after.is_some_and(|n| app.stats().joined >= n && app.core().is_empty());
        let late = deadline.is_some_and(|d| kernel.now() >= d);
        if done || late || app.stopped() {
            app.stop(&mut reactor.io(kernel));
            reactor.close(kernel);
            return Ok(app.stats());
        }
    }
}

/// A server thread on a fresh loopback port (127.0.0.1:0), for tests, the zoo and the
/// benchmark: its address, and the thread, which returns the server's counters and log. Give
/// `options.run_for` so that it stops by itself.
pub fn serve_in_thread(
    options: ServeOptions,
) -> Result<(std::net::SocketAddr, ServerThread), SockError> {
    let mut k = RealKernel::new();
    let addr = SockAddr::Inet("127.0.0.1:0".parse().expect("an address"));
    let listener = listen(&mut k, &addr, CHAT_BACKLOG)?;
    let local = k
        .getsockname(listener)?
        .inet()
        .ok_or(SockError::Error(Errno::EAFNOSUPPORT))?;
    let thread = std::thread::spawn(move || {
        let mut log = Vec::new();
        let stats = serve_on(&mut k, listener, options, &mut log).map_err(|e| e.to_string())?;
        Ok((stats, String::from_utf8_lossy(&log).into_owned()))
    });
    Ok((local, thread))
}

/// A server thread: its counters and log when it stops, or why it failed.
pub type ServerThread = std::thread::JoinHandle<Result<(Stats, String), String>>;

/// The client on real sockets: standard input to the server, the server to `out`. Returns how
/// it ended.
pub fn client(addr: &SockAddr, out: &mut dyn Write) -> Result<Ending, SockError> {
    let mut kernel = RealKernel::new();
    let sock = kernel.socket(addr.family(), SockType::Stream)?;
    match kernel.connect(sock, addr) {
        Ok(()) | Err(Errno::EINPROGRESS) => {}
        Err(e) => return Err(e.into()),
    }
    endpoints::wait_for(&mut kernel, sock, crate::kernel::Events::OUT)?;
    match kernel.getsockopt(sock, crate::kernel::SockOpt::Error)? {
        0 => {}
        e => return Err(SockError::Error(Errno::from_raw(e))),
    }
    let stdin = kernel.stdin()?;
    // poll, not epoll: standard input may be a regular file, which epoll refuses (EPERM).
    let mut reactor = Reactor::new(&mut kernel, Backend::Poll)?;
    let mut app = ChatClientApp::new(&mut reactor.io(&mut kernel), stdin, sock, out)?;
    while app.ending().is_none() {
        reactor.turn(&mut kernel, &mut app, Some(Duration::from_secs(3600)))?;
    }
    Ok(app.ending().expect("loop ended"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_names_round_trip() {
        for name in ["select", "poll", "epoll", "epoll-et", "epoll-oneshot"] {
            let (backend, mode) = parse_backend(name).expect("a backend");
            assert_eq!(backend_name(backend, mode), name);
        }
    }
}
