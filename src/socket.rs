//! The tutorial's socket API, with Python's names and meaning, on any [`Kernel`].
//!
//! Descriptors are always non-blocking underneath; blocking calls and `settimeout` are built the
//! way CPython builds them: try the call, and on EAGAIN wait with poll for the remaining time,
//! retrying on EINTR (PEP 475). So a timeout is the same on the kernel and in the simulator,
//! where waiting moves virtual time instead of sleeping.

use std::cell::RefCell;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use nix::errno::Errno;

use crate::addr::{Family, SockAddr, SockType, Target};
use crate::error::SockError;
use crate::kernel::{Events, Fd, Kernel, PollFd, Shutdown, SockOpt};

/// A kernel shared by several sockets (one thread; the simulator is single-threaded by design).
pub type Net = Rc<RefCell<dyn Kernel>>;

/// Wraps a kernel for sharing between sockets.
pub fn share<K: Kernel + 'static>(kernel: K) -> Rc<RefCell<K>> {
    Rc::new(RefCell::new(kernel))
}

/// Most tries of one blocking call whose descriptor polls ready but refuses it (EAGAIN); then
/// the call gives EAGAIN rather than spin.
pub const MAX_ATTEMPTS_PER_CALL: usize = 4096;

/// Longest timeout `settimeout` accepts, in seconds (Python's limit is the C `time_t` range; a
/// smaller bound keeps virtual-time arithmetic far from overflow).
pub const MAX_TIMEOUT_SECS: f64 = 1e9;

/// Resolves a `(host, port)` or path for a socket of `family`, as Python's address parsing does.
pub fn resolve(net: &Net, family: Family, target: &Target) -> Result<SockAddr, SockError> {
    match (target, family) {
        (Target::Path(p), Family::Unix) => Ok(SockAddr::Unix(p.clone())),
        (Target::Path(_), _) => Err(SockError::Value("an AF_INET address must be (host, port)")),
        (Target::Host(..), Family::Unix) => {
            Err(SockError::Value("an AF_UNIX address must be a path"))
        }
        (Target::Host(host, port), _) => {
            let ips = net
                .borrow_mut()
                .resolve(host, family)
                .map_err(SockError::Gaierror)?;
            let ip: IpAddr = ips[0];
            Ok(SockAddr::Inet(SocketAddr::new(ip, *port)))
        }
    }
}

/// Python's `socket.gethostbyaddr` (name only): `herror` for an unknown address.
pub fn gethostbyaddr(net: &Net, ip: IpAddr) -> Result<String, SockError> {
    net.borrow_mut().host_by_addr(ip)
}

/// A socket object, as the tutorial's table describes it.
pub struct Socket {
    net: Net,
    fd: Option<Fd>,
    family: Family,
    ty: SockType,
    /// `None`: blocking; `Some(0)`: non-blocking; otherwise the timeout.
    timeout: Option<Duration>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "<socket fd={} family={:?} type={:?}>",
            self.fileno(),
            self.family,
            self.ty
        )
    }
}

impl Socket {
    /// `socket.socket(family, type)`: a new blocking socket.
    pub fn new(net: &Net, family: Family, ty: SockType) -> Result<Socket, SockError> {
        let fd = net.borrow_mut().socket(family, ty)?;
        Ok(Socket::from_fd(net, fd, family, ty))
    }

    /// `socket.socketpair(AF_UNIX, type)`.
    pub fn pair(net: &Net, ty: SockType) -> Result<(Socket, Socket), SockError> {
        let (a, b) = net.borrow_mut().socketpair(ty)?;
        Ok((
            Socket::from_fd(net, a, Family::Unix, ty),
            Socket::from_fd(net, b, Family::Unix, ty),
        ))
    }

    fn from_fd(net: &Net, fd: Fd, family: Family, ty: SockType) -> Socket {
        Socket {
            net: Rc::clone(net),
            fd: Some(fd),
            family,
            ty,
            timeout: None,
        }
    }

