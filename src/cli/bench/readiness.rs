//! `selectlab bench readiness`: what one wait costs when it reports one ready descriptor among
//! K idle ones, for select, poll and epoll, on the kernel and in the simulator. The tutorial's
//! claim, measured: select and poll scan every watched descriptor on every call (their cost
//! grows with K); epoll keeps a ready list (its cost does not). A measurement, not a test.
//!
//! Each idle descriptor is a bound UDP socket with nothing to read; the active one is a UDP
//! socket holding a datagram it sent itself, never read, so level-triggered readiness reports
//! it at every wait. Waits go through [`Selector`] with a zero timeout: the cost measured is
//! what an event loop pays per wait, its own bookkeeping included.

use std::fmt::Write as _;
use std::io::Write;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use nix::errno::Errno;

use crate::addr::{Family, SockAddr, SockType};
use crate::kernel::{Events, FD_SETSIZE, Fd, Kernel, Mode};
use crate::readiness::{Backend, Event, Selector, Token};
use crate::real_kernel::RealKernel;
use crate::sim::decide::Decider;
use crate::sim::{Sim, SimConfig};

/// Most idle descriptors one point may ask for.
pub const MAX_IDLE_FDS: usize = 100_000;
/// Descriptors a point needs besides the idle ones (the active socket, epoll's, std's).
const SPARE_FDS: usize = 16;
/// How long `selectlab bench readiness` measures each point (after a warm-up).
pub const POINT_BUDGET: Duration = Duration::from_millis(200);
/// Fewest waits a point is measured over, whatever its budget.
const MIN_WAITS: u64 = 50;
/// Waits before the clock starts.
const WARM_UP_WAITS: u64 = 10;

/// Where the waits run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// The kernel.
    Real,
    /// The simulator (no transcript: its cost is the simulator's own).
    Sim,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Real => "real",
            Transport::Sim => "sim",
        }
    }
}

/// One measured point, or why it was not measured.
#[derive(Debug, Clone)]
pub struct Point {
    /// The transport.
    pub transport: Transport,
    /// The backend.
    pub backend: Backend,
    /// Idle descriptors watched besides the active one (as asked).
    pub idle_fds: usize,
    /// Nanoseconds per wait, or the note that says why there is none.
    pub ns_per_wait: Result<f64, String>,
}

/// Measures every transport × backend × idle count, each for `budget` (and at least
/// `MIN_WAITS` waits), writing why a point has no number to `notes` and the points done so far
/// to `progress`.
pub fn measure(
    transports: &[Transport],
    idle: &[usize],
    budget: Duration,
    notes: &mut dyn Write,
    progress: &ProgressBar,
) -> Vec<Point> {
    let limit = crate::real_kernel::raise_fd_limit().unwrap_or(1024);
    progress.set_length((transports.len() * Backend::ALL.len() * idle.len()) as u64);
    let mut points = Vec::new();
    for &transport in transports {
        for backend in Backend::ALL {
            for &k in idle {
                progress.set_message(format!("{} {backend} {k} idle", transport.name()));
                let ns_per_wait = match beyond_limits(transport, backend, k, limit) {
                    Some(why) => Err(why),
                    None => point(transport, backend, k, budget),
                };
                if let Err(why) = &ns_per_wait {
                    let _ = progress.suspend(|| {
                        writeln!(
                            notes,
                            "note: {} {backend} {k} idle: {why}",
                            transport.name()
                        )
                    });
                }
                points.push(Point {
                    transport,
                    backend,
                    idle_fds: k,
                    ns_per_wait,
                });
                progress.inc(1);
            }
        }
    }
    progress.finish_and_clear();
    points
}

/// Why `idle` idle descriptors cannot be measured here, if they cannot (`fd_limit`: the
/// process's descriptor limit).
fn beyond_limits(
    transport: Transport,
    backend: Backend,
    idle: usize,
    fd_limit: u64,
) -> Option<String> {
    if idle > MAX_IDLE_FDS {
        Some(format!("more than MAX_IDLE_FDS ({MAX_IDLE_FDS})"))
    } else if backend == Backend::Select && idle + SPARE_FDS > FD_SETSIZE as usize {
        Some(format!(
            "past FD_SETSIZE ({FD_SETSIZE}): select cannot watch descriptor {idle}"
        ))
    } else if transport == Transport::Real && (idle + SPARE_FDS) as u64 > fd_limit {
        Some(format!(
            "past RLIMIT_NOFILE ({fd_limit}), even raised to its hard limit"
        ))
    } else {
        None
    }
}

