//! epoll and select in the simulator, following fs/eventpoll.c and fs/select.c.
//!
//! An epoll instance keeps an interest list keyed by (open file, descriptor number) and a ready
//! list. Objects *wake* their watchers when something happens to them (data arrives, space frees,
//! a FIN, an RST, a connection to accept); a wake puts the item on the ready list. epoll_wait
//! then polls each ready item: level-triggered items that are still ready go back on the list
//! (so they are reported again), edge-triggered ones wait for the next wake, one-shot ones are
//! disabled until EPOLL_CTL_MOD. Items not reached because of `max` stay at the front, which is
//! what makes successive waits rotate through more ready descriptors than `max`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use nix::errno::Errno;

use super::Id;
use super::Sim;
use super::decide::Choice;
use super::state::Object;
use super::transcript::Ready;
use crate::kernel::{CtlOp, EP_MAX_EVENTS, Events, FD_SETSIZE, Fd, FdSets, Mode};

/// Most items one epoll instance may watch (a bound on the interest list; Linux's limit is
/// max_user_watches, a fraction of memory).
pub const EPOLL_MAX_WATCHES: usize = 1 << 20;

/// How deep epoll instances may watch one another (Linux's EP_MAX_NESTS).
pub const EP_MAX_NESTS: usize = 4;

/// ERR and HUP are always watched (epoll_ctl(2)).
const ALWAYS: Events = Events::ERR.union(Events::HUP);

/// One registration.
#[derive(Debug, Clone, Copy)]
struct Item {
    interest: Events,
    mode: Mode,
    data: u64,
    /// A one-shot item that fired: silent until EPOLL_CTL_MOD re-arms it.
    disabled: bool,
}

/// The key of a registration: the open file and the descriptor it was added with.
type Key = (Id, i32);

/// One watcher of an object: the epoll instance and the key of its item.
pub type Watch = (Id, Key);

/// An epoll instance.
#[derive(Debug, Clone, Default)]
pub struct EpollInstance {
    items: BTreeMap<Key, Item>,
    ready: VecDeque<Key>,
    queued: BTreeSet<Key>,
}

impl EpollInstance {
    fn enqueue(&mut self, key: Key) {
        if self.queued.insert(key) {
            self.ready.push_back(key);
        }
    }
}

impl Sim {
    /// Something happened to `object`: queue every epoll item watching it whose interest (plus
    /// ERR and HUP) meets `mask`. `Events::NONE` is a wake without a key: it meets everything.
    pub(super) fn wake(&mut self, object: Object, mask: Events) {
        if let Object::Sock(id) = object
            && let Some(&peer) = self.peer_tags.get(&id)
        {
            self.woken_peers.insert(peer);
        }
        self.wake_nested(object, mask, 0);
    }

    /// A wake that queues an item also wakes whoever watches that epoll instance
    /// (ep_poll_callback), down to Linux's nesting limit.
    fn wake_nested(&mut self, object: Object, mask: Events, depth: usize) {
        let Some(watchers) = self.watchers.get(&object) else {
            return;
        };
        let mut woken = Vec::new();
        // add_wait_queue puts each new watcher at the head of the file's wait queue, so the
        // most recent registration hears a wake first.
        for &(ep, key) in watchers.iter().rev() {
            let Some(inst) = self.epolls.get_mut(ep) else {
                continue;
            };
            let Some(item) = inst.items.get(&key) else {
                continue;
            };
            if item.disabled || !(mask.is_empty() || mask.intersects(item.interest | ALWAYS)) {
                continue;
            }
            inst.enqueue(key);
            woken.push(ep);
        }
        if depth < EP_MAX_NESTS {
            for ep in woken {
                self.wake_nested(Object::Epoll(ep), Events::IN, depth + 1);
            }
        }
    }

    /// Whether an epoll instance has an event to report (its own descriptor is then readable).
    pub(super) fn epoll_has_ready(&self, ep: Id) -> bool {
        self.epoll_has_ready_nested(ep, 0)
    }

    /// ep_eventpoll_poll: an instance is readable when one of its queued items is ready; a
    /// nested instance is asked in turn, down to Linux's nesting limit.
    fn epoll_has_ready_nested(&self, ep: Id, depth: usize) -> bool {
        let Some(inst) = self.epolls.get(ep) else {
            return false;
        };
        inst.ready.iter().any(|key| {
            let Some(item) = inst.items.get(key) else {
                return false;
            };
            let ready = |o: Object| match o {
                Object::Epoll(inner) => {
                    depth < EP_MAX_NESTS
                        && self.epoll_has_ready_nested(inner, depth + 1)
                        && item.interest.contains(Events::IN)
                }
                other => self.readiness(other).intersects(item.interest | ALWAYS),
            };
            !item.disabled && self.files.get(key.0).is_some_and(|f| ready(f.object))
        })
    }

