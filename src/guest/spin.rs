//! The idle-server property: a program with nothing to do blocks in its wait. One that spins
//! (a wait that returns at once, again and again, with nothing read, written or accepted in
//! between) delivers every byte and still burns a core; real sockets cannot tell, virtual time
//! can: such waits leave the clock where it was.

use std::time::Duration;

use selectlab_wire::{Op, Reply, Request};

/// Waits in a row that returned at once with no progress, after which a program spins.
pub const SPIN_WAIT_LIMIT: u32 = 10_000;

/// Counts the program's waits that returned at once since it last moved a byte.
#[derive(Debug, Default)]
pub struct SpinWatch {
    idle_waits: u32,
}

impl SpinWatch {
    /// Notes one call (made between virtual times `before` and `after`); the symptom once the
    /// program has spun [`SPIN_WAIT_LIMIT`] times.
    pub fn note(
        &mut self,
        req: &Request,
        reply: &Reply,
        before: Duration,
        after: Duration,
    ) -> Option<String> {
        match req.op {
            Op::Poll | Op::Select | Op::EpollWait | Op::Sleep if after > before => {
                self.idle_waits = 0
            }
            Op::Poll | Op::Select | Op::EpollWait => self.idle_waits += 1,
            Op::Recv | Op::Send | Op::Accept if reply.ret > 0 => self.idle_waits = 0,
            _ => {}
        }
        (self.idle_waits >= SPIN_WAIT_LIMIT).then(|| {
            format!(
                "it spins: {SPIN_WAIT_LIMIT} waits in a row returned at once with nothing read, \
                 written or accepted between them (virtual time stood at {:.3} s)",
                after.as_secs_f64()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_that_take_time_or_moved_bytes_reset_the_count() {
        let wait = Request::new(Op::EpollWait, &[3, 8, 0]);
        let (t0, t1) = (Duration::ZERO, Duration::from_millis(1));
        let mut watch = SpinWatch::default();
        for _ in 1..SPIN_WAIT_LIMIT {
            assert_eq!(watch.note(&wait, &Reply::ok(0), t0, t0), None);
        }
        assert_eq!(
            watch.note(&wait, &Reply::ok(0), t0, t1),
            None,
            "this one slept"
        );
        for _ in 1..SPIN_WAIT_LIMIT {
            assert_eq!(watch.note(&wait, &Reply::ok(1), t1, t1), None);
        }
        assert_eq!(
            watch.note(&Request::new(Op::Recv, &[5, 4096]), &Reply::ok(12), t1, t1),
            None
        );
        for _ in 1..SPIN_WAIT_LIMIT {
            assert_eq!(watch.note(&wait, &Reply::ok(1), t1, t1), None);
        }
        assert!(
            watch.note(&wait, &Reply::ok(1), t1, t1).is_some(),
            "the limit"
        );
    }
}
