//! Unit tests of `check`.

use std::time::Duration;

use super::*;
use crate::addr::SockAddr;
use crate::session::ClientView;
use crate::session::schedules::say;

/// Found by cargo-mutants: steps naming a client beyond the model's count are ignored,
/// whatever they are (the fuzzer's scripts name any client).
#[test]
fn steps_about_uncounted_clients_are_ignored() {
    let limits = Limits::default();
    let beyond = 2;
    let steps = [
        Step::Join(0),
        Step::Join(1),
        Step::Join(beyond),
        Step::Say(beyond, b"hi".to_vec()),
        Step::Pause(beyond),
        Step::Resume(beyond),
        Step::StopReading(beyond),
        Step::Exit(beyond),
        Step::Say(0, b"hello".to_vec()),
    ];
    let want = expected(&steps, beyond, &limits);
    assert_eq!(want[0], [(1, Said::Entered)]);
    assert_eq!(
        want[1],
        [(0, Said::Line(Rc::from(&b"hello"[..])))],
        "c2 joined after c1: it hears c1's line, not c1's entry"
    );
}

/// Found by cargo-mutants: once the server has stopped, nobody joins, together or alone.
#[test]
fn nobody_joins_a_stopped_server() {
    let steps = [
        Step::Join(0),
        Step::StopServer,
        Step::Crowd(3),
        Step::Join(2),
    ];
    let want = expected(&steps, 3, &Limits::default());
    assert!(want.iter().all(Vec::is_empty), "{want:?}");
}

/// Found by cargo-mutants: the difference names where the two sequences part, and both
/// items there.
#[test]
fn the_first_difference_is_named() {
    let got = [(1, Said::Entered), (1, Said::Line(Rc::from(&b"a"[..])))];
    let want = [(1, Said::Entered), (1, Said::Left)];
    assert_eq!(
        first_difference(&got, &want).what,
        "heard 2 items but should have heard 2; item 2 was c2 says \"a\", should be c2 left"
    );
    assert_eq!(
        first_difference(&got[..1], &want).what,
        "heard 1 items but should have heard 2; item 2 was nothing, should be c2 left"
    );
}

/// Each way a client's share can go wrong has its own kind of symptom: what a shrink keeps
/// and what `--json` reports.
#[test]
fn the_first_difference_names_its_kind() {
    let line = |who: usize, text: &str| (who, Said::Line(Rc::from(text.as_bytes())));
    let (a, b, c) = (line(0, "a"), line(0, "b"), line(1, "c"));
    let kind = |got: &[(usize, Said)], want: &[(usize, Said)]| first_difference(got, want).symptom;
    let want = [a.clone(), b.clone(), c.clone()];
    assert_eq!(kind(&[a.clone(), b.clone()], &want), Symptom::Lost);
    assert_eq!(kind(&[a.clone(), c.clone()], &want), Symptom::Lost);
    assert_eq!(
        kind(&[b.clone(), a.clone(), c.clone()], &want),
        Symptom::Reordered
    );
    let dup = [a.clone(), b.clone(), c.clone(), c.clone()];
    assert_eq!(kind(&dup, &want), Symptom::Extra);
    assert_eq!(
        kind(&[a.clone(), line(0, "bc"), c.clone()], &want),
        Symptom::Torn
    );
    assert_eq!(
        kind(&[a.clone(), line(1, "z"), b, c], &want),
        Symptom::Extra
    );
}

/// A line typed while paused is said when its sender carries on, in its order among the
/// others' lines then.
#[test]
fn a_paused_client_speaks_when_it_carries_on() {
    let steps = [
        Step::Join(0),
        Step::Join(1),
        Step::Pause(0),
        Step::Say(0, b"typed while paused".to_vec()),
        Step::Say(1, b"meanwhile".to_vec()),
        Step::Resume(0),
    ];
    let want = expected(&steps, 2, &Limits::default());
    assert_eq!(
        want[1],
        [(0, Said::Line(Rc::from(&b"typed while paused"[..])))]
    );
    assert_eq!(
        want[0],
        [
            (1, Said::Entered),
            (1, Said::Line(Rc::from(&b"meanwhile"[..])))
        ]
    );
}

fn line(who: usize, text: &str) -> (usize, Said) {
    (who, Said::Line(Rc::from(text.as_bytes())))
}

