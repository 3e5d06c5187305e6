//! The C ABI the XS glue calls. Every entry point catches panics so none
//! unwinds into C or Perl; raw pointers are turned into Rust values here and
//! nowhere else.

use crate::client::calls::CallDeadline;
use crate::client::streams::StreamKind;
use crate::client::{routes, Client};
use crate::conn::Config;
#[cfg(feature = "test-hooks")]
use crate::engine::echo;
use crate::net::TlsOptions;
use crate::perl::k;
use crate::perl::{Builder, BuilderVtable, ToPerl};
use crate::proto::etcdserverpb::watch_create_request::FilterType;
use crate::proto::etcdserverpb::WatchCreateRequest;
#[cfg(feature = "test-hooks")]
use crate::proto::{etcdserverpb::LeaseKeepAliveRequest, v3electionpb::LeaderRequest};
use crate::queue::{CallInfo, Disposition};
use bytes::Bytes;
use std::cell::RefCell;
use std::ffi::{c_char, c_int, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
#[cfg(feature = "test-hooks")]
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;
use std::time::Duration;

/// Options of `new`, as the XS side passes them.
#[repr(C)]
pub struct EvetcdConfig {
    pub endpoints: *const *const c_char,
    pub endpoint_lens: *const usize,
    pub n_endpoints: usize,
    pub timeout: f64,
    pub max_retries: i64,
    pub health_interval: f64,
    pub token: *const c_char,
    pub token_len: usize,
    pub on_request: c_int,
    pub max_recv_size: u64,
    pub max_send_size: u64,
    pub username: *const c_char,
    pub username_len: usize,
    pub password: *const c_char,
    pub password_len: usize,
    /// `tls =>`: -1 not given, 0 off, 1 on.
    pub tls: i32,
    /// The TLS strings below are null when their option was not given.
    pub tls_ca_file: *const c_char,
    pub tls_ca_file_len: usize,
    pub tls_cert_file: *const c_char,
    pub tls_cert_file_len: usize,
    pub tls_key_file: *const c_char,
    pub tls_key_file_len: usize,
    pub tls_server_name: *const c_char,
    pub tls_server_name_len: usize,
    pub keepalive_time: f64,
    pub keepalive_timeout: f64,
    pub auto_sync_interval: f64,
    pub watch_probe_interval: f64,
    pub retry: u32,
    /// `io_mode =>`: EVETCD_IO_INLINE or EVETCD_IO_BACKGROUND.
    pub io_mode: c_int,
}

/// Fills `cfg` with the defaults `new` starts from.
///
/// # Safety
/// `cfg` must be writable.
#[no_mangle]
pub unsafe extern "C" fn evetcd_config_defaults(cfg: *mut EvetcdConfig) {
    // SAFETY: the caller gave a writable config.
    unsafe { cfg.write(EvetcdConfig::default()) };
}

/// The defaults `new` starts from.
impl Default for EvetcdConfig {
    fn default() -> Self {
        EvetcdConfig {
            endpoints: std::ptr::null(),
            endpoint_lens: std::ptr::null(),
            n_endpoints: 0,
            timeout: 30.0,
            max_retries: 3,
            health_interval: 0.0,
            token: std::ptr::null(),
            token_len: 0,
            on_request: 0,
            max_recv_size: 0,
            max_send_size: 0,
            username: std::ptr::null(),
            username_len: 0,
            password: std::ptr::null(),
            password_len: 0,
            tls: -1,
            tls_ca_file: std::ptr::null(),
            tls_ca_file_len: 0,
            tls_cert_file: std::ptr::null(),
            tls_cert_file_len: 0,
            tls_key_file: std::ptr::null(),
            tls_key_file_len: 0,
            tls_server_name: std::ptr::null(),
            tls_server_name_len: 0,
            keepalive_time: 10.0,
            keepalive_timeout: 5.0,
            auto_sync_interval: 0.0,
            watch_probe_interval: 0.0,
            retry: 0,
            io_mode: EVETCD_IO_DEFAULT,
        }
    }
}

/// The name of reply key `i` (see `perl::REPLY_KEYS`) with its length in
/// `*len`, or null past the last one. The XS side hashes each once at load.
///
/// # Safety
/// `len` must be writable.
#[no_mangle]
pub unsafe extern "C" fn evetcd_reply_key(i: usize, len: *mut usize) -> *const c_char {
    match crate::perl::REPLY_KEYS.get(i) {
        Some(name) => {
            // SAFETY: the caller gave a writable `len`.
            unsafe { *len = name.len() };
            name.as_ptr().cast()
        }
        None => std::ptr::null(),
    }
}

/// A call or stream was started.
pub const EVETCD_STARTED: c_int = 0;
/// A call the library rejected (unknown method, bad bytes).
pub const EVETCD_REJECTED: c_int = -1;
/// Rust code panicked; nothing was started. `evetcd_last_panic` says where.
pub const EVETCD_PANICKED: c_int = -2;
/// `evetcd_call_at`: its endpoint cannot be used (a message in `err`).
pub const EVETCD_BAD_ENDPOINT: c_int = -3;

/// `evetcd_next`'s disposition: call the callback and keep it.
pub const EVETCD_KEEP: c_int = 0;
/// `evetcd_next`'s disposition: call the callback and forget it.
pub const EVETCD_LAST: c_int = 1;

/// Where calls and watches run (`io_mode`): on the Perl thread, driven
/// by the EV loop (see `local`), or on the client's background thread.
pub const EVETCD_IO_INLINE: c_int = 0;
pub const EVETCD_IO_BACKGROUND: c_int = 1;
/// The inline mode needs Linux (see `local`).
#[cfg(target_os = "linux")]
const EVETCD_IO_DEFAULT: c_int = EVETCD_IO_INLINE;
#[cfg(not(target_os = "linux"))]
const EVETCD_IO_DEFAULT: c_int = EVETCD_IO_BACKGROUND;

/// Stream kinds, as `evetcd_cancel` and the test hooks name them.
pub const EVETCD_WATCH: c_int = 1;
pub const EVETCD_KEEPALIVE: c_int = 2;
pub const EVETCD_OBSERVE: c_int = 3;
pub const EVETCD_SNAPSHOT: c_int = 4;

fn stream_kind(code: c_int) -> Option<StreamKind> {
    match code {
        EVETCD_WATCH => Some(StreamKind::Watch),
        EVETCD_KEEPALIVE => Some(StreamKind::Keepalive),
        EVETCD_OBSERVE => Some(StreamKind::Observe),
        EVETCD_SNAPSHOT => Some(StreamKind::Snapshot),
        _ => None,
    }
}

/// An optional string of the config: None when `ptr` is null.
///
/// # Safety
/// `ptr` must point at `len` readable bytes, or be null.
unsafe fn optional<'a>(ptr: *const c_char, len: usize) -> Option<&'a [u8]> {
    // SAFETY: guaranteed by the caller.
    (!ptr.is_null()).then(|| unsafe { slice(ptr, len) })
}

fn path(bytes: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(bytes))
}

