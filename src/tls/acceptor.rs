//! One listener's TLS: the configuration new handshakes use, swapped in
//! place on reload while open connections carry on with theirs, and what a
//! finished handshake tells the app.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::settings::{Loaded, TlsError, TlsSettings, pem};
use crate::http::TlsInfo;
use crate::sync::Mutex;

/// The first byte of a TLS record carrying a handshake (RFC 8446, 5.1).
const HANDSHAKE_RECORD: u8 = 0x16;

/// Sent to a client that spoke plain HTTP to the TLS port, as nginx's 497
/// does, rather than a TLS alert it would not understand.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Length: 44\r\nConnection: close\r\n\r\n\
This port speaks HTTPS: use https:// here.\r\n";

#[derive(Debug)]
pub(crate) struct Tls {
    settings: TlsSettings,
    current: Mutex<Arc<Loaded>>,
}

/// Why a connection ended before its handshake finished.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The client closed before sending anything.
    Gone,
    /// It spoke plain HTTP; it was answered 400.
    PlainHttp,
    Handshake(std::io::Error),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Gone => f.write_str("client closed before the handshake"),
            Refused::PlainHttp => f.write_str("plain HTTP sent to the TLS port"),
            Refused::Handshake(err) => write!(f, "TLS handshake failed: {err}"),
        }
    }
}

impl Tls {
    pub(crate) fn new(settings: TlsSettings) -> Result<Self, TlsError> {
        let loaded = settings.load()?;
        Ok(Self {
            settings,
            current: Mutex::new(Arc::new(loaded)),
        })
    }

    /// Reads the files again; from now on handshakes use what they hold.
    /// On failure the configuration in use stays.
    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        let loaded = self.settings.load()?;
        *self.current.lock() = Arc::new(loaded);
        Ok(())
    }

    /// Tells a TLS client from one speaking plain HTTP by its first byte,
    /// without consuming it; plain HTTP is answered and closed.
    pub(crate) async fn screen(stream: &mut TcpStream) -> Result<(), Refused> {
        let mut first = [0u8; 1];
        match stream.peek(&mut first).await {
            Ok(0) | Err(_) => Err(Refused::Gone),
            Ok(_) if first[0] == HANDSHAKE_RECORD => Ok(()),
            Ok(_) => {
                answer_plain_http(stream).await;
                Err(Refused::PlainHttp)
            }
        }
    }

    /// Runs the handshake over `io` with the configuration current now.
    pub(crate) async fn handshake<IO>(&self, io: IO) -> Result<(TlsStream<IO>, TlsInfo), Refused>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let loaded = Arc::clone(&self.current.lock());
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&loaded.config));
        let stream = acceptor.accept(io).await.map_err(Refused::Handshake)?;
        let (_, conn) = stream.get_ref();
        let info = TlsInfo {
            version: conn.protocol_version().map_or(0, u16::from),
            cipher_suite: conn
                .negotiated_cipher_suite()
                .map_or(0, |suite| u16::from(suite.suite())),
            server_cert: Arc::clone(&loaded.server_cert_pem),
            client_chain: conn
                .peer_certificates()
                .map(|chain| chain.iter().map(pem).collect())
                .unwrap_or_default(),
        };
        Ok((stream, info))
    }
}

/// Reads what the client sent (so closing does not reset the connection
/// before it reads the answer), answers, and closes.
async fn answer_plain_http(stream: &mut TcpStream) {
    let mut sent = [0u8; 4096];
    let _ = stream.read(&mut sent).await;
    let _ = stream.write_all(PLAIN_HTTP_ANSWER).await;
    let _ = stream.shutdown().await;
    // Whatever else arrives is read and dropped until the client closes,
    // for a moment at most.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        while matches!(stream.read(&mut sent).await, Ok(n) if n > 0) {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_http_answer_has_the_length_it_says() {
        let text = std::str::from_utf8(PLAIN_HTTP_ANSWER).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }
}
