//! The one table of unary methods: for each name a Perl user calls, its
//! gRPC path, its request and reply types and how it travels. The service
//! modules only say how their replies become Perl data.

use crate::proto::etcdserverpb::*;
use crate::proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};
use crate::proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use crate::request_echo::EchoedRequest;
use crate::runtime::Route;

/// `method => RequestType => ReplyType, "/package.Service/Rpc"`, then
/// optional adjustments applied to the Route in order. The XS side encodes
/// the request; its type here is what t/48-request-encoding.t checks those
/// bytes against, and what the tests below check against the protos.
macro_rules! table {
    ($($method:literal => $request:ident => $reply:ty, $path:literal $(, $adjust:expr)*;)*) => {
        /// Every unary method name, in table order.
        pub const METHODS: &[&str] = &[$($method),*];

        /// Each method with its gRPC path and its request and reply type names.
        #[cfg(test)]
        const SIGNATURES: &[(&str, &str, &str, &str)] =
            &[$(($method, $path, stringify!($request), stringify!($reply))),*];

        /// A body of unary `method` read strictly as its request type (see
        /// request_echo); None for a name it does not know.
        pub fn echo_request(method: &str, body: &[u8]) -> Option<Result<EchoedRequest, String>> {
            Some(match method {
                $($method => crate::request_echo::decode_strictly::<$request>($method, body),)*
                _ => return None,
            })
        }

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
    "get" => RangeRequest => RangeResponse, "/etcdserverpb.KV/Range", read_only, crate::kv::range_route;
    "put" => PutRequest => PutResponse, "/etcdserverpb.KV/Put";
    "delete" => DeleteRangeRequest => DeleteRangeResponse, "/etcdserverpb.KV/DeleteRange";
    "txn" => TxnRequest => TxnResponse, "/etcdserverpb.KV/Txn";
    "compact" => CompactionRequest => CompactionResponse, "/etcdserverpb.KV/Compact";
    // Lease
    "lease_grant" => LeaseGrantRequest => LeaseGrantResponse, "/etcdserverpb.Lease/LeaseGrant";
    "lease_revoke" => LeaseRevokeRequest => LeaseRevokeResponse, "/etcdserverpb.Lease/LeaseRevoke";
    "lease_time_to_live" => LeaseTimeToLiveRequest => LeaseTimeToLiveResponse, "/etcdserverpb.Lease/LeaseTimeToLive", read_only;
    "lease_leases" => LeaseLeasesRequest => LeaseLeasesResponse, "/etcdserverpb.Lease/LeaseLeases", read_only;
    // The keepalive RPC is a stream, but one request and one reply is a unary call on the wire.
    "lease_keepalive_once" => LeaseKeepAliveRequest => LeaseKeepAliveResponse, "/etcdserverpb.Lease/LeaseKeepAlive", read_only, crate::lease::keepalive_once_route;
    // Lock
    "lock" => LockRequest => LockResponse, "/v3lockpb.Lock/Lock";
    "unlock" => UnlockRequest => UnlockResponse, "/v3lockpb.Lock/Unlock";
    // Election
    "election_campaign" => CampaignRequest => CampaignResponse, "/v3electionpb.Election/Campaign";
    "election_proclaim" => ProclaimRequest => ProclaimResponse, "/v3electionpb.Election/Proclaim";
    "election_leader" => LeaderRequest => LeaderResponse, "/v3electionpb.Election/Leader", read_only;
    "election_resign" => ResignRequest => ResignResponse, "/v3electionpb.Election/Resign";
    // Auth
    "authenticate" => AuthenticateRequest => AuthenticateResponse, "/etcdserverpb.Auth/Authenticate", crate::auth::login_route;
    "auth_enable" => AuthEnableRequest => AuthEnableResponse, "/etcdserverpb.Auth/AuthEnable";
    "auth_disable" => AuthDisableRequest => AuthDisableResponse, "/etcdserverpb.Auth/AuthDisable", crate::auth::disable_route;
    "auth_status" => AuthStatusRequest => AuthStatusResponse, "/etcdserverpb.Auth/AuthStatus", read_only;
    "user_add" => AuthUserAddRequest => AuthUserAddResponse, "/etcdserverpb.Auth/UserAdd";
    "user_get" => AuthUserGetRequest => AuthUserGetResponse, "/etcdserverpb.Auth/UserGet", read_only;
    "user_list" => AuthUserListRequest => AuthUserListResponse, "/etcdserverpb.Auth/UserList", read_only;
    "user_delete" => AuthUserDeleteRequest => AuthUserDeleteResponse, "/etcdserverpb.Auth/UserDelete";
    "user_change_password" => AuthUserChangePasswordRequest => AuthUserChangePasswordResponse, "/etcdserverpb.Auth/UserChangePassword";
    "user_grant_role" => AuthUserGrantRoleRequest => AuthUserGrantRoleResponse, "/etcdserverpb.Auth/UserGrantRole";
    "user_revoke_role" => AuthUserRevokeRoleRequest => AuthUserRevokeRoleResponse, "/etcdserverpb.Auth/UserRevokeRole";
    "role_add" => AuthRoleAddRequest => AuthRoleAddResponse, "/etcdserverpb.Auth/RoleAdd";
    "role_get" => AuthRoleGetRequest => AuthRoleGetResponse, "/etcdserverpb.Auth/RoleGet", read_only;
    "role_list" => AuthRoleListRequest => AuthRoleListResponse, "/etcdserverpb.Auth/RoleList", read_only;
    "role_delete" => AuthRoleDeleteRequest => AuthRoleDeleteResponse, "/etcdserverpb.Auth/RoleDelete";
    "role_grant_permission" => AuthRoleGrantPermissionRequest => AuthRoleGrantPermissionResponse, "/etcdserverpb.Auth/RoleGrantPermission";
    "role_revoke_permission" => AuthRoleRevokePermissionRequest => AuthRoleRevokePermissionResponse, "/etcdserverpb.Auth/RoleRevokePermission";
    // Maintenance
    "status" => StatusRequest => StatusResponse, "/etcdserverpb.Maintenance/Status", read_only, local;
    "alarm" => AlarmRequest => AlarmResponse, "/etcdserverpb.Maintenance/Alarm", crate::maintenance::alarm_route, local;
    "defragment" => DefragmentRequest => DefragmentResponse, "/etcdserverpb.Maintenance/Defragment", local;
    "hash" => HashRequest => HashResponse, "/etcdserverpb.Maintenance/Hash", read_only, local;
    "hash_kv" => HashKvRequest => HashKvResponse, "/etcdserverpb.Maintenance/HashKV", read_only, local;
    "move_leader" => MoveLeaderRequest => MoveLeaderResponse, "/etcdserverpb.Maintenance/MoveLeader", local;
    // Cluster
    "member_list" => MemberListRequest => MemberListResponse, "/etcdserverpb.Cluster/MemberList", read_only;
    "member_add" => MemberAddRequest => MemberAddResponse, "/etcdserverpb.Cluster/MemberAdd";
    "member_remove" => MemberRemoveRequest => MemberRemoveResponse, "/etcdserverpb.Cluster/MemberRemove";
    "member_update" => MemberUpdateRequest => MemberUpdateResponse, "/etcdserverpb.Cluster/MemberUpdate";
    "member_promote" => MemberPromoteRequest => MemberPromoteResponse, "/etcdserverpb.Cluster/MemberPromote";
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

    /// XSUBs that take their arguments by hand behind a public Perl sub of
    /// lib/EV/Etcd.pm, which reaches them by goto: (XSUB, public method).
    const FRONTED: &[(&str, &str)] = &[("_txn", "txn")];

    /// Names the XS side defines as methods (XSUBs after MODULE, ALIASes),
    /// a fronted XSUB under its public name.
    fn xs_methods() -> Vec<String> {
        let mut names = Vec::new();
        for src in XS {
            let body = src.split_once("\nMODULE = ").map_or(*src, |(_, b)| b);
            let mut in_alias = false;
            for line in body.lines() {
                let t = line.trim();
                if let Some((_, public)) = FRONTED.iter().find(|(x, _)| line == format!("{x}(...)"))
                {
                    names.push(public.to_string());
                    in_alias = false;
                } else if line.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
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
            "_echo_requests_for_testing",
            "_panic_for_testing",
            "_is_live",
            "_watch_progress",
            "_snapshot",
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

    #[test]
    fn every_fronted_xsub_has_its_public_sub() {
        let pm = include_str!("../lib/EV/Etcd.pm");
        for (xsub, public) in FRONTED {
            let sub = pm.split(&format!("\nsub {public} {{\n")).nth(1);
            let body = sub.and_then(|b| b.split("\n}\n").next());
            assert!(
                body.is_some_and(|b| b.contains(&format!("goto &{xsub};"))),
                "lib/EV/Etcd.pm has no sub {public} that goes to {xsub}"
            );
        }
    }

    /// The protos' rpc declarations: "/package.Service/Rpc" with its
    /// request and reply types, and whether either is a stream.
    fn proto_rpcs() -> Vec<(String, String, String, bool)> {
        const PROTOS: &[&str] = &[
            include_str!("../proto/etcdserverpb/rpc.proto"),
            include_str!("../proto/v3lockpb/v3lock.proto"),
            include_str!("../proto/v3electionpb/v3election.proto"),
        ];
        let mut rpcs = Vec::new();
        for src in PROTOS {
            let (mut package, mut service) = ("", "");
            for line in src.lines().map(str::trim) {
                if let Some(p) = line.strip_prefix("package ") {
                    package = p.trim_end_matches(';');
                } else if let Some(s) = line.strip_prefix("service ") {
                    service = s.trim_end_matches('{').trim();
                } else if let Some(rpc) = line.strip_prefix("rpc ") {
                    // Name(Request) returns (Reply) {}
                    let (name, rest) = rpc.split_once('(').unwrap();
                    let (request, rest) = rest.split_once(')').unwrap();
                    let reply = rest.split_once('(').unwrap().1.split_once(')').unwrap().0;
                    let streams = request.starts_with("stream ") || reply.starts_with("stream ");
                    rpcs.push((
                        format!("/{package}.{service}/{}", name.trim()),
                        request.trim_start_matches("stream ").to_string(),
                        reply.trim_start_matches("stream ").to_string(),
                        streams,
                    ));
                }
            }
        }
        rpcs
    }

    #[test]
    fn every_route_has_the_request_and_reply_types_its_proto_declares() {
        let rpcs = proto_rpcs();
        assert!(rpcs.len() > 40, "found only {rpcs:?}");
        // prost turns HashKVRequest into HashKvRequest
        let same = |proto: &str, rust: &str| proto.eq_ignore_ascii_case(rust);
        for (method, path, request, reply) in SIGNATURES {
            let Some((_, req, rep, streams)) = rpcs.iter().find(|r| r.0 == *path) else {
                panic!("'{method}' goes to {path}, which no proto declares");
            };
            // A bidirectional stream used for one request and one reply
            // is the only streaming RPC the table may name.
            let once = *method == "lease_keepalive_once";
            assert!(!streams || once, "'{method}' is unary but {path} streams");
            assert!(
                same(req, request),
                "'{method}' sends {request}, {path} takes {req}"
            );
            assert!(
                same(rep, reply),
                "'{method}' reads {reply}, {path} returns {rep}"
            );
        }
    }

    #[test]
    fn echo_request_knows_every_method_and_only_those() {
        for m in METHODS {
            assert!(echo_request(m, &[]).is_some_and(|r| r.is_ok()), "{m}");
        }
        assert!(echo_request("watch", &[]).is_none());
    }
}
