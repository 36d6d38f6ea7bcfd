//! TLS on the listening socket (rustls): certificates and keys read with
//! the PEM support of `rustls-pki-types` (encrypted PKCS#8 keys with
//! `pkcs8`), a handshake per connection, client certificates checked
//! against a CA and revocation lists, and certificates replaced in place.
//! Nothing here knows about Python.

mod acceptor;
mod settings;

pub(crate) use acceptor::{Refused, Tls};
pub(crate) use settings::{ProtocolMin, TlsError, TlsSettings};
