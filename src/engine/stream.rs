//! What the long-lived streams (watch, keepalive, observe, snapshot)
//! share: the reconnect policy, one shared bidirectional stream with its
//! reconnect state, what a broken stream does, and the hold a task keeps
//! on the stream it serves (answered exactly once).

use crate::conn::Shared;
use crate::error::{is_transport_failure, EtcdError};
use crate::queue::Disposition;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

/// Reconnect schedule: wait 1 s before the first attempt, then double up to
/// 16 s (1, 2, 4, 8, 16, 16, ...). The default three attempts are made 1, 3
/// and 7 s after the failure; a negative limit retries forever.
pub struct Backoff {
    max_retries: i64,
    attempts: u32,
    /// When the schedule's own next attempt is due, while a cap makes
    /// attempts sooner (see `next_delay_capped`).
    scheduled: Option<Instant>,
}

impl Backoff {
    pub fn new(max_retries: i64) -> Self {
        Backoff {
            max_retries,
            attempts: 0,
            scheduled: None,
        }
    }

    /// Like `next_delay`, but never waits longer than `cap`. Attempts made
    /// before the schedule's own are extra and do not count, so the
    /// stream gives up when it would have without the cap, having tried
    /// more often.
    pub fn next_delay_capped(&mut self, cap: Duration, now: Instant) -> Option<Duration> {
        if let Some(at) = self.scheduled.filter(|&at| now < at) {
            return Some(cap.min(at - now));
        }
        let delay = self.next_delay()?;
        self.scheduled = Some(now + delay);
        Some(delay.min(cap))
    }

