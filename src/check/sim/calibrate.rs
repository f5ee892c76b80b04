//! `check --sim`'s calibration: a calm run (faithful Linux, three clients, one unique line
//! each, one departure, an empty line) from which the server's dialect is learned
//! ([`dialect::learn`]) before any check judges it.

use std::time::Duration;

use super::Starts;
use crate::addr::SockAddr;
use crate::session::dialect::{self, Act, Calibration, Dialect};
use crate::session::schedules::say;
use crate::session::{Failure, SessionConfig, Step, Symptom};
use crate::sim::decide::Decider;

/// Why no dialect was learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unlearned {
    /// The server did something wrong in a calm run (it exited, spun, blocked): a fault of
    /// that kind, with its evidence.
    Fault(Symptom, Vec<String>),
    /// Nothing can be judged: the program could not start, never listened, was refused, or
    /// speaks in a way the calibration cannot tell apart; why.
    CannotJudge(String),
}

/// Virtual time between the calibration's lines, so that a time stamp's fields differ
/// between them and are learned as fields, not text.
const CALIBRATION_PAUSE: Duration = Duration::from_millis(1500);

/// The calibration's steps, each with what it means to the learner.
fn script() -> Vec<(Step, Act)> {
    let line = |n: usize, text: &str| (say(n, text), Act::Say(n, text.as_bytes().to_vec()));
    let pause = || (Step::Sleep(CALIBRATION_PAUSE), Act::Wait);
    vec![
        (Step::Join(0), Act::Join(0)),
        (Step::Join(1), Act::Join(1)),
        (Step::Join(2), Act::Join(2)),
        line(0, "selectlab calibrates alpha"),
        pause(),
        line(1, "selectlab calibrates bravo"),
        pause(),
        line(2, "selectlab calibrates charlie"),
        (Step::Exit(2), Act::Leave(2)),
        pause(),
        line(0, "selectlab calibrates delta"),
        (Step::Say(1, Vec::new()), Act::Say(1, Vec::new())),
    ]
}

/// Runs the calibration with the program as the server and learns its dialect.
pub fn learn(starts: &Starts) -> Result<Dialect, Unlearned> {
    let config = SessionConfig {
        decide: Decider::faithful(),
        limits: super::served::limits(),
        transcript: false,
        fd_table_per_host: true,
        ..SessionConfig::default()
    };
    let mut session = starts
        .session(config)
        .map_err(|f| Unlearned::CannotJudge(f.what))?;
    let trouble = |session: &crate::session::Session| session.server_trouble();
    if !session.server_listens() {
        let Some(why) = trouble(&session) else {
            let never = "the program never listened: it waits without listening";
            return Err(Unlearned::CannotJudge(never.into()));
        };
        if let Unlearned::CannotJudge(refused) = judged(&why) {
            return Err(Unlearned::CannotJudge(refused));
        }
        return Err(Unlearned::CannotJudge(format!(
            "the program never listened: {}",
            why.headline()
        )));
    }
    let script = script();
    let mut lines = Vec::with_capacity(script.len());
    let mut seen = [0; 3];
    for (step, _) in &script {
        let settled = session.step(step);
        if let Some(why) = trouble(&session) {
            return Err(judged(&why));
        }
        settled.map_err(|e| {
            let what = format!(
                "the calm calibration run's step `{step}` did not settle ({e}): a busy loop or a hang"
            );
            Unlearned::Fault(Symptom::Hang, vec![what])
        })?;
        let now = session.lines_so_far();
        let heard = (0..3)
            .map(|n| {
                let all = now.get(n).copied().unwrap_or_default();
                let new = all.get(seen[n]..).unwrap_or_default().to_vec();
                seen[n] = all.len();
                new
            })
            .collect();
        lines.push(heard);
    }
    let outcome = session.finish();
    let ports: Vec<u16> = (outcome.clients.iter())
        .map(|c| match &c.addr {
            Some(SockAddr::Inet(a)) => a.port(),
            _ => 0,
        })
        .collect();
    let acts: Vec<Act> = script.into_iter().map(|(_, act)| act).collect();
    dialect::learn(&Calibration {
        acts: &acts,
        lines: &lines,
        ports: &ports,
    })
    .map_err(|why| Unlearned::CannotJudge(format!("the server's dialect cannot be learned: {why}")))
}

/// A server's trouble in the calibration run: a refusal means nothing can be judged; anything
/// else is a fault.
fn judged(trouble: &Failure) -> Unlearned {
    if let Some(why) = super::served::refusal(trouble) {
        return Unlearned::CannotJudge(format!("the simulator cannot run it faithfully: {why}"));
    }
    let what = &trouble.what;
    Unlearned::Fault(
        trouble.symptom,
        std::iter::once(format!("in a calm run, {}", trouble.headline()))
            .chain(what.lines().skip(1).map(str::to_string))
            .collect(),
    )
}
