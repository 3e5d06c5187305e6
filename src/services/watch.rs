//! Watch service. Every watch of a client rides one bidirectional gRPC
//! stream owned by a hub task; after a connection failure the hub opens a new
//! stream and re-creates each watch from the revision after the last one it
//! delivered, keeping the watch_id the user saw.

use crate::conn::Shared;
use crate::engine::stream::{orphan_hub, wait_until, Backoff, SharedStream, StreamEvent};
use crate::engine::{call_once, find, Route};
use crate::error::EtcdError;
use crate::perl::k;
use crate::perl::{Builder, Hv, ToPerl};
use crate::proto::etcdserverpb::{
    watch_client::WatchClient, watch_request::RequestUnion, RangeRequest, RangeResponse,
    WatchCancelRequest, WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse,
};
use crate::proto::mvccpb::event::EventType;
use crate::queue::Disposition;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::{Code, Status};

const SOURCE: &str = "watch";

/// Stands in `progress_asked` for a liveness probe (nobody's watch).
const PROBE: i64 = i64::MIN;

pub enum WatchCmd {
    Create {
        id: u64,
        req: WatchCreateRequest,
        auto_reconnect: bool,
        /// `on_compacted => 'resync'`.
        resync: bool,
    },
    /// The user cancelled (the Perl side has already answered): end the
    /// watch on the server.
    Cancel { id: u64 },
    /// The user asked for a progress notification for this watch.
    Progress { id: u64 },
    /// Test hook: the hub panics, as a bug would make it.
    #[cfg(feature = "test-hooks")]
    Crash,
}

struct Watch {
    /// Completion id of the Perl callback.
    id: u64,
    req: WatchCreateRequest,
    /// Revision to resume from; 0 until known.
    next_rev: i64,
    auto_reconnect: bool,
    /// Acknowledged by the server on the current stream.
    created: bool,
    /// The user has seen its `created` message.
    announced: bool,
    /// Cancelled by the user; kept until the server has let go of its
    /// watch_id, delivering nothing.
    cancelled: bool,
    /// A fragmented response being put back together.
    partial: Option<WatchResponse>,
    /// The user asked for a progress notification not yet delivered.
    progress_wanted: bool,
    /// On compaction, read the current state and carry on from there.
    resync: bool,
    /// Compacted away: the current state is being read.
    resyncing: bool,
    /// etcd keeps a compacted watch's id until told to cancel it; the
    /// answer to that cancel is still to come on this stream.
    releasing: bool,
    /// Refused for want of a good token since it was last created: its
    /// next create, on a stream opened after that refusal, carries a newer
    /// token, and a refusal of that is final.
    auth_retried: bool,
    /// Refused so, and waiting for the new login (see `retry_with_new_token`).
    awaiting_login: bool,
}

pub struct WatchHub {
    shared: Arc<Shared>,
    rx: mpsc::UnboundedReceiver<WatchCmd>,
    watches: HashMap<i64, Watch>,
    /// Live (not cancelled) watches by completion id.
    by_id: HashMap<u64, i64>,
    /// Creates that asked for the watch_id of a cancelled watch the server
    /// still holds; each starts once that one is gone.
    reuse: HashMap<i64, Watch>,
    /// Watches whose create request awaits its answer, in sending order:
    /// etcd 3.4 answers a refused create with watch_id -1.
    unanswered: VecDeque<i64>,
    /// Progress requests sent on the current stream, in order: etcd
    /// answers each with watch_id -1, for whoever asked.
    progress_asked: VecDeque<i64>,
    next_watch_id: i64,
    conn: SharedStream<WatchRequest, WatchResponse>,
    /// `watch_probe_interval`: silence after which the stream is probed.
    probe_every: Option<Duration>,
    /// When the stream was opened or last delivered anything.
    last_heard: Instant,
    /// When an unanswered probe went out.
    probe_sent: Option<Instant>,
    /// Results of the reads that resync compacted watches.
    resync_tx: mpsc::UnboundedSender<(i64, Result<RangeResponse, EtcdError>)>,
    resync_rx: mpsc::UnboundedReceiver<(i64, Result<RangeResponse, EtcdError>)>,
    /// Tells the client whether this hub holds watches (see `Streams`).
    watching: Arc<AtomicBool>,
    /// Counts the streams opened, so an answer can tell whether the stream
    /// it was meant for is still the current one.
    serial: u64,
    /// Watches refused for want of a good token, each with the server's
    /// reason, while the new login that may let them in is under way.
    awaiting_login: Vec<(i64, String)>,
    /// Outcomes of those logins, with the stream serial they were for.
    login_tx: mpsc::UnboundedSender<(u64, Result<(), EtcdError>)>,
    login_rx: mpsc::UnboundedReceiver<(u64, Result<(), EtcdError>)>,
}

