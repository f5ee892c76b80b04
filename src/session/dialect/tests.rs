use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use super::*;
use crate::session::Symptom;
use crate::session::properties::{Heard, Said};

/// A calm calibration run as `check --sim` makes it: three join, each says a line, the first
/// says another after the third left, then the second says an empty line.
fn acts() -> Vec<Act> {
    let say = |n: usize, t: &str| Act::Say(n, t.as_bytes().to_vec());
    vec![
        Act::Join(0),
        Act::Join(1),
        Act::Join(2),
        say(0, "one"),
        Act::Wait,
        say(1, "two"),
        Act::Wait,
        say(2, "three"),
        Act::Leave(2),
        Act::Wait,
        say(0, "four"),
        Act::Say(1, Vec::new()),
    ]
}

const PORTS: [u16; 3] = [40001, 40002, 40003];

/// What a server in a dialect makes each client hear at each step of [`acts`]: `relay(who,
/// time, text)`, `notice(kind, who)`, `greet(who)`.
fn run(
    relay: impl Fn(usize, usize, &str) -> String,
    notice: impl Fn(&str, usize) -> Option<String>,
    greet: impl Fn(usize) -> Option<String>,
    empty: bool,
) -> Vec<Vec<Vec<Vec<u8>>>> {
    let mut present = [false; 3];
    let mut time = 0;
    let mut out = Vec::new();
    for act in acts() {
        let mut heard = vec![Vec::new(); 3];
        let mut tell = |to: usize, line: String| heard[to].push(line.into_bytes());
        match &act {
            Act::Join(n) => {
                if let Some(g) = greet(*n) {
                    tell(*n, g);
                }
                for m in (0..3).filter(|&m| present[m]) {
                    notice("joined", *n).into_iter().for_each(|l| tell(m, l));
                }
                present[*n] = true;
            }
            Act::Leave(n) => {
                present[*n] = false;
                for m in (0..3).filter(|&m| present[m]) {
                    notice("left", *n).into_iter().for_each(|l| tell(m, l));
                }
            }
            Act::Say(n, text) if !text.is_empty() || empty => {
                let text = String::from_utf8_lossy(text);
                for m in (0..3).filter(|&m| present[m] && m != *n) {
                    tell(m, relay(*n, time, &text));
                }
            }
            Act::Say(..) => {}
            Act::Wait => time += 1,
        }
        out.push(heard);
    }
    out
}

fn learned(lines: &[Vec<Vec<Vec<u8>>>]) -> Result<Dialect, String> {
    learn(&Calibration {
        acts: &acts(),
        lines,
        ports: &PORTS,
    })
}

#[test]
fn the_tutorials_protocol_is_learned_as_written() {
    let stamp = |n: usize, t: usize| format!("2026-01-01 00:00:0{t} ('127.0.0.1', {})", PORTS[n]);
    let lines = run(
        |n, t, text| format!("{} say: {text}", stamp(n, t)),
        |kind, n| {
            Some(format!(
                "{} {}",
                stamp(n, 3),
                if kind == "joined" {
                    "entered room"
                } else {
                    "left room"
                }
            ))
        },
        |_| None,
        false,
    );
    let d = learned(&lines).expect("learned");
    assert_eq!(d.to_string(), Dialect::tutorial().to_string());
}

#[test]
fn a_name_the_server_gave_a_time_stamp_and_a_greeting_are_learned() {
    let name = |n: usize| format!("user{}", n + 1);
    let lines = run(
        |n, t, text| format!("[12:00:0{t}] <{}> {text}", name(n)),
        |kind, n| Some(format!("*** {} has {kind}", name(n))),
        |n| Some(format!("Welcome, {}!", name(n))),
        true,
    );
    let d = learned(&lines).expect("learned");
    assert_eq!(d.relay.to_string(), "[{n}:{n}:{n}] <user{who}> {text}");
    assert_eq!(
        d.joined.as_ref().map(ToString::to_string).as_deref(),
        Some("*** user{who} has joined")
    );
    assert_eq!(
        d.left.as_ref().map(ToString::to_string).as_deref(),
        Some("*** user{who} has left")
    );
    assert_eq!(
        d.greeting
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["Welcome, user{who}!"]
    );
    assert!(d.empty_lines && !d.echo);
}

