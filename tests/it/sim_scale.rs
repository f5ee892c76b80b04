//! A thousand simulated clients is an ordinary run: all connect, all are served, all hear back.

use selectlab::addr::{Family, SockAddr, SockType};
use selectlab::kernel::{Fd, Kernel};
use selectlab::sim::decide::Decider;
use selectlab::sim::{Sim, SimConfig};

const CLIENTS: usize = 1_000;

#[test]
fn a_thousand_clients_connect_and_exchange() {
    let config = SimConfig {
        transcript: false,
        ..SimConfig::default()
    };
    let mut k = Sim::new(config, Decider::faithful());
    let l = k.socket(Family::Inet, SockType::Stream).unwrap();
    k.bind(l, &SockAddr::Inet("127.0.0.1:0".parse().unwrap()))
        .unwrap();
    k.listen(l, CLIENTS as u32).unwrap();
    let addr = k.getsockname(l).unwrap();
    let clients: Vec<Fd> = (0..CLIENTS)
        .map(|i| {
            let c = k.socket(Family::Inet, SockType::Stream).unwrap();
            assert_eq!(k.connect(c, &addr), Err(nix::errno::Errno::EINPROGRESS));
            assert_eq!(
                k.send(c, format!("client {i}").as_bytes()),
                Ok(format!("client {i}").len())
            );
            c
        })
        .collect();
    let mut buf = [0u8; 64];
    for i in 0..CLIENTS {
        let (s, _) = k.accept(l).unwrap();
        let n = k.recv(s, &mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            format!("client {i}").as_bytes(),
            "accept order is connect order"
        );
        assert_eq!(k.send(s, b"good bye"), Ok(8));
        k.close(s).unwrap();
    }
    for c in clients {
        assert_eq!(k.recv(c, &mut buf), Ok(8));
        assert_eq!(k.recv(c, &mut buf), Ok(0), "then end of stream");
        k.close(c).unwrap();
    }
    assert_eq!(k.now(), std::time::Duration::ZERO, "nothing had to wait");
}
