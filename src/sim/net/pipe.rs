//! Pipes: a byte buffer with a read end and a write end.

use nix::errno::Errno;

use crate::kernel::{Events, Fd};
use crate::sim::Id;
use crate::sim::Sim;
use crate::sim::state::*;

use super::{Chosen, copy_out};

impl Sim {
    pub(in crate::sim) fn sim_pipe(&mut self) -> Result<(Fd, Fd), Errno> {
        self.check_fds_available(2)?;
        let id = self.pipes.insert(Pipe {
            readers: 1,
            writers: 1,
            ..Pipe::default()
        });
        Ok((
            self.open_fd(Object::PipeRead(id))?,
            self.open_fd(Object::PipeWrite(id))?,
        ))
    }

    /// A descriptor for the read end of a console's pipe, written outside the simulation.
    /// With `contents`, the pipe holds them and its write end is closed: they are read, then
    /// end of file. Without, the write end is held open and never written: a terminal where
    /// nobody types, never readable, where a read blocks (EAGAIN when non-blocking). Not a
    /// call of the program's: not recorded.
    pub fn console_input(&mut self, contents: Option<&[u8]>) -> Result<Fd, Errno> {
        self.check_fds_available(1)?;
        let id = self.pipes.insert(Pipe {
            buf: contents.unwrap_or_default().iter().copied().collect(),
            readers: 1,
            writers: u32::from(contents.is_none()),
        });
        self.open_fd(Object::PipeRead(id))
    }

    pub(super) fn pipe_read(&mut self, p: Id, buf: &mut [u8]) -> Chosen<usize> {
        let pipe = self.pipes.get_mut(p).expect("live pipe");
        if buf.is_empty() {
            return (Ok(0), None);
        }
        if pipe.buf.is_empty() {
            return (
                if pipe.writers == 0 {
                    Ok(0)
                } else {
                    Err(Errno::EAGAIN)
                },
                None,
            );
        }
        let avail = pipe.buf.len().min(buf.len());
        let (n, c) = self.decide.recv_len(avail);
        let pipe = self.pipes.get_mut(p).expect("live pipe");
        let was_full = pipe.buf.len() >= PIPE_CAPACITY_BYTES;
        copy_out(&mut pipe.buf, &mut buf[..n]);
        if was_full {
            self.wake(Object::PipeWrite(p), Events::OUT);
        }
        (Ok(n), c)
    }

    pub(super) fn pipe_write(&mut self, p: Id, buf: &[u8]) -> Chosen<usize> {
        let pipe = self.pipes.get(p).expect("live pipe");
        if pipe.readers == 0 {
            return (Err(Errno::EPIPE), None);
        }
        if buf.is_empty() {
            return (Ok(0), None);
        }
        let room = PIPE_CAPACITY_BYTES - pipe.buf.len();
        // Writes of at most PIPE_BUF bytes are atomic: all or nothing.
        if room == 0 || (buf.len() <= PIPE_BUF_BYTES && room < buf.len()) {
            return (Err(Errno::EAGAIN), None);
        }
        let (n, c) = if buf.len() <= PIPE_BUF_BYTES {
            (buf.len(), None)
        } else {
            self.decide.send_len(buf.len().min(room))
        };
        self.pipes
            .get_mut(p)
            .expect("live pipe")
            .buf
            .extend(&buf[..n]);
        self.wake(Object::PipeRead(p), Events::IN);
        (Ok(n), c)
    }
}
