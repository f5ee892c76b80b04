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

const C_ATTEMPTS: [(&str, Inside); 33] = [
    ("socket", Same),
    ("raw-socket", Refused("a real socket made without the shim")),
    ("forked-child", Refused("a forked child")),
    ("second-thread", Refused("a second thread")),
    ("exec-with-no-environment", Refused("a child process")),
    ("spawn-with-no-environment", Refused("a child process")),
    ("system-after-clearenv", Refused("a child process")),
    ("execl-after-unsetenv", Refused("a child process")),
    ("child-without-the-channel", Refused("a child process")),
    ("closed-by-close-range", Same),
    ("sleeps", Same),
    ("clocks-agree", Same),
    ("alarm", Refused("alarm arms a timer on the real clock")),
    ("setitimer", Refused("setitimer arms a timer on the real clock")),
    ("timer-create", Refused("timer_create arms a timer on the real clock")),
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
    ("mixed-wait", Refused("watches simulated sockets and real descriptor")),
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
    ("raw-syscall-socket", Refused("a real socket made without the shim")),
    ("alarm", Refused("alarm arms a timer on the real clock")),
    ("setitimer", Refused("setitimer arms a timer on the real clock")),
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
        let args: Vec<&str> = ["--"].iter().chain(program).chain([name]).copied().collect();
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
    let wrong = judge(&[program.to_str().expect("a UTF-8 path")], &C_ATTEMPTS);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn no_way_out_of_the_simulator_in_python_is_silent() {
    if !python() {
        return;
    }
    let wrong = judge(&["python3", "tests/fixtures/escape.py"], &PYTHON_ATTEMPTS);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