fn point(
    transport: Transport,
    backend: Backend,
    idle: usize,
    budget: Duration,
) -> Result<f64, String> {
    match transport {
        Transport::Real => waits(&mut RealKernel::new(), backend, idle, budget),
        Transport::Sim => {
            let config = SimConfig {
                fd_limit: idle + SPARE_FDS,
                transcript: false,
                ..SimConfig::default()
            };
            let mut sim = Sim::new(config, Decider::faithful());
            waits(&mut sim, backend, idle, budget)
        }
    }
}

/// Sets up `idle` idle sockets and one ready one, times waits, and closes everything.
fn waits(
    kernel: &mut dyn Kernel,
    backend: Backend,
    idle: usize,
    budget: Duration,
) -> Result<f64, String> {
    let mut fds = Vec::with_capacity(idle + 1);
    let timed = set_up(kernel, &mut fds, idle)
        .and_then(|active| time_waits(kernel, backend, &fds, active, budget));
    for fd in fds {
        let _ = kernel.close(fd);
    }
    timed.map_err(|e| format!("{e}"))
}

/// Opens the idle sockets and the active one (pushed last); returns the active one.
fn set_up(kernel: &mut dyn Kernel, fds: &mut Vec<Fd>, idle: usize) -> Result<Fd, Errno> {
    let loopback = SockAddr::Inet("127.0.0.1:0".parse().expect("an address"));
    for _ in 0..=idle {
        let fd = kernel.socket(Family::Inet, SockType::Dgram)?;
        fds.push(fd);
        kernel.bind(fd, &loopback)?;
    }
    let active = *fds.last().expect("at least one socket");
    let me = kernel.getsockname(active)?;
    kernel.sendto(active, b"ready", &me)?;
    Ok(active)
}

fn time_waits(
    kernel: &mut dyn Kernel,
    backend: Backend,
    fds: &[Fd],
    active: Fd,
    budget: Duration,
) -> Result<f64, Errno> {
    let mut selector = Selector::new(kernel, backend)?;
    for (i, &fd) in fds.iter().enumerate() {
        selector.register(kernel, fd, Token(i), Events::IN, Mode::LEVEL)?;
    }
    let active_token = Token(fds.iter().position(|&fd| fd == active).expect("registered"));
    let mut events: Vec<Event> = Vec::with_capacity(64);
    let mut wait_once = |kernel: &mut dyn Kernel| -> Result<(), Errno> {
        events.clear();
        selector.wait(kernel, &mut events, 64, Some(Duration::ZERO))?;
        // The measurement means something only if each wait found exactly the active one.
        match events.as_slice() {
            [e] if e.token == active_token => Ok(()),
            _ => Err(Errno::EPROTO),
        }
    };
    for _ in 0..WARM_UP_WAITS {
        wait_once(kernel)?;
    }
    let started = Instant::now();
    let mut n = 0u64;
    while n < MIN_WAITS || started.elapsed() < budget {
        wait_once(kernel)?;
        n += 1;
    }
    let ns = started.elapsed().as_nanos() as f64 / n as f64;
    if let Some(ep) = selector.epoll_fd() {
        let _ = kernel.close(ep);
    }
    Ok(ns)
}

/// The points as a table: one row per transport and backend, one column per idle count.
pub fn table(points: &[Point], idle: &[usize]) -> String {
    let mut out = String::from(
        "readiness: ns per wait that reports 1 ready descriptor among K idle ones (level-triggered, zero timeout)\n",
    );
    let _ = write!(out, "{:<10} {:<8}", "transport", "backend");
    for k in idle {
        let _ = write!(out, " {:>12}", format!("K={k}"));
    }
    out.push('\n');
    for row in points.chunks(idle.len().max(1)) {
        let _ = write!(
            out,
            "{:<10} {:<8}",
            row[0].transport.name(),
            row[0].backend.to_string()
        );
        for p in row {
            let cell = match &p.ns_per_wait {
                Ok(ns) => format!("{ns:.0}"),
                Err(_) => "-".to_string(),
            };
            let _ = write!(out, " {cell:>12}");
        }
        out.push('\n');
    }
    out
}

