//! Readiness calls: poll, ppoll, select, pselect and epoll. A wait that watches only simulated
//! descriptors (or none: a sleep) waits in virtual time; one that watches only real ones goes
//! to the kernel; one that mixes them is refused, since no single clock can answer it.

use libc::{c_int, epoll_event, fd_set, nfds_t, pollfd, sigset_t, timespec, timeval};
use selectlab_wire::{FD_SET_BYTES, MAX_DATA_BYTES, Op, Request};

use crate::real::real;
use crate::sockets::int;
use crate::state::{self, Kind, MAX_SIM_FD, forward, is_sim, refuse, set_errno};

/// glibc's fd_set size in descriptors.
const FD_SETSIZE: c_int = libc::FD_SETSIZE as c_int;

/// Most descriptors one forwarded poll carries (6 bytes each).
const MAX_POLL_FDS: usize = MAX_DATA_BYTES / 6;

/// Most events one forwarded epoll_wait returns (12 bytes each).
const MAX_EPOLL_EVENTS: usize = MAX_DATA_BYTES / 12;

/// Where a wait's descriptors live.
fn simulated_wait(what: &str, fds: impl IntoIterator<Item = c_int>) -> bool {
    let (mut sim, mut real) = (false, None);
    for fd in fds.into_iter().filter(|&fd| fd >= 0) {
        if is_sim(fd) {
            sim = true;
        } else {
            real.get_or_insert(fd);
        }
    }
    match (sim, real) {
        (true, Some(fd)) => refuse(&format!(
            "{what} watches simulated sockets and real descriptor {fd} together"
        )),
        (true, None) => true,
        // A wait on nothing is a sleep: in the simulated program it takes virtual time.
        (false, None) => state::mode() == state::Mode::Owner,
        (false, Some(_)) => false,
    }
}

fn ns_of_ms(ms: c_int) -> i64 {
    if ms < 0 {
        -1
    } else {
        i64::from(ms) * 1_000_000
    }
}

/// # Safety
/// `t` must be null or valid.
unsafe fn ns_of_timespec(t: *const timespec) -> i64 {
    if t.is_null() {
        return -1;
    }
    // SAFETY: the caller's promise.
    let t = unsafe { &*t };
    if t.tv_sec < 0 || !(0..1_000_000_000).contains(&t.tv_nsec) {
        return -2;
    }
    t.tv_sec
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec)
}

/// Forwards a poll of simulated descriptors.
///
/// # Safety
/// `fds` must point to `n` valid entries.
unsafe fn sim_poll(fds: *mut pollfd, n: nfds_t, timeout_ns: i64) -> c_int {
    if timeout_ns < -1 {
        set_errno(libc::EINVAL);
        return -1;
    }
    let n = n as usize;
    if n > MAX_POLL_FDS {
        refuse(&format!(
            "poll of {n} descriptors (the simulator takes at most {MAX_POLL_FDS})"
        ));
    }
    // SAFETY: the caller promises `n` entries (none when `n` is 0).
    let entries = if n == 0 {
        &mut [][..]
    } else {
        unsafe { std::slice::from_raw_parts_mut(fds, n) }
    };
    let mut data = Vec::with_capacity(n * 6);
    for p in entries.iter() {
        data.extend_from_slice(&p.fd.to_le_bytes());
        data.extend_from_slice(&p.events.to_le_bytes());
    }
    let req = Request::new(Op::Poll, &[timeout_ns, n as i64]).with_data(data);
    int(forward("poll", req, |revents| {
        for (p, r) in entries.iter_mut().zip(revents.chunks_exact(2)) {
            p.revents = i16::from_le_bytes([r[0], r[1]]);
        }
    }))
}