/// # Safety
/// `ptr` must point at `len` readable bytes (or be null with `len` 0).
unsafe fn slice<'a>(ptr: *const c_char, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) }
    }
}

fn write_error(buf: *mut c_char, cap: usize, msg: &str) {
    if buf.is_null() || cap == 0 {
        return;
    }
    let n = msg.len().min(cap - 1);
    // SAFETY: the caller gave `cap` writable bytes at `buf`; we write n+1 <= cap.
    unsafe {
        std::ptr::copy_nonoverlapping(msg.as_ptr(), buf.cast::<u8>(), n);
        *buf.add(n) = 0;
    }
}

/// Creates a client; on failure returns null and writes why into `err`.
///
/// # Safety
/// `cfg` must be valid; `err` must have `err_cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn evetcd_new(
    cfg: *const EvetcdConfig,
    err: *mut c_char,
    err_cap: usize,
) -> *mut Client {
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the XS side passes a filled, live config.
        let cfg = unsafe { &*cfg };
        let mut endpoints = Vec::with_capacity(cfg.n_endpoints);
        for i in 0..cfg.n_endpoints {
            // SAFETY: n_endpoints entries in both arrays, each pointing at its length of bytes.
            let bytes = unsafe { slice(*cfg.endpoints.add(i), *cfg.endpoint_lens.add(i)) };
            endpoints.push(String::from_utf8_lossy(bytes).into_owned());
        }
        // SAFETY: token_len bytes at token, or null.
        let token = unsafe { slice(cfg.token, cfg.token_len) };
        let login = if cfg.username.is_null() {
            None
        } else {
            // SAFETY: the XS side passes both strings with their lengths.
            let (user, pass) = unsafe {
                (
                    slice(cfg.username, cfg.username_len),
                    slice(cfg.password, cfg.password_len),
                )
            };
            let user = std::str::from_utf8(user).map_err(|_| "username must be UTF-8 text");
            let pass = std::str::from_utf8(pass).map_err(|_| "password must be UTF-8 text");
            match (user, pass) {
                (Ok(u), Ok(p)) => Some((u.to_string(), p.to_string())),
                (Err(e), _) | (_, Err(e)) => return Err(e.to_string()),
            }
        };
        // SAFETY: each TLS string is null or points at its length of bytes.
        let (ca, cert, key, name) = unsafe {
            (
                optional(cfg.tls_ca_file, cfg.tls_ca_file_len),
                optional(cfg.tls_cert_file, cfg.tls_cert_file_len),
                optional(cfg.tls_key_file, cfg.tls_key_file_len),
                optional(cfg.tls_server_name, cfg.tls_server_name_len),
            )
        };
        let tls = TlsOptions {
            enabled: (cfg.tls >= 0).then_some(cfg.tls != 0),
            ca_file: ca.map(path),
            cert_file: cert.map(path),
            key_file: key.map(path),
            server_name: name.map(|n| String::from_utf8_lossy(n).into_owned()),
        };
        let config = Config {
            endpoints,
            timeout: Duration::from_secs_f64(cfg.timeout.max(1.0)),
            max_retries: cfg.max_retries,
            health_interval: (cfg.health_interval > 0.0)
                .then(|| Duration::from_secs_f64(cfg.health_interval)),
            auth_token: (!token.is_empty()).then(|| String::from_utf8_lossy(token).into_owned()),
            on_request: cfg.on_request != 0,
            max_recv_size: message_limit(cfg.max_recv_size),
            max_send_size: message_limit(cfg.max_send_size),
            login,
            retry: cfg.retry,
            inline_io: cfg.io_mode == EVETCD_IO_INLINE,
            auto_sync: (cfg.auto_sync_interval > 0.0)
                .then(|| Duration::from_secs_f64(cfg.auto_sync_interval)),
            watch_probe: (cfg.watch_probe_interval > 0.0)
                .then(|| Duration::from_secs_f64(cfg.watch_probe_interval)),
            // 0 switches pings off; XS fills in the defaults.
            keepalive: (cfg.keepalive_time > 0.0).then(|| {
                (
                    Duration::from_secs_f64(cfg.keepalive_time),
                    Duration::from_secs_f64(cfg.keepalive_timeout.max(0.001)),
                )
            }),
            tls,
        };
        Client::new(config)
    }));
    match result {
        Ok(Ok(client)) => Box::into_raw(Box::new(client)),
        Ok(Err(msg)) => {
            write_error(err, err_cap, &msg);
            std::ptr::null_mut()
        }
        Err(_) => {
            write_error(err, err_cap, "internal error while creating the client");
            std::ptr::null_mut()
        }
    }
}