/// One measured point as `selectlab bench readiness --json` prints it, one object per line.
/// The field names are an interface (`docs/src/commands.md` lists them, a test parses them back).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointRecord {
    /// `real` or `sim`.
    pub transport: String,
    /// `select`, `poll` or `epoll`.
    pub backend: String,
    /// Idle descriptors watched besides the active one.
    pub idle_fds: usize,
    /// Nanoseconds per wait (to a tenth).
    pub ns_per_wait: f64,
}

/// One JSON object per measured point (points that could not be measured are left out; the
/// table and the notes say why).
pub fn json_lines(points: &[Point]) -> String {
    let mut out = String::new();
    for p in points {
        if let Ok(ns) = p.ns_per_wait {
            let record = PointRecord {
                transport: p.transport.name().to_string(),
                backend: p.backend.to_string(),
                idle_fds: p.idle_fds,
                ns_per_wait: crate::json::round(ns, 1),
            };
            out.push_str(&crate::json::line(&record));
            out.push('\n');
        }
    }
    out
}

impl Point {
    /// The point with its nanoseconds per wait, if it was measured.
    fn measured(&self) -> Option<(&Point, f64)> {
        self.ns_per_wait.as_ref().ok().map(|&ns| (self, ns))
    }
}

/// The plot's axes: idle descriptors and nanoseconds, each from half the least measured to
/// twice the most (at least 1, for the log scale).
fn log_ranges(measured: &[(&Point, f64)]) -> (std::ops::Range<f64>, std::ops::Range<f64>) {
    let span = |values: &mut dyn Iterator<Item = f64>| {
        let (lo, hi) = values.fold((f64::MAX, 1.0_f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        lo.max(1.0) / 2.0..hi * 2.0
    };
    (
        span(&mut measured.iter().map(|(p, _)| p.idle_fds as f64)),
        span(&mut measured.iter().map(|(_, ns)| *ns)),
    )
}

/// Writes a log-log SVG plot of the points, one line per transport and backend.
pub fn plot(points: &[Point], path: &std::path::Path) -> Result<(), String> {
    use plotters::prelude::*;
    let measured: Vec<(&Point, f64)> = points.iter().filter_map(Point::measured).collect();
    if measured.is_empty() {
        return Err("nothing was measured".into());
    }
    let (xs, ys) = log_ranges(&measured);
    let root = SVGBackend::new(path, (800, 560)).into_drawing_area();
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "one wait, one ready descriptor among K idle ones",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(xs.log_scale(), ys.log_scale())
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc("idle descriptors watched (K)")
        .y_desc("ns per wait")
        .draw()
        .map_err(|e| fail(&e))?;
    // A color per backend; the simulator's lines paler and thinner than the kernel's.
    let series = [Transport::Real, Transport::Sim]
        .into_iter()
        .flat_map(|t| Backend::ALL.map(|b| (t, b)));
    for (transport, backend) in series {
        let color = match backend {
            Backend::Select => RED,
            Backend::Poll => BLUE,
            Backend::Epoll => GREEN,
        };
        let line: Vec<(f64, f64)> = measured
            .iter()
            .filter(|(p, _)| (p.transport, p.backend) == (transport, backend))
            .map(|(p, ns)| (p.idle_fds as f64, *ns))
            .collect();
        if line.is_empty() {
            continue;
        }
        let style = match transport {
            Transport::Sim => color.mix(0.5).stroke_width(2),
            Transport::Real => color.stroke_width(3),
        };
        chart
            .draw_series(LineSeries::new(line.clone(), style))
            .map_err(|e| fail(&e))?
            .label(format!("{} {backend}", transport.name()))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart
            .draw_series(
                line.into_iter()
                    .map(|xy| Circle::new(xy, 3, color.filled())),
            )
            .map_err(|e| fail(&e))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))
}
