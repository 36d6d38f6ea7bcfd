//! The PROXY protocol preamble (versions 1 and 2, parsed by the `ppp`
//! crate): a load balancer that forwards TCP (HAProxy's `send-proxy`, AWS
//! NLB, GCP) writes the client's address before anything else on the
//! connection, before TLS and before HTTP.
//!
//! Exactly the preamble's bytes are taken from the socket, so TLS or HTTP
//! then read the stream from where the preamble ends: the reader peeks,
//! and consumes what it peeked only as far as the preamble goes.

use std::net::SocketAddr;

use ppp::{HeaderResult, PartialResult, v1, v2};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The longest preamble: version 2's 16 fixed bytes and a 16-bit length.
const MAX_PREAMBLE: usize = 16 + u16::MAX as usize;

/// What a valid preamble says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Preamble {
    /// A proxied connection: the client, and the address it connected to.
    Proxied {
        client: SocketAddr,
        server: SocketAddr,
    },
    /// The balancer's own connection (`LOCAL`, a health check) or one it
    /// could not describe (`UNKNOWN`): the socket's addresses stay.
    Local,
}

/// Why a connection's preamble was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Bad {
    /// The peer closed, or the socket failed, before a whole preamble.
    Gone,
    /// Not a PROXY protocol preamble.
    Invalid(String),
}

impl std::fmt::Display for Bad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Gone => write!(f, "closed before a whole PROXY protocol preamble"),
            Self::Invalid(why) => write!(f, "no valid PROXY protocol preamble ({why})"),
        }
    }
}

/// Reads the preamble from `stream`, leaving the bytes after it unread.
pub(crate) async fn read(stream: &mut TcpStream) -> Result<Preamble, Bad> {
    let mut taken: Vec<u8> = Vec::with_capacity(128);
    let mut peeked = vec![0u8; 256];
    loop {
        let room = (MAX_PREAMBLE - taken.len()).min(peeked.len());
        let n = stream
            .peek(&mut peeked[..room])
            .await
            .map_err(|_| Bad::Gone)?;
        if n == 0 {
            return Err(Bad::Gone);
        }
        let mut seen = taken.clone();
        seen.extend_from_slice(&peeked[..n]);
        let parsed = parse(&seen);
        // Incomplete: every byte seen is the preamble's; take them and wait
        // for more (a peek of an emptied buffer waits for new data).
        let take = match &parsed {
            Ok((_, length)) => length - taken.len(),
            Err(None) if seen.len() < MAX_PREAMBLE => n,
            Err(None) => return Err(Bad::Invalid("too long".into())),
            Err(Some(why)) => return Err(Bad::Invalid(why.clone())),
        };
        let mut consumed = vec![0u8; take];
        stream
            .read_exact(&mut consumed)
            .await
            .map_err(|_| Bad::Gone)?;
        taken.extend_from_slice(&consumed);
        if let Ok((preamble, _)) = parsed {
            return Ok(preamble);
        }
        if peeked.len() < MAX_PREAMBLE && n == peeked.len() {
            peeked.resize((peeked.len() * 4).min(MAX_PREAMBLE), 0);
        }
    }
}

