//! The chat server under a real load, in `cargo test`: 16 real clients (a reader and a writer
//! thread each) send 200 lines of 64 bytes each while reading everything, on every backend
//! and mode. Every line must reach every other client exactly once, in order, and nobody may
//! be dropped. The server and the load stop by themselves (a 10 s deadline): a stall or a
//! wrongful drop fails the test with the load's report, never a hang.

use selectlab::readiness::BACKEND_MODES;
use selectlab::zoo::Bugs;
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
