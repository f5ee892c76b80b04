//! The tutorial's exception table: `error`, `herror`, `gaierror`, `timeout`.
//!
//! One error type, [`SockError`], whose `Display` matches the text Python prints for the same
//! condition, so that a transcript reads like the tutorial's output.

use nix::errno::Errno;

/// A getaddrinfo failure, with glibc's (negative) EAI codes and `gai_strerror` texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Gai {
    /// EAI_NONAME (-2): the host name is unknown.
    NoName,
    /// EAI_AGAIN (-3): the resolver could not answer now.
    Again,
    /// EAI_FAIL (-4): the resolver failed for good.
    Fail,
    /// EAI_NODATA (-5): the host exists but has no address.
    NoData,
    /// EAI_FAMILY (-6): the address family is not supported.
    Family,
    /// EAI_SERVICE (-8): the service (port) is not supported for the socket type.
    Service,
    /// EAI_ADDRFAMILY (-9): the host has no address of the requested family.
    AddrFamily,
    /// EAI_SYSTEM (-11) or any other code: the resolver failed.
    System,
}

impl Gai {
    /// glibc's numeric EAI code (negative), as Python's `gaierror.errno`.
    pub fn code(self) -> i32 {
        match self {
            Gai::NoName => -2,
            Gai::Again => -3,
            Gai::Fail => -4,
            Gai::NoData => -5,
            Gai::Family => -6,
            Gai::Service => -8,
            Gai::AddrFamily => -9,
            Gai::System => -11,
        }
    }

    /// glibc's `gai_strerror` text for the code.
    pub fn message(self) -> &'static str {
        match self {
            Gai::NoName => "Name or service not known",
            Gai::Again => "Temporary failure in name resolution",
            Gai::Fail => "Non-recoverable failure in name resolution",
            Gai::NoData => "No address associated with hostname",
            Gai::Family => "ai_family not supported",
            Gai::Service => "Servname not supported for ai_socktype",
            Gai::AddrFamily => "Address family for hostname not supported",
            Gai::System => "System error",
        }
    }

    /// The variant for a glibc EAI code; unknown codes become [`Gai::System`].
    pub fn from_code(code: i32) -> Gai {
        match code {
            -2 => Gai::NoName,
            -3 => Gai::Again,
            -4 => Gai::Fail,
            -5 => Gai::NoData,
            -6 => Gai::Family,
            -8 => Gai::Service,
            -9 => Gai::AddrFamily,
            _ => Gai::System,
        }
    }
}

/// `h_errno` HOST_NOT_FOUND, the code Python's `herror` carries for an unknown address.
pub const HERROR_HOST_NOT_FOUND: i32 = 1;

/// Every failure of the socket API, in the tutorial's four classes plus Python's `ValueError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SockError {
    /// `socket.error` (OSError): a failing call and its errno.
    #[error("[Errno {}] {}", *.0 as i32, .0.desc())]
    Error(Errno),
    /// `socket.herror`: a host look-up by address failed (h_errno and its text).
    #[error("[Errno {code}] {message}")]
    Herror {
        /// The `h_errno` value, e.g. [`HERROR_HOST_NOT_FOUND`].
        code: i32,
        /// `hstrerror` text, e.g. `Unknown host`.
        message: &'static str,
    },
    /// `socket.gaierror`: getaddrinfo could not resolve a host name.
    #[error("[Errno {}] {}", .0.code(), .0.message())]
    Gaierror(Gai),
    /// `socket.timeout`: the socket's own timeout expired.
    #[error("timed out")]
    Timeout,
    /// Python's `ValueError`: an argument no call could accept (a negative or NaN timeout, a
    /// malformed address). Nothing was sent to the kernel.
    #[error("{0}")]
    Value(&'static str),
}

impl SockError {
    /// The errno or EAI code, as Python's `e.errno`; `None` for `timeout` and `ValueError`.
    pub fn errno(&self) -> Option<i32> {
        match self {
            SockError::Error(e) => Some(*e as i32),
            SockError::Herror { code, .. } => Some(*code),
            SockError::Gaierror(g) => Some(g.code()),
            SockError::Timeout | SockError::Value(_) => None,
        }
    }

    /// The Python class name of this error (`error`, `herror`, `gaierror`, `timeout`, `ValueError`).
    pub fn class(&self) -> &'static str {
        match self {
            SockError::Error(_) => "error",
            SockError::Herror { .. } => "herror",
            SockError::Gaierror(_) => "gaierror",
            SockError::Timeout => "timeout",
            SockError::Value(_) => "ValueError",
        }
    }
}

impl From<Errno> for SockError {
    fn from(e: Errno) -> Self {
        SockError::Error(e)
    }
}

impl From<SockError> for std::io::Error {
    fn from(e: SockError) -> Self {
        match e {
            SockError::Error(errno) => std::io::Error::from_raw_os_error(errno as i32),
            SockError::Timeout => std::io::Error::new(std::io::ErrorKind::TimedOut, e),
            other => std::io::Error::other(other),
        }
    }
}

/// The symbolic name of an errno (`EAGAIN`), as scenarios and transcripts print it.
pub fn errno_name(e: Errno) -> &'static str {
    // nix's Debug output is exactly the symbolic name, but it allocates; the table below covers
    // every errno the socket layer can produce and falls back to Debug-free text otherwise.
    match e {
        Errno::EAGAIN => "EAGAIN",
        Errno::EINTR => "EINTR",
        Errno::EBADF => "EBADF",
        Errno::EINVAL => "EINVAL",
        Errno::EPIPE => "EPIPE",
        Errno::ECONNRESET => "ECONNRESET",
        Errno::ECONNREFUSED => "ECONNREFUSED",
        Errno::ECONNABORTED => "ECONNABORTED",
        Errno::EINPROGRESS => "EINPROGRESS",
        Errno::EALREADY => "EALREADY",
        Errno::EISCONN => "EISCONN",
        Errno::ENOTCONN => "ENOTCONN",
        Errno::ETIMEDOUT => "ETIMEDOUT",
        Errno::ENETUNREACH => "ENETUNREACH",
        Errno::EHOSTUNREACH => "EHOSTUNREACH",
        Errno::EADDRINUSE => "EADDRINUSE",
        Errno::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        Errno::EACCES => "EACCES",
        Errno::EPERM => "EPERM",
        Errno::EMFILE => "EMFILE",
        Errno::ENFILE => "ENFILE",
        Errno::EMSGSIZE => "EMSGSIZE",
        Errno::EDESTADDRREQ => "EDESTADDRREQ",
        Errno::EOPNOTSUPP => "EOPNOTSUPP",
        Errno::ENOPROTOOPT => "ENOPROTOOPT",
        Errno::EAFNOSUPPORT => "EAFNOSUPPORT",
        Errno::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        Errno::ESOCKTNOSUPPORT => "ESOCKTNOSUPPORT",
        Errno::ENOTSOCK => "ENOTSOCK",
        Errno::EEXIST => "EEXIST",
        Errno::ENOENT => "ENOENT",
        Errno::EDEADLK => "EDEADLK",
        Errno::EIO => "EIO",
        Errno::ESPIPE => "ESPIPE",
        Errno::ENOTDIR => "ENOTDIR",
        Errno::ELOOP => "ELOOP",
        Errno::ENAMETOOLONG => "ENAMETOOLONG",
        _ => "E?",
    }
}

/// The errno for a symbolic name, the inverse of [`errno_name`].
pub fn errno_from_name(name: &str) -> Option<Errno> {
    (1..134)
        .map(Errno::from_raw)
        .find(|e| errno_name(*e) == name && *e != Errno::UnknownErrno)
}