/// A poll that does not wait (timeout 0) over simulated and real descriptors together: each
/// half is asked now, the real one by the kernel and the simulated one by selectlab, and the
/// answers merged. Nothing waits, so no clock has to answer for both (Rust's runtime asks this
/// of descriptors 0, 1 and 2 at start). `None` when the entries are not mixed.
///
/// # Safety
/// `fds` must point to `n` valid entries.
unsafe fn poll_mixed_now(fds: *mut pollfd, n: nfds_t) -> Option<c_int> {
    if n == 0 || n as usize > MAX_POLL_FDS {
        return None;
    }
    // SAFETY: the caller promises `n` entries.
    let entries = unsafe { std::slice::from_raw_parts_mut(fds, n as usize) };
    let sim = |p: &pollfd| p.fd >= 0 && is_sim(p.fd);
    let real = |p: &pollfd| p.fd >= 0 && !is_sim(p.fd);
    if !entries.iter().any(sim) || !entries.iter().any(real) {
        return None;
    }
    // Each half as its own array, every entry of the other half ignored (fd -1), as poll
    // ignores negative descriptors.
    let half = |keep: &dyn Fn(&pollfd) -> bool| -> Vec<pollfd> {
        (entries.iter())
            .map(|p| pollfd {
                fd: if keep(p) { p.fd } else { -1 },
                events: p.events,
                revents: 0,
            })
            .collect()
    };
    let mut real_half = half(&real);
    // SAFETY: `real_half` holds `n` entries; timeout 0.
    let r = unsafe {
        real!(poll: fn(*mut pollfd, nfds_t, c_int) -> c_int)(real_half.as_mut_ptr(), n, 0)
    };
    if r < 0 {
        return Some(r);
    }
    let mut sim_half: Vec<pollfd> = entries.iter().filter(|p| sim(p)).copied().collect();
    // SAFETY: `sim_half` holds its own entries; timeout 0.
    if unsafe { sim_poll(sim_half.as_mut_ptr(), sim_half.len() as nfds_t, 0) } < 0 {
        return Some(-1);
    }
    let mut from_sim = sim_half.into_iter();
    for (p, r) in entries.iter_mut().zip(&real_half) {
        p.revents = if sim(p) {
            from_sim.next().map_or(0, |s| s.revents)
        } else {
            r.revents
        };
    }
    Some(entries.iter().filter(|p| p.revents != 0).count() as c_int)
}

/// poll(2).
///
/// # Safety
/// `fds` must point to `n` valid entries.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn poll(fds: *mut pollfd, n: nfds_t, timeout_ms: c_int) -> c_int {
    if timeout_ms == 0
        // SAFETY: the caller's promise, passed on.
        && let Some(r) = unsafe { poll_mixed_now(fds, n) }
    {
        return r;
    }
    // SAFETY: the caller promises `n` entries.
    let watched = (0..n as usize).map(|i| unsafe { (*fds.add(i)).fd });
    if !simulated_wait("poll", watched) {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe { real!(poll: fn(*mut pollfd, nfds_t, c_int) -> c_int)(fds, n, timeout_ms) };
    }
    // SAFETY: the caller's promise, passed on.
    unsafe { sim_poll(fds, n, ns_of_ms(timeout_ms)) }
}

/// ppoll(2): the signal mask is not applied (no signal arrives in virtual time).
///
/// # Safety
/// `fds` must point to `n` valid entries; `timeout` null or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ppoll(
    fds: *mut pollfd,
    n: nfds_t,
    timeout: *const timespec,
    mask: *const sigset_t,
) -> c_int {
    // SAFETY: the caller's promises, passed on.
    if unsafe { ns_of_timespec(timeout) } == 0
        && let Some(r) = unsafe { poll_mixed_now(fds, n) }
    {
        return r;
    }
    // SAFETY: the caller promises `n` entries.
    let watched = (0..n as usize).map(|i| unsafe { (*fds.add(i)).fd });
    if !simulated_wait("ppoll", watched) {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe {
            real!(ppoll: fn(*mut pollfd, nfds_t, *const timespec, *const sigset_t) -> c_int)(
                fds, n, timeout, mask,
            )
        };
    }
    // SAFETY: the caller's promises, passed on.
    unsafe { sim_poll(fds, n, ns_of_timespec(timeout)) }
}