/// Stops the runtime (pending calls are dropped) and frees the client.
///
/// # Safety
/// `client` comes from `evetcd_new` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn evetcd_free(client: *mut Client) {
    if client.is_null() {
        return;
    }
    // SAFETY: ownership returns to Rust exactly once.
    let client = unsafe { Box::from_raw(client) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(client)));
}

/// The fd the EV io watcher waits on.
///
/// # Safety
/// `client` is a live client.
#[no_mangle]
pub unsafe extern "C" fn evetcd_fd(client: *const Client) -> c_int {
    // SAFETY: live client per contract.
    unsafe { &*client }.queue.fd()
}

/// The fd of the runtime that runs unary calls on the caller's thread
/// (see `local`), or -1 when they run on the background thread. While it
/// is readable, `evetcd_drive` has work.
///
/// # Safety
/// `client` is a live client.
#[no_mangle]
pub unsafe extern "C" fn evetcd_local_fd(client: *const Client) -> c_int {
    // SAFETY: live client per contract.
    unsafe { &*client }.local_fd().unwrap_or(-1)
}

/// Starts the calls made since the last drive and runs the local runtime
/// until it would wait; never blocks. `timers`: also run what expired
/// timers wake (a drive on the timer). Returns how many of its calls are
/// unanswered, or -1 after a panic; while there are any, or while
/// `*next_deadline` is not -1, drive again on a timer (tokio's timers do
/// not show on the fd), at the latest when `*next_deadline` seconds have
/// passed (a call's deadline, or the open watches' tick).
///
/// # Safety
/// `client` is live; `next_deadline` is writable; called on the thread
/// that made the client, never from within a drive.
#[no_mangle]
pub unsafe extern "C" fn evetcd_drive(
    client: *const Client,
    timers: c_int,
    next_deadline: *mut f64,
) -> i64 {
    // SAFETY: live client per contract.
    let client = unsafe { &*client };
    let drove = catch_unwind(AssertUnwindSafe(|| client.drive(timers != 0)));
    let next = drove.as_ref().ok().and_then(|(_, next)| *next);
    // SAFETY: writable per contract.
    unsafe { *next_deadline = next.map_or(-1.0, |d| d.as_secs_f64()) };
    drove.map_or(-1, |(unanswered, _)| {
        i64::try_from(unanswered).unwrap_or(i64::MAX)
    })
}

