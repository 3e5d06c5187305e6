//! Maintenance service: status, alarm, defragment, hash_kv, move_leader.

use crate::perl::k;
use crate::perl::{Builder, Hv, ToPerl};
use crate::proto::etcdserverpb::{
    AlarmResponse, AlarmType, DefragmentResponse, HashKvResponse, MoveLeaderResponse,
    StatusResponse,
};
use crate::runtime::Route;

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
