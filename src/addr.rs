//! Socket families, types and addresses, printed the way Python prints them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use crate::error::SockError;

/// Longest AF_UNIX path, in bytes (mirrors `sizeof(sun_path) - 1` on Linux).
pub const UNIX_PATH_MAX_BYTES: usize = 107;

/// Address family (`socket.AF_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// AF_INET: IPv4.
    Inet,
    /// AF_INET6: IPv6.
    Inet6,
    /// AF_UNIX: local sockets named by paths (or unnamed, from socketpair).
    Unix,
}

/// Socket type (`socket.SOCK_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SockType {
    /// SOCK_STREAM: a reliable byte stream (TCP, or AF_UNIX stream).
    Stream,
    /// SOCK_DGRAM: datagrams with boundaries (UDP, or AF_UNIX datagram).
    Dgram,
    /// SOCK_SEQPACKET: reliable, connected, with record boundaries (AF_UNIX).
    SeqPacket,
    /// SOCK_RAW: raw IP (ICMP); kernel transport only, and privileged.
    Raw,
}

impl SockType {
    /// Whether this type keeps message boundaries.
    pub fn is_message(self) -> bool {
        !matches!(self, SockType::Stream)
    }
}

/// A socket address: an IP endpoint or an AF_UNIX path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SockAddr {
    /// An IPv4 or IPv6 address and port.
    Inet(SocketAddr),
    /// An AF_UNIX path.
    Unix(PathBuf),
    /// An AF_UNIX socket with no name (from socketpair, or never bound).
    UnixUnnamed,
}

impl SockAddr {
    /// The family this address belongs to.
    pub fn family(&self) -> Family {
        match self {
            SockAddr::Inet(SocketAddr::V4(_)) => Family::Inet,
            SockAddr::Inet(SocketAddr::V6(_)) => Family::Inet6,
            SockAddr::Unix(_) | SockAddr::UnixUnnamed => Family::Unix,
        }
    }

    /// The unspecified ("not yet bound") address of a family: `0.0.0.0:0`, `[::]:0`, unnamed.
    pub fn unspecified(family: Family) -> SockAddr {
        match family {
            Family::Inet => SockAddr::Inet(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)),
            Family::Inet6 => SockAddr::Inet(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)),
            Family::Unix => SockAddr::UnixUnnamed,
        }
    }

    /// The IP endpoint, if this is one.
    pub fn inet(&self) -> Option<SocketAddr> {
        match self {
            SockAddr::Inet(a) => Some(*a),
            _ => None,
        }
    }
}

impl fmt::Display for SockAddr {
    /// Python's repr: `('127.0.0.1', 33333)`, `('::1', 33333, 0, 0)`, `'/tmp/s'`, `''`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SockAddr::Inet(SocketAddr::V4(a)) => write!(f, "('{}', {})", a.ip(), a.port()),
            SockAddr::Inet(SocketAddr::V6(a)) => write!(
                f,
                "('{}', {}, {}, {})",
                a.ip(),
                a.port(),
                a.flowinfo(),
                a.scope_id()
            ),
            SockAddr::Unix(p) => write!(f, "'{}'", p.display()),
            SockAddr::UnixUnnamed => write!(f, "''"),
        }
    }
}

/// An address as a caller gives it, before name resolution: Python's `(host, port)` or a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `(host, port)`: the host is a numeric address or a name to resolve.
    Host(String, u16),
    /// An AF_UNIX path.
    Path(PathBuf),
}

impl Target {
    /// A `(host, port)` target.
    pub fn host(host: &str, port: u16) -> Target {
        Target::Host(host.to_string(), port)
    }

    /// Parses `host:port`, `[v6]:port` or `unix:/path`, as the command line takes them.
    pub fn parse(text: &str) -> Result<Target, SockError> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() || path.len() > UNIX_PATH_MAX_BYTES {
                return Err(SockError::Value("AF_UNIX path must be 1 to 107 bytes"));
            }
            return Ok(Target::Path(PathBuf::from(path)));
        }
        if let Ok(sa) = text.parse::<SocketAddr>() {
            return Ok(Target::Host(sa.ip().to_string(), sa.port()));
        }
        let (host, port) = text.rsplit_once(':').ok_or(SockError::Value(
            "address must be host:port, [v6]:port or unix:/path",
        ))?;
        let port = port
            .parse::<u16>()
            .map_err(|_| SockError::Value("port must be an integer from 0 to 65535"))?;
        if host.is_empty() || host.contains(':') {
            return Err(SockError::Value(
                "address must be host:port, [v6]:port or unix:/path",
            ));
        }
        Ok(Target::Host(host.to_string(), port))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Host(h, p) if h.contains(':') => write!(f, "[{h}]:{p}"),
            Target::Host(h, p) => write!(f, "{h}:{p}"),
            Target::Path(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_command_line_forms() {
        assert_eq!(
            Target::parse("127.0.0.1:33333"),
            Ok(Target::host("127.0.0.1", 33333))
        );
        assert_eq!(Target::parse("[::1]:80"), Ok(Target::host("::1", 80)));
        assert_eq!(
            Target::parse("localhost:0"),
            Ok(Target::host("localhost", 0))
        );
        assert_eq!(
            Target::parse("unix:/tmp/s"),
            Ok(Target::Path(PathBuf::from("/tmp/s")))
        );
    }

    #[test]
    fn rejects_bad_addresses_with_a_value_error() {
        for bad in [
            "",
            "nocolon",
            "host:",
            "host:99999",
            "host:-1",
            ":80",
            "::1:80",
            "unix:",
        ] {
            assert!(
                matches!(Target::parse(bad), Err(SockError::Value(_))),
                "{bad:?}"
            );
        }
        let long = format!("unix:/{}", "x".repeat(UNIX_PATH_MAX_BYTES));
        assert!(matches!(Target::parse(&long), Err(SockError::Value(_))));
    }

    #[test]
    fn prints_addresses_as_python_does() {
        let v4 = SockAddr::Inet("127.0.0.1:5".parse().unwrap());
        assert_eq!(v4.to_string(), "('127.0.0.1', 5)");
        let v6 = SockAddr::Inet("[::1]:5".parse().unwrap());
        assert_eq!(v6.to_string(), "('::1', 5, 0, 0)");
        assert_eq!(SockAddr::UnixUnnamed.to_string(), "''");
    }
}
