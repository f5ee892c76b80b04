//! The chat server's output side: flushing each client's queue (one vectored send, or until
//! EAGAIN under edge triggering), watching for OUT while output is left over, pausing input
//! past the soft limit, and dropping slow consumers.

use std::time::Duration;

use nix::errno::Errno;

use super::{BLOCKING_SEND_TIMEOUT, ChatApp, MAX_SENDS_PER_FLUSH, SLOW_CONSUMER_TIMER};
use crate::bugs::Bug;
use crate::chat::server::{ClientId, Departure};
use crate::kernel::{Events, PollFd};
use crate::reactor::Io;
use crate::readiness::Token;

impl ChatApp {
    /// Sends what is queued for `id`: one vectored send (level) or until EAGAIN (edge).
    pub(super) fn flush(&mut self, io: &mut Io<'_>, id: ClientId) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let fd = conn.fd;
        let sends = if self.mode.edge {
            MAX_SENDS_PER_FLUSH
        } else {
            1
        };
        let mut blocked = false;
        // AnyIO#38: the loop keeps offering what it offered first.
        let mut first_offer: Option<Vec<u8>> = None;
        for _ in 0..sends {
            let Some(out) = self.core.outbound(id) else {
                return;
            };
            if out.is_empty() {
                break;
            }
            let slices = out.slices();
            let offered: usize = slices.iter().map(|s| s.len()).sum();
            self.stats.sends += 1;
            let sent = if self.bug(Bug::SendallResendsWholeBuffer) {
                let first = first_offer.get_or_insert_with(|| slices.concat());
                io.kernel.send(fd, first)
            } else {
                io.kernel.send_vectored(fd, &slices)
            };
            match sent {
                Ok(n) => {
                    self.stats.bytes_out += n as u64;
                    let short = n < offered;
                    // Never past the queue: sendall_resends_whole_buffer sends what it
                    // offered first, which may be more than is left.
                    let counted = self.counted_as_sent(id, n, short);
                    self.core.sent(id, counted.min(self.queued(id)));
                    if short && self.short_send_ends_flush() {
                        blocked = self.bug(Bug::NonblockingPartialSendLost);
                        break;
                    }
                }
                Err(e @ (Errno::EAGAIN | Errno::EINTR)) => {
                    if e == Errno::EAGAIN && self.on_eagain_buggily(io, id) {
                        return;
                    }
                    blocked = true;
                    break;
                }
                Err(_) => return self.send_failed(io, id),
            }
        }
        self.after_flush(io, id, blocked);
    }

    /// What the server takes the kernel to have accepted when it accepted `n` bytes (`short`:
    /// fewer than offered): `n`, but for the zoo's bugs that read a short send wrongly.
    fn counted_as_sent(&self, id: ClientId, n: usize, short: bool) -> usize {
        let Some(out) = self.core.outbound(id).filter(|_| short) else {
            return n;
        };
        if self.bug(Bug::BtSendNotSendall) {
            // send's count ignored: the line it stopped in is taken as sent whole.
            out.to_line_end(n)
        } else if self.bug(Bug::NonblockingPartialSendLost) {
            // Reported as EWOULDBLOCK without the count: the line it stopped in goes again
            // whole, its sent prefix twice.
            out.to_line_start(n)
        } else {
            n
        }
    }

    /// Whether a short send ends this flush: for the bugs whose code sends a line and takes a
    /// short send as "the socket is full" (the reference sends on, to EAGAIN or the budget).
    fn short_send_ends_flush(&self) -> bool {
        self.bug(Bug::NonblockingPartialSendLost)
            || (self.mode.edge && self.bug(Bug::EtPartialWriteNoEpollout))
    }

    pub(super) fn queued(&self, id: ClientId) -> usize {
        self.core.outbound(id).map_or(0, |o| o.bytes())
    }

