//! A guest's waits and clocks answered on the simulator: poll, select and epoll with Linux's
//! bit layouts, virtual clocks, and sleeps answered once their time is up.

use nix::errno::Errno;
use nix::libc;
use selectlab_wire::{FD_SET_BYTES, MAX_DATA_BYTES, Reply};

use super::wait::{Answered, Halt, settle, timeout_of_ns};
use rustix::event::PollFlags;

use crate::kernel::{CtlOp, Events, Fd, FdSets, Kernel, Mode, PollFd};
use crate::real_kernel::{from_poll_flags, to_poll_flags};
use crate::sim::Sim;
use crate::sim::interleave::Interleaved;
use crate::sim::transcript::Host;

/// The events a program asked for, from Linux's poll or epoll bits (the two share their
/// values; POLLRDNORM counts as POLLIN, POLLWRNORM as POLLOUT, higher epoll bits are modes).
fn events_of(bits: u32) -> Events {
    let mut e = from_poll_flags(PollFlags::from_bits_truncate(bits as u16));
    if bits & libc::POLLRDNORM as u32 != 0 {
        e |= Events::IN;
    }
    if bits & libc::POLLWRNORM as u32 != 0 {
        e |= Events::OUT;
    }
    e
}

/// The bits Linux reports for `events`, given what was asked (`asked`: the NORM aliases are
/// reported only when asked for).
fn bits_of(events: Events, asked: u32) -> u32 {
    let mut bits = u32::from(to_poll_flags(events).bits());
    if events.contains(Events::IN) {
        bits |= asked & libc::POLLRDNORM as u32;
    }
    if events.contains(Events::OUT) {
        bits |= asked & libc::POLLWRNORM as u32;
    }
    bits & (asked | (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) as u32)
}

/// Ends the run on a wait that can never return; other errors go back to the program.
fn waited<T>(r: Result<T, Errno>, what: &str) -> Result<Result<T, Errno>, Halt> {
    match r {
        Err(Errno::EDEADLK) => Err(Halt::Stop(format!(
            "the program waits for ever in {what}: nothing it watches can become ready"
        ))),
        r => Ok(r),
    }
}

/// A poll request's entries: (descriptor, events asked for).
pub fn poll_entries(a: &[i64; 6], data: &[u8]) -> Vec<(i32, u32)> {
    data.chunks_exact(6)
        .take(usize::try_from(a[1]).unwrap_or(0))
        .map(|c| {
            let fd = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            (fd, u32::from(u16::from_le_bytes([c[4], c[5]])))
        })
        .collect()
}

/// Whether any of a poll's entries is ready now for `host` (a descriptor that is not open
/// is: poll reports POLLNVAL for it at once).
pub fn poll_ready(sim: &Sim, host: Host, entries: &[(i32, u32)]) -> bool {
    entries
        .iter()
        .filter(|(fd, _)| *fd >= 0)
        .any(|&(fd, bits)| {
            let wanted = events_of(bits) | Events::ERR | Events::HUP | Events::NVAL;
            sim.ready_now_as(host, Fd(fd)).intersects(wanted)
        })
}

/// poll: `[timeout_ns, count]`, data count × (fd i32, events i16).
pub fn poll(k: &mut Interleaved<'_>, a: &[i64; 6], data: &[u8]) -> Answered {
    let entries = poll_entries(a, data);
    // Negative descriptors are skipped, as poll(2) says; an empty poll is a sleep.
    let mut fds: Vec<PollFd> = entries
        .iter()
        .filter(|(fd, _)| *fd >= 0)
        .map(|&(fd, bits)| PollFd::new(Fd(fd), events_of(bits)))
        .collect();
    settle(k, |sim| {
        fds.iter().any(|p| {
            sim.ready_now(p.fd)
                .intersects(p.events | Events::ERR | Events::HUP)
        })
    });
    let r = waited(k.sim.poll(&mut fds, timeout_of_ns(a[0])), "poll")?;
    let Ok(n) = r else {
        return Ok(Reply::err(r.err().map_or(0, |e| e as i32)));
    };
    let mut ready = fds.iter();
    let mut out = Vec::with_capacity(entries.len() * 2);
    for (fd, asked) in &entries {
        let bits = if *fd < 0 {
            0
        } else {
            ready.next().map_or(0, |p| bits_of(p.revents, *asked))
        };
        out.extend_from_slice(&(bits as u16).to_le_bytes());
    }
    Ok(Reply::ok(n as i64).with_data(out))
}

/// A select request's sets.
pub fn select_sets(a: &[i64; 6], data: &[u8]) -> FdSets {
    let nfds = a[0].clamp(0, (FD_SET_BYTES * 8) as i64) as i32;
    let member = |set: usize, fd: i32| {
        data.get(set * FD_SET_BYTES + fd as usize / 8)
            .is_some_and(|b| b & (1 << (fd % 8)) != 0)
    };
    let pick =
        |set: usize| -> Vec<Fd> { (0..nfds).filter(|&fd| member(set, fd)).map(Fd).collect() };
    FdSets {
        read: pick(0),
        write: pick(1),
        except: pick(2),
    }
}

/// Whether select would find any of its descriptors ready now for `host`.
pub fn select_ready(sim: &Sim, host: Host, sets: &FdSets) -> bool {
    let any = |set: &[Fd], events: Events| {
        set.iter()
            .any(|&fd| sim.ready_now_as(host, fd).intersects(events))
    };
    // A descriptor that is not open fails select at once (EBADF).
    let all = [&sets.read, &sets.write, &sets.except];
    all.iter().any(|set| any(set, Events::NVAL))
        || any(&sets.read, Events::IN | Events::HUP | Events::ERR)
        || any(&sets.write, Events::OUT | Events::ERR)
        || any(&sets.except, Events::PRI)
}

