//! Lease service: grant, revoke, time_to_live, leases, and keepalive. All
//! kept-alive leases of a client share one bidirectional stream, refreshed
//! at a third of their TTL; a refresh left unanswered for another third
//! moves the stream to another endpoint.

use crate::conn::Shared;
use crate::engine::stream::{orphan_hub, wait_until, SharedStream, StreamEvent};
use crate::engine::{routes, ReplyError, Route};
use crate::error::EtcdError;
use crate::perl::k;
use crate::perl::{Builder, Hv, ToPerl};
use crate::proto::etcdserverpb::{
    lease_client::LeaseClient, LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest,
    LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest,
    LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use crate::queue::{Disposition, Reply};
use bytes::Bytes;
use prost::Message;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::{Code, Status};

/// This service's unary methods, numbered for the C side: cbindgen
/// writes them into xs-glue/evetcd.h as `EVETCD_LEASE_METHOD_LEASE_GRANT`, ...
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseMethod {
    LeaseGrant = 0x200,
    LeaseRevoke,
    LeaseTimeToLive,
    LeaseLeases,
    LeaseKeepaliveOnce,
}

routes! {
    LeaseMethod;
    LeaseGrant => LeaseGrantRequest => LeaseGrantResponse, "/etcdserverpb.Lease/LeaseGrant";
    LeaseRevoke => LeaseRevokeRequest => LeaseRevokeResponse, "/etcdserverpb.Lease/LeaseRevoke";
    LeaseTimeToLive => LeaseTimeToLiveRequest => LeaseTimeToLiveResponse, "/etcdserverpb.Lease/LeaseTimeToLive", Route::read_only;
    LeaseLeases => LeaseLeasesRequest => LeaseLeasesResponse, "/etcdserverpb.Lease/LeaseLeases", Route::read_only;
    // The keepalive RPC is a stream, but one request and one reply is a unary call on the wire.
    LeaseKeepaliveOnce => LeaseKeepAliveRequest => LeaseKeepAliveResponse, "/etcdserverpb.Lease/LeaseKeepAlive", Route::read_only, keepalive_once_route;
}

const SOURCE: &str = "keepalive";

impl ToPerl for LeaseGrantResponse {
    fn to_perl(&self, b: &Builder) -> Hv {
        let h = b.hv();
        b.header(h, &self.header);
        b.int(h, k!("id"), self.id);
        b.int(h, k!("ttl"), self.ttl);
        if !self.error.is_empty() {
            b.bytes(h, k!("error"), self.error.as_bytes());
        }
        h
    }
}

impl ToPerl for LeaseTimeToLiveResponse {
    fn to_perl(&self, b: &Builder) -> Hv {
        let h = b.hv();
        b.header(h, &self.header);
        b.int(h, k!("id"), self.id);
        b.int(h, k!("ttl"), self.ttl);
        b.int(h, k!("granted_ttl"), self.granted_ttl);
        if !self.keys.is_empty() {
            b.strings(h, k!("keys"), &self.keys);
        }
        h
    }
}

impl ToPerl for LeaseLeasesResponse {
    fn to_perl(&self, b: &Builder) -> Hv {
        let h = b.hv();
        b.header(h, &self.header);
        b.list(h, k!("leases"), &self.leases, |b, l| {
            let e = b.hv();
            b.int(e, k!("id"), l.id);
            e
        });
        h
    }
}

impl ToPerl for LeaseKeepAliveResponse {
    fn to_perl(&self, b: &Builder) -> Hv {
        let h = b.hv();
        b.header(h, &self.header);
        b.int(h, k!("id"), self.id);
        b.int(h, k!("ttl"), self.ttl);
        h
    }
}

crate::perl::header_only_reply!(LeaseRevokeResponse);

/// lease_keepalive_once: one request and one reply on the LeaseKeepAlive
/// RPC, which on the wire is a unary call. A TTL of 0 means no such lease.
pub fn keepalive_once_route(r: Route) -> Route {
    Route {
        decode: keepalive_once_reply,
        ..r
    }
}

fn keepalive_once_reply(_: &Shared, _request: &Bytes, body: Bytes) -> Result<Reply, ReplyError> {
    let resp = LeaseKeepAliveResponse::decode(body)?;
    if resp.ttl <= 0 {
        return Err(ReplyError::Refused(Code::NotFound, LEASE_NOT_FOUND));
    }
    Ok(Box::new(resp))
}

const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";

pub enum KeepaliveCmd {
    Start {
        id: u64,
        lease: i64,
        auto_reconnect: bool,
    },
    /// The user cancelled (the Perl side has already answered).
    Cancel { id: u64 },
    /// Test hook: the hub panics, as a bug would make it.
    #[cfg(feature = "test-hooks")]
    Crash,
}

struct Keeper {
    lease: i64,
    auto_reconnect: bool,
}

/// Refresh cadence of one lease.
struct Schedule {
    due: Instant,
    /// Last TTL the server granted, in seconds (0 until the first reply).
    ttl: i64,
    /// Completion ids of the keepalives holding this lease.
    keepers: Vec<u64>,
    /// When the lease must be taken as lost if no reply comes first: the
    /// last reply plus its TTL (None before the first reply, and once
    /// the loss has been reported).
    lost_at: Option<Instant>,
    /// When the stream must be taken as stalled: the oldest refresh on it
    /// that is still unanswered plus `stall_after` (None when nothing is
    /// outstanding or the TTL is not known yet).
    stall_at: Option<Instant>,
}

/// Deadlines of leases, earliest first.
#[derive(Default)]
struct Deadlines(BTreeSet<(Instant, i64)>);

impl Deadlines {
    /// Moves `lease` from deadline `old` to `new` (None: not listed).
    fn change(&mut self, lease: i64, old: Option<Instant>, new: Option<Instant>) {
        if let Some(old) = old {
            self.0.remove(&(old, lease));
        }
        if let Some(new) = new {
            self.0.insert((new, lease));
        }
    }

    fn first(&self) -> Option<Instant> {
        self.0.first().map(|(at, _)| *at)
    }

    /// Takes off the earliest lease whose deadline is not after `now`.
    fn pop_due(&mut self, now: Instant) -> Option<i64> {
        let &(at, lease) = self.0.first()?;
        if at > now {
            return None;
        }
        self.0.remove(&(at, lease));
        Some(lease)
    }
}

pub struct KeepaliveHub {
    shared: Arc<Shared>,
    rx: mpsc::UnboundedReceiver<KeepaliveCmd>,
    keepers: HashMap<u64, Keeper>,
    leases: HashMap<i64, Schedule>,
    /// Refreshes due (see `Schedule::due`).
    queue: Deadlines,
    /// Loss deadlines (see `Schedule::lost_at`).
    losses: Deadlines,
    /// Stall deadlines of the current stream (see `Schedule::stall_at`).
    stalls: Deadlines,
    /// A stall has moved the stream without a backoff delay, and no reply
    /// has come since: the next stall waits out the backoff.
    moved_at_once: bool,
    conn: SharedStream<LeaseKeepAliveRequest, LeaseKeepAliveResponse>,
}

/// A third of the TTL, so two refreshes may be lost before the lease lapses.
fn refresh_interval(ttl: i64) -> Duration {
    if ttl <= 0 {
        return Duration::from_secs(1);
    }
    Duration::from_millis((ttl as u64).saturating_mul(1000) / 3).max(Duration::from_millis(200))
}

/// How long a refresh may go unanswered before its stream is taken as
/// stalled: another third of the TTL, so that the lease still has a third
/// left when the refresh goes out again on another connection.
fn stall_after(ttl: i64) -> Duration {
    refresh_interval(ttl)
}

impl KeepaliveHub {
    pub fn new(shared: Arc<Shared>, rx: mpsc::UnboundedReceiver<KeepaliveCmd>) -> Self {
        let max = shared.cfg.max_retries;
        KeepaliveHub {
            shared,
            rx,
            keepers: HashMap::new(),
            leases: HashMap::new(),
            queue: Deadlines::default(),
            losses: Deadlines::default(),
            stalls: Deadlines::default(),
            moved_at_once: false,
            conn: SharedStream::new(max, SOURCE),
        }
    }

    pub async fn run(mut self) {
        loop {
            if self.keepers.is_empty() && self.conn.is_up() {
                self.conn.close();
            }
            if !self.keepers.is_empty() && self.conn.can_open() {
                self.open_stream();
            }
            let (next_refresh, next_stall) = if self.conn.is_up() {
                (self.queue.first(), self.stalls.first())
            } else {
                (None, None)
            };
            // Loss deadlines run whether or not a stream is up.
            let next_loss = self.losses.first();
            let next_due = [next_refresh, next_stall, next_loss]
                .into_iter()
                .flatten()
                .min();
            tokio::select! {
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => self.command(cmd),
                    None => return,
                },
                event = self.conn.next() => match event {
                    StreamEvent::Message(resp) => self.response(resp),
                    StreamEvent::Failed(status) => self.stream_failed(&status),
                    StreamEvent::Opened | StreamEvent::RetryDue | StreamEvent::Moved => {}
                },
                _ = wait_until(next_due) => {
                    // A stalled stream first: refreshes go to its successor.
                    if self.conn.is_up() {
                        self.check_stall();
                    }
                    if self.conn.is_up() {
                        self.refresh_due();
                    }
                    self.report_losses();
                }
            }
        }
    }

    fn open_stream(&mut self) {
        self.conn.open(&self.shared, |channel, req| {
            let mut client = LeaseClient::new(channel).max_decoding_message_size(usize::MAX);
            Box::pin(async move { client.lease_keep_alive(req).await })
        });
        // Refresh everything at once on a new stream; what was asked on
        // the old one will not be answered here.
        let now = Instant::now();
        let leases: Vec<i64> = self.leases.keys().copied().collect();
        for lease in leases {
            self.set_stall_at(lease, None);
            self.reschedule(lease, now);
        }
    }

    fn reschedule(&mut self, lease: i64, due: Instant) {
        if let Some(s) = self.leases.get_mut(&lease) {
            self.queue.change(lease, Some(s.due), Some(due));
            s.due = due;
        }
    }

    /// Sends a keepalive for every lease that is due, and pencils in a
    /// fallback refresh in case no reply comes.
    fn refresh_due(&mut self) {
        let now = Instant::now();
        while let Some(lease) = self.queue.pop_due(now) {
            self.conn.send(LeaseKeepAliveRequest { id: lease });
            let Some(s) = self.leases.get(&lease) else {
                continue;
            };
            let ttl = s.ttl;
            // The clock runs from the oldest unanswered refresh.
            if s.stall_at.is_none() && ttl > 0 {
                self.set_stall_at(lease, Some(now + stall_after(ttl)));
            }
            self.reschedule(lease, now + refresh_interval(ttl));
        }
    }

    /// Sets the stall deadline of `lease` (None: no deadline).
    fn set_stall_at(&mut self, lease: i64, at: Option<Instant>) {
        if let Some(s) = self.leases.get_mut(&lease) {
            self.stalls.change(lease, s.stall_at, at);
            s.stall_at = at;
        }
    }

    /// A refresh went unanswered for `stall_after` its TTL: the member
    /// behind the stream has stopped answering although its connection
    /// may look open (a frozen process, a long fsync, a path that drops
    /// everything), and the HTTP/2 pings would notice too late for the
    /// lease. The connection is dropped as dead, so the stream reopens on
    /// the next endpoint. No error for the keepalives that reconnect: the
    /// loss report still comes if no reply comes within the TTL.
    fn check_stall(&mut self) {
        let Some(lease) = self.stalls.pop_due(Instant::now()) else {
            return;
        };
        let secs = self.leases.get_mut(&lease).map_or(0.0, |s| {
            s.stall_at = None;
            stall_after(s.ttl).as_secs_f64()
        });
        let status = Status::unavailable(format!(
            "keepalive stream: no reply to a refresh of lease {lease} within {secs:.1}s"
        ));
        self.conn.abandon(&self.shared);
        self.stream_failed(&status);
        // Another member may answer at once: skip the backoff delay once
        // per reply (the attempt still counts toward max_retries). One
        // endpoint would be the same member again: wait as after any
        // failure.
        if !self.moved_at_once && !self.keepers.is_empty() && self.shared.endpoints().len() > 1 {
            self.moved_at_once = true;
            // (The delay stream_failed set runs out unused.)
            self.open_stream();
        }
    }

    /// Sets the loss deadline of `lease` (None: no deadline).
    fn set_lost_at(&mut self, lease: i64, at: Option<Instant>) {
        if let Some(s) = self.leases.get_mut(&lease) {
            self.losses.change(lease, s.lost_at, at);
            s.lost_at = at;
        }
    }

    /// A lease whose last reply is older than its TTL may have expired on
    /// the server: its keepalives hear so once, and carry on refreshing
    /// (ticks resume if the lease turns out to be alive).
    fn report_losses(&mut self) {
        let now = Instant::now();
        while let Some(lease) = self.losses.pop_due(now) {
            let Some(s) = self.leases.get_mut(&lease) else {
                continue;
            };
            s.lost_at = None;
            let msg = format!(
                "no keepalive reply for lease {lease} within its TTL of {}s: the lease must be \
                 assumed lost",
                s.ttl
            );
            let err = EtcdError::new(Code::DeadlineExceeded, msg, SOURCE);
            for &id in &s.keepers {
                self.shared.send(id, Disposition::Keep, Err(err.clone()));
            }
        }
    }

    fn command(&mut self, cmd: KeepaliveCmd) {
        match cmd {
            KeepaliveCmd::Start {
                id,
                lease,
                auto_reconnect,
            } => {
                self.keepers.insert(
                    id,
                    Keeper {
                        lease,
                        auto_reconnect,
                    },
                );
                let now = Instant::now();
                let s = self.leases.entry(lease).or_insert_with(|| Schedule {
                    due: now,
                    ttl: 0,
                    keepers: Vec::new(),
                    lost_at: None,
                    stall_at: None,
                });
                s.keepers.push(id);
                self.reschedule(lease, now);
            }
            #[cfg(feature = "test-hooks")]
            KeepaliveCmd::Crash => panic!("keepalive hub: crash requested by a test"),
            KeepaliveCmd::Cancel { id } => {
                self.remove_keeper(id);
            }
        }
    }

    fn remove_keeper(&mut self, id: u64) -> bool {
        let Some(k) = self.keepers.remove(&id) else {
            return false;
        };
        if let Some(s) = self.leases.get_mut(&k.lease) {
            s.keepers.retain(|&x| x != id);
            if s.keepers.is_empty() {
                let due = s.due;
                self.losses.change(k.lease, s.lost_at, None);
                self.stalls.change(k.lease, s.stall_at, None);
                self.queue.change(k.lease, Some(due), None);
                self.leases.remove(&k.lease);
            }
        }
        true
    }

    fn response(&mut self, resp: LeaseKeepAliveResponse) {
        self.conn.working();
        self.moved_at_once = false;
        let Some(s) = self.leases.get_mut(&resp.id) else {
            return;
        };
        if resp.ttl <= 0 {
            let keepers = s.keepers.clone();
            for id in keepers {
                self.remove_keeper(id);
                let err = EtcdError::new(Code::NotFound, LEASE_NOT_FOUND, SOURCE);
                self.shared.send(id, Disposition::Last, Err(err));
            }
            return;
        }
        s.ttl = resp.ttl;
        for &id in &s.keepers {
            self.shared.send(id, Disposition::Keep, Ok(Box::new(resp)));
        }
        let now = Instant::now();
        let ttl = Duration::from_secs(resp.ttl as u64);
        self.set_lost_at(resp.id, Some(now + ttl));
        self.set_stall_at(resp.id, None);
        self.reschedule(resp.id, now + refresh_interval(resp.ttl));
    }

    /// The longest a reconnect may wait: the stall window of the shortest
    /// TTL kept. The usual schedule's 2 s, 4 s, ... waits would let a short
    /// lease lapse while a leader is elected, or while its attempts meet
    /// the dead member or members without a leader yet; within the cap the
    /// keepalive is back within a third of a TTL of the cluster answering
    /// again (None: no TTL known yet).
    fn retry_cap(&self) -> Option<Duration> {
        self.leases
            .values()
            .filter(|s| s.ttl > 0)
            .map(|s| stall_after(s.ttl))
            .min()
    }

    fn stream_failed(&mut self, status: &Status) {
        let (err, retry) = self.conn.failure(&self.shared, status);
        let ending: Vec<u64> = self
            .keepers
            .iter()
            .filter(|(_, k)| !retry || !k.auto_reconnect)
            .map(|(id, _)| *id)
            .collect();
        for id in ending {
            self.remove_keeper(id);
            self.shared.send(id, Disposition::Last, Err(err.clone()));
        }
        if self.keepers.is_empty() {
            return self.conn.idle();
        }
        if let Some(gave_up) = self.conn.retry_or_give_up(&err, self.retry_cap()) {
            let ids: Vec<u64> = self.keepers.keys().copied().collect();
            for id in ids {
                self.remove_keeper(id);
                self.shared
                    .send(id, Disposition::Last, Err(gave_up.clone()));
            }
        }
    }
}

