//! What every task of one client shares: its options, where completions
//! go, the endpoint in use and how a broken one is left, and the auth
//! token (see `token`).

use super::channel::{make_channel, make_target, Connection, EndpointList};
use super::config::{endpoint_uri, split_scheme, Config};
use super::metadata::grpc_timeout_value;
use crate::error::EtcdError;
use crate::net::TlsSettings;
use crate::queue::{
    completion_queue, Completion, CompletionQueue, CompletionSender, Disposition, Reply,
};
use bytes::Bytes;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;

/// Logs in with the remembered credentials. Logging in is an Auth call,
/// made by the auth service a layer above: the client hands it down.
pub type Login =
    for<'a> fn(&'a Shared) -> Pin<Box<dyn Future<Output = Result<(), EtcdError>> + Send + 'a>>;

/// State shared by every task of one client.
pub struct Shared {
    pub cfg: Config,
    pub out: CompletionSender,
    pub(super) conn: Mutex<Connection>,
    /// Loaded once: every endpoint list of this client uses it.
    pub(super) tls: Option<TlsSettings>,
    /// Bumped when the endpoint list changes under the streams' feet:
    /// they reopen on the new current endpoint.
    pub(super) moves: tokio::sync::watch::Sender<u64>,
    pub(super) token: RwLock<Option<AsciiMetadataValue>>,
    /// `cfg.timeout` as a grpc-timeout header value, formatted once.
    pub(super) grpc_timeout: AsciiMetadataValue,
    /// The AuthenticateRequest to log in (again) with: from `new`'s
    /// username and password, or the last successful `authenticate`.
    pub(super) credentials: RwLock<Option<Bytes>>,
    /// Bumped whenever the token changes, so a call that failed with an
    /// old token does not throw away a newer one.
    pub(super) token_gen: AtomicU64,
    /// Held by the one task that logs in; the others wait for its outcome.
    pub(super) login: tokio::sync::Mutex<Option<EtcdError>>,
    /// How to log in (see `Login`).
    pub(super) login_with: Login,
    /// Logins finished (successfully or not).
    pub(super) logins_done: AtomicU64,
    /// Set by the test hook `_echo_requests_for_testing`: calls and
    /// streams are answered with their decoded request and never sent.
    #[cfg(feature = "test-hooks")]
    pub echo_requests: std::sync::atomic::AtomicBool,
    /// Channels to members named by a call's `endpoint` option.
    pub(super) members: Mutex<HashMap<String, Channel>>,
    /// Holds unary calls made after a watch until it is created (the
    /// client's `CallGate`).
    pub gate: Arc<dyn super::WatchOrder>,
}

