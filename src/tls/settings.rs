//! What the TLS options name, read from disk into a rustls server
//! configuration. Every failure names the setting it came from, so the
//! command line can answer with the option to fix.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pkcs8::EncryptedPrivateKeyInfoOwned;
use pkcs8::der::Decode;
use rustls::RootCertStore;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};

/// The oldest TLS version a client may speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProtocolMin {
    Tls12,
    Tls13,
}

#[derive(Debug, Clone)]
pub(crate) struct TlsSettings {
    pub(crate) certificate: PathBuf,
    pub(crate) keyfile: PathBuf,
    pub(crate) password: Option<String>,
    pub(crate) protocol_min: ProtocolMin,
    /// Client certificates are asked for (and checked against it) when set.
    pub(crate) ca: Option<PathBuf>,
    /// A client without a certificate from `ca` is refused.
    pub(crate) client_verify: bool,
    pub(crate) crls: Vec<PathBuf>,
    /// ALPN protocols offered, most preferred first.
    pub(crate) alpn: Vec<Vec<u8>>,
}

/// The setting a [`TlsError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Setting {
    Certificate,
    Keyfile,
    Password,
    Ca,
    ClientVerify,
    Crl,
}

impl Setting {
    /// The key the Python side maps to an option name.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Setting::Certificate => "certificate",
            Setting::Keyfile => "keyfile",
            Setting::Password => "keyfile_password",
            Setting::Ca => "ca",
            Setting::ClientVerify => "client_verify",
            Setting::Crl => "crl",
        }
    }
}

#[derive(Debug)]
pub(crate) struct TlsError {
    pub(crate) setting: Setting,
    pub(crate) message: String,
}

impl TlsError {
    fn new(setting: Setting, message: impl Into<String>) -> Self {
        Self {
            setting,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A configuration ready for handshakes, with the server's certificate as
/// the ASGI `tls` extension shows it.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) server_cert_pem: Arc<str>,
}

impl TlsSettings {
    pub(crate) fn load(&self) -> Result<Loaded, TlsError> {
        let chain = certificates(&self.certificate, Setting::Certificate)?;
        let key = self.private_key()?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] = match self.protocol_min {
            ProtocolMin::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            ProtocolMin::Tls13 => &[&rustls::version::TLS13],
        };
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(versions)
            .map_err(|err| TlsError::new(Setting::Certificate, err.to_string()))?;
        let builder = match self.client_verifier(&provider)? {
            Some(verifier) => builder.with_client_cert_verifier(verifier),
            None => builder.with_no_client_auth(),
        };
        let server_cert_pem = pem(&chain[0]);
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|err| match err {
                rustls::Error::InconsistentKeys(_) => TlsError::new(
                    Setting::Keyfile,
                    format!(
                        "{} is not the key of the certificate in {}",
                        self.keyfile.display(),
                        self.certificate.display()
                    ),
                ),
                other => TlsError::new(
                    Setting::Keyfile,
                    format!("{}: {other}", self.keyfile.display()),
                ),
            })?;
        config.alpn_protocols = self.alpn.clone();
        // Resumed sessions skip the certificate exchange; tickets keep that
        // working across the worker's connections without a shared cache.
        if let Ok(ticketer) = rustls::crypto::ring::Ticketer::new() {
            config.ticketer = ticketer;
        }
        Ok(Loaded {
            config: Arc::new(config),
            server_cert_pem: server_cert_pem.into(),
        })
    }

    fn private_key(&self) -> Result<PrivateKeyDer<'static>, TlsError> {
        let path = &self.keyfile;
        let text = read(path, Setting::Keyfile)?;
        if text.windows(10).any(|w| w == b"Proc-Type:") {
            return Err(TlsError::new(
                Setting::Keyfile,
                format!(
                    "{}: a key encrypted the legacy OpenSSL way is not supported; \
                     convert it with `openssl pkcs8 -topk8 -v2 aes256`",
                    path.display()
                ),
            ));
        }
        let encrypted = std::str::from_utf8(&text)
            .ok()
            .filter(|text| text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        let Some(encrypted) = encrypted else {
            return PrivateKeyDer::from_pem_slice(&text).map_err(|err| {
                TlsError::new(
                    Setting::Keyfile,
                    format!("{}: no private key found ({err})", path.display()),
                )
            });
        };
        let Some(password) = &self.password else {
            return Err(TlsError::new(
                Setting::Password,
                format!("{} is encrypted and no password was given", path.display()),
            ));
        };
        // Decoded in two steps: der's PEM reader cannot look ahead, which
        // the encryption parameters' decoder needs.
        let info = pem_rfc7468::decode_vec(encrypted.as_bytes())
            .map_err(|err| err.to_string())
            .and_then(|(_, der)| {
                EncryptedPrivateKeyInfoOwned::from_der(&der).map_err(|err| err.to_string())
            })
            .map_err(|err| TlsError::new(Setting::Keyfile, format!("{}: {err}", path.display())))?;
        let document = info.decrypt(password).map_err(|_| {
            TlsError::new(
                Setting::Password,
                format!("the password does not decrypt {}", path.display()),
            )
        })?;
        Ok(PrivatePkcs8KeyDer::from(document.as_bytes().to_vec()).into())
    }

    fn client_verifier(
        &self,
        provider: &Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>, TlsError> {
        let Some(ca) = &self.ca else {
            if self.client_verify {
                return Err(TlsError::new(
                    Setting::ClientVerify,
                    "verifying client certificates needs the CA that signs them",
                ));
            }
            if !self.crls.is_empty() {
                return Err(TlsError::new(
                    Setting::Crl,
                    "revocation lists apply to client certificates, which need a CA",
                ));
            }
            return Ok(None);
        };
        let mut roots = RootCertStore::empty();
        for cert in certificates(ca, Setting::Ca)? {
            roots
                .add(cert)
                .map_err(|err| TlsError::new(Setting::Ca, format!("{}: {err}", ca.display())))?;
        }
        let mut crls = Vec::new();
        for path in &self.crls {
            let text = read(path, Setting::Crl)?;
            let found = CertificateRevocationListDer::pem_slice_iter(&text)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|err| TlsError::new(Setting::Crl, format!("{}: {err}", path.display())))?;
            if found.is_empty() {
                return Err(TlsError::new(
                    Setting::Crl,
                    format!("{}: no revocation list found", path.display()),
                ));
            }
            crls.extend(found);
        }
        let mut builder =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
                .with_crls(crls);
        if !self.client_verify {
            builder = builder.allow_unauthenticated();
        }
        builder
            .build()
            .map(Some)
            .map_err(|err| TlsError::new(Setting::Crl, err.to_string()))
    }
}

fn read(path: &Path, setting: Setting) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|err| TlsError::new(setting, format!("{}: {err}", path.display())))
}

fn certificates(path: &Path, setting: Setting) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let text = read(path, setting)?;
    let chain = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| TlsError::new(setting, format!("{}: {err}", path.display())))?;
    if chain.is_empty() {
        return Err(TlsError::new(
            setting,
            format!("{}: no PEM certificate found", path.display()),
        ));
    }
    Ok(chain)
}

/// A DER certificate as PEM text.
pub(crate) fn pem(cert: &CertificateDer<'_>) -> String {
    pem_rfc7468::encode_string("CERTIFICATE", pem_rfc7468::LineEnding::LF, cert.as_ref())
        .unwrap_or_default()
}
