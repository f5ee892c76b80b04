//! The escape suite: every way out of the simulator the fixtures know (`tests/fixtures/escape.c`
//! and `escape.py`, one attempt per run) either behaves inside as on the kernel, printing the
//! same lines, or is refused by name with exit status 2. None leaves silently.

use std::process::Command;

use crate::guest::{compiled_with, python, sim, text};

/// What an attempt must do inside the simulator.
enum Inside {
    /// Print what it prints on the kernel.
    Same,
    /// Be refused, with these words in the reason.
    Refused(&'static str),
}
use Inside::{Refused, Same};

const C_ATTEMPTS: [(&str, Inside); 37] = [
    ("socket", Same),
    ("raw-socket", Refused("a real socket made without the shim")),
    ("forked-child", Refused("a forked child")),
    ("second-thread", Refused("a second thread")),
    // A clock read the shim answers itself is refused from elsewhere too (it tells the owner
    // by its thread handle, and a fork by pthread_atfork).
    ("clock-in-a-forked-child", Refused("a forked child")),
    ("clock-in-a-second-thread", Refused("a second thread")),
    ("exec-with-no-environment", Refused("a child process")),
    ("execveat-with-no-environment", Refused("a child process")),
    ("spawn-with-no-environment", Refused("a child process")),
    ("system-after-clearenv", Refused("a child process")),
    ("execl-after-unsetenv", Refused("a child process")),
    ("child-without-the-channel", Refused("a child process")),
    ("closed-by-close-range", Same),
    ("sleeps", Same),
    ("clocks-agree", Same),
    ("clock-settime", Refused("setting a clock is not simulated")),
    ("alarm", Refused("alarm arms a timer on the real clock")),
    (
        "setitimer",
        Refused("setitimer arms a timer on the real clock"),
    ),
    (
        "timer-create",
        Refused("timer_create arms a timer on the real clock"),
    ),
    ("signalfd", Refused("signals are not simulated")),
    ("timerfd", Same),
    ("eventfd", Same),
    ("fstat", Same),
    ("fdopen", Same),
    ("sendfile", Same),
    ("splice", Refused("splice on a simulated socket")),
    ("sendmmsg", Same),
    ("select-nfds-2048", Same),
    ("abstract-sendto", Refused("abstract AF_UNIX names")),
    ("scm-rights", Refused("ancillary data")),
    ("msg-peek", Refused("recv flags 0x2")),
    ("so-priority", Refused("socket option level 1 name 12")),
    ("af-packet", Refused("socket family 17")),
    ("real-fd-in-epoll", Refused("real descriptor")),
    (
        "mixed-wait",
        Refused("watches simulated sockets and real descriptor"),
    ),
    ("seeded-bytes", Same),
    ("signal-itself", Same),
];

const PYTHON_ATTEMPTS: [(&str, Inside); 21] = [
    ("bound", Same),
    ("subprocess-with-no-environment", Refused("a child process")),
    ("system-after-clear", Refused("a child process")),
    ("spawn-with-no-environment", Refused("a child process")),
    ("fork-child", Refused("a forked child")),
    ("multiprocessing-child", Refused("a forked child")),
    ("thread", Refused("a second thread")),
    (
        "raw-syscall-socket",
        Refused("a real socket made without the shim"),
    ),
    ("alarm", Refused("alarm arms a timer on the real clock")),
    (
        "setitimer",
        Refused("setitimer arms a timer on the real clock"),
    ),
    ("sleep", Same),
    ("packet-socket", Refused("socket family 17")),
    ("scm-rights", Refused("ancillary data")),
    ("msg-peek", Refused("recv flags 0x2")),
    ("sendfile", Same),
    ("makefile", Same),
    ("os-read-write", Same),
    ("fstat", Same),
    ("selector", Same),
    ("asyncio-echo", Same),
    ("seeded", Same),
];

/// Runs every attempt of `program` (a command line before the attempt's name) inside, and on
/// the kernel those that must match it; returns what went wrong, one line each.
fn judge(program: &[&str], attempts: &[(&str, Inside)]) -> Vec<String> {
    let run = |attempt: &str| {
        Command::new(program[0])
            .args(&program[1..])
            .arg(attempt)
            .output()
            .expect("the fixture runs")
    };
    let listed = text(&run("--list").stdout);
    let names: Vec<&str> = attempts.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        listed.lines().collect::<Vec<_>>(),
        names,
        "every attempt of {program:?} is judged here"
    );
    let mut wrong = Vec::new();
    for (name, inside) in attempts {
        let args: Vec<&str> = ["--"]
            .iter()
            .chain(program)
            .chain([name])
            .copied()
            .collect();
        let got = sim(&args);
        let (stdout, stderr) = (text(&got.stdout), text(&got.stderr));
        match inside {
            Same => {
                let real = run(name);
                assert!(real.status.success(), "{name} on the kernel: {real:?}");
                let said: String = (stdout.lines())
                    .filter(|l| !l.starts_with("sim: "))
                    .map(|l| format!("{l}\n"))
                    .collect();
                if !got.status.success() || said != text(&real.stdout) {
                    wrong.push(format!(
                        "{name}: inside said {said:?} ({}), the kernel {:?}; {stderr}",
                        got.status,
                        text(&real.stdout)
                    ));
                }
            }
            Refused(why) => {
                if got.status.code() != Some(2) || !stderr.contains(why) {
                    wrong.push(format!(
                        "{name}: not refused for {why:?} ({}): {stdout}{stderr}",
                        got.status
                    ));
                }
            }
        }
    }
    wrong
}

