//! One client: its background thread running a tokio runtime, the channel to
//! the current endpoint, the auth token, and the unary call path.

use crate::error::EtcdError;
use crate::perl::{Builder, Hv, ToPerl};
use crate::queue::{
    completion_queue, Completion, CompletionQueue, CompletionSender, Disposition, Reply,
};
use crate::tls::{TlsConnector, TlsOptions, TlsSettings};
use bytes::{Buf, BufMut, Bytes};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
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
    pub tls: TlsOptions,
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
        let scheme = if tls { "https" } else { "http" };
        let uris = self
            .endpoints
            .iter()
            .map(|e| {
                let (_, rest) = split_scheme(e);
                // host:port, optionally with one trailing slash; no path.
                if rest.is_empty() || rest.trim_end_matches('/').contains('/') {
                    return Err(format!("endpoint '{e}' is not host:port"));
                }
                let uri = format!("{scheme}://{}", rest.trim_end_matches('/'));
                Endpoint::from_shared(uri.clone())
                    .map_err(|_| format!("endpoint '{e}' is not host:port"))?;
                Ok(uri)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((uris, tls))
    }
}

struct Connection {
    index: usize,
    generation: u64,
    channel: Channel,
}

/// State shared by every task of one client.
pub struct Shared {
    pub cfg: Config,
    pub out: CompletionSender,
    /// One per configured endpoint, TLS already set up where it applies.
    endpoints: Vec<Target>,
    conn: Mutex<Connection>,
    token: RwLock<Option<AsciiMetadataValue>>,
    /// `cfg.timeout` as a grpc-timeout header value, formatted once.
    grpc_timeout: AsciiMetadataValue,
    /// The last successful AuthenticateRequest, to log in again when the
    /// server drops the token.
    credentials: RwLock<Option<Bytes>>,
}

impl Shared {
    /// The channel in use and its generation (for `connection_failed`).
    pub fn channel(&self) -> (Channel, u64) {
        let c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        (c.channel.clone(), c.generation)
    }

    pub fn current_endpoint(&self) -> String {
        let c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        self.cfg.endpoints[c.index].clone()
    }

    /// Moves to the next endpoint after a transport failure on `generation`;
    /// a no-op when another task already moved on or there is one endpoint.
    pub fn connection_failed(&self, generation: u64) {
        if self.endpoints.len() < 2 {
            return;
        }
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if c.generation != generation {
            return;
        }
        c.index = (c.index + 1) % self.endpoints.len();
        c.generation += 1;
        c.channel = make_channel(&self.endpoints[c.index]);
    }

    pub fn set_token(&self, token: &str) -> Result<(), String> {
        let v = if token.is_empty() {
            None
        } else {
            Some(MetadataValue::try_from(token).map_err(|_| "auth token is not printable ASCII")?)
        };
        *self.token.write().unwrap_or_else(|p| p.into_inner()) = v;
        Ok(())
    }

    /// Forgets token and credentials (auth was switched off).
    pub fn clear_auth(&self) {
        *self.token.write().unwrap_or_else(|p| p.into_inner()) = None;
        *self.credentials.write().unwrap_or_else(|p| p.into_inner()) = None;
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
    pub fn request<T>(&self, msg: T, with_token: bool, deadline: bool) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        if with_token {
            if let Some(t) = self
                .token
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
            {
                req.metadata_mut().insert("token", t.clone());
            }
        }
        if deadline {
            req.metadata_mut()
                .insert("grpc-timeout", self.grpc_timeout.clone());
        }
        req
    }

    pub fn send(&self, id: u64, disposition: Disposition, result: Result<Reply, EtcdError>) {
        self.out.send(Completion {
            id,
            disposition,
            result,
        });
    }
}

/// A grpc-timeout value ("30000m"): at most 8 digits and a unit.
fn grpc_timeout_value(timeout: Duration) -> AsciiMetadataValue {
    let ms = timeout.as_millis();
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
    /// Set for TLS: the connection is then opened by our connector, and
    /// tonic sees a plain `http://` endpoint with an `https://` origin (its
    /// own TLS stays out of the way; requests still say `https`).
    tls: Option<TlsConnector>,
}