#[test]
fn a_bare_relay_with_no_notices_is_learned() {
    let lines = run(|_, _, text| text.to_string(), |_, _| None, |_| None, false);
    let d = learned(&lines).expect("learned");
    assert_eq!(d.relay.to_string(), "{text}");
    assert_eq!((d.joined, d.left, d.greeting.len()), (None, None, 0));
    assert!(!d.relay.names_someone());
}

#[test]
fn an_address_prefix_names_by_port() {
    let lines = run(
        |n, _, text| format!("<127.0.0.1:{}> {text}", PORTS[n]),
        |kind, n| Some(format!("* 127.0.0.1:{} {kind}", PORTS[n])),
        |_| None,
        false,
    );
    let d = learned(&lines).expect("learned");
    assert_eq!(d.relay.to_string(), "<{n}.{n}.{n}.{n}:{who}> {text}");
    assert_eq!(
        d.left.as_ref().map(ToString::to_string).as_deref(),
        Some("* {n}.{n}.{n}.{n}:{who} left")
    );
}

#[test]
fn a_server_that_relays_nothing_or_twice_cannot_be_learned() {
    let silent = run(|_, _, _| String::new(), |_, _| None, |_| None, false);
    let none: Vec<Vec<Vec<Vec<u8>>>> = silent
        .iter()
        .map(|s| s.iter().map(|_| Vec::new()).collect())
        .collect();
    assert!(learned(&none).unwrap_err().contains("0 times"));
}