#[test]
fn no_way_out_of_the_simulator_in_c_is_silent() {
    let Some((dir, program)) = compiled_with("escape", &["-O2", "-pthread"]) else {
        return;
    };
    let path = program.to_str().expect("a UTF-8 path");
    let wrong = judge(&[path], &C_ATTEMPTS);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Its sleeps (sleep, usleep, nanosleep, thrd_sleep) pass in virtual time: six calls, the
    // second and three milliseconds they asked for, all of it virtual.
    let slept = text(&sim(&["--", path, "sleeps"]).stdout);
    assert!(
        slept.contains("sim: 6 calls in 1.003 s of virtual time"),
        "{slept}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn no_way_out_of_the_simulator_in_python_is_silent() {
    if !python() {
        return;
    }
    let wrong = judge(
        &[crate::util::python3(), "-S", "tests/fixtures/escape.py"],
        &PYTHON_ATTEMPTS,
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The names of glibc's functions that touch a socket, a descriptor's readiness, a clock or a
/// timer, randomness, a process id, or the start of a program: a prefix (ending in `*`) or a
/// whole name. Every function glibc exports under one of them must be interposed by the shim,
/// or reviewed below with the reason it needs not be.
const FAMILIES: &[&str] = &[
    "accept*",
    "bind",
    "connect",
    "listen",
    "shutdown",
    "socket*",
    "getsockopt",
    "setsockopt",
    "getsockname",
    "getpeername",
    "recv*",
    "send*",
    "__recv*",
    "__send*",
    "read",
    "readv",
    "write",
    "writev",
    "pread*",
    "pwrite*",
    "preadv*",
    "pwritev*",
    "__read*",
    "__pread*",
    "copy_file_range",
    "splice",
    "tee",
    "vmsplice",
    "close*",
    "__close*",
    "dup*",
    "fcntl*",
    "ioctl",
    "*stat",
    "*stat64",
    "__fxstat*",
    "statx",
    "open*",
    "__open*",
    "fopen*",
    "fdopen",
    "poll",
    "ppoll",
    "__poll*",
    "__ppoll*",
    "select",
    "pselect",
    "epoll_*",
    "eventfd*",
    "timerfd_*",
    "signalfd",
    "clock_*",
    "*sleep",
    "time",
    "timespec_get*",
    "gettimeofday",
    "settimeofday",
    "alarm",
    "setitimer",
    "timer_*",
    "getrandom",
    "getentropy",
];

/// More families: randomness, process ids and signals to them, starting programs.
const MORE_FAMILIES: &[&str] = &[
    "arc4random*",
    "getpid",
    "getppid",
    "kill*",
    "tgkill",
    "sigqueue",
    "pidfd_*",
    "exec*",
    "posix_spawn*",
    "system",
    "popen",
    "*fork",
];

/// Functions of those families the shim leaves to libc, and why that is safe.
const REVIEWED: &[(&str, &str)] = &[
    (
        "__clock_gettime __close_nocancel __fstat64 __open64_nocancel __open_nocancel \
      __pread64_nocancel __read_nocancel __recv __sendmmsg __socket __open_catalog",
        "GLIBC_PRIVATE: a program cannot link against them",
    ),
    (
        "fork vfork _Fork __fork __vfork __libc_fork clone __clone",
        "the child is a copy of the program; the shim tells it by its pid and refuses its calls",
    ),
    (
        "execl execle execlp",
        "variadic, so not definable in stable Rust: glibc calls execve inside itself. The \
      shim's variables stay in the environment (unsetenv and the rest keep them), so the child \
      loads the shim; execle with an environment of its own, or execl of a static program, \
      is the known gap",
    ),
    (
        "system popen",
        "glibc starts /bin/sh with the program's environment, which keeps the shim's variables; \
      the shell's exec of the command is checked there",
    ),
    ("killpg", "a process group: the program's is its real one"),
    (
        "pthread_atfork __register_atfork",
        "register fork handlers; start nothing",
    ),
    (
        "_IO_file_stat __file_change_detection_for_stat",
        "glibc's internals for its own files (stdio, the resolver's configuration)",
    ),
    (
        "pidfd_getfd pidfd_send_signal",
        "act on a pidfd, which pidfd_open made for the real process",
    ),
    (
        "posix_spawn_file_actions_* posix_spawnattr_*",
        "describe a spawn; posix_spawn and posix_spawnp start it",
    ),
    ("forkpty openpty", "a real pseudo-terminal, as any file"),
    (
        "closedir opendir fdopendir open_by_handle_at open_tree open_memstream open_wmemstream \
      fopencookie __readlink_chk __readlinkat_chk",
        "directories, memory streams and files by path or handle: never a simulated socket",
    ),
    (
        "stat stat64 lstat lstat64 __xstat __xstat64 __lxstat __lxstat64",
        "by path: a simulated socket has none (an AF_UNIX socket's path is a real file's name)",
    ),
    (
        "statfs statfs64 __statfs ustat statvfs statvfs64 fstatfs fstatfs64 fstatvfs fstatvfs64",
        "file-system statistics: of a simulated socket, its placeholder's (a documented limit)",
    ),
    (
        "openlog closelog",
        "syslog: glibc's own socket to the local logger, made inside libc",
    ),
    (
        "clock_getres timespec_getres",
        "a clock's resolution: the real one is Linux's answer",
    ),
    (
        "clock_getcpuclockid",
        "a process's CPU clock, which is not simulated",
    ),
    (
        "clock_adjtime",
        "NTP adjustments (root only): the machine's, as Linux reports them",
    ),
    (
        "timer_delete timer_getoverrun timer_gettime timer_settime",
        "act on a timer from timer_create, which is refused",
    ),
    ("duplocale __duplocale", "locales, not descriptors"),
];

/// Whether `name` is in a family (`*` at either end of a pattern matches anything).
fn matches(pattern: &str, name: &str) -> bool {
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        (Some(tail), _) => name.ends_with(tail),
        (_, Some(head)) => name.starts_with(head),
        _ => pattern == name,
    }
}

/// The functions an ELF file exports (its defined dynamic symbols).
fn exports(path: &std::path::Path) -> std::collections::BTreeSet<String> {
    use object::{Object, ObjectSymbol};
    let data = std::fs::read(path).expect("the library is readable");
    let file = object::File::parse(&*data).expect("an ELF file");
    file.dynamic_symbols()
        .filter(|s| s.is_definition())
        .filter_map(|s| s.name().ok().map(str::to_string))
        .collect()
}

/// This process's libc, as the loader mapped it.
fn libc_path() -> Option<std::path::PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| {
            p.rsplit('/')
                .next()
                .is_some_and(|f| f.starts_with("libc.so"))
        })
        .map(Into::into)
}

#[test]
fn every_glibc_function_of_the_families_is_interposed_or_reviewed() {
    let Some(libc) = libc_path() else {
        eprintln!("skipped: no glibc mapped in this process");
        return;
    };
    let shim = exports(&selectlab::guest::spawn::shim_path().expect("the shim"));
    let reviewed: Vec<&str> = REVIEWED
        .iter()
        .flat_map(|(names, _)| names.split_whitespace())
        .collect();
    let families = FAMILIES.iter().chain(MORE_FAMILIES);
    let unreviewed: Vec<String> = exports(&libc)
        .into_iter()
        .filter(|name| families.clone().any(|f| matches(f, name)))
        .filter(|name| !shim.contains(name) && !reviewed.iter().any(|r| matches(r, name)))
        .collect();
    assert!(
        unreviewed.is_empty(),
        "glibc ({}) exports these, neither interposed nor reviewed: {unreviewed:?}",
        libc.display()
    );
    let both: Vec<&&str> = reviewed.iter().filter(|r| shim.contains(**r)).collect();
    assert!(both.is_empty(), "reviewed, yet interposed: {both:?}");
}
