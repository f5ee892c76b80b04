//! Starting a guest: the embedded shim written out, the program checked (the shim only reaches
//! dynamically linked programs), the channel's listening socket, and the process with a fixed
//! environment.

use std::ffi::OsString;
use std::hash::{Hash, Hasher};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rustix::io::Errno;
use rustix::net::{self as rn, AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
use selectlab_wire::{CHANNEL_PATH_ENV, STDERR_FILE};

use super::channel::{Channel, readable};

/// The shim, built by `build.rs` from `shim/`.
const SHIM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/libselectlab_shim.so"));

/// How long (real time) a program may take to start and load the shim.
pub const START_LIMIT: Duration = Duration::from_secs(30);

/// How many `#!` interpreters are followed to find the program that really runs.
const MAX_INTERPRETER_DEPTH: usize = 4;

/// What went wrong before the program could run, or with the channel.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The program cannot take the shim (the message says why).
    #[error("{0}")]
    Unfit(String),
    /// An I/O error of selectlab's own.
    #[error("{0}: {1}")]
    Io(&'static str, std::io::Error),
    /// A channel error.
    #[error("{0}: {1}")]
    Channel(&'static str, Errno),
}

/// Writes the shim to the temporary directory (once per build of selectlab) and returns its
/// path.
pub fn shim_path() -> Result<PathBuf, SpawnError> {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    SHIM.hash(&mut hasher);
    let dir = std::env::temp_dir().join("selectlab");
    std::fs::create_dir_all(&dir)
        .map_err(|e| SpawnError::Io("creating the shim's directory", e))?;
    let path = dir.join(format!("shim-{:016x}.so", hasher.finish()));
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == SHIM.len() as u64) {
        return Ok(path);
    }
    // Written under a name of its own, then renamed: concurrent runs never load half a file.
    // Readable by all, as a library in a shared folder must be.
    let readable = std::os::unix::fs::PermissionsExt::from_mode(0o644);
    let mut partial = (tempfile::Builder::new().permissions(readable))
        .tempfile_in(&dir)
        .map_err(|e| SpawnError::Io("writing the shim", e))?;
    std::io::Write::write_all(&mut partial, SHIM)
        .map_err(|e| SpawnError::Io("writing the shim", e))?;
    partial
        .persist(&path)
        .map_err(|e| SpawnError::Io("writing the shim", e.error))?;
    Ok(path)
}

/// Finds `program` on PATH, as a shell does (a name with a slash is a path already).
fn find(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return Some(program.to_path_buf());
    }
    which::which(program).ok()
}

/// Refuses a program the shim cannot reach: a statically linked one (no program interpreter,
/// so nothing is preloaded and its sockets would be real). A `#!` script is judged by its
/// interpreter.
pub fn check_dynamic(program: &Path) -> Result<(), SpawnError> {
    let mut current = program.to_path_buf();
    for _ in 0..MAX_INTERPRETER_DEPTH {
        let path = find(&current)
            .ok_or_else(|| SpawnError::Unfit(format!("{}: no such program", current.display())))?;
        let head = read_head(&path)?;
        if let Some(line) = head.strip_prefix(b"#!") {
            let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
            let words: Vec<&[u8]> = line
                .split(|b| b.is_ascii_whitespace())
                .filter(|w| !w.is_empty())
                .collect();
            let interpreter = match words.as_slice() {
                [env, name, ..] if env.ends_with(b"/env") => *name,
                [first, ..] => *first,
                [] => {
                    return Err(SpawnError::Unfit(format!(
                        "{}: an empty #! line",
                        path.display()
                    )));
                }
            };
            current = PathBuf::from(String::from_utf8_lossy(interpreter).into_owned());
            continue;
        }
        return if has_interpreter(&head) {
            Ok(())
        } else {
            Err(SpawnError::Unfit(format!(
                "{} is statically linked (or not an ELF program): the shim is loaded by the \
                 dynamic linker, so this program's sockets would be real; selectlab refuses to \
                 run it in the simulator",
                path.display()
            )))
        };
    }
    Err(SpawnError::Unfit(format!(
        "{}: too many #! interpreters",
        program.display()
    )))
}