    /// The wait before the next attempt, or None when attempts are used up.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self.max_retries >= 0 && i64::from(self.attempts) >= self.max_retries {
            return None;
        }
        let delay = Duration::from_secs(1u64 << self.attempts.min(4));
        self.attempts = self.attempts.saturating_add(1);
        Some(delay)
    }

    pub fn reset(&mut self) {
        self.attempts = 0;
        self.scheduled = None;
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

/// Builds the gRPC call of a bidirectional stream from a channel and the
/// request stream (already carrying the auth token).
pub type Opening<Resp> =
    Pin<Box<dyn Future<Output = Result<tonic::Response<Streaming<Resp>>, Status>> + Send>>;

/// `Opening` as a stream runs it: after the login, and with the generation
/// of the token the stream carries.
type Login<Resp> = Pin<
    Box<
        dyn Future<
                Output = (
                    Result<tonic::Response<Streaming<Resp>>, Status>,
                    Option<u64>,
                ),
            > + Send,
    >,
>;

/// What a hub hears from its stream.
pub enum StreamEvent<Resp> {
    /// The server accepted the stream.
    Opened,
    Message(Resp),
    /// The stream is gone (already closed here); why.
    Failed(Status),
    /// The endpoint list changed: the stream was closed, to be reopened
    /// on the new endpoint at once (no backoff, no error).
    Moved,
    /// The backoff delay is over: the hub may open a new stream.
    RetryDue,
}

/// One bidirectional stream shared by a hub's entries (watches, leases),
/// with its reconnect state. Requests go to `tx` at once, even while the
/// call is still being opened; replies come from `stream` once it is.
pub struct SharedStream<Req, Resp> {
    tx: Option<mpsc::UnboundedSender<Req>>,
    opening: Option<Login<Resp>>,
    /// Fires when the endpoint list moved away from this stream's endpoint.
    moves: Option<tokio::sync::watch::Receiver<u64>>,
    stream: Option<Streaming<Resp>>,
    generation: u64,
    /// Generation of the token the stream was opened with (None before the
    /// login it waited for was done).
    token_gen: Option<u64>,
    retry_at: Option<Instant>,
    backoff: Backoff,
    /// Which stream this is, for messages ("watch", "keepalive").
    kind: &'static str,
}

impl<Req, Resp> SharedStream<Req, Resp> {
    pub fn new(max_retries: i64, kind: &'static str) -> Self {
        SharedStream {
            tx: None,
            opening: None,
            moves: None,
            stream: None,
            generation: 0,
            token_gen: None,
            retry_at: None,
            backoff: Backoff::new(max_retries),
            kind,
        }
    }

    /// Open or being opened.
    pub fn is_up(&self) -> bool {
        self.tx.is_some()
    }

    /// Neither up nor waiting out a backoff delay.
    pub fn can_open(&self) -> bool {
        self.tx.is_none() && self.retry_at.is_none()
    }

    /// Opens the stream once the client is logged in (when it has
    /// credentials), with the token current at that moment.
    pub fn open(
        &mut self,
        shared: &Arc<Shared>,
        start: impl FnOnce(Channel, tonic::Request<UnboundedReceiverStream<Req>>) -> Opening<Resp>
            + Send
            + 'static,
    ) where
        Req: Send + 'static,
        Resp: 'static,
    {
        self.moves = Some(shared.watch_moves());
        let (channel, generation) = shared.channel();
        self.generation = generation;
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = shared.clone();
        let kind = self.kind;
        self.token_gen = None;
        self.opening = Some(Box::pin(async move {
            if let Err(e) = shared.ensure_login().await {
                let msg = format!("{kind}: {}", e.message);
                return (Err(Status::new(e.code, msg)), None);
            }
            let (mut req, token_gen) =
                shared.request_with_token(UnboundedReceiverStream::new(rx), true, None);
            crate::conn::require_leader(&mut req);
            (start(channel, req).await, Some(token_gen))
        }));
        self.tx = Some(tx);
    }

    pub fn close(&mut self) {
        self.tx = None;
        self.opening = None;
        self.stream = None;
        self.moves = None;
    }

    pub fn send(&self, req: Req) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(req);
        }
    }

    /// Gives up on a stream whose connection answers nothing at all: a new
    /// connection is made for the next attempt.
    pub fn abandon(&mut self, shared: &Shared) {
        shared.connection_dead(self.generation);
        self.close();
    }

    /// The stream works: the next outage gets a fresh set of attempts.
    pub fn working(&mut self) {
        self.backoff.reset();
    }

    pub async fn next(&mut self) -> StreamEvent<Resp> {
        tokio::select! {
            (opened, token_gen) = poll_opening(&mut self.opening) => {
                self.opening = None;
                self.token_gen = token_gen;
                match opened {
                    Ok(resp) => {
                        self.stream = Some(resp.into_inner());
                        StreamEvent::Opened
                    }
                    Err(status) => {
                        self.close();
                        StreamEvent::Failed(status)
                    }
                }
            }
            msg = next_message(&mut self.stream) => match msg {
                Ok(Some(m)) => StreamEvent::Message(m),
                Ok(None) => {
                    self.close();
                    StreamEvent::Failed(Status::unavailable(format!(
                        "{} stream closed by the server",
                        self.kind
                    )))
                }
                Err(status) => {
                    self.close();
                    StreamEvent::Failed(status)
                }
            },
            _ = moved(&mut self.moves) => {
                self.close();
                StreamEvent::Moved
            }
            _ = wait_until(self.retry_at) => {
                self.retry_at = None;
                StreamEvent::RetryDue
            }
        }
    }

    /// After a failure: moves off a broken endpoint and returns the error,
    /// and whether the failure is worth reconnecting for (transient, or a
    /// stale token that is being renewed).
    pub fn failure(&self, shared: &Arc<Shared>, status: &Status) -> (EtcdError, bool) {
        stream_failure(shared, status, self.generation, self.token_gen, self.kind)
    }

    /// Generation of the token this stream carries (see `Shared::token_rejected`).
    pub fn token_gen(&self) -> Option<u64> {
        self.token_gen
    }

    /// Schedules the next attempt, no later than `cap` from now when one is
    /// given (see `Backoff::next_delay_capped`); when attempts are used up
    /// returns the error each remaining entry gets (and starts counting
    /// afresh).
    pub fn retry_or_give_up(
        &mut self,
        err: &EtcdError,
        cap: Option<Duration>,
    ) -> Option<EtcdError> {
        let delay = match cap {
            Some(cap) => self.backoff.next_delay_capped(cap, Instant::now()),
            None => self.backoff.next_delay(),
        };
        match delay {
            Some(delay) => {
                self.retry_at = Some(Instant::now() + delay);
                None
            }
            None => {
                let gave_up = gave_up(err, self.kind, self.backoff.attempts());
                self.backoff.reset();
                Some(gave_up)
            }
        }
    }

    /// Nothing left to reconnect for.
    pub fn idle(&mut self) {
        self.backoff.reset();
    }
}

