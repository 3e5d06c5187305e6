//! Maintenance service: status, alarm, defragment, hash, hash_kv,
//! move_leader, downgrade, and snapshot (a stream served by a task of its
//! own).

use crate::conn::Shared;
use crate::engine::stream::{stream_failure, Stop, TaskSlot};
use crate::engine::{routes, Route};
use crate::error::EtcdError;
use crate::perl::k;
use crate::perl::{Builder, Hv, ToPerl};
use crate::proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, AlarmType, DefragmentRequest, DefragmentResponse,
    DowngradeRequest, DowngradeResponse, HashKvRequest, HashKvResponse, HashRequest, HashResponse,
    MoveLeaderRequest, MoveLeaderResponse, StatusRequest, StatusResponse,
};
use crate::queue::Disposition;
use std::sync::Arc;
use tokio::sync::oneshot;
use tonic::Code;

/// This service's unary methods, numbered for the C side: cbindgen
/// writes them into xs-glue/evetcd.h as `EVETCD_MAINTENANCE_METHOD_STATUS`, ...
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaintenanceMethod {
    Status = 0x600,
    Alarm,
    Defragment,
    Hash,
    HashKv,
    MoveLeader,
    Downgrade,
}

routes! {
    MaintenanceMethod;
    Status => StatusRequest => StatusResponse, "/etcdserverpb.Maintenance/Status", Route::read_only, Route::local;
    Alarm => AlarmRequest => AlarmResponse, "/etcdserverpb.Maintenance/Alarm", alarm_route, Route::local;
    Defragment => DefragmentRequest => DefragmentResponse, "/etcdserverpb.Maintenance/Defragment", Route::local;
    Hash => HashRequest => HashResponse, "/etcdserverpb.Maintenance/Hash", Route::read_only, Route::local;
    HashKv => HashKvRequest => HashKvResponse, "/etcdserverpb.Maintenance/HashKV", Route::read_only, Route::local;
    MoveLeader => MoveLeaderRequest => MoveLeaderResponse, "/etcdserverpb.Maintenance/MoveLeader", Route::local;
    // etcd 3.5 and newer; 3.4 answers UNIMPLEMENTED.
    Downgrade => DowngradeRequest => DowngradeResponse, "/etcdserverpb.Maintenance/Downgrade";
}

/// alarm: only a GET (action 0) is a read that `retry` may repeat.
pub fn alarm_route(r: Route) -> Route {
    Route {
        read_only: alarm_get,
        ..r
    }
}

fn alarm_get(body: &[u8]) -> bool {
    use prost::Message;
    crate::proto::etcdserverpb::AlarmRequest::decode(body)
        .map(|r| r.action == 0)
        .unwrap_or(false)
}

impl ToPerl for HashResponse {
    fn to_perl(&self, b: &Builder) -> Hv {
        let h = b.hv();
        b.header(h, &self.header);
        b.uint(h, k!("hash"), u64::from(self.hash));
        h
    }
}

impl ToPerl for StatusResponse {
    fn to_perl(&self, b: &Builder) -> Hv {
        let h = b.hv();
        b.header(h, &self.header);
        b.bytes(h, k!("version"), self.version.as_bytes());
        b.int(h, k!("db_size"), self.db_size);
        b.int(h, k!("db_size_in_use"), self.db_size_in_use);
        b.uint(h, k!("leader"), self.leader);
        b.uint(h, k!("raft_index"), self.raft_index);
        b.uint(h, k!("raft_term"), self.raft_term);
        b.uint(h, k!("raft_applied_index"), self.raft_applied_index);
        b.flag(h, k!("is_learner"), self.is_learner);
        if !self.errors.is_empty() {
            b.strings(h, k!("errors"), &self.errors);
        }
        h
    }
}

pub fn alarm_type_name(t: i32) -> &'static str {
    match AlarmType::try_from(t) {
        Ok(AlarmType::None) => "NONE",
        Ok(AlarmType::Nospace) => "NOSPACE",
        Ok(AlarmType::Corrupt) => "CORRUPT",
        Err(_) => "UNKNOWN",
    }
}

impl ToPerl for AlarmResponse {
    fn to_perl(&self, b: &Builder) -> Hv {
        let h = b.hv();
        b.header(h, &self.header);
        b.list(h, k!("alarms"), &self.alarms, |b, a| {
            let ah = b.hv();
            b.uint(ah, k!("member_id"), a.member_id);
            b.int(ah, k!("alarm"), a.alarm as i64);
            b.bytes(ah, k!("alarm_type"), alarm_type_name(a.alarm).as_bytes());
            ah
        });
        h
    }
}

impl ToPerl for HashKvResponse {
    fn to_perl(&self, b: &Builder) -> Hv {
        let h = b.hv();
        b.header(h, &self.header);
        b.uint(h, k!("hash"), self.hash as u64);
        b.int(h, k!("compact_revision"), self.compact_revision);
        h
    }
}

crate::perl::header_only_reply!(DefragmentResponse, MoveLeaderResponse);

impl ToPerl for DowngradeResponse {
    fn to_perl(&self, b: &Builder) -> Hv {
        let h = b.hv();
        b.header(h, &self.header);
        b.bytes(h, k!("version"), self.version.as_bytes());
        h
    }
}

pub const SNAPSHOT: &str = "snapshot";

/// One piece of a snapshot, passed on as it arrives.
struct Chunk(Vec<u8>);

impl ToPerl for Chunk {
    fn to_perl(&self, b: &Builder) -> Hv {
        let h = b.hv();
        b.bytes(h, k!("blob"), &self.0);
        h
    }
}