/// The first bytes of a file: enough for the ELF header and its program headers.
fn read_head(path: &Path) -> Result<Vec<u8>, SpawnError> {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(64 * 1024).read_to_end(&mut head))
        .map_err(|e| SpawnError::Io("reading the program", e))?;
    Ok(head)
}

/// Whether an ELF image names a program interpreter (PT_INTERP): a dynamically linked program.
fn has_interpreter(head: &[u8]) -> bool {
    use object::read::elf::{FileHeader, ProgramHeader};
    let Ok(header) = object::elf::FileHeader64::<object::Endianness>::parse(head) else {
        return false;
    };
    let Ok(endian) = header.endian() else {
        return false;
    };
    header.program_headers(endian, head).is_ok_and(|phs| {
        phs.iter()
            .any(|ph| ph.p_type(endian) == object::elf::PT_INTERP)
    })
}

/// The channel socket's name in a run's directory.
const CHANNEL_FILE: &str = "channel";

/// The listening end of the channel: a SOCK_SEQPACKET socket at a path the shim connects to.
pub struct Listener {
    fd: OwnedFd,
    /// The run's own directory (the channel's socket, a quiet program's standard error),
    /// removed when the listener goes.
    dir: tempfile::TempDir,
}

impl Listener {
    /// A new listening socket in a fresh temporary directory.
    pub fn new() -> Result<Listener, SpawnError> {
        let dir = tempfile::Builder::new()
            .prefix("selectlab-sim-")
            .tempdir()
            .map_err(|e| SpawnError::Io("creating the channel's directory", e))?;
        let fd = rn::socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| SpawnError::Channel("socket", e))?;
        let addr = SocketAddrUnix::new(dir.path().join(CHANNEL_FILE))
            .map_err(|e| SpawnError::Channel("channel path", e))?;
        rn::bind(&fd, &addr).map_err(|e| SpawnError::Channel("bind", e))?;
        rn::listen(&fd, 1).map_err(|e| SpawnError::Channel("listen", e))?;
        Ok(Listener { fd, dir })
    }

    /// Starts `command` with the shim preloaded, in a process group of its own (so that the
    /// whole group can be stopped), in `env` (see [`Environment`]).
    /// Standard input is `stdin` (a file), or nothing; with `quiet`, its output goes nowhere
    /// (a program run again and again, as a check's shrinking does, would repeat itself) but
    /// its standard error is kept for [`Listener::stderr_tail`].
    pub fn spawn(
        &self,
        command: &[OsString],
        env: Environment,
        shim: &Path,
        stdin: Option<&Path>,
        quiet: bool,
    ) -> Result<Process, SpawnError> {
        let (program, args) = command
            .split_first()
            .ok_or_else(|| SpawnError::Unfit("no program to run".to_string()))?;
        check_dynamic(Path::new(program))?;
        fixed_addresses_for_children();
        let mut cmd = Command::new(program);
        cmd.args(args);
        cmd.env_clear()
            .envs(env.inherited())
            .envs(FIXED_ENV)
            .env("LD_PRELOAD", shim)
            .env(CHANNEL_PATH_ENV, self.channel_path())
            .process_group(0);
        match stdin {
            Some(path) => {
                let file = std::fs::File::open(path)
                    .map_err(|e| SpawnError::Io("opening its standard input", e))?;
                cmd.stdin(file)
            }
            None => cmd.stdin(Stdio::null()),
        };
        if quiet {
            let stderr = std::fs::File::create(self.stderr_path())
                .map_err(|e| SpawnError::Io("creating its standard error's file", e))?;
            cmd.stdout(Stdio::null()).stderr(stderr);
        }
        let child = cmd
            .spawn()
            .map_err(|e| SpawnError::Io("starting the program", e))?;
        Ok(Process {
            started: Started::Spawned(child),
            exit: None,
        })
    }

    /// The path of the channel's socket.
    pub(crate) fn channel_path(&self) -> PathBuf {
        self.dir.path().join(CHANNEL_FILE)
    }

    /// Waits (real time, at most [`START_LIMIT`]) for the program's shim to connect.
    pub fn accept(&self) -> Result<Channel, SpawnError> {
        if !readable(&self.fd, START_LIMIT)
            .map_err(|e| SpawnError::Channel("waiting for the shim", e))?
        {
            return Err(SpawnError::Unfit(format!(
                "the program did not load the shim within {} s (setuid, or it exited first?)",
                START_LIMIT.as_secs()
            )));
        }
        let fd = rn::accept_with(&self.fd, SocketFlags::CLOEXEC)
            .map_err(|e| SpawnError::Channel("accept", e))?;
        Channel::new(fd)
    }
}

