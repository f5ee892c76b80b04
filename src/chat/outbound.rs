//! A client's outbound queue: shared, already formatted lines, sent with one vectored write.

use std::collections::VecDeque;
use std::rc::Rc;

/// Most lines one vectored send gathers (well under IOV_MAX).
pub const MAX_SLICES_PER_SEND: usize = 256;

/// Lines waiting to be sent to one client. A broadcast line is formatted once and shared (`Rc`)
/// by every recipient's queue; nothing is copied per recipient.
#[derive(Debug, Clone, Default)]
pub struct Outbound {
    lines: VecDeque<Rc<[u8]>>,
    /// Bytes of the first line already sent.
    head_sent: usize,
    /// Bytes queued (not yet sent), in all.
    bytes: usize,
}

impl Outbound {
    /// Queues a line.
    pub fn push(&mut self, line: Rc<[u8]>) {
        self.bytes += line.len();
        self.lines.push_back(line);
    }

    /// Bytes queued.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// The queued bytes as slices for one vectored send (at most [`MAX_SLICES_PER_SEND`]).
    /// One small allocation per send, however many lines it carries.
    pub fn slices(&self) -> Vec<&[u8]> {
        let mut out = Vec::with_capacity(self.lines.len().min(MAX_SLICES_PER_SEND));
        for (i, line) in self.lines.iter().take(MAX_SLICES_PER_SEND).enumerate() {
            out.push(if i == 0 {
                &line[self.head_sent..]
            } else {
                &line[..]
            });
        }
        out
    }

    /// Drops `n` bytes the kernel accepted.
    pub fn advance(&mut self, mut n: usize) {
        assert!(n <= self.bytes, "advanced past the queue");
        self.bytes -= n;
        while n > 0 {
            let head_left = self.lines[0].len() - self.head_sent;
            if n >= head_left {
                n -= head_left;
                self.lines.pop_front();
                self.head_sent = 0;
            } else {
                self.head_sent += n;
                n = 0;
            }
        }
    }

    /// Drops the rest of the first line if part of it was sent (a zoo bug's doing: the peer
    /// is left holding a prefix).
    pub fn abandon_partial_head(&mut self) {
        if self.head_sent > 0 {
            let rest = self.lines[0].len() - self.head_sent;
            self.advance(rest);
        }
    }

    /// Empties the queue.
    pub fn clear(&mut self) {
        self.lines.clear();
        self.head_sent = 0;
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_sends_resume_where_they_stopped() {
        let mut q = Outbound::default();
        q.push(Rc::from(&b"abc"[..]));
        q.push(Rc::from(&b"defg"[..]));
        assert_eq!(q.slices(), [&b"abc"[..], b"defg"]);
        q.advance(4);
        assert_eq!(q.slices(), [&b"efg"[..]]);
        assert_eq!(q.bytes(), 3);
        q.advance(3);
        assert!(q.is_empty());
    }

    /// Found by cargo-mutants: abandoning drops the unsent rest of a partly sent first line,
    /// and nothing of a line not yet begun.
    #[test]
    fn abandoning_drops_only_the_rest_of_a_partly_sent_line() {
        let mut q = Outbound::default();
        q.push(Rc::from(&b"0123456789"[..]));
        q.push(Rc::from(&b"next"[..]));
        q.abandon_partial_head();
        assert_eq!(q.bytes(), 14, "nothing sent yet: nothing abandoned");
        q.advance(4);
        q.abandon_partial_head();
        assert_eq!(q.slices(), [&b"next"[..]]);
        assert_eq!(q.bytes(), 4);
    }
}
