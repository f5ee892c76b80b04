//! Other people's programs inside the simulator (`selectlab sim -- CMD`): a Python server and a
//! C server deliver everything, a broken one is caught, ten runs give one transcript, and what
//! cannot be simulated faithfully is refused with its reason.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FIXTURE: &str = "tests/fixtures/chat_server.py";

pub(crate) fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_selectlab"))
        .arg("sim")
        .args(args)
        .output()
        .expect("selectlab runs")
}

/// `selectlab sim` with 4 clients of 25 lines each on the Python fixture, given `more`.
fn four_clients_of_the_fixture(more: &[&str]) -> Output {
    let clients = ["--clients", "4", "--lines", "25", "--"];
    let program = [crate::util::python3(), "-S", FIXTURE];
    sim(&[&clients[..], &program, more].concat())
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) fn have(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok()
}

/// Whether python3 is there to run the Python guests (a test without it says it skipped).
pub(crate) fn python() -> bool {
    let there = crate::util::have_python3();
    if !there {
        eprintln!("skipped: python3 is not installed");
    }
    there
}

/// A scratch directory of its own (the caller removes it).
fn scratch(name: &str) -> PathBuf {
    // A directory of its own each time: tests running at once never share one.
    tempfile::Builder::new()
        .prefix(&format!("selectlab-guest-test-{name}-"))
        .tempdir()
        .expect("a scratch directory")
        .keep()
}

