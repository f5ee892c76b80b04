//! `selectlab scenario`: runs scripts on one or both transports, prints every command with its
//! result, and says whether every expectation held (and, on both, whether they agree).

use std::io::Write;

use super::Script;
use super::run::{Step, run};
use crate::readiness::Backend;
use crate::real_kernel::RealKernel;
use crate::sim::decide::Decider;
use crate::sim::{Sim, SimConfig};

/// Which transport(s) a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// The kernel only.
    Real,
    /// The simulator only (faithful mode).
    Sim,
    /// Both, and their results must agree.
    Both,
}

impl Transport {
    /// Parses `real`, `sim` or `both`.
    pub fn parse(name: &str) -> Option<Transport> {
        match name {
            "real" => Some(Transport::Real),
            "sim" => Some(Transport::Sim),
            "both" => Some(Transport::Both),
            _ => None,
        }
    }
}

/// Runs one script and writes its report; returns whether it passed, and the simulator it ran
/// on (if it did), whose traffic is captured when `capture` is on.
pub fn judge(
    script: &Script,
    transport: Transport,
    backend: Backend,
    capture: bool,
    out: &mut dyn Write,
) -> (bool, Option<Sim>) {
    let backend = script.backend.unwrap_or(backend);
    let real = (transport != Transport::Sim).then(|| run(script, &mut RealKernel::new(), backend));
    let mut machine = (transport != Transport::Real).then(|| {
        let config = SimConfig {
            capture,
            ..SimConfig::default()
        };
        Sim::new(config, Decider::faithful())
    });
    let sim = machine.as_mut().map(|m| run(script, m, backend));
    let label = match transport {
        Transport::Real => "real",
        Transport::Sim => "sim",
        Transport::Both => "real and sim",
    };
    let _ = writeln!(out, "== {} (backend {backend}, {label})", script.file);
    let primary = real
        .as_ref()
        .or(sim.as_ref())
        .expect("at least one transport ran");
    let mut passed = true;
    for (i, step) in primary.iter().enumerate() {
        let other = match (&real, &sim) {
            (Some(_), Some(s)) => Some(&s[i]),
            _ => None,
        };
        passed &= report(step, other, out);
    }
    let _ = writeln!(out, "{}", if passed { "PASS" } else { "FAIL" });
    (passed, machine)
}

/// Prints one step; returns whether it held (and agreed with the other transport).
fn report(step: &Step, other: Option<&Step>, out: &mut dyn Write) -> bool {
    let mut ok = true;
    let _ = write!(
        out,
        "{:>4}: {:<40} => {}",
        step.line, step.text, step.result
    );
    if step.held == Some(false) {
        let _ = write!(
            out,
            "   FAILED: expected {}",
            step.expected.as_deref().unwrap_or("?")
        );
        ok = false;
    }
    if let Some(o) = other {
        if o.result != step.result {
            let _ = write!(out, "   MISMATCH: sim => {}", o.result);
            ok = false;
        } else if o.held == Some(false) {
            let _ = write!(out, "   FAILED on sim");
            ok = false;
        }
    }
    let _ = writeln!(out);
    ok
}
