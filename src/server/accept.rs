//! The accept loop: one hyper connection per socket, HTTP/1.1 and HTTP/2
//! (prior knowledge, or chosen by ALPN over TLS) on the same port, and a
//! graceful stop.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::watch;

use super::http1::Http1;
use super::options::{HttpMode, HttpOptions, Limits, http1_builder, http2_builder};
use super::preamble::{self, Preamble};
use super::registry::{Place, Registry};
use super::sniff::{Prefixed, Version, sniff};
use super::timeouts::{Activity, InFlight, Timed, Tracked};
use crate::http::metrics::{self, RequestTimer};
use crate::http::{
    ConnInfo, Handler, Handover, Proxies, ServerTasks, StaticFiles, Trusted, read_forwarded,
};
use crate::log::access::AccessLog;
use crate::log::{self, Logger};
use crate::memory;
use crate::tls::{Refused, Tls};

/// How long just-accepted connections get to be read before draining.
const SETTLE: Duration = Duration::from_millis(200);

/// See the heartbeat in [`serve`].
const HEARTBEAT: Duration = Duration::from_secs(1);

/// How long a TLS handshake may take when there is no header-read timeout
/// to bound it.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `conn` to its end; when `draining` fires, the connection finishes
/// the requests it has and then closes. (hyper's three connection types
/// share the method but no trait, hence a macro.)
macro_rules! drive_graceful {
    ($conn:expr, $draining:expr) => {{
        let mut conn = std::pin::pin!($conn);
        tokio::select! {
            ended = conn.as_mut() => ended,
            _ = $draining.cancelled() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        }
    }};
}

/// Runs a connection on its own task, holding its place in the registry.
macro_rules! spawn_graceful {
    ($tracker:expr, $draining:expr, $conn:expr, $place:expr, $client:expr, $activity:expr) => {{
        let draining = $draining.clone();
        let conn = $conn;
        let place = $place;
        let (client, activity) = ($client, $activity);
        $tracker.spawn(async move {
            let _place = place;
            report_end(client, &activity, drive_graceful!(conn, draining));
        });
    }};
}

/// A request hyper refused before it reached the app (a malformed head
/// answered 400, one too large answered 431 or 414, a head not read within
/// the header-read timeout) is counted, and logged at debug level only:
/// any client can cause it, and such clients come in floods. The same
/// timeout closing a keep-alive connection on which nothing arrived
/// (when it is shorter than the keep-alive timeout) refused nothing.
fn report_end(client: Option<std::net::SocketAddr>, activity: &Activity, ended: hyper::Result<()>) {
    let Err(err) = ended else { return };
    let refused = err.is_parse() || (err.is_timeout() && activity.head_begun());
    if !refused {
        return;
    }
    metrics::request_rejected();
    let peer = client.map_or_else(|| "unix socket".to_owned(), |peer| peer.to_string());
    log::debug_from_any_thread(
        Logger::Server,
        &format!("{peer}: request refused before the app: {err}"),
    );
}

/// A listening socket: TCP, or a Unix domain socket (`--uds`).
pub(crate) enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// What every connection of one server shares.
struct Connections<H> {
    handler: Arc<H>,
    mode: HttpMode,
    h1: hyper::server::conn::http1::Builder,
    h2: hyper::server::conn::http2::Builder<TokioExecutor>,
    /// Idle HTTP/1 connections leave hyper (see `http1`).
    park_idle: bool,
    limits: Limits,
    registry: Arc<Registry>,
    tasks: ServerTasks,
    statics: StaticFiles,
    access: Option<Arc<AccessLog>>,
    proxies: Arc<Proxies>,
}

