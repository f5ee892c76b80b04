//! A quiet member of the room that tells when the server went away: `check ADDR` holds it
//! from before the first check to after the last, reading (and dropping) whatever the server
//! sends, so that a server that dies in one check is named there, once, and the checks after
//! it are skipped with that reason instead of each failing on "connection refused".

use std::io::Read;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::peer::CONNECT_TIMEOUT;

/// Bytes the sentinel reads per call.
const READ_BYTES: usize = 64 * 1024;
/// How long the sentinel waits after a check for the server to go away: a server that dies
/// of what a check's clients did (they closed, they reset) dies within this, and is then
/// named in that check rather than the next.
pub const AFTERMATH: Duration = Duration::from_millis(100);
/// How often the sentinel looks while it waits.
const LOOK_EVERY: Duration = Duration::from_millis(5);

/// The sentinel's connection and the thread that drains it.
pub struct Sentinel {
    server: SocketAddr,
    stream: TcpStream,
    /// Set by the reader when the server closed or reset the connection.
    closed: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl Sentinel {
    /// Joins the room (an error: nothing listens at `server`).
    pub fn join(server: SocketAddr) -> std::io::Result<Sentinel> {
        let stream = TcpStream::connect_timeout(&server, CONNECT_TIMEOUT)?;
        let closed = Arc::new(AtomicBool::new(false));
        let reader = {
            let mut stream = stream.try_clone()?;
            let closed = Arc::clone(&closed);
            std::thread::spawn(move || {
                let mut buf = vec![0; READ_BYTES];
                // Ends when the server closes or resets the connection, or when `leave`
                // shuts it down.
                while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
                closed.store(true, Ordering::Release);
            })
        };
        Ok(Sentinel {
            server,
            stream,
            closed,
            reader: Some(reader),
        })
    }

    /// Whether the server went away (asked after each check, it waits [`AFTERMATH`] for it):
    /// it closed the sentinel's connection and takes no new one. (A server that dropped only
    /// the sentinel, as its own policy, gets a new one.)
    pub fn server_gone(&mut self) -> bool {
        let until = Instant::now() + AFTERMATH;
        while !self.closed.load(Ordering::Acquire) {
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(LOOK_EVERY);
        }
        match Sentinel::join(self.server) {
            Ok(fresh) => {
                let old = std::mem::replace(self, fresh);
                old.leave();
                false
            }
            Err(_) => true,
        }
    }

    /// Leaves the room: the connection is shut down and the reader joined.
    pub fn leave(mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}