    /// What the zoo's EAGAIN bugs do instead of waiting for room (nothing, for the reference
    /// server); true when the flush ends there (the client was dropped).
    fn on_eagain_buggily(&mut self, io: &mut Io<'_>, id: ClientId) -> bool {
        if self.bug(Bug::TutorialSendallNonblocking) {
            // sendall raised: the client is dropped, with half a message.
            self.depart(io, id, Departure::Failed);
            return true;
        }
        if self.bug(Bug::SendallOnNonblocking) {
            self.core.drop_queue(id);
        }
        if self.bug(Bug::PartialWriteAbandoned) {
            self.core.abandon_partial_line(id);
        }
        if self.bug(Bug::BtBlockingSendStallsAll) {
            // A blocking send: the whole server waits for this one client's room.
            let fd = self.conns[&id].fd;
            let mut p = [PollFd::new(fd, Events::OUT)];
            let _ = io.kernel.poll(&mut p, Some(BLOCKING_SEND_TIMEOUT));
        }
        false
    }

    /// A send to `id` failed for good.
    fn send_failed(&mut self, io: &mut Io<'_>, id: ClientId) {
        if self.bug(Bug::TutorialDictMutatedInBroadcast) {
            return self.crash(io, "dictionary changed size during iteration");
        }
        match self.last_reader {
            Some(sender) if self.bug(Bug::TutorialWrongSocketRemoved) && sender != id => {
                self.depart(io, sender, Departure::Failed)
            }
            _ => self.depart(io, id, Departure::Failed),
        }
    }

    /// After a flush: close a leaver whose queue is out, and watch OUT as the mode needs.
    fn after_flush(&mut self, io: &mut Io<'_>, id: ClientId, blocked: bool) {
        let empty = self.queued(id) == 0;
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if empty && conn.close_after_flush {
            return self.close_conn(io, id);
        }
        if self.mode.edge && self.bugs.has(Bug::EtPartialWriteNoEpollout) {
            // Netty's epoll transport (netty#4216): OUT is asked for only while a write is
            // incomplete, and only a send that hit EAGAIN asks; after a short write it is
            // forgotten, and the rest waits for some other wakeup.
            return self.watch_out(io, id, !empty && blocked);
        }
        if self.mode.edge {
            // Budget spent, output left and the socket never ran out of room: no new edge will
            // come (the reader may be draining as fast as we send). EPOLL_CTL_MOD re-polls, so
            // the next wait reports OUT again (netty/netty#7730).
            if !empty && !blocked && !self.bugs.has(Bug::EtWriteQuantumNoRearm) {
                let interest = self.interest(true);
                let _ = io.modify(Token(id), interest, self.mode);
            }
            return;
        }
        if empty && self.bugs.has(Bug::LtDrainSkipsPolloutStop) {
            return;
        }
        // Level-triggered: watch OUT exactly while something is left to send.
        let never_cleared = conn.watching_out && self.bugs.has(Bug::LtEpolloutNeverCleared);
        self.watch_out(io, id, !empty || never_cleared);
    }

