//! `selectlab load`: a load generator for any server that speaks the tutorial's chat protocol
//! (each line a client sends reaches every other client, with some prefix), selectlab's own
//! and `ncat --chat` alike.
//!
//! Every line carries a marker, `~SENDER:SEQ:NANOS~`, found wherever the server's prefix puts
//! it; receivers count, per sender, deliveries, losses, duplicates and reorderings, and the
//! latency from the send. Clients are real threads on real sockets: one reader and one writer
//! per client, running truly concurrently. Before the measured lines, every client says hello
//! until every other client has heard from everyone (so no line is sent before all have
//! joined, whatever the server announces). An overall deadline bounds the run: a server that
//! refuses, resets or goes silent gives a clear error or a report of what was lost, never a
//! hang.

use std::fmt;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;

/// Most clients one run may have (threads: two per client).
pub const MAX_LOAD_CLIENTS: usize = 2000;
/// Most lines per client.
pub const MAX_LOAD_LINES: usize = 10_000_000;
/// Most (reader, sender, line) records a run keeps: clients² × lines, one byte each.
pub const MAX_LOAD_RECORD: usize = 1 << 28;
/// Longest line (the reference server's default `--max-line-bytes`).
pub const MAX_LOAD_LINE_BYTES: usize = 4096;
/// How often a client says hello while it waits for the others to join.
const HELLO_EVERY: Duration = Duration::from_millis(50);
/// How often a waiting writer looks whether everyone is ready.
const READY_POLL: Duration = Duration::from_millis(1);
/// How long one blocking read waits before the reader looks at the deadline again.
const READ_SLICE: Duration = Duration::from_millis(200);
/// Bytes of a reader's buffer.
const READ_BUFFER_BYTES: usize = 256 * 1024;

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The server.
    pub addr: SocketAddr,
    /// Clients.
    pub clients: usize,
    /// Lines each client sends.
    pub lines: usize,
    /// Bytes per line, newline included.
    pub bytes: usize,
    /// The whole run's deadline, joining included.
    pub deadline: Duration,
    /// Where to show deliveries so far ([`ProgressBar::hidden`] for nowhere).
    pub progress: ProgressBar,
}

/// Why a run could not be made at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The arguments are out of range.
    BadArgs(String),
    /// Nothing accepts connections at the address.
    Refused(String),
    /// Not every client heard every other before the deadline (the server is silent, or does
    /// not relay lines).
    NeverJoined {
        /// Clients that heard from everyone.
        ready: usize,
        /// Clients in all.
        clients: usize,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::BadArgs(why) => write!(f, "bad arguments: {why}"),
            LoadError::Refused(why) => write!(f, "cannot connect: {why}"),
            LoadError::NeverJoined { ready, clients } => write!(
                f,
                "the deadline passed while joining: only {ready} of {clients} clients heard \
                 from every other (is the server relaying lines?)"
            ),
        }
    }
}

/// What a run measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// Clients.
    pub clients: usize,
    /// Lines each sent.
    pub lines: usize,
    /// Bytes per line.
    pub bytes: usize,
    /// Deliveries expected: every line to every other client.
    pub expected: u64,
    /// Lines delivered once, in order.
    pub delivered: u64,
    /// Lines never delivered.
    pub lost: u64,
    /// Lines delivered again.
    pub duplicates: u64,
    /// Lines delivered out of their sender's order.
    pub reordered: u64,
    /// Lines a client got back from itself.
    pub echoes: u64,
    /// Lines whose marker was cut or garbled.
    pub garbled: u64,
    /// Clients whose connection ended before they had everything.
    pub disconnected: usize,
    /// From the first measured line to the last delivery.
    pub elapsed: Duration,
    /// Median latency, send to receive.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// What went wrong, per client (first few).
    pub errors: Vec<String>,
}

