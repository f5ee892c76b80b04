//! The room's wire protocol, as the server speaks it, parsed: one place that knows the form of
//! `<YYYY-mm-dd HH:MM:SS> ('<ip>', <port>) say: <text>` and of the `entered room` / `left room`
//! notices. Shared by the simulator's checker and `selectlab check`.

use std::net::{IpAddr, SocketAddr};

/// One line the server sent, understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notice<'a> {
    /// The `('<ip>', <port>)` part, as sent.
    pub who: &'a [u8],
    /// What it says about them.
    pub what: What<'a>,
}

/// What a line says about a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What<'a> {
    /// `say: <text>`.
    Say(&'a [u8]),
    /// `entered room`.
    Entered,
    /// `left room`.
    Left,
}

/// Bytes of the timestamp and the space after it.
const STAMP_BYTES: usize = "2026-01-01 00:00:00 ".len();

/// A line (without its `\n`) in the protocol's form, or `None`.
pub fn parse(line: &[u8]) -> Option<Notice<'_>> {
    let (stamp, rest) = line.split_at_checked(STAMP_BYTES)?;
    if !is_stamp(stamp) {
        return None;
    }
    let close = rest.iter().position(|&b| b == b')')?;
    let (who, tail) = rest.split_at(close + 1);
    if !who.starts_with(b"('") {
        return None;
    }
    let what = match tail {
        b" entered room" => What::Entered,
        b" left room" => What::Left,
        _ => What::Say(tail.strip_prefix(b" say: ")?),
    };
    Some(Notice { who, what })
}

/// `YYYY-mm-dd HH:MM:SS ` (digits where digits go).
fn is_stamp(s: &[u8]) -> bool {
    s.iter()
        .zip(b"dddd-dd-dd dd:dd:dd ")
        .all(|(&c, &form)| match form {
            b'd' => c.is_ascii_digit(),
            _ => c == form,
        })
}

/// The `('<ip>', <port>)` form of an address, as the tutorial's Python prints a peer.
pub fn who(addr: SocketAddr) -> String {
    format!("('{}', {})", addr.ip(), addr.port())
}

/// The address in a `who` part: `('<ip>', <port>)`, or Python's IPv6 form
/// `('<ip>', <port>, <flowinfo>, <scope>)`.
pub fn parse_who(who: &[u8]) -> Option<SocketAddr> {
    let inner = std::str::from_utf8(who.strip_prefix(b"('")?.strip_suffix(b")")?).ok()?;
    let (ip, rest) = inner.split_once("', ")?;
    let port = rest.split(", ").next()?;
    Some(SocketAddr::new(
        ip.parse::<IpAddr>().ok()?,
        port.parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_forms_parse_and_others_do_not() {
        let say = parse(b"2026-01-01 00:00:07 ('127.0.0.1', 4000) say: hi) say: x").unwrap();
        assert_eq!(say.who, b"('127.0.0.1', 4000)");
        assert_eq!(say.what, What::Say(b"hi) say: x"));
        let came = parse(b"2026-01-01 00:00:07 ('::1', 4000, 0, 0) entered room").unwrap();
        assert_eq!(came.what, What::Entered);
        assert_eq!(parse_who(came.who), Some("[::1]:4000".parse().unwrap()));
        let left = parse(b"2026-12-31 23:59:59 ('10.0.0.1', 1) left room").unwrap();
        assert_eq!(left.what, What::Left);
        for bad in [
            &b"<user5> hi"[..],
            b"2026-01-01 00:00:07 ('127.0.0.1', 4000) shouts: hi",
            b"2026-01-01T00:00:07 ('127.0.0.1', 4000) say: hi",
            b"2026-01-01 00:00:07 127.0.0.1:4000 say: hi",
            b"2026-01-01 00:00:07",
            b"",
        ] {
            assert_eq!(parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn who_round_trips() {
        for addr in ["127.0.0.1:33333", "[::1]:9"] {
            let addr: SocketAddr = addr.parse().unwrap();
            assert_eq!(parse_who(who(addr).as_bytes()), Some(addr));
        }
        assert_eq!(parse_who(b"('127.0.0.1', x)"), None);
    }
}