#[test]
fn the_python_fixture_delivers_every_line_inside_the_simulator() {
    if !python() {
        return;
    }
    let out = four_clients_of_the_fixture(&[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("delivered 300 of 300 lines"), "{stdout}");
    // The run ends once the work is done, not when the program's next wait times out.
    assert!(stdout.contains(" in 0.000 s of virtual time"), "{stdout}");
    // The program's own standard output passes through: the fixture prints its port first.
    assert!(stdout.starts_with("32768\n"), "{stdout}");
}

#[test]
fn a_fixture_that_drops_lines_fails_inside_the_simulator() {
    if !python() {
        return;
    }
    let out = four_clients_of_the_fixture(&["--bug", "lose-lines", "--lifetime", "5"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(!stdout.contains("delivered 300 of 300"), "{stdout}");
}

#[test]
fn ten_runs_of_a_python_guest_under_the_adversary_give_one_transcript() {
    if !python() {
        return;
    }
    let dir = scratch("ten-runs");
    let mut transcripts = Vec::new();
    for run in 0..10 {
        let path = dir.join(format!("run{run}.txt"));
        let p = path.to_str().expect("a UTF-8 path");
        let out = sim(&[
            "--adversary",
            "--seed",
            "11",
            "--clients",
            "3",
            "--lines",
            "20",
            "--transcript",
            p,
            "--",
            crate::util::python3(),
            "-S",
            FIXTURE,
        ]);
        assert!(
            out.status.success(),
            "run {run}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        transcripts.push(std::fs::read_to_string(&path).expect("the transcript"));
    }
    let first = &transcripts[0];
    assert!(
        first.contains("~ adversary: short"),
        "the adversary acted on the guest:\n{first}"
    );
    assert!(
        first.contains(" c1 fd") && first.contains("] fd"),
        "both the guest's and its peers' calls"
    );
    for (run, t) in transcripts.iter().enumerate() {
        assert!(t == first, "run {run} differs from run 0");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_wait_the_adversary_interrupts_returns_eintr_and_the_program_carries_on() {
    if !python() {
        return;
    }
    // A signal comes only when the program would block, and then one time in five: some seed
    // among the first thirty interrupts a wait.
    let dir = scratch("eintr");
    let path = dir.join("transcript.txt");
    let p = path.to_str().expect("a UTF-8 path");
    let mut interrupted = None;
    for seed in 1..=30 {
        let seed = seed.to_string();
        let out = sim(&[
            "--adversary",
            "--seed",
            &seed,
            "--clients",
            "3",
            "--lines",
            "20",
            "--transcript",
            p,
            "--",
            crate::util::python3(),
            "-S",
            FIXTURE,
        ]);
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "seed {seed}: {stdout}{}",
            text(&out.stderr)
        );
        assert!(
            stdout.contains("delivered 120 of 120"),
            "seed {seed}: {stdout}"
        );
        let transcript = std::fs::read_to_string(&path).expect("the transcript");
        if let Some(line) = transcript
            .lines()
            .find(|l| l.contains("interrupted (EINTR)"))
        {
            interrupted = Some(line.to_string());
            break;
        }
    }
    let line = interrupted.expect("a wait interrupted within thirty seeds");
    assert!(
        line.contains("epoll_wait") || line.contains("select") || line.contains("poll"),
        "{line}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn calls_that_fail_or_return_at_once_on_linux_do_so_inside() {
    if !python() {
        return;
    }
    // Nothing is ready for any of them, and none waits on Linux.
    let (inside, expected) = inside_and_on_linux("tests/fixtures/fails_at_once.py");
    assert!(
        expected.starts_with("recv ENOTCONN\nsend EPIPE\naccept EINVAL\n"),
        "{expected}"
    );
    assert!(
        expected.ends_with("poll [32]\nselect EBADF\n"),
        "{expected}"
    );
    let said = text(&inside.stdout);
    assert!(inside.status.success(), "{said}{}", text(&inside.stderr));
    assert!(said.starts_with(&expected), "{said}");
}

/// `tests/fixtures/NAME.c` compiled into a scratch directory of its own: the directory and the
/// program, or `None` (said) where there is no C compiler.
fn compiled(name: &str) -> Option<(PathBuf, PathBuf)> {
    compiled_with(name, &["-O1"])
}

/// `tests/fixtures/NAME.c` compiled with `flags` (see [`compiled`]).
pub(crate) fn compiled_with(name: &str, flags: &[&str]) -> Option<(PathBuf, PathBuf)> {
    if !have("cc") {
        eprintln!("skipped: no C compiler (cc) on this machine");
        return None;
    }
    let stem = name.rsplit('/').next().unwrap_or(name);
    let dir = scratch(stem);
    let program = dir.join(stem);
    let built = Command::new("cc")
        .args(flags)
        .arg("-o")
        .arg(&program)
        .arg(format!("tests/fixtures/{name}.c"))
        .output()
        .expect("cc runs");
    assert!(built.status.success(), "{}", text(&built.stderr));
    Some((dir, program))
}

#[test]
fn a_c_epoll_server_compiled_here_delivers_every_line_faithfully_and_under_the_adversary() {
    let Some((dir, program)) = compiled("epoll_chat") else {
        return;
    };
    let p = program.to_str().expect("a UTF-8 path");
    for extra in [&[][..], &["--adversary", "--seed", "5"][..]] {
        let mut args = extra.to_vec();
        args.extend(["--clients", "5", "--lines", "40", "--", p]);
        let out = sim(&args);
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "{extra:?}: {stdout}{}",
            text(&out.stderr)
        );
        assert!(stdout.contains("delivered 800 of 800 lines"), "{stdout}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A Python script run inside the simulator, and what it printed run on Linux.
fn inside_and_on_linux(script: &str) -> (Output, String) {
    let inside = sim(&["--", crate::util::python3(), "-S", script]);
    let linux = Command::new(crate::util::python3())
        .arg("-S")
        .arg(script)
        .output()
        .expect("python3 runs");
    (inside, text(&linux.stdout))
}

/// Runs a Python one-liner in the simulator; it must be refused with a message naming `why`.
pub(crate) fn refused(code: &str, why: &str) {
    if !python() {
        return;
    }
    let out = sim(&["--", crate::util::python3(), "-S", "-c", code]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}{stderr}", text(&out.stdout));
    assert!(stderr.contains(why), "expected {why:?} in:\n{stderr}");
}

#[test]
fn a_second_thread_touching_the_simulator_is_refused() {
    refused(
        "import socket, threading; t = threading.Thread(target=socket.socket); t.start(); t.join()",
        "a second thread",
    );
}

#[test]
fn a_forked_child_touching_the_simulator_is_refused() {
    refused(
        "import os, socket\npid = os.fork()\nif pid == 0:\n    socket.socket()\nelse:\n    os.waitpid(pid, 0)",
        "a forked child",
    );
}

#[test]
fn a_socket_made_by_a_raw_syscall_is_refused_when_used() {
    // syscall(SYS_socket = 41, AF_INET, SOCK_STREAM, 0) reaches the kernel past the shim.
    refused(
        "import ctypes, socket; fd = ctypes.CDLL(None).syscall(41, 2, 1, 0); socket.socket(fileno=fd)",
        "made without the shim",
    );
}

#[test]
fn a_socket_family_the_simulator_lacks_is_refused() {
    refused(
        "import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW)",
        "family 17 is not simulated",
    );
}

/// A Python prologue for the probes below: a listener, a client, and the accepted socket.
pub(crate) const CONNECTED: &str = "import array, os, select, socket, subprocess\n\
    l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen()\n\
    c = socket.create_connection(l.getsockname()); s, _ = l.accept()\n";

#[test]
fn every_other_row_of_the_refusal_table_is_refused_by_name() {
    // (the call, words of its refusal): the rows of docs/src/running-programs.md's table that
    // the tests above do not reach.
    let rows = [
        (
            "r, w = os.pipe(); select.select([s, r], [], [], 0)",
            "and real descriptor",
        ),
        (
            "u = socket.socket(socket.AF_UNIX); u.bind('\\0abstract')",
            "abstract AF_UNIX names",
        ),
        (
            "u = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); u.sendto(b'x', '\\0abstract')",
            "abstract AF_UNIX names",
        ),
        (
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_PRIORITY, 1)",
            "socket option level 1 name 12",
        ),
        ("c.send(b'x'); s.recv(1, socket.MSG_PEEK)", "recv flags 0x2"),
        (
            "c.send(b'x'); s.recv(1, socket.MSG_WAITALL)",
            "recv flags 0x100",
        ),
        ("s.recv(1, socket.MSG_OOB)", "recv flags 0x1"),
        ("s.send(b'x', socket.MSG_MORE)", "send flags 0x8000"),
        (
            "s.sendmsg([b'x'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', [0]))])",
            "sendmsg with ancillary data",
        ),
        (
            "e = select.epoll(); e.register(s.fileno(), select.EPOLLIN | select.EPOLLEXCLUSIVE)",
            "EPOLLEXCLUSIVE",
        ),
        (
            "subprocess.run(['python3', '-c', 'import socket; socket.socket()'])",
            "a child process",
        ),
        // A cleared environment does not take the child out: the exec puts the shim back.
        (
            "subprocess.run(['python3', '-c', 'import socket; socket.socket()'], \
             env={'PATH': os.environ['PATH']})",
            "a child process",
        ),
        (
            // A child that closes the channel behind the shim's back (a raw close) still
            // reaches selectlab: through the refusal file beside the channel's socket.
            "child = 'import ctypes, os, platform, socket\\n\
             nr = 3 if platform.machine() == \"x86_64\" else 57\\n\
             ctypes.CDLL(None).syscall(nr, int(os.environ[\"SELECTLAB_SHIM_FD\"]))\\n\
             socket.socket()'\n\
             subprocess.run(['python3', '-c', child])",
            "a child process",
        ),
        (
            "ts = [socket.socket(), socket.socket()]\nfor t in ts:\n    \
             t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)\n    t.bind(('127.0.0.1', 40000))",
            "shared by SO_REUSEPORT sockets",
        ),
        (
            "import signal; signal.alarm(1)",
            "alarm arms a timer on the real clock",
        ),
        (
            "import signal; signal.setitimer(signal.ITIMER_REAL, 0.5)",
            "setitimer arms a timer on the real clock",
        ),
        (
            "import ctypes; ctypes.CDLL(None).timer_create(1, None, ctypes.byref(ctypes.c_void_p()))",
            "timer_create arms a timer on the real clock",
        ),
        (
            "import ctypes; ctypes.CDLL(None).timerfd_create(8, 0)",
            "timerfd_create on an alarm clock",
        ),
        (
            "import ctypes; ctypes.CDLL(None).signalfd(-1, ctypes.create_string_buffer(128), 0)",
            "signals are not simulated",
        ),
    ];
    for (call, why) in rows {
        refused(&format!("{CONNECTED}{call}"), why);
    }
}

#[test]
fn a_child_that_closes_what_it_inherited_before_exec_leaves_the_parents_sockets_alone() {
    if !python() {
        return;
    }
    // subprocess closes every inherited descriptor in the child (after a vfork, in the
    // parent's memory) and points its standard streams at pipes before it execs.
    let code = format!(
        "{CONNECTED}print(subprocess.run(['echo', 'the child ran'], capture_output=True, \
         stdin=subprocess.PIPE).stdout.decode().strip())\nc.send(b'still here')\n\
         print(s.recv(64).decode())"
    );
    let out = sim(&["--", crate::util::python3(), "-S", "-c", &code]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    assert!(said.contains("the child ran\nstill here"), "{said}");
}

/// The smallest statically linked ELF image selectlab must refuse: a header and one PT_LOAD
/// program header, no PT_INTERP. It is never executed (the refusal comes first).
fn write_static_elf(path: &Path) {
    let mut elf = Vec::new();
    elf.extend_from_slice(b"\x7fELF\x02\x01\x01");
    elf.resize(16, 0);
    for (value, bytes) in [
        (2u64, 2),
        (62, 2),
        (1, 4),
        (0x40_0000, 8),
        (64, 8),
        (0, 8),
        (0, 4),
        (64, 2),
        (56, 2),
        (1, 2),
        (64, 2),
        (0, 2),
        (0, 2),
    ] {
        elf.extend_from_slice(&value.to_le_bytes()[..bytes]);
    }
    // PT_LOAD, flags R+X, then offsets and sizes: a segment of nothing.
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&5u32.to_le_bytes());
    elf.resize(64 + 56, 0);
    std::fs::write(path, &elf).expect("write the image");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn a_static_program_the_program_starts_later_is_refused_before_it_runs() {
    if !python() {
        return;
    }
    let dir = scratch("static-later");
    let program = dir.join("static-program");
    write_static_elf(&program);
    let script = dir.join("script");
    std::fs::write(&script, format!("#!{}\n", program.display())).expect("write the script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let (p, sc, d) = (program.display(), script.display(), dir.display());
    let starts = [
        (
            format!("subprocess.run(['{p}'])"),
            "a statically linked program",
        ),
        (
            format!("os.execv('{sc}', ['{sc}'])"),
            "interpreter is statically linked",
        ),
        (
            format!(
                "os.environ['PATH'] = '{d}'\nos.posix_spawnp('static-program', ['x'], os.environ)"
            ),
            "a statically linked program",
        ),
    ];
    for (code, why) in starts {
        let out = sim(&[
            "--",
            crate::util::python3(),
            "-S",
            "-c",
            &format!("import os, subprocess\n{code}"),
        ]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{code}: {stderr}");
        assert!(
            stderr.contains(why) && stderr.contains("exec of"),
            "{code}: {stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_statically_linked_program_is_refused_before_it_runs() {
    let dir = scratch("static");
    let program = dir.join("static-program");
    write_static_elf(&program);
    // Itself, and as the interpreter of a `#!` script.
    let script = dir.join("script");
    std::fs::write(&script, format!("#!{}\n", program.display())).expect("write the script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for run in [&program, &script] {
        let out = sim(&["--", run.to_str().expect("a UTF-8 path")]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("is statically linked"), "{stderr}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_tutorials_good_bye_server_and_client_both_run_as_guests() {
    if !python() {
        return;
    }
    let dir = scratch("good-bye");
    let input = dir.join("input.txt");
    std::fs::write(&input, "hello there\n").expect("write the client's input");
    let transcript = dir.join("transcript.txt");
    let out = sim(&[
        "--transcript",
        transcript.to_str().expect("a UTF-8 path"),
        "--peer",
        "python3 tests/tutorial/client.py 127.0.0.1 33333",
        "--peer-stdin",
        input.to_str().expect("a UTF-8 path"),
        "--",
        crate::util::python3(),
        "-S",
        "tests/tutorial/server.py",
        "127.0.0.1",
        "33333",
        "1",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("receive from ('127.0.0.1', 32768):hello there"),
        "{stdout}"
    );
    assert!(
        stdout.contains("server receive your messages, good bye."),
        "{stdout}"
    );
    assert!(stdout.contains("exited with status 0"), "{stdout}");
    // Both programs' calls, in one simulation: the server's unlabelled, the client's as c1.
    let t = std::fs::read_to_string(&transcript).expect("the transcript");
    assert!(
        t.contains("] fd3 listen(5) = 0")
            && t.contains("] c1 fd3 connect(127.0.0.1:33333 from 127.0.0.1:"),
        "{t}"
    );
    assert!(
        t.contains("] fd4 send(39) = 39") && t.contains("] c1 fd3 recv(1024) = 39"),
        "{t}"
    );
    // The server's blocking accept waits, unanswered, until the client connects.
    assert!(
        t.contains("] fd3 accept(127.0.0.1:") && !t.contains("accept() = EAGAIN"),
        "{t}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn pythons_socket_select_and_time_apis_answer_as_on_linux_with_virtual_time() {
    if !python() {
        return;
    }
    let (out, real) = inside_and_on_linux("tests/fixtures/guest_calls.py");
    let inside = text(&out.stdout);
    assert!(out.status.success(), "{inside}{}", text(&out.stderr));
    // Time is virtual: the timeout and the sleep take exactly their length, from 2026-01-01.
    for line in [
        "timeout after 0.25\n",
        "slept until 0.375\n",
        "wall clock 2026-01-01 00:00:00\n",
    ] {
        assert!(inside.contains(line), "{line:?} in:\n{inside}");
    }
    // The kernel is the oracle: the same script outside gives the same answers, times aside.
    let timeless = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| {
                !l.starts_with("timeout after")
                    && !l.starts_with("slept until")
                    && !l.starts_with("wall clock")
                    && !l.starts_with("sim:")
            })
            .map(str::to_string)
            .collect()
    };
    assert_eq!(timeless(&inside), timeless(&real));
}

#[test]
fn a_program_that_leaves_a_child_running_ends_when_it_exits() {
    if !python() {
        return;
    }
    // The child inherits the shim's channel; the run must still end with the program's exit,
    // not wait out the silence limit (the child is stopped with the program's process group).
    let code = "import subprocess; subprocess.Popen(['sleep', '100'])";
    let out = sim(&["--", crate::util::python3(), "-S", "-c", code]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("the program exited with status 0"),
        "{stdout}"
    );
}

#[test]
fn an_idle_server_that_spins_is_stopped_and_a_blocking_one_is_not() {
    if !python() {
        return;
    }
    // Alone for five virtual seconds, the correct fixture blocks in its wait; the busy loop
    // (correct output, zero timeouts) makes wait after wait that returns at once.
    let five_seconds_of = |bug: &[&str]| {
        let mut args = vec![
            "--run-for-s",
            "5",
            "--",
            crate::util::python3(),
            "-S",
            FIXTURE,
        ];
        args.extend(bug);
        sim(&args)
    };
    let idle = five_seconds_of(&[]);
    let stdout = text(&idle.stdout);
    assert!(idle.status.success(), "{stdout}{}", text(&idle.stderr));
    assert!(stdout.contains("5 s of virtual time passed"), "{stdout}");
    let busy = five_seconds_of(&["--bug", "busy-loop"]);
    let stdout = text(&busy.stdout);
    assert_eq!(
        busy.status.code(),
        Some(1),
        "{stdout}{}",
        text(&busy.stderr)
    );
    assert!(
        stdout.contains("it spins: 10000 waits in a row returned at once"),
        "{stdout}"
    );
}

#[test]
fn descriptors_left_open_by_whoever_started_selectlab_do_not_reach_the_program() {
    if !python() {
        return;
    }
    // Under load a test harness (or a shell) may leave descriptors open; the program must
    // start with its standard streams only, or its descriptor numbers, and so its transcript,
    // would depend on who started selectlab.
    let dir = scratch("inherited");
    let run = |extra: &str, name: &str| {
        let path = dir.join(name);
        let line = format!(
            "{} sim --transcript {} -- python3 {FIXTURE} --lifetime 1 {extra}",
            env!("CARGO_BIN_EXE_selectlab"),
            path.display()
        );
        let out = Command::new("sh")
            .arg("-c")
            .arg(&line)
            .output()
            .expect("sh runs");
        assert!(
            out.status.success(),
            "{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        std::fs::read_to_string(&path).expect("the transcript")
    };
    let clean = run("", "clean.txt");
    let leaky = run("3</dev/null 5</dev/null 9</dev/null", "leaky.txt");
    assert!(clean.contains("socket(Inet, Stream) = 4"), "{clean}");
    assert_eq!(clean, leaky);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_program_stopped_because_it_blocks_for_ever_exits_1() {
    if !python() {
        return;
    }
    let waits = "import socket\n\
        s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); s.accept()\n";
    let out = sim(&["--", crate::util::python3(), "-S", "-c", waits]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}{}", text(&out.stderr));
    assert!(said.contains("blocks for ever in accept"), "{said}");
}

#[test]
fn sleep_usleep_and_timespec_get_run_on_virtual_time() {
    let Some((dir, program)) = compiled("virtual_sleep") else {
        return;
    };
    let out = sim(&["--", program.to_str().expect("a UTF-8 path")]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    // 2026-01-01 00:00:00 UTC, the simulator's epoch: a real clock would say otherwise.
    assert!(
        said.contains("monotonic 1.200 utc 1.200 epoch 1767225600"),
        "{said}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn close_range_and_closefrom_close_simulated_sockets_as_the_kernel_closes_real_ones() {
    let Some((dir, program)) = compiled("close_range") else {
        return;
    };
    let file = dir.join("contents");
    std::fs::write(&file, "what the file holds\n").expect("written");
    let args = [
        program.to_str().expect("UTF-8"),
        file.to_str().expect("UTF-8"),
    ];
    let outside = Command::new(args[0])
        .arg(args[1])
        .output()
        .expect("it runs");
    assert!(outside.status.success(), "{}", text(&outside.stdout));
    let inside = sim(&["--", args[0], args[1]]);
    assert!(inside.status.success(), "{}", text(&inside.stdout));
    let expected = "what the file holds\n".repeat(2);
    assert_eq!(text(&outside.stdout), expected);
    assert!(
        text(&inside.stdout).starts_with(&expected),
        "{}",
        text(&inside.stdout)
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Whether this kernel honours personality(ADDR_NO_RANDOMIZE): two children started with it
/// print the same address (the flag is set on this test process, and inherited).
fn kernel_fixes_addresses() -> bool {
    use nix::sys::personality::{self, Persona};
    let set = personality::get().and_then(|p| personality::set(p | Persona::ADDR_NO_RANDOMIZE));
    let address = || {
        let out = Command::new(crate::util::python3())
            .arg("-S")
            .args(["-c", "print(hex(id(object())))"])
            .output()
            .expect("python3 runs");
        text(&out.stdout)
    };
    let fixed = set.is_ok() && address() == address();
    if !fixed {
        eprintln!("this kernel randomises addresses despite ADDR_NO_RANDOMIZE: not compared");
    }
    fixed
}

#[test]
fn a_programs_randomness_and_addresses_come_from_the_seed() {
    if !python() {
        return;
    }
    let dir = scratch("random-order");
    let transcript = dir.join("transcript");
    let run = |seed: &str| {
        let out = sim(&[
            "--seed",
            seed,
            "--transcript",
            transcript.to_str().expect("a UTF-8 path"),
            "--",
            crate::util::python3(),
            "-S",
            "tests/fixtures/random_order.py",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let said = text(&out.stdout);
        let line = |what: &str| {
            (said.lines().find(|l| l.starts_with(what)))
                .unwrap_or_else(|| panic!("no {what} line: {said}"))
                .to_string()
        };
        let lines = [
            "random",
            "urandom",
            "dev urandom",
            "stdio urandom",
            "arc4random",
            "pids",
            "signalled itself True",
            "address",
            "set order",
        ]
        .map(line);
        // The records, without the header (which names the seed).
        let calls: String = (std::fs::read_to_string(&transcript).expect("the transcript"))
            .lines()
            .filter(|l| !l.starts_with("# "))
            .map(|l| format!("{l}\n"))
            .collect();
        (lines, calls)
    };
    // Outside, each of these differs from run to run (ASLR, the kernel's entropy, pids). A
    // kernel that ignores ADDR_NO_RANDOMIZE (gVisor may) leaves addresses, and a set's order
    // (so the order of the program's binds), to chance: only the seeded bytes and the pids
    // are compared there, not the transcript.
    let fixed = kernel_fixes_addresses();
    let compared = if fixed { 9 } else { 7 };
    let (first, calls) = run("7");
    for _ in 0..9 {
        let (again, again_calls) = run("7");
        assert_eq!(again[..compared], first[..compared]);
        if fixed {
            assert_eq!(again_calls, calls, "ten runs, one transcript");
        }
    }
    assert!(first[3].ends_with("fileno True"), "{}", first[3]);
    assert!(first[5].starts_with("pids 4194306 4194305"), "{}", first[5]);
    let (other, other_calls) = run("8");
    for i in 0..4 {
        assert_ne!(other[i], first[i], "another seed, other random numbers");
    }
    assert_ne!(other_calls, calls, "another seed, another transcript");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_program_gets_selectlabs_environment_unless_asked_for_a_clean_one() {
    if !python() {
        return;
    }
    // A launcher in the style of pyenv's shims: it picks the interpreter from a variable.
    let dir = scratch("launcher");
    let launcher = dir.join("pick-python");
    std::fs::write(
        &launcher,
        "#!/bin/sh\n[ -n \"$PICK_PYTHON\" ] || { echo 'no interpreter picked' >&2; exit 127; }\n\
         exec \"$PICK_PYTHON\" \"$@\"\n",
    )
    .expect("written");
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&launcher, mode).expect("made executable");
    let launcher = launcher.to_str().expect("a UTF-8 path");
    let transcript = dir.join("transcript");
    let run = |clean: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_selectlab"));
        command.arg("sim").env("PICK_PYTHON", "python3");
        if clean {
            command.arg("--clean-env");
        }
        command.arg("--transcript").arg(&transcript);
        let out = (command.args(["--", launcher, "-c", "print('picked')"]))
            .output()
            .expect("selectlab runs");
        let header: String = (std::fs::read_to_string(&transcript).unwrap_or_default())
            .lines()
            .filter(|l| l.starts_with("# environment: "))
            .collect();
        (out.status.code(), text(&out.stdout), header)
    };
    let (code, said, header) = run(false);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("picked"), "{said}");
    // The transcript's header names what the program inherited (not the values).
    assert!(
        header.starts_with("# environment: selectlab's own: ")
            && header.contains(" PICK_PYTHON ")
            && !header.contains("python3")
            && header.contains("set: TZ=UTC LC_ALL=C.UTF-8"),
        "{header}"
    );
    let (code, said, header) = run(true);
    assert_eq!(code, Some(1), "the launcher found no interpreter: {said}");
    assert!(said.contains("exited with status 127"), "{said}");
    assert!(
        header.starts_with("# environment: clean (--clean-env): ") && !header.contains("PICK"),
        "{header}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
