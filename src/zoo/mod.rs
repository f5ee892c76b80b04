//! The bug zoo: real reactor and chat-server bugs from public projects (and the tutorial's own),
//! each a runtime switch in selectlab's reference programs, and the detectors that must catch
//! every one of them.
//!
//! - [`CATALOGUE`] and [`info`]: each bug's category, provenance, trigger and symptom, as
//!   `docs/src/zoo.md` describes them. The switches themselves ([`Bug`], [`Bugs`]) live
//!   low in the crate, in [`crate::bugs`], beside the code that consults them.
//! - [`detect`]: the suite's detectors (chat properties in the faithful simulator, under the
//!   seeded adversary, under fuzzer-chosen decisions, the client's properties, and small
//!   real-socket loads), each a bounded search for a counterexample.
//! - [`run`]: `selectlab zoo`, which switches each bug on in turn and reports who caught it.

pub mod detect;
pub mod foreign;
pub mod fuzz;
pub mod run;

use crate::bugs::{Bug, Bugs};

macro_rules! catalogue {
    ($( $variant:ident => $cat:literal, $project:expr, $url:expr,
        $trigger:literal, $symptom:literal; )*) => {
        /// Every bug the zoo holds, in catalogue order (the order of [`Bug::ALL`]).
        pub const CATALOGUE: &[BugInfo] = &[
            $(BugInfo {
                bug: Bug::$variant,
                name: Bug::$variant.name(),
                category: $cat,
                project: $project,
                url: $url,
                trigger: $trigger,
                symptom: $symptom,
            }),*
        ];
    };
}

/// Where a bug comes from and what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BugInfo {
    /// The switch.
    pub bug: Bug,
    /// The catalogue's name.
    pub name: &'static str,
    /// The catalogue's category (ET, ONESHOT, LT spin, accept, partial, errors, registry,
    /// backpressure, seed, binarytides).
    pub category: &'static str,
    /// The project it was found in.
    pub project: &'static str,
    /// The public issue or pull request (for the tutorial's own bugs, the manual's page on them).
    pub url: &'static str,
    /// What makes it show.
    pub trigger: &'static str,
    /// What goes wrong.
    pub symptom: &'static str,
}

const TUTORIAL: &str = "the tutorial (selectserver.py / selectclient.py)";
/// The tutorial has no public repository: its faults are described in the zoo's chapter of the
/// manual, and `tests/tutorial/selectserver.py` ports the server to Python 3 with them kept.
const TUTORIAL_URL: &str = "docs/src/zoo.md#the-tutorials-own-bugs";
const BT: &str = "binarytides chat server";
const BT_URL: &str =
    "https://www.binarytides.com/code-chat-application-server-client-sockets-python/";