/// Found by cargo-mutants: a late joiner's judgement could be switched off. Per sender,
/// what it should hear must end what it heard; the order across senders is free. (An echo
/// is judged before: see `an_echo_is_named_whatever_the_path`.)
#[test]
fn a_late_joiner_is_judged_per_sender() {
    let none = BTreeSet::new();
    let want = [line(1, "b"), line(0, "a")];
    let early = [line(1, "x"), line(0, "a"), line(1, "b")];
    assert_eq!(compare_late(&early, &want, 3, &none), Ok(()));
    let crossed = [line(0, "a"), line(1, "b")];
    assert_eq!(compare_late(&crossed, &want, 3, &none), Ok(()));
    assert!(
        compare_late(&[line(0, "a")], &want, 3, &none).is_err(),
        "b is missing"
    );
    let reordered = [line(1, "b"), line(0, "a"), line(0, "z")];
    assert!(compare_late(&reordered, &want, 3, &none).is_err());
    // Found by the fuzzer: c2 stopped reading and was dropped before its lines left its
    // socket; a late joiner heard none of them.
    let loose = BTreeSet::from([1]);
    let cut_short = [(1, Said::Left), line(0, "a")];
    assert!(compare_late(&cut_short, &want, 3, &none).is_err());
    assert_eq!(compare_late(&cut_short, &want, 3, &loose), Ok(()));
}

/// Found by the fuzzer: clients whose hearing the schedule decided (a late joiner that
/// left while the room was held heard nothing at all; a client cut off for an over-long
/// line heard a line said after it in step order) are judged on what each sender said: in
/// order, at most once, never an echo.
#[test]
fn where_the_schedule_decided_whom_a_client_heard_it_hears_only_what_was_said() {
    let none = BTreeSet::new();
    let said = vec![
        vec![
            Said::Line(Rc::from(&b"a"[..])),
            Said::Line(Rc::from(&b"b"[..])),
        ],
        vec![Said::Entered, Said::Line(Rc::from(&b"c"[..])), Said::Left],
        vec![],
    ];
    assert_eq!(compare_within(&[], &said, &none), Ok(()));
    let some = [line(1, "c"), line(0, "a"), line(0, "b"), (1, Said::Left)];
    assert_eq!(compare_within(&some, &said, &none), Ok(()));
    let twice = [line(0, "a"), line(0, "a")];
    assert!(compare_within(&twice, &said, &none).is_err(), "twice");
    let swapped = [line(0, "b"), line(0, "a")];
    assert!(
        compare_within(&swapped, &said, &none).is_err(),
        "out of order"
    );
    let made_up = [line(1, "z")];
    assert!(
        compare_within(&made_up, &said, &none).is_err(),
        "never said"
    );
    assert!(
        compare_within(&[line(2, "x")], &said, &none).is_err(),
        "c3 said nothing"
    );
    assert!(
        compare_within(&[line(3, "x")], &said, &none).is_err(),
        "nobody"
    );
    // c1 never left in the model; had it stopped reading, the server might have dropped it.
    let dropped = [line(0, "a"), (0, Said::Left)];
    assert!(compare_within(&dropped, &said, &none).is_err());
    let slow = BTreeSet::from([0]);
    assert_eq!(compare_within(&dropped, &said, &slow), Ok(()));
}

/// A client that hears its own line back fails as an echo, whether it was in the room from
/// the start or joined while the room was held.
#[test]
fn an_echo_is_named_whatever_the_path() {
    let steps = [Step::Join(0), Step::Join(1), say(0, "hi")];
    for late in [false, true] {
        let mut o = outcome(&[
            &[said(1, "entered room"), said(0, "say: hi")],
            &[said(0, "say: hi")],
        ]);
        o.clients[0].joined_while_held = late;
        let why = check(&steps, &o, 2, &Limits::default()).expect_err("an echo");
        assert_eq!(why.symptom, Symptom::Echoed, "late {late}: {why}");
        assert_eq!(why.what, "c1 heard itself: c1 says \"hi\"", "late {late}");
    }
}

/// Found by cargo-mutants (a late joiner that went loose was judged as a late joiner only):
/// a client that joined while the room was held and then stopped reading is owed only part
/// of what each client said, in order and once; a prefix of c1's lines passes.
#[test]
fn a_loose_late_joiner_is_owed_a_part_of_each_senders_lines() {
    let steps = [
        Step::Join(0),
        Step::Join(1),
        Step::Pause(1),
        Step::Join(2),
        Step::StopReading(2),
        say(0, "a"),
        say(0, "b"),
    ];
    let mut o = outcome(&[
        &[said(1, "entered room"), said(2, "entered room")],
        &[],
        &[said(0, "say: a")],
    ]);
    o.first_held_step = Some(3);
    o.clients[2].joined_while_held = true;
    assert_eq!(check(&steps, &o, 3, &Limits::default()), Ok(()));
    // What it heard must still be what c1 said, in order.
    let mut swapped = o.clone();
    swapped.clients[2].lines = vec![
        said(0, "say: b").into_bytes(),
        said(0, "say: a").into_bytes(),
    ];
    let why = check(&steps, &swapped, 3, &Limits::default()).expect_err("out of order");
    assert_eq!(why.symptom, Symptom::Reordered, "{why}");
}