/// The environment a program starts with. Either way selectlab sets what would otherwise make
/// two runs differ, or tie them to the machine's clock and locale: `TZ=UTC`,
/// `LC_ALL=C.UTF-8`, `PYTHONHASHSEED=0` (CPython's hashing would otherwise differ run to run,
/// and with it the order of some of a program's calls) and `PYTHONDONTWRITEBYTECODE=1`, and it
/// drops any `LD_PRELOAD` and channel of its caller's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Environment {
    /// selectlab's own (a pyenv shim, a virtualenv and their variables keep working).
    #[default]
    Inherited,
    /// `PATH` and `HOME` alone (`--clean-env`).
    Clean,
}

/// What every program starts with, whatever else it inherits (see [`Environment`]).
pub const FIXED_ENV: [(&str, &str); 4] = [
    ("TZ", "UTC"),
    ("LC_ALL", "C.UTF-8"),
    ("PYTHONHASHSEED", "0"),
    ("PYTHONDONTWRITEBYTECODE", "1"),
];

impl Environment {
    /// The variables the program takes from selectlab's own environment: all, or PATH and
    /// HOME; never a preload or a channel of selectlab's caller, nor what [`FIXED_ENV`] sets.
    pub fn inherited(self) -> Vec<(OsString, OsString)> {
        let mut vars: Vec<(OsString, OsString)> = std::env::vars_os()
            .filter(|(name, _)| self == Environment::Inherited || name == "PATH" || name == "HOME")
            .filter(|(name, _)| {
                let name = name.to_string_lossy();
                name != "LD_PRELOAD"
                    && !name.starts_with("SELECTLAB_SHIM")
                    && !FIXED_ENV.iter().any(|(fixed, _)| name == *fixed)
            })
            .collect();
        vars.sort();
        vars
    }

    /// The environment in words for a transcript's header: the names it inherits (their values
    /// stay out: they may be secrets), and what selectlab sets.
    pub fn describe(self) -> String {
        let names: Vec<String> = (self.inherited().iter())
            .map(|(name, _)| name.to_string_lossy().into_owned())
            .collect();
        let fixed: Vec<String> = FIXED_ENV.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let whose = match self {
            Environment::Inherited => "selectlab's own",
            Environment::Clean => "clean (--clean-env)",
        };
        format!(
            "{whose}: {} inherited, values not recorded; set: {} and the shim's LD_PRELOAD",
            names.join(" "),
            fixed.join(" ")
        )
    }
}

/// How a program under `check --sim` is started: its environment and its standard input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Launch {
    /// The environment (`--clean-env`).
    pub env: Environment,
    /// What it reads on its standard input (`--stdin`).
    pub stdin: Console,
}

/// Most bytes `--stdin FILE` may hold: the simulated pipe holds them all at once.
pub const MAX_STDIN_BYTES: usize = 1 << 20;

/// What a program under `check --sim` reads on its standard input, a simulated pipe, so that a
/// server that watches its console beside its sockets (`ncat --chat`) runs inside.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Console {
    /// A pipe whose writer stays open and never writes: a terminal where nobody types.
    #[default]
    Idle,
    /// A file's bytes, then end of file, as the shell's `< FILE` gives them.
    File {
        /// The file, as given (for the replay line).
        path: String,
        /// Its bytes, at most [`MAX_STDIN_BYTES`].
        bytes: std::sync::Arc<[u8]>,
    },
}

