//! Every unary method's route, by the id the C side names it with: the
//! services' own route lists, gathered once.

use crate::engine::Route;
use crate::services::{auth, cluster, election, kv, lease, lock, maintenance};
use std::sync::LazyLock;

/// Each service's routes, at its number (the high byte of its method ids,
/// from 1) less one.
static SERVICES: [&LazyLock<Vec<Route>>; 7] = [
    &kv::ROUTES,
    &lease::ROUTES,
    &lock::ROUTES,
    &election::ROUTES,
    &auth::ROUTES,
    &maintenance::ROUTES,
    &cluster::ROUTES,
];

/// The route of method `id` (one of the services' method enums), or None
/// for an unknown id: service `id >> 8`, its route `id & 0xff`.
pub fn route(id: u32) -> Option<&'static Route> {
    let service = usize::try_from(id >> 8).ok()?.checked_sub(1)?;
    let route = SERVICES
        .get(service)?
        .get(usize::try_from(id & 0xff).ok()?)?;
    (route.id == id).then_some(route)
}

/// Every route, service by service.
#[cfg(test)]
fn all() -> impl Iterator<Item = &'static Route> {
    SERVICES.iter().flat_map(|s| s.iter())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The XS sources, where every user-visible method is an XSUB or an
    /// ALIAS of one.
    const XS: &[&str] = &[
        include_str!("../../xs-glue/Etcd.xs"),
        include_str!("../../xs-glue/kv.xsh"),
        include_str!("../../xs-glue/watch.xsh"),
        include_str!("../../xs-glue/lease.xsh"),
        include_str!("../../xs-glue/lock.xsh"),
        include_str!("../../xs-glue/election.xsh"),
        include_str!("../../xs-glue/auth.xsh"),
        include_str!("../../xs-glue/maintenance.xsh"),
        include_str!("../../xs-glue/cluster.xsh"),
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

    #[test]
    fn every_route_is_a_method_of_the_xs_side_and_back() {
        const STREAMS: &[&str] = &["watch", "lease_keepalive", "election_observe"];
        const NOT_RPCS: &[&str] = &[
            "set_endpoints",
            "close",
            "endpoints",
            "io_mode",
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
        let names: Vec<&str> = all().map(|r| r.source).collect();
        for m in &names {
            assert!(xs.iter().any(|x| x == m), "route '{m}' has no XS method");
        }
        for x in &xs {
            if !STREAMS.contains(&x.as_str()) && !NOT_RPCS.contains(&x.as_str()) {
                assert!(names.contains(&x.as_str()), "XS method '{x}' has no route");
            }
        }
    }

    #[test]
    fn every_fronted_xsub_has_its_public_sub() {
        let pm = include_str!("../../lib/EV/Etcd.pm");
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
            include_str!("../../proto/etcdserverpb/rpc.proto"),
            include_str!("../../proto/v3lockpb/v3lock.proto"),
            include_str!("../../proto/v3electionpb/v3election.proto"),
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
        for r in all() {
            let (method, path, request, reply) = (r.source, r.path, r.request_type, r.reply_type);
            let Some((_, req, rep, streams)) = rpcs.iter().find(|r| r.0 == path) else {
                panic!("'{method}' goes to {path}, which no proto declares");
            };
            // A bidirectional stream used for one request and one reply
            // is the only streaming RPC the table may name.
            let once = method == "lease_keepalive_once";
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
    fn every_method_has_one_route_at_its_id() {
        for (n, service) in SERVICES.iter().enumerate() {
            for (i, r) in service.iter().enumerate() {
                // The enum and the routes! list of a service in one order.
                assert_eq!(r.id, ((n as u32 + 1) << 8) + i as u32, "{}", r.source);
                assert_eq!(route(r.id).map(|r| r.source), Some(r.source));
            }
            let past = ((n as u32 + 1) << 8) + service.len() as u32;
            assert!(route(past).is_none());
        }
        assert!(route(0).is_none() && route(0x800).is_none() && route(u32::MAX).is_none());
        assert_eq!(
            route(lease::LeaseMethod::LeaseTimeToLive as u32)
                .unwrap()
                .source,
            "lease_time_to_live"
        );
        assert_eq!(
            route(maintenance::MaintenanceMethod::HashKv as u32)
                .unwrap()
                .c_name
                .to_str(),
            Ok("hash_kv")
        );
    }

    #[cfg(feature = "test-hooks")]
    #[test]
    fn every_route_echoes_its_request_type() {
        for r in all() {
            let echo = (r.echo)(r.source, &[]).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                r.request_type.eq_ignore_ascii_case(echo.request_type),
                "{}",
                r.source
            );
        }
    }
}