/// __poll_chk: poll(2) from a fortified build.
///
/// # Safety
/// As for [`poll`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __poll_chk(
    fds: *mut pollfd,
    n: nfds_t,
    timeout_ms: c_int,
    fds_len: usize,
) -> c_int {
    if (n as usize).saturating_mul(size_of::<pollfd>()) > fds_len {
        // SAFETY: __chk_fail takes nothing and does not return.
        unsafe { real!(__chk_fail: fn() -> ())() };
    }
    // SAFETY: the caller's promise, passed on.
    unsafe { poll(fds, n, timeout_ms) }
}

/// The descriptors set in select's sets, below `nfds`.
///
/// # Safety
/// Each set must be null or valid.
unsafe fn set_members(nfds: c_int, sets: [*mut fd_set; 3]) -> Vec<c_int> {
    let mut fds = Vec::new();
    for set in sets.into_iter().filter(|s| !s.is_null()) {
        for fd in 0..nfds.clamp(0, FD_SETSIZE) {
            // SAFETY: `set` is a valid fd_set and `fd` is below FD_SETSIZE.
            if unsafe { libc::FD_ISSET(fd, set) } {
                fds.push(fd);
            }
        }
    }
    fds
}

/// Forwards a select of simulated descriptors; writes back the sets, and the time left when
/// `left` is given.
///
/// # Safety
/// Each set must be null or valid.
unsafe fn sim_select(
    nfds: c_int,
    sets: [*mut fd_set; 3],
    timeout_ns: i64,
    left: Option<*mut timeval>,
) -> c_int {
    if nfds < 0 || timeout_ns < -1 {
        set_errno(libc::EINVAL);
        return -1;
    }
    // core_sys_select clamps nfds to the descriptor table's size. While every descriptor is
    // below FD_SETSIZE the bits past it name nothing open, so they are not read (as Linux reads
    // none past its table); a simulated descriptor past it is refused.
    if nfds > FD_SETSIZE && !state::sim_fds_in(FD_SETSIZE as u32, MAX_SIM_FD as u32).is_empty() {
        refuse("select with a simulated descriptor at or above FD_SETSIZE (1024) is not simulated");
    }
    let nfds = nfds.min(FD_SETSIZE);
    let mut data = Vec::with_capacity(3 * FD_SET_BYTES);
    let mut present = 0;
    for (i, set) in sets.iter().enumerate() {
        let mut bits = [0u8; FD_SET_BYTES];
        if !set.is_null() {
            present |= 1 << i;
            for fd in 0..nfds {
                // SAFETY: a valid set; `fd` is below FD_SETSIZE.
                if unsafe { libc::FD_ISSET(fd, *set) } {
                    bits[fd as usize / 8] |= 1 << (fd % 8);
                }
            }
        }
        data.extend_from_slice(&bits);
    }
    let req = Request::new(Op::Select, &[nfds.into(), timeout_ns, present]).with_data(data);
    int(forward("select", req, |reply| {
        for (set, bits) in sets.iter().zip(reply.chunks_exact(FD_SET_BYTES)) {
            if set.is_null() {
                continue;
            }
            for fd in 0..nfds {
                let on = bits[fd as usize / 8] & (1 << (fd % 8)) != 0;
                // SAFETY: a valid set; `fd` is below FD_SETSIZE.
                unsafe {
                    if on {
                        libc::FD_SET(fd, *set)
                    } else {
                        libc::FD_CLR(fd, *set)
                    }
                }
            }
        }
        if let (Some(tv), Some(ns)) = (
            left,
            reply
                .get(3 * FD_SET_BYTES..)
                .and_then(|b| b.try_into().ok()),
        ) {
            let ns = i64::from_le_bytes(ns);
            // SAFETY: the caller's timeval, valid and writable.
            unsafe {
                (*tv).tv_sec = ns / 1_000_000_000;
                (*tv).tv_usec = (ns % 1_000_000_000) / 1_000;
            }
        }
    }))
}