impl WatchHub {
    pub fn new(
        shared: Arc<Shared>,
        rx: mpsc::UnboundedReceiver<WatchCmd>,
        watching: Arc<AtomicBool>,
    ) -> Self {
        let max = shared.cfg.max_retries;
        let (resync_tx, resync_rx) = mpsc::unbounded_channel();
        let (login_tx, login_rx) = mpsc::unbounded_channel();
        WatchHub {
            serial: 0,
            awaiting_login: Vec::new(),
            login_tx,
            login_rx,
            resync_tx,
            resync_rx,
            rx,
            watches: HashMap::new(),
            by_id: HashMap::new(),
            reuse: HashMap::new(),
            unanswered: VecDeque::new(),
            progress_asked: VecDeque::new(),
            next_watch_id: 1,
            conn: SharedStream::new(max, SOURCE),
            probe_every: shared.cfg.watch_probe,
            last_heard: Instant::now(),
            probe_sent: None,
            shared,
            watching,
        }
    }

    pub async fn run(mut self) {
        loop {
            if self.watches.is_empty() && self.conn.is_up() {
                self.close_stream(); // nothing left to watch: free the server side
            }
            if !self.watches.is_empty() && self.conn.can_open() {
                self.open_stream();
            }
            let watching = !self.watches.is_empty() || !self.reuse.is_empty();
            self.watching.store(watching, Ordering::Relaxed);
            let probe_due = self.probe_due();
            tokio::select! {
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => self.command(cmd),
                    None => return,
                },
                event = self.conn.next() => match event {
                    StreamEvent::Message(resp) => {
                        self.heard();
                        self.response(resp)
                    }
                    StreamEvent::Failed(status) => self.stream_failed(&status),
                    StreamEvent::Opened | StreamEvent::RetryDue | StreamEvent::Moved => {}
                },
                _ = wait_until(probe_due) => self.probe(),
                Some((wid, read)) = self.resync_rx.recv() => self.resynced(wid, read),
                Some((serial, login)) = self.login_rx.recv() => self.logged_in(serial, login),
            }
        }
    }

    /// When the liveness probe next needs attention: time to send one, or
    /// the deadline of the one sent. None without probing or a stream.
    fn probe_due(&self) -> Option<Instant> {
        let every = self.probe_every?;
        if !self.conn.is_up() || self.watches.is_empty() {
            return None;
        }
        Some(match self.probe_sent {
            Some(sent) => sent + self.shared.cfg.timeout,
            None => self.last_heard + every,
        })
    }

    fn heard(&mut self) {
        if self.probe_every.is_none() {
            return; // (no clock read per message when nobody probes)
        }
        self.last_heard = Instant::now();
        self.probe_sent = None;
    }

    /// An idle stream is asked for progress; a stream that leaves a probe
    /// unanswered for the client's timeout is taken as dead, and its
    /// watches resume on a new connection.
    fn probe(&mut self) {
        if self.probe_sent.is_none() {
            self.send(RequestUnion::ProgressRequest(WatchProgressRequest {}));
            self.progress_asked.push_back(PROBE);
            self.probe_sent = Some(Instant::now());
            return;
        }
        let secs = self.shared.cfg.timeout.as_secs_f64();
        let status = Status::unavailable(format!(
            "watch stream: no answer to a progress probe within {secs}s"
        ));
        self.conn.abandon(&self.shared);
        self.stream_failed(&status);
    }

    fn open_stream(&mut self) {
        // A cancelled watch has nothing to resume on a new stream.
        self.purge_cancelled();
        self.conn.open(&self.shared, |channel, req| {
            let mut client = WatchClient::new(channel).max_decoding_message_size(usize::MAX);
            Box::pin(async move { client.watch(req).await })
        });
        self.unanswered.clear();
        self.progress_asked.clear();
        self.heard();
        self.serial += 1;
        for (wid, w) in self.watches.iter_mut() {
            w.created = false;
            w.awaiting_login = false;
            w.partial = None;
            w.releasing = false;
            if w.resyncing {
                continue; // created once its read is in
            }
            self.conn.send(create_request(*wid, w));
            self.unanswered.push_back(*wid);
        }
    }

    fn close_stream(&mut self) {
        self.unanswered.clear();
        self.progress_asked.clear();
        self.conn.close();
    }

    fn send(&self, req: RequestUnion) {
        self.conn.send(WatchRequest {
            request_union: Some(req),
        });
    }

    fn command(&mut self, cmd: WatchCmd) {
        match cmd {
            WatchCmd::Create {
                id,
                req,
                auto_reconnect,
                resync,
            } => {
                let wid = if req.watch_id != 0 {
                    req.watch_id
                } else {
                    while self.watches.contains_key(&self.next_watch_id)
                        || self.reuse.contains_key(&self.next_watch_id)
                    {
                        self.next_watch_id += 1;
                    }
                    self.next_watch_id += 1;
                    self.next_watch_id - 1
                };
                let w = Watch {
                    id,
                    next_rev: req.start_revision.max(0),
                    req,
                    auto_reconnect,
                    created: false,
                    announced: false,
                    cancelled: false,
                    partial: None,
                    progress_wanted: false,
                    resync,
                    resyncing: false,
                    releasing: false,
                    auth_retried: false,
                    awaiting_login: false,
                };
                match self.watches.get(&wid) {
                    None => self.start(wid, w),
                    Some(old) if old.cancelled && !self.reuse.contains_key(&wid) => {
                        self.reuse.insert(wid, w);
                    }
                    Some(_) => {
                        let msg = format!("watch_id {wid} is already in use on this client");
                        let err = EtcdError::new(Code::AlreadyExists, msg, SOURCE);
                        self.shared.send(id, Disposition::Last, Err(err));
                    }
                }
            }
            #[cfg(feature = "test-hooks")]
            WatchCmd::Crash => panic!("watch hub: crash requested by a test"),
            WatchCmd::Progress { id } => {
                let Some(&wid) = self.by_id.get(&id) else {
                    return; // ended meanwhile
                };
                let w = self.watches.get_mut(&wid).expect("indexed watch");
                if w.progress_wanted {
                    return; // one answer serves both requests
                }
                w.progress_wanted = true;
                if w.created && self.conn.is_up() {
                    self.ask_progress(wid);
                }
                // Otherwise it is asked once the server has the watch.
            }
            WatchCmd::Cancel { id } => {
                let Some(wid) = self.by_id.remove(&id) else {
                    return; // already ended
                };
                let connected = self.conn.is_up();
                let w = self.watches.get_mut(&wid).expect("indexed watch");
                w.cancelled = true;
                if !connected || w.resyncing || w.awaiting_login {
                    self.remove(wid);
                } else if w.created {
                    self.send(RequestUnion::CancelRequest(WatchCancelRequest {
                        watch_id: wid,
                    }));
                }
                // Otherwise the cancel goes out when the server acknowledges the create.
            }
        }
    }

    fn ask_progress(&mut self, wid: i64) {
        self.send(RequestUnion::ProgressRequest(WatchProgressRequest {}));
        self.progress_asked.push_back(wid);
    }

    /// Takes on watch `wid`, sending its create when a stream is up.
    fn start(&mut self, wid: i64, w: Watch) {
        if self.conn.is_up() {
            self.conn.send(create_request(wid, &w));
            self.unanswered.push_back(wid);
        }
        self.by_id.insert(w.id, wid);
        self.watches.insert(wid, w);
    }

    /// Forgets every cancelled watch (their stream is gone); creates that
    /// waited for one of their watch_ids start now.
    fn purge_cancelled(&mut self) {
        let cancelled: Vec<i64> = self
            .watches
            .iter()
            .filter(|(_, w)| w.cancelled)
            .map(|(wid, _)| *wid)
            .collect();
        for wid in cancelled {
            self.remove(wid);
        }
    }

    /// Forgets watch `wid`; a create waiting for its watch_id starts now.
    fn remove(&mut self, wid: i64) -> Option<Watch> {
        let w = self.watches.remove(&wid)?;
        self.unanswered.retain(|&x| x != wid);
        if self.by_id.get(&w.id) == Some(&wid) {
            self.by_id.remove(&w.id);
        }
        if let Some(next) = self.reuse.remove(&wid) {
            self.start(wid, next);
        }
        Some(w)
    }

    fn response(&mut self, mut resp: WatchResponse) {
        if resp.created {
            // Creates are answered in order; a refusal may carry id -1.
            let answered = match self.unanswered.iter().position(|&w| w == resp.watch_id) {
                Some(pos) => self.unanswered.remove(pos),
                None if resp.watch_id == -1 => self.unanswered.pop_front(),
                None => None,
            };
            if let Some(wid) = answered {
                resp.watch_id = wid;
            }
        }
        if resp.watch_id == -1 {
            return self.progress_for_all(resp);
        }
        let wid = resp.watch_id;
        let Some(w) = self.watches.get_mut(&wid) else {
            return; // a watch cancelled or failed meanwhile
        };
        let Some(mut resp) = reassemble(&mut w.partial, resp) else {
            return; // more pieces to come
        };
        if resp.created {
            w.created = true;
            self.conn.working();
            if resp.canceled {
                return self.server_cancelled(wid, &resp);
            }
            w.auth_retried = false;
            if w.cancelled {
                self.send(RequestUnion::CancelRequest(WatchCancelRequest {
                    watch_id: wid,
                }));
                return;
            }
            if w.next_rev == 0 {
                w.next_rev = resp.header.as_ref().map_or(0, |h| h.revision + 1);
            }
            if w.progress_wanted && !self.progress_asked.contains(&wid) {
                self.ask_progress(wid);
            }
            let w = self.watches.get_mut(&wid).expect("answered watch");
            if w.announced {
                return; // a re-creation after reconnect is internal
            }
            w.announced = true;
            self.shared
                .send(w.id, Disposition::Keep, Ok(Box::new(resp)));
            return;
        }
        if resp.canceled {
            if w.releasing && resp.compact_revision == 0 {
                w.releasing = false;
                return; // the server let go of a compacted watch's id
            }
            return self.server_cancelled(wid, &resp);
        }
        if w.cancelled {
            return; // the user asked for no more
        }
        // Never hand over a revision twice, whatever the server resends.
        if resp
            .events
            .first()
            .and_then(|e| e.kv.as_ref())
            .is_some_and(|kv| kv.mod_revision < w.next_rev)
        {
            let floor = w.next_rev;
            resp.events
                .retain(|e| e.kv.as_ref().is_none_or(|kv| kv.mod_revision >= floor));
            if resp.events.is_empty() {
                return;
            }
        }
        match resp.events.last().and_then(|e| e.kv.as_ref()) {
            Some(kv) => w.next_rev = kv.mod_revision + 1,
            None => {
                if let Some(h) = &resp.header {
                    w.next_rev = w.next_rev.max(h.revision + 1);
                }
            }
        }
        self.shared
            .send(w.id, Disposition::Keep, Ok(Box::new(resp)));
    }

    /// A progress notification for the whole stream (watch_id -1): the
    /// answer to the oldest progress request, for the watch that asked.
    /// Without one outstanding, every watch that wants notifications gets
    /// it. The revision is not taken as a resume point: etcd 3.4 may send
    /// it before a catching-up watch has had all its events.
    fn progress_for_all(&mut self, mut resp: WatchResponse) {
        while let Some(wid) = self.progress_asked.pop_front() {
            if wid == PROBE {
                return; // answered a probe: the stream lives
            }
            let Some(w) = self.watches.get_mut(&wid) else {
                continue;
            };
            if !w.progress_wanted || w.cancelled {
                continue;
            }
            w.progress_wanted = false;
            resp.watch_id = wid;
            self.shared
                .send(w.id, Disposition::Keep, Ok(Box::new(resp)));
            return;
        }
        for (wid, w) in self.watches.iter_mut() {
            if !w.created || w.cancelled || w.partial.is_some() || !w.req.progress_notify {
                continue;
            }
            let mut each = resp.clone();
            each.watch_id = *wid;
            self.shared
                .send(w.id, Disposition::Keep, Ok(Box::new(each)));
        }
    }

    fn server_cancelled(&mut self, wid: i64, resp: &WatchResponse) {
        if resp.compact_revision > 0 {
            if let Some(w) = self.watches.get_mut(&wid) {
                if w.resync && !w.cancelled {
                    return self.start_resync(wid);
                }
            }
        } else if self.retry_with_new_token(wid, &resp.cancel_reason) {
            return;
        }
        let Some(w) = self.remove(wid) else { return };
        if w.cancelled {
            return; // the answer to our cancel
        }
        let err = if resp.compact_revision > 0 {
            let reason = if resp.cancel_reason.is_empty() {
                "etcdserver: mvcc: required revision has been compacted"
            } else {
                resp.cancel_reason.as_str()
            };
            EtcdError::new(
                Code::OutOfRange,
                format!("{reason} (compact_revision {})", resp.compact_revision),
                SOURCE,
            )
        } else {
            let reason = if resp.cancel_reason.is_empty() {
                "watch cancelled by the server"
            } else {
                resp.cancel_reason.as_str()
            };
            EtcdError::from_cancel_reason(reason, SOURCE)
        };
        self.shared.send(w.id, Disposition::Last, Err(err));
    }

    /// etcd checks each create against the token the stream was opened
    /// with, which may have expired or been forgotten (a restart) since.
    /// When a new login may cure the refusal of watch `wid`, the token is
    /// dropped and the watch waits for a login (one for all that wait);
    /// see `logged_in`. Once per watch: a refusal of the new token is final.
    fn retry_with_new_token(&mut self, wid: i64, reason: &str) -> bool {
        let Some(w) = self.watches.get_mut(&wid) else {
            return false;
        };
        if w.cancelled || w.auth_retried || !super::auth::login_may_cure(reason) {
            return false;
        }
        // Without credentials there is nothing to log in with.
        if !self.shared.token_rejected(self.conn.token_gen()) {
            return false;
        }
        w.created = false;
        w.auth_retried = true;
        w.awaiting_login = true;
        let first = self.awaiting_login.is_empty();
        self.awaiting_login.push((wid, reason.to_string()));
        if first {
            let (shared, tx, serial) = (self.shared.clone(), self.login_tx.clone(), self.serial);
            tokio::spawn(async move {
                let _ = tx.send((serial, shared.ensure_login().await));
            });
        }
        true
    }

    /// The login for the refused watches is done. Logged in, the stream is
    /// reopened with the new token and every watch created again on it,
    /// each resuming after the last revision it delivered. Otherwise the
    /// refused watches end, with the reason the login failed; the running
    /// ones are not touched.
    fn logged_in(&mut self, serial: u64, login: Result<(), EtcdError>) {
        let refused: Vec<(i64, String)> = std::mem::take(&mut self.awaiting_login)
            .into_iter()
            .filter(|(wid, _)| self.watches.get(wid).is_some_and(|w| w.awaiting_login))
            .collect();
        if serial != self.serial {
            return; // a later stream took them on (its opening logged in)
        }
        match login {
            Ok(()) if !refused.is_empty() => self.close_stream(), // reopened by `run`
            Ok(()) => {}
            Err(e) => {
                for (wid, reason) in refused {
                    let Some(w) = self.remove(wid) else {
                        continue; // listed twice: its watch_id was reused
                    };
                    let refusal = EtcdError::from_cancel_reason(&reason, SOURCE);
                    let msg = format!(
                        "{}; logging in again failed: {}",
                        refusal.message, e.message
                    );
                    let err = EtcdError::new(refusal.code, msg, SOURCE);
                    self.shared.send(w.id, Disposition::Last, Err(err));
                }
            }
        }
    }

    /// The history this watch needed is gone: read what its keys hold now.
    fn start_resync(&mut self, wid: i64) {
        let Some(w) = self.watches.get_mut(&wid) else {
            return;
        };
        w.created = false;
        w.partial = None;
        w.resyncing = true;
        w.releasing = true;
        let (key, range_end) = (w.req.key.clone(), w.req.range_end.clone());
        self.unanswered.retain(|&x| x != wid);
        // Frees the id for the watch's re-creation after the read.
        self.send(RequestUnion::CancelRequest(WatchCancelRequest {
            watch_id: wid,
        }));
        let (shared, tx) = (self.shared.clone(), self.resync_tx.clone());
        tokio::spawn(async move {
            let read = read_current(&shared, key, range_end).await;
            let _ = tx.send((wid, read));
        });
    }

    /// The read is in: the user gets it as one `resync` message, and the
    /// watch carries on from the revision after it.
    fn resynced(&mut self, wid: i64, read: Result<RangeResponse, EtcdError>) {
        let Some(w) = self.watches.get_mut(&wid) else {
            return; // cancelled meanwhile
        };
        if !w.resyncing || w.cancelled {
            return;
        }
        w.resyncing = false;
        let range = match read {
            Ok(range) => range,
            Err(e) => {
                let w = self.remove(wid).expect("resyncing watch");
                let msg = format!("resync after compaction failed: {}", e.message);
                let err = EtcdError::new(e.code, msg, SOURCE);
                return self.shared.send(w.id, Disposition::Last, Err(err));
            }
        };
        let rev = range.header.as_ref().map_or(0, |h| h.revision);
        w.next_rev = rev + 1;
        self.shared.send(
            w.id,
            Disposition::Keep,
            Ok(Box::new(Resync {
                watch_id: wid,
                range,
            })),
        );
        if self.conn.is_up() {
            let w = &self.watches[&wid];
            self.conn.send(create_request(wid, w));
            self.unanswered.push_back(wid);
        }
    }

    fn stream_failed(&mut self, status: &Status) {
        self.shared.gate.settle_all();
        self.unanswered.clear();
        self.progress_asked.clear();
        let (err, retry) = self.conn.failure(&self.shared, status);
        // Cancelled watches died with the stream.
        self.purge_cancelled();
        let ending: Vec<i64> = self
            .watches
            .iter()
            .filter(|(_, w)| !retry || !w.auto_reconnect)
            .map(|(wid, _)| *wid)
            .collect();
        for wid in ending {
            let w = self.remove(wid).expect("listed watch");
            self.shared.send(w.id, Disposition::Last, Err(err.clone()));
        }
        if self.watches.is_empty() {
            return self.conn.idle();
        }
        if let Some(gave_up) = self.conn.retry_or_give_up(&err, None) {
            for (_, w) in self.watches.drain() {
                self.shared
                    .send(w.id, Disposition::Last, Err(gave_up.clone()));
            }
            self.by_id.clear();
        }
    }
}