/// The target for `uri` (already normalised by `endpoint_uris`); with TLS
/// it checks that the host can be matched against a certificate.
fn make_target(uri: &str, timeout: Duration, tls: Option<&TlsSettings>) -> Result<Target, String> {
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
    let mut endpoint = Endpoint::from_shared(dial)
        .map_err(|e| bad(&e))?
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true)
        // h2 drops a connection that has more small unread DATA frames than
        // half its connection window allows; hundreds of replies can arrive
        // before their tasks run, so give it a large window.
        .initial_connection_window_size(CONNECTION_WINDOW)
        .initial_stream_window_size(STREAM_WINDOW);
    if connector.is_some() {
        endpoint = endpoint.origin(uri.parse().map_err(|e| bad(&e))?);
    }
    Ok(Target {
        endpoint,
        tls: connector,
    })
}

/// A channel that connects on first use (and again after each failure).
fn make_channel(target: &Target) -> Channel {
    match &target.tls {
        Some(connector) => target
            .endpoint
            .connect_with_connector_lazy(connector.clone()),
        None => target.endpoint.connect_lazy(),
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

    pub fn reply(mut self, result: Result<Reply, EtcdError>) {
        self.done = true;
        self.shared.send(self.id, Disposition::Last, result);
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
    pub decode: fn(&Shared, &Bytes, Bytes) -> Result<Reply, String>,
    /// False for calls that wait on other clients (lock, campaign).
    pub deadline: bool,
    /// False for authenticate: etcd 3.4 rejects a login carrying a stale token.
    pub with_token: bool,
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
            deadline: true,
            with_token: true,
        }
    }

    pub fn without_deadline(mut self) -> Route {
        self.deadline = false;
        self
    }
}

fn decode_as<T>(_: &Shared, _request: &Bytes, body: Bytes) -> Result<Reply, String>
where
    T: prost::Message + Default + ToPerl + Send + 'static,
{
    Ok(Box::new(T::decode(body).map_err(|e| e.to_string())?))
}

fn route(method: &str) -> Option<Route> {
    crate::kv::route(method)
        .or_else(|| crate::lease::route(method))
        .or_else(|| crate::lock::route(method))
        .or_else(|| crate::election::route(method))
        .or_else(|| crate::auth::route(method))
        .or_else(|| crate::maintenance::route(method))
        .or_else(|| crate::cluster::route(method))
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

/// A tonic client for `channel` with no message size limit: etcd serves
/// ranges far beyond gRPC's 4 MiB default.
pub fn grpc(channel: Channel) -> tonic::client::Grpc<Channel> {
    tonic::client::Grpc::new(channel)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX)
}