    fn fd(&self) -> Result<Fd, SockError> {
        self.fd.ok_or(SockError::Error(Errno::EBADF))
    }

    /// The address family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// The socket type.
    pub fn sock_type(&self) -> SockType {
        self.ty
    }

    /// `s.fileno()`: the descriptor, or -1 after close.
    pub fn fileno(&self) -> i32 {
        self.fd.map_or(-1, |f| f.0)
    }

    /// `s.settimeout(t)`: `None` blocks for ever, `Some(0.0)` never blocks. Negative, NaN and
    /// absurdly large values are a `ValueError`, as in Python.
    pub fn settimeout(&mut self, secs: Option<f64>) -> Result<(), SockError> {
        self.fd()?;
        self.timeout = match secs {
            None => None,
            Some(s) if s.is_nan() => {
                return Err(SockError::Value("Invalid value NaN (not a number)"));
            }
            Some(s) if s < 0.0 => return Err(SockError::Value("Timeout value out of range")),
            Some(s) if s > MAX_TIMEOUT_SECS => {
                return Err(SockError::Value("timeout doesn't fit into C timeval"));
            }
            Some(s) => Some(Duration::from_secs_f64(s)),
        };
        Ok(())
    }

    /// `s.gettimeout()`: seconds, or `None` for blocking.
    pub fn gettimeout(&self) -> Option<f64> {
        self.timeout.map(|d| d.as_secs_f64())
    }

    /// `s.setblocking(flag)`: `false` ≡ `settimeout(0)`, `true` ≡ `settimeout(None)`.
    pub fn setblocking(&mut self, blocking: bool) -> Result<(), SockError> {
        self.settimeout(if blocking { None } else { Some(0.0) })
    }

    /// Runs a call with Python's blocking/timeout semantics: retry on EINTR, wait on EAGAIN.
    fn call<T>(
        &self,
        wait_for: Events,
        op: impl FnMut(&mut dyn Kernel, Fd) -> Result<T, Errno>,
    ) -> Result<T, SockError> {
        self.call_until(self.deadline(), wait_for, op)
    }

    /// When the socket's timeout, started now, runs out (`None`: blocking, no deadline).
    fn deadline(&self) -> Option<Duration> {
        self.timeout
            .map(|t| self.net.borrow().now().saturating_add(t))
    }

