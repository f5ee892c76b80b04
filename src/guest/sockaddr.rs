//! `struct sockaddr_*` bytes, as a guest program passes them and Linux lays them out, to and
//! from [`SockAddr`].

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::PathBuf;

use nix::errno::Errno;

use crate::addr::SockAddr;

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
/// `sizeof(struct sockaddr_in)`.
const SOCKADDR_IN_BYTES: usize = 16;
/// `sizeof(struct sockaddr_in6)`.
const SOCKADDR_IN6_BYTES: usize = 28;
/// Offset of `sun_path` in `struct sockaddr_un`.
const SUN_PATH_OFFSET: usize = 2;

/// Parses an address a guest passed (bind, connect, sendto). Too short is EINVAL, an unknown
/// family EAFNOSUPPORT, as Linux answers; an abstract AF_UNIX name is refused by the caller
/// (EOPNOTSUPP here).
pub fn parse(bytes: &[u8]) -> Result<SockAddr, Errno> {
    let family = u16::from_le_bytes(*bytes.first_chunk::<2>().ok_or(Errno::EINVAL)?);
    match family {
        AF_INET => {
            let b = bytes.get(..SOCKADDR_IN_BYTES).ok_or(Errno::EINVAL)?;
            let port = u16::from_be_bytes([b[2], b[3]]);
            let ip = Ipv4Addr::new(b[4], b[5], b[6], b[7]);
            Ok(SockAddr::Inet(SocketAddr::V4(SocketAddrV4::new(ip, port))))
        }
        AF_INET6 => {
            let b = bytes.get(..SOCKADDR_IN6_BYTES).ok_or(Errno::EINVAL)?;
            let port = u16::from_be_bytes([b[2], b[3]]);
            let flow = u32::from_be_bytes(b[4..8].try_into().expect("4 bytes"));
            let ip: [u8; 16] = b[8..24].try_into().expect("16 bytes");
            let scope = u32::from_le_bytes(b[24..28].try_into().expect("4 bytes"));
            let v6 = SocketAddrV6::new(Ipv6Addr::from(ip), port, flow, scope);
            Ok(SockAddr::Inet(SocketAddr::V6(v6)))
        }
        AF_UNIX => {
            let path = &bytes[SUN_PATH_OFFSET.min(bytes.len())..];
            match path.first() {
                None => Ok(SockAddr::UnixUnnamed),
                Some(0) => Err(Errno::EOPNOTSUPP),
                Some(_) => {
                    let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
                    let text = std::str::from_utf8(&path[..end]).map_err(|_| Errno::EINVAL)?;
                    Ok(SockAddr::Unix(PathBuf::from(text)))
                }
            }
        }
        _ => Err(Errno::EAFNOSUPPORT),
    }
}

/// The bytes Linux would write for `addr` (getsockname, accept, recvfrom).
pub fn encode(addr: &SockAddr) -> Vec<u8> {
    match addr {
        SockAddr::Inet(SocketAddr::V4(v4)) => {
            let mut b = vec![0; SOCKADDR_IN_BYTES];
            b[..2].copy_from_slice(&AF_INET.to_le_bytes());
            b[2..4].copy_from_slice(&v4.port().to_be_bytes());
            b[4..8].copy_from_slice(&v4.ip().octets());
            b
        }
        SockAddr::Inet(SocketAddr::V6(v6)) => {
            let mut b = vec![0; SOCKADDR_IN6_BYTES];
            b[..2].copy_from_slice(&AF_INET6.to_le_bytes());
            b[2..4].copy_from_slice(&v6.port().to_be_bytes());
            b[4..8].copy_from_slice(&v6.flowinfo().to_be_bytes());
            b[8..24].copy_from_slice(&v6.ip().octets());
            b[24..28].copy_from_slice(&v6.scope_id().to_le_bytes());
            b
        }
        SockAddr::Unix(path) => {
            let mut b = AF_UNIX.to_le_bytes().to_vec();
            b.extend_from_slice(path.as_os_str().as_encoded_bytes());
            b.push(0);
            b
        }
        SockAddr::UnixUnnamed => AF_UNIX.to_le_bytes().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_through_linux_layout() {
        for text in ["127.0.0.1:8080", "[::1]:53"] {
            let a = SockAddr::Inet(text.parse().unwrap());
            assert_eq!(parse(&encode(&a)), Ok(a));
        }
        let unix = SockAddr::Unix(PathBuf::from("/tmp/chat.sock"));
        assert_eq!(parse(&encode(&unix)), Ok(unix));
        assert_eq!(
            parse(&encode(&SockAddr::UnixUnnamed)),
            Ok(SockAddr::UnixUnnamed)
        );
    }

    #[test]
    fn short_or_foreign_addresses_are_errors() {
        assert_eq!(parse(&[2, 0, 0]), Err(Errno::EINVAL));
        assert_eq!(parse(&[]), Err(Errno::EINVAL));
        assert_eq!(parse(&[16, 0, 0, 0]), Err(Errno::EAFNOSUPPORT));
        assert_eq!(parse(&[1, 0, 0, b'x']), Err(Errno::EOPNOTSUPP));
    }
}