impl LoadReport {
    /// Deliveries per second of wall time.
    pub fn deliveries_per_sec(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Every line reached every other client exactly once, in order, and nobody was dropped.
    pub fn perfect(&self) -> bool {
        self.delivered == self.expected
            && self.lost == 0
            && self.duplicates == 0
            && self.reordered == 0
            && self.echoes == 0
            && self.garbled == 0
            && self.disconnected == 0
    }

    /// The report as a record.
    pub fn record(&self) -> LoadRecord {
        LoadRecord {
            clients: self.clients,
            lines: self.lines,
            bytes: self.bytes,
            expected: self.expected,
            delivered: self.delivered,
            lost: self.lost,
            duplicates: self.duplicates,
            reordered: self.reordered,
            echoes: self.echoes,
            garbled: self.garbled,
            disconnected: self.disconnected,
            elapsed_s: crate::json::round(self.elapsed.as_secs_f64(), 6),
            deliveries_per_s: self.deliveries_per_sec().round() as u64,
            p50_us: micros(self.p50),
            p99_us: micros(self.p99),
            perfect: self.perfect(),
            errors: self.errors.clone(),
        }
    }

    /// The report as one JSON object.
    pub fn json(&self) -> String {
        crate::json::line(&self.record())
    }
}

/// A load report as `selectlab load --json` prints it (one object). The field names are an
/// interface (`docs/src/commands.md` lists them, a test parses them back); see [`LoadReport`]
/// for each count's meaning.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct LoadRecord {
    pub clients: usize,
    pub lines: usize,
    pub bytes: usize,
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub echoes: u64,
    pub garbled: u64,
    pub disconnected: usize,
    /// Seconds from the first measured line to the last delivery.
    pub elapsed_s: f64,
    /// Deliveries per second of wall time, rounded.
    pub deliveries_per_s: u64,
    /// Median latency, send to receive, in microseconds.
    pub p50_us: u64,
    /// 99th percentile latency, in microseconds.
    pub p99_us: u64,
    /// Every line reached every other client exactly once, in order.
    pub perfect: bool,
    /// What went wrong, per client (first few).
    pub errors: Vec<String>,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "load: {} clients x {} lines of {} bytes",
            self.clients, self.lines, self.bytes
        )?;
        writeln!(
            f,
            "  delivered   {} of {} ({:.0} per second in {:.2} s)",
            self.delivered,
            self.expected,
            self.deliveries_per_sec(),
            self.elapsed.as_secs_f64()
        )?;
        writeln!(
            f,
            "  latency     p50 {} us, p99 {} us",
            self.p50.as_micros(),
            self.p99.as_micros()
        )?;
        writeln!(
            f,
            "  lost {}, duplicated {}, reordered {}, echoed {}, garbled {}, disconnected {}",
            self.lost,
            self.duplicates,
            self.reordered,
            self.echoes,
            self.garbled,
            self.disconnected
        )?;
        for e in &self.errors {
            writeln!(f, "  {e}")?;
        }
        write!(
            f,
            "  verdict     {}",
            if self.perfect() {
                "every line delivered exactly once, in order"
            } else {
                "NOT every line delivered exactly once, in order"
            }
        )
    }
}

/// A latency in whole microseconds (saturating: a run is bounded by its deadline anyway).
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A marker's parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Hello(usize),
    Line { from: usize, seq: usize, nanos: u64 },
}

/// The marker's shortest form, `~S:Q:N~`, with the widest numbers this generator writes.
const MARKER_MAX_BYTES: usize = 1 + 4 + 1 + 8 + 1 + 16 + 1;

fn marker(from: usize, seq: usize, nanos: u64) -> String {
    format!("~{from:04}:{seq:08}:{nanos:016}~")
}

/// Finds the marker in a received line.
fn parse_mark(line: &[u8]) -> Option<Mark> {
    let start = line.iter().position(|&b| b == b'~')?;
    let rest = &line[start + 1..];
    let end = rest.iter().position(|&b| b == b'~')?;
    let text = std::str::from_utf8(&rest[..end]).ok()?;
    let mut parts = text.split(':');
    let from = parts.next()?.parse().ok()?;
    match parts.next()? {
        "H" => Some(Mark::Hello(from)),
        seq => Some(Mark::Line {
            from,
            seq: seq.parse().ok()?,
            nanos: parts.next()?.parse().ok()?,
        }),
    }
}

/// What one reader saw.
#[derive(Debug, Default)]
struct Heard {
    delivered: u64,
    duplicates: u64,
    reordered: u64,
    echoes: u64,
    garbled: u64,
    lost: u64,
    latencies_us: Vec<u32>,
    error: Option<String>,
    last_at: Option<Instant>,
}