/// select(2); the timeout is written back with the time left, as Linux does.
///
/// # Safety
/// Each set and the timeout must be null or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn select(
    nfds: c_int,
    r: *mut fd_set,
    w: *mut fd_set,
    e: *mut fd_set,
    timeout: *mut timeval,
) -> c_int {
    // SAFETY: the caller's sets.
    let members = unsafe { set_members(nfds, [r, w, e]) };
    if !simulated_wait("select", members) {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe {
            real!(select: fn(c_int, *mut fd_set, *mut fd_set, *mut fd_set, *mut timeval) -> c_int)(
                nfds, r, w, e, timeout,
            )
        };
    }
    let ns = if timeout.is_null() {
        -1
    } else {
        // SAFETY: the caller's timeval.
        let t = unsafe { &*timeout };
        // Linux carries microseconds past a second into the seconds; only negatives are EINVAL.
        if t.tv_sec < 0 || t.tv_usec < 0 {
            -2
        } else {
            t.tv_sec
                .saturating_mul(1_000_000_000)
                .saturating_add(t.tv_usec.saturating_mul(1_000))
        }
    };
    let left = (!timeout.is_null()).then_some(timeout);
    // SAFETY: the caller's sets and timeout.
    unsafe { sim_select(nfds, [r, w, e], ns, left) }
}

/// pselect(2): the timeout is not written back; the signal mask is not applied.
///
/// # Safety
/// Each set and the timeout must be null or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pselect(
    nfds: c_int,
    r: *mut fd_set,
    w: *mut fd_set,
    e: *mut fd_set,
    timeout: *const timespec,
    mask: *const sigset_t,
) -> c_int {
    // SAFETY: the caller's sets.
    let members = unsafe { set_members(nfds, [r, w, e]) };
    if !simulated_wait("pselect", members) {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe {
            real!(pselect: fn(c_int, *mut fd_set, *mut fd_set, *mut fd_set, *const timespec, *const sigset_t) -> c_int)(
                nfds, r, w, e, timeout, mask,
            )
        };
    }
    // SAFETY: the caller's sets and timeout.
    unsafe { sim_select(nfds, [r, w, e], ns_of_timespec(timeout), None) }
}

/// epoll_create1(2): in the simulated program every epoll instance is simulated.
#[unsafe(no_mangle)]
pub extern "C" fn epoll_create1(flags: c_int) -> c_int {
    if state::mode() != state::Mode::Owner {
        // SAFETY: the argument is the caller's, passed on unchanged.
        return unsafe { real!(epoll_create1: fn(c_int) -> c_int)(flags) };
    }
    let args = [flags.into()];
    crate::sockets::create_simulated("epoll_create", Op::EpollCreate, &args, Kind::AnonInode)
}

/// epoll_create(2): a size ≤ 0 is EINVAL; otherwise epoll_create1(0).
#[unsafe(no_mangle)]
pub extern "C" fn epoll_create(size: c_int) -> c_int {
    if size <= 0 {
        set_errno(libc::EINVAL);
        return -1;
    }
    epoll_create1(0)
}

/// epoll_ctl(2). A simulated epoll watches simulated descriptors only.
///
/// # Safety
/// `event` must be null (EPOLL_CTL_DEL) or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn epoll_ctl(
    epfd: c_int,
    op: c_int,
    fd: c_int,
    event: *mut epoll_event,
) -> c_int {
    if !is_sim(epfd) {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe {
            real!(epoll_ctl: fn(c_int, c_int, c_int, *mut epoll_event) -> c_int)(
                epfd, op, fd, event,
            )
        };
    }
    if !is_sim(fd) && fd >= 0 && state::channel_fd() != fd && crate::sockets::is_open_real(fd) {
        refuse(&format!(
            "epoll_ctl puts real descriptor {fd} in a simulated epoll instance"
        ));
    }
    let (events, data) = if event.is_null() {
        (0, 0)
    } else {
        // SAFETY: the caller's event; read field by field (the struct may be packed).
        unsafe {
            (
                std::ptr::addr_of!((*event).events).read_unaligned(),
                std::ptr::addr_of!((*event).u64).read_unaligned(),
            )
        }
    };
    let args = [
        epfd.into(),
        op.into(),
        fd.into(),
        i64::from(events),
        data as i64,
    ];
    int(forward(
        "epoll_ctl",
        Request::new(Op::EpollCtl, &args),
        |_| {},
    ))
}