    /// ep_loop_check_proc: how many levels of epoll instances lie below `ep` (0: it watches
    /// none), `depth` levels under the instance being added to; past `EP_MAX_NESTS`, or on
    /// reaching `into` (a loop), more than `EP_MAX_NESTS`.
    fn epoll_levels_below(&self, ep: Id, into: Id, depth: usize) -> usize {
        let Some(inst) = self.epolls.get(ep) else {
            return 0;
        };
        let mut levels = 0;
        for (file, _) in inst.items.keys() {
            let Some(Object::Epoll(inner)) = self.files.get(*file).map(|f| f.object) else {
                continue;
            };
            levels = if inner == into || depth > EP_MAX_NESTS {
                EP_MAX_NESTS + 1
            } else {
                levels.max(self.epoll_levels_below(inner, into, depth + 1) + 1)
            };
            if levels > EP_MAX_NESTS {
                break;
            }
        }
        levels
    }

    /// ep_get_upwards_depth_proc: how many levels of epoll instances watch `ep` from above
    /// (0: none does). The loop check keeps every chain short; `depth` bounds the walk anyway.
    fn epoll_levels_above(&self, ep: Id, depth: usize) -> usize {
        let Some(watchers) = self.watchers.get(&Object::Epoll(ep)) else {
            return 0;
        };
        if depth > EP_MAX_NESTS {
            return EP_MAX_NESTS + 1;
        }
        (watchers.iter())
            .map(|&(outer, _)| self.epoll_levels_above(outer, depth + 1) + 1)
            .max()
            .unwrap_or(0)
    }

    /// The object behind a socket id, for waking.
    pub(super) fn wake_sock(&mut self, id: Id, mask: Events) {
        self.wake(Object::Sock(id), mask);
    }

    pub(super) fn sim_epoll_create(&mut self) -> Result<Fd, Errno> {
        self.check_fds_available(1)?;
        let id = self.epolls.insert(EpollInstance::default());
        self.open_fd(Object::Epoll(id))
    }

    pub(super) fn sim_epoll_ctl(
        &mut self,
        epfd: Fd,
        op: CtlOp,
        fd: Fd,
        interest: Events,
        mode: Mode,
        data: u64,
    ) -> Result<(), Errno> {
        let ep_obj = self.file(epfd)?;
        let file = self.fds().get(fd.0).ok_or(Errno::EBADF)?;
        let Object::Epoll(ep) = ep_obj else {
            return Err(Errno::EINVAL);
        };
        let object = self.files.get(file).expect("live file").object;
        if object == ep_obj {
            return Err(Errno::EINVAL);
        }
        // ep_loop_check: adding an instance that (transitively) watches this one would close a
        // loop, and a chain of instances may be at most EP_MAX_NESTS + 1 long, counting those
        // above this one as well as those below the one added.
        if let (CtlOp::Add, Object::Epoll(inner)) = (op, object)
            && self.epoll_levels_below(inner, ep, 0) + 1 + self.epoll_levels_above(ep, 0)
                > EP_MAX_NESTS
        {
            return Err(Errno::ELOOP);
        }
        let key = (file, fd.0);
        let inst = self.epolls.get_mut(ep).expect("live epoll");
        match op {
            CtlOp::Add => {
                if inst.items.contains_key(&key) {
                    return Err(Errno::EEXIST);
                }
                if inst.items.len() >= EPOLL_MAX_WATCHES {
                    return Err(Errno::ENOSPC);
                }
                inst.items.insert(
                    key,
                    Item {
                        interest,
                        mode,
                        data,
                        disabled: false,
                    },
                );
                self.watchers.entry(object).or_default().push((ep, key));
            }
            CtlOp::Modify => {
                let item = inst.items.get_mut(&key).ok_or(Errno::ENOENT)?;
                *item = Item {
                    interest,
                    mode,
                    data,
                    disabled: false,
                };
            }
            CtlOp::Delete => return self.epoll_remove(ep, key, object),
        }
        // ep_insert and ep_modify poll the file at once: data present before ADD is reported,
        // and MOD re-reports a descriptor that is still ready.
        if self.readiness(object).intersects(interest | ALWAYS) {
            self.epolls.get_mut(ep).expect("live epoll").enqueue(key);
        }
        Ok(())
    }

