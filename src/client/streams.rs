//! The front door of the streams: starts watch, keepalive, observe and
//! snapshot tasks for one client, and cancels them.

use crate::conn::Shared;
use crate::engine::stream::{stop_task, Stop, TaskSlot, TaskStops};
use crate::perl::Empty;
use crate::proto::etcdserverpb::WatchCreateRequest;
use crate::queue::Disposition;
use crate::services::election::{self, ObserveTask};
use crate::services::lease::{KeepaliveCmd, KeepaliveHub};
use crate::services::maintenance;
use crate::services::watch::{WatchCmd, WatchHub};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Kinds of stream a Perl handle can cancel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    Watch,
    Keepalive,
    Observe,
    Snapshot,
}

/// Per-client entry to the stream machinery; hubs start on first use.
pub struct Streams {
    shared: Arc<Shared>,
    /// The background thread's runtime.
    handle: tokio::runtime::Handle,
    /// Where the watch hub runs: the Perl thread's runtime when there is
    /// one (see `local`), so events reach Perl without a thread hop.
    watch_handle: tokio::runtime::Handle,
    /// Set while the watch hub holds watches: then its timers (reconnect,
    /// probes, HTTP/2 keepalive) need the runtime driven now and then.
    watching: Arc<AtomicBool>,
    watch: Mutex<Option<mpsc::UnboundedSender<WatchCmd>>>,
    keepalive: Mutex<Option<mpsc::UnboundedSender<KeepaliveCmd>>>,
    observers: TaskStops,
    snapshots: TaskStops,
}

/// Sends `cmd` to the hub behind `slot`, starting a hub first when there
/// is none or the last one is gone (a hub that stopped has answered every
/// stream and command it held: see its Drop).
fn to_hub<C>(
    slot: &Mutex<Option<mpsc::UnboundedSender<C>>>,
    start: impl Fn(mpsc::UnboundedReceiver<C>),
    cmd: C,
) {
    let mut hub = slot.lock().unwrap_or_else(|p| p.into_inner());
    let cmd = match hub.as_ref() {
        Some(tx) => match tx.send(cmd) {
            Ok(()) => return,
            Err(mpsc::error::SendError(cmd)) => cmd,
        },
        None => cmd,
    };
    let (tx, rx) = mpsc::unbounded_channel();
    start(rx);
    let _ = tx.send(cmd);
    *hub = Some(tx);
}

impl Streams {
    pub fn new(
        shared: Arc<Shared>,
        handle: tokio::runtime::Handle,
        watch_handle: tokio::runtime::Handle,
    ) -> Self {
        Streams {
            shared,
            handle,
            watch_handle,
            watching: Arc::default(),
            watch: Mutex::new(None),
            keepalive: Mutex::new(None),
            observers: Arc::new(Mutex::new(HashMap::new())),
            snapshots: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn to_watch_hub(&self, cmd: WatchCmd) {
        let start = |rx| {
            let hub = WatchHub::new(self.shared.clone(), rx, self.watching.clone());
            self.watch_handle.spawn(hub.run());
        };
        to_hub(&self.watch, start, cmd);
    }

    /// Whether watches are open (their timers need driving).
    pub fn watching(&self) -> bool {
        self.watching.load(Ordering::Relaxed)
    }

    fn to_keepalive_hub(&self, cmd: KeepaliveCmd) {
        let start = |rx| {
            self.handle
                .spawn(KeepaliveHub::new(self.shared.clone(), rx).run());
        };
        to_hub(&self.keepalive, start, cmd);
    }

    pub fn watch(&self, id: u64, req: WatchCreateRequest, auto_reconnect: bool, resync: bool) {
        self.shared.gate.await_watch(id);
        self.to_watch_hub(WatchCmd::Create {
            id,
            req,
            auto_reconnect,
            resync,
        });
    }

    pub fn watch_progress(&self, id: u64) {
        self.to_watch_hub(WatchCmd::Progress { id });
    }

    pub fn keepalive(&self, id: u64, lease: i64, auto_reconnect: bool) {
        self.to_keepalive_hub(KeepaliveCmd::Start {
            id,
            lease,
            auto_reconnect,
        });
    }

    pub fn observe(&self, id: u64, name: Vec<u8>, auto_reconnect: bool) {
        let (slot, rx) = TaskSlot::register(&self.shared, id, election::SOURCE, &self.observers);
        let task = ObserveTask {
            shared: self.shared.clone(),
            id,
            name,
            auto_reconnect,
            slot,
        };
        self.handle.spawn(task.run(rx));
    }

    pub fn snapshot(&self, id: u64) {
        let (slot, rx) =
            TaskSlot::register(&self.shared, id, maintenance::SNAPSHOT, &self.snapshots);
        let task = maintenance::SnapshotTask {
            shared: self.shared.clone(),
            slot,
        };
        self.handle.spawn(task.run(rx));
    }

    /// Cancels stream `id`. The Perl side has already forgotten the
    /// stream's callback, so the cancel is complete as far as the user can
    /// see: answer it now (a program that runs the loop once right after
    /// cancelling must get its answer in that run), then let the stream's
    /// owner tidy up the server side in the background.
    pub fn cancel(&self, kind: StreamKind, id: u64, cancel_id: u64) {
        self.shared
            .send(cancel_id, Disposition::Last, Ok(Box::new(Empty)));
        match kind {
            StreamKind::Watch => {
                self.shared.gate.settle(id);
                self.to_watch_hub(WatchCmd::Cancel { id })
            }
            StreamKind::Keepalive => self.to_keepalive_hub(KeepaliveCmd::Cancel { id }),
            StreamKind::Observe => stop_task(&self.observers, id, Stop::Cancel),
            StreamKind::Snapshot => stop_task(&self.snapshots, id, Stop::Cancel),
        }
    }

    /// Test hook: makes the task behind every stream of `kind` panic.
    #[cfg(feature = "test-hooks")]
    pub fn crash_for_test(&self, kind: StreamKind) {
        match kind {
            StreamKind::Watch => self.to_watch_hub(WatchCmd::Crash),
            StreamKind::Keepalive => self.to_keepalive_hub(KeepaliveCmd::Crash),
            StreamKind::Observe | StreamKind::Snapshot => {
                let stops = match kind {
                    StreamKind::Observe => &self.observers,
                    _ => &self.snapshots,
                };
                let ids: Vec<u64> = stops
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .keys()
                    .copied()
                    .collect();
                for id in ids {
                    stop_task(stops, id, Stop::Crash);
                }
            }
        }
    }
}