/// Dropped while its client lives, the hub answers its watches (see
/// `orphan_hub`).
impl Drop for WatchHub {
    fn drop(&mut self) {
        self.watching.store(false, Ordering::Relaxed);
        let held = || {
            let mut ids: Vec<u64> = self.by_id.keys().copied().collect();
            ids.extend(self.reuse.values().map(|w| w.id));
            ids
        };
        orphan_hub(&self.shared, SOURCE, &mut self.rx, held, |cmd| match cmd {
            WatchCmd::Create { id, .. } => Some(*id),
            _ => None,
        });
    }
}

/// Puts a fragmented revision back together: every piece but the last has
/// `fragment` set. Returns the whole response once the last piece is in.
fn reassemble(partial: &mut Option<WatchResponse>, resp: WatchResponse) -> Option<WatchResponse> {
    let whole = match partial.take() {
        Some(mut acc) => {
            acc.events.extend(resp.events);
            acc.header = resp.header.or(acc.header);
            acc.fragment = resp.fragment;
            acc
        }
        None => resp,
    };
    if whole.fragment {
        *partial = Some(whole);
        return None;
    }
    Some(whole)
}

/// Reads `key`..`range_end` at the current revision, trying again after
/// failures that may pass (as long as a stream would reconnect).
async fn read_current(
    shared: &Arc<Shared>,
    key: Vec<u8>,
    range_end: Vec<u8>,
) -> Result<RangeResponse, EtcdError> {
    use prost::Message;
    let route = find(&super::kv::ROUTES, super::kv::KvMethod::Get as u32);
    let body: bytes::Bytes = RangeRequest {
        key,
        range_end,
        ..Default::default()
    }
    .encode_to_vec()
    .into();
    let mut backoff = Backoff::new(shared.cfg.max_retries);
    loop {
        let err = match read_once(shared, route, body.clone()).await {
            Ok(range) => return Ok(range),
            Err(e) => e,
        };
        match backoff.next_delay() {
            Some(delay) if err.retryable() => tokio::time::sleep(delay).await,
            _ => return Err(err),
        }
    }
}

