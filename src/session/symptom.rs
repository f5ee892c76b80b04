//! What a failed session showed: a [`Symptom`] (the kind of fault, which a shrink keeps while
//! it cuts a case down and which `--json` reports) and a [`Failure`] (the kind, what failed in
//! words, and the session's transcript).

use std::fmt;

/// The kind of fault a session showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Symptom {
    /// A client never heard something it was owed.
    Lost,
    /// A client heard something nobody said (news about itself included), or heard it more
    /// than once.
    Extra,
    /// A client heard everything, in another order than it was said.
    Reordered,
    /// A client heard a line cut, joined with another, changed, or framed by what one read
    /// returned rather than line by line.
    Torn,
    /// A client heard its own line relayed back.
    Echoed,
    /// A client heard a line that fits neither the protocol nor the server's dialect.
    Unreadable,
    /// A queue for one client grew past the room's cap.
    OverCap,
    /// The server's memory grew without bound while a reader had stopped.
    Memory,
    /// The server busy-loops: work without progress while time stands still.
    Spin,
    /// The server blocked in a call while the room waited for it.
    Blocked,
    /// A step never settled: a busy loop or a hang the session could not tell apart.
    Hang,
    /// The server turned the end of a crowd away at its capacity.
    TurnedAway,
    /// The server exited.
    Exited,
    /// The server was killed by a signal.
    Signalled,
    /// The server did something the simulator cannot run faithfully.
    Refused,
    /// The server could not start.
    CannotStart,
}

impl Symptom {
    /// Every kind, in declaration order.
    pub const ALL: [Symptom; 16] = [
        Symptom::Lost,
        Symptom::Extra,
        Symptom::Reordered,
        Symptom::Torn,
        Symptom::Echoed,
        Symptom::Unreadable,
        Symptom::OverCap,
        Symptom::Memory,
        Symptom::Spin,
        Symptom::Blocked,
        Symptom::Hang,
        Symptom::TurnedAway,
        Symptom::Exited,
        Symptom::Signalled,
        Symptom::Refused,
        Symptom::CannotStart,
    ];

    /// The kind's name in reports and in `--json` (`kind`).
    pub fn name(self) -> &'static str {
        match self {
            Symptom::Lost => "lost",
            Symptom::Extra => "extra",
            Symptom::Reordered => "reordered",
            Symptom::Torn => "torn",
            Symptom::Echoed => "echoed",
            Symptom::Unreadable => "unreadable",
            Symptom::OverCap => "over-cap",
            Symptom::Memory => "memory",
            Symptom::Spin => "spin",
            Symptom::Blocked => "blocked",
            Symptom::Hang => "hang",
            Symptom::TurnedAway => "turned-away",
            Symptom::Exited => "exited",
            Symptom::Signalled => "signalled",
            Symptom::Refused => "refused",
            Symptom::CannotStart => "cannot-start",
        }
    }
}

impl fmt::Display for Symptom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed session: the kind of fault, what failed (its first line says it in one line; the
/// lines after it, if any, are a program's last standard-error lines), and the transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The kind.
    pub symptom: Symptom,
    /// What failed, in words.
    pub what: String,
    /// The session's transcript (empty when it was not written).
    pub transcript: String,
}

impl Failure {
    /// A failure of kind `symptom`, with no transcript yet.
    pub fn new(symptom: Symptom, what: impl Into<String>) -> Failure {
        Failure {
            symptom,
            what: what.into(),
            transcript: String::new(),
        }
    }

    /// The same failure with `prefix` before what failed ("c2 ", "the server could not go
    /// on: ").
    pub fn after(mut self, prefix: &str) -> Failure {
        self.what.insert_str(0, prefix);
        self
    }

    /// The same failure with the session's transcript.
    pub fn with_transcript(mut self, transcript: &str) -> Failure {
        self.transcript = transcript.to_string();
        self
    }

    /// What failed, in one line (without a program's standard error or the transcript).
    pub fn headline(&self) -> &str {
        self.what.lines().next().unwrap_or_default()
    }
}

impl fmt::Display for Failure {
    /// What failed, then the transcript, if any.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)?;
        if !self.transcript.is_empty() {
            write!(f, "\n{}", self.transcript)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_name() {
        let names: std::collections::BTreeSet<&str> =
            Symptom::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(names.len(), Symptom::ALL.len());
    }

    #[test]
    fn a_failure_shows_its_headline_apart_from_stderr_and_transcript() {
        let f = Failure::new(Symptom::Exited, "it exited with code 1\n  stderr| boom")
            .after("the server could not go on: ")
            .with_transcript("0.000 c1 connects");
        assert_eq!(
            f.headline(),
            "the server could not go on: it exited with code 1"
        );
        assert_eq!(
            f.to_string(),
            "the server could not go on: it exited with code 1\n  stderr| boom\n0.000 c1 connects"
        );
    }
}
