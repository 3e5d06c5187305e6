//! TLS for client connections: the options of `new`, the PEM files they
//! name (read and checked once, when the client is made), and the connector
//! that opens a TLS connection to one endpoint for tonic.
//!
//! The connector is ours rather than tonic's for one reason: in TLS 1.3 the
//! client's side of the handshake is over before the server has looked at
//! the client's certificate. A server that refuses it (none given, unknown
//! CA) says so in an alert right after; when the client has already sent
//! its first request by then, the alert is often lost and the call fails
//! with a bare "connection closed" or "broken pipe". So after the
//! handshake we wait for the server's first bytes (its HTTP/2 SETTINGS)
//! before handing the connection over: a refusal then fails the connect
//! with the server's reason.

use crate::net::tcp::Socket;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tonic::codegen::http::Uri;

/// The TLS options of `new`, as given: nothing here has been checked yet.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// `tls => 1` / `tls => 0`; None when the option was not given.
    pub enabled: Option<bool>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub server_name: Option<String>,
}

impl TlsOptions {
    /// The first option that only makes sense with TLS, if any was given.
    pub fn first_given(&self) -> Option<&'static str> {
        [
            ("tls_ca_file", self.ca_file.is_some()),
            ("tls_cert_file", self.cert_file.is_some()),
            ("tls_key_file", self.key_file.is_some()),
            ("tls_server_name", self.server_name.is_some()),
        ]
        .into_iter()
        .find_map(|(name, given)| given.then_some(name))
    }
}

/// The TLS setup of one client, its files read and checked: making a
/// connector from it fails only on an endpoint host no certificate can name.
#[derive(Clone)]
pub struct TlsSettings {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsSettings {
    /// Reads and checks the files `opts` names; each error names the
    /// option and the file.
    pub fn load(opts: &TlsOptions) -> Result<TlsSettings, String> {
        let mut roots = RootCertStore::empty();
        match &opts.ca_file {
            Some(path) => {
                let pem = read("tls_ca_file", path)?;
                for (i, cert) in certificates("tls_ca_file", path, &pem)?
                    .into_iter()
                    .enumerate()
                {
                    roots.add(cert).map_err(|e| {
                        format!(
                            "tls_ca_file '{}': certificate {} cannot be used as a CA: {e}",
                            path.display(),
                            i + 1
                        )
                    })?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    let why = found
                        .errors
                        .first()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default();
                    return Err(format!(
                        "no tls_ca_file was given and no root certificates were found \
                         on this system{why}"
                    ));
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup failed: {e}"))?
            .with_root_certificates(roots);
        let mut config = match (&opts.cert_file, &opts.key_file) {
            (Some(cert_path), Some(key_path)) => {
                let cert_pem = read("tls_cert_file", cert_path)?;
                let chain = certificates("tls_cert_file", cert_path, &cert_pem)?;
                let key = private_key(key_path)?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| key_pair_error(e, cert_path, key_path))?
            }
            (Some(cert_path), None) => {
                return Err(format!(
                    "tls_cert_file '{}' needs its key: give tls_key_file too",
                    cert_path.display()
                ))
            }
            (None, Some(key_path)) => {
                return Err(format!(
                    "tls_key_file '{}' needs its certificate: give tls_cert_file too",
                    key_path.display()
                ))
            }
            (None, None) => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        let server_name = match &opts.server_name {
            Some(name) => Some(ServerName::try_from(name.clone()).map_err(|_| {
                format!("tls_server_name '{name}' is neither a DNS name nor an IP address")
            })?),
            None => None,
        };
        Ok(TlsSettings {
            config: Arc::new(config),
            server_name,
        })
    }

    /// A connector for the endpoint at `host`:`port`; the certificate must
    /// name tls_server_name, or else `host` (an IP address included).
    pub fn connector(&self, host: &str, port: u16) -> Result<TlsConnector, String> {
        // An IPv6 address comes in brackets, as in the URI.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = match &self.server_name {
            Some(name) => name.clone(),
            None => ServerName::try_from(bare.to_string()).map_err(|_| {
                format!(
                    "endpoint host '{host}' cannot be checked against a certificate; \
                         give tls_server_name"
                )
            })?,
        };
        Ok(TlsConnector {
            config: self.config.clone(),
            name,
            host: bare.into(),
            port,
            peer: format!("{host}:{port}"),
        })
    }
}

const ALPN_H2: &[u8] = b"h2";

/// How long to wait after the handshake for the server's first bytes.
/// etcd's HTTP/2 server (Go's) sends its SETTINGS at once, so the wait ends
/// after one round trip; a server that waits for the client to speak first
/// only delays each new connection by this much.
const SERVER_FIRST_BYTES: Duration = Duration::from_secs(1);

fn read(option: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{option} '{}': cannot read it: {e}", path.display()))
}

/// Every certificate in a PEM text; at least one.
fn certificates(
    option: &str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{option} '{}': not valid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{option} '{}': no certificate in it (expected a PEM 'BEGIN CERTIFICATE' block)",
            path.display()
        ));
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = read("tls_key_file", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        pem::Error::NoItemsFound => format!(
            "tls_key_file '{}': no private key in it (expected a PEM 'BEGIN PRIVATE KEY' block)",
            path.display()
        ),
        e => format!("tls_key_file '{}': not valid PEM: {e}", path.display()),
    })
}

