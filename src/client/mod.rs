//! The client façade: one client's runtimes and the two ways its unary
//! calls go (`calls`), the front door of its streams (`streams`), and every
//! method's route by the id the C side names it with (`routes`).

pub mod calls;
pub mod routes;
pub mod streams;

use crate::conn::config::split_scheme;
use crate::conn::{CallGate, Config, Shared};
use crate::engine::call::member_call;
use crate::engine::health::health_loop;
use crate::engine::{ReplyGuard, Route};
use crate::queue::{CallInfo, CompletionQueue};
use crate::services::cluster;
use bytes::Bytes;
use calls::{dispatch, start_call, CallDeadline, LocalCalls, Submission};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the local runtime is driven while watches are open and
/// nothing else happens: their timers (reconnect backoff, probes, HTTP/2
/// keepalive pings) count in seconds, so a tenth of one is soon enough.
const STREAM_TICK: Duration = Duration::from_millis(100);

/// A client: owned by the Perl object through the C ABI.
pub struct Client {
    pub shared: Arc<Shared>,
    pub handle: tokio::runtime::Handle,
    pub queue: CompletionQueue,
    pub streams: streams::Streams,
    /// Where every unary call goes first: it holds those made after a
    /// watch until the watch is created, and passes the others on at once,
    /// to `queued` or to the dispatcher task.
    gate: Arc<CallGate<Submission>>,
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
        let local = if cfg.inline_io {
            crate::local::PerlRuntime::new()
        } else {
            None
        };
        let (submit, submissions) = tokio::sync::mpsc::unbounded_channel();
        let queued: Arc<Mutex<Vec<Submission>>> = Arc::default();
        let gate = Arc::new(if local.is_some() {
            // Started by the next `drive`.
            let queued = queued.clone();
            CallGate::new(move |call| queued.lock().unwrap_or_else(|p| p.into_inner()).push(call))
        } else {
            // The dispatcher is woken only when it is idle: a burst of
            // calls from one drain costs one wake-up of the runtime thread.
            CallGate::new(move |call| {
                let _ = submit.send(call);
            })
        });
        let (shared, queue) = Shared::new(cfg, crate::services::auth::login, gate.clone())?;
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
            handle.spawn(cluster::sync_endpoints(shared.clone(), every));
        }
        if let Some(every) = shared.cfg.health_interval {
            handle.spawn(health_loop(shared.clone(), every));
        }
        handle.spawn(dispatch(shared.clone(), submissions));
        let watch_handle = local
            .as_ref()
            .map_or_else(|| handle.clone(), |l| l.handle());
        Ok(Client {
            gate,
            local,
            queued,
            local_calls: Arc::default(),
            streams: streams::Streams::new(shared.clone(), handle.clone(), watch_handle),
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
        route: &'static Route,
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
            let result = member_call(&shared, route, body, deadline, &uri).await;
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
    pub fn call(&self, id: u64, method: u32, body: Bytes, deadline: CallDeadline) -> bool {
        let Some(route) = routes::route(method) else {
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
        self.gate.pass(call);
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
        let unanswered = unanswered + self.gate.held() as u64;
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
