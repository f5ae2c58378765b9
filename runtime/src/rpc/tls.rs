//! TLS, and mutual TLS, for the RPC transport: go-micro's secure transport option.
//!
//! A server given a [`ServerTls`] speaks mucp over HTTPS on its one listener and registers its
//! node with go-micro's `secure=true` metadata; a client given a [`ClientTls`] calls every node
//! over HTTPS, checking the node's certificate against the roots it was given (for an IP
//! address, its IP SAN). With a client CA on the server's side, a client must present a
//! certificate that CA signed (mutual TLS); a client without one is refused during the
//! handshake, before any request is read.
//!
//! Both are rustls with ring, as every other TLS connection of rmicro. From the environment
//! (what `#[service]` and `Client::from_args` read):
//!
//! | variable | side | what |
//! |---|---|---|
//! | `MICRO_TLS_CERT`, `MICRO_TLS_KEY` | server | its certificate chain and key (PEM files): TLS on |
//! | `MICRO_TLS_CLIENT_CA` | server | clients must present a certificate signed by this CA (mutual TLS) |
//! | `MICRO_TLS_CA` | client | the roots a node's certificate is checked against: TLS on |
//! | `MICRO_TLS_CLIENT_CERT`, `MICRO_TLS_CLIENT_KEY` | client | the certificate it presents (mutual TLS) |

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::{Error, Result};

const ERROR_ID: &str = "go.micro.transport";

/// The node metadata key go-micro sets on a node that serves TLS.
pub const SECURE_METADATA: &str = "secure";

/// A server's TLS: its certificate and, for mutual TLS, the CA its clients' certificates must
/// be signed by.
#[derive(Clone)]
pub struct ServerTls(pub(crate) Arc<rustls::ServerConfig>);

/// A client's TLS: the roots a node's certificate is checked against and, for mutual TLS, the
/// certificate it presents.
#[derive(Clone)]
pub struct ClientTls(pub(crate) Arc<rustls::ClientConfig>);

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(what: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad(format!("{what}: not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(bad(format!("{what}: no certificate in it")));
    }
    Ok(certs)
}

fn key(what: &str, pem: &[u8]) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| bad(format!("{what}: no private key: {e}")))
}