/// One round trip of `route` on the current channel.
pub async fn round_trip(
    shared: &Shared,
    route: &Route,
    body: Bytes,
) -> Result<Bytes, (Status, u64)> {
    let (channel, generation) = shared.channel();
    let mut client = grpc(channel);
    let req = shared.request(body, route.with_token, route.deadline);
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

async fn unary_call(shared: &Shared, route: &Route, body: Bytes) -> Result<Reply, EtcdError> {
    let attempts = async {
        let mut outcome = round_trip(shared, route, body.clone()).await;
        // The server forgot our token (expired, or auth changed): log in
        // again with the remembered credentials and retry once.
        if let Err((status, _)) = &outcome {
            if route.with_token
                && crate::auth::is_stale_token(status)
                && crate::auth::reauthenticate(shared).await
            {
                outcome = round_trip(shared, route, body.clone()).await;
            }
        }
        outcome
    };
    let outcome = if route.deadline {
        match tokio::time::timeout(shared.cfg.timeout, attempts).await {
            Ok(r) => r,
            Err(_) => {
                return Err(EtcdError::deadline(
                    route.source,
                    shared.cfg.timeout.as_secs_f64(),
                ))
            }
        }
    } else {
        attempts.await
    };
    match outcome {
        Ok(reply) => (route.decode)(shared, &body, reply)
            .map_err(|e| EtcdError::internal(format!("malformed reply: {e}"), route.source)),
        Err((status, generation)) => {
            if crate::error::is_transport_failure(&status) {
                shared.connection_failed(generation);
            }
            Err(EtcdError::from_status(&status, route.source))
        }
    }
}

/// Health as reported to `on_health_change`.
pub struct Health {
    pub healthy: bool,
    pub endpoint: String,
}

impl ToPerl for Health {
    fn to_perl(&self, b: &Builder) -> Hv {
        let h = b.hv();
        b.flag(h, "healthy", self.healthy);
        b.bytes(h, "endpoint", self.endpoint.as_bytes());
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
        let mut client = grpc(channel);
        let req = shared.request(Bytes::new(), true, true);
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

/// A client: owned by the Perl object through the C ABI.
pub struct Client {
    pub shared: Arc<Shared>,
    pub handle: tokio::runtime::Handle,
    pub queue: CompletionQueue,
    pub streams: crate::streams::Streams,
    /// Unary calls on their way to the dispatcher task.
    submit: tokio::sync::mpsc::UnboundedSender<Submission>,
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
        let endpoints = uris
            .iter()
            .map(|uri| make_target(uri, cfg.timeout, tls.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
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
        let channel = {
            let _ctx = handle.enter();
            make_channel(&endpoints[0])
        };
        let grpc_timeout = grpc_timeout_value(cfg.timeout);
        let shared = Arc::new(Shared {
            cfg,
            out,
            endpoints,
            conn: Mutex::new(Connection {
                index: 0,
                generation: 0,
                channel,
            }),
            token: RwLock::new(None),
            grpc_timeout,
            credentials: RwLock::new(None),
        });
        if let Some(t) = &shared.cfg.auth_token {
            shared
                .set_token(t)
                .map_err(|_| "auth_token is not printable ASCII".to_string())?;
        }
        if let Some(every) = shared.cfg.health_interval {
            handle.spawn(health_loop(shared.clone(), every));
        }
        let (submit, submissions) = tokio::sync::mpsc::unbounded_channel();
        handle.spawn(dispatch(shared.clone(), submissions));
        Ok(Client {
            submit,
            streams: crate::streams::Streams::new(shared.clone(), handle.clone()),
            shared,
            handle,
            queue,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        })
    }

    /// Starts a unary call; false when `method` is unknown.
    pub fn call(&self, id: u64, method: &str, body: Bytes) -> bool {
        let Some(route) = route(method) else {
            return false;
        };
        // The dispatcher is woken only when it is idle: a burst of calls
        // from one drain costs one wake-up of the runtime thread.
        let _ = self.submit.send(Submission { id, route, body });
        true
    }
}

/// A unary call handed over by the Perl thread.
struct Submission {
    id: u64,
    route: Route,
    body: Bytes,
}

/// Turns submissions into tasks. Spawning here, on the runtime thread, is
/// a local queue push; spawning from the Perl thread would wake the runtime
/// once per call.
async fn dispatch(shared: Arc<Shared>, mut rx: tokio::sync::mpsc::UnboundedReceiver<Submission>) {
    while let Some(Submission { id, route, body }) = rx.recv().await {
        let shared = shared.clone();
        tokio::spawn(async move {
            let guard = ReplyGuard::new(shared.clone(), id, route.source);
            let result = unary_call(&shared, &route, body).await;
            guard.reply(result);
        });
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(endpoints: &[&str], tls: TlsOptions) -> Config {
        Config {
            endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
            timeout: Duration::from_secs(5),
            max_retries: 3,
            health_interval: None,
            auth_token: None,
            tls,
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
        assert_eq!(
            grpc_timeout_value(Duration::from_secs(1_000_000_000)),
            "277777H"
        );
    }
}