impl<H: Handler> Connections<H> {
    fn serve<IO>(self: &Arc<Self>, io: IO, conn: ConnInfo)
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Arc::new(Activity::default());
        // Refused: dropping the socket closes it.
        let Some(place) = self.registry.admit(&activity) else {
            return;
        };
        activity.opened();
        let io = Timed::new(io, Arc::clone(&activity), self.limits.timeouts);
        self.run(io, conn, activity, place);
    }

    /// Serves a TCP connection that starts with a PROXY protocol preamble
    /// or speaks TLS (or both, the preamble first): that part runs on the
    /// connection's own task (a slow client never holds up the accept
    /// loop), bounded by the header-read timeout, and the timeouts apply
    /// to the socket under TLS.
    fn serve_tcp(
        self: &Arc<Self>,
        tls: Option<Arc<Tls>>,
        mut stream: TcpStream,
        peer: std::net::SocketAddr,
        server: Option<std::net::SocketAddr>,
    ) {
        let protocol = self.proxies.protocol;
        if protocol && !self.proxies.trusted.contains(peer.ip()) {
            // Its preamble would not be believed, and without one the
            // connection cannot be read: closed at once.
            log::debug_from_any_thread(
                Logger::Server,
                &format!("{peer}: not a trusted proxy (--forwarded-allow-ips), connection closed"),
            );
            return;
        }
        let activity = Arc::new(Activity::default());
        let Some(place) = self.registry.admit(&activity) else {
            return;
        };
        activity.opened();
        let this = Arc::clone(self);
        let limit = self.limits.header_read_timeout.unwrap_or(HANDSHAKE_TIMEOUT);
        let what = match (protocol, tls.is_some()) {
            (true, true) => "PROXY protocol preamble and TLS handshake",
            (true, false) => "PROXY protocol preamble",
            _ => "TLS handshake",
        };
        self.tasks.tracker.spawn(async move {
            let start = async {
                let (mut client, mut server) = (peer, server);
                if protocol {
                    let read = preamble::read(&mut stream).await;
                    match read.map_err(|bad| Some(bad.to_string()))? {
                        Preamble::Proxied {
                            client: c,
                            server: s,
                        } => (client, server) = (c, Some(s)),
                        Preamble::Local => {}
                    }
                }
                let tasks = this.tasks.clone();
                let Some(tls) = tls else {
                    let io = Timed::new(stream, Arc::clone(&activity), this.limits.timeouts);
                    let conn = ConnInfo::new(Some(client), server, None, tasks);
                    this.run(io, conn, activity, place);
                    return Ok::<_, Option<String>>(());
                };
                let refused = |r: Refused| match r {
                    Refused::Gone => None,
                    refused => Some(refused.to_string()),
                };
                Tls::screen(&mut stream).await.map_err(refused)?;
                let io = Timed::new(stream, Arc::clone(&activity), this.limits.timeouts);
                let (io, info) = tls.handshake(io).await.map_err(refused)?;
                let conn = ConnInfo::new(Some(client), server, Some(info), tasks);
                this.run(io, conn, activity, place);
                Ok(())
            };
            let done = tokio::select! {
                done = tokio::time::timeout(limit, start) => done,
                _ = this.tasks.draining.cancelled() => return,
            };
            match done {
                Ok(Ok(())) => {}
                Ok(Err(None)) => {}
                Ok(Err(Some(why))) => {
                    log::debug_from_any_thread(Logger::Server, &format!("{peer}: {why}"));
                }
                Err(_) => log::debug_from_any_thread(
                    Logger::Server,
                    &format!("{peer}: {what} not done within {limit:?}"),
                ),
            }
        });
    }

    /// Serves HTTP on `io`, already wrapped in [`Timed`] (under TLS, if
    /// any), holding its `place` in the registry until it closes.
    fn run<IO>(
        self: &Arc<Self>,
        io: IO,
        conn: ConnInfo,
        activity: Arc<Activity>,
        place: Option<Place>,
    ) where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        // Forwarding headers are read only from a trusted peer (a Unix
        // socket's is a local process), and looked for only then.
        let proxies = (self.proxies.headers
            && conn
                .client
                .is_none_or(|peer| self.proxies.trusted.contains(peer.ip())))
        .then(|| Arc::clone(&self.proxies));
        let (client, ended) = (conn.client, Arc::clone(&activity));
        let conn = Arc::new(conn);
        let handler = Arc::clone(&self.handler);
        let limits = self.limits.request;
        let statics = self.statics.clone();
        let access = self.access.clone();
        let handover = Handover::default();
        let upgrades = handover.clone();
        let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            let handler = Arc::clone(&handler);
            // Read here, before the future: nothing per request is cloned
            // for it, and a request without the headers pays one look
            // through its header names.
            let conn = match &proxies {
                Some(proxies) => forwarded(&mut req, &conn, &proxies.trusted),
                None => Arc::clone(&conn),
            };
            let statics = statics.if_any();
            if req.headers().contains_key(hyper::header::UPGRADE) {
                req.extensions_mut().insert(upgrades.clone());
            }
            let in_flight = InFlight::new(&activity, &mut req);
            let mut timer = RequestTimer::start(req.method());
            // Begun before the request moves on, so that a request dropped
            // unanswered (the client left) is still logged.
            let mut logged = access
                .as_ref()
                .map(|log| log.begin(&req, conn.client.map(|a| a.ip()), conn.scheme));
            let head = req.method() == hyper::Method::HEAD;
            async move {
                let response = match limits.admit(req) {
                    // Static routes never reach the app.
                    Ok(req) => match statics.as_ref().and_then(|s| s.find(req.uri().path())) {
                        Some(mount) => mount.serve(&req).await,
                        None => handler.handle(req, &conn).await,
                    },
                    Err(refused) => refused,
                };
                if response.status() == hyper::StatusCode::SWITCHING_PROTOCOLS {
                    in_flight.upgraded();
                }
                if let Some(timer) = &mut timer {
                    timer.status(response.status().as_u16());
                }
                if let Some(pending) = &mut logged {
                    pending.respond(response.status().as_u16(), head);
                }
                Ok::<_, Infallible>(
                    response.map(|body| Tracked::new(body, in_flight, timer, logged)),
                )
            }
        });
        let (connections, draining) = (&self.tasks.tracker, &self.tasks.draining);
        match self.mode {
            HttpMode::Auto => {
                let (this, draining) = (Arc::clone(self), draining.clone());
                connections.spawn(async move {
                    let _place = place;
                    // A client that sends nothing is closed by the
                    // keep-alive timeout (`Timed`), as one that sends part
                    // of a head is by hyper's header-read timeout.
                    let sniffed = tokio::select! {
                        sniffed = sniff(io) => sniffed,
                        _ = draining.cancelled() => return,
                    };
                    let Ok((version, io)) = sniffed else { return };
                    match version {
                        Version::Http1 => {
                            let http1 = this.http1(service, &ended, handover, &draining);
                            report_end(client, &ended, http1.serve(io).await);
                        }
                        Version::Http2 => {
                            let conn = this.h2.serve_connection(TokioIo::new(io), service);
                            // Boxed: inline, hyper's HTTP/2 connection would
                            // make every connection's task bigger, parked
                            // HTTP/1 ones too.
                            let served = Box::pin(async { drive_graceful!(conn, draining) });
                            report_end(client, &ended, served.await);
                        }
                    }
                });
            }
            HttpMode::Http1 => {
                let (this, draining) = (Arc::clone(self), draining.clone());
                connections.spawn(async move {
                    let _place = place;
                    let http1 = this.http1(service, &ended, handover, &draining);
                    let io = Prefixed::new(io, bytes::Bytes::new());
                    report_end(client, &ended, http1.serve(io).await);
                });
            }
            HttpMode::Http2 => {
                let conn = self.h2.serve_connection(TokioIo::new(io), service);
                spawn_graceful!(connections, draining, conn, place, client, ended);
            }
        }
    }
}