/// The preamble at the start of `bytes` and its length; `Err(None)` when
/// more bytes are needed, `Err(Some(why))` when it is not one.
fn parse(bytes: &[u8]) -> Result<(Preamble, usize), Option<String>> {
    let result = HeaderResult::parse(bytes);
    if result.is_incomplete() {
        return Err(None);
    }
    match result {
        HeaderResult::V1(Ok(header)) => {
            let preamble = match header.addresses {
                v1::Addresses::Tcp4(a) => Preamble::Proxied {
                    client: SocketAddr::from((a.source_address, a.source_port)),
                    server: SocketAddr::from((a.destination_address, a.destination_port)),
                },
                v1::Addresses::Tcp6(a) => Preamble::Proxied {
                    client: SocketAddr::from((a.source_address, a.source_port)),
                    server: SocketAddr::from((a.destination_address, a.destination_port)),
                },
                v1::Addresses::Unknown => Preamble::Local,
            };
            Ok((preamble, header.header.len()))
        }
        HeaderResult::V2(Ok(header)) => {
            let preamble = match (header.command, header.addresses) {
                (v2::Command::Proxy, v2::Addresses::IPv4(a)) => Preamble::Proxied {
                    client: SocketAddr::from((a.source_address, a.source_port)),
                    server: SocketAddr::from((a.destination_address, a.destination_port)),
                },
                (v2::Command::Proxy, v2::Addresses::IPv6(a)) => Preamble::Proxied {
                    client: SocketAddr::from((a.source_address, a.source_port)),
                    server: SocketAddr::from((a.destination_address, a.destination_port)),
                },
                // LOCAL, and addresses that are not IP (Unix sockets,
                // unspecified): the spec says to keep the socket's own.
                _ => Preamble::Local,
            };
            Ok((preamble, header.header.len()))
        }
        HeaderResult::V1(Err(err)) => Err(Some(format!("{err}"))),
        HeaderResult::V2(Err(err)) => Err(Some(format!("{err}"))),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;

    /// Sends `chunks` (with a pause between them) and reads the preamble,
    /// and whatever follows it, on the other end.
    async fn exchange(chunks: Vec<Vec<u8>>) -> (Result<Preamble, Bad>, Vec<u8>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            for chunk in chunks {
                stream.write_all(&chunk).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        });
        let (mut stream, _) = listener.accept().await.unwrap();
        let preamble = read(&mut stream).await;
        client.await.unwrap();
        let mut rest = Vec::new();
        if preamble.is_ok() {
            stream.read_to_end(&mut rest).await.unwrap();
        }
        (preamble, rest)
    }

    fn v2(client: &str, server: &str) -> Vec<u8> {
        let addresses: v2::Addresses = (
            client.parse::<SocketAddr>().unwrap(),
            server.parse::<SocketAddr>().unwrap(),
        )
            .into();
        v2::Builder::with_addresses(0x21, v2::Protocol::Stream, addresses)
            .write_tlv(v2::Type::NoOp, b"padding")
            .unwrap()
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn version_1_leaves_what_follows_unread() {
        let line = b"PROXY TCP4 203.0.113.7 10.0.0.1 4711 443\r\nGET / HTTP/1.1\r\n".to_vec();
        let (preamble, rest) = exchange(vec![line]).await;
        assert_eq!(
            preamble,
            Ok(Preamble::Proxied {
                client: "203.0.113.7:4711".parse().unwrap(),
                server: "10.0.0.1:443".parse().unwrap(),
            })
        );
        assert_eq!(rest, b"GET / HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn version_2_split_over_several_writes() {
        let mut bytes = v2("[2001:db8::7]:4711", "[2001:db8::1]:443");
        let whole = bytes.clone();
        bytes.extend_from_slice(b"\x16\x03\x01");
        let chunks = vec![
            bytes[..5].to_vec(),
            bytes[5..20].to_vec(),
            bytes[20..].to_vec(),
        ];
        let (preamble, rest) = exchange(chunks).await;
        assert!(whole.len() > 36, "the TLV is part of it");
        assert_eq!(
            preamble,
            Ok(Preamble::Proxied {
                client: "[2001:db8::7]:4711".parse().unwrap(),
                server: "[2001:db8::1]:443".parse().unwrap(),
            })
        );
        assert_eq!(rest, b"\x16\x03\x01");
    }

    #[tokio::test]
    async fn local_and_unknown_keep_the_socket_addresses() {
        let local = v2::Builder::with_addresses(
            0x20,
            v2::Protocol::Unspecified,
            v2::Addresses::Unspecified,
        )
        .build()
        .unwrap();
        assert_eq!(exchange(vec![local]).await.0, Ok(Preamble::Local));
        let unknown = b"PROXY UNKNOWN\r\n".to_vec();
        assert_eq!(exchange(vec![unknown]).await.0, Ok(Preamble::Local));
    }

    #[tokio::test]
    async fn anything_else_is_refused() {
        let (preamble, _) = exchange(vec![b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()]).await;
        assert!(matches!(preamble, Err(Bad::Invalid(_))), "{preamble:?}");
        let (preamble, _) = exchange(vec![b"PROXY TCP4 1.2.3".to_vec()]).await;
        assert_eq!(preamble, Err(Bad::Gone));
        let (preamble, _) = exchange(vec![b"PROXY TCP4 nonsense here 1 2\r\n".to_vec()]).await;
        assert!(matches!(preamble, Err(Bad::Invalid(_))), "{preamble:?}");
    }
}