impl Console {
    /// The file at `path` as a console, or why it cannot be one.
    pub fn file(path: &str) -> Result<Console, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("--stdin {path}: {e}"))?;
        if bytes.len() > MAX_STDIN_BYTES {
            return Err(format!(
                "--stdin {path}: {} bytes, more than the {MAX_STDIN_BYTES} a simulated pipe holds here",
                bytes.len()
            ));
        }
        Ok(Console::File {
            path: path.to_string(),
            bytes: bytes.into(),
        })
    }

    /// The bytes to read before end of file, or `None` for a console that never ends.
    pub fn contents(&self) -> Option<&[u8]> {
        match self {
            Console::Idle => None,
            Console::File { bytes, .. } => Some(bytes),
        }
    }
}

/// Most bytes of a quiet program's standard error read back: its end.
pub const STDERR_TAIL_BYTES: u64 = 16 * 1024;

impl Listener {
    /// Why a descendant of the program that had lost its channel was refused, if one was
    /// (see [`selectlab_wire::REFUSAL_FILE`]; its first [`STDERR_TAIL_BYTES`] read).
    pub fn descendant_refusal(&self) -> Option<String> {
        use std::io::Read;
        let file = std::fs::File::open(self.dir.path().join(selectlab_wire::REFUSAL_FILE)).ok()?;
        let mut why = Vec::new();
        file.take(STDERR_TAIL_BYTES).read_to_end(&mut why).ok()?;
        Some(String::from_utf8_lossy(&why).into_owned())
    }

    /// The last `lines` lines a quiet program wrote on its standard error (a traceback, say).
    pub fn stderr_tail(&self, lines: usize) -> Vec<String> {
        tail_lines(&self.stderr_path(), lines)
    }

    /// The file that holds a quiet program's standard error.
    pub(crate) fn stderr_path(&self) -> PathBuf {
        self.dir.path().join(STDERR_FILE)
    }
}

/// The last `lines` lines of the file at `path` (its last [`STDERR_TAIL_BYTES`] read; none if
/// it cannot be read).
pub fn tail_lines(path: &Path, lines: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let mut tail = Vec::new();
    let read = file
        .seek(SeekFrom::Start(len.saturating_sub(STDERR_TAIL_BYTES)))
        .and_then(|_| file.take(STDERR_TAIL_BYTES).read_to_end(&mut tail));
    if read.is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&tail);
    let all: Vec<&str> = text.lines().collect();
    let from = all.len().saturating_sub(lines);
    all[from..].iter().map(|l| (*l).to_string()).collect()
}

/// How a program ended, as a shell tells it (128 + a signal's number is that signal), and the
/// last words it wrote on its standard error, each line marked [`STDERR_LINE_MARK`].
pub fn describe_end(code: i32, stderr: &[String]) -> String {
    let mut out = match end_signal(code) {
        Some(signal) => format!("it was killed by {signal}"),
        None => format!("it exited with code {code}"),
    };
    if !stderr.is_empty() {
        out.push_str(&match stderr.len() {
            1 => "; the last line of its standard error:".to_string(),
            n => format!("; the last {n} lines of its standard error:"),
        });
        for line in stderr {
            out.push('\n');
            out.push_str(STDERR_LINE_MARK);
            out.push_str(line);
        }
    }
    out
}

/// The signal that killed a program, if its exit code (128 + the signal's number, as a shell
/// gives it) says one did.
pub fn end_signal(code: i32) -> Option<nix::sys::signal::Signal> {
    (code > 128)
        .then(|| nix::sys::signal::Signal::try_from(code - 128).ok())
        .flatten()
}

/// How each line of a program's standard error begins in a report.
pub const STDERR_LINE_MARK: &str = "  stderr| ";

