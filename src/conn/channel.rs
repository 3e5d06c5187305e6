//! The endpoints a client rotates through and the lazily connecting
//! channel to each: one per runtime that uses it.

use super::config::Config;
use crate::net::{PlainConnector, TlsConnector, TlsSettings};
use std::sync::Arc;
use std::time::Duration;
use tonic::codegen::http::Uri;
use tonic::transport::{Channel, Endpoint};

/// The endpoints a client rotates through, as given and as dialled.
pub struct EndpointList {
    pub names: Vec<String>,
    pub uris: Vec<String>,
    pub targets: Vec<Target>,
}

pub struct Connection {
    pub list: Arc<EndpointList>,
    pub index: usize,
    pub generation: u64,
    /// The channel to the current endpoint, made on first use by each
    /// runtime (background, then Perl thread) and tagged with the
    /// generation it was made for: a channel's tasks live on the runtime
    /// that made it.
    pub channels: [Option<(u64, Channel)>; 2],
}

impl Connection {
    /// The calling runtime's channel to the current endpoint.
    pub fn channel(&mut self) -> Channel {
        let slot = &mut self.channels[usize::from(crate::local::driving())];
        match slot {
            Some((generation, channel)) if *generation == self.generation => channel.clone(),
            _ => {
                let channel = make_channel(&self.list.targets[self.index]);
                *slot = Some((self.generation, channel.clone()));
                channel
            }
        }
    }

    /// Moves to endpoint `index`; the channels are made again on next use.
    pub fn move_to(&mut self, index: usize) {
        self.index = index;
        self.generation += 1;
        self.channels = [None, None];
    }
}

const CONNECTION_WINDOW: u32 = 64 << 20;
const STREAM_WINDOW: u32 = 16 << 20;

/// One endpoint as the client dials it.
pub struct Target {
    endpoint: Endpoint,
    connector: Connector,
}

/// What opens a target's connections.
enum Connector {
    /// Ours for TLS: tonic sees a plain `http://` endpoint with an
    /// `https://` origin (its own TLS stays out of the way; requests still
    /// say `https`).
    Tls(TlsConnector),
    /// tonic's TCP connector, with writes that raise no SIGPIPE
    /// (src/net/tcp.rs). It has the connect timeout itself, as tonic's own use
    /// of it does, so a timed-out connect reads as before.
    Plain(PlainConnector),
}

/// The target for `uri` (already normalised by `endpoint_uris`); with TLS
/// it checks that the host can be matched against a certificate.
pub fn make_target(uri: &str, cfg: &Config, tls: Option<&TlsSettings>) -> Result<Target, String> {
    let bad = |e: &dyn std::fmt::Display| format!("endpoint '{uri}' is not host:port: {e}");
    let (dial, connector) = match tls {
        None => (uri.to_string(), None),
        Some(tls) => {
            let parsed: Uri = uri.parse().map_err(|e| bad(&e))?;
            let host = parsed.host().ok_or_else(|| bad(&"no host"))?;
            let port = parsed.port_u16().unwrap_or(443);
            let plain = format!("http://{}", uri.strip_prefix("https://").unwrap_or(uri));
            (plain, Some(tls.connector(host, port)?))
        }
    };
    let connect_timeout = cfg.timeout.min(Duration::from_secs(5));
    // No tcp_nodelay here: tonic reads it only in a connector of its own,
    // and both of ours (PlainConnector, TlsConnector) set it on the socket.
    let mut endpoint = Endpoint::from_shared(dial)
        .map_err(|e| bad(&e))?
        // h2 drops a connection that has more small unread DATA frames than
        // half its connection window allows; hundreds of replies can arrive
        // before their tasks run, so give it a large window.
        .initial_connection_window_size(CONNECTION_WINDOW)
        .initial_stream_window_size(STREAM_WINDOW);
    if let Some((every, answer_within)) = cfg.keepalive {
        // Only while calls or streams are open: etcd's default policy
        // answers pings on an idle connection with a too_many_pings GOAWAY.
        endpoint = endpoint
            .http2_keep_alive_interval(every)
            .keep_alive_timeout(answer_within)
            .keep_alive_while_idle(false);
    }
    if connector.is_some() {
        // tonic puts this timeout around our connector as a whole.
        endpoint = endpoint
            .connect_timeout(connect_timeout)
            .origin(uri.parse().map_err(|e| bad(&e))?);
    }
    let connector = match connector {
        Some(tls) => Connector::Tls(tls),
        None => Connector::Plain(PlainConnector::new(connect_timeout)),
    };
    Ok(Target {
        endpoint,
        connector,
    })
}

/// A channel that connects on first use (and again after each failure).
pub fn make_channel(target: &Target) -> Channel {
    match &target.connector {
        Connector::Tls(tls) => target.endpoint.connect_with_connector_lazy(tls.clone()),
        Connector::Plain(tcp) => target.endpoint.connect_with_connector_lazy(tcp.clone()),
    }
}