/// The Perl name of unary method `method` (an `evetcd_method`), or null
/// for an unknown one.
#[no_mangle]
pub extern "C" fn evetcd_method_name(method: u32) -> *const c_char {
    catch_unwind(|| routes::route(method).map_or(std::ptr::null(), |r| r.c_name.as_ptr()))
        .unwrap_or(std::ptr::null())
}

/// Starts unary `method` (an `evetcd_method`) with its protobuf request body.
///
/// # Safety
/// `client` is live; `body` points at `body_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn evetcd_call(
    client: *const Client,
    id: u64,
    method: u32,
    body: *const c_char,
    body_len: usize,
    timeout: f64,
) -> c_int {
    // SAFETY: live client and readable buffer per contract.
    let (client, body) = unsafe { (&*client, slice(body, body_len)) };
    guard("evetcd_call", || {
        let deadline = call_deadline(timeout);
        if client.call(id, method, Bytes::copy_from_slice(body), deadline) {
            0
        } else {
            EVETCD_REJECTED
        }
    })
}

/// A watch as `watch` asks for it; the XS side has checked the options
/// and worked out the range (`range_end` null or empty: the key alone).
#[repr(C)]
pub struct EvetcdWatchRequest {
    pub key: *const c_char,
    pub key_len: usize,
    pub range_end: *const c_char,
    pub range_end_len: usize,
    pub start_revision: i64,
    pub watch_id: i64,
    pub progress_notify: c_int,
    pub prev_kv: c_int,
    /// Let the server split a large revision into several responses.
    pub fragment: c_int,
    pub no_put: c_int,
    pub no_delete: c_int,
}

impl EvetcdWatchRequest {
    /// # Safety
    /// The key and range_end pointers hold their lengths of bytes.
    unsafe fn to_proto(&self) -> WatchCreateRequest {
        let mut filters = Vec::new();
        if self.no_put != 0 {
            filters.push(FilterType::Noput as i32);
        }
        if self.no_delete != 0 {
            filters.push(FilterType::Nodelete as i32);
        }
        WatchCreateRequest {
            // SAFETY: guaranteed by the caller.
            key: unsafe { slice(self.key, self.key_len) }.to_vec(),
            // SAFETY: guaranteed by the caller.
            range_end: unsafe { slice(self.range_end, self.range_end_len) }.to_vec(),
            start_revision: self.start_revision,
            progress_notify: self.progress_notify != 0,
            filters,
            prev_kv: self.prev_kv != 0,
            watch_id: self.watch_id,
            fragment: self.fragment != 0,
        }
    }
}