impl Shared {
    /// The shared state of a new client, and the queue its completions
    /// reach Perl through; `login` logs in (see `Login`); `gate` holds
    /// the calls made after a watch.
    pub fn new(
        cfg: Config,
        login: Login,
        gate: Arc<dyn super::WatchOrder>,
    ) -> Result<(Arc<Shared>, CompletionQueue), String> {
        let (uris, use_tls) = cfg.endpoint_uris()?;
        let tls = if use_tls {
            Some(TlsSettings::load(&cfg.tls)?)
        } else {
            None
        };
        let targets = uris
            .iter()
            .map(|uri| make_target(uri, &cfg, tls.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let list = Arc::new(EndpointList {
            names: cfg.endpoints.clone(),
            uris,
            targets,
        });
        let (out, queue) =
            completion_queue().map_err(|e| format!("cannot create wake-up socket: {e}"))?;
        let grpc_timeout = grpc_timeout_value(cfg.timeout);
        let shared = Arc::new(Shared {
            cfg,
            out,
            conn: Mutex::new(Connection {
                list,
                index: 0,
                generation: 0,
                channels: [None, None],
            }),
            token: RwLock::new(None),
            grpc_timeout,
            credentials: RwLock::new(None),
            token_gen: AtomicU64::new(0),
            login: tokio::sync::Mutex::new(None),
            login_with: login,
            logins_done: AtomicU64::new(0),
            #[cfg(feature = "test-hooks")]
            echo_requests: std::sync::atomic::AtomicBool::new(false),
            members: Mutex::new(HashMap::new()),
            tls,
            moves: tokio::sync::watch::channel(0).0,
            gate,
        });
        Ok((shared, queue))
    }

    /// The channel in use and its generation (for `connection_failed`).
    pub fn channel(&self) -> (Channel, u64) {
        let (channel, generation, _) = self.connection();
        (channel, generation)
    }

    /// The channel in use, its generation and its endpoint's index.
    pub fn connection(&self) -> (Channel, u64, usize) {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        (c.channel(), c.generation, c.index)
    }

    /// host:port of endpoint `index`, as `on_request` reports it.
    pub fn endpoint_address(&self, index: usize) -> String {
        let c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let uri = &c.list.uris[index.min(c.list.uris.len() - 1)];
        split_scheme(uri).1.to_string()
    }

    pub fn current_endpoint(&self) -> String {
        let c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        c.list.names[c.index].clone()
    }

    /// The endpoint list as the user gave it.
    pub fn endpoints(&self) -> Vec<String> {
        let c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        c.list.names.clone()
    }

    /// Moves to the next endpoint after a transport failure on `generation`;
    /// a no-op when another task already moved on or there is one endpoint.
    pub fn connection_failed(&self, generation: u64) {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if c.generation != generation || c.list.targets.len() < 2 {
            return;
        }
        let next = (c.index + 1) % c.list.targets.len();
        c.move_to(next);
    }

    /// After a stream found its connection dead (no answer at all, though
    /// the socket looks open): a fresh connection, to the next endpoint
    /// when there are several, else to the same one again.
    pub fn connection_dead(&self, generation: u64) {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if c.generation != generation {
            return;
        }
        let next = (c.index + 1) % c.list.targets.len();
        c.move_to(next);
    }

    /// The URI of a member a call names with its `endpoint` option (not
    /// necessarily one of the endpoints), checked against this client's
    /// plaintext or TLS.
    pub fn member_uri(&self, name: &str) -> Result<String, String> {
        let tls = self.tls.is_some();
        match split_scheme(name).0 {
            Some("http") if tls => Err(format!(
                "endpoint '{name}' asks for plaintext; this client uses TLS"
            )),
            Some("https") if !tls => Err(format!(
                "endpoint '{name}' asks for TLS; this client uses plaintext"
            )),
            _ => endpoint_uri(name, tls),
        }
    }

    /// A channel to the member at `uri` (see `member_uri`), made once and
    /// kept (must run inside the runtime).
    pub fn member_channel(&self, uri: &str) -> Result<Channel, String> {
        let mut members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ch) = members.get(uri) {
            return Ok(ch.clone());
        }
        let ch = make_channel(&make_target(uri, &self.cfg, self.tls.as_ref())?);
        members.insert(uri.to_string(), ch.clone());
        Ok(ch)
    }

    /// Replaces the endpoint list. The current endpoint stays in use when
    /// the new list has it; otherwise calls go to the new list's first,
    /// and open streams reopen there.
    pub fn set_endpoints(&self, names: Vec<String>) -> Result<(), String> {
        if names.is_empty() {
            return Err("the endpoint list must not be empty".into());
        }
        let tls = self.tls.is_some();
        let mut uris = Vec::with_capacity(names.len());
        for e in &names {
            match (split_scheme(e).0, tls) {
                (Some("http"), true) => {
                    return Err(format!(
                        "endpoint '{e}' asks for plaintext; this client uses TLS"
                    ))
                }
                (Some("https"), false) => {
                    return Err(format!(
                        "endpoint '{e}' asks for TLS; this client uses plaintext"
                    ))
                }
                _ => uris.push(endpoint_uri(e, tls)?),
            }
        }
        let targets = uris
            .iter()
            .map(|u| make_target(u, &self.cfg, self.tls.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let list = Arc::new(EndpointList {
            names,
            uris,
            targets,
        });
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let current = &c.list.uris[c.index];
        match list.uris.iter().position(|u| u == current) {
            Some(i) => {
                c.index = i;
                c.list = list;
            }
            None => {
                c.list = list;
                c.move_to(0);
                drop(c);
                self.moves.send_modify(|n| *n += 1);
            }
        }
        Ok(())
    }

    /// A receiver that fires when the streams should move (see `moves`).
    pub fn watch_moves(&self) -> tokio::sync::watch::Receiver<u64> {
        self.moves.subscribe()
    }

    pub fn send(&self, id: u64, disposition: Disposition, result: Result<Reply, EtcdError>) {
        // The first answer to a watch (created, refused, ended) lets the
        // calls made after it go.
        self.gate.settle(id);
        self.out.send(Completion {
            id,
            disposition,
            result,
            info: None,
        });
    }
}