#[test]
fn a_dialect_file_round_trips_and_bad_ones_are_refused() {
    let d = Dialect::tutorial();
    assert_eq!(Dialect::parse(&d.to_string()), Ok(d));
    let irc = "# irc\nrelay: [{n}:{n}] <{who}> {text}\njoined: -\nleft: *** {who} left\ngreeting: hi {who}\necho: yes\nempty-lines: relayed\n";
    let parsed = Dialect::parse(irc).expect("parses");
    assert_eq!(Dialect::parse(&parsed.to_string()), Ok(parsed));
    for bad in [
        "joined: x",
        "relay: {text",
        "relay: {nope} {text}",
        "relay: no text",
        "echo: maybe\nrelay: {text}",
        "colour: red",
    ] {
        assert!(Dialect::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn lines_are_read_into_who_said_what_binding_names_in_order() {
    let d = Dialect::parse("relay: <{who}> {text}\njoined: * {who} joined\nleft: * {who} left")
        .unwrap();
    let said_by = BTreeMap::from([(b"hi".to_vec(), BTreeSet::from([0]))]);
    let cast = Cast {
        ports: vec![Some(40001), Some(40002), Some(40003)],
        said_by: &said_by,
        unjudged_departures: false,
        succession: BTreeSet::new(),
    };
    // c2 hears: bob joined (c3, never speaks), alice says hi (c1), bob left.
    let heard: Vec<Vec<u8>> = ["* bob joined", "<alice> hi", "* bob left"]
        .iter()
        .map(|l| l.as_bytes().to_vec())
        .collect();
    let want: Heard = vec![
        vec![],
        vec![
            (2, Said::Entered),
            (0, Said::Line(Rc::from(&b"hi"[..]))),
            (2, Said::Left),
        ],
        vec![],
    ];
    let lines: Vec<&[Vec<u8>]> = vec![&[], &heard, &[]];
    let got = d.heard(&lines, &cast, &want, |_| false).expect("read");
    assert_eq!(got, want);
    let stray = vec![b"what?".to_vec()];
    let lines: Vec<&[Vec<u8>]> = vec![&[], &stray, &[]];
    let e = Dialect::tutorial()
        .heard(&lines, &cast, &want, |_| false)
        .unwrap_err();
    assert!(
        e.what.contains("neither a relayed line nor a notice"),
        "{e}"
    );
    assert_eq!(e.symptom, Symptom::Unreadable);
    // A line a client said, heard without the frame: the server framed a read, not a line.
    let bare = vec![b"hi".to_vec()];
    let lines: Vec<&[Vec<u8>]> = vec![&[], &bare, &[]];
    let e = d.heard(&lines, &cast, &want, |_| false).unwrap_err();
    assert!(
        e.what.contains("without the frame") && e.what.contains("c1 said it"),
        "{e}"
    );
    assert_eq!(e.symptom, Symptom::Torn);
    assert!(
        Dialect::tutorial()
            .heard(&lines, &cast, &want, |m| m == 1)
            .is_ok()
    );
}

/// Found by a sweep of the adversary over the fixtures: a name the frame gives counts as that
/// sender's line taken, so an unnamed one that several said goes to the other sender.
#[test]
fn a_text_two_clients_said_goes_to_the_one_the_names_leave() {
    let d = Dialect::parse("relay: user{who}: {text}\njoined: user{who} joined").unwrap();
    let said_by = BTreeMap::from([(b"z".to_vec(), BTreeSet::from([0, 3]))]);
    let cast = Cast {
        ports: vec![Some(40001), Some(40002), Some(40003), Some(40004)],
        said_by: &said_by,
        unjudged_departures: false,
        succession: BTreeSet::new(),
    };
    let bytes =
        |lines: &[&str]| -> Vec<Vec<u8>> { lines.iter().map(|l| l.as_bytes().to_vec()).collect() };
    let z = |n: usize| (n, Said::Line(Rc::from(&b"z"[..])));
    let c1 = bytes(&["user2 joined", "user3 joined", "user4 joined", "user4: z"]);
    let c2 = bytes(&["user3 joined", "user4 joined", "user4: z", "user1: z"]);
    let want: Heard = vec![
        vec![
            (1, Said::Entered),
            (2, Said::Entered),
            (3, Said::Entered),
            z(3),
        ],
        vec![(2, Said::Entered), (3, Said::Entered), z(3), z(0)],
        vec![],
        vec![],
    ];
    let lines: Vec<&[Vec<u8>]> = vec![&c1, &c2, &[], &[]];
    assert_eq!(d.heard(&lines, &cast, &want, |_| false), Ok(want));
}

/// A server that names clients after their descriptors, with no notices: c3 takes the number
/// c2 had once c2 has gone, and its lines come under c2's old name. The first line only c3
/// said hands the name over; from then on a line both said is c3's. The same lines under the
/// name of a c2 still present stay c2's, and are a fault.
#[test]
fn a_departed_clients_name_passes_to_a_successor_and_to_no_one_present() {
    let d = Dialect::parse("relay: {who} say: {text}").unwrap();
    let said_by = BTreeMap::from([
        (b"first".to_vec(), BTreeSet::from([1])),
        (b"again".to_vec(), BTreeSet::from([1, 2])),
        (b"hello?".to_vec(), BTreeSet::from([2])),
    ]);
    let line = |n: usize, t: &[u8]| (n, Said::Line(Rc::from(t)));
    let want: Heard = vec![
        vec![
            line(1, b"first"),
            line(1, b"again"),
            line(2, b"hello?"),
            line(2, b"again"),
        ],
        vec![],
        vec![],
    ];
    let heard: Vec<Vec<u8>> = [
        "6 say: first",
        "6 say: again",
        "6 say: hello?",
        "6 say: again",
    ]
    .iter()
    .map(|l| l.as_bytes().to_vec())
    .collect();
    let lines: Vec<&[Vec<u8>]> = vec![&heard, &[], &[]];
    let cast = |succession: BTreeSet<(usize, usize)>| Cast {
        ports: vec![Some(40001), Some(40002), Some(40003)],
        said_by: &said_by,
        unjudged_departures: false,
        succession,
    };
    let gone = cast(BTreeSet::from([(1, 2)]));
    assert_eq!(d.heard(&lines, &gone, &want, |_| false), Ok(want.clone()));
    let present = cast(BTreeSet::new());
    let read = d.heard(&lines, &present, &want, |_| false).expect("read");
    assert_eq!(read[0][2], line(1, b"hello?"));
    // Where notices say who comes and goes, they hand names over, not the lines.
    let announced = Dialect::parse("relay: {who} say: {text}\njoined: {who} joined").unwrap();
    let read = announced
        .heard(&lines, &gone, &want, |_| false)
        .expect("read");
    assert_eq!(read[0][2], line(1, b"hello?"));
}

#[test]
fn succession_pairs_a_client_gone_with_each_that_joins_later() {
    use crate::session::Step;
    let steps = [
        Step::Join(0),
        Step::Exit(0),
        Step::Crowd(3),
        Step::Reset(1),
        Step::Join(3),
    ];
    // A crowd's newcomers (c2 and c3: c1 is in already) join after c1 left.
    assert_eq!(
        succession(&steps),
        BTreeSet::from([(0, 1), (0, 2), (0, 3), (1, 3)])
    );
}