/// What every stream does when it breaks: move off a broken endpoint
/// (`generation` is the channel it used), and tell whether reconnecting is
/// worth it (a transient failure, or a stale token now being renewed; the
/// token is dropped unless it was replaced since the stream took
/// generation `token_gen`).
pub fn stream_failure(
    shared: &Arc<Shared>,
    status: &Status,
    generation: u64,
    token_gen: Option<u64>,
    kind: &'static str,
) -> (EtcdError, bool) {
    if is_transport_failure(status) {
        shared.connection_failed(generation);
    }
    let err = EtcdError::from_status(status, kind);
    let retry =
        err.retryable() || crate::conn::token::renew_token_for_stream(shared, status, token_gen);
    (err, retry)
}

/// The error that ends a stream whose reconnect attempts ran out.
pub fn gave_up(err: &EtcdError, kind: &'static str, attempts: u32) -> EtcdError {
    let msg = format!(
        "{kind} stream lost, gave up after {attempts} reconnect attempts: {}",
        err.message
    );
    EtcdError::new(err.code, msg, kind)
}

/// The error a stream gets when the task that served it stopped without
/// ending it (a panic, a bug): exactly one, so no callback stays silent.
pub fn task_lost(kind: &'static str) -> EtcdError {
    EtcdError::new(
        tonic::Code::Internal,
        format!("{kind} stream stopped unexpectedly (internal error); start it again"),
        kind,
    )
}

/// Sends `task_lost` to every stream in `ids`.
pub fn fail_orphans(shared: &Shared, kind: &'static str, ids: impl IntoIterator<Item = u64>) {
    let err = task_lost(kind);
    for id in ids {
        shared.send(id, Disposition::Last, Err(err.clone()));
    }
}

/// What a hub does when it is dropped (see the hubs' Drop): if its client
/// still lives, the hub stopped by accident (a panic), so it closes its
/// command channel and answers, once, every stream it `held` and every
/// one still queued for it (`queued` names the stream a command starts).
pub fn orphan_hub<C>(
    shared: &Shared,
    kind: &'static str,
    rx: &mut mpsc::UnboundedReceiver<C>,
    held: impl FnOnce() -> Vec<u64>,
    queued: fn(&C) -> Option<u64>,
) {
    if rx.sender_strong_count() == 0 {
        return; // the client is gone: nobody to tell
    }
    rx.close();
    let mut ids = held();
    while let Ok(cmd) = rx.try_recv() {
        ids.extend(queued(&cmd));
    }
    fail_orphans(shared, kind, ids);
}

/// Resolves when the endpoint list moves (never without a receiver).
pub async fn moved(moves: &mut Option<tokio::sync::watch::Receiver<u64>>) {
    if let Some(rx) = moves {
        if rx.changed().await.is_ok() {
            return;
        }
    }
    std::future::pending().await
}

