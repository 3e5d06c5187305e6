//! Cluster service: member_list, member_add, member_remove, member_update, member_promote.

use crate::perl::{Builder, Hv, ToPerl};
use crate::proto::etcdserverpb::{
    Member, MemberAddResponse, MemberListResponse, MemberPromoteResponse, MemberRemoveResponse,
    MemberUpdateResponse,
};
use crate::runtime::Route;

pub fn route(method: &str) -> Option<Route> {
    Some(match method {
        "member_list" => {
            Route::new::<MemberListResponse>("/etcdserverpb.Cluster/MemberList", "member_list")
        }
        "member_add" => {
            Route::new::<MemberAddResponse>("/etcdserverpb.Cluster/MemberAdd", "member_add")
        }
        "member_remove" => Route::new::<MemberRemoveResponse>(
            "/etcdserverpb.Cluster/MemberRemove",
            "member_remove",
        ),
        "member_update" => Route::new::<MemberUpdateResponse>(
            "/etcdserverpb.Cluster/MemberUpdate",
            "member_update",
        ),
        "member_promote" => Route::new::<MemberPromoteResponse>(
            "/etcdserverpb.Cluster/MemberPromote",
            "member_promote",
        ),
        _ => return None,
    })
}

fn member(b: &Builder, m: &Member) -> Hv {
    let h = b.hv();
    b.uint(h, "id", m.id);
    b.bytes(h, "name", m.name.as_bytes());
    b.strings(h, "peer_urls", &m.peer_ur_ls);
    b.strings(h, "client_urls", &m.client_ur_ls);
    b.flag(h, "is_learner", m.is_learner);
    h
}

/// Every cluster reply is a header and the member list; add also names the new member.
macro_rules! members_reply {
    ($($t:ty),*) => {$(
        impl ToPerl for $t {
            fn to_perl(&self, b: &Builder) -> Hv {
                let h = b.hv();
                b.header(h, &self.header);
                b.list(h, "members", &self.members, member);
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
            b.hash(h, "member", member(b, m));
        }
        b.list(h, "members", &self.members, member);
        h
    }
}
