//! Cases whose server is descheduled for some steps, so that one of its waits sees what the
//! clients did meanwhile all at once (`fd-reuse`). Their steps are concurrent as the server
//! sees them, which the model (one step at a time) cannot order; they are judged instead by
//! what each client must have heard whatever the order.

use std::ops::Range;

use crate::session::properties;
use crate::session::{Failure, Outcome, Symptom};

/// The steps during which the server is descheduled, and what must be heard by the end.
#[derive(Debug, Clone)]
pub(super) struct Descheduled {
    /// The steps (indices) during which the server makes no call.
    pub steps: Range<usize>,
    /// `(client, text)`: a line holding `text` that the client must have heard, in any
    /// dialect's frame.
    pub must_hear: &'static [(usize, &'static str)],
}

impl Descheduled {
    /// Judges a finished session of `step_count` steps: no death, no busy loop or blocking
    /// call, and every line it must have heard heard.
    pub fn judge(&self, step_count: usize, o: &Outcome) -> Result<(), Failure> {
        properties::could_go_on(o)?;
        properties::check_liveness(step_count, o)?;
        for &(n, text) in self.must_hear {
            let heard = o.clients.get(n).is_some_and(|c| {
                (c.lines.iter()).any(|l| l.windows(text.len()).any(|w| w == text.as_bytes()))
            });
            if !heard {
                let what = format!(
                    "c{} never heard {text:?}: one of the server's waits saw a line, a newcomer \
                     and a reset at once, and the newcomer lost its place in the room",
                    n + 1,
                );
                return Err(Failure::new(Symptom::Lost, what).with_transcript(&o.transcript));
            }
        }
        Ok(())
    }
}