/// Starts a watch.
///
/// # Safety
/// `client` is live; `req` is readable, its strings hold their lengths.
#[no_mangle]
pub unsafe extern "C" fn evetcd_watch(
    client: *const Client,
    id: u64,
    req: *const EvetcdWatchRequest,
    auto_reconnect: c_int,
    resync: c_int,
) -> c_int {
    // SAFETY: live client and readable request per contract.
    let (client, req) = unsafe { (&*client, &*req) };
    guard("evetcd_watch", || {
        // SAFETY: the request's strings hold their lengths per contract.
        let req = unsafe { req.to_proto() };
        #[cfg(feature = "test-hooks")]
        if client.shared.echo_requests.load(Ordering::Relaxed) {
            echo::answer_with(&client.shared, id, "watch", &req);
            return EVETCD_STARTED;
        }
        client
            .streams
            .watch(id, req, auto_reconnect != 0, resync != 0);
        EVETCD_STARTED
    })
}

/// Negative: the client's timeout; 0: none; else seconds (XS checked it).
fn call_deadline(timeout: f64) -> CallDeadline {
    if timeout < 0.0 || timeout.is_nan() {
        CallDeadline::ClientDefault
    } else if timeout == 0.0 {
        CallDeadline::Unlimited
    } else {
        CallDeadline::After(Duration::from_secs_f64(timeout.min(1e9)))
    }
}

/// Starts unary call `method` on the member named by `endpoint` (a
/// host:port, perhaps with a scheme) instead of the current endpoint.
/// Returns `EVETCD_BAD_ENDPOINT` when that endpoint is unusable (a message in `err`).
///
/// # Safety
/// `client` is live; the buffers are readable; `err` holds `err_cap` bytes.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn evetcd_call_at(
    client: *const Client,
    id: u64,
    method: u32,
    body: *const c_char,
    body_len: usize,
    timeout: f64,
    endpoint: *const c_char,
    endpoint_len: usize,
    err: *mut c_char,
    err_cap: usize,
) -> c_int {
    // SAFETY: live client and readable buffers per contract.
    let (client, body, endpoint) = unsafe {
        (
            &*client,
            slice(body, body_len),
            slice(endpoint, endpoint_len),
        )
    };
    guard("evetcd_call_at", || {
        let Ok(endpoint) = std::str::from_utf8(endpoint) else {
            return EVETCD_REJECTED;
        };
        #[cfg(feature = "test-hooks")]
        if client.shared.echo_requests.load(Ordering::Relaxed) {
            return if client.call(
                id,
                method,
                Bytes::copy_from_slice(body),
                CallDeadline::Unlimited,
            ) {
                0
            } else {
                EVETCD_REJECTED
            };
        }
        let Some(route) = routes::route(method) else {
            return EVETCD_REJECTED;
        };
        let deadline = call_deadline(timeout);
        match client.call_at(id, route, Bytes::copy_from_slice(body), deadline, endpoint) {
            Ok(()) => 0,
            Err(msg) => {
                write_error(err, err_cap, &msg);
                EVETCD_BAD_ENDPOINT
            }
        }
    })
}

/// Starts keeping `lease` alive.
///
/// # Safety
/// `client` is live.
#[no_mangle]
pub unsafe extern "C" fn evetcd_keepalive(
    client: *const Client,
    id: u64,
    lease: i64,
    auto_reconnect: c_int,
) -> c_int {
    // SAFETY: live client per contract.
    let client = unsafe { &*client };
    guard("evetcd_keepalive", || {
        #[cfg(feature = "test-hooks")]
        if client.shared.echo_requests.load(Ordering::Relaxed) {
            let req = LeaseKeepAliveRequest { id: lease };
            echo::answer_with(&client.shared, id, "lease_keepalive", &req);
            return 0;
        }
        client.streams.keepalive(id, lease, auto_reconnect != 0);
        0
    })
}