/// State the threads share.
struct Shared {
    config: LoadConfig,
    epoch: Instant,
    deadline: Instant,
    /// Clients that have heard a hello from every other client.
    ready: AtomicUsize,
    /// Set when the measured lines may go.
    go: AtomicBool,
    /// Deliveries so far (progress).
    delivered: AtomicU64,
    /// When the first measured line went.
    started: Mutex<Option<Instant>>,
}

/// Runs the load.
pub fn run(config: &LoadConfig) -> Result<LoadReport, LoadError> {
    check_args(config)?;
    let streams = connect_all(config)?;
    let now = Instant::now();
    let deadline = now
        .checked_add(config.deadline)
        .ok_or_else(|| LoadError::BadArgs("--deadline-s is too large".into()))?;
    let shared = Arc::new(Shared {
        config: config.clone(),
        epoch: now,
        deadline,
        ready: AtomicUsize::new(0),
        go: AtomicBool::new(false),
        delivered: AtomicU64::new(0),
        started: Mutex::new(None),
    });
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for (me, stream) in streams.into_iter().enumerate() {
        let read_half = stream
            .try_clone()
            .map_err(|e| LoadError::Refused(e.to_string()))?;
        let s = Arc::clone(&shared);
        readers.push(thread::spawn(move || reader(&s, me, read_half)));
        let s = Arc::clone(&shared);
        writers.push(thread::spawn(move || writer(&s, me, stream)));
    }
    let progress = (!config.progress.is_hidden()).then(|| {
        let s = Arc::clone(&shared);
        thread::spawn(move || show_progress(&s))
    });
    let heard: Vec<Heard> = readers
        .into_iter()
        .map(|h| {
            h.join().unwrap_or_else(|_| Heard {
                error: Some("a reader panicked".into()),
                ..Heard::default()
            })
        })
        .collect();
    shared.go.store(true, Ordering::SeqCst);
    for w in writers {
        let _ = w.join();
    }
    if let Some(p) = progress {
        shared.delivered.store(u64::MAX, Ordering::SeqCst);
        let _ = p.join();
    }
    let ready = shared.ready.load(Ordering::SeqCst);
    let started = *shared.started.lock().unwrap_or_else(|e| e.into_inner());
    let Some(started) = started.filter(|_| ready == config.clients) else {
        return Err(LoadError::NeverJoined {
            ready,
            clients: config.clients,
        });
    };
    Ok(report(config, started, heard))
}

fn check_args(c: &LoadConfig) -> Result<(), LoadError> {
    let bad = |why: String| Err(LoadError::BadArgs(why));
    if !(2..=MAX_LOAD_CLIENTS).contains(&c.clients) {
        return bad(format!("--clients must be 2 to {MAX_LOAD_CLIENTS}"));
    }
    if c.deadline.is_zero() {
        return bad("--deadline-s must be more than 0".into());
    }
    if !(1..=MAX_LOAD_LINES).contains(&c.lines) {
        return bad(format!("--lines must be 1 to {MAX_LOAD_LINES}"));
    }
    if c.clients * c.clients * c.lines > MAX_LOAD_RECORD {
        return bad(format!(
            "--clients squared times --lines must be at most {MAX_LOAD_RECORD} (each reader keeps a record of every line)"
        ));
    }
    if !(MARKER_MAX_BYTES + 1..=MAX_LOAD_LINE_BYTES).contains(&c.bytes) {
        return bad(format!(
            "--bytes must be {} to {MAX_LOAD_LINE_BYTES} (a line carries a {MARKER_MAX_BYTES}-byte marker)",
            MARKER_MAX_BYTES + 1
        ));
    }
    Ok(())
}

fn connect_all(config: &LoadConfig) -> Result<Vec<TcpStream>, LoadError> {
    let per_connect = config.deadline.min(Duration::from_secs(5));
    (0..config.clients)
        .map(|n| {
            TcpStream::connect_timeout(&config.addr, per_connect).map_err(|e| {
                LoadError::Refused(format!("{} (client {} of {})", e, n + 1, config.clients))
            })
        })
        .collect()
}