/// A finished session by hand: each client's address and the lines it heard.
fn outcome(heard: &[&[String]]) -> Outcome {
    let clients = heard
        .iter()
        .enumerate()
        .map(|(n, lines)| ClientView {
            addr: Some(addr(n)),
            lines: lines.iter().map(|l| l.as_bytes().to_vec()).collect(),
            ..ClientView::default()
        })
        .collect();
    Outcome::of_clients(clients)
}

fn addr(n: usize) -> SockAddr {
    SockAddr::Inet(format!("127.0.0.1:{}", n + 1).parse().unwrap())
}

fn said(n: usize, what: &str) -> String {
    format!("2026-01-01 00:00:00 {} {what}", addr(n))
}

/// Found by cargo-mutants: only a client paused when it left is excused what it had not
/// read; one that left while reading must have heard everything said before.
#[test]
fn only_a_paused_leaver_is_excused_what_it_missed() {
    let limits = Limits::default();
    let c1_heard = [said(1, "entered room"), said(1, "left room")];
    for (paused, excused) in [(true, true), (false, false)] {
        let mut steps = vec![Step::Join(0), Step::Join(1)];
        if paused {
            steps.push(Step::Pause(1));
        }
        // Resumed after it left: only its leaving while paused excuses it.
        steps.extend([Step::Say(0, b"a".to_vec()), Step::Exit(1), Step::Resume(1)]);
        // c2 heard nothing of c1's line.
        let o = outcome(&[&c1_heard, &[]]);
        assert_eq!(
            check(&steps, &o, 2, &limits).is_ok(),
            excused,
            "paused: {paused}"
        );
    }
}

/// Found by cargo-mutants: a client joins once; a second `Join` of it is no step.
#[test]
fn a_client_joins_once() {
    let steps = [Step::Join(0), Step::Join(1), Step::Exit(1), Step::Join(1)];
    let want = expected(&steps, 2, &Limits::default());
    assert_eq!(want[0], [(1, Said::Entered), (1, Said::Left)]);
}

/// Found by cargo-mutants: a queue of exactly the cap is within it; one byte more is not.
/// And the busy-loop bound counts every byte in and out.
#[test]
fn the_cap_and_the_work_bound_are_exact() {
    let limits = Limits::default();
    let steps = [Step::Join(0)];
    let mut o = outcome(&[&[]]);
    o.peak_queue_bytes = limits.outbound_cap_bytes;
    assert_eq!(check(&steps, &o, 1, &limits), Ok(()));
    o.peak_queue_bytes += 1;
    assert!(check(&steps, &o, 1, &limits).is_err());
    o.peak_queue_bytes = 0;
    o.stats.bytes_in = 3;
    o.stats.bytes_out = 5;
    o.stats.events = 2 * EVENTS_PER_STEP_BOUND + 3 + 5;
    assert_eq!(check(&steps, &o, 1, &limits), Ok(()));
    o.stats.events += 1;
    assert!(check(&steps, &o, 1, &limits).is_err());
}

/// Found by the fuzzer (a CI run): once the server held the room, c1's short line,
/// typed after c2's long burst, reached the server first (c2's rest still waited in its
/// socket). The order across senders is free from the step the room was first held; each
/// sender's own order, and everything before that step, is still exact.
#[test]
fn after_the_room_is_held_only_each_senders_order_counts() {
    let limits = Limits::default();
    let steps = [
        Step::Join(0),
        Step::Join(1),
        Step::Join(2),
        Step::Say(1, b"before".to_vec()),
        Step::Say(1, b"z1".to_vec()),
        Step::Say(1, b"z2".to_vec()),
        Step::Say(0, b"c".to_vec()),
    ];
    let entered = |n| said(n, "entered room");
    let says = |n, t: &str| said(n, &format!("say: {t}"));
    let c3_heard = |order: [&str; 3]| -> Vec<String> {
        let by = |t: &str| if t == "c" { says(0, t) } else { says(1, t) };
        [says(1, "before")]
            .into_iter()
            .chain(order.iter().map(|t| by(t)))
            .collect()
    };
    let c1_heard = [
        entered(1),
        entered(2),
        says(1, "before"),
        says(1, "z1"),
        says(1, "z2"),
    ];
    let c2_heard = [entered(2), says(0, "c")];
    let judge = |c3: Vec<String>, held: Option<usize>| {
        let mut o = outcome(&[&c1_heard, &c2_heard, &c3]);
        o.first_held_step = held;
        check(&steps, &o, 3, &limits)
    };
    let crossed = c3_heard(["c", "z1", "z2"]);
    assert!(
        judge(crossed.clone(), None).is_err(),
        "never held: global order"
    );
    assert_eq!(judge(crossed.clone(), Some(4)), Ok(()), "held from z1 on");
    assert!(judge(crossed, Some(5)).is_err(), "z1 came before the hold");
    let swapped = c3_heard(["z2", "c", "z1"]);
    assert!(judge(swapped, Some(4)).is_err(), "c2's own order");
    let lost = c3_heard(["c", "z1", "z1"]);
    assert!(judge(lost, Some(4)).is_err(), "z2 lost, z1 twice");
}

