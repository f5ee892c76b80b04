//! The bug zoo: real reactor and chat-server bugs from public projects (and the seed's own),
//! each a runtime switch in selectlab's reference programs, and the detectors that must catch
//! every one of them.
//!
//! - [`Bug`] and [`CATALOGUE`]: each bug's name, category, provenance, trigger and symptom, as
//!   `../shared/BUG-CATALOGUE.md` lists them.
//! - [`Bugs`]: a set of switched-on bugs. The reference programs take one in their
//!   configuration and consult it at the exact line where the original project went wrong;
//!   the default set is empty, so no bug is reachable unless it is switched on.
//! - [`detect`]: the suite's detectors (chat properties in the faithful simulator, under the
//!   seeded adversary, under fuzzer-chosen decisions, the client's properties, and small
//!   real-socket loads), each a bounded search for a counterexample.
//! - [`run`]: `selectlab zoo`, which switches each bug on in turn and reports who caught it.

pub mod detect;
pub mod run;

use std::fmt;

macro_rules! bugs {
    ($( $variant:ident => $name:literal, $cat:literal, $project:expr, $url:expr,
        $trigger:literal, $symptom:literal; )*) => {
        /// A named bug from the catalogue.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[allow(missing_docs)]
        pub enum Bug { $($variant),* }

        /// Every bug the zoo holds, in catalogue order.
        pub const CATALOGUE: &[BugInfo] = &[
            $(BugInfo {
                bug: Bug::$variant,
                name: $name,
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
    /// The public issue or pull request.
    pub url: &'static str,
    /// What makes it show.
    pub trigger: &'static str,
    /// What goes wrong.
    pub symptom: &'static str,
}

const SEED: &str = "the seed (selectserver.py / selectclient.py)";
const SEED_URL: &str = "../shared/seeds/";
const BT: &str = "binarytides chat server";
const BT_URL: &str =
    "https://www.binarytides.com/code-chat-application-server-client-sockets-python/";

bugs! {
    EtOutInterestClobbered => "et_out_interest_clobbered", "ET", "Pistache",
        "https://github.com/pistacheio/pistache/issues/1114",
        "large response fills the send buffer, then a read re-arms the fd for IN only",
        "response hangs";
    EtElseIfDropsOut => "et_else_if_drops_out", "ET", "handy",
        "https://github.com/yedf2/handy/issues/74",
        "readable and writable in one edge-triggered wakeup",
        "output never flushed";
    EtWriteQuantumNoRearm => "et_write_quantum_no_rearm", "ET", "Netty",
        "https://github.com/netty/netty/pull/7730",
        "a flush larger than the per-flush send budget while the reader keeps draining",
        "outbound stuck (selectlab's chat server had it: MAX_SENDS_PER_FLUSH under ET)";
    EtPartialWriteNoEpollout => "et_partial_write_no_epollout", "ET", "Netty",
        "https://github.com/netty/netty/pull/4216",
        "a short write",
        "flush deferred, the rest waits for the next line";
    EtReadNotDrained => "et_read_not_drained", "ET", "libmicrohttpd",
        "https://github.com/Karlson2k/libmicrohttpd/pull/11",
        "more input than one read takes, under edge triggering",
        "stall: bytes left in the kernel";
    EtShortReadHeuristic => "et_short_read_heuristic", "ET", "Netty",
        "https://github.com/netty/netty/issues/7788",
        "a read cut short (by a signal, or a segment boundary)",
        "stall: 'short read means drained' is false";
    EtSingleAccept => "et_single_accept", "ET", "server on mio",
        "https://github.com/tokio-rs/mio/issues/845",
        "several connections queued at once on an edge-triggered listener",
        "clients never accepted";
    OneshotRearmLosesOut => "oneshot_rearm_loses_out", "ONESHOT", "pjproject",
        "https://github.com/pjsip/pjproject/pull/2747",
        "output pending when a one-shot registration is re-armed",
        "the re-arm mask lacks OUT: output never completes";
    OneshotNotRearmed => "oneshot_not_rearmed", "ONESHOT", "pjproject",
        "https://github.com/pjsip/pjproject/pull/3018",
        "a wakeup whose pass processed nothing (spurious, or EAGAIN)",
        "the descriptor is never re-armed: later events ignored";
    LtEpolloutNeverCleared => "lt_epollout_never_cleared", "LT spin", "pikiwidb",
        "https://github.com/OpenAtomFoundation/pikiwidb/issues/251",
        "EAGAIN, then the backlog is written",
        "OUT interest stays: 100% CPU";
    LtDrainSkipsPolloutStop => "lt_drain_skips_pollout_stop", "LT spin", "libuv",
        "https://github.com/libuv/libuv/issues/3671",
        "the queue empties on the drain path",
        "drain returns before stopping POLLOUT: OUT wakeups, 100% CPU";
    HupErrFdNotRemoved => "hup_err_fd_not_removed", "LT spin", "Seastar",
        "https://github.com/redpanda-data/seastar/pull/64",
        "a connection fails before the application closes it",
        "the dead descriptor stays registered: spin (poll NVAL, select EBADF)";
    EofMisclassifiedStaleErrno => "eof_misclassified_stale_errno", "LT spin", "FlyingFox",
        "https://github.com/swhitty/FlyingFox/pull/224",
        "a client closes its end",
        "errno checked before read()==0: EOF taken for EAGAIN, CLOSE_WAIT leak and spin";
    AcceptEmfileSpinRedis => "accept_emfile_spin_redis", "accept", "Redis",
        "https://github.com/redis/redis/issues/246",
        "more clients than descriptors",
        "accept EMFILE, the backlog stays, the level-triggered listener fires again: tight loop";
    AcceptEmfileNoBackoff => "accept_emfile_no_backoff", "accept", "Bun",
        "https://github.com/oven-sh/bun/pull/32705",
        "more clients than descriptors",
        "the accept error path retries at once, with no backoff: EMFILE storm";
    NonblockingPartialSendLost => "nonblocking_partial_send_lost", "partial", "SFML",
        "https://github.com/SFML/SFML/issues/749",
        "a short write",
        "reported as EWOULDBLOCK without its count: the prefix is sent twice";
    SendallResendsWholeBuffer => "sendall_resends_whole_buffer", "partial", "AnyIO",
        "https://github.com/agronholm/anyio/issues/38",
        "several sends in one flush",
        "the send loop does not advance: duplicated stream";
    SendallOnNonblocking => "sendall_on_nonblocking", "partial", "pika",
        "https://github.com/pika/pika/pull/482",
        "a recipient's buffer is full",
        "sendall fails with EAGAIN and the queue is dropped: broken framing";
    PartialWriteAbandoned => "partial_write_abandoned", "partial", "EternalTerminal",
        "https://github.com/MisterTea/EternalTerminal/pull/796",
        "EAGAIN with part of a line already sent",
        "the rest of the line is given up: the peer holds a prefix";
    TornLineFrame => "torn_line_frame", "partial", "hass-intesisbox",
        "https://github.com/jnimmo/hass-intesisbox/pull/81",
        "a line split across reads",
        "each chunk framed as if whole: lines cut in two";
    EpollWaitEintrFatal => "epoll_wait_eintr_fatal", "errors", "Pistache",
        "https://github.com/pistacheio/pistache/pull/565",
        "a signal during the wait",
        "EINTR thrown: the event loop dies";
    EconnresetUncaught => "econnreset_uncaught", "errors", "discordIRCd",
        "https://github.com/creesch/discordIRCd/issues/5",
        "a client resets its connection",
        "no error handler: the server crashes";
    EagainAsFailure => "eagain_as_failure_reconnect", "errors", "OpenPMIx",
        "https://github.com/openpmix/openpmix/pull/2918",
        "recv finds nothing (EAGAIN) after a wakeup",
        "treated as a failure: a healthy client is dropped";
    WrongClientSpliced => "wrong_client_spliced", "registry", "Node-RED",
        "https://github.com/node-red/node-red/issues/3619",
        "a connection's error and close handlers both fire",
        "splice(indexOf = -1) removes the last, healthy client";
    DictMutatedDuringBroadcast => "dict_mutated_during_broadcast", "registry", "miniircd",
        "https://github.com/jrosdahl/miniircd/issues/30",
        "a client is closed while the client table is being iterated",
        "RuntimeError: the server dies";
    BroadcastUafOnClose => "broadcast_uaf_on_close", "registry", "uWebSockets",
        "https://github.com/uNetworking/uWebSockets/issues/296",
        "a broadcast from the disconnect handler",
        "the closing client is among the recipients (use-after-free; here: it hears its own departure)";
    ForwardFreesIteratedClient => "forward_frees_iterated_client", "registry", "dump1090",
        "https://github.com/MalcolmRobb/dump1090/pull/48",
        "a write error on one client while the flush loop holds the next",
        "the next client is freed with it: a healthy client is dropped";
    UnboundedReplyBuffer => "unbounded_reply_buffer", "backpressure", "Redis",
        "https://github.com/redis/redis/issues/91",
        "a client stops reading",
        "no output buffer limit: memory grows without bound";
    SoftLimitTimerNotReset => "soft_limit_timer_not_reset", "backpressure", "Redis",
        "https://github.com/redis/redis/pull/2063",
        "a client briefly above the soft limit, then again after the timeout",
        "the soft-limit clock is not reset on drain: a healthy client is dropped";
    SeedRecvErrorReplays => "seed_recv_error_replays", "seed", SEED, SEED_URL,
        "a client resets (closes with unread data)",
        "the failed recv is swallowed and the previous data is broadcast again";
    SeedWrongSocketRemoved => "seed_wrong_socket_removed", "seed", SEED, SEED_URL,
        "a recipient fails mid-broadcast",
        "the sender is removed instead of the failing recipient";
    SeedDictMutatedInBroadcast => "seed_dict_mutated_in_broadcast", "seed", SEED, SEED_URL,
        "a recipient fails during a broadcast",
        "RuntimeError: dictionary changed size during iteration; the server dies";
    SeedSendallNonblocking => "seed_sendall_nonblocking", "seed", SEED, SEED_URL,
        "a recipient's buffer is full",
        "EAGAIN after a partial write: the client is dropped with half a message";
    SeedStaleNameInXlist => "seed_stale_name_in_xlist", "seed", SEED, SEED_URL,
        "an exceptional condition (a connection error)",
        "the departure names a stale loop variable: the wrong client";
    SeedNoFraming => "seed_no_framing", "seed", SEED, SEED_URL,
        "two lines in one read, or one line over two",
        "each recv chunk gets its own say: header: lines split or merged";
    SeedClientMissesServerExit => "seed_client_misses_server_exit", "seed", SEED, SEED_URL,
        "the server goes away",
        "the client takes recv = b'' for no data and never notices";
    BtEofNotHandled => "bt_eof_not_handled", "binarytides", BT, BT_URL,
        "a client closes cleanly",
        "no branch for recv returning b'': the socket stays readable, 100% CPU";
    BtEvictedOnlyByBroadcast => "bt_evicted_only_by_broadcast", "binarytides", BT, BT_URL,
        "a client dies silently",
        "found only when a later send fails: it lingers until broadcasts later";
    BtRemoveWhileIterating => "bt_remove_while_iterating", "binarytides", BT, BT_URL,
        "a send fails mid-broadcast",
        "removing from the list being iterated skips the next client";
    BtOfflineNamesLastClient => "bt_offline_names_last_client", "binarytides", BT, BT_URL,
        "any departure",
        "the offline notice names the last accepted client";
    BtSendNotSendall => "bt_send_not_sendall", "binarytides", BT, BT_URL,
        "a short write",
        "send's count ignored: the rest of the line is lost";
    BtBlockingSendStallsAll => "bt_blocking_send_stalls_all", "binarytides", BT, BT_URL,
        "one client stops reading",
        "a blocking send to it stops the whole room";
}

impl Bug {
    /// The catalogue entry.
    pub fn info(self) -> &'static BugInfo {
        CATALOGUE
            .iter()
            .find(|i| i.bug == self)
            .expect("every bug is catalogued")
    }

    /// The bug with this catalogue name.
    pub fn from_name(name: &str) -> Option<Bug> {
        CATALOGUE.iter().find(|i| i.name == name).map(|i| i.bug)
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.info().name)
    }
}

/// A set of switched-on bugs; empty by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bugs(u64);

impl Bugs {
    /// No bug: the reference programs as they should be.
    pub const NONE: Bugs = Bugs(0);

    /// Exactly one bug switched on.
    pub fn only(bug: Bug) -> Bugs {
        Bugs(1 << bug as u32)
    }

    /// This set and `bug`.
    pub fn with(self, bug: Bug) -> Bugs {
        Bugs(self.0 | Bugs::only(bug).0)
    }

    /// Whether `bug` is switched on.
    pub fn has(self, bug: Bug) -> bool {
        self.0 & (1 << bug as u32) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip_and_fit_the_set() {
        assert!(CATALOGUE.len() <= 64, "Bugs is a u64");
        for (i, info) in CATALOGUE.iter().enumerate() {
            assert_eq!(info.bug as usize, i, "catalogue order");
            assert_eq!(Bug::from_name(info.name), Some(info.bug));
            assert!(Bugs::only(info.bug).has(info.bug));
            assert!(!Bugs::NONE.has(info.bug));
        }
    }
}
