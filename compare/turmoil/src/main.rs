//! The simulator comparison for `selectlab bench chat --transport sim`: the same chat workload
//! in turmoil (tokio's network simulator), the way a tokio user would write it — a task per
//! connection, an unbounded channel per client, one write per line — with zero link latency.
//! Not part of selectlab; it exists to be measured beside it (`docs/src/measurements.md`).
//!
//!     cargo run --release -p selectlab-compare-turmoil -- 50 2000      # clients, lines each

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use turmoil::net::{TcpListener, TcpStream};

const PORT: u16 = 33333;
/// Bytes per line, newline included (selectlab's bench uses the same).
const LINE_BYTES: usize = 64;

type Room = Rc<RefCell<HashMap<SocketAddr, UnboundedSender<Rc<str>>>>>;

fn main() -> turmoil::Result {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let clients = args.next().unwrap_or(Ok(50))?;
    let lines = args.next().unwrap_or(Ok(2000))?;
    let mut sim = turmoil::Builder::new()
        .simulation_duration(Duration::from_secs(24 * 3600))
        .min_message_latency(Duration::ZERO)
        .max_message_latency(Duration::ZERO)
        // Room for a thousand clients' segments in the server's socket buffer.
        .tcp_capacity(1 << 20)
        .build();
    let accepted = Rc::new(Cell::new(0usize));
    let delivered = Rc::new(Cell::new(0u64));
    let on_accept = Rc::clone(&accepted);
    sim.host("server", move || serve(Rc::clone(&on_accept)));
    for c in 0..clients {
        let (accepted, delivered) = (Rc::clone(&accepted), Rc::clone(&delivered));
        sim.client(format!("c{c}"), async move {
            talk(c, clients, lines, accepted, delivered).await
        });
    }
    let started = Instant::now();
    sim.run()?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "turmoil chat: {clients} clients x {lines} lines of {LINE_BYTES} bytes: {} deliveries in {secs:.3} s, {:.0} deliveries/s",
        delivered.get(),
        delivered.get() as f64 / secs
    );
    Ok(())
}

async fn serve(accepted: Rc<Cell<usize>>) -> turmoil::Result {
    let listener = TcpListener::bind((IpAddr::V4(Ipv4Addr::UNSPECIFIED), PORT)).await?;
    let room: Room = Rc::default();
    loop {
        let (stream, peer) = listener.accept().await?;
        accepted.set(accepted.get() + 1);
        let (read_half, mut write_half) = stream.into_split();
        let (tx, mut rx) = unbounded_channel::<Rc<str>>();
        room.borrow_mut().insert(peer, tx);
        tokio::task::spawn_local(async move {
            while let Some(line) = rx.recv().await {
                if write_half.write_all(line.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
        let room = Rc::clone(&room);
        tokio::task::spawn_local(async move {
            let mut reader = BufReader::new(read_half).lines();
            while let Ok(Some(text)) = reader.next_line().await {
                let line: Rc<str> =
                    format!("('{}', {}) say: {text}\n", peer.ip(), peer.port()).into();
                for (who, tx) in room.borrow().iter() {
                    if *who != peer {
                        let _ = tx.send(Rc::clone(&line));
                    }
                }
            }
            room.borrow_mut().remove(&peer);
        });
    }
}

/// One client: waits until the server has everyone, then sends its lines (one write each)
/// while reading every other client's.
async fn talk(
    me: usize,
    clients: usize,
    lines: usize,
    accepted: Rc<Cell<usize>>,
    delivered: Rc<Cell<u64>>,
) -> turmoil::Result {
    let stream = TcpStream::connect(("server", PORT)).await?;
    while accepted.get() < clients {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let (read_half, mut write_half) = stream.into_split();
    let expected = (clients - 1) * lines;
    let reader = tokio::task::spawn_local(async move {
        let mut reader = BufReader::new(read_half).lines();
        let mut heard = 0;
        while heard < expected {
            match reader.next_line().await {
                Ok(Some(_)) => heard += 1,
                _ => break,
            }
        }
        delivered.set(delivered.get() + heard as u64);
    });
    for i in 0..lines {
        let mut line = format!("{me:03}:{i:06} ").into_bytes();
        line.resize(LINE_BYTES - 1, b'.');
        line.push(b'\n');
        write_half.write_all(&line).await?;
    }
    reader.await?;
    Ok(())
}