/// Forwards an epoll_wait on a simulated instance.
///
/// # Safety
/// `events` must be writable for `max` entries.
unsafe fn sim_epoll_wait(
    epfd: c_int,
    events: *mut epoll_event,
    max: c_int,
    timeout_ns: i64,
) -> c_int {
    if timeout_ns < -1 {
        set_errno(libc::EINVAL);
        return -1;
    }
    let asked = max.clamp(0, MAX_EPOLL_EVENTS as c_int);
    // A `max` ≤ 0 goes as it is, for selectlab to answer EINVAL as Linux does.
    let forwarded = if max <= 0 { max } else { asked };
    let req = Request::new(Op::EpollWait, &[epfd.into(), forwarded.into(), timeout_ns]);
    int(forward("epoll_wait", req, |reply| {
        for (i, e) in reply.chunks_exact(12).take(asked as usize).enumerate() {
            let ev = epoll_event {
                events: u32::from_le_bytes([e[0], e[1], e[2], e[3]]),
                u64: u64::from_le_bytes(e[4..12].try_into().expect("12-byte chunk")),
            };
            // SAFETY: `i` < `asked` ≤ `max`, within the caller's array; unaligned-safe.
            unsafe { events.add(i).write_unaligned(ev) };
        }
    }))
}

/// epoll_wait(2).
///
/// # Safety
/// `events` must be writable for `max` entries.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn epoll_wait(
    epfd: c_int,
    events: *mut epoll_event,
    max: c_int,
    timeout_ms: c_int,
) -> c_int {
    if !is_sim(epfd) {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe {
            real!(epoll_wait: fn(c_int, *mut epoll_event, c_int, c_int) -> c_int)(
                epfd, events, max, timeout_ms,
            )
        };
    }
    // SAFETY: the caller's promise, passed on.
    unsafe { sim_epoll_wait(epfd, events, max, ns_of_ms(timeout_ms)) }
}

/// epoll_pwait(2): the signal mask is not applied.
///
/// # Safety
/// As for [`epoll_wait`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn epoll_pwait(
    epfd: c_int,
    events: *mut epoll_event,
    max: c_int,
    timeout_ms: c_int,
    mask: *const sigset_t,
) -> c_int {
    if !is_sim(epfd) {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe {
            real!(epoll_pwait: fn(c_int, *mut epoll_event, c_int, c_int, *const sigset_t) -> c_int)(
                epfd, events, max, timeout_ms, mask,
            )
        };
    }
    // SAFETY: the caller's promise, passed on.
    unsafe { sim_epoll_wait(epfd, events, max, ns_of_ms(timeout_ms)) }
}

/// epoll_pwait2(2): a nanosecond timeout; the signal mask is not applied.
///
/// # Safety
/// As for [`epoll_wait`]; `timeout` null or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn epoll_pwait2(
    epfd: c_int,
    events: *mut epoll_event,
    max: c_int,
    timeout: *const timespec,
    mask: *const sigset_t,
) -> c_int {
    if !is_sim(epfd) {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe {
            real!(epoll_pwait2: fn(c_int, *mut epoll_event, c_int, *const timespec, *const sigset_t) -> c_int)(
                epfd, events, max, timeout, mask,
            )
        };
    }
    // SAFETY: the caller's promises, passed on.
    unsafe { sim_epoll_wait(epfd, events, max, ns_of_timespec(timeout)) }
}
