//! Calls beyond the socket API on simulated sockets: each answers as the kernel answers (the
//! same program's output inside the simulator and on real sockets), or is refused by name.

use std::process::Command;

use crate::guest::{CONNECTED, compiled_with, python, refused, sim, text};

/// Compiles C fixture `name`, runs it on the kernel and inside the simulator, and checks that
/// it printed the same lines both times: what it printed (None without a C compiler).
fn same_inside_as_on_the_kernel(name: &str, flags: &[&str]) -> Option<String> {
    let (dir, program) = compiled_with(name, flags)?;
    let real = Command::new(&program).output().expect("the fixture runs");
    assert!(real.status.success(), "{}", text(&real.stderr));
    let inside = sim(&["--", program.to_str().expect("a UTF-8 path")]);
    assert!(inside.status.success(), "{}", text(&inside.stderr));
    let expected = text(&real.stdout);
    // The program's own lines, without selectlab's summary.
    let said: String = (text(&inside.stdout).lines())
        .filter(|l| !l.starts_with("sim: "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(said, expected);
    let _ = std::fs::remove_dir_all(dir);
    Some(expected)
}

#[test]
fn batched_zero_copy_and_positioned_calls_answer_as_the_kernel_does() {
    // Fortified, so that ppoll goes through __ppoll_chk.
    let Some(said) = same_inside_as_on_the_kernel("beyond", &["-O2", "-D_FORTIFY_SOURCE=2"]) else {
        return;
    };
    for line in [
        "recvmmsg = 3",
        "received filehello",
        "pread = -1 ESPIPE",
        "copy_file_range = -1 EINVAL",
        "fileno is the socket 1",
        "  fgets line two",
    ] {
        assert!(said.contains(line), "{line} in\n{said}");
    }
}

#[test]
fn a_timerfd_answers_as_the_kernels_does() {
    let Some(said) = same_inside_as_on_the_kernel("timerfd", &["-O2"]) else {
        return;
    };
    for line in [
        "settime on a socket = -1 EINVAL",
        "epoll_wait after the read = 1",
        "  old: left some, every 0.030000000",
        "blocking read = 8, ticks 1",
        "fstat mode 600 size 0",
        "one inode 1",
    ] {
        assert!(said.contains(line), "{line} in\n{said}");
    }
}

#[test]
fn calls_that_would_bypass_the_simulator_are_refused_by_name() {
    if !python() {
        return;
    }
    let rows = [
        (
            "r, w = os.pipe(); os.splice(s.fileno(), w, 1)",
            "splice on a simulated socket",
        ),
        (
            "import ctypes; r, w = os.pipe(); ctypes.CDLL(None).tee(s.fileno(), w, 1, 0)",
            "tee on a simulated socket",
        ),
        (
            "import ctypes; ctypes.CDLL(None).vmsplice(s.fileno(), None, 0, 0)",
            "vmsplice on a simulated socket",
        ),
        (
            "import ctypes; ts = (ctypes.c_long * 2)(1, 0)\n\
             ctypes.CDLL(None).recvmmsg(s.fileno(), None, 1, 0, ts)",
            "recvmmsg with a timeout",
        ),
        (
            "os.preadv(s.fileno(), [bytearray(1)], -1, os.RWF_NOWAIT)",
            "preadv64v2 with flags 0x8",
        ),
    ];
    for (call, why) in rows {
        refused(&format!("{CONNECTED}{call}"), why);
    }
}

#[test]
fn a_poll_that_does_not_wait_may_mix_simulated_and_real_descriptors() {
    if !python() {
        return;
    }
    // The select after the send waits for the byte to reach `s`: loopback usually delivers it
    // before send returns, but on a busy machine the kernel may finish delivering it later.
    let code = format!(
        "{CONNECTED}p = select.poll()\np.register(c, select.POLLOUT)\np.register(1, select.POLLOUT)\n\
         r, w = os.pipe()\np.register(r, select.POLLIN)\nprint(sorted(p.poll(0)))\n\
         os.write(w, b'x')\nc.send(b'y')\nselect.select([s], [], [], 5)\n\
         p.register(s, select.POLLIN)\nprint(sorted(p.poll(0)))"
    );
    let real = Command::new(crate::util::python3())
        .arg("-S")
        .args(["-c", &code])
        .output()
        .expect("python3 runs");
    assert!(real.status.success(), "{}", text(&real.stderr));
    let inside = sim(&["--", crate::util::python3(), "-S", "-c", &code]);
    assert!(inside.status.success(), "{}", text(&inside.stderr));
    let expected = text(&real.stdout);
    assert_eq!(expected.lines().count(), 2, "{expected}");
    assert!(
        text(&inside.stdout).starts_with(&expected),
        "{}",
        text(&inside.stdout)
    );
}