/// Starts observing the leader of election `name`.
///
/// # Safety
/// `client` is live; `name` points at `name_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn evetcd_observe(
    client: *const Client,
    id: u64,
    name: *const c_char,
    name_len: usize,
    auto_reconnect: c_int,
) -> c_int {
    // SAFETY: live client and readable buffer per contract.
    let (client, name) = unsafe { (&*client, slice(name, name_len)) };
    guard("evetcd_observe", || {
        #[cfg(feature = "test-hooks")]
        if client.shared.echo_requests.load(Ordering::Relaxed) {
            let req = LeaderRequest {
                name: name.to_vec(),
            };
            echo::answer_with(&client.shared, id, "election_observe", &req);
            return 0;
        }
        client
            .streams
            .observe(id, name.to_vec(), auto_reconnect != 0);
        0
    })
}

/// Streams the backend snapshot to completion `id`: pieces as messages,
/// then the size once its checksum has been checked.
///
/// # Safety
/// `client` is live.
#[no_mangle]
pub unsafe extern "C" fn evetcd_snapshot(client: *const Client, id: u64) -> c_int {
    // SAFETY: live client per contract.
    let client = unsafe { &*client };
    guard("evetcd_snapshot", || {
        #[cfg(feature = "test-hooks")]
        if client.shared.echo_requests.load(Ordering::Relaxed) {
            let req = crate::proto::etcdserverpb::SnapshotRequest {};
            echo::answer_with(&client.shared, id, "snapshot", &req);
            return 0;
        }
        client.streams.snapshot(id);
        0
    })
}

/// Cancels stream `id` of `kind` (1 watch, 2 keepalive, 3 observe, 4 snapshot).
///
/// # Safety
/// `client` is live.
#[no_mangle]
pub unsafe extern "C" fn evetcd_cancel(
    client: *const Client,
    kind: c_int,
    id: u64,
    cancel_id: u64,
) -> c_int {
    // SAFETY: live client per contract.
    let client = unsafe { &*client };
    guard("evetcd_cancel", || match stream_kind(kind) {
        Some(kind) => {
            client.streams.cancel(kind, id, cancel_id);
            0
        }
        None => EVETCD_REJECTED,
    })
}

/// Asks the server for a progress notification for watch `id`; it reaches
/// that watch's callback as a message without events.
///
/// # Safety
/// `client` is live.
#[no_mangle]
pub unsafe extern "C" fn evetcd_watch_progress(client: *const Client, id: u64) -> c_int {
    // SAFETY: live client per contract.
    let client = unsafe { &*client };
    guard("evetcd_watch_progress", || {
        client.streams.watch_progress(id);
        0
    })
}

/// Test hook: makes the task behind every stream of `kind` panic, so a
/// test can check each of those streams still gets its one error.
///
/// # Safety
/// `client` is live.
#[cfg(feature = "test-hooks")]
#[no_mangle]
pub unsafe extern "C" fn evetcd_crash_streams_for_testing(
    client: *const Client,
    kind: c_int,
) -> c_int {
    // SAFETY: live client per contract.
    let client = unsafe { &*client };
    guard("evetcd_crash_streams_for_testing", || {
        match stream_kind(kind) {
            Some(kind) => {
                client.streams.crash_for_test(kind);
                0
            }
            None => EVETCD_REJECTED,
        }
    })
}

/// Test hook: from now on the client sends nothing; every call and stream
/// it starts is answered at once, and only, with prost's strict reading of
/// its request (see `engine::echo`).
///
/// # Safety
/// `client` is live.
#[cfg(feature = "test-hooks")]
#[no_mangle]
pub unsafe extern "C" fn evetcd_echo_requests_for_testing(client: *const Client) {
    // SAFETY: live client per contract.
    let client = unsafe { &*client };
    client.shared.echo_requests.store(true, Ordering::Relaxed);
}

/// Re-arms the wake-up; call once per wake-up, before `evetcd_next`.
///
/// # Safety
/// `client` is live.
#[no_mangle]
pub unsafe extern "C" fn evetcd_ack(client: *const Client) {
    // SAFETY: live client per contract.
    let client = unsafe { &*client };
    let _ = catch_unwind(AssertUnwindSafe(|| client.queue.acknowledge()));
}