fn writer(s: &Shared, me: usize, mut stream: TcpStream) {
    // A server that stops reading cannot hold a writer past the deadline.
    let _ = stream.set_write_timeout(Some(s.config.deadline.max(Duration::from_millis(1))));
    let hello = format!("~{me:04}:H~\n");
    // Hello every so often until everyone has heard everyone, then once more for whoever
    // joined last; start at once when the last client is ready.
    let mut last_hello: Option<Instant> = None;
    loop {
        if s.go.load(Ordering::SeqCst) || Instant::now() >= s.deadline {
            return;
        }
        let all_ready = s.ready.load(Ordering::SeqCst) == s.config.clients;
        if all_ready || last_hello.is_none_or(|t| t.elapsed() >= HELLO_EVERY) {
            if stream.write_all(hello.as_bytes()).is_err() {
                return;
            }
            last_hello = Some(Instant::now());
        }
        if all_ready {
            break;
        }
        thread::sleep(READY_POLL);
    }
    {
        let mut started = s.started.lock().unwrap_or_else(|e| e.into_inner());
        started.get_or_insert_with(Instant::now);
    }
    let pad = s.config.bytes;
    let mut line = Vec::with_capacity(pad * 64);
    let mut seq = 0;
    while seq < s.config.lines {
        if Instant::now() >= s.deadline {
            return;
        }
        // A few lines per write; the server sees them however the kernel cuts them.
        line.clear();
        for _ in 0..64.min(s.config.lines - seq) {
            let nanos = s.epoch.elapsed().as_nanos() as u64;
            let start = line.len();
            line.extend_from_slice(marker(me, seq, nanos).as_bytes());
            line.resize(start + pad - 1, b'.');
            line.push(b'\n');
            seq += 1;
        }
        if stream.write_all(&line).is_err() {
            return;
        }
    }
}