/// Dropped while its client lives, the hub answers its keepalives (see
/// `orphan_hub`).
impl Drop for KeepaliveHub {
    fn drop(&mut self) {
        let held = || self.keepers.keys().copied().collect();
        orphan_hub(&self.shared, SOURCE, &mut self.rx, held, |cmd| match cmd {
            KeepaliveCmd::Start { id, .. } => Some(*id),
            _ => None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::Config;
    use crate::queue::CompletionQueue;
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn refresh_is_a_third_of_ttl() {
        assert_eq!(refresh_interval(30), Duration::from_secs(10));
        assert_eq!(refresh_interval(1), Duration::from_millis(333));
        assert_eq!(refresh_interval(0), Duration::from_secs(1));
    }

    /// A member frozen as by SIGSTOP: the kernel completes connections
    /// and nothing ever answers. Returns its address and a count of the
    /// connections made to it.
    fn frozen_member() -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address").to_string();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new(); // open, unread
            for conn in listener.incoming().flatten() {
                held.push(conn);
                seen.fetch_add(1, Ordering::SeqCst);
            }
        });
        (addr, count)
    }

    /// A client's state on `endpoints` (no HTTP/2 pings, which would end a
    /// frozen connection after a while too) with a hub on a thread of its
    /// own keeping `leases`, each as last granted (lease, TTL in seconds);
    /// the queue its completions reach, and the hub's command sender.
    fn keeping(
        endpoints: &[&str],
        leases: &[(i64, i64)],
    ) -> (
        Arc<Shared>,
        CompletionQueue,
        mpsc::UnboundedSender<KeepaliveCmd>,
    ) {
        let cfg = Config {
            max_retries: -1,
            ..crate::conn::config::tests::config(endpoints, Default::default())
        };
        // (No unary calls here: nothing for the gate to hold.)
        let gate = Arc::new(crate::conn::CallGate::<()>::new(|()| {}));
        let (shared, queue) = Shared::new(cfg, crate::services::auth::login, gate).expect("client");
        let (tx, rx) = mpsc::unbounded_channel();
        let mut hub = KeepaliveHub::new(shared.clone(), rx);
        for (id, &(lease, ttl)) in (1..).zip(leases) {
            hub.command(KeepaliveCmd::Start {
                id,
                lease,
                auto_reconnect: true,
            });
            hub.leases.get_mut(&lease).expect("lease").ttl = ttl;
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        // The hub ends when the test drops its sender.
        std::thread::spawn(move || rt.block_on(hub.run()));
        (shared, queue, tx)
    }

    fn wait_for(what: &str, cond: impl Fn() -> bool) {
        let give_up = std::time::Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(std::time::Instant::now() < give_up, "{what}: not in 10 s");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_stalled_stream_moves_to_the_next_endpoint() {
        let (a, to_a) = frozen_member();
        let (b, to_b) = frozen_member();
        // The shortest TTL decides: the 60 s lease alone would wait 20 s.
        let (shared, queue, tx) = keeping(&[&a, &b], &[(7, 60), (8, 3)]);
        wait_for("a connection to the second member", || {
            to_b.load(Ordering::SeqCst) > 0
        });
        assert_eq!(to_a.load(Ordering::SeqCst), 1, "the first member once");
        assert_eq!(shared.current_endpoint(), b);
        assert!(queue.try_next().is_none(), "no error for the keepalive");
        drop(tx);
    }

    #[test]
    fn one_endpoint_reopens_within_the_stall_window() {
        let (a, to_a) = frozen_member();
        let (_shared, queue, tx) = keeping(&[&a], &[(7, 1)]);
        let opened = std::time::Instant::now();
        wait_for("a second connection", || to_a.load(Ordering::SeqCst) == 2);
        // Stalled after a third of a second, reopened a third of a second
        // later: the wait is capped at the stall window, not the usual 1 s.
        let second = opened.elapsed();
        assert!(
            second >= Duration::from_millis(600),
            "not at once: {second:?}"
        );
        wait_for("a third connection", || to_a.load(Ordering::SeqCst) == 3);
        // Uncapped, the third would come 2 s after the second stall (at
        // about 3.7 s); capped, at about 1.3 s.
        let third = opened.elapsed();
        assert!(
            third < Duration::from_millis(2500),
            "the cap holds: {third:?}"
        );
        assert!(queue.try_next().is_none(), "no error");
        drop(tx);
    }
}
