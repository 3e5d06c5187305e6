//! The network under the gRPC channels: TCP connections whose writes raise
//! no SIGPIPE (`tcp`), and TLS over them with the server's own reasons for
//! a refusal (`tls`).

pub mod tcp;
pub mod tls;

pub use tcp::PlainConnector;
pub use tls::{TlsConnector, TlsOptions, TlsSettings};
