//! The one table of unary methods: for each name a Perl user calls, its
//! gRPC path, its reply type and how it travels. The service modules only
//! say how their replies become Perl data.

use crate::proto::etcdserverpb::*;
use crate::proto::v3electionpb::{
    CampaignResponse, LeaderResponse, ProclaimResponse, ResignResponse,
};
use crate::proto::v3lockpb::{LockResponse, UnlockResponse};
use crate::runtime::Route;

/// `method => ReplyType, "/package.Service/Rpc"`, then optional
/// adjustments applied to the Route in order.
macro_rules! table {
    ($($method:literal => $reply:ty, $path:literal $(, $adjust:expr)*;)*) => {
        /// Every unary method name, in table order.
        pub const METHODS: &[&str] = &[$($method),*];

        /// The route of unary `method`, or None for a name it does not know.
        pub fn route(method: &str) -> Option<Route> {
            Some(match method {
                $($method => {
                    let r = Route::new::<$reply>($path, $method);
                    $(let r = ($adjust)(r);)*
                    r
                })*
                _ => return None,
            })
        }
    };
}

fn read_only(r: Route) -> Route {
    r.read_only()
}

fn local(r: Route) -> Route {
    r.local()
}

table! {
    // KV
    "get" => RangeResponse, "/etcdserverpb.KV/Range", read_only, crate::kv::range_route;
    "put" => PutResponse, "/etcdserverpb.KV/Put";
    "delete" => DeleteRangeResponse, "/etcdserverpb.KV/DeleteRange";
    "txn" => TxnResponse, "/etcdserverpb.KV/Txn";
    "compact" => CompactionResponse, "/etcdserverpb.KV/Compact";
    // Lease
    "lease_grant" => LeaseGrantResponse, "/etcdserverpb.Lease/LeaseGrant";
    "lease_revoke" => LeaseRevokeResponse, "/etcdserverpb.Lease/LeaseRevoke";
    "lease_time_to_live" => LeaseTimeToLiveResponse, "/etcdserverpb.Lease/LeaseTimeToLive", read_only;
    "lease_leases" => LeaseLeasesResponse, "/etcdserverpb.Lease/LeaseLeases", read_only;
    // Lock
    "lock" => LockResponse, "/v3lockpb.Lock/Lock";
    "unlock" => UnlockResponse, "/v3lockpb.Lock/Unlock";
    // Election
    "election_campaign" => CampaignResponse, "/v3electionpb.Election/Campaign";
    "election_proclaim" => ProclaimResponse, "/v3electionpb.Election/Proclaim";
    "election_leader" => LeaderResponse, "/v3electionpb.Election/Leader", read_only;
    "election_resign" => ResignResponse, "/v3electionpb.Election/Resign";
    // Auth
    "authenticate" => AuthenticateResponse, "/etcdserverpb.Auth/Authenticate", crate::auth::login_route;
    "auth_enable" => AuthEnableResponse, "/etcdserverpb.Auth/AuthEnable";
    "auth_disable" => AuthDisableResponse, "/etcdserverpb.Auth/AuthDisable", crate::auth::disable_route;
    "auth_status" => AuthStatusResponse, "/etcdserverpb.Auth/AuthStatus", read_only;
    "user_add" => AuthUserAddResponse, "/etcdserverpb.Auth/UserAdd";
    "user_get" => AuthUserGetResponse, "/etcdserverpb.Auth/UserGet", read_only;
    "user_list" => AuthUserListResponse, "/etcdserverpb.Auth/UserList", read_only;
    "user_delete" => AuthUserDeleteResponse, "/etcdserverpb.Auth/UserDelete";
    "user_change_password" => AuthUserChangePasswordResponse, "/etcdserverpb.Auth/UserChangePassword";
    "user_grant_role" => AuthUserGrantRoleResponse, "/etcdserverpb.Auth/UserGrantRole";
    "user_revoke_role" => AuthUserRevokeRoleResponse, "/etcdserverpb.Auth/UserRevokeRole";
    "role_add" => AuthRoleAddResponse, "/etcdserverpb.Auth/RoleAdd";
    "role_get" => AuthRoleGetResponse, "/etcdserverpb.Auth/RoleGet", read_only;
    "role_list" => AuthRoleListResponse, "/etcdserverpb.Auth/RoleList", read_only;
    "role_delete" => AuthRoleDeleteResponse, "/etcdserverpb.Auth/RoleDelete";
    "role_grant_permission" => AuthRoleGrantPermissionResponse, "/etcdserverpb.Auth/RoleGrantPermission";
    "role_revoke_permission" => AuthRoleRevokePermissionResponse, "/etcdserverpb.Auth/RoleRevokePermission";
    // Maintenance
    "status" => StatusResponse, "/etcdserverpb.Maintenance/Status", read_only, local;
    "alarm" => AlarmResponse, "/etcdserverpb.Maintenance/Alarm", crate::maintenance::alarm_route, local;
    "defragment" => DefragmentResponse, "/etcdserverpb.Maintenance/Defragment", local;
    "hash_kv" => HashKvResponse, "/etcdserverpb.Maintenance/HashKV", read_only, local;
    "move_leader" => MoveLeaderResponse, "/etcdserverpb.Maintenance/MoveLeader", local;
    // Cluster
    "member_list" => MemberListResponse, "/etcdserverpb.Cluster/MemberList", read_only;
    "member_add" => MemberAddResponse, "/etcdserverpb.Cluster/MemberAdd";
    "member_remove" => MemberRemoveResponse, "/etcdserverpb.Cluster/MemberRemove";
    "member_update" => MemberUpdateResponse, "/etcdserverpb.Cluster/MemberUpdate";
    "member_promote" => MemberPromoteResponse, "/etcdserverpb.Cluster/MemberPromote";
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The XS sources, where every user-visible method is an XSUB or an
    /// ALIAS of one.
    const XS: &[&str] = &[
        include_str!("../xs-glue/Etcd.xs"),
        include_str!("../xs-glue/kv.xsh"),
        include_str!("../xs-glue/watch.xsh"),
        include_str!("../xs-glue/lease.xsh"),
        include_str!("../xs-glue/lock.xsh"),
        include_str!("../xs-glue/election.xsh"),
        include_str!("../xs-glue/auth.xsh"),
        include_str!("../xs-glue/maintenance.xsh"),
        include_str!("../xs-glue/cluster.xsh"),
    ];

    /// Names the XS side defines as methods (XSUBs after MODULE, ALIASes).
    fn xs_methods() -> Vec<String> {
        let mut names = Vec::new();
        for src in XS {
            let body = src.split_once("\nMODULE = ").map_or(*src, |(_, b)| b);
            let mut in_alias = false;
            for line in body.lines() {
                let t = line.trim();
                if line.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                    && line.contains("(EV::Etcd c")
                {
                    names.push(line.split('(').next().unwrap().to_string());
                    in_alias = false;
                } else if t == "ALIAS:" {
                    in_alias = true;
                } else if in_alias && t.contains(" = ") {
                    names.push(t.split(" = ").next().unwrap().to_string());
                } else if t.ends_with(':') {
                    in_alias = false;
                }
            }
        }
        names
    }

    /// String literals the XS side sends as a method name.
    fn xs_sent_names() -> Vec<String> {
        let mut names = Vec::new();
        for src in XS {
            for call in [
                "start_call(aTHX_ c, \"",
                "call_with_strings(aTHX_ c, \"",
                "call_with_id(aTHX_ c, \"",
            ] {
                for piece in src.split(call).skip(1) {
                    names.push(piece.split('"').next().unwrap().to_string());
                }
            }
            // tables such as `methods[] = { "auth_enable", ... }` and kv_call's names
            for decl in ["methods[] = {", "const names[] = { \"put\""] {
                for piece in src.split(decl).skip(1) {
                    let list = piece.split('}').next().unwrap();
                    let list = if decl.ends_with("\"put\"") {
                        format!("\"put\"{list}")
                    } else {
                        list.to_string()
                    };
                    names.extend(list.split('"').skip(1).step_by(2).map(str::to_string));
                }
            }
        }
        names
    }

    #[test]
    fn every_method_the_xs_side_sends_has_a_route() {
        let sent = xs_sent_names();
        assert!(sent.len() > 30, "found only {sent:?}");
        for name in &sent {
            assert!(
                route(name).is_some(),
                "XS sends '{name}', which has no route"
            );
        }
    }

    #[test]
    fn every_route_is_a_method_of_the_xs_side_and_back() {
        const STREAMS: &[&str] = &["watch", "lease_keepalive", "election_observe"];
        const NOT_RPCS: &[&str] = &[
            "set_endpoints",
            "close",
            "endpoints",
            "DESTROY",
            "_assert_usable",
            "_cancel_stream",
            "_crash_streams_for_testing",
            "new",
        ];
        let xs = xs_methods();
        for m in METHODS {
            assert!(xs.iter().any(|x| x == m), "route '{m}' has no XS method");
            assert_eq!(
                route(m).map(|r| r.source),
                Some(*m),
                "route '{m}' names itself"
            );
        }
        for x in &xs {
            if !STREAMS.contains(&x.as_str()) && !NOT_RPCS.contains(&x.as_str()) {
                assert!(
                    METHODS.contains(&x.as_str()),
                    "XS method '{x}' has no route"
                );
            }
        }
    }
}
