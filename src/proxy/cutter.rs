//! The proxy's decisions, sans I/O: for each direction of each connection, how the bytes that
//! are waiting go out — in what pieces, after what pauses, and whether the connection is reset
//! here. One [`Decider`] per direction, seeded from the run's seed, the connection's number and
//! the direction, so a seed plans the same cuts whatever the timing: piece *k* of a direction
//! is always planned the same size (it is cut shorter only when fewer bytes are there yet).

use crate::sim::decide::{Adversity, Choice, Decider, SplitMix64};

/// The largest piece the proxy writes at once (and its buffer per direction, by default).
pub const MAX_PIECE_BYTES: usize = 16 * 1024;
/// The longest pause before a piece.
pub const MAX_PAUSE_MS: usize = 20;

/// How hard the proxy pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Forward what arrives as it arrives: a plain relay.
    Faithful,
    /// Cut into pieces down to 1 byte, hold back so pieces coalesce, and (only when asked)
    /// reset connections.
    Adversary,
}

/// What the proxy's adversary does, at what rates (per mille of pieces).
fn adversity(resets: bool) -> Adversity {
    Adversity {
        short_io_per_mille: 600,
        hold_back_per_mille: 100,
        reset_per_mille: if resets { 2 } else { 0 },
        ..Adversity::NONE
    }
}

/// The next thing to do with the bytes waiting in one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// Pause this long first (0: none).
    pub pause_ms: u32,
    /// Then write at most this many bytes (fewer if fewer are waiting).
    pub planned: usize,
    /// Why the plan is not "everything, now" (for the transcript).
    pub choice: Option<Choice>,
    /// Reset the connection instead of writing.
    pub reset: bool,
}

/// One direction's plan.
#[derive(Debug, Clone)]
pub struct Cutter {
    decide: Decider,
    faithful: bool,
}

impl Cutter {
    /// The cutter for `direction` (0: client to server, 1: back) of connection `conn`.
    pub fn new(profile: Profile, resets: bool, seed: u64, conn: u64, direction: u64) -> Cutter {
        let mut mix = SplitMix64(seed ^ conn.rotate_left(17) ^ direction.rotate_left(47));
        let decide = match profile {
            Profile::Faithful => Decider::faithful(),
            Profile::Adversary => Decider::seeded(mix.next(), adversity(resets)),
        };
        Cutter {
            decide,
            faithful: profile == Profile::Faithful,
        }
    }

    /// Plans the next piece. Every call draws the same decisions in the same order, whatever
    /// is waiting, so the plan is a function of the seed and the piece's number alone.
    pub fn next_piece(&mut self) -> Piece {
        if self.faithful {
            return Piece {
                pause_ms: 0,
                planned: MAX_PIECE_BYTES,
                choice: None,
                reset: false,
            };
        }
        let reset = self.decide.reset();
        let hold = self.decide.hold_back();
        let pause_ms = 1 + self.decide.pick(MAX_PAUSE_MS);
        // Whether the adversary shortens this write: of 2 bytes, it then takes 1.
        let short = self.decide.send_len(2).0 == 1;
        // Log-uniform sizes: each power-of-two size class (1, 2–3, 4–7, … bytes) is as likely
        // as any other, so pieces of a few bytes are common.
        let bits = self.decide.pick(MAX_PIECE_BYTES.trailing_zeros() as usize);
        let planned = (1 << bits) + self.decide.pick(1 << bits);
        let clamp = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        let (planned, choice) = match (hold, short) {
            (true, _) => (
                MAX_PIECE_BYTES,
                Some(Choice::Pause {
                    millis: clamp(pause_ms),
                }),
            ),
            (false, true) => (
                planned,
                Some(Choice::ShortWrite {
                    taken: clamp(planned),
                    offered: clamp(MAX_PIECE_BYTES),
                }),
            ),
            (false, false) => (MAX_PIECE_BYTES, None),
        };
        Piece {
            pause_ms: if hold { clamp(pause_ms) } else { 0 },
            planned,
            choice,
            reset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(seed: u64, conn: u64, dir: u64) -> Vec<Piece> {
        let mut c = Cutter::new(Profile::Adversary, true, seed, conn, dir);
        (0..2000).map(|_| c.next_piece()).collect()
    }

    #[test]
    fn a_seed_plans_the_same_cuts_and_others_differ() {
        assert_eq!(plan(7, 1, 0), plan(7, 1, 0));
        assert_ne!(plan(7, 1, 0), plan(8, 1, 0));
        assert_ne!(plan(7, 1, 0), plan(7, 2, 0));
        assert_ne!(plan(7, 1, 0), plan(7, 1, 1));
    }

    #[test]
    fn the_adversary_cuts_down_to_one_byte_pauses_and_resets_only_when_asked() {
        let pieces = plan(1, 1, 0);
        assert!(pieces.iter().any(|p| p.planned == 1));
        assert!(
            pieces
                .iter()
                .all(|p| (1..=MAX_PIECE_BYTES).contains(&p.planned))
        );
        assert!(pieces.iter().any(|p| p.pause_ms > 0));
        assert!(pieces.iter().all(|p| p.pause_ms as usize <= MAX_PAUSE_MS));
        assert!(pieces.iter().any(|p| p.reset));
        let mut calm = Cutter::new(Profile::Adversary, false, 1, 1, 0);
        assert!((0..2000).all(|_| !calm.next_piece().reset));
        let mut relay = Cutter::new(Profile::Faithful, true, 1, 1, 0);
        let p = relay.next_piece();
        assert_eq!(
            (p.planned, p.pause_ms, p.reset, p.choice),
            (MAX_PIECE_BYTES, 0, false, None)
        );
    }
}