/// The end of a snapshot whose checksum matched.
struct SnapshotDone {
    size: u64,
    header: Option<crate::proto::etcdserverpb::ResponseHeader>,
}

impl ToPerl for SnapshotDone {
    fn to_perl(&self, b: &Builder) -> Hv {
        let h = b.hv();
        b.header(h, &self.header);
        b.uint(h, k!("size"), self.size);
        h
    }
}

/// etcd ends a snapshot with the SHA-256 of everything before it: the
/// last 32 bytes seen are held back from the digest until the end.
pub struct Checksum {
    digest: ring::digest::Context,
    tail: Vec<u8>,
}

const SHA256_LEN: usize = 32;

impl Default for Checksum {
    fn default() -> Self {
        Checksum {
            digest: ring::digest::Context::new(&ring::digest::SHA256),
            tail: Vec::with_capacity(2 * SHA256_LEN),
        }
    }
}

impl Checksum {
    pub fn feed(&mut self, mut chunk: &[u8]) {
        if chunk.len() >= SHA256_LEN {
            // Everything held back, and all but the chunk's last 32 bytes,
            // is data.
            self.digest.update(&self.tail);
            let cut = chunk.len() - SHA256_LEN;
            self.digest.update(&chunk[..cut]);
            self.tail.clear();
            chunk = &chunk[cut..];
        }
        self.tail.extend_from_slice(chunk);
        if self.tail.len() > SHA256_LEN {
            let cut = self.tail.len() - SHA256_LEN;
            self.digest.update(&self.tail[..cut]);
            self.tail.drain(..cut);
        }
    }

    /// Whether the last 32 bytes are the SHA-256 of all the others.
    pub fn matches(self) -> bool {
        self.tail.len() == SHA256_LEN && self.digest.finish().as_ref() == self.tail.as_slice()
    }
}

/// Streams one snapshot to its callback: pieces as they come, then the
/// size once the checksum has been checked. Never reconnects: a snapshot
/// cut short is worthless.
pub struct SnapshotTask {
    pub shared: Arc<Shared>,
    /// Ends the stream once, whichever way the task ends.
    pub slot: TaskSlot,
}

impl SnapshotTask {
    pub async fn run(mut self, mut cancel: oneshot::Receiver<Stop>) {
        let outcome = tokio::select! {
            _stop = &mut cancel => {
                #[cfg(feature = "test-hooks")]
                if let Ok(Stop::Crash) = _stop {
                    panic!("snapshot task: crash requested by a test");
                }
                self.slot.stopped();
                return;
            }
            outcome = self.stream() => outcome,
        };
        self.slot
            .finish(outcome.map(|done| Box::new(done) as crate::queue::Reply));
    }

    async fn stream(&self) -> Result<SnapshotDone, EtcdError> {
        use crate::proto::etcdserverpb::{maintenance_client::MaintenanceClient, SnapshotRequest};
        self.shared.ensure_login().await?;
        let (channel, generation) = self.shared.channel();
        let mut client = MaintenanceClient::new(channel).max_decoding_message_size(usize::MAX);
        let failed = |status: tonic::Status| {
            stream_failure(&self.shared, &status, generation, None, SNAPSHOT).0
        };
        let req = self.shared.request(SnapshotRequest {}, true, None);
        let mut stream = client.snapshot(req).await.map_err(failed)?.into_inner();
        let (mut size, mut header, mut check) = (0u64, None, Checksum::default());
        while let Some(resp) = stream.message().await.map_err(failed)? {
            header = header.or(resp.header);
            check.feed(&resp.blob);
            size += resp.blob.len() as u64;
            if !resp.blob.is_empty() {
                self.shared.send(
                    self.slot.id(),
                    Disposition::Keep,
                    Ok(Box::new(Chunk(resp.blob))),
                );
            }
        }
        if !check.matches() {
            let msg = format!(
                "snapshot checksum mismatch: the last 32 of the {size} bytes received are not the \
                 SHA-256 of the rest (the snapshot is damaged; do not use it)"
            );
            return Err(EtcdError::new(Code::DataLoss, msg, SNAPSHOT));
        }
        Ok(SnapshotDone { size, header })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot_of(data: &[u8]) -> Vec<u8> {
        let mut v = data.to_vec();
        v.extend_from_slice(ring::digest::digest(&ring::digest::SHA256, data).as_ref());
        v
    }

    fn check(pieces: &[&[u8]]) -> bool {
        let mut c = Checksum::default();
        for p in pieces {
            c.feed(p);
        }
        c.matches()
    }

    #[test]
    fn checksum_holds_whatever_the_chunking() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let snap = snapshot_of(&data);
        for size in [1, 5, 31, 32, 33, 64, 1000, snap.len()] {
            let pieces: Vec<&[u8]> = snap.chunks(size).collect();
            assert!(check(&pieces), "chunks of {size}");
        }
        // the trailer split across two pieces
        let cut = snap.len() - 10;
        assert!(check(&[&snap[..cut], &snap[cut..]]));
    }

    #[test]
    fn checksum_catches_damage() {
        let data = vec![42u8; 3000];
        let mut snap = snapshot_of(&data);
        snap[1234] ^= 1;
        assert!(!check(&[&snap]));
        let snap = snapshot_of(&data);
        assert!(!check(&[&snap[..snap.len() - 1]]), "truncated");
        assert!(!check(&[&snap[..20]]), "shorter than a checksum");
        assert!(!check(&[]), "empty");
    }
}
