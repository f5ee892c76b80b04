//! eventfd: a 64-bit counter that a write adds to and a read takes (all of it, or one in
//! semaphore mode), as fs/eventfd.c keeps it. Reads and writes move exactly 8 bytes; every
//! write wakes readers (an edge for edge-triggered epoll, even when the counter was already
//! non-zero), and every read wakes writers.

use nix::errno::Errno;

use crate::kernel::{Events, Fd};
use crate::sim::state::{Counter, Object};
use crate::sim::{Id, Sim};

use super::Chosen;

/// Bytes an eventfd read or write moves: one native-endian u64.
const COUNTER_BYTES: usize = 8;

impl Sim {
    pub(in crate::sim) fn sim_eventfd(
        &mut self,
        initval: u32,
        semaphore: bool,
    ) -> Result<Fd, Errno> {
        self.check_fds_available(1)?;
        let id = self.counters.insert(Counter {
            count: initval.into(),
            semaphore,
        });
        self.open_fd(Object::EventFd(id))
    }

    /// eventfd_read: EINVAL for a buffer under 8 bytes, EAGAIN at zero, else the count (or 1).
    pub(super) fn eventfd_read(&mut self, c: Id, buf: &mut [u8]) -> Chosen<usize> {
        let Some(out) = buf.get_mut(..COUNTER_BYTES) else {
            return (Err(Errno::EINVAL), None);
        };
        let counter = self.counters.get_mut(c).expect("live eventfd");
        if counter.count == 0 {
            return (Err(Errno::EAGAIN), None);
        }
        let taken = if counter.semaphore { 1 } else { counter.count };
        counter.count -= taken;
        out.copy_from_slice(&taken.to_ne_bytes());
        self.wake(Object::EventFd(c), Events::OUT);
        (Ok(COUNTER_BYTES), None)
    }

    /// eventfd_write: EINVAL for a buffer under 8 bytes or the value u64::MAX, EAGAIN when
    /// the counter would pass u64::MAX - 1, else the value is added.
    pub(super) fn eventfd_write(&mut self, c: Id, buf: &[u8]) -> Chosen<usize> {
        let Some(bytes) = buf.get(..COUNTER_BYTES) else {
            return (Err(Errno::EINVAL), None);
        };
        let value = u64::from_ne_bytes(bytes.try_into().expect("8 bytes"));
        if value == u64::MAX {
            return (Err(Errno::EINVAL), None);
        }
        let counter = self.counters.get_mut(c).expect("live eventfd");
        if u64::MAX - counter.count <= value {
            return (Err(Errno::EAGAIN), None);
        }
        counter.count += value;
        self.wake(Object::EventFd(c), Events::IN);
        (Ok(COUNTER_BYTES), None)
    }

    /// eventfd_poll: readable above zero, writable below u64::MAX - 1.
    pub(in crate::sim) fn eventfd_readiness(&self, c: Id) -> Events {
        let count = self.counters.get(c).expect("live eventfd").count;
        let mut e = Events::NONE;
        if count > 0 {
            e |= Events::IN;
        }
        if count == u64::MAX {
            e |= Events::ERR;
        }
        if u64::MAX - 1 > count {
            e |= Events::OUT;
        }
        e
    }
}