async fn poll_opening<Resp>(
    opening: &mut Option<Login<Resp>>,
) -> (
    Result<tonic::Response<Streaming<Resp>>, Status>,
    Option<u64>,
) {
    match opening {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

async fn next_message<T>(stream: &mut Option<Streaming<T>>) -> Result<Option<T>, Status> {
    match stream {
        Some(s) => s.message().await,
        None => std::future::pending().await,
    }
}

pub async fn wait_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// How to stop each stream of one kind that a task of its own serves
/// (observe, snapshot), by completion id.
pub type TaskStops = Arc<Mutex<HashMap<u64, oneshot::Sender<Stop>>>>;

/// Stops stream `id` of `stops`, if it is still running.
pub fn stop_task(stops: &TaskStops, id: u64, how: Stop) {
    let tx = stops.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    if let Some(tx) = tx {
        let _ = tx.send(how);
    }
}

/// A stream task's hold on its stream: it ends the stream exactly once,
/// with `finish`, by being stopped, or (dropped otherwise, as by a panic)
/// with `task_lost`.
pub struct TaskSlot {
    shared: Arc<Shared>,
    id: u64,
    kind: &'static str,
    stops: TaskStops,
    finished: bool,
}

impl TaskSlot {
    /// Registers stream `id` in `stops`; the receiver hears a stop.
    pub fn register(
        shared: &Arc<Shared>,
        id: u64,
        kind: &'static str,
        stops: &TaskStops,
    ) -> (TaskSlot, oneshot::Receiver<Stop>) {
        let (tx, rx) = oneshot::channel();
        stops
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        let slot = TaskSlot {
            shared: shared.clone(),
            id,
            kind,
            stops: stops.clone(),
            finished: false,
        };
        (slot, rx)
    }

    /// The stream's completion id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Stopped from outside: the cancel has answered the user already.
    pub fn stopped(&mut self) {
        self.finished = true;
    }

    /// The stream's last message: its error, or the final reply.
    pub fn finish(&mut self, last: Result<crate::queue::Reply, EtcdError>) {
        self.finished = true;
        self.stops
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
        self.shared.send(self.id, Disposition::Last, last);
    }
}

impl Drop for TaskSlot {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.stops
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
        fail_orphans(&self.shared, self.kind, [self.id]);
    }
}

/// What ends an observer from outside.
pub enum Stop {
    Cancel,
    /// Test hook: the task panics, as a bug would make it.
    #[cfg(feature = "test-hooks")]
    Crash,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_schedule_and_limit() {
        let mut b = Backoff::new(3);
        let d: Vec<_> = std::iter::from_fn(|| b.next_delay()).collect();
        assert_eq!(
            d,
            vec![
                Duration::from_secs(1),
                Duration::from_secs(2),
                Duration::from_secs(4)
            ]
        );
        b.reset();
        assert_eq!(b.next_delay(), Some(Duration::from_secs(1)));
    }

    #[test]
    fn a_capped_schedule_tries_more_often_and_gives_up_as_late() {
        let secs = Duration::from_secs_f64;
        let t0 = Instant::now();
        let mut b = Backoff::new(3);
        // Each attempt fails as soon as it is made.
        let mut now = t0;
        let mut waits = Vec::new();
        while let Some(d) = b.next_delay_capped(secs(1.5), now) {
            waits.push(d);
            now += d;
        }
        // The schedule's own attempts at 1, 3 and 7 s; extra ones at most
        // 1.5 s apart in between, none counted.
        assert_eq!(
            waits,
            vec![
                secs(1.0),
                secs(1.5),
                secs(0.5),
                secs(1.5),
                secs(1.5),
                secs(1.0)
            ]
        );
        assert_eq!(now - t0, secs(7.0));
        assert_eq!(b.attempts(), 3);
        // A success starts everything afresh.
        b.reset();
        assert_eq!(b.next_delay_capped(secs(0.4), now), Some(secs(0.4)));
        assert_eq!(b.attempts(), 1);
    }

    #[test]
    fn negative_limit_never_gives_up() {
        let mut b = Backoff::new(-1);
        for _ in 0..100 {
            assert!(b.next_delay().unwrap() <= Duration::from_secs(16));
        }
    }

    #[test]
    fn zero_means_no_reconnect() {
        assert_eq!(Backoff::new(0).next_delay(), None);
    }
}