/// After a drain that stopped early: wake the loop again if anything is left.
///
/// # Safety
/// `client` is live.
#[no_mangle]
pub unsafe extern "C" fn evetcd_rewake(client: *const Client) {
    // SAFETY: live client per contract.
    let client = unsafe { &*client };
    let _ = catch_unwind(AssertUnwindSafe(|| client.queue.rewake()));
}

/// 1 when completions wait to be delivered, else 0.
///
/// # Safety
/// `client` is live.
#[no_mangle]
pub unsafe extern "C" fn evetcd_has_completions(client: *const Client) -> c_int {
    // SAFETY: live client per contract.
    let client = unsafe { &*client };
    catch_unwind(AssertUnwindSafe(|| {
        c_int::from(client.queue.has_completions())
    }))
    .unwrap_or(1)
}

/// Takes the next completion, if any, and builds its Perl data.
/// Returns 1 with `*id`, `*disposition` (0 keep, 1 last) and either
/// `*resp` or `*err` set to a new HV (the other null), or 0 when empty.
/// `*info` is the `on_request` hash of a unary call, or null.
///
/// # Safety
/// `client` is live; `vt` holds working XS builder functions; out-pointers are writable.
#[no_mangle]
pub unsafe extern "C" fn evetcd_next(
    client: *const Client,
    vt: *const BuilderVtable,
    id: *mut u64,
    disposition: *mut c_int,
    resp: *mut *mut std::ffi::c_void,
    err: *mut *mut std::ffi::c_void,
    info: *mut *mut std::ffi::c_void,
) -> c_int {
    // SAFETY: live client and builder per contract.
    let (client, vt) = unsafe { (&*client, &*vt) };
    let Ok(Some(c)) = catch_unwind(AssertUnwindSafe(|| client.queue.try_next())) else {
        return 0;
    };
    // SAFETY: the XS builder is valid for this call on the Perl thread.
    let b = unsafe { Builder::new(vt) };
    let built = catch_unwind(AssertUnwindSafe(|| match &c.result {
        Ok(reply) => (reply.to_perl(&b).into_raw(), std::ptr::null_mut()),
        Err(e) => (std::ptr::null_mut(), e.to_perl(&b).into_raw()),
    }));
    // A reply that failed to convert still reaches its callback, as an error.
    let (ok, bad) = built.unwrap_or_else(|_| {
        let e = crate::error::EtcdError::internal("failed to convert the reply", "internal");
        let hv = catch_unwind(AssertUnwindSafe(|| e.to_perl(&b).into_raw()));
        (std::ptr::null_mut(), hv.unwrap_or(std::ptr::null_mut()))
    });
    let call = c.info.as_ref().and_then(|i| {
        let status = match &c.result {
            Ok(_) => "OK",
            Err(e) => e.status_name(),
        };
        catch_unwind(AssertUnwindSafe(|| {
            call_info_to_perl(&b, i, status).into_raw()
        }))
        .ok()
    });
    let code = match c.disposition {
        Disposition::Keep => EVETCD_KEEP,
        Disposition::Last => EVETCD_LAST,
    };
    // SAFETY: out-pointers are writable per contract.
    unsafe {
        *id = c.id;
        *disposition = code;
        *resp = ok;
        *err = bad;
        *info = call.unwrap_or(std::ptr::null_mut());
    }
    1
}

fn call_info_to_perl(b: &Builder, info: &CallInfo, status: &str) -> crate::perl::Hv {
    let h = b.hv();
    b.bytes(h, k!("method"), info.method.as_bytes());
    b.bytes(h, k!("endpoint"), info.endpoint.as_bytes());
    b.num(h, k!("duration"), info.duration.as_secs_f64());
    b.bytes(h, k!("status"), status.as_bytes());
    b.uint(h, k!("retries"), u64::from(info.retries));
    h
}

/// A message size limit from C: 0 means none.
fn message_limit(bytes: u64) -> usize {
    match bytes {
        0 => usize::MAX,
        n => usize::try_from(n).unwrap_or(usize::MAX),
    }
}

