//! The chat server under a real load, in `cargo test`: 16 real clients (a reader and a writer
//! thread each) send 200 lines of 64 bytes each while reading everything, on every backend
//! and mode. Every line must reach every other client exactly once, in order, and nobody may
//! be dropped. The server and the load stop by themselves (a 10 s deadline): a stall or a
//! wrongful drop fails the test with the load's report, never a hang.

use selectlab::bugs::Bugs;
use selectlab::readiness::BACKEND_MODES;
use selectlab::zoo::detect::real_run;

const CLIENTS: usize = 16;
const LINES: usize = 200;

#[test]
fn sixteen_real_clients_hear_everything_on_every_backend_and_mode() {
    for (backend, mode) in BACKEND_MODES {
        real_run(Bugs::NONE, backend, mode, CLIENTS, LINES)
            .unwrap_or_else(|e| panic!("{backend} {mode:?}: {e}"));
    }
}

/// The slow-consumer rule on real sockets: eight clients chat (8000 lines each) while a ninth connects and never
/// reads. Back-pressure holds the room while the ninth's queue is over the soft limit; after
/// the timeout it is disconnected (and logged), and the eight hear every line.
#[test]
fn a_client_that_never_reads_is_dropped_and_the_others_hear_everything() {
    use std::time::Duration;

    use selectlab::chat::server::Limits;
    use selectlab::kernel::Mode;
    use selectlab::load::{self, LoadConfig};
    use selectlab::programs::chat_room::{ServeOptions, serve_in_thread};
    use selectlab::readiness::Backend;

    for (backend, mode) in [(Backend::Poll, Mode::LEVEL), (Backend::Epoll, Mode::EDGE)] {
        let limits = Limits {
            outbound_soft_bytes: 256 * 1024,
            slow_consumer_timeout: Duration::from_secs(2),
            ..Limits::default()
        };
        let options = ServeOptions {
            backend,
            mode,
            limits,
            stop_after: Some(9),
            run_for: Some(Duration::from_secs(30)),
            bugs: Bugs::NONE,
        };
        let (addr, server) = serve_in_thread(options).unwrap();
        let silent = std::net::TcpStream::connect(addr).unwrap();
        let report = load::run(&LoadConfig {
            addr,
            clients: 8,
            // More than any kernel's buffers hold for the silent client (gVisor's are large).
            lines: 8000,
            bytes: 64,
            deadline: Duration::from_secs(25),
            progress: indicatif::ProgressBar::hidden(),
        })
        .unwrap();
        drop(silent);
        let (stats, log) = server.join().unwrap().unwrap();
        assert!(report.perfect(), "{backend} {mode:?}: {report}");
        assert!(
            log.contains(
                "slow consumer (held the room back for 2 s, more than 131072 bytes queued)"
            ),
            "{backend} {mode:?}: {log}"
        );
        assert!(
            stats.read_pauses >= 1,
            "{backend} {mode:?}: back-pressure applied"
        );
    }
}
