//! One client: its background thread running a tokio runtime, the channel to
//! the current endpoint, the auth token, and the unary call path.

use crate::error::EtcdError;
use crate::net::PlainConnector;
use crate::perl::k;
use crate::perl::{Builder, Hv, ToPerl};
use crate::queue::{
    completion_queue, CallInfo, Completion, CompletionQueue, CompletionSender, Disposition, Reply,
};
use crate::tls::{TlsConnector, TlsOptions, TlsSettings};
use bytes::{Buf, BufMut, Bytes};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::codegen::http::Uri;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::Status;

/// Options of `EV::Etcd->new`, already checked by the XS side.
#[derive(Debug, Clone)]
pub struct Config {
    pub endpoints: Vec<String>,
    pub timeout: Duration,
    /// Stream reconnect attempts; negative means unlimited.
    pub max_retries: i64,
    pub health_interval: Option<Duration>,
    pub auth_token: Option<String>,
    /// Whether an `on_request` hook wants a CallInfo per unary call.
    pub on_request: bool,
    /// Largest unary reply and request, in bytes (`usize::MAX`: no limit).
    pub max_recv_size: usize,
    pub max_send_size: usize,
    /// `username` and `password` of `new`: log in before the first call.
    pub login: Option<(String, String)>,
    pub tls: TlsOptions,
    /// HTTP/2 ping interval and how long to wait for its answer; `None`:
    /// no pings.
    pub keepalive: Option<(Duration, Duration)>,
    /// Refresh the endpoint list from member_list this often.
    pub auto_sync: Option<Duration>,
    /// Probe an idle watch stream with a progress request this often.
    pub watch_probe: Option<Duration>,
    /// `retry`: how often a failed call may be repeated (see `may_repeat`).
    pub retry: u32,
    /// Run unary calls and the watch stream on the Perl thread (see
    /// `local`) when that can be set up; else on the background thread.
    pub inline_io: bool,
}

/// How an endpoint was written: its scheme, if any, and `host:port`.
fn split_scheme(e: &str) -> (Option<&'static str>, &str) {
    if let Some(rest) = e.strip_prefix("https://") {
        (Some("https"), rest)
    } else if let Some(rest) = e.strip_prefix("http://") {
        (Some("http"), rest)
    } else {
        (None, e)
    }
}

impl Config {
    /// Normalises endpoints to URIs and decides whether the client uses TLS
    /// (true: every URI is https). Errors name the endpoint or option at fault.
    pub fn endpoint_uris(&self) -> Result<(Vec<String>, bool), String> {
        if self.endpoints.is_empty() {
            return Err("endpoints must not be empty".into());
        }
        let scheme_of = |want: &str| {
            self.endpoints
                .iter()
                .find(|e| split_scheme(e).0 == Some(want))
        };
        let (https, http) = (scheme_of("https"), scheme_of("http"));
        if let (Some(s), Some(p)) = (https, http) {
            return Err(format!(
                "endpoints mix TLS and plaintext ('{s}' and '{p}'): a client uses one or the other"
            ));
        }
        let tls = match (self.tls.enabled, https, http) {
            (Some(true), _, Some(p)) => {
                return Err(format!(
                    "endpoint '{p}' asks for plaintext, but tls => 1 was given; \
                     write it as host:port or https://host:port"
                ))
            }
            (Some(false), Some(s), _) => {
                return Err(format!(
                    "endpoint '{s}' asks for TLS, but tls => 0 was given"
                ))
            }
            (Some(on), _, _) => on,
            (None, https, _) => https.is_some(),
        };
        if !tls {
            if let Some(option) = self.tls.first_given() {
                return Err(if self.tls.enabled == Some(false) {
                    format!("{option} was given, but tls => 0 turns TLS off")
                } else {
                    format!(
                        "{option} was given, but the endpoints are plaintext: \
                         add tls => 1 or use https:// endpoints"
                    )
                });
            }
        }
        let uris = self
            .endpoints
            .iter()
            .map(|e| endpoint_uri(e, tls))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((uris, tls))
    }
}

/// `e` as a URI of the client's scheme; `e` may carry that scheme.
fn endpoint_uri(e: &str, tls: bool) -> Result<String, String> {
    let scheme = if tls { "https" } else { "http" };
    let (_, rest) = split_scheme(e);
    // host:port, optionally with one trailing slash; no path.
    if rest.is_empty() || rest.trim_end_matches('/').contains('/') {
        return Err(format!("endpoint '{e}' is not host:port"));
    }
    let uri = format!("{scheme}://{}", rest.trim_end_matches('/'));
    Endpoint::from_shared(uri.clone()).map_err(|_| format!("endpoint '{e}' is not host:port"))?;
    Ok(uri)
}

/// The endpoints a client rotates through, as given and as dialled.
struct EndpointList {
    names: Vec<String>,
    uris: Vec<String>,
    targets: Vec<Target>,
}

struct Connection {
    list: Arc<EndpointList>,
    index: usize,
    generation: u64,
    /// The channel to the current endpoint, made on first use by each
    /// runtime (background, then Perl thread) and tagged with the
    /// generation it was made for: a channel's tasks live on the runtime
    /// that made it.
    channels: [Option<(u64, Channel)>; 2],
}