/// Replaces the endpoint list; on failure returns -1 and writes why.
///
/// # Safety
/// `client` is live; `n` endpoints with their lengths; `err` has `err_cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn evetcd_set_endpoints(
    client: *const Client,
    endpoints: *const *const c_char,
    endpoint_lens: *const usize,
    n: usize,
    err: *mut c_char,
    err_cap: usize,
) -> c_int {
    // SAFETY: live client per contract.
    let client = unsafe { &*client };
    let mut names = Vec::with_capacity(n);
    for i in 0..n {
        // SAFETY: n entries in both arrays, each pointing at its length of bytes.
        let bytes = unsafe { slice(*endpoints.add(i), *endpoint_lens.add(i)) };
        names.push(String::from_utf8_lossy(bytes).into_owned());
    }
    let outcome = catch_unwind(AssertUnwindSafe(|| client.set_endpoints(names)));
    match outcome {
        Ok(Ok(())) => 0,
        Ok(Err(msg)) => {
            write_error(err, err_cap, &msg);
            EVETCD_REJECTED
        }
        Err(_) => {
            write_error(err, err_cap, "internal error");
            EVETCD_PANICKED
        }
    }
}

/// The endpoint list as an array of byte strings built with `vt`.
///
/// # Safety
/// `client` is live; `vt` holds working XS builder functions.
#[no_mangle]
pub unsafe extern "C" fn evetcd_endpoints(
    client: *const Client,
    vt: *const BuilderVtable,
) -> *mut std::ffi::c_void {
    // SAFETY: live client and builder per contract.
    let (client, vt) = unsafe { (&*client, &*vt) };
    // SAFETY: the XS builder is valid for this call on the Perl thread.
    let b = unsafe { Builder::new(vt) };
    catch_unwind(AssertUnwindSafe(|| {
        let names = client.shared.endpoints();
        let av = b.av(names.len());
        for n in &names {
            b.push_bytes(av, n.as_bytes());
        }
        av.into_raw()
    }))
    .unwrap_or(std::ptr::null_mut())
}

thread_local! {
    /// The last panic caught on this thread: what it said and where.
    static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Set by `evetcd_panic_for_testing`: the next start panics.
#[cfg(feature = "test-hooks")]
static PANIC_NEXT_START: AtomicBool = AtomicBool::new(false);

/// Makes the panic hook note each panic's message and place for
/// `evetcd_last_panic`; the previous hook still runs (and prints it).
fn note_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let what = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("a panic");
            let place = info
                .location()
                .map_or_else(String::new, |l| format!(" at {}:{}", l.file(), l.line()));
            LAST_PANIC.with(|p| *p.borrow_mut() = format!("{what}{place}"));
            previous(info);
        }));
    });
}

/// Runs one start of the ABI (`abi_fn` names it) and turns a panic into
/// `EVETCD_PANICKED`, with its description kept for `evetcd_last_panic`.
fn guard(abi_fn: &str, f: impl FnOnce() -> c_int) -> c_int {
    note_panics();
    let run = || {
        #[cfg(feature = "test-hooks")]
        if PANIC_NEXT_START.swap(false, Ordering::Relaxed) {
            panic!("panic requested by a test");
        }
        f()
    };
    catch_unwind(AssertUnwindSafe(run)).unwrap_or_else(|_| {
        LAST_PANIC.with(|p| {
            let mut p = p.borrow_mut();
            *p = format!("in {abi_fn}: {p}");
        });
        EVETCD_PANICKED
    })
}

/// Writes what the last `EVETCD_PANICKED` of this thread was about into `buf`.
///
/// # Safety
/// `buf` has `cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn evetcd_last_panic(buf: *mut c_char, cap: usize) {
    let _ = catch_unwind(|| LAST_PANIC.with(|p| write_error(buf, cap, &p.borrow())));
}

/// Test hook: the next call or stream started panics inside the library.
#[cfg(feature = "test-hooks")]
#[no_mangle]
pub extern "C" fn evetcd_panic_for_testing() {
    PANIC_NEXT_START.store(true, Ordering::Relaxed);
}