impl<H> Connections<H> {
    /// How one HTTP/1 connection is served.
    fn http1<'a, S>(
        &'a self,
        service: S,
        activity: &Arc<Activity>,
        handover: Handover,
        draining: &'a tokio_util::sync::CancellationToken,
    ) -> Http1<'a, S> {
        Http1 {
            builder: &self.h1,
            service,
            activity: Arc::clone(activity),
            handover,
            parks: self.park_idle,
            draining,
            header_read_timeout: self.limits.header_read_timeout,
        }
    }
}

/// The connection as `req`'s forwarding headers describe it (and the
/// forwarded host in its `Host` header), or the connection itself when it
/// has none.
fn forwarded<B>(
    req: &mut hyper::Request<B>,
    conn: &Arc<ConnInfo>,
    trusted: &Trusted,
) -> Arc<ConnInfo> {
    match read_forwarded(req.headers(), trusted) {
        Some(forwarding) => {
            if let Some(host) = forwarding.host.clone() {
                req.headers_mut().insert(hyper::header::HOST, host);
            }
            Arc::new(conn.forwarded_by(&forwarding))
        }
        None => Arc::clone(conn),
    }
}

/// Serves until `stop` holds a grace period, then lets open connections
/// finish for up to that long and returns whether they all did.
pub(crate) async fn serve<H: Handler>(
    listener: Listener,
    handler: Arc<H>,
    opts: HttpOptions,
    mut stop: watch::Receiver<Option<Duration>>,
) -> bool {
    let tls = opts.tls.clone();
    let connections = Arc::new(Connections {
        handler,
        mode: opts.mode,
        h1: http1_builder(&opts),
        h2: http2_builder(&opts),
        park_idle: !opts.pipeline_flush,
        limits: opts.limits,
        registry: Registry::new(opts.limits.max_connections),
        tasks: ServerTasks::default(),
        statics: opts.statics,
        access: opts.access,
        proxies: opts.proxies,
    });
    let server = match &listener {
        Listener::Tcp(l) => l.local_addr().ok(),
        Listener::Unix(_) => None,
    };
    // hyper arms a 30 s header-read timer for every request. tokio wakes
    // its driver (a system call) for each timer armed while the wheel was
    // empty when the I/O thread last went idle, which under load is every
    // one of them. A timer that is always pending less than a second ahead
    // keeps the wheel from being empty, at the price of one wake-up a
    // second.
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.changed() => break,
            _ = heartbeat.tick() => {
                memory::give_back_freed_memory();
                continue;
            }
            accepted = accept(&listener) => accepted,
        };
        match accepted {
            Ok(Accepted::Tcp(stream, peer)) => {
                let _ = stream.set_nodelay(true);
                if tls.is_some() || connections.proxies.protocol {
                    connections.serve_tcp(tls.clone(), stream, peer, server);
                    continue;
                }
                let info = ConnInfo::new(Some(peer), server, None, connections.tasks.clone());
                connections.serve(stream, info);
            }
            Ok(Accepted::Unix(stream)) => {
                let info = ConnInfo::new(None, None, None, connections.tasks.clone());
                connections.serve(stream, info);
            }
            Err(err) if err.kind() == std::io::ErrorKind::InvalidInput => {
                // The supervisor shut the shared socket down to refuse new
                // connections while stopping; this worker's stop follows.
                let _ = stop.changed().await;
                break;
            }
            Err(err) => {
                // Running out of descriptors must not end the server; wait
                // for some connections to close.
                log::error_from_any_thread(Logger::Server, &format!("accept failed: {err}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    let grace = stop.borrow().unwrap_or_default();
    // A connection accepted just before the stop has usually not had its
    // first request read yet, and hyper closes such "idle" connections at
    // once when told to drain: the client would lose a request it sent in
    // good time. So they get a moment to be read first.
    let settle = grace.min(SETTLE);
    tokio::time::sleep(settle).await;
    connections.tasks.draining.cancel();
    connections.tasks.tracker.close();
    tokio::time::timeout(
        grace.saturating_sub(settle),
        connections.tasks.tracker.wait(),
    )
    .await
    .is_ok()
}

enum Accepted {
    Tcp(TcpStream, std::net::SocketAddr),
    Unix(UnixStream),
}

async fn accept(listener: &Listener) -> std::io::Result<Accepted> {
    match listener {
        Listener::Tcp(l) => l.accept().await.map(|(s, peer)| Accepted::Tcp(s, peer)),
        Listener::Unix(l) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use bytes::Bytes;
    use hyper::Response;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::http::ResponseBody;

    /// Answers every request with the request's path, after `delay`.
    struct Echo {
        delay: Duration,
    }

    impl Handler for Echo {
        fn handle(
            &self,
            req: hyper::Request<hyper::body::Incoming>,
            _conn: &Arc<ConnInfo>,
        ) -> impl Future<Output = Response<ResponseBody>> + Send {
            let delay = self.delay;
            async move {
                tokio::time::sleep(delay).await;
                let path = req.uri().path().to_owned();
                Response::new(ResponseBody::full(Bytes::from(path)))
            }
        }
    }

    type Stop = watch::Sender<Option<Duration>>;

    /// Serves [`Echo`] on a free loopback port.
    async fn start(
        mode: HttpMode,
        delay: Duration,
    ) -> (std::net::SocketAddr, Stop, tokio::task::JoinHandle<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = watch::channel(None);
        let opts = HttpOptions {
            mode,
            keep_alive: true,
            pipeline_flush: false,
            h2_max_concurrent_streams: 8,
            h2: None,
            limits: Limits::HYPER,
            tls: None,
            statics: StaticFiles::default(),
            access: None,
            proxies: Arc::new(crate::http::Proxies::NONE),
        };
        let handler = Arc::new(Echo { delay });
        let server = tokio::spawn(serve(Listener::Tcp(listener), handler, opts, stopped));
        (addr, stop, server)
    }

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn serves_requests_and_stops_accepting_at_once() {
        for mode in [HttpMode::Auto, HttpMode::Http1] {
            let (addr, stop, server) = start(mode, Duration::ZERO).await;
            let answer = get(addr, "/hello").await;
            assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
            assert!(answer.ends_with("\r\n\r\n/hello"), "{answer}");
            stop.send(Some(Duration::from_secs(5))).unwrap();
            assert!(server.await.unwrap(), "nothing was left running");
            // The listening socket is closed once the stop began.
            assert!(TcpStream::connect(addr).await.is_err());
        }
    }

    #[tokio::test]
    async fn a_request_in_flight_finishes_within_the_grace_period() {
        let (addr, stop, server) = start(HttpMode::Auto, Duration::from_millis(300)).await;
        let client = tokio::spawn(get(addr, "/slow"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop.send(Some(Duration::from_secs(5))).unwrap();
        let answer = client.await.unwrap();
        assert!(answer.ends_with("/slow"), "{answer}");
        assert!(server.await.unwrap());
    }

    #[tokio::test]
    async fn a_grace_period_too_short_reports_requests_cut_off() {
        let (addr, stop, server) = start(HttpMode::Auto, Duration::from_secs(30)).await;
        let _client = tokio::spawn(get(addr, "/stuck"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop.send(Some(Duration::from_millis(300))).unwrap();
        assert!(!server.await.unwrap());
    }
}
