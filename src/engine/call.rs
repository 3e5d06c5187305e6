//! The unary call engine: one round trip, the login a call waits for,
//! `retry`'s repeats, deadlines, and `ReplyGuard`, which answers every call
//! exactly once.

use super::codec::{grpc, over_recv_limit, RawCodec};
use super::route::{ReplyError, Route};
use crate::conn::{require_leader, Shared};
use crate::error::EtcdError;
use crate::queue::{CallInfo, Completion, Disposition, Reply};
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::Status;

/// What a round trip used: the endpoint and the token's generation.
#[derive(Debug, Default, Clone, Copy)]
pub struct Attempt {
    pub endpoint: usize,
    pub token_gen: u64,
}

/// Sends an error for its call if dropped without replying: a panicking or
/// aborted task still completes its call exactly once.
pub struct ReplyGuard {
    shared: Arc<Shared>,
    id: u64,
    source: &'static str,
    done: bool,
}

impl ReplyGuard {
    pub fn new(shared: Arc<Shared>, id: u64, source: &'static str) -> Self {
        ReplyGuard {
            shared,
            id,
            source,
            done: false,
        }
    }

    pub fn reply(mut self, result: Result<Reply, EtcdError>, info: Option<Box<CallInfo>>) {
        self.done = true;
        self.shared.out.send(Completion {
            id: self.id,
            disposition: Disposition::Last,
            result,
            info,
        });
    }
}

impl Drop for ReplyGuard {
    fn drop(&mut self) {
        if !self.done {
            let err = EtcdError::internal("request task ended without a reply", self.source);
            self.shared.send(self.id, Disposition::Last, Err(err));
        }
    }
}

/// One round trip of `route` on the current channel; `attempt` records
/// the endpoint and token it used.
pub async fn round_trip(
    shared: &Shared,
    route: &Route,
    body: Bytes,
    deadline: Option<Duration>,
    attempt: &mut Attempt,
) -> Result<Bytes, (Status, u64)> {
    let (channel, generation, index) = shared.connection();
    attempt.endpoint = index;
    let mut client = grpc(shared, channel);
    let needs_leader = (route.needs_leader)(&body);
    let (mut req, token_gen) = shared.request_with_token(body, route.with_token, deadline);
    if needs_leader {
        require_leader(&mut req);
    }
    attempt.token_gen = token_gen;
    client
        .ready()
        .await
        .map_err(|e| (Status::from_error(Box::new(e)), generation))?;
    client
        .unary(req, PathAndQuery::from_static(route.path), RawCodec)
        .await
        .map(|r| r.into_inner())
        .map_err(|s| (s, generation))
}

/// A call the client makes for itself (a resync's read, an endpoint sync,
/// the login): logged in unless the route goes without a token (the login
/// itself), one round trip within `limit`, a broken connection left
/// behind; the reply undecoded, errors under `source`.
pub async fn call_once(
    shared: &Shared,
    route: &Route,
    body: Bytes,
    limit: Duration,
    source: &'static str,
) -> Result<Bytes, EtcdError> {
    if route.with_token {
        shared.ensure_login().await?;
    }
    let mut attempt = Attempt::default();
    let call = round_trip(shared, route, body, Some(limit), &mut attempt);
    match tokio::time::timeout(limit, call).await {
        Err(_) => Err(EtcdError::deadline(source, limit.as_secs_f64())),
        Ok(Err((status, generation))) => {
            if crate::error::is_transport_failure(&status) {
                shared.connection_failed(generation);
            }
            Err(EtcdError::from_status(&status, source))
        }
        Ok(Ok(reply)) => Ok(reply),
    }
}

/// One attempt: the login the call waits for, the round trip, and the one
/// repeat after logging in again when the server forgot our token.
async fn attempt_once(
    shared: &Shared,
    route: &Route,
    body: &Bytes,
    deadline: Option<Duration>,
    retries: &mut u32,
    attempt: &mut Attempt,
) -> Result<Result<Bytes, (Status, u64)>, LoginFailed> {
    if route.with_token {
        // A first call waits for the login of `username`/`password`.
        shared.ensure_login().await.map_err(LoginFailed)?;
    }
    let outcome = round_trip(shared, route, body.clone(), deadline, attempt).await;
    let Err((status, _)) = &outcome else {
        return Ok(outcome);
    };
    if !(route.with_token
        && crate::conn::token::is_stale_token(status)
        && shared.token_rejected(Some(attempt.token_gen)))
    {
        return Ok(outcome);
    }
    if let Err(e) = shared.ensure_login().await {
        // The server's answer stays the error; why it could not be cured
        // is added (e.g. the password was changed).
        let msg = format!(
            "{}; logging in again failed: {}",
            status.message(),
            e.message
        );
        return Ok(Err((Status::new(status.code(), msg), 0)));
    }
    *retries += 1;
    Ok(round_trip(shared, route, body.clone(), deadline, attempt).await)
}

/// First pause before a `retry`; doubled for each further one (to 16×).
const RETRY_BACKOFF: Duration = Duration::from_millis(50);

/// Whether `retry` may repeat a call that failed with `status`: only when
/// the server is unavailable, and only a read, or a write that never left.
fn may_repeat(status: &Status, route: &Route, body: &[u8]) -> bool {
    let unavailable =
        status.code() == tonic::Code::Unavailable || crate::error::is_transport_failure(status);
    unavailable
        && !crate::error::is_deadline(status)
        && ((route.read_only)(body) || crate::error::never_sent(status))
}