    /// [`Socket::call`] against a given deadline. Bounded: a descriptor that polls ready yet
    /// refuses the call [`MAX_ATTEMPTS_PER_CALL`] times in a row (an AF_UNIX datagram socket
    /// sending to a full receiver does: it always polls writable) gives EAGAIN, not a spin.
    fn call_until<T>(
        &self,
        deadline: Option<Duration>,
        wait_for: Events,
        mut op: impl FnMut(&mut dyn Kernel, Fd) -> Result<T, Errno>,
    ) -> Result<T, SockError> {
        let fd = self.fd()?;
        for _ in 0..MAX_ATTEMPTS_PER_CALL {
            // Bind the result first: the kernel borrow must end before `wait` borrows again.
            let result = op(&mut *self.net.borrow_mut(), fd);
            match result {
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) if self.timeout != Some(Duration::ZERO) => {
                    self.wait(fd, wait_for, deadline)?
                }
                other => return other.map_err(SockError::Error),
            }
        }
        Err(SockError::Error(Errno::EAGAIN))
    }

    /// Waits until `fd` reports `events` (or ERR/HUP), or the deadline passes (`timeout`).
    fn wait(&self, fd: Fd, events: Events, deadline: Option<Duration>) -> Result<(), SockError> {
        loop {
            let mut k = self.net.borrow_mut();
            let remaining = match deadline {
                None => None,
                Some(d) => {
                    let now = k.now();
                    if now >= d {
                        return Err(SockError::Timeout);
                    }
                    Some(d - now)
                }
            };
            let mut entry = [PollFd::new(fd, events)];
            match k.poll(&mut entry, remaining) {
                Ok(0) => return Err(SockError::Timeout),
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(SockError::Error(e)),
            }
        }
    }

    /// `s.bind(address)`.
    pub fn bind(&self, target: &Target) -> Result<(), SockError> {
        let addr = resolve(&self.net, self.family, target)?;
        self.net.borrow_mut().bind(self.fd()?, &addr)?;
        Ok(())
    }

    /// `s.listen(backlog)`.
    pub fn listen(&self, backlog: u32) -> Result<(), SockError> {
        self.net.borrow_mut().listen(self.fd()?, backlog)?;
        Ok(())
    }

    /// `s.accept()`: the new (blocking) socket and the peer's address.
    pub fn accept(&self) -> Result<(Socket, SockAddr), SockError> {
        let (fd, addr) = self.call(Events::IN, |k, fd| k.accept(fd))?;
        Ok((Socket::from_fd(&self.net, fd, self.family, self.ty), addr))
    }

    /// `s.connect(address)`.
    pub fn connect(&self, target: &Target) -> Result<(), SockError> {
        let addr = resolve(&self.net, self.family, target)?;
        self.connect_addr(&addr)
    }

    fn connect_addr(&self, addr: &SockAddr) -> Result<(), SockError> {
        let fd = self.fd()?;
        let first = self.net.borrow_mut().connect(fd, addr);
        match first {
            Ok(()) => Ok(()),
            Err(Errno::EINPROGRESS | Errno::EAGAIN) if self.timeout != Some(Duration::ZERO) => {
                let deadline = self.deadline();
                self.wait(fd, Events::OUT, deadline)?;
                match self.net.borrow_mut().getsockopt(fd, SockOpt::Error)? {
                    0 => Ok(()),
                    e => Err(SockError::Error(Errno::from_raw(e))),
                }
            }
            Err(Errno::EINTR) => self.connect_addr(addr),
            Err(e) => Err(SockError::Error(e)),
        }
    }

    /// `s.connect_ex(address)`: 0 or the errno instead of raising (EAGAIN when the socket's own
    /// timeout expires); a bad host name still raises `gaierror`.
    pub fn connect_ex(&self, target: &Target) -> Result<i32, SockError> {
        let addr = resolve(&self.net, self.family, target)?;
        match self.connect_addr(&addr) {
            Ok(()) => Ok(0),
            Err(SockError::Error(e)) => Ok(e as i32),
            Err(SockError::Timeout) => Ok(Errno::EAGAIN as i32),
            Err(other) => Err(other),
        }
    }

    /// `s.recv(bufsize)`: an empty result is end of stream (or an empty datagram).
    pub fn recv(&self, bufsize: usize) -> Result<Vec<u8>, SockError> {
        let mut buf = vec![0; bufsize];
        let n = self.recv_into(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// `s.recv_into(buffer)`.
    pub fn recv_into(&self, buf: &mut [u8]) -> Result<usize, SockError> {
        self.call(Events::IN, |k, fd| k.recv(fd, buf))
    }

    /// `s.send(bytes)`: how many bytes the kernel took (possibly fewer than given).
    pub fn send(&self, data: &[u8]) -> Result<usize, SockError> {
        self.call(Events::OUT, |k, fd| k.send(fd, data))
    }

    /// `s.sendall(bytes)`: sends everything or fails; the timeout bounds the *total* time.
    pub fn sendall(&self, data: &[u8]) -> Result<(), SockError> {
        let deadline = self.deadline();
        let mut sent = 0;
        // Bounded: every pass sends at least one byte.
        while sent < data.len() {
            sent += self.call_until(deadline, Events::OUT, |k, fd| k.send(fd, &data[sent..]))?;
        }
        Ok(())
    }

    /// `s.sendto(bytes, MSG_DONTWAIT, address)`: one try, never waiting, whatever the timeout.
    pub fn sendto_dontwait(&self, data: &[u8], target: &Target) -> Result<usize, SockError> {
        let addr = resolve(&self.net, self.family, target)?;
        Ok(self.net.borrow_mut().sendto(self.fd()?, data, &addr)?)
    }

    /// `s.recvfrom(bufsize)`: the data and the sender (None where the type has no address).
    pub fn recvfrom(&self, bufsize: usize) -> Result<(Vec<u8>, Option<SockAddr>), SockError> {
        let mut buf = vec![0; bufsize];
        let (n, from) = self.call(Events::IN, |k, fd| k.recvfrom(fd, &mut buf))?;
        buf.truncate(n);
        Ok((buf, from))
    }

    /// `s.sendto(bytes, address)`.
    pub fn sendto(&self, data: &[u8], target: &Target) -> Result<usize, SockError> {
        let addr = resolve(&self.net, self.family, target)?;
        self.call(Events::OUT, |k, fd| k.sendto(fd, data, &addr))
    }

    /// `s.shutdown(how)`.
    pub fn shutdown(&self, how: Shutdown) -> Result<(), SockError> {
        self.net.borrow_mut().shutdown(self.fd()?, how)?;
        Ok(())
    }

    /// `s.close()`: idempotent, as in Python (a second close does nothing).
    pub fn close(&mut self) -> Result<(), SockError> {
        match self.fd.take() {
            Some(fd) => Ok(self.net.borrow_mut().close(fd)?),
            None => Ok(()),
        }
    }

    /// `s.getsockname()`.
    pub fn getsockname(&self) -> Result<SockAddr, SockError> {
        Ok(self.net.borrow_mut().getsockname(self.fd()?)?)
    }

    /// `s.getpeername()`.
    pub fn getpeername(&self) -> Result<SockAddr, SockError> {
        Ok(self.net.borrow_mut().getpeername(self.fd()?)?)
    }

    /// `s.setsockopt(level, name, value)`.
    pub fn setsockopt(&self, opt: SockOpt, value: i32) -> Result<(), SockError> {
        Ok(self.net.borrow_mut().setsockopt(self.fd()?, opt, value)?)
    }

    /// `s.getsockopt(level, name)`.
    pub fn getsockopt(&self, opt: SockOpt) -> Result<i32, SockError> {
        Ok(self.net.borrow_mut().getsockopt(self.fd()?, opt)?)
    }

    /// `s.makefile()`: buffered reading (`BufRead`, `lines()`) and writing over the socket.
    /// Like Python's, it needs a blocking or timeout socket.
    pub fn makefile(&self) -> Result<SocketFile<'_>, SockError> {
        self.fd()?;
        if self.timeout == Some(Duration::ZERO) {
            return Err(SockError::Value(
                "makefile needs a blocking or timeout socket",
            ));
        }
        Ok(SocketFile {
            reader: BufReader::new(SocketIo(self)),
        })
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // Python closes a collected socket too; a failure here has no one to report to.
        if let (Some(fd), Ok(mut k)) = (self.fd.take(), self.net.try_borrow_mut()) {
            let _ = k.close(fd);
        }
    }
}

/// Read/Write over a socket, the unbuffered half of [`SocketFile`].
struct SocketIo<'a>(&'a Socket);

impl Read for SocketIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.0.recv_into(buf)?)
    }
}

/// What [`Socket::makefile`] returns: a buffered reader that also writes (each write is a
/// `sendall`, so nothing is ever half-sent).
pub struct SocketFile<'a> {
    reader: BufReader<SocketIo<'a>>,
}

impl Read for SocketFile<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

impl BufRead for SocketFile<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.reader.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.reader.consume(amt)
    }
}

impl Write for SocketFile<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.reader.get_ref().0.sendall(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