    /// EPOLL_CTL_DEL (ep_remove): the item leaves the interest list, the ready list and the
    /// object's watchers.
    fn epoll_remove(&mut self, ep: Id, key: Key, object: Object) -> Result<(), Errno> {
        let inst = self.epolls.get_mut(ep).expect("live epoll");
        inst.items.remove(&key).ok_or(Errno::ENOENT)?;
        if inst.queued.remove(&key) {
            inst.ready.retain(|k| *k != key);
        }
        if let Some(w) = self.watchers.get_mut(&object) {
            w.retain(|(e, k)| !(*e == ep && *k == key));
        }
        Ok(())
    }

    /// Takes up to `max` events off the ready list (ep_send_events).
    fn epoll_collect(&mut self, ep: Id, out: &mut Vec<(u64, Events)>, max: usize) -> usize {
        let mut inst = std::mem::take(self.epolls.get_mut(ep).expect("live epoll"));
        let mut reported = 0;
        let mut again = Vec::new();
        let pending = inst.ready.len();
        let max = self.deferred_max(pending, max);
        for _ in 0..pending {
            if reported == max {
                break;
            }
            let Some(key) = inst.ready.pop_front() else {
                break;
            };
            inst.queued.remove(&key);
            let Some(item) = inst.items.get_mut(&key) else {
                continue;
            };
            if item.disabled {
                continue;
            }
            let object = self
                .files
                .get(key.0)
                .expect("watched files are live")
                .object;
            let revents = self.readiness(object).intersection(item.interest | ALWAYS);
            if revents.is_empty() {
                continue;
            }
            out.push((item.data, revents));
            reported += 1;
            if item.mode.oneshot {
                item.disabled = true;
            } else if !item.mode.edge {
                again.push(key);
            }
        }
        for key in again {
            inst.enqueue(key);
        }
        if reported < max && self.spurious_report(&mut inst, out, reported) {
            reported += 1;
        }
        *self.epolls.get_mut(ep).expect("live epoll") = inst;
        reported
    }

    /// How many of `pending` ready events a wait for `max` reports: all it may, unless the
    /// lawful adversary returns early with only some of them.
    fn deferred_max(&mut self, pending: usize, max: usize) -> usize {
        if pending < 2 || max < 2 || !self.decide.defer() {
            return max;
        }
        let fewer = self.decide.pick(max.min(pending) - 1) + 1;
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        self.pending_choice = Some(Choice::Deferred {
            reported: clamp(fewer),
            ready: clamp(pending),
        });
        fewer
    }

    /// A spurious EPOLLIN, when the adversary picks one, for an armed reader not reported in
    /// this wait's last `reported` events; true when one was added to `out`.
    fn spurious_report(
        &mut self,
        inst: &mut EpollInstance,
        out: &mut Vec<(u64, Events)>,
        reported: usize,
    ) -> bool {
        let just = &out[out.len() - reported..];
        let quiet = |i: &&Item| {
            !i.disabled
                && i.interest.contains(Events::IN)
                && !just.iter().any(|(d, _)| *d == i.data)
        };
        let any = inst.items.values().any(|i| quiet(&i));
        let count = || inst.items.values().filter(quiet).count();
        let Some(pick) = self.spurious_pick(any, count) else {
            return false;
        };
        let data = inst
            .items
            .values()
            .filter(quiet)
            .nth(pick)
            .expect("picked among them")
            .data;
        out.push((data, Events::IN));
        // A report is a report: a one-shot item is disarmed by it, as by a true one.
        for item in inst.items.values_mut().filter(|i| i.data == data) {
            item.disabled |= item.mode.oneshot;
        }
        true
    }

    /// A program's epoll_wait on `epfd` begins, to be answered once something wakes it (a
    /// program run inside the simulator waits so). If nothing queued is ready, ep_poll's first
    /// pass (ep_send_events, reporting nothing) takes every queued item off the ready list,
    /// level-triggered ones left there by the last report included, so the events that wake
    /// the sleeper are reported in the order they came. Not a call: not recorded.
    pub fn epoll_wait_begins(&mut self, epfd: Fd) {
        let Ok(Object::Epoll(ep)) = self.file(epfd) else {
            return;
        };
        if self.epoll_has_ready(ep) {
            return;
        }
        if let Some(inst) = self.epolls.get_mut(ep) {
            inst.ready.clear();
            inst.queued.clear();
        }
    }

