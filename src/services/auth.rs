//! Auth service: authenticate, auth_enable/disable/status, users and roles.

use crate::conn::token::is_stale_token_message;
use crate::conn::Shared;
use crate::engine::{call_once, find, routes, ReplyError, Route};
use crate::error::EtcdError;
use crate::perl::k;
use crate::perl::{Builder, Hv, ToPerl};
use crate::proto::authpb::permission::Type as PermType;
use crate::proto::etcdserverpb::*;
use crate::queue::Reply;
use bytes::Bytes;
use prost::Message;
use std::future::Future;
use std::pin::Pin;

/// This service's unary methods, numbered for the C side: cbindgen
/// writes them into xs-glue/evetcd.h as `EVETCD_AUTH_METHOD_AUTHENTICATE`, ...
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    Authenticate = 0x500,
    AuthEnable,
    AuthDisable,
    AuthStatus,
    UserAdd,
    UserGet,
    UserList,
    UserDelete,
    UserChangePassword,
    UserGrantRole,
    UserRevokeRole,
    RoleAdd,
    RoleGet,
    RoleList,
    RoleDelete,
    RoleGrantPermission,
    RoleRevokePermission,
}

routes! {
    AuthMethod;
    Authenticate => AuthenticateRequest => AuthenticateResponse, "/etcdserverpb.Auth/Authenticate", login_route;
    AuthEnable => AuthEnableRequest => AuthEnableResponse, "/etcdserverpb.Auth/AuthEnable";
    AuthDisable => AuthDisableRequest => AuthDisableResponse, "/etcdserverpb.Auth/AuthDisable", disable_route;
    AuthStatus => AuthStatusRequest => AuthStatusResponse, "/etcdserverpb.Auth/AuthStatus", Route::read_only;
    UserAdd => AuthUserAddRequest => AuthUserAddResponse, "/etcdserverpb.Auth/UserAdd";
    UserGet => AuthUserGetRequest => AuthUserGetResponse, "/etcdserverpb.Auth/UserGet", Route::read_only;
    UserList => AuthUserListRequest => AuthUserListResponse, "/etcdserverpb.Auth/UserList", Route::read_only;
    UserDelete => AuthUserDeleteRequest => AuthUserDeleteResponse, "/etcdserverpb.Auth/UserDelete";
    UserChangePassword => AuthUserChangePasswordRequest => AuthUserChangePasswordResponse, "/etcdserverpb.Auth/UserChangePassword";
    UserGrantRole => AuthUserGrantRoleRequest => AuthUserGrantRoleResponse, "/etcdserverpb.Auth/UserGrantRole";
    UserRevokeRole => AuthUserRevokeRoleRequest => AuthUserRevokeRoleResponse, "/etcdserverpb.Auth/UserRevokeRole";
    RoleAdd => AuthRoleAddRequest => AuthRoleAddResponse, "/etcdserverpb.Auth/RoleAdd";
    RoleGet => AuthRoleGetRequest => AuthRoleGetResponse, "/etcdserverpb.Auth/RoleGet", Route::read_only;
    RoleList => AuthRoleListRequest => AuthRoleListResponse, "/etcdserverpb.Auth/RoleList", Route::read_only;
    RoleDelete => AuthRoleDeleteRequest => AuthRoleDeleteResponse, "/etcdserverpb.Auth/RoleDelete";
    RoleGrantPermission => AuthRoleGrantPermissionRequest => AuthRoleGrantPermissionResponse, "/etcdserverpb.Auth/RoleGrantPermission";
    RoleRevokePermission => AuthRoleRevokePermissionRequest => AuthRoleRevokePermissionResponse, "/etcdserverpb.Auth/RoleRevokePermission";
}

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

/// Whether a watch refused with `reason` may be let in with a new token:
/// a stale token, or (etcd checks a create against the token its stream
/// was opened with, and says only "permission denied" when that token has
/// expired) a refusal that only a try with a fresh token can tell apart
/// from a real lack of rights.
pub fn login_may_cure(reason: &str) -> bool {
    is_stale_token_message(reason) || reason.contains("permission denied")
}

/// Logs in with the remembered credentials, without sending a token (3.4
/// rejects a login that carries a stale one). Called through
/// `Shared::ensure_login`, which lets one login serve every waiting call.
pub fn login(shared: &Shared) -> Pin<Box<dyn Future<Output = Result<(), EtcdError>> + Send + '_>> {
    Box::pin(async move {
        let Some(request) = shared.credentials() else {
            return Ok(());
        };
        let route = find(&ROUTES, AuthMethod::Authenticate as u32);
        let limit = shared.cfg.timeout;
        match call_once(shared, route, request.clone(), limit, SOURCE).await {
            Ok(reply) => store_token(shared, &request, reply)
                .map(|_| ())
                .map_err(|e| EtcdError::internal(format!("malformed login reply: {e}"), SOURCE)),
            // Someone turned auth off: carry on without a token.
            Err(e) if e.message.contains("authentication is not enabled") => {
                shared.clear_auth();
                Ok(())
            }
            Err(e) => Err(e),
        }
    })
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
