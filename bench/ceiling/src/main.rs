//! The ceiling for the benchmarks: the same stack as diorite (hyper 1.x
//! on a single-threaded tokio runtime, HTTP/1.1 and HTTP/2 on one port,
//! tokio-tungstenite for websockets), answering every benchmark scenario
//! without any Python.
//!
//! Usage: `hyper-ceiling PORT [CERT KEY]`; with a PEM certificate chain and
//! PKCS#8 key it serves TLS (rustls with ring, ALPN h2 and http/1.1, the
//! provider and protocols diorite uses), so bench/tls.py has a ceiling too.
//! Paths as in bench/apps: `/` hello world,
//! `/json` 4 KiB, `/echo` POST echo, `/1m` and `/4m`, `/stream` 100 chunks
//! of 1 KiB, and a websocket echo on any path.

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::header::{self, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

type Body = BoxBody<Bytes, Infallible>;

// Bodies made once and shared, as the apps' module-level bytes are.
static JSON: OnceLock<Bytes> = OnceLock::new();
static ONE_MIB: OnceLock<Bytes> = OnceLock::new();
static FOUR_MIB: OnceLock<Bytes> = OnceLock::new();
static CHUNK: OnceLock<Bytes> = OnceLock::new();

fn body(cell: &'static OnceLock<Bytes>, size: usize) -> Bytes {
    cell.get_or_init(|| Bytes::from(vec![b'x'; size])).clone()
}

fn full(bytes: Bytes, kind: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(bytes).boxed());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    response
}

async fn handle(mut req: Request<hyper::body::Incoming>) -> Result<Response<Body>, Infallible> {
    if let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) {
        let accept = derive_accept_key(key.as_bytes());
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                // Small reads, as diorite does: tungstenite zero-fills its
                // read chunk before every read.
                let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
                let mut ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                        break;
                    }
                }
            }
        });
        let mut response = Response::new(Full::new(Bytes::new()).boxed());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(
            header::SEC_WEBSOCKET_ACCEPT,
            HeaderValue::from_str(&accept).expect("base64 is a valid header"),
        );
        return Ok(response);
    }
    let response = match req.uri().path() {
        "/json" => full(body(&JSON, 4096), "application/json"),
        "/1m" => full(body(&ONE_MIB, 1 << 20), "application/octet-stream"),
        "/4m" => full(body(&FOUR_MIB, 4 << 20), "application/octet-stream"),
        "/echo" => {
            let body = req.into_body().collect().await.map(|b| b.to_bytes());
            full(body.unwrap_or_default(), "application/octet-stream")
        }
        "/stream" => {
            let chunk = body(&CHUNK, 1024);
            let chunks = futures_util::stream::iter(
                (0..100).map(move |_| Ok::<_, Infallible>(Frame::data(chunk.clone()))),
            );
            let mut response = Response::new(BodyExt::boxed(StreamBody::new(chunks)));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            response
        }
        _ => full(Bytes::from_static(b"Hello, world!"), "text/plain"),
    };
    Ok(response)
}

fn tls_acceptor(cert: &str, key: &str) -> Result<TlsAcceptor, Box<dyn std::error::Error>> {
    let chain = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// One connection, plain or TLS, served until it ends.
async fn serve<IO>(builder: &auto::Builder<TokioExecutor>, io: IO)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let _ = builder
        .serve_connection_with_upgrades(io, service_fn(handle))
        .await;
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args.get(1).and_then(|p| p.parse().ok()).unwrap_or(8000);
    let tls = match (args.get(2), args.get(3)) {
        (Some(cert), Some(key)) => Some(tls_acceptor(cert, key)?),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let builder = Arc::clone(&builder);
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                Some(tls) => {
                    if let Ok(stream) = tls.accept(stream).await {
                        serve(&builder, stream).await;
                    }
                }
                None => serve(&builder, stream).await,
            }
        });
    }
}