/// Turns address-space randomisation off for the processes selectlab starts from now on
/// (personality(2) is inherited across fork and exec): a program whose calls depend on its
/// own addresses (a Python `set` of sockets, iterated) makes them in the same order every run.
/// Where the kernel refuses (a sandbox may), randomisation stays on.
fn fixed_addresses_for_children() {
    use nix::sys::personality::{self, Persona};
    let _ = personality::get().and_then(|p| personality::set(p | Persona::ADDR_NO_RANDOMIZE));
}

/// The peak resident set of process `pid` (`VmHWM` in `/proc/PID/status`), if it can be read.
pub fn peak_resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

/// A program selectlab started: stopped with everything it started (its process group) when
/// dropped.
pub struct Process {
    started: Started,
    exit: Option<i32>,
}

/// How a program came to run.
enum Started {
    /// selectlab started it.
    Spawned(Child),
    /// A parked program forked it (see [`crate::guest::snapshot`]): that program waits for it,
    /// and sends its exit code on its channel.
    Forked(u32),
}

impl Process {
    /// A program forked by a parked one, as process `pid`.
    pub(crate) fn forked(pid: u32) -> Process {
        Process {
            started: Started::Forked(pid),
            exit: None,
        }
    }

    /// The program's process id.
    pub fn pid(&self) -> u32 {
        match &self.started {
            Started::Spawned(child) => child.id(),
            Started::Forked(pid) => *pid,
        }
    }

    /// Whether it has exited (without waiting). A forked program's exit is known once its
    /// channel has said so.
    pub fn has_exited(&mut self) -> bool {
        if self.exit.is_some() {
            return true;
        }
        let Started::Spawned(child) = &mut self.started else {
            return false;
        };
        match child.try_wait() {
            Ok(Some(status)) => {
                self.exit = Some(code_of(status));
                true
            }
            Ok(None) => false,
            Err(_) => true,
        }
    }

    /// It has gone with exit code `code` (its parent said so).
    pub(crate) fn ended(&mut self, code: i32) {
        self.exit = Some(code);
    }

    /// Its exit code once it has gone (128 + signal, as a shell reports it); waits for it.
    /// A forked program whose parent never said how it ended counts as -1.
    pub fn exit_code(&mut self) -> i32 {
        *self.exit.get_or_insert_with(|| match &mut self.started {
            Started::Spawned(child) => child.wait().map_or(-1, code_of),
            Started::Forked(_) => -1,
        })
    }
}

/// An exit status as a shell reports it: the code, or 128 + the signal that ended it.
pub fn code_of(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or(status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

impl Drop for Process {
    fn drop(&mut self) {
        // Group 0 would be selectlab's own, and 1 init's: no program of ours leads either.
        if let Ok(pid) = i32::try_from(self.pid())
            && pid > 1
        {
            let group = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        }
        // A forked program is its parked parent's to wait for.
        if let Started::Spawned(child) = &mut self.started {
            let _ = child.wait();
        }
    }
}

/// Virtual time as a reply's stamp: nanoseconds, saturating.
pub fn nanos(t: std::time::Duration) -> i64 {
    i64::try_from(t.as_nanos()).unwrap_or(i64::MAX)
}

/// The clock reads the shim answered itself that a forwarded clock read reports (they count
/// as the program's calls).
pub fn clock_reads_in(req: &selectlab_wire::Request) -> u64 {
    if req.op == selectlab_wire::Op::Clock {
        u64::try_from(req.args[1]).unwrap_or(0)
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_console_file_is_held_whole_up_to_its_limit_and_refused_beyond() {
        let dir = tempfile::tempdir().expect("scratch");
        let path = dir.path().join("input");
        std::fs::write(&path, vec![b'x'; MAX_STDIN_BYTES]).expect("written");
        let path = path.to_str().expect("utf-8");
        let console = Console::file(path).expect("at the limit");
        assert_eq!(console.contents().map(<[u8]>::len), Some(MAX_STDIN_BYTES));
        std::fs::write(path, vec![b'x'; MAX_STDIN_BYTES + 1]).expect("written");
        let why = Console::file(path).expect_err("beyond the limit");
        assert!(why.contains("more than the 1048576"), "{why}");
        assert_eq!(Console::Idle.contents(), None);
    }
}
