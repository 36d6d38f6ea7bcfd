//! `wsload URL [--connections N] [--duration SECONDS] [--size BYTES] [--binary]`
//!
//! Opens N websocket connections to URL (an echo endpoint), and on each one
//! sends a message and waits for its echo, over and over, for the duration.
//! Prints round-trips per second and the p50/p99 round-trip time. One
//! thread, like `wrk -t1`, so the server keeps the other core.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

struct Options {
    url: String,
    connections: usize,
    duration: Duration,
    size: usize,
    binary: bool,
}

fn parse() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut options = Options {
        url: String::new(),
        connections: 64,
        duration: Duration::from_secs(5),
        size: 64,
        binary: false,
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--connections" => {
                options.connections = value("--connections")?
                    .parse()
                    .map_err(|e| format!("--connections: {e}"))?
            }
            "--duration" => {
                let secs: f64 = value("--duration")?
                    .parse()
                    .map_err(|e| format!("--duration: {e}"))?;
                options.duration = Duration::from_secs_f64(secs);
            }
            "--size" => {
                options.size = value("--size")?
                    .parse()
                    .map_err(|e| format!("--size: {e}"))?
            }
            "--binary" => options.binary = true,
            url if !url.starts_with("--") => options.url = url.to_owned(),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if options.url.is_empty() {
        return Err(
            "usage: wsload URL [--connections N] [--duration S] [--size B] [--binary]".into(),
        );
    }
    Ok(options)
}

/// One connection's loop; returns the round-trip times it measured.
async fn client(url: String, message: Message, until: Instant) -> Result<Vec<Duration>, String> {
    let (mut ws, _) = connect_async(&url).await.map_err(|e| e.to_string())?;
    let mut times = Vec::with_capacity(65536);
    while Instant::now() < until {
        let sent = Instant::now();
        ws.send(message.clone()).await.map_err(|e| e.to_string())?;
        match ws.next().await {
            Some(Ok(reply)) if reply.len() == message.len() => times.push(sent.elapsed()),
            Some(Ok(other)) => return Err(format!("unexpected reply: {other:?}")),
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("connection closed".into()),
        }
    }
    let _ = ws.close(None).await;
    Ok(times)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let options = match parse() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("wsload: {message}");
            std::process::exit(2);
        }
    };
    let message = if options.binary {
        Message::binary(vec![b'x'; options.size])
    } else {
        Message::text("x".repeat(options.size))
    };
    let start = Instant::now();
    let until = start + options.duration;
    let clients: Vec<_> = (0..options.connections)
        .map(|_| tokio::spawn(client(options.url.clone(), message.clone(), until)))
        .collect();
    let mut times = Vec::new();
    let mut errors = 0;
    for handle in clients {
        match handle.await {
            Ok(Ok(t)) => times.extend(t),
            Ok(Err(e)) => {
                errors += 1;
                eprintln!("wsload: {e}");
            }
            Err(e) => {
                errors += 1;
                eprintln!("wsload: {e}");
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    times.sort();
    let pick = |q: f64| {
        times
            .get(((times.len() as f64 * q) as usize).min(times.len().saturating_sub(1)))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    println!("round-trips: {}", times.len());
    println!("round-trips/sec: {:.0}", times.len() as f64 / elapsed);
    println!("p50 ms: {:.3}", pick(0.50));
    println!("p99 ms: {:.3}", pick(0.99));
    println!("errors: {errors}");
}