/// One client's reading side: reads lines until it has heard every other client's, the
/// server closes, or the deadline passes.
fn reader(s: &Shared, me: usize, stream: TcpStream) -> Heard {
    let want = ((s.config.clients - 1) * s.config.lines) as u64;
    let mut tally = Tally::new(me, s.config.clients, s.config.lines);
    let _ = stream.set_read_timeout(Some(READ_SLICE));
    let shutdown = stream.try_clone().ok();
    let mut r = BufReader::with_capacity(READ_BUFFER_BYTES, stream);
    let mut buf = Vec::with_capacity(MAX_LOAD_LINE_BYTES);
    let mut error = None;
    while tally.got < want && error.is_none() {
        let got = tally.got;
        if buf.last() == Some(&b'\n') {
            buf.clear();
        }
        if Instant::now() >= s.deadline {
            error = Some(format!(
                "c{me}: deadline passed with {got} of {want} lines (a stall?)"
            ));
            continue;
        }
        // A read timeout may leave part of a line in `buf`: it stays, and the next read
        // completes it.
        match r.read_until(b'\n', &mut buf) {
            Ok(0) => {
                error = Some(format!(
                    "c{me}: the server closed the connection after {got} of {want} lines"
                ));
            }
            Err(e) if !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                error = Some(format!("c{me}: {e} after {got} of {want} lines"));
            }
            // A partial line waits for the rest (or for the next read to say the stream ended).
            _ if buf.last() != Some(&b'\n') => {}
            _ => tally.take(s, &buf),
        }
    }
    let mut heard = tally.heard;
    heard.lost = want - tally.got;
    heard.error = error;
    if heard.error.is_some() {
        // Release this client's writer if the server stopped reading from it.
        if let Some(s) = shutdown {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
    heard
}

/// What one reader has heard so far.
struct Tally {
    /// The reader's own client.
    me: usize,
    heard: Heard,
    /// Whose hello it has heard, and how many it still waits for.
    hellos: Vec<bool>,
    waiting_hellos: usize,
    /// Which of each sender's lines it has heard, and the line it expects next from each.
    seen: Vec<Vec<bool>>,
    next: Vec<usize>,
    /// Other clients' lines heard, each once.
    got: u64,
}

impl Tally {
    fn new(me: usize, clients: usize, lines: usize) -> Tally {
        let mut hellos = vec![false; clients];
        hellos[me] = true;
        Tally {
            me,
            heard: Heard::default(),
            hellos,
            waiting_hellos: clients - 1,
            seen: vec![vec![false; lines]; clients],
            next: vec![0; clients],
            got: 0,
        }
    }

    /// Counts one whole line: a hello, a measured line, or something else.
    fn take(&mut self, s: &Shared, line: &[u8]) {
        let (clients, lines) = (self.hellos.len(), s.config.lines);
        match parse_mark(line) {
            Some(Mark::Hello(from)) if from < clients => self.hello(s, from),
            Some(Mark::Line { from, seq, nanos }) if from < clients && seq < lines => {
                self.line(s, from, seq, nanos);
            }
            _ => {
                let garbled = !line.trim_ascii().is_empty() && line.contains(&b'~');
                self.heard.garbled += u64::from(garbled);
            }
        }
    }

    /// A hello from `from`: once every other client's is heard, this reader is ready.
    fn hello(&mut self, s: &Shared, from: usize) {
        if !self.hellos[from] {
            self.hellos[from] = true;
            self.waiting_hellos -= 1;
            if self.waiting_hellos == 0 {
                s.ready.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    /// Line `seq` of client `from`, sent at `nanos` after the run's epoch.
    fn line(&mut self, s: &Shared, from: usize, seq: usize, nanos: u64) {
        let heard = &mut self.heard;
        if from == self.me {
            heard.echoes += 1;
            return;
        }
        if self.seen[from][seq] {
            heard.duplicates += 1;
            return;
        }
        self.seen[from][seq] = true;
        // Late behind a later line: reordered. After a gap: in order (the gap is a loss,
        // counted once, unless the missing line turns up late).
        if seq < self.next[from] {
            heard.reordered += 1;
        } else {
            heard.delivered += 1;
            self.next[from] = seq + 1;
        }
        self.got += 1;
        s.delivered.fetch_add(1, Ordering::Relaxed);
        let now = s.epoch.elapsed().as_nanos() as u64;
        let us = now.saturating_sub(nanos) / 1000;
        heard
            .latencies_us
            .push(u32::try_from(us).unwrap_or(u32::MAX));
        heard.last_at = Some(Instant::now());
    }
}

/// Moves the progress bar to the deliveries so far, four times a second, until they are
/// `u64::MAX` (the run is over).
fn show_progress(s: &Shared) {
    let bar = &s.config.progress;
    bar.set_length(((s.config.clients - 1) * s.config.clients * s.config.lines) as u64);
    loop {
        let done = s.delivered.load(Ordering::Relaxed);
        if done == u64::MAX {
            bar.finish_and_clear();
            return;
        }
        let joined = s.ready.load(Ordering::Relaxed);
        bar.set_message(format!("delivered, {joined}/{} joined", s.config.clients));
        bar.set_position(done);
        thread::sleep(Duration::from_millis(250));
    }
}

fn report(config: &LoadConfig, started: Instant, heard: Vec<Heard>) -> LoadReport {
    let mut r = LoadReport {
        clients: config.clients,
        lines: config.lines,
        bytes: config.bytes,
        expected: ((config.clients - 1) * config.clients * config.lines) as u64,
        ..LoadReport::default()
    };
    let mut latencies = Vec::new();
    let mut last = started;
    for h in heard {
        r.delivered += h.delivered;
        r.lost += h.lost;
        r.duplicates += h.duplicates;
        r.reordered += h.reordered;
        r.echoes += h.echoes;
        r.garbled += h.garbled;
        if let Some(e) = h.error {
            r.disconnected += 1;
            if r.errors.len() < 5 {
                r.errors.push(e);
            }
        }
        last = last.max(h.last_at.unwrap_or(started));
        latencies.extend(h.latencies_us);
    }
    r.elapsed = last - started;
    latencies.sort_unstable();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round().max(0.0) as usize)
            .map_or(Duration::ZERO, |us| Duration::from_micros(u64::from(*us)))
    };
    r.p50 = pick(0.50);
    r.p99 = pick(0.99);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_behind_any_prefix() {
        let m = marker(3, 17, 123_456);
        assert!(m.len() <= MARKER_MAX_BYTES);
        for prefix in ["", "2026-01-01 00:00:00 ('127.0.0.1', 5) say: ", "<user5> "] {
            let line = format!("{prefix}{m}.....\n");
            assert_eq!(
                parse_mark(line.as_bytes()),
                Some(Mark::Line {
                    from: 3,
                    seq: 17,
                    nanos: 123_456
                })
            );
        }
        assert_eq!(parse_mark(b"<user5> ~0002:H~\n"), Some(Mark::Hello(2)));
        assert_eq!(parse_mark(b"no marker\n"), None);
        assert_eq!(parse_mark(b"~0001:0000"), None);
    }
}