    /// Asks for OUT on `id` or stops asking, when that changes.
    fn watch_out(&mut self, io: &mut Io<'_>, id: ClientId, want_out: bool) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.watching_out != want_out {
            conn.watching_out = want_out;
            let interest = self.interest(want_out);
            let _ = io.modify(Token(id), interest, self.mode);
        }
    }

    /// Stops reading input if a queue that grew is past the soft limit.
    pub(super) fn pause_if_congested(&mut self, io: &mut Io<'_>) {
        let soft = self.core.limits().soft_bytes();
        let unbounded = self.bug(Bug::UnboundedReplyBuffer);
        if !self.reading_paused && !unbounded && self.core.any_queue_over(self.core.dirty(), soft) {
            self.stats.read_pauses += 1;
            self.set_reading_paused(io, true);
        }
    }

    /// Changes every connection's interest to take input or not (EPOLL_CTL_MOD also
    /// re-polls, so under edge triggering input that waited is reported on resuming).
    fn set_reading_paused(&mut self, io: &mut Io<'_>, paused: bool) {
        self.reading_paused = paused;
        let conns: Vec<(ClientId, bool)> = self
            .conns
            .iter()
            .map(|(id, c)| (*id, c.watching_out))
            .collect();
        for (id, out) in conns {
            let _ = io.modify(Token(id), self.interest(out), self.mode);
        }
    }

    /// Once per turn: a client that holds the room back too long is disconnected; reading
    /// resumes once every queue is under half the soft limit; a timer wakes the server when
    /// the next slow consumer's time is up. A client holds the room back while its queue is
    /// above the soft limit, or above half of it while input is paused: it is what keeps
    /// input paused.
    /// Returns whether it dropped anyone.
    pub(super) fn police_queues(&mut self, io: &mut Io<'_>) -> bool {
        if self.bug(Bug::UnboundedReplyBuffer) {
            return false;
        }
        let limits = self.core.limits();
        let (soft, timeout) = (limits.soft_bytes(), limits.slow_consumer_timeout);
        let low = soft / 2;
        let now = io.now();
        let mut expired = Vec::new();
        let mut next_due: Option<Duration> = None;
        for &id in self.conns.keys() {
            let queued = self.queued(id);
            if queued > soft || (self.reading_paused && queued > low) {
                let due = *self.over_soft_since.entry(id).or_insert(now) + timeout;
                if now >= due {
                    expired.push(id);
                } else {
                    next_due = Some(next_due.map_or(due, |d| d.min(due)));
                }
            } else if !self.bug(Bug::SoftLimitTimerNotReset) {
                // Redis#2063: the clock must restart when the queue drains, or a client that
                // was briefly slow long ago is dropped the next time it is briefly slow.
                self.over_soft_since.remove(&id);
            }
        }
        let dropped = !expired.is_empty();
        for id in expired {
            let peer = self
                .core
                .peer(id)
                .map(ToString::to_string)
                .unwrap_or_default();
            self.log(
                io,
                format!(
                    "{peer} disconnected: slow consumer (held the room back for {} s, more than {low} bytes queued)",
                    timeout.as_secs_f64()
                ),
            );
            self.depart(io, id, Departure::SlowConsumer);
        }
        // Only after the expired have gone: they held the room back, and no event may ever
        // come to look again.
        if self.reading_paused && self.conns.keys().all(|&id| self.queued(id) <= low) {
            self.set_reading_paused(io, false);
        }
        match next_due {
            Some(due) => io.set_timer(SLOW_CONSUMER_TIMER, due.saturating_sub(now)),
            None => io.cancel_timer(SLOW_CONSUMER_TIMER),
        }
        dropped
    }

    /// Flushes every client with new output, once per turn.
    pub(super) fn flush_dirty(&mut self, io: &mut Io<'_>) {
        self.core.take_dirty(&mut self.dirty);
        let dirty = std::mem::take(&mut self.dirty);
        let mut skip_next = false;
        for &id in &dirty {
            if std::mem::take(&mut skip_next) {
                continue;
            }
            let before = self.conns.len();
            self.flush(io, id);
            if self.conns.len() < before && !self.stopped() {
                self.removed_while_iterating(io, id, &dirty, &mut skip_next);
            }
        }
        self.dirty = dirty;
    }

    /// A client left the table while the flush loop iterated it: what the zoo's registry bugs
    /// make of that (nothing, for the reference server).
    fn removed_while_iterating(
        &mut self,
        io: &mut Io<'_>,
        id: ClientId,
        dirty: &[ClientId],
        skip_next: &mut bool,
    ) {
        if self.bug(Bug::DictMutatedDuringBroadcast) {
            return self.crash(io, "dictionary changed size during iteration");
        }
        *skip_next = self.bug(Bug::BtRemoveWhileIterating);
        if self.bug(Bug::ForwardFreesIteratedClient) {
            let next = dirty.iter().copied().find(|&d| d > id);
            if let Some(next) = next.filter(|n| self.conns.contains_key(n)) {
                self.depart(io, next, Departure::Failed);
            }
        }
    }
}
