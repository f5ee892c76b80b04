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

    /// Drops the rest of the text line the queue stopped in, if part of it was sent (a zoo
    /// bug's doing: the peer is left holding a prefix of one line).
    pub fn abandon_partial_line(&mut self) {
        let rest = self.to_line_end(0);
        self.advance(rest);
    }

    /// Bytes from the queue's front to the end of the text line that holds byte `n`: `n`
    /// itself when byte `n` starts a line (or the queue ends there), else through that line's
    /// newline (or to the queue's end when the line is not complete). A queue entry is a batch
    /// of whole lines from one read, so this is finer than an entry.
    pub fn to_line_end(&self, n: usize) -> usize {
        if self.starts_line(n) {
            return n;
        }
        self.bytes_from(n)
            .position(|b| b == b'\n')
            .map_or(self.bytes, |i| n + i + 1)
    }

    /// Bytes from the queue's front to the start of the text line that holds byte `n` (`n`
    /// when it starts one; 0 when that line began before the front, in bytes already sent).
    pub fn to_line_start(&self, n: usize) -> usize {
        let before: Vec<u8> = self.bytes_from(0).take(n).collect();
        before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1)
    }

    /// Whether byte `n` of the queue starts a text line: the byte before it (sent or not) is
    /// a newline, or there is none.
    fn starts_line(&self, n: usize) -> bool {
        if n >= self.bytes {
            return true;
        }
        let before = if n == 0 {
            self.lines
                .front()
                .and_then(|head| self.head_sent.checked_sub(1).map(|i| head[i]))
        } else {
            self.bytes_from(n - 1).next()
        };
        before.is_none_or(|b| b == b'\n')
    }

    /// The queued bytes from byte `n` on.
    fn bytes_from(&self, n: usize) -> impl Iterator<Item = u8> + '_ {
        let head = self.lines.iter().take(1).flat_map(|l| &l[self.head_sent..]);
        let rest = self.lines.iter().skip(1).flat_map(|l| l.iter());
        head.chain(rest).skip(n).copied()
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
        q.push(Rc::from(&b"012345678\n"[..]));
        q.push(Rc::from(&b"next\n"[..]));
        q.abandon_partial_line();
        assert_eq!(q.bytes(), 15, "nothing sent yet: nothing abandoned");
        q.advance(4);
        q.abandon_partial_line();
        assert_eq!(q.slices(), [&b"next\n"[..]]);
        assert_eq!(q.bytes(), 5);
    }

    #[test]
    fn line_ends_and_starts_are_found_inside_a_batch_entry() {
        let mut q = Outbound::default();
        q.push(Rc::from(&b"ab\ncd\n"[..]));
        q.push(Rc::from(&b"ef\n"[..]));
        assert_eq!(q.to_line_end(0), 0, "the queue starts a line");
        assert_eq!(q.to_line_end(1), 3, "inside `ab`: through its newline");
        assert_eq!(q.to_line_end(3), 3, "`cd` starts at 3");
        assert_eq!(q.to_line_end(6), 6, "`ef` starts the second entry");
        assert_eq!(q.to_line_end(7), 9);
        assert_eq!(q.to_line_start(4), 3);
        assert_eq!(q.to_line_start(3), 3);
        assert_eq!(q.to_line_start(2), 0);
        q.advance(4);
        assert_eq!(q.to_line_end(0), 2, "mid-`cd`: its rest");
        assert_eq!(q.to_line_start(1), 0, "`cd` began in bytes already sent");
        q.abandon_partial_line();
        assert_eq!(q.slices(), [&b"ef\n"[..]]);
        q.abandon_partial_line();
        assert_eq!(q.bytes(), 3, "nothing partial: nothing dropped");
    }
}