async fn read_once(
    shared: &Shared,
    route: &Route,
    body: bytes::Bytes,
) -> Result<RangeResponse, EtcdError> {
    use prost::Message;
    let reply = call_once(shared, route, body, shared.cfg.timeout, SOURCE).await?;
    RangeResponse::decode(reply)
        .map_err(|e| EtcdError::internal(format!("malformed reply: {e}"), SOURCE))
}

/// What a resynced watch delivers: the watched keys as they are now.
struct Resync {
    watch_id: i64,
    range: RangeResponse,
}

impl ToPerl for Resync {
    fn to_perl(&self, b: &Builder) -> Hv {
        let h = b.hv();
        b.header(h, &self.range.header);
        b.int(h, k!("watch_id"), self.watch_id);
        b.flag(h, k!("created"), false);
        b.flag(h, k!("resync"), true);
        b.list(h, k!("kvs"), &self.range.kvs, Builder::kv);
        b.array(h, k!("events"), b.av(0));
        h
    }
}

fn create_request(wid: i64, w: &Watch) -> WatchRequest {
    let mut req = w.req.clone();
    req.watch_id = wid;
    if w.next_rev > 0 {
        req.start_revision = w.next_rev;
    }
    WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(req)),
    }
}

impl ToPerl for WatchResponse {
    fn to_perl(&self, b: &Builder) -> Hv {
        let h = b.hv();
        b.header(h, &self.header);
        b.int(h, k!("watch_id"), self.watch_id);
        b.flag(h, k!("created"), self.created);
        if self.compact_revision != 0 {
            b.int(h, k!("compact_revision"), self.compact_revision);
        }
        b.list(h, k!("events"), &self.events, |b, ev| {
            let e = b.hv();
            let kind = match EventType::try_from(ev.r#type) {
                Ok(EventType::Delete) => "DELETE",
                _ => "PUT",
            };
            b.bytes(e, k!("type"), kind.as_bytes());
            if let Some(kv) = &ev.kv {
                b.hash(e, k!("kv"), b.kv(kv));
            }
            if let Some(prev) = &ev.prev_kv {
                b.hash(e, k!("prev_kv"), b.kv(prev));
            }
            e
        });
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mvccpb::{Event, KeyValue};

    fn piece(keys: &[&str], fragment: bool) -> WatchResponse {
        WatchResponse {
            watch_id: 7,
            fragment,
            events: keys
                .iter()
                .map(|k| Event {
                    kv: Some(KeyValue {
                        key: bytes::Bytes::copy_from_slice(k.as_bytes()),
                        mod_revision: 9,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn fragments_come_out_as_one_response_in_order() {
        let mut partial = None;
        assert!(reassemble(&mut partial, piece(&["a", "b"], true)).is_none());
        assert!(reassemble(&mut partial, piece(&["c"], true)).is_none());
        let whole = reassemble(&mut partial, piece(&["d", "e"], false)).expect("complete");
        let keys: Vec<&[u8]> = whole
            .events
            .iter()
            .map(|e| &e.kv.as_ref().unwrap().key[..])
            .collect();
        assert_eq!(keys, [b"a", b"b", b"c", b"d", b"e"]);
        assert!(!whole.fragment);
        assert!(partial.is_none());
        // An unfragmented response passes straight through.
        let one = reassemble(&mut partial, piece(&["f"], false)).expect("whole");
        assert_eq!(one.events.len(), 1);
    }
}
