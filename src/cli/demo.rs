//! `selectlab demo`: a simulated session printed as a transcript.

use std::io::Write;
use std::process::ExitCode;

use crate::programs::{demo, lt_vs_et};

#[derive(clap::Args)]
pub(super) struct DemoArgs {
    /// Which demo: `chat` (the default), `goodbye` or `lt-vs-et`.
    #[arg(default_value = "chat", value_parser = ["chat", "goodbye", "lt-vs-et"])]
    which: String,
    /// 0 is faithful Linux; other seeds add the lawful adversary's short reads and writes.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl DemoArgs {
    pub(super) fn run(self, out: &mut dyn Write) -> ExitCode {
        let ran = match self.which.as_str() {
            "lt-vs-et" => lt_vs_et::demo(out).map_err(Into::into),
            "goodbye" => demo::run(self.seed, out),
            _ => demo::chat(self.seed, out),
        };
        super::status(ran.map(|()| true))
    }
}