catalogue! {
    EtOutInterestClobbered => "ET", "Pistache",
        "https://github.com/pistacheio/pistache/issues/1114",
        "large response fills the send buffer, then a read re-arms the fd for IN only",
        "response hangs";
    EtElseIfDropsOut => "ET", "handy",
        "https://github.com/yedf2/handy/issues/74",
        "readable and writable in one edge-triggered wakeup",
        "output never flushed";
    EtWriteQuantumNoRearm => "ET", "Netty",
        "https://github.com/netty/netty/pull/7730",
        "a flush larger than the per-flush send budget while the reader keeps draining",
        "outbound stuck (selectlab's chat server had it: MAX_SENDS_PER_FLUSH under ET)";
    EtPartialWriteNoEpollout => "ET", "Netty",
        "https://github.com/netty/netty/pull/4216",
        "a short write under edge triggering",
        "flush deferred, the rest waits for the next line";
    EtReadNotDrained => "ET", "libmicrohttpd",
        "https://github.com/Karlson2k/libmicrohttpd/pull/11",
        "more input than one read takes, under edge triggering",
        "stall: bytes left in the kernel";
    EtShortReadHeuristic => "ET", "Netty",
        "https://github.com/netty/netty/issues/7788",
        "a read cut short (by a signal, or a segment boundary)",
        "stall: 'short read means drained' is false";
    EtSingleAccept => "ET", "server on mio",
        "https://github.com/tokio-rs/mio/issues/845",
        "several connections queued at once on an edge-triggered listener",
        "clients never accepted";
    OneshotRearmLosesOut => "ONESHOT", "pjproject",
        "https://github.com/pjsip/pjproject/pull/2747",
        "output pending when a one-shot registration is re-armed",
        "the re-arm mask lacks OUT: output never completes";
    OneshotNotRearmed => "ONESHOT", "pjproject",
        "https://github.com/pjsip/pjproject/pull/3018",
        "a wakeup whose pass processed nothing (spurious, or EAGAIN)",
        "the descriptor is never re-armed: later events ignored";
    LtEpolloutNeverCleared => "LT spin", "pikiwidb",
        "https://github.com/OpenAtomFoundation/pikiwidb/issues/251",
        "EAGAIN, then the backlog is written",
        "OUT interest stays: 100% CPU";
    LtDrainSkipsPolloutStop => "LT spin", "libuv",
        "https://github.com/libuv/libuv/issues/3671",
        "the queue empties on the drain path",
        "drain returns before stopping POLLOUT: OUT wakeups, 100% CPU";
    HupErrFdNotRemoved => "LT spin", "Seastar",
        "https://github.com/redpanda-data/seastar/pull/64",
        "a connection fails before the application closes it",
        "the dead descriptor stays registered: spin (poll NVAL, select EBADF)";
    ZeroMaskAssumedSilent => "LT spin", "H2O",
        "https://github.com/h2o/h2o/pull/603",
        "a client resets while the server has stopped reading (its descriptor parked with no interest)",
        "ERR and HUP are reported whatever the mask, and ignored: a busy loop";
    EofMisclassifiedStaleErrno => "LT spin", "FlyingFox",
        "https://github.com/swhitty/FlyingFox/pull/224",
        "a client closes its end",
        "errno checked before read()==0: EOF taken for EAGAIN, CLOSE_WAIT leak and spin";
    AcceptEmfileSpinRedis => "accept", "Redis",
        "https://github.com/redis/redis/issues/246",
        "more clients than descriptors",
        "accept EMFILE, the backlog stays, the level-triggered listener fires again: tight loop";
    AcceptEmfileNoBackoff => "accept", "Bun",
        "https://github.com/oven-sh/bun/pull/32705",
        "more clients than descriptors",
        "the accept error path retries at once, with no backoff: EMFILE storm";
    NonblockingPartialSendLost => "partial", "SFML",
        "https://github.com/SFML/SFML/issues/749",
        "a short write",
        "reported as EWOULDBLOCK without its count: the prefix is sent twice";
    SendallResendsWholeBuffer => "partial", "AnyIO",
        "https://github.com/agronholm/anyio/issues/38",
        "several sends in one flush",
        "the send loop does not advance: duplicated stream";
    SendallOnNonblocking => "partial", "pika",
        "https://github.com/pika/pika/pull/482",
        "a recipient's buffer is full",
        "sendall fails with EAGAIN and the queue is dropped: broken framing";
    PartialWriteAbandoned => "partial", "EternalTerminal",
        "https://github.com/MisterTea/EternalTerminal/pull/796",
        "EAGAIN with part of a line already sent",
        "the rest of the line is given up: the peer holds a prefix";
    TornLineFrame => "partial", "hass-intesisbox",
        "https://github.com/jnimmo/hass-intesisbox/pull/81",
        "a line split across reads",
        "each chunk framed as if whole: lines cut in two";
    EpollWaitEintrFatal => "errors", "Pistache",
        "https://github.com/pistacheio/pistache/pull/565",
        "a signal during the wait",
        "EINTR thrown: the event loop dies";
    EconnresetUncaught => "errors", "discordIRCd",
        "https://github.com/creesch/discordIRCd/issues/5",
        "a client resets its connection",
        "no error handler: the server crashes";
    EagainAsFailure => "errors", "OpenPMIx",
        "https://github.com/openpmix/openpmix/pull/2918",
        "recv finds nothing (EAGAIN) after a wakeup",
        "treated as a failure: a healthy client is dropped";
    WrongClientSpliced => "registry", "Node-RED",
        "https://github.com/node-red/node-red/issues/3619",
        "a connection's error and close handlers both fire",
        "splice(indexOf = -1) removes the last, healthy client";
    DictMutatedDuringBroadcast => "registry", "miniircd",
        "https://github.com/jrosdahl/miniircd/issues/30",
        "a client is closed while the client table is being iterated",
        "RuntimeError: the server dies";
    BroadcastUafOnClose => "registry", "uWebSockets",
        "https://github.com/uNetworking/uWebSockets/issues/296",
        "a broadcast from the disconnect handler",
        "the closing client is among the recipients (use-after-free; here: it hears its own departure)";
    ForwardFreesIteratedClient => "registry", "dump1090",
        "https://github.com/MalcolmRobb/dump1090/pull/48",
        "a write error on one client while the flush loop holds the next",
        "the next client is freed with it: a healthy client is dropped";
    UnboundedReplyBuffer => "backpressure", "Redis",
        "https://github.com/redis/redis/issues/91",
        "a client stops reading",
        "no output buffer limit: memory grows without bound";
    SoftLimitTimerNotReset => "backpressure", "Redis",
        "https://github.com/redis/redis/pull/2063",
        "a client briefly above the soft limit, then again after the timeout",
        "the soft-limit clock is not reset on drain: a healthy client is dropped";
    MissingSendq => "backpressure", "InspIRCd",
        "https://github.com/inspircd/inspircd/issues/653",
        "a flood towards a client that stopped reading",
        "no sendq limit: its queue grows past the cap instead of the client being dropped";
    TutorialRecvErrorReplays => "tutorial", TUTORIAL, TUTORIAL_URL,
        "a client resets (closes with unread data)",
        "the failed recv is swallowed and the previous data is broadcast again";
    TutorialWrongSocketRemoved => "tutorial", TUTORIAL, TUTORIAL_URL,
        "a recipient fails mid-broadcast",
        "the sender is removed instead of the failing recipient";
    TutorialDictMutatedInBroadcast => "tutorial", TUTORIAL, TUTORIAL_URL,
        "a recipient fails during a broadcast",
        "RuntimeError: dictionary changed size during iteration; the server dies";
    TutorialSendallNonblocking => "tutorial", TUTORIAL, TUTORIAL_URL,
        "a recipient's buffer is full",
        "EAGAIN after a partial write: the client is dropped with half a message";
    TutorialStaleNameInXlist => "tutorial", TUTORIAL, TUTORIAL_URL,
        "an exceptional condition (a connection error)",
        "the departure names a stale loop variable: the wrong client";
    TutorialNoFraming => "tutorial", TUTORIAL, TUTORIAL_URL,
        "two lines in one read, or one line over two",
        "each recv chunk gets its own say: header: lines split or merged";
    TutorialClientMissesServerExit => "tutorial", TUTORIAL, TUTORIAL_URL,
        "the server goes away",
        "the client takes recv = b'' for no data and never notices";
    BtEofNotHandled => "binarytides", BT, BT_URL,
        "a client closes cleanly",
        "no branch for recv returning b'': the socket stays readable, 100% CPU";
    BtEvictedOnlyByBroadcast => "binarytides", BT, BT_URL,
        "a client dies silently",
        "found only when a later send fails: it lingers until broadcasts later";
    BtRemoveWhileIterating => "binarytides", BT, BT_URL,
        "a send fails mid-broadcast",
        "removing from the list being iterated skips the next client";
    BtOfflineNamesLastClient => "binarytides", BT, BT_URL,
        "any departure",
        "the offline notice names the last accepted client";
    BtSendNotSendall => "binarytides", BT, BT_URL,
        "a short write",
        "send's count ignored: the rest of the line is lost";
    BtBlockingSendStallsAll => "binarytides", BT, BT_URL,
        "one client stops reading",
        "a blocking send to it stops the whole room";
}