    pub(super) fn sim_epoll_wait(
        &mut self,
        epfd: Fd,
        out: &mut Vec<(u64, Events)>,
        max: usize,
        timeout: Option<Duration>,
    ) -> Result<usize, Errno> {
        let Object::Epoll(ep) = self.file(epfd)? else {
            return Err(Errno::EINVAL);
        };
        if max == 0 || max > EP_MAX_EVENTS {
            return Err(Errno::EINVAL);
        }
        self.block_until(timeout, |sim| Ok(sim.epoll_collect(ep, out, max)))
    }

    /// What an epoll_wait on `epfd` reported, for the transcript: each item by the descriptor
    /// it was added with, when its data names exactly one (the data is the program's own
    /// word, often uninitialised in its upper half); else the data as reported.
    pub(super) fn epoll_report(&self, epfd: Fd, out: &[(u64, Events)]) -> Ready {
        let inst = match self.file(epfd) {
            Ok(Object::Epoll(ep)) => self.epolls.get(ep),
            _ => None,
        };
        let fd_of = |data: u64| {
            let mut keys = inst?.items.iter().filter(|(_, i)| i.data == data);
            match (keys.next(), keys.next()) {
                (Some(((_, fd), _)), None) => Some(*fd),
                _ => None,
            }
        };
        let fds: Option<Box<[(i32, Events)]>> =
            out.iter().map(|(d, ev)| Some((fd_of(*d)?, *ev))).collect();
        match fds {
            Some(fds) => Ready::Fds(fds),
            None => Ready::Data(out.into()),
        }
    }

    pub(super) fn sim_select(
        &mut self,
        sets: &mut FdSets,
        timeout: Option<Duration>,
    ) -> Result<usize, Errno> {
        let all = sets.read.iter().chain(&sets.write).chain(&sets.except);
        if all.clone().any(|fd| fd.0 < 0 || fd.0 >= FD_SETSIZE) {
            return Err(Errno::EINVAL);
        }
        if all.clone().any(|fd| self.fds().get(fd.0).is_none()) {
            return Err(Errno::EBADF);
        }
        let asked = sets.clone();
        self.block_until(timeout, |sim| {
            // fs/select.c: readable = IN|HUP|ERR, writable = OUT|ERR, exceptional = PRI.
            let pick = |sim: &Sim, fds: &[Fd], want: Events| -> Vec<Fd> {
                fds.iter()
                    .copied()
                    .filter(|fd| {
                        sim.file(*fd)
                            .is_ok_and(|o| sim.readiness(o).intersects(want))
                    })
                    .collect()
            };
            sets.read = pick(sim, &asked.read, Events::IN | Events::HUP | Events::ERR);
            sets.write = pick(sim, &asked.write, Events::OUT | Events::ERR);
            sets.except = pick(sim, &asked.except, Events::PRI);
            let quiet = |fd: &&Fd| !sets.read.contains(fd);
            let any = asked.read.iter().any(|fd| quiet(&fd));
            let count = || asked.read.iter().filter(quiet).count();
            if let Some(i) = sim.spurious_pick(any, count) {
                let fd = *asked.read.iter().filter(quiet).nth(i).expect("picked");
                sets.read.push(fd);
            }
            Ok(sets.read.len() + sets.write.len() + sets.except.len())
        })
    }

    /// The object is gone (its last descriptor closed): forget every registration of it, and
    /// if it is an epoll instance, every registration it held.
    pub(super) fn forget_watches(&mut self, object: Object) {
        for (ep, key) in self.watchers.remove(&object).unwrap_or_default() {
            if let Some(inst) = self.epolls.get_mut(ep) {
                inst.items.remove(&key);
                if inst.queued.remove(&key) {
                    inst.ready.retain(|k| *k != key);
                }
            }
        }
        if let Object::Epoll(ep) = object {
            let inst = self.epolls.remove(ep).expect("live epoll");
            for (file, _) in inst.items.keys() {
                let Some(watched) = self.files.get(*file).map(|f| f.object) else {
                    continue;
                };
                if let Some(w) = self.watchers.get_mut(&watched) {
                    w.retain(|(e, _)| *e != ep);
                }
            }
        }
    }
}