/// select: `[nfds, timeout_ns, present sets]`, data three fd_sets.
pub fn select(k: &mut Interleaved<'_>, a: &[i64; 6], data: &[u8]) -> Answered {
    let present = a[2];
    let mut sets = select_sets(a, data);
    let host = k.sim.host();
    let watched = sets.clone();
    settle(k, |sim| select_ready(sim, host, &watched));
    let started = k.now();
    let timeout = timeout_of_ns(a[1]);
    let r = waited(k.sim.select(&mut sets, timeout), "select")?;
    let n = match r {
        Ok(n) => n,
        Err(e) => return Ok(Reply::err(e as i32)),
    };
    let mut out = vec![0u8; 3 * FD_SET_BYTES];
    for (i, set) in [&sets.read, &sets.write, &sets.except]
        .into_iter()
        .enumerate()
    {
        if present & (1 << i) != 0 {
            for fd in set {
                out[i * FD_SET_BYTES + fd.0 as usize / 8] |= 1 << (fd.0 % 8);
            }
        }
    }
    let left = timeout.map_or(0, |t| {
        t.saturating_sub(k.now().saturating_sub(started)).as_nanos() as i64
    });
    out.extend_from_slice(&left.to_le_bytes());
    Ok(Reply::ok(n as i64).with_data(out))
}

/// epoll_ctl: `[epfd, op, fd, events, data]`.
pub fn epoll_ctl(k: &mut Interleaved<'_>, a: &[i64; 6]) -> Answered {
    let op = match a[1] as i32 {
        libc::EPOLL_CTL_ADD => CtlOp::Add,
        libc::EPOLL_CTL_MOD => CtlOp::Modify,
        libc::EPOLL_CTL_DEL => CtlOp::Delete,
        _ => return Ok(Reply::err(Errno::EINVAL as i32)),
    };
    let bits = a[3] as u32;
    if bits & libc::EPOLLEXCLUSIVE as u32 != 0 {
        return Err(Halt::Refuse("EPOLLEXCLUSIVE is not simulated".to_string()));
    }
    let mode = Mode {
        edge: bits & libc::EPOLLET as u32 != 0,
        oneshot: bits & libc::EPOLLONESHOT as u32 != 0,
    };
    let r = k.epoll_ctl(
        Fd(a[0] as i32),
        op,
        Fd(a[2] as i32),
        events_of(bits),
        mode,
        a[4] as u64,
    );
    Ok(match r {
        Ok(()) => Reply::ok(0),
        Err(e) => Reply::err(e as i32),
    })
}

/// epoll_wait: `[epfd, max, timeout_ns]`; reply count × (events u32, data u64).
pub fn epoll_wait(k: &mut Interleaved<'_>, a: &[i64; 6]) -> Answered {
    // A reply carries at most this many events; a larger `max` is answered as if it were this.
    let max = usize::try_from(a[1]).unwrap_or(0).min(MAX_DATA_BYTES / 12);
    let mut out = Vec::new();
    let epfd = Fd(a[0] as i32);
    k.sim.epoll_wait_begins(epfd);
    settle(k, |sim| sim.ready_now(epfd).contains(Events::IN));
    let r = waited(
        k.sim.epoll_wait(epfd, &mut out, max, timeout_of_ns(a[2])),
        "epoll_wait",
    )?;
    Ok(match r {
        Ok(n) => {
            let mut data = Vec::with_capacity(n * 12);
            for (token, events) in &out {
                let asked = !(libc::POLLRDNORM | libc::POLLWRNORM) as u32;
                data.extend_from_slice(&bits_of(*events, asked).to_le_bytes());
                data.extend_from_slice(&token.to_le_bytes());
            }
            Reply::ok(n as i64).with_data(data)
        }
        Err(e) => Reply::err(e as i32),
    })
}

/// The wall-clock family of clocks; the others are monotonic.
fn is_wall_clock(clock: i64) -> bool {
    matches!(
        clock as i32,
        libc::CLOCK_REALTIME | libc::CLOCK_REALTIME_COARSE
    )
}

/// Virtual nanoseconds on `clock`.
pub fn clock_ns(k: &dyn Kernel, clock: i64) -> i64 {
    let t = if is_wall_clock(clock) {
        k.unix_time()
    } else {
        k.now()
    };
    super::spawn::nanos(t)
}

/// nanosleep and clock_nanosleep: `[clock, absolute, ns]`, answered once its time is up
/// (the program is stepped: virtual time passed, and its peers ran, while it slept). A sleep
/// always lasts its whole time: no signal cuts it short.
pub fn sleep(a: &[i64; 6]) -> Reply {
    if a[1] == 0 && a[2] < 0 {
        return Reply::err(Errno::EINVAL as i32);
    }
    Reply::ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_bits_follow_linux_and_norm_aliases_come_back_only_when_asked() {
        let asked = (libc::POLLIN | libc::POLLRDNORM) as u32;
        assert_eq!(events_of(asked), Events::IN);
        assert_eq!(
            bits_of(Events::IN | Events::HUP, asked),
            asked | libc::POLLHUP as u32
        );
        assert_eq!(bits_of(Events::OUT, asked), 0);
    }
}