/// A catalogue entry the zoo does not hold, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Absent {
    /// The catalogue's name.
    pub name: &'static str,
    /// The catalogue's category.
    pub category: &'static str,
    /// The project it was found in.
    pub project: &'static str,
    /// Why it is not a switch here: the fact of the design or of Linux that rules it out.
    pub reason: &'static str,
}

/// The catalogue's entries that are not switches (14 of its 58, none of
/// which can exist in this design), each with its reason: `cannot:` and the fact of the design
/// or of Linux that rules it out.
pub const ABSENT: &[Absent] = &[
    Absent {
        name: "et_register_after_failed_send",
        category: "ET",
        project: "QuestDB",
        reason: "cannot: Linux's epoll_ctl polls the file as it registers it (ep_insert, ep_modify in fs/eventpoll.c), so room that came between the EAGAIN and the EPOLL_CTL_MOD is reported at once, edge-triggered or not (tests/scenarios/39-armed-after-eagain.scn, on both transports); the window loses a wakeup only when another thread takes the edge before the pending send is recorded, and the reference is single-threaded, so a switch at this line could never hang",
    },
    Absent {
        name: "et_pended_send_race",
        category: "ET",
        project: "msquic",
        reason: "cannot: the same window as et_register_after_failed_send (msquic's datapath thread took the edge before the send was pended); a single thread's epoll_ctl re-polls the file, so the wakeup is never lost here (tests/scenarios/39-armed-after-eagain.scn)",
    },
    Absent {
        name: "hup_in_read_eagain_loop",
        category: "LT spin",
        project: "XRootD",
        reason: "cannot: on Linux a read with HUP set returns data, then 0 (end of stream) or the pending error, never EAGAIN: HUP implies the receive side is shut, and tcp_recvmsg returns 0 then (tests/scenarios/40-hup-read-never-eagain.scn and 13-rst.scn, on both transports); XRootD's EAGAIN came from its own layer above read(2). The reference reads to end of stream under IN, so it meets HUP's EOF in the same event; end of stream taken for no data is eof_misclassified_stale_errno and bt_eof_not_handled",
    },
    Absent {
        name: "accept_emfile_spin_libuv",
        category: "accept",
        project: "libuv/Node",
        reason: "cannot: the reference meets EMFILE by pausing accept for ACCEPT_BACKOFF, not with libuv's spare descriptor (closed to accept and drop one connection, then reopened), so the line libuv got wrong does not exist here; the same trigger and symptom at this server's own line are accept_emfile_spin_redis and accept_emfile_no_backoff",
    },
    Absent {
        name: "dup_keeps_epoll_interest",
        category: "registry",
        project: "libuv",
        reason: "cannot: the reference never dups a socket, so its close is always the file's last reference and takes the registration with it (tests/scenarios/16-close-last-fd-leaves-interest.scn); the fault needs a second reference the program forgets (libuv's came from a child process or the user's dup). The simulator models it as Linux does, on both transports: a registration outlives the close while a dup keeps the file, and reports under the closed number (17-close-one-dup-keeps-interest.scn), so `check --sim` catches a foreign program with the fault (the Python fixture's dup-kept, tests/it/guest_check.rs)",
    },
    Absent {
        name: "stale_events_after_fd_reuse",
        category: "registry",
        project: "libre",
        reason: "cannot: the reactor dispatches by token (a client id, never reused), not by descriptor number, so an event fetched for a connection closed earlier in the batch names that closed client and is dropped; it cannot reach the connection that reused the number, which has a new token",
    },
    Absent {
        name: "failed_del_leaves_stale_entry",
        category: "registry",
        project: "flare",
        reason: "cannot: registrations are kept by token (a client id, never reused), not by descriptor number, so the entry a failed EPOLL_CTL_DEL leaves behind cannot collide with the next connection that reuses the number (flare's table was keyed by descriptor); a switch would change nothing a client could see",
    },
    Absent {
        name: "fd_set_overflow",
        category: "select",
        project: "oat++",
        reason: "cannot: writing past an fd_set is undefined behaviour, which the crate's forbid(unsafe_code) rules out",
    },
    Absent {
        name: "select_replaced_by_poll",
        category: "select",
        project: "Unbound",
        reason: "cannot: a design decision (moving off select for its 1024 limit), not a fault; the reference offers poll and epoll",
    },
    Absent {
        name: "sigpipe_kills_server",
        category: "errors",
        project: "ecl_core",
        reason: "cannot: the fault is a process that neither ignores SIGPIPE nor sends with MSG_NOSIGNAL, and neither can be true here: Rust's runtime sets SIGPIPE to SIG_IGN before main, and the kernel boundary's send is MSG_NOSIGNAL on both transports (as a C server's fix would be). The simulator models the signal as Linux does for programs that can have the fault: under `selectlab sim` and `check --sim` the shim raises SIGPIPE in a foreign program whose send fails with EPIPE and lacks MSG_NOSIGNAL (tests/fixtures/guest_calls.py, compared with the same script on the kernel; tests/scenarios/38-write-after-hangup.scn for the EPIPE itself)",
    },
    Absent {
        name: "epoll_wait_error_as_timeout",
        category: "errors",
        project: "TinyMUX",
        reason: "cannot: the only error Linux gives a correct program's epoll_wait is EINTR, which the reference already treats as a wait that timed out (rightly); EBADF and EINVAL need the program to close or misuse its own epoll descriptor, which no path of the reference does, so the switch could never fire",
    },
    Absent {
        name: "eagain_added_to_byte_count",
        category: "errors",
        project: "e2guardian",
        reason: "cannot: a failed recv is an Err in Rust, never a length, so e2guardian's arithmetic (-1 added to the bytes already buffered) has nothing to add it to; writing it would mean inventing the count the language keeps out",
    },
    Absent {
        name: "short_header_recv_fatal",
        category: "partial",
        project: "ssh-pageant",
        reason: "cannot: the chat protocol has no binary header; a line split over reads is the zoo's framing bugs",
    },
    Absent {
        name: "unbounded_ws_queue",
        category: "backpressure",
        project: "Fleck",
        reason: "cannot: the same fault as missing_sendq (a per-connection send queue with no cap), which falls on the same line of this server; a second switch there would be a copy, not another bug",
    },
];

/// The catalogue entry of `bug`.
pub fn info(bug: Bug) -> &'static BugInfo {
    &CATALOGUE[bug as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_zoo_and_its_absences_cover_the_58_entries_of_the_catalogue_once() {
        let mut names: Vec<&str> = CATALOGUE.iter().map(|i| i.name).collect();
        names.extend(ABSENT.iter().map(|a| a.name));
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!((names.len(), count), (58, 58));
        for a in ABSENT {
            assert!(a.reason.starts_with("cannot: "), "{}", a.name);
        }
    }

    #[test]
    fn the_catalogue_holds_every_switch_in_order() {
        assert_eq!(CATALOGUE.len(), Bug::ALL.len());
        for (info, &bug) in CATALOGUE.iter().zip(Bug::ALL) {
            assert_eq!(info.bug, bug);
            assert_eq!(info.name, bug.name());
        }
    }
}
