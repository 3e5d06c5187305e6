//! `health_check_interval`: a Status probe of the current endpoint now and
//! then, reported to `on_health_change` when the answer changes.

use super::codec::{grpc, RawCodec};
use crate::conn::Shared;
use crate::perl::k;
use crate::perl::{Builder, Hv, ToPerl};
use crate::queue::Disposition;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::Status;

/// Health as reported to `on_health_change`.
pub struct Health {
    pub healthy: bool,
    pub endpoint: String,
}

impl ToPerl for Health {
    fn to_perl(&self, b: &Builder) -> Hv {
        let h = b.hv();
        b.flag(h, k!("healthy"), self.healthy);
        b.bytes(h, k!("endpoint"), self.endpoint.as_bytes());
        h
    }
}

/// Completion id reserved for health reports.
pub const HEALTH_ID: u64 = 0;

pub async fn health_loop(shared: Arc<Shared>, every: Duration) {
    let mut last: Option<bool> = None;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (channel, generation) = shared.channel();
        let endpoint = shared.current_endpoint();
        let mut client = grpc(&shared, channel);
        let req = shared.request(Bytes::new(), true, Some(shared.cfg.timeout));
        let probe = async {
            client
                .ready()
                .await
                .map_err(|e| Status::from_error(Box::new(e)))?;
            client
                .unary(
                    req,
                    PathAndQuery::from_static("/etcdserverpb.Maintenance/Status"),
                    RawCodec,
                )
                .await
        };
        let limit = every.min(shared.cfg.timeout).max(Duration::from_secs(1));
        // Any answer from the server, even a refusal, means it is reachable.
        let healthy = match tokio::time::timeout(limit, probe).await {
            Ok(Ok(_)) => true,
            Ok(Err(status)) => !crate::error::is_transport_failure(&status),
            Err(_) => false,
        };
        if !healthy {
            shared.connection_failed(generation);
        }
        if last != Some(healthy) {
            last = Some(healthy);
            shared.send(
                HEALTH_ID,
                Disposition::Keep,
                Ok(Box::new(Health { healthy, endpoint })),
            );
        }
    }
}
