//! The zoo's switches: which of the catalogued bugs are switched on. The reference programs
//! (the reactor, the chat server and client, the fuzz targets' logic) take a [`Bugs`] in their
//! configuration and ask [`Bugs::has`] at the exact line where the original project went
//! wrong; the default set is empty, so no bug is reachable unless a harness switches it on.
//!
//! This module sits low in the crate and imports nothing of it: the catalogue's provenance,
//! the detectors and the `selectlab zoo` command live in the `zoo` module, above everything they
//! test.

use std::fmt;

macro_rules! switches {
    ($( $variant:ident => $name:literal, )*) => {
        /// A named bug from the zoo's catalogue (`zoo::CATALOGUE` holds its provenance).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[allow(missing_docs)]
        pub enum Bug { $($variant),* }

        impl Bug {
            /// Every bug, in catalogue order.
            pub const ALL: &[Bug] = &[$(Bug::$variant),*];

            /// The catalogue's name.
            pub const fn name(self) -> &'static str {
                match self { $(Bug::$variant => $name),* }
            }
        }
    };
}

switches! {
    EtOutInterestClobbered => "et_out_interest_clobbered",
    EtElseIfDropsOut => "et_else_if_drops_out",
    EtWriteQuantumNoRearm => "et_write_quantum_no_rearm",
    EtPartialWriteNoEpollout => "et_partial_write_no_epollout",
    EtReadNotDrained => "et_read_not_drained",
    EtShortReadHeuristic => "et_short_read_heuristic",
    EtSingleAccept => "et_single_accept",
    OneshotRearmLosesOut => "oneshot_rearm_loses_out",
    OneshotNotRearmed => "oneshot_not_rearmed",
    LtEpolloutNeverCleared => "lt_epollout_never_cleared",
    LtDrainSkipsPolloutStop => "lt_drain_skips_pollout_stop",
    HupErrFdNotRemoved => "hup_err_fd_not_removed",
    ZeroMaskAssumedSilent => "zero_mask_assumed_silent",
    EofMisclassifiedStaleErrno => "eof_misclassified_stale_errno",
    AcceptEmfileSpinRedis => "accept_emfile_spin_redis",
    AcceptEmfileNoBackoff => "accept_emfile_no_backoff",
    NonblockingPartialSendLost => "nonblocking_partial_send_lost",
    SendallResendsWholeBuffer => "sendall_resends_whole_buffer",
    SendallOnNonblocking => "sendall_on_nonblocking",
    PartialWriteAbandoned => "partial_write_abandoned",
    TornLineFrame => "torn_line_frame",
    EpollWaitEintrFatal => "epoll_wait_eintr_fatal",
    EconnresetUncaught => "econnreset_uncaught",
    EagainAsFailure => "eagain_as_failure_reconnect",
    WrongClientSpliced => "wrong_client_spliced",
    DictMutatedDuringBroadcast => "dict_mutated_during_broadcast",
    BroadcastUafOnClose => "broadcast_uaf_on_close",
    ForwardFreesIteratedClient => "forward_frees_iterated_client",
    UnboundedReplyBuffer => "unbounded_reply_buffer",
    SoftLimitTimerNotReset => "soft_limit_timer_not_reset",
    MissingSendq => "missing_sendq",
    TutorialRecvErrorReplays => "tutorial_recv_error_replays",
    TutorialWrongSocketRemoved => "tutorial_wrong_socket_removed",
    TutorialDictMutatedInBroadcast => "tutorial_dict_mutated_in_broadcast",
    TutorialSendallNonblocking => "tutorial_sendall_nonblocking",
    TutorialStaleNameInXlist => "tutorial_stale_name_in_xlist",
    TutorialNoFraming => "tutorial_no_framing",
    TutorialClientMissesServerExit => "tutorial_client_misses_server_exit",
    BtEofNotHandled => "bt_eof_not_handled",
    BtEvictedOnlyByBroadcast => "bt_evicted_only_by_broadcast",
    BtRemoveWhileIterating => "bt_remove_while_iterating",
    BtOfflineNamesLastClient => "bt_offline_names_last_client",
    BtSendNotSendall => "bt_send_not_sendall",
    BtBlockingSendStallsAll => "bt_blocking_send_stalls_all",
}

impl Bug {
    /// The bug with this catalogue name.
    pub fn from_name(name: &str) -> Option<Bug> {
        Bug::ALL.iter().copied().find(|b| b.name() == name)
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
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

    /// The bugs named in `list`, comma-separated (spaces around names ignored; empty: none).
    pub fn parse_list(list: &str) -> Result<Bugs, String> {
        let mut names = list.split(',').map(str::trim).filter(|n| !n.is_empty());
        names.try_fold(Bugs::NONE, |bugs, name| {
            Bug::from_name(name)
                .map(|bug| bugs.with(bug))
                .ok_or_else(|| {
                    format!("no zoo bug is named {name:?} (selectlab zoo --list names them)")
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip_and_fit_the_set() {
        assert!(Bug::ALL.len() <= 64, "Bugs is a u64");
        for (i, &bug) in Bug::ALL.iter().enumerate() {
            assert_eq!(bug as usize, i, "catalogue order");
            assert_eq!(Bug::from_name(bug.name()), Some(bug));
            assert!(Bugs::only(bug).has(bug));
            assert!(!Bugs::NONE.has(bug));
        }
    }

    #[test]
    fn a_list_of_names_parses_to_its_set_and_an_unknown_name_is_refused() {
        let (a, b) = (Bug::ALL[0], Bug::ALL[1]);
        let list = format!(" {a}, {b} ,");
        assert_eq!(Bugs::parse_list(&list), Ok(Bugs::only(a).with(b)));
        assert_eq!(Bugs::parse_list(""), Ok(Bugs::NONE));
        let refused = Bugs::parse_list("no_such_bug").expect_err("unknown");
        assert!(refused.contains("\"no_such_bug\""), "{refused}");
    }
}