/// Found by the property soak and cargo-mutants: a client paused when the server went
/// away is owed only what reached it before; the server dropped the rest, even though
/// the client carried on afterwards.
#[test]
fn a_client_paused_when_the_server_stops_is_owed_a_prefix() {
    let steps = [
        Step::Join(0),
        Step::Join(1),
        Step::Pause(1),
        Step::Say(0, b"a".to_vec()),
        Step::StopServer,
        Step::Resume(1),
    ];
    let c1_heard = [said(1, "entered room")];
    let o = outcome(&[&c1_heard, &[]]);
    assert_eq!(check(&steps, &o, 2, &Limits::default()), Ok(()));
    let unpaused = [
        Step::Join(0),
        Step::Join(1),
        Step::Say(0, b"a".to_vec()),
        Step::StopServer,
    ];
    assert!(check(&unpaused, &o, 2, &Limits::default()).is_err());
}

/// A line that is not the protocol's is a failure with the line as evidence (a torn line, a
/// header glued to a stray fragment), but the server's own answers to one client are not.
#[test]
fn lines_outside_the_protocol_fail_but_the_servers_answers_do_not() {
    let torn = format!("2026-01-01 00:0{}", said(1, "say: hi"));
    let got = heard(&outcome(&[&[torn], &[]]), 2);
    let why = got.expect_err("a torn line is not the protocol's");
    assert!(
        why.what
            .starts_with("c1 heard a line that is not the protocol's"),
        "{why}"
    );
    let answers = [
        "error: line longer than 4096 bytes; disconnecting".to_string(),
        "server full".to_string(),
    ];
    let got = heard(&outcome(&[&answers, &[]]), 2).expect("the server's answers pass");
    assert!(got.iter().all(Vec::is_empty), "{got:?}");
}

/// Once the server stops after holding the room, only what came after the hold may be cut
/// short: a reader that misses a line from before the hold fails, one
/// that misses only what came after passes.
#[test]
fn a_server_stopped_after_a_hold_still_owes_what_came_before_it() {
    let steps = [
        Step::Join(0),
        Step::Join(1),
        Step::Say(0, b"a".to_vec()),
        Step::Say(0, b"b".to_vec()),
        Step::Say(0, b"c".to_vec()),
        Step::StopServer,
    ];
    let held_at_c = |heard: &[String]| {
        let mut o = outcome(&[&[said(1, "entered room")], heard]);
        o.first_held_step = Some(4);
        check(&steps, &o, 2, &Limits::default())
    };
    let before_hold = [said(0, "say: a"), said(0, "say: b")];
    assert!(
        held_at_c(&before_hold).is_ok(),
        "c, after the hold, may be lost"
    );
    let missing_b = held_at_c(&before_hold[..1]).expect_err("b came before the hold");
    assert!(
        missing_b
            .what
            .starts_with("c2 heard 1 items but should have heard 3"),
        "{missing_b}"
    );
    // Found by cargo-mutants: a fault after the hold says it was judged per sender.
    let changed = [said(0, "say: a"), said(0, "say: b"), said(0, "say: z")];
    let why = held_at_c(&changed).expect_err("c1 never said z");
    assert!(
        why.what
            .starts_with("c2 (after the room was held, per sender) heard 1 items"),
        "{why}"
    );
    assert_eq!(why.symptom, Symptom::Torn);
}

