//! What the three long-lived streams (watch, keepalive, observe) share: the
//! reconnect policy and the per-client front door that starts them.

use crate::election::ObserveTask;
use crate::lease::{KeepaliveCmd, KeepaliveHub};
use crate::perl::Empty;
use crate::proto::etcdserverpb::WatchCreateRequest;
use crate::queue::Disposition;
use crate::runtime::Shared;
use crate::watch::{WatchCmd, WatchHub};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Reconnect schedule: wait 1 s before the first attempt, then double up to
/// 16 s (1, 2, 4, 8, 16, 16, ...). The default three attempts are made 1, 3
/// and 7 s after the failure; a negative limit retries forever.
pub struct Backoff {
    max_retries: i64,
    attempts: u32,
}

impl Backoff {
    pub fn new(max_retries: i64) -> Self {
        Backoff {
            max_retries,
            attempts: 0,
        }
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
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

/// Kinds of stream a Perl handle can cancel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    Watch,
    Keepalive,
    Observe,
}

impl StreamKind {
    pub fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(StreamKind::Watch),
            2 => Some(StreamKind::Keepalive),
            3 => Some(StreamKind::Observe),
            _ => None,
        }
    }
}

/// Per-client entry to the stream machinery; hubs start on first use.
pub struct Streams {
    shared: Arc<Shared>,
    handle: tokio::runtime::Handle,
    watch: OnceLock<mpsc::UnboundedSender<WatchCmd>>,
    keepalive: OnceLock<mpsc::UnboundedSender<KeepaliveCmd>>,
    observers: Arc<Mutex<HashMap<u64, oneshot::Sender<u64>>>>,
}

impl Streams {
    pub fn new(shared: Arc<Shared>, handle: tokio::runtime::Handle) -> Self {
        Streams {
            shared,
            handle,
            watch: OnceLock::new(),
            keepalive: OnceLock::new(),
            observers: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn watch_hub(&self) -> &mpsc::UnboundedSender<WatchCmd> {
        self.watch.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            self.handle
                .spawn(WatchHub::new(self.shared.clone(), rx).run());
            tx
        })
    }

    fn keepalive_hub(&self) -> &mpsc::UnboundedSender<KeepaliveCmd> {
        self.keepalive.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            self.handle
                .spawn(KeepaliveHub::new(self.shared.clone(), rx).run());
            tx
        })
    }

    pub fn watch(&self, id: u64, req: WatchCreateRequest, auto_reconnect: bool) {
        let _ = self.watch_hub().send(WatchCmd::Create {
            id,
            req,
            auto_reconnect,
        });
    }

    pub fn keepalive(&self, id: u64, lease: i64, auto_reconnect: bool) {
        let _ = self.keepalive_hub().send(KeepaliveCmd::Start {
            id,
            lease,
            auto_reconnect,
        });
    }

    pub fn observe(&self, id: u64, name: Vec<u8>, auto_reconnect: bool) {
        let (tx, rx) = oneshot::channel();
        self.observers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        let task = ObserveTask {
            shared: self.shared.clone(),
            id,
            name,
            auto_reconnect,
            registry: self.observers.clone(),
        };
        self.handle.spawn(task.run(rx));
    }

    /// Cancels stream `id`; `cancel_id` completes once nothing more will be
    /// delivered for it (right away if the stream had already ended).
    pub fn cancel(&self, kind: StreamKind, id: u64, cancel_id: u64) {
        let already_over = match kind {
            StreamKind::Watch => self
                .watch_hub()
                .send(WatchCmd::Cancel { id, cancel_id })
                .is_err(),
            StreamKind::Keepalive => self
                .keepalive_hub()
                .send(KeepaliveCmd::Cancel { id, cancel_id })
                .is_err(),
            StreamKind::Observe => {
                let tx = self
                    .observers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                match tx {
                    Some(tx) => tx.send(cancel_id).is_err(),
                    None => true,
                }
            }
        };
        if already_over {
            finish_cancel(&self.shared, None, cancel_id);
        }
    }
}

/// Ends a cancelled stream: forget its callback, then answer the cancel.
/// Queue order guarantees no message for `stream_id` follows the answer.
pub fn finish_cancel(shared: &Shared, stream_id: Option<u64>, cancel_id: u64) {
    if let Some(id) = stream_id {
        shared.send(id, Disposition::Drop, Ok(Box::new(Empty)));
    }
    shared.send(cancel_id, Disposition::Last, Ok(Box::new(Empty)));
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
