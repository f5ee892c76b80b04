//! eventfd against the kernel: random sequences of writes (zero, small, huge, the forbidden
//! u64::MAX), reads (whole, short buffers) and waits (poll, and epoll in level and edge mode)
//! on a counter and a semaphore give the same results on both transports.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use selectlab::kernel::{Events, Kernel};
use selectlab::real_kernel::RealKernel;
use selectlab::sim::Sim;

use crate::util;

#[derive(Debug, Clone)]
enum Op {
    Write(u64),
    /// A read into a buffer of this many bytes.
    Read(usize),
    Poll,
    /// epoll_wait on the level-triggered (false) or edge-triggered (true) instance.
    Wait(bool),
}

fn op() -> impl Strategy<Value = Op> {
    let value = prop_oneof![
        Just(0u64),
        1u64..4,
        Just(u64::MAX - 2),
        Just(u64::MAX - 1),
        Just(u64::MAX),
        any::<u64>(),
    ];
    prop_oneof![
        3 => value.prop_map(Op::Write),
        3 => prop_oneof![Just(8usize), Just(4), Just(16)].prop_map(Op::Read),
        1 => Just(Op::Poll),
        2 => any::<bool>().prop_map(Op::Wait),
    ]
}

/// Runs `ops` on a fresh eventfd; one line per result.
fn run(k: &mut dyn Kernel, initval: u32, semaphore: bool, ops: &[Op]) -> Vec<String> {
    let fd = k.eventfd(initval, semaphore).expect("an eventfd");
    let watched = util::Watched::new(k, fd, Events::IN | Events::OUT);
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        let line = match op {
            Op::Write(v) => format!("write {v}: {:?}", k.send(fd, &v.to_ne_bytes())),
            Op::Read(len) => {
                let mut buf = vec![0u8; *len];
                let r = k.recv(fd, &mut buf);
                let value = (buf.get(..8)).map(|b| u64::from_ne_bytes(b.try_into().unwrap()));
                format!("read {len}: {r:?} {value:?}")
            }
            Op::Poll => watched.poll(k),
            Op::Wait(edge) => watched.wait(k, *edge),
        };
        out.push(line);
    }
    watched.close(k);
    out
}

#[test]
fn eventfd_matches_the_kernel() {
    let mut runner = TestRunner::new(Config {
        cases: util::cases(256),
        ..Config::default()
    });
    let strategy = (
        prop_oneof![Just(0u32), Just(1), any::<u32>()],
        any::<bool>(),
        proptest::collection::vec(op(), 1..40),
    );
    let outcome = runner.run(&strategy, |(initval, semaphore, ops)| {
        let real = run(&mut RealKernel::new(), initval, semaphore, &ops);
        let sim = run(&mut Sim::faithful(), initval, semaphore, &ops);
        prop_assert_eq!(real, sim);
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}