/// The login a call waited for failed.
struct LoginFailed(EtcdError);

/// How a unary call went: its result, retries and the endpoint last used.
pub struct Outcome {
    pub result: Result<Reply, EtcdError>,
    pub retries: u32,
    pub endpoint: usize,
}

pub async fn unary_call(
    shared: &Shared,
    route: &Route,
    body: Bytes,
    deadline: Option<Duration>,
) -> Outcome {
    let mut retries = 0;
    let mut attempt = Attempt::default();
    let result = unary_attempts(shared, route, body, deadline, &mut retries, &mut attempt).await;
    Outcome {
        result,
        retries,
        endpoint: attempt.endpoint,
    }
}

async fn unary_attempts(
    shared: &Shared,
    route: &Route,
    body: Bytes,
    deadline: Option<Duration>,
    retries: &mut u32,
    attempt: &mut Attempt,
) -> Result<Reply, EtcdError> {
    if body.len() > shared.cfg.max_send_size {
        return Err(EtcdError::new(
            tonic::Code::ResourceExhausted,
            format!(
                "request of {} bytes exceeds max_send_size ({} bytes)",
                body.len(),
                shared.cfg.max_send_size
            ),
            route.source,
        ));
    }
    let started = Instant::now();
    let attempts = async {
        // `retry`: repeat what cannot do harm twice, on the next endpoint.
        let mut repeats = 0;
        loop {
            let outcome = attempt_once(shared, route, &body, deadline, retries, attempt).await;
            let again = repeats < shared.cfg.retry
                && match &outcome {
                    // The call itself was not sent: the login failed.
                    Err(LoginFailed(e)) => e.code == tonic::Code::Unavailable,
                    Ok(Err((status, _))) => may_repeat(status, route, &body),
                    Ok(Ok(_)) => false,
                };
            if !again {
                return outcome;
            }
            if let Ok(Err((_, generation))) = &outcome {
                shared.connection_failed(*generation);
            }
            tokio::time::sleep(RETRY_BACKOFF * (1 << repeats.min(4))).await;
            repeats += 1;
            *retries += 1;
        }
    };
    let outcome = match deadline {
        Some(limit) => match tokio::time::timeout(limit, attempts).await {
            Ok(r) => r,
            Err(_) => return Err(EtcdError::deadline(route.source, limit.as_secs_f64())),
        },
        None => attempts.await,
    };
    // A failed login is the call's error, under the call's own name.
    let outcome = match outcome {
        Ok(o) => o,
        Err(LoginFailed(e)) => return Err(EtcdError::new(e.code, e.message, route.source)),
    };
    match outcome {
        Ok(reply) => decode_reply(shared, route, &body, reply),
        Err((status, generation)) => {
            if crate::error::is_transport_failure(&status) {
                shared.connection_failed(generation);
            }
            if let Some(err) = over_recv_limit(shared, &status, route.source) {
                return Err(err);
            }
            let err = EtcdError::from_status(&status, route.source);
            // The server enforces the grpc-timeout header too, and may end
            // the call (in its own words) before our timer fires.
            match deadline {
                Some(limit)
                    if err.code == tonic::Code::DeadlineExceeded || started.elapsed() >= limit =>
                {
                    Err(EtcdError::deadline(route.source, limit.as_secs_f64()))
                }
                _ => Err(err),
            }
        }
    }
}

fn decode_reply(
    shared: &Shared,
    route: &Route,
    body: &Bytes,
    reply: Bytes,
) -> Result<Reply, EtcdError> {
    (route.decode)(shared, body, reply).map_err(|e| match e {
        ReplyError::Malformed(e) => {
            EtcdError::internal(format!("malformed reply: {e}"), route.source)
        }
        ReplyError::Refused(code, message) => EtcdError::new(code, message, route.source),
    })
}

/// A call aimed at one member (the `endpoint` option of the maintenance
/// calls that report on, or act on, the member that answers): one attempt
/// there, never moved to another endpoint.
pub async fn member_call(
    shared: &Shared,
    route: &Route,
    body: Bytes,
    deadline: Option<Duration>,
    uri: &str,
) -> Result<Reply, EtcdError> {
    let channel = shared
        .member_channel(uri)
        .map_err(|e| EtcdError::new(tonic::Code::InvalidArgument, e, route.source))?;
    let attempt = async {
        if route.with_token {
            shared.ensure_login().await?;
        }
        let mut client = grpc(shared, channel);
        let (req, _) = shared.request_with_token(body.clone(), route.with_token, deadline);
        client
            .ready()
            .await
            .map_err(|e| Status::from_error(Box::new(e)))
            .map_err(|s| EtcdError::from_status(&s, route.source))?;
        client
            .unary(req, PathAndQuery::from_static(route.path), RawCodec)
            .await
            .map(|r| r.into_inner())
            .map_err(|s| EtcdError::from_status(&s, route.source))
    };
    let reply = match deadline {
        Some(limit) => match tokio::time::timeout(limit, attempt).await {
            Ok(r) => r,
            Err(_) => return Err(EtcdError::deadline(route.source, limit.as_secs_f64())),
        },
        None => attempt.await,
    };
    let reply = reply.map_err(|e| EtcdError::new(e.code, e.message, route.source))?;
    decode_reply(shared, route, &body, reply)
}
