//! The comparison server for `selectlab load`: an idiomatic tokio chat room, the way tokio's
//! own chat example is written (a task per connection, an unbounded channel per client, the
//! room a mutex-guarded map of senders). Not part of selectlab; it exists to be measured
//! beside `selectlab chat serve` and `ncat --chat` (`docs/src/measurements.md`).
//!
//!     cargo run --release -p selectlab-compare-tokio -- 127.0.0.1:7000
//!
//! With `--current-thread` it runs on tokio's single-threaded runtime, which `selectlab sim`
//! can run inside the simulator (the multi-threaded one is refused there).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

type Room = Arc<Mutex<HashMap<SocketAddr, UnboundedSender<String>>>>;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut runtime = if args.iter().any(|a| a == "--current-thread") {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let addr = (args.iter().find(|a| !a.starts_with("--")).cloned())
        .unwrap_or_else(|| "127.0.0.1:7000".to_string());
    runtime.enable_all().build()?.block_on(room(addr))
}

async fn room(addr: String) -> std::io::Result<()> {
    let listener = TcpListener::bind(&addr).await?;
    println!("tokio chat on {}", listener.local_addr()?);
    let room: Room = Arc::default();
    loop {
        let (stream, peer) = listener.accept().await?;
        let room = Arc::clone(&room);
        tokio::spawn(async move {
            let _ = serve(stream, peer, room).await;
        });
    }
}

async fn serve(stream: TcpStream, peer: SocketAddr, room: Room) -> std::io::Result<()> {
    let (read_half, write_half) = stream.into_split();
    let (tx, mut rx) = unbounded_channel::<String>();
    room.lock().expect("room lock").insert(peer, tx);
    let writer = tokio::spawn(async move {
        let mut out = BufWriter::new(write_half);
        while let Some(line) = rx.recv().await {
            out.write_all(line.as_bytes()).await?;
            // Flush once the queue is empty, not once per line.
            while let Ok(line) = rx.try_recv() {
                out.write_all(line.as_bytes()).await?;
            }
            out.flush().await?;
        }
        Ok::<(), std::io::Error>(())
    });
    let mut lines = BufReader::new(read_half).lines();
    while let Some(line) = lines.next_line().await? {
        let message = format!("{peer}: {line}\n");
        for (other, tx) in room.lock().expect("room lock").iter() {
            if *other != peer {
                let _ = tx.send(message.clone());
            }
        }
    }
    room.lock().expect("room lock").remove(&peer);
    writer.abort();
    Ok(())
}
