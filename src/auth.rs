//! Auth service: authenticate, auth_enable/disable/status, users and roles.

use crate::error::EtcdError;
use crate::perl::k;
use crate::perl::{Builder, Hv, ToPerl};
use crate::proto::authpb::permission::Type as PermType;
use crate::proto::etcdserverpb::*;
use crate::queue::Reply;
use crate::runtime::{round_trip, ReplyError, Route, Shared};
use bytes::Bytes;
use prost::Message;
use std::sync::Arc;
use tonic::Status;

/// authenticate: keeps the token and credentials, and goes out without a
/// token (etcd 3.4 rejects a login that carries a stale one).
pub fn login_route(r: Route) -> Route {
    Route {
        decode: store_token,
        with_token: false,
        ..r
    }
}

/// auth_disable: forgets the token, which etcd would now reject.
pub fn disable_route(r: Route) -> Route {
    Route {
        decode: forget_token,
        ..r
    }
}

/// A successful login replaces the token every later call sends, and its
/// credentials are kept for logging in again when the token goes stale.
fn store_token(shared: &Shared, request: &Bytes, body: Bytes) -> Result<Reply, ReplyError> {
    let resp = AuthenticateResponse::decode(body)?;
    shared.set_token(&resp.token)?;
    shared.set_credentials(request.clone());
    Ok(Box::new(resp))
}

/// With auth off etcd still rejects any token it is sent: stop sending it.
fn forget_token(shared: &Shared, _request: &Bytes, body: Bytes) -> Result<Reply, ReplyError> {
    let resp = AuthDisableResponse::decode(body)?;
    shared.clear_auth();
    Ok(Box::new(resp))
}

/// etcd's ways of saying the token we sent is no longer good: 3.4 and 3.5
/// word a stale auth revision differently, and an expired simple token is
/// "invalid auth token".
pub fn is_stale_token(status: &Status) -> bool {
    is_stale_token_message(status.message())
}

/// `is_stale_token` for a bare message (a watch's cancel reason).
pub fn is_stale_token_message(m: &str) -> bool {
    m.contains("invalid auth token")
        || m.contains("revision of auth store is old")
        || m.contains("auth: revision in header is old")
        // a call that went out between a rejected token and the new login
        || m.contains("user name is empty")
}

/// For streams: when `status` says the token is stale and we can log in
/// again, drops the token (unless it was replaced since the stream took
/// generation `token_gen`) and returns true; the stream's next opening
/// logs in first.
pub fn renew_token_for_stream(
    shared: &Arc<Shared>,
    status: &Status,
    token_gen: Option<u64>,
) -> bool {
    is_stale_token(status) && shared.token_rejected(token_gen)
}

/// Whether a watch refused with `reason` may be let in with a new token:
/// a stale token, or (etcd checks a create against the token its stream
/// was opened with, and says only "permission denied" when that token has
/// expired) a refusal that only a try with a fresh token can tell apart
/// from a real lack of rights.
pub fn login_may_cure(reason: &str) -> bool {
    is_stale_token_message(reason) || reason.contains("permission denied")
}

/// Logs in with the remembered credentials, without sending a token (3.4
/// rejects a login that carries a stale one). Call through
/// `Shared::ensure_login`, which lets one login serve every waiting call.
pub async fn login(shared: &Shared) -> Result<(), EtcdError> {
    let Some(request) = shared.credentials() else {
        return Ok(());
    };
    let route = crate::routes::route("authenticate").expect("authenticate is a route");
    let mut attempt = crate::runtime::Attempt::default();
    let limit = shared.cfg.timeout;
    let login = round_trip(shared, &route, request.clone(), Some(limit), &mut attempt);
    let outcome = match tokio::time::timeout(limit, login).await {
        Ok(outcome) => outcome,
        Err(_) => return Err(EtcdError::deadline(SOURCE, limit.as_secs_f64())),
    };
    match outcome {
        Ok(reply) => store_token(shared, &request, reply)
            .map(|_| ())
            .map_err(|e| EtcdError::internal(format!("malformed login reply: {e}"), SOURCE)),
        // Someone turned auth off: carry on without a token.
        Err((status, _)) if status.message().contains("authentication is not enabled") => {
            shared.clear_auth();
            Ok(())
        }
        Err((status, generation)) => {
            if crate::error::is_transport_failure(&status) {
                shared.connection_failed(generation);
            }
            Err(EtcdError::from_status(&status, SOURCE))
        }
    }
}

const SOURCE: &str = "authenticate";

impl ToPerl for AuthenticateResponse {
    fn to_perl(&self, b: &Builder) -> Hv {
        let h = b.hv();
        b.header(h, &self.header);
        b.bytes(h, k!("token"), self.token.as_bytes());
        h
    }
}

impl ToPerl for AuthStatusResponse {
    fn to_perl(&self, b: &Builder) -> Hv {
        let h = b.hv();
        b.header(h, &self.header);
        b.flag(h, k!("enabled"), self.enabled);
        b.uint(h, k!("auth_revision"), self.auth_revision);
        h
    }
}

impl ToPerl for AuthUserGetResponse {
    fn to_perl(&self, b: &Builder) -> Hv {
        let h = b.hv();
        b.header(h, &self.header);
        b.strings(h, k!("roles"), &self.roles);
        h
    }
}

impl ToPerl for AuthUserListResponse {
    fn to_perl(&self, b: &Builder) -> Hv {
        let h = b.hv();
        b.header(h, &self.header);
        b.strings(h, k!("users"), &self.users);
        h
    }
}

impl ToPerl for AuthRoleListResponse {
    fn to_perl(&self, b: &Builder) -> Hv {
        let h = b.hv();
        b.header(h, &self.header);
        b.strings(h, k!("roles"), &self.roles);
        h
    }
}

pub fn perm_type_name(t: i32) -> &'static str {
    match PermType::try_from(t) {
        Ok(PermType::Read) => "READ",
        Ok(PermType::Write) => "WRITE",
        Ok(PermType::Readwrite) => "READWRITE",
        Err(_) => "UNKNOWN",
    }
}

impl ToPerl for AuthRoleGetResponse {
    fn to_perl(&self, b: &Builder) -> Hv {
        let h = b.hv();
        b.header(h, &self.header);
        b.list(h, k!("perm"), &self.perm, |b, p| {
            let ph = b.hv();
            b.bytes(ph, k!("perm_type"), perm_type_name(p.perm_type).as_bytes());
            b.bytes(ph, k!("key"), &p.key);
            b.bytes(ph, k!("range_end"), &p.range_end);
            ph
        });
        h
    }
}

crate::perl::header_only_reply!(
    AuthEnableResponse,
    AuthDisableResponse,
    AuthUserAddResponse,
    AuthUserDeleteResponse,
    AuthUserChangePasswordResponse,
    AuthUserGrantRoleResponse,
    AuthUserRevokeRoleResponse,
    AuthRoleAddResponse,
    AuthRoleDeleteResponse,
    AuthRoleGrantPermissionResponse,
    AuthRoleRevokePermissionResponse,
);