impl Connection {
    /// The calling runtime's channel to the current endpoint.
    fn channel(&mut self) -> Channel {
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
    fn move_to(&mut self, index: usize) {
        self.index = index;
        self.generation += 1;
        self.channels = [None, None];
    }
}

/// State shared by every task of one client.
pub struct Shared {
    pub cfg: Config,
    pub out: CompletionSender,
    conn: Mutex<Connection>,
    /// Loaded once: every endpoint list of this client uses it.
    tls: Option<TlsSettings>,
    /// Bumped when the endpoint list changes under the streams' feet:
    /// they reopen on the new current endpoint.
    moves: tokio::sync::watch::Sender<u64>,
    token: RwLock<Option<AsciiMetadataValue>>,
    /// `cfg.timeout` as a grpc-timeout header value, formatted once.
    grpc_timeout: AsciiMetadataValue,
    /// The AuthenticateRequest to log in (again) with: from `new`'s
    /// username and password, or the last successful `authenticate`.
    credentials: RwLock<Option<Bytes>>,
    /// Bumped whenever the token changes, so a call that failed with an
    /// old token does not throw away a newer one.
    token_gen: AtomicU64,
    /// Held by the one task that logs in; the others wait for its outcome.
    login: tokio::sync::Mutex<Option<EtcdError>>,
    /// Logins finished (successfully or not).
    logins_done: AtomicU64,
    /// Set by the test hook `_echo_requests_for_testing`: calls and
    /// streams are answered with their decoded request and never sent.
    pub echo_requests: AtomicBool,
    /// Channels to members named by a call's `endpoint` option.
    members: Mutex<HashMap<String, Channel>>,
    /// Holds unary calls made after a watch until it is created.
    pub gate: crate::call_gate::CallGate<Submission>,
}

/// What a round trip used: the endpoint and the token's generation.
#[derive(Debug, Default, Clone, Copy)]
pub struct Attempt {
    pub endpoint: usize,
    pub token_gen: u64,
}

impl Shared {
    /// The channel in use and its generation (for `connection_failed`).
    pub fn channel(&self) -> (Channel, u64) {
        let (channel, generation, _) = self.connection();
        (channel, generation)
    }

    /// The channel in use, its generation and its endpoint's index.
    fn connection(&self) -> (Channel, u64, usize) {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        (c.channel(), c.generation, c.index)
    }

