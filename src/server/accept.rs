//! The accept loop: one hyper connection per socket, HTTP/1.1 and HTTP/2
//! (prior knowledge) on the same port, and a graceful stop.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::Handler;
use crate::http::ConnInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMode {
    Auto,
    Http1,
    Http2,
}

#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub mode: HttpMode,
    pub keep_alive: bool,
    pub h2_max_concurrent_streams: u32,
}

fn builder(opts: &HttpOptions) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(opts.keep_alive)
        .half_close(false);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(opts.h2_max_concurrent_streams);
    match opts.mode {
        HttpMode::Auto => builder,
        HttpMode::Http1 => builder.http1_only(),
        HttpMode::Http2 => builder.http2_only(),
    }
}

/// Serves until `stop` holds a grace period, then lets open connections
/// finish for up to that long and returns whether they all did.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    opts: HttpOptions,
    mut stop: watch::Receiver<Option<Duration>>,
) -> bool {
    let builder = builder(&opts);
    let graceful = GracefulShutdown::new();
    let server = listener.local_addr().ok();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.changed() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // Running out of descriptors must not end the server; wait
                // for some connections to close.
                eprintln!("diorite: accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = Arc::new(ConnInfo {
            client: Some(peer),
            server,
            scheme: "http",
        });
        let handler = Arc::clone(&handler);
        let service = service_fn(move |req| {
            let handler = Arc::clone(&handler);
            let conn = Arc::clone(&conn);
            async move { Ok::<_, Infallible>(handler.handle(req, &conn).await) }
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = watched.await;
        });
    }
    drop(listener);
    let grace = stop.borrow().unwrap_or_default();
    tokio::time::timeout(grace, graceful.shutdown()).await.is_ok()
}
