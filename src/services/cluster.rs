//! Cluster service: member_list, member_add, member_remove, member_update, member_promote.

use crate::conn::Shared;
use crate::engine::{call_once, find, routes, Route};
use crate::perl::k;
use crate::perl::{Builder, Hv, ToPerl};
use crate::proto::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};
use bytes::Bytes;
use prost::Message;
use std::time::Duration;

/// This service's unary methods, numbered for the C side: cbindgen
/// writes them into xs-glue/evetcd.h as `EVETCD_CLUSTER_METHOD_MEMBER_LIST`, ...
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterMethod {
    MemberList = 0x700,
    MemberAdd,
    MemberRemove,
    MemberUpdate,
    MemberPromote,
}

routes! {
    ClusterMethod;
    MemberList => MemberListRequest => MemberListResponse, "/etcdserverpb.Cluster/MemberList", Route::read_only;
    MemberAdd => MemberAddRequest => MemberAddResponse, "/etcdserverpb.Cluster/MemberAdd";
    MemberRemove => MemberRemoveRequest => MemberRemoveResponse, "/etcdserverpb.Cluster/MemberRemove";
    MemberUpdate => MemberUpdateRequest => MemberUpdateResponse, "/etcdserverpb.Cluster/MemberUpdate";
    MemberPromote => MemberPromoteRequest => MemberPromoteResponse, "/etcdserverpb.Cluster/MemberPromote";
}

fn member(b: &Builder, m: &Member) -> Hv {
    let h = b.hv();
    b.uint(h, k!("id"), m.id);
    b.bytes(h, k!("name"), m.name.as_bytes());
    b.strings(h, k!("peer_urls"), &m.peer_ur_ls);
    b.strings(h, k!("client_urls"), &m.client_ur_ls);
    b.flag(h, k!("is_learner"), m.is_learner);
    h
}

/// Every cluster reply is a header and the member list; add also names the new member.
macro_rules! members_reply {
    ($($t:ty),*) => {$(
        impl ToPerl for $t {
            fn to_perl(&self, b: &Builder) -> Hv {
                let h = b.hv();
                b.header(h, &self.header);
                b.list(h, k!("members"), &self.members, member);
                h
            }
        }
    )*};
}
members_reply!(
    MemberListResponse,
    MemberRemoveResponse,
    MemberUpdateResponse,
    MemberPromoteResponse
);

impl ToPerl for MemberAddResponse {
    fn to_perl(&self, b: &Builder) -> Hv {
        let h = b.hv();
        b.header(h, &self.header);
        if let Some(m) = &self.member {
            b.hash(h, k!("member"), member(b, m));
        }
        b.list(h, k!("members"), &self.members, member);
        h
    }
}

/// The client URLs of the started, voting members, in member order.
fn client_urls(resp: &MemberListResponse) -> Vec<String> {
    resp.members
        .iter()
        .filter(|m| !m.name.is_empty() && !m.is_learner)
        .flat_map(|m| m.client_ur_ls.iter().cloned())
        .collect()
}

/// `auto_sync_interval`: refreshes the endpoint list from member_list. A
/// failed round, or a list this client cannot use (another scheme), keeps
/// the endpoints it has.
pub async fn sync_endpoints(shared: std::sync::Arc<Shared>, every: Duration) {
    let route = find(&ROUTES, ClusterMethod::MemberList as u32);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate: sync one interval in
    loop {
        tick.tick().await;
        let limit = shared.cfg.timeout.min(every.max(Duration::from_secs(1)));
        let call = call_once(&shared, route, Bytes::new(), limit, "member_list");
        let Ok(reply) = call.await else {
            continue;
        };
        let Ok(resp) = MemberListResponse::decode(reply) else {
            continue;
        };
        let urls = client_urls(&resp);
        let mut now = shared.endpoints();
        let mut want = urls.clone();
        now.sort();
        want.sort();
        if !urls.is_empty() && now != want {
            let _ = shared.set_endpoints(urls);
        }
    }
}