    /// host:port of endpoint `index`, as `on_request` reports it.
    fn endpoint_address(&self, index: usize) -> String {
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
    fn member_channel(&self, uri: &str) -> Result<Channel, String> {
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

    pub fn set_token(&self, token: &str) -> Result<(), String> {
        let v = if token.is_empty() {
            None
        } else {
            Some(MetadataValue::try_from(token).map_err(|_| "auth token is not printable ASCII")?)
        };
        let mut t = self.token.write().unwrap_or_else(|p| p.into_inner());
        *t = v;
        self.token_gen.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Forgets token and credentials (auth was switched off).
    pub fn clear_auth(&self) {
        let mut t = self.token.write().unwrap_or_else(|p| p.into_inner());
        *t = None;
        self.token_gen.fetch_add(1, Ordering::AcqRel);
        *self.credentials.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The server called our token stale. Drops it (unless it has been
    /// replaced since `generation`, when given) so the next call logs in;
    /// false when there are no credentials to log in with.
    pub fn token_rejected(&self, generation: Option<u64>) -> bool {
        if self.credentials().is_none() {
            return false;
        }
        let mut t = self.token.write().unwrap_or_else(|p| p.into_inner());
        let current = self.token_gen.load(Ordering::Acquire);
        if generation.is_none_or(|g| g == current) && t.is_some() {
            *t = None;
            self.token_gen.fetch_add(1, Ordering::AcqRel);
        }
        true
    }

    fn needs_login(&self) -> bool {
        self.token
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
            && self.credentials().is_some()
    }

    /// Logs in unless a token is in place (or there are no credentials).
    /// Calls that arrive while a login is under way wait for it and share
    /// its outcome: a wrong password fails each of them once, and is only
    /// tried again for calls made after that.
    pub async fn ensure_login(&self) -> Result<(), EtcdError> {
        if !self.needs_login() {
            return Ok(());
        }
        let seen = self.logins_done.load(Ordering::Acquire);
        let mut last_error = self.login.lock().await;
        if !self.needs_login() {
            return Ok(());
        }
        if self.logins_done.load(Ordering::Acquire) != seen {
            if let Some(e) = last_error.as_ref() {
                return Err(e.clone());
            }
        }
        let outcome = crate::auth::login(self).await;
        *last_error = outcome.as_ref().err().cloned();
        self.logins_done.fetch_add(1, Ordering::AcqRel);
        outcome
    }

    pub fn set_credentials(&self, request: Bytes) {
        *self.credentials.write().unwrap_or_else(|p| p.into_inner()) = Some(request);
    }

    pub fn credentials(&self) -> Option<Bytes> {
        self.credentials
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Wraps a message with the auth token (when `with_token`) and, for
    /// calls with a deadline, the grpc-timeout the server should honour too.
    pub fn request<T>(
        &self,
        msg: T,
        with_token: bool,
        deadline: Option<Duration>,
    ) -> tonic::Request<T> {
        self.request_with_token(msg, with_token, deadline).0
    }

    /// `request`, also returning the generation of the token it carries.
    pub fn request_with_token<T>(
        &self,
        msg: T,
        with_token: bool,
        deadline: Option<Duration>,
    ) -> (tonic::Request<T>, u64) {
        let mut req = tonic::Request::new(msg);
        let mut generation = 0;
        if with_token {
            let t = self.token.read().unwrap_or_else(|p| p.into_inner());
            generation = self.token_gen.load(Ordering::Acquire);
            if let Some(t) = t.as_ref() {
                req.metadata_mut().insert("token", t.clone());
            }
        }
        if let Some(d) = deadline {
            let value = if d == self.cfg.timeout {
                self.grpc_timeout.clone()
            } else {
                grpc_timeout_value(d)
            };
            req.metadata_mut().insert("grpc-timeout", value);
        }
        (req, generation)
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

/// A grpc-timeout value ("30000m"): at most 8 digits and a unit.
fn grpc_timeout_value(timeout: Duration) -> AsciiMetadataValue {
    // Round up: a deadline under a millisecond must not read as none.
    let ms = timeout.as_micros().div_ceil(1000).max(1);
    let text = if ms <= 99_999_999 {
        format!("{ms}m")
    } else {
        format!("{}H", (timeout.as_secs() / 3600).clamp(1, 99_999_999))
    };
    MetadataValue::try_from(text.as_str()).expect("digits and a unit are ASCII")
}

const CONNECTION_WINDOW: u32 = 64 << 20;
const STREAM_WINDOW: u32 = 16 << 20;

/// One endpoint as the client dials it.
struct Target {
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
    /// (src/net.rs). It has the connect timeout itself, as tonic's own use
    /// of it does, so a timed-out connect reads as before.
    Plain(PlainConnector),
}

/// The target for `uri` (already normalised by `endpoint_uris`); with TLS
/// it checks that the host can be matched against a certificate.
fn make_target(uri: &str, cfg: &Config, tls: Option<&TlsSettings>) -> Result<Target, String> {
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
fn make_channel(target: &Target) -> Channel {
    match &target.connector {
        Connector::Tls(tls) => target.endpoint.connect_with_connector_lazy(tls.clone()),
        Connector::Plain(tcp) => target.endpoint.connect_with_connector_lazy(tcp.clone()),
    }
}

/// Sends an error for its call if dropped without replying: a panicking or
/// aborted task still completes its call exactly once.
pub struct ReplyGuard {
    shared: Arc<Shared>,
    id: u64,
    source: &'static str,
    done: bool,
}

impl ReplyGuard {
    pub fn new(shared: Arc<Shared>, id: u64, source: &'static str) -> Self {
        ReplyGuard {
            shared,
            id,
            source,
            done: false,
        }
    }

    pub fn reply(mut self, result: Result<Reply, EtcdError>, info: Option<Box<CallInfo>>) {
        self.done = true;
        self.shared.out.send(Completion {
            id: self.id,
            disposition: Disposition::Last,
            result,
            info,
        });
    }
}

impl Drop for ReplyGuard {
    fn drop(&mut self) {
        if !self.done {
            let err = EtcdError::internal("request task ended without a reply", self.source);
            self.shared.send(self.id, Disposition::Last, Err(err));
        }
    }
}

/// How one unary method travels: its gRPC path and how its reply decodes.
pub struct Route {
    pub path: &'static str,
    pub source: &'static str,
    /// Turns the reply into Perl-ready form; sees the request too.
    pub decode: fn(&Shared, &Bytes, Bytes) -> Result<Reply, ReplyError>,
    /// False for authenticate: etcd 3.4 rejects a login carrying a stale token.
    pub with_token: bool,
    /// Whether this request (its body) only reads: `retry` may repeat it
    /// even when it may have reached the server.
    pub read_only: fn(&[u8]) -> bool,
    /// Whether this request (its body) needs a leader: it then carries
    /// etcd's require-leader metadata, so a member that lost its leader
    /// refuses it at once (UNAVAILABLE) instead of letting it hang.
    pub needs_leader: fn(&[u8]) -> bool,
}

impl Route {
    pub fn new<T>(path: &'static str, source: &'static str) -> Route
    where
        T: prost::Message + Default + ToPerl + Send + 'static,
    {
        Route {
            path,
            source,
            decode: decode_as::<T>,
            with_token: true,
            read_only: |_| false,
            needs_leader: |_| true,
        }
    }

    /// Marks a method that never changes anything.
    pub fn read_only(mut self) -> Route {
        self.read_only = |_| true;
        self
    }

    /// Marks a method a member answers on its own, leader or not
    /// (maintenance: status is how one finds out a member has no leader).
    pub fn local(mut self) -> Route {
        self.needs_leader = |_| false;
        self
    }
}

/// Adds etcd's require-leader metadata: a member without a leader refuses
/// the call, or ends the stream, with UNAVAILABLE "etcdserver: no leader",
/// and the client moves to another endpoint.
pub fn require_leader<T>(req: &mut tonic::Request<T>) {
    req.metadata_mut()
        .insert("hasleader", MetadataValue::from_static("true"));
}

/// Why a reply body did not become a Perl-ready reply.
pub enum ReplyError {
    /// It did not decode (or made no sense): an INTERNAL error.
    Malformed(String),
    /// It decoded, and says the call failed, the way some of etcd's
    /// replies do instead of a gRPC status (a keepalive's TTL of 0).
    Refused(tonic::Code, &'static str),
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyError::Malformed(m) => f.write_str(m),
            ReplyError::Refused(_, m) => f.write_str(m),
        }
    }
}

impl From<prost::DecodeError> for ReplyError {
    fn from(e: prost::DecodeError) -> Self {
        ReplyError::Malformed(e.to_string())
    }
}

impl From<String> for ReplyError {
    fn from(e: String) -> Self {
        ReplyError::Malformed(e)
    }
}

fn decode_as<T>(_: &Shared, _request: &Bytes, body: Bytes) -> Result<Reply, ReplyError>
where
    T: prost::Message + Default + ToPerl + Send + 'static,
{
    Ok(Box::new(T::decode(body)?))
}

/// Passes request bytes (already protobuf, encoded by the XS side) through
/// unchanged and hands the reply bytes back undecoded.
#[derive(Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

/// tonic starts every request's and reply's buffer at 8 KiB; etcd requests
/// and most replies are a few hundred bytes, and thousands may be in flight.
const CODEC_BUFFER: usize = 512;

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(CODEC_BUFFER, 32 * 1024)
    }
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(CODEC_BUFFER, 32 * 1024)
    }
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// A tonic client for `channel` with the client's message size limits
/// (none by default: etcd serves ranges far beyond gRPC's 4 MiB default).
pub fn grpc(shared: &Shared, channel: Channel) -> tonic::client::Grpc<Channel> {
    // The send limit is checked before a request is handed to tonic, whose
    // own check would reset the HTTP/2 stream mid-request.
    tonic::client::Grpc::new(channel)
        .max_decoding_message_size(shared.cfg.max_recv_size)
        .max_encoding_message_size(usize::MAX)
}

/// tonic reports a reply over the decoding limit as OUT_OF_RANGE; the
/// gRPC spec (and every other client) calls it RESOURCE_EXHAUSTED.
fn over_recv_limit(shared: &Shared, status: &Status, source: &'static str) -> Option<EtcdError> {
    let limit = shared.cfg.max_recv_size;
    if limit == usize::MAX
        || status.code() != tonic::Code::OutOfRange
        || !status
            .message()
            .starts_with("Error, decoded message length too large")
    {
        return None;
    }
    Some(EtcdError::new(
        tonic::Code::ResourceExhausted,
        format!(
            "reply exceeds max_recv_size ({limit} bytes): {}",
            status.message()
        ),
        source,
    ))
}

/// One round trip of `route` on the current channel; `attempt` records
/// the endpoint and token it used.
pub async fn round_trip(
    shared: &Shared,
    route: &Route,
    body: Bytes,
    deadline: Option<Duration>,
    attempt: &mut Attempt,
) -> Result<Bytes, (Status, u64)> {
    let (channel, generation, index) = shared.connection();
    attempt.endpoint = index;
    let mut client = grpc(shared, channel);
    let needs_leader = (route.needs_leader)(&body);
    let (mut req, token_gen) = shared.request_with_token(body, route.with_token, deadline);
    if needs_leader {
        require_leader(&mut req);
    }
    attempt.token_gen = token_gen;
    client
        .ready()
        .await
        .map_err(|e| (Status::from_error(Box::new(e)), generation))?;
    client
        .unary(req, PathAndQuery::from_static(route.path), RawCodec)
        .await
        .map(|r| r.into_inner())
        .map_err(|s| (s, generation))
}

/// A call the client makes for itself (a resync's read, an endpoint
/// sync): logged in, one round trip within `limit`, a broken connection
/// left behind; the reply undecoded, errors under `source`.
pub async fn call_once(
    shared: &Shared,
    route: &Route,
    body: Bytes,
    limit: Duration,
    source: &'static str,
) -> Result<Bytes, EtcdError> {
    shared.ensure_login().await?;
    let mut attempt = Attempt::default();
    let call = round_trip(shared, route, body, Some(limit), &mut attempt);
    match tokio::time::timeout(limit, call).await {
        Err(_) => Err(EtcdError::deadline(source, limit.as_secs_f64())),
        Ok(Err((status, generation))) => {
            if crate::error::is_transport_failure(&status) {
                shared.connection_failed(generation);
            }
            Err(EtcdError::from_status(&status, source))
        }
        Ok(Ok(reply)) => Ok(reply),
    }
}

/// One attempt: the login the call waits for, the round trip, and the one
/// repeat after logging in again when the server forgot our token.
async fn attempt_once(
    shared: &Shared,
    route: &Route,
    body: &Bytes,
    deadline: Option<Duration>,
    retries: &mut u32,
    attempt: &mut Attempt,
) -> Result<Result<Bytes, (Status, u64)>, LoginFailed> {
    if route.with_token {
        // A first call waits for the login of `username`/`password`.
        shared.ensure_login().await.map_err(LoginFailed)?;
    }
    let outcome = round_trip(shared, route, body.clone(), deadline, attempt).await;
    let Err((status, _)) = &outcome else {
        return Ok(outcome);
    };
    if !(route.with_token
        && crate::auth::is_stale_token(status)
        && shared.token_rejected(Some(attempt.token_gen)))
    {
        return Ok(outcome);
    }
    if let Err(e) = shared.ensure_login().await {
        // The server's answer stays the error; why it could not be cured
        // is added (e.g. the password was changed).
        let msg = format!(
            "{}; logging in again failed: {}",
            status.message(),
            e.message
        );
        return Ok(Err((Status::new(status.code(), msg), 0)));
    }
    *retries += 1;
    Ok(round_trip(shared, route, body.clone(), deadline, attempt).await)
}

/// First pause before a `retry`; doubled for each further one (to 16×).
const RETRY_BACKOFF: Duration = Duration::from_millis(50);

/// Whether `retry` may repeat a call that failed with `status`: only when
/// the server is unavailable, and only a read, or a write that never left.
fn may_repeat(status: &Status, route: &Route, body: &[u8]) -> bool {
    let unavailable =
        status.code() == tonic::Code::Unavailable || crate::error::is_transport_failure(status);
    unavailable
        && !crate::error::is_deadline(status)
        && ((route.read_only)(body) || crate::error::never_sent(status))
}

/// The login a call waited for failed.
struct LoginFailed(EtcdError);

/// How a unary call went: its result, retries and the endpoint last used.
struct Outcome {
    result: Result<Reply, EtcdError>,
    retries: u32,
    endpoint: usize,
}

async fn unary_call(
    shared: &Shared,
    route: &Route,
    body: Bytes,
    deadline: Option<Duration>,
) -> Outcome {
    let mut retries = 0;
    let mut attempt = Attempt::default();
    let result = unary_attempts(shared, route, body, deadline, &mut retries, &mut attempt).await;
    Outcome {
        result,
        retries,
        endpoint: attempt.endpoint,
    }
}

async fn unary_attempts(
    shared: &Shared,
    route: &Route,
    body: Bytes,
    deadline: Option<Duration>,
    retries: &mut u32,
    attempt: &mut Attempt,
) -> Result<Reply, EtcdError> {
    if body.len() > shared.cfg.max_send_size {
        return Err(EtcdError::new(
            tonic::Code::ResourceExhausted,
            format!(
                "request of {} bytes exceeds max_send_size ({} bytes)",
                body.len(),
                shared.cfg.max_send_size
            ),
            route.source,
        ));
    }
    let started = Instant::now();
    let attempts = async {
        // `retry`: repeat what cannot do harm twice, on the next endpoint.
        let mut repeats = 0;
        loop {
            let outcome = attempt_once(shared, route, &body, deadline, retries, attempt).await;
            let again = repeats < shared.cfg.retry
                && match &outcome {
                    // The call itself was not sent: the login failed.
                    Err(LoginFailed(e)) => e.code == tonic::Code::Unavailable,
                    Ok(Err((status, _))) => may_repeat(status, route, &body),
                    Ok(Ok(_)) => false,
                };
            if !again {
                return outcome;
            }
            if let Ok(Err((_, generation))) = &outcome {
                shared.connection_failed(*generation);
            }
            tokio::time::sleep(RETRY_BACKOFF * (1 << repeats.min(4))).await;
            repeats += 1;
            *retries += 1;
        }
    };
    let outcome = match deadline {
        Some(limit) => match tokio::time::timeout(limit, attempts).await {
            Ok(r) => r,
            Err(_) => return Err(EtcdError::deadline(route.source, limit.as_secs_f64())),
        },
        None => attempts.await,
    };
    // A failed login is the call's error, under the call's own name.
    let outcome = match outcome {
        Ok(o) => o,
        Err(LoginFailed(e)) => return Err(EtcdError::new(e.code, e.message, route.source)),
    };
    match outcome {
        Ok(reply) => decode_reply(shared, route, &body, reply),
        Err((status, generation)) => {
            if crate::error::is_transport_failure(&status) {
                shared.connection_failed(generation);
            }
            if let Some(err) = over_recv_limit(shared, &status, route.source) {
                return Err(err);
            }
            let err = EtcdError::from_status(&status, route.source);
            // The server enforces the grpc-timeout header too, and may end
            // the call (in its own words) before our timer fires.
            match deadline {
                Some(limit)
                    if err.code == tonic::Code::DeadlineExceeded || started.elapsed() >= limit =>
                {
                    Err(EtcdError::deadline(route.source, limit.as_secs_f64()))
                }
                _ => Err(err),
            }
        }
    }
}

fn decode_reply(
    shared: &Shared,
    route: &Route,
    body: &Bytes,
    reply: Bytes,
) -> Result<Reply, EtcdError> {
    (route.decode)(shared, body, reply).map_err(|e| match e {
        ReplyError::Malformed(e) => {
            EtcdError::internal(format!("malformed reply: {e}"), route.source)
        }
        ReplyError::Refused(code, message) => EtcdError::new(code, message, route.source),
    })
}

/// A call aimed at one member (the `endpoint` option of the maintenance
/// calls that report on, or act on, the member that answers): one attempt
/// there, never moved to another endpoint.
async fn member_call(
    shared: &Shared,
    route: &Route,
    body: Bytes,
    deadline: Option<Duration>,
    uri: &str,
) -> Result<Reply, EtcdError> {
    let channel = shared
        .member_channel(uri)
        .map_err(|e| EtcdError::new(tonic::Code::InvalidArgument, e, route.source))?;
    let attempt = async {
        if route.with_token {
            shared.ensure_login().await?;
        }
        let mut client = grpc(shared, channel);
        let (req, _) = shared.request_with_token(body.clone(), route.with_token, deadline);
        client
            .ready()
            .await
            .map_err(|e| Status::from_error(Box::new(e)))
            .map_err(|s| EtcdError::from_status(&s, route.source))?;
        client
            .unary(req, PathAndQuery::from_static(route.path), RawCodec)
            .await
            .map(|r| r.into_inner())
            .map_err(|s| EtcdError::from_status(&s, route.source))
    };
    let reply = match deadline {
        Some(limit) => match tokio::time::timeout(limit, attempt).await {
            Ok(r) => r,
            Err(_) => return Err(EtcdError::deadline(route.source, limit.as_secs_f64())),
        },
        None => attempt.await,
    };
    let reply = reply.map_err(|e| EtcdError::new(e.code, e.message, route.source))?;
    decode_reply(shared, route, &body, reply)
}

/// Health as reported to `on_health_change`.
pub struct Health {
    pub healthy: bool,
    pub endpoint: String,
}

impl ToPerl for Health {
    fn to_perl(&self, b: &Builder) -> Hv {
        let h = b.hv();
        b.flag(h, k!("healthy"), self.healthy);
        b.bytes(h, k!("endpoint"), self.endpoint.as_bytes());
        h
    }
}

/// Completion id reserved for health reports.
pub const HEALTH_ID: u64 = 0;

async fn health_loop(shared: Arc<Shared>, every: Duration) {
    let mut last: Option<bool> = None;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (channel, generation) = shared.channel();
        let endpoint = shared.current_endpoint();
        let mut client = grpc(&shared, channel);
        let req = shared.request(Bytes::new(), true, Some(shared.cfg.timeout));
        let probe = async {
            client
                .ready()
                .await
                .map_err(|e| Status::from_error(Box::new(e)))?;
            client
                .unary(
                    req,
                    PathAndQuery::from_static("/etcdserverpb.Maintenance/Status"),
                    RawCodec,
                )
                .await
        };
        let limit = every.min(shared.cfg.timeout).max(Duration::from_secs(1));
        // Any answer from the server, even a refusal, means it is reachable.
        let healthy = match tokio::time::timeout(limit, probe).await {
            Ok(Ok(_)) => true,
            Ok(Err(status)) => !crate::error::is_transport_failure(&status),
            Err(_) => false,
        };
        if !healthy {
            shared.connection_failed(generation);
        }
        if last != Some(healthy) {
            last = Some(healthy);
            shared.send(
                HEALTH_ID,
                Disposition::Keep,
                Ok(Box::new(Health { healthy, endpoint })),
            );
        }
    }
}

/// How often the local runtime is driven while watches are open and
/// nothing else happens: their timers (reconnect backoff, probes, HTTP/2
/// keepalive pings) count in seconds, so a tenth of one is soon enough.
const STREAM_TICK: Duration = Duration::from_millis(100);

/// A client: owned by the Perl object through the C ABI.
pub struct Client {
    pub shared: Arc<Shared>,
    pub handle: tokio::runtime::Handle,
    pub queue: CompletionQueue,
    pub streams: crate::streams::Streams,
    /// Where unary calls run when there is one (see `local`); then
    /// `queued` holds the calls made since the last `drive`.
    local: Option<crate::local::PerlRuntime>,
    queued: Arc<Mutex<Vec<Submission>>>,
    /// Unary calls started on `local` and not answered yet, and the
    /// deadlines of those that have one.
    local_calls: Arc<LocalCalls>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Client {
    pub fn new(cfg: Config) -> Result<Client, String> {
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
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("ev-etcd".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = handle_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = handle_tx.send(Ok(rt.handle().clone()));
                rt.block_on(async {
                    let _ = shutdown_rx.await;
                });
                // Dropping the runtime here cancels every task still running.
            })
            .map_err(|e| format!("cannot start the client thread: {e}"))?;
        let handle = handle_rx
            .recv()
            .map_err(|_| "client thread failed to start".to_string())??;
        let grpc_timeout = grpc_timeout_value(cfg.timeout);
        let local = if cfg.inline_io {
            crate::local::PerlRuntime::new()
        } else {
            None
        };
        let (submit, submissions) = tokio::sync::mpsc::unbounded_channel();
        let queued: Arc<Mutex<Vec<Submission>>> = Arc::default();
        let gate = if local.is_some() {
            // Started by the next `drive`.
            let queued = queued.clone();
            crate::call_gate::CallGate::new(move |call| {
                queued.lock().unwrap_or_else(|p| p.into_inner()).push(call)
            })
        } else {
            // The dispatcher is woken only when it is idle: a burst of
            // calls from one drain costs one wake-up of the runtime thread.
            let submit = submit.clone();
            crate::call_gate::CallGate::new(move |call| {
                let _ = submit.send(call);
            })
        };
        let shared = Arc::new(Shared {
            gate,
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
            logins_done: AtomicU64::new(0),
            echo_requests: AtomicBool::new(false),
            members: Mutex::new(HashMap::new()),
            tls,
            moves: tokio::sync::watch::channel(0).0,
        });
        if let Some((name, password)) = &shared.cfg.login {
            let request = crate::proto::etcdserverpb::AuthenticateRequest {
                name: name.clone(),
                password: password.clone(),
            };
            shared.set_credentials(prost::Message::encode_to_vec(&request).into());
            // Log in now; calls made meanwhile wait for this login.
            let early = shared.clone();
            handle.spawn(async move {
                let _ = early.ensure_login().await;
            });
        }
        if let Some(t) = &shared.cfg.auth_token {
            shared
                .set_token(t)
                .map_err(|_| "auth_token is not printable ASCII".to_string())?;
        }
        if let Some(every) = shared.cfg.auto_sync {
            handle.spawn(crate::cluster::sync_endpoints(shared.clone(), every));
        }
        if let Some(every) = shared.cfg.health_interval {
            handle.spawn(health_loop(shared.clone(), every));
        }
        handle.spawn(dispatch(shared.clone(), submissions));
        let watch_handle = local
            .as_ref()
            .map_or_else(|| handle.clone(), |l| l.handle());
        Ok(Client {
            local,
            queued,
            local_calls: Arc::default(),
            streams: crate::streams::Streams::new(shared.clone(), handle.clone(), watch_handle),
            shared,
            handle,
            queue,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        })
    }

    /// `set_endpoints`: replaces the endpoint list.
    pub fn set_endpoints(&self, names: Vec<String>) -> Result<(), String> {
        self.shared.set_endpoints(names)
    }

    /// Starts unary call `method` on the member `endpoint` names (see
    /// `member_call`). Err when `method` is unknown or `endpoint` unusable.
    pub fn call_at(
        &self,
        id: u64,
        route: Route,
        body: Bytes,
        deadline: CallDeadline,
        endpoint: &str,
    ) -> Result<(), String> {
        let uri = self.shared.member_uri(endpoint)?;
        let deadline = deadline.limit(self.shared.cfg.timeout);
        let started = self.shared.cfg.on_request.then(Instant::now);
        let shared = self.shared.clone();
        let endpoint = split_scheme(endpoint).1.to_string();
        self.handle.spawn(async move {
            let guard = ReplyGuard::new(shared.clone(), id, route.source);
            let result = member_call(&shared, &route, body, deadline, &uri).await;
            let info = started.map(|t| {
                Box::new(CallInfo {
                    method: route.source,
                    endpoint,
                    duration: t.elapsed(),
                    retries: 0,
                })
            });
            guard.reply(result, info);
        });
        Ok(())
    }

    /// Starts a unary call; false when `method` is unknown. `deadline`
    /// is the call's own timeout (`None`: wait as long as it takes).
    pub fn call(&self, id: u64, method: &str, body: Bytes, deadline: CallDeadline) -> bool {
        let Some(route) = crate::routes::route(method) else {
            return false;
        };
        let deadline = deadline.limit(self.shared.cfg.timeout);
        let started = self.shared.cfg.on_request.then(Instant::now);
        let call = Submission {
            id,
            route,
            body,
            deadline,
            started,
        };
        self.shared.gate.pass(call);
        true
    }

    /// The local runtime's epoll descriptor, if unary calls run there.
    pub fn local_fd(&self) -> Option<std::os::fd::RawFd> {
        self.local.as_ref().map(|l| l.fd())
    }

    /// Starts the queued calls and runs the local runtime until it would
    /// wait (see `local`); `timers`: also what timers that expired wake.
    /// Returns how many of its calls are unanswered, and how soon it needs
    /// driving again: the first of their deadlines, or while watches are
    /// open, STREAM_TICK.
    pub fn drive(&self, timers: bool) -> (u64, Option<Duration>) {
        let Some(local) = &self.local else {
            return (0, None);
        };
        let take = || std::mem::take(&mut *self.queued.lock().unwrap_or_else(|p| p.into_inner()));
        let mut calls = take();
        let unfinished = loop {
            let unfinished = local.drive(
                || {
                    for call in calls {
                        let count = self.local_calls.start(call.id, call.deadline);
                        start_call(&self.shared, call, Some(count));
                    }
                },
                timers,
            );
            // Calls a watch's answer let go during the drive start now.
            calls = take();
            if calls.is_empty() || unfinished {
                break unfinished;
            }
        };
        if !calls.is_empty() {
            // Put back, in front of any made since: the next drive starts them.
            let mut queued = self.queued.lock().unwrap_or_else(|p| p.into_inner());
            calls.append(&mut queued);
            *queued = calls;
        }
        let (unanswered, deadline) = self.local_calls.state();
        // Held calls count as unanswered: the tick keeps looking for them.
        let unanswered = unanswered + self.shared.gate.held() as u64;
        let tick = self.streams.watching().then_some(STREAM_TICK);
        // Work left by a drive cut short: drive again as soon as the loop
        // has had its turn.
        let again = unfinished.then_some(Duration::ZERO);
        (
            unanswered,
            deadline.into_iter().chain(tick).chain(again).min(),
        )
    }
}

/// How long one unary call may take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CallDeadline {
    /// The client's `timeout`.
    ClientDefault,
    /// No deadline (`timeout => 0`).
    Unlimited,
    After(Duration),
}

impl CallDeadline {
    /// The call's time limit, `client` being the client's timeout.
    fn limit(self, client: Duration) -> Option<Duration> {
        match self {
            CallDeadline::ClientDefault => Some(client),
            CallDeadline::Unlimited => None,
            CallDeadline::After(d) => Some(d),
        }
    }
}

/// A unary call handed over by the Perl thread.
pub struct Submission {
    id: u64,
    route: Route,
    body: Bytes,
    deadline: Option<Duration>,
    /// When the Perl side submitted it; only kept for `on_request`.
    started: Option<Instant>,
}

/// Turns submissions into tasks. Spawning here, on the runtime thread, is
/// a local queue push; spawning from the Perl thread would wake the runtime
/// once per call.
async fn dispatch(shared: Arc<Shared>, mut rx: tokio::sync::mpsc::UnboundedReceiver<Submission>) {
    while let Some(call) = rx.recv().await {
        start_call(&shared, call, None);
    }
}

/// The local runtime's unanswered calls: their number, and the deadlines
/// of those that have one (tokio's timers do not show on its descriptor,
/// so the EV side needs to know when to drive it).
#[derive(Default)]
struct LocalCalls {
    count: AtomicU64,
    deadlines: Mutex<std::collections::BTreeSet<(Instant, u64)>>,
}

impl LocalCalls {
    fn start(self: &Arc<Self>, id: u64, limit: Option<Duration>) -> CountedCall {
        self.count.fetch_add(1, Ordering::Relaxed);
        let deadline = limit.map(|l| (Instant::now() + l, id));
        if let Some(d) = deadline {
            self.deadlines
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(d);
        }
        CountedCall {
            calls: self.clone(),
            deadline,
        }
    }

    fn state(&self) -> (u64, Option<Duration>) {
        let first = self
            .deadlines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .first()
            .map(|(at, _)| at.saturating_duration_since(Instant::now()));
        (self.count.load(Ordering::Relaxed), first)
    }
}

/// Counts a local call as unanswered until dropped.
struct CountedCall {
    calls: Arc<LocalCalls>,
    deadline: Option<(Instant, u64)>,
}

impl Drop for CountedCall {
    fn drop(&mut self) {
        self.calls.count.fetch_sub(1, Ordering::Relaxed);
        if let Some(d) = self.deadline {
            self.calls
                .deadlines
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&d);
        }
    }
}

/// Spawns the task of one unary call on the current runtime.
fn start_call(shared: &Arc<Shared>, call: Submission, count: Option<CountedCall>) {
    let Submission {
        id,
        route,
        body,
        deadline,
        started,
    } = call;
    if shared.echo_requests.load(Ordering::Relaxed) {
        let echo = crate::routes::echo_request(route.source, &body);
        let echo = echo.unwrap_or_else(|| Err(format!("{}: no request type", route.source)));
        crate::request_echo::answer(shared, id, route.source, echo);
        return;
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        let _count = count;
        let guard = ReplyGuard::new(shared.clone(), id, route.source);
        let outcome = unary_call(&shared, &route, body, deadline).await;
        let info = started.map(|t| {
            Box::new(CallInfo {
                method: route.source,
                endpoint: shared.endpoint_address(outcome.endpoint),
                duration: t.elapsed(),
                retries: outcome.retries,
            })
        });
        guard.reply(outcome.result, info);
    });
}

impl Drop for Client {
    fn drop(&mut self) {
        // The local runtime first, while the background thread still
        // runs: the two always shut down in the same order.
        self.local.take();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A client config for tests: no pings, syncs or probes.
    pub(crate) fn config(endpoints: &[&str], tls: TlsOptions) -> Config {
        Config {
            endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
            timeout: Duration::from_secs(5),
            max_retries: 3,
            health_interval: None,
            auth_token: None,
            on_request: false,
            max_recv_size: usize::MAX,
            max_send_size: usize::MAX,
            login: None,
            tls,
            keepalive: None,
            auto_sync: None,
            watch_probe: None,
            retry: 0,
            inline_io: false,
        }
    }

    fn tls_on() -> TlsOptions {
        TlsOptions {
            enabled: Some(true),
            ..TlsOptions::default()
        }
    }

    #[test]
    fn the_endpoints_or_the_tls_option_decide_tls() {
        let none = TlsOptions::default;
        let uris = |e: &[&str], t| config(e, t).endpoint_uris().unwrap();
        assert_eq!(
            uris(&["a:1", "http://b:2/"], none()),
            (vec!["http://a:1".into(), "http://b:2".into()], false)
        );
        assert_eq!(
            uris(&["https://a:1", "b:2"], none()),
            (vec!["https://a:1".into(), "https://b:2".into()], true)
        );
        assert_eq!(uris(&["a:1"], tls_on()), (vec!["https://a:1".into()], true));
        let ca = TlsOptions {
            ca_file: Some("ca.pem".into()),
            ..TlsOptions::default()
        };
        assert!(uris(&["https://a:1"], ca).1);
    }

    #[test]
    fn contradictions_are_refused() {
        let err = |e: &[&str], t| config(e, t).endpoint_uris().unwrap_err();
        assert!(err(&["https://a:1", "http://b:2"], TlsOptions::default())
            .contains("mix TLS and plaintext"));
        assert!(err(&["http://a:1"], tls_on()).contains("asks for plaintext"));
        let off = TlsOptions {
            enabled: Some(false),
            ..TlsOptions::default()
        };
        assert!(err(&["https://a:1"], off.clone()).contains("asks for TLS"));
        let named = TlsOptions {
            server_name: Some("etcd.test".into()),
            ..off
        };
        assert!(err(&["a:1"], named.clone()).starts_with("tls_server_name was given, but tls => 0"));
        let implied = TlsOptions {
            enabled: None,
            ..named
        };
        assert!(err(&["a:1"], implied).contains("the endpoints are plaintext"));
    }

    #[test]
    fn grpc_timeout_header_fits_eight_digits() {
        assert_eq!(grpc_timeout_value(Duration::from_secs(30)), "30000m");
        assert_eq!(grpc_timeout_value(Duration::from_millis(1500)), "1500m");
        assert_eq!(grpc_timeout_value(Duration::from_micros(300)), "1m");
        assert_eq!(
            grpc_timeout_value(Duration::from_secs(1_000_000_000)),
            "277777H"
        );
    }
}