/// Issue 16's lower bound: what a client said before it stopped reading, or before it was
/// paused for good, is owed in full to everyone still reading. A server that drops exactly
/// those lines (here: all of c2's, heard by c1 as nothing but c2's entry) fails; one that
/// drops only what c2 said after it went loose passes, as before.
#[test]
fn a_loose_clients_lines_from_before_it_went_loose_are_owed_in_full() {
    let limits = Limits::default();
    for went_loose in [Step::StopReading(1), Step::Pause(1)] {
        let steps = [
            Step::Join(0),
            Step::Join(1),
            Step::Say(1, b"before".to_vec()),
            went_loose.clone(),
            Step::Say(1, b"after".to_vec()),
        ];
        let c2_heard: [String; 0] = [];
        let entered = said(1, "entered room");
        let all = [
            entered.clone(),
            said(1, "say: before"),
            said(1, "say: after"),
        ];
        let before_only = [entered.clone(), said(1, "say: before")];
        let dropped = [entered];
        let judge =
            |c1_heard: &[String]| check(&steps, &outcome(&[c1_heard, &c2_heard]), 2, &limits);
        assert_eq!(
            judge(&before_only),
            Ok(()),
            "{went_loose}: after may be lost"
        );
        if went_loose == Step::StopReading(1) {
            assert_eq!(
                judge(&all),
                Ok(()),
                "{went_loose}: a stopped reader still sends"
            );
        }
        let why = judge(&dropped).expect_err("the line from before it went loose is owed");
        assert!(
            why.what.starts_with(
                "c1 heard 1 items about c2 but is owed the 2 it said before it went loose"
            ),
            "{went_loose}: {why}"
        );
    }
}

/// A client the network reset may have lost its lines in its own socket at any moment:
/// nothing it said is owed in full.
#[test]
fn a_client_reset_by_the_network_is_owed_nothing_in_full() {
    let limits = Limits::default();
    let steps = [
        Step::Join(0),
        Step::Join(1),
        Step::Say(1, b"before".to_vec()),
    ];
    let mut o = outcome(&[&[said(1, "entered room")], &[]]);
    o.clients[1].reset_by_network = true;
    assert_eq!(check(&steps, &o, 2, &limits), Ok(()));
}

/// Found by the zoo's adversary once it drew short slow-consumer timeouts: a client that stays
/// paused while the timeout passes may be dropped (the server rightly was), so it is loose from
/// its pause; paused for less, it is owed everything, and its departure is a failure.
#[test]
fn a_client_paused_past_the_timeout_may_have_been_dropped() {
    let limits = Limits {
        slow_consumer_timeout: Duration::from_millis(100),
        ..Limits::default()
    };
    // c2 heard c1's entry, then was dropped; c1 heard c2 leave; nobody heard "a".
    let c1_heard = [said(1, "entered room"), said(1, "left room")];
    let o = outcome(&[&c1_heard, &[]]);
    for (slept_ms, excused) in [(100, true), (99, false)] {
        let steps = [
            Step::Join(0),
            Step::Join(1),
            Step::Pause(1),
            Step::Say(0, b"a".to_vec()),
            Step::Sleep(Duration::from_millis(slept_ms)),
            Step::Resume(1),
        ];
        assert_eq!(
            check(&steps, &o, 2, &limits).is_ok(),
            excused,
            "paused for {slept_ms} ms"
        );
    }
}

#[test]
fn a_departure_announced_when_the_server_noticed_it_is_excused_only_when_late() {
    let left = |who: usize| (who, Said::Left);
    let want: Heard = vec![vec![left(2), line(0, "a"), line(0, "b")]];
    // Announced after two lines said after the departure: moved back to its place.
    let mut late: Heard = vec![vec![line(0, "a"), line(0, "b"), left(2)]];
    excuse_late_departures(&mut late, &want);
    assert_eq!(late, want);
    // Announced before the line that preceded the departure: left as heard.
    let want: Heard = vec![vec![line(0, "a"), left(2)]];
    let mut early: Heard = vec![vec![left(2), line(0, "a")]];
    excuse_late_departures(&mut early, &want);
    assert_eq!(early, vec![vec![left(2), line(0, "a")]]);
    // Two departures in a row, heard in the model's order: they stay in it.
    let want: Heard = vec![vec![line(0, "a"), left(3), left(2)]];
    let mut both = want.clone();
    excuse_late_departures(&mut both, &want);
    assert_eq!(both, want);
    // Something of the departed client's between: left as heard.
    let want: Heard = vec![vec![left(2), line(0, "a")]];
    let mut theirs: Heard = vec![vec![line(2, "x"), line(0, "a"), left(2)]];
    excuse_late_departures(&mut theirs, &want);
    assert_eq!(theirs[0][2], left(2));
}