/// Says which file is at fault when rustls refuses a certificate and key.
fn key_pair_error(e: rustls::Error, cert_path: &Path, key_path: &Path) -> String {
    match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => format!(
            "tls_key_file '{}' is not the key of the certificate in tls_cert_file '{}'",
            key_path.display(),
            cert_path.display()
        ),
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => format!(
            "tls_cert_file '{}': the certificate cannot be used: {e}",
            cert_path.display()
        ),
        e => format!(
            "tls_key_file '{}': the key cannot be used: {e}",
            key_path.display()
        ),
    }
}

/// Opens TCP, then TLS, to one endpoint; tonic's HTTP/2 runs on top.
#[derive(Clone)]
pub struct TlsConnector {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    host: String,
    port: u16,
    /// `host:port` as messages show it (an IPv6 address in brackets).
    peer: String,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl TlsConnector {
    async fn connect(self) -> Result<TokioIo<ServerFirst>, BoxError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("tcp connect to {} failed: {e}", self.peer),
                )
            })?;
        tcp.set_nodelay(true)?;
        let tcp = Socket::new(tcp)?;
        // Every failure from here on is the handshake's, as far as the
        // caller is concerned: a refusal of our certificate comes after it.
        let failed =
            |why: &dyn std::fmt::Display| format!("TLS handshake with {} failed: {why}", self.peer);
        let mut tls = tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(self.name.clone(), tcp)
            .await
            .map_err(|e| io::Error::new(e.kind(), failed(&e)))?;
        if tls.get_ref().1.alpn_protocol() != Some(ALPN_H2) {
            return Err(failed(&"the server did not agree to HTTP/2 (ALPN h2)").into());
        }
        let mut first = vec![0; 4096];
        let n = match tokio::time::timeout(SERVER_FIRST_BYTES, tls.read(&mut first)).await {
            Ok(Ok(0)) => return Err(failed(&"the server closed the connection").into()),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(io::Error::new(e.kind(), failed(&e)).into()),
            Err(_) => 0,
        };
        first.truncate(n);
        Ok(TokioIo::new(ServerFirst {
            first,
            at: 0,
            stream: tls,
        }))
    }
}

impl tower_service::Service<Uri> for TlsConnector {
    type Response = TokioIo<ServerFirst>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    /// The URI is the endpoint this connector was made for.
    fn call(&mut self, _: Uri) -> Self::Future {
        Box::pin(self.clone().connect())
    }
}

/// A TLS stream that first gives back the bytes read while waiting for
/// the server to speak.
pub struct ServerFirst {
    first: Vec<u8>,
    at: usize,
    stream: TlsStream<Socket>,
}

impl AsyncRead for ServerFirst {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at < this.first.len() {
            let n = (this.first.len() - this.at).min(buf.remaining());
            buf.put_slice(&this.first[this.at..this.at + n]);
            this.at += n;
            if this.at == this.first.len() {
                this.first = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ServerFirst {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
