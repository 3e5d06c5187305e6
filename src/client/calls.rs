//! The two ways a unary call goes: submitted to the background thread's
//! dispatcher, or queued for the next drive of the Perl thread's runtime,
//! which counts its unanswered calls and their deadlines.

use crate::conn::Shared;
use crate::engine::call::unary_call;
use crate::engine::{ReplyGuard, Route};
use crate::queue::CallInfo;
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    pub fn limit(self, client: Duration) -> Option<Duration> {
        match self {
            CallDeadline::ClientDefault => Some(client),
            CallDeadline::Unlimited => None,
            CallDeadline::After(d) => Some(d),
        }
    }
}

/// A unary call handed over by the Perl thread.
pub struct Submission {
    pub id: u64,
    pub route: &'static Route,
    pub body: Bytes,
    pub deadline: Option<Duration>,
    /// When the Perl side submitted it; only kept for `on_request`.
    pub started: Option<Instant>,
}

/// Turns submissions into tasks. Spawning here, on the runtime thread, is
/// a local queue push; spawning from the Perl thread would wake the runtime
/// once per call.
pub async fn dispatch(
    shared: Arc<Shared>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Submission>,
) {
    while let Some(call) = rx.recv().await {
        start_call(&shared, call, None);
    }
}

/// The local runtime's unanswered calls: their number, and the deadlines
/// of those that have one (tokio's timers do not show on its descriptor,
/// so the EV side needs to know when to drive it).
#[derive(Default)]
pub struct LocalCalls {
    count: AtomicU64,
    deadlines: Mutex<std::collections::BTreeSet<(Instant, u64)>>,
}

impl LocalCalls {
    pub fn start(self: &Arc<Self>, id: u64, limit: Option<Duration>) -> CountedCall {
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

    pub fn state(&self) -> (u64, Option<Duration>) {
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
pub struct CountedCall {
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
pub fn start_call(shared: &Arc<Shared>, call: Submission, count: Option<CountedCall>) {
    let Submission {
        id,
        route,
        body,
        deadline,
        started,
    } = call;
    #[cfg(feature = "test-hooks")]
    if shared.echo_requests.load(Ordering::Relaxed) {
        let echo = (route.echo)(route.source, &body);
        crate::engine::echo::answer(shared, id, route.source, echo);
        return;
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        let _count = count;
        let guard = ReplyGuard::new(shared.clone(), id, route.source);
        let outcome = unary_call(&shared, route, body, deadline).await;
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