fn roots(what: &str, pem: &[u8]) -> Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(what, pem)? {
        roots
            .add(cert)
            .map_err(|e| bad(format!("{what}: not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

fn bad(detail: String) -> Error {
    Error::bad_request(ERROR_ID, format!("tls: {detail}"))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| bad(format!("cannot read `{}`: {e}", path.display())))
}

impl ServerTls {
    /// A server configuration of your own (ALPN is set to `http/1.1`).
    pub fn new(mut config: rustls::ServerConfig) -> Self {
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self(Arc::new(config))
    }

    /// From PEM: the certificate chain and its key; with `client_ca`, clients must present a
    /// certificate that CA signed (mutual TLS).
    pub fn from_pem(cert_chain: &[u8], key_pem: &[u8], client_ca: Option<&[u8]>) -> Result<Self> {
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(e.to_string()))?;
        let builder = match client_ca {
            Some(ca) => {
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots("the client CA", ca)?),
                    provider(),
                )
                .build()
                .map_err(|e| bad(format!("the client CA: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder
            .with_single_cert(
                certs("the certificate", cert_chain)?,
                key("the key", key_pem)?,
            )
            .map_err(|e| bad(format!("the certificate and key: {e}")))?;
        Ok(Self::new(config))
    }

    /// From PEM files (as `MICRO_TLS_CERT`, `MICRO_TLS_KEY`, `MICRO_TLS_CLIENT_CA` name them).
    pub fn from_files(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<Self> {
        let ca = client_ca.map(read).transpose()?;
        Self::from_pem(&read(cert)?, &read(key)?, ca.as_deref())
    }

    /// From `MICRO_TLS_CERT`, `MICRO_TLS_KEY` and `MICRO_TLS_CLIENT_CA`; `None` when the first
    /// two are not set.
    pub fn from_env() -> Result<Option<Self>> {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        match (var("MICRO_TLS_CERT"), var("MICRO_TLS_KEY")) {
            (Some(cert), Some(key)) => {
                let ca = var("MICRO_TLS_CLIENT_CA");
                Self::from_files(
                    Path::new(&cert),
                    Path::new(&key),
                    ca.as_deref().map(Path::new),
                )
                .map(Some)
            }
            (None, None) => Ok(None),
            _ => Err(bad(
                "MICRO_TLS_CERT and MICRO_TLS_KEY go together: set both, or neither".to_owned(),
            )),
        }
    }
}

impl ServerTls {
    /// The same, offering HTTP/2 first (`h2`, then `http/1.1`): a server that also speaks
    /// go-micro's grpc protocol, whose clients (grpc-go among them) require `h2`.
    pub(crate) fn with_h2(&self) -> Self {
        let mut config = (*self.0).clone();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Self(Arc::new(config))
    }
}

impl ClientTls {
    /// The same, asking for HTTP/2 (`h2`): for nodes of go-micro's grpc protocol.
    pub(crate) fn with_h2(&self) -> Self {
        let mut config = (*self.0).clone();
        config.alpn_protocols = vec![b"h2".to_vec()];
        Self(Arc::new(config))
    }

    /// A client configuration of your own (ALPN is set to `http/1.1`).
    pub fn new(mut config: rustls::ClientConfig) -> Self {
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self(Arc::new(config))
    }

    /// From PEM: the CA (or CAs) a node's certificate must chain to; with `identity` (the
    /// certificate chain and its key), the certificate presented to servers that ask for one.
    pub fn from_pem(ca: &[u8], identity: Option<(&[u8], &[u8])>) -> Result<Self> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(e.to_string()))?
            .with_root_certificates(roots("the CA", ca)?);
        let config = match identity {
            Some((chain, key_pem)) => builder
                .with_client_auth_cert(
                    certs("the client certificate", chain)?,
                    key("the client key", key_pem)?,
                )
                .map_err(|e| bad(format!("the client certificate and key: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        Ok(Self::new(config))
    }

    /// From PEM files (as `MICRO_TLS_CA`, `MICRO_TLS_CLIENT_CERT` and `MICRO_TLS_CLIENT_KEY`
    /// name them).
    pub fn from_files(ca: &Path, identity: Option<(&Path, &Path)>) -> Result<Self> {
        let identity = match identity {
            Some((cert, key)) => Some((read(cert)?, read(key)?)),
            None => None,
        };
        Self::from_pem(
            &read(ca)?,
            identity.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice())),
        )
    }

    /// From `MICRO_TLS_CA`, `MICRO_TLS_CLIENT_CERT` and `MICRO_TLS_CLIENT_KEY`; `None` when
    /// `MICRO_TLS_CA` is not set.
    pub fn from_env() -> Result<Option<Self>> {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let Some(ca) = var("MICRO_TLS_CA") else {
            return Ok(None);
        };
        let identity = match (var("MICRO_TLS_CLIENT_CERT"), var("MICRO_TLS_CLIENT_KEY")) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => {
                return Err(bad(
                    "MICRO_TLS_CLIENT_CERT and MICRO_TLS_CLIENT_KEY go together: set both, or \
                     neither"
                        .to_owned(),
                ));
            }
        };
        Self::from_files(
            Path::new(&ca),
            identity
                .as_ref()
                .map(|(c, k)| (Path::new(c.as_os_str()), Path::new(k.as_os_str()))),
        )
        .map(Some)
    }
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerTls")
    }
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientTls")
    }
}

/// Two configurations are equal when they are the same one.
impl PartialEq for ServerTls {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for ServerTls {}

/// Two configurations are equal when they are the same one.
impl PartialEq for ClientTls {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for ClientTls {}

/// The client's connections: plain TCP, or TLS when the client has a [`ClientTls`].
pub(crate) mod connect {
    use std::future::Future;
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use http::Uri;
    use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
    use hyper_util::rt::TokioIo;
    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tokio::net::TcpStream;

    use super::ClientTls;

    /// A connection to a node.
    pub(crate) enum Stream {
        Plain(TcpStream),
        Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    }

    impl Connection for Stream {
        fn connected(&self) -> Connected {
            Connected::new()
        }
    }

    impl AsyncRead for Stream {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            match self.get_mut() {
                Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
                Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            }
        }
    }

    impl AsyncWrite for Stream {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            match self.get_mut() {
                Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
                Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            }
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            match self.get_mut() {
                Stream::Plain(s) => Pin::new(s).poll_flush(cx),
                Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            }
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            match self.get_mut() {
                Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
                Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            }
        }
    }

    /// hyper's connector: TCP by [`HttpConnector`] (its dial timeout and `TCP_NODELAY`), then
    /// the TLS handshake when the client has TLS.
    #[derive(Clone)]
    pub(crate) struct Connector {
        pub(crate) tcp: HttpConnector,
        pub(crate) tls: Option<tokio_rustls::TlsConnector>,
    }

    impl Connector {
        pub(crate) fn new(tcp: HttpConnector, tls: Option<&ClientTls>) -> Self {
            Self {
                tcp,
                tls: tls.map(|t| tokio_rustls::TlsConnector::from(t.0.clone())),
            }
        }
    }

    type Connecting = Pin<Box<dyn Future<Output = io::Result<TokioIo<Stream>>> + Send>>;

    impl tower_service::Service<Uri> for Connector {
        type Response = TokioIo<Stream>;
        type Error = io::Error;
        type Future = Connecting;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            self.tcp.poll_ready(cx).map_err(io::Error::other)
        }

        fn call(&mut self, uri: Uri) -> Self::Future {
            let host = uri.host().unwrap_or_default().to_owned();
            // HttpConnector dials `http://` only; TLS is added here.
            let plain_uri = match http::uri::Builder::from(uri.clone()).scheme("http").build() {
                Ok(u) => u,
                Err(e) => return Box::pin(async move { Err(io::Error::other(e)) }),
            };
            let tcp = self.tcp.call(plain_uri);
            let tls = self.tls.clone();
            Box::pin(async move {
                let tcp = tcp.await.map_err(io::Error::other)?.into_inner();
                let Some(tls) = tls else {
                    return Ok(TokioIo::new(Stream::Plain(tcp)));
                };
                let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                let stream = tls.connect(name, tcp).await?;
                Ok(TokioIo::new(Stream::Tls(Box::new(stream))))
            })
        }
    }
}
