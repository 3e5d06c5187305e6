//! Unary methods: the ids the C side names them by, how each travels
//! (`Route`), and `routes!`, with which each service declares its own.

#[cfg(feature = "test-hooks")]
use super::echo::EchoedRequest;
use crate::conn::Shared;
use crate::perl::ToPerl;
use crate::queue::Reply;
use bytes::Bytes;
use std::ffi::CStr;

/// Every unary method, numbered for the C side: cbindgen writes these
/// into xs-glue/evetcd.h as `EVETCD_METHOD_GET`, ... so XS and Rust share
/// one list. A method's Perl name (and its errors' `source`) is its name
/// here in snake_case. Each service declares the routes of its own
/// methods with `routes!`; the client finds them by id.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    // KV
    Get,
    Put,
    Delete,
    Txn,
    Compact,
    // Lease
    LeaseGrant,
    LeaseRevoke,
    LeaseTimeToLive,
    LeaseLeases,
    LeaseKeepaliveOnce,
    // Lock
    Lock,
    Unlock,
    // Election
    ElectionCampaign,
    ElectionProclaim,
    ElectionLeader,
    ElectionResign,
    // Auth
    Authenticate,
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
    // Maintenance
    Status,
    Alarm,
    Defragment,
    Hash,
    HashKv,
    MoveLeader,
    // Cluster
    MemberList,
    MemberAdd,
    MemberRemove,
    MemberUpdate,
    MemberPromote,
    /// Not a method: how many there are.
    Count,
}

/// `method`'s Perl name, NUL-terminated for the C side. Leaks it: only
/// called when a route is built, and routes are built once.
fn perl_name(method: Method) -> &'static CStr {
    let mut name = String::new();
    for c in format!("{method:?}").chars() {
        if c.is_ascii_uppercase() && !name.is_empty() {
            name.push('_');
        }
        name.push(c.to_ascii_lowercase());
    }
    name.push('\0');
    let name: &'static str = Box::leak(name.into_boxed_str());
    CStr::from_bytes_with_nul(name.as_bytes()).expect("one NUL, at the end")
}

/// Declares a service's unary methods, one a line:
/// `Method => RequestType => ReplyType, "/package.Service/Rpc"`, then
/// adjustments applied to the Route in order. Makes `ROUTES`, built on
/// first use. The XS side encodes the request; its type here is what the
/// request echo (t/48-request-encoding.t) reads those bytes as.
macro_rules! routes {
    ($($method:ident => $request:ty => $reply:ty, $path:literal $(, $adjust:expr)*;)*) => {
        /// This service's unary methods.
        pub static ROUTES: std::sync::LazyLock<Vec<$crate::engine::Route>> =
            std::sync::LazyLock::new(|| {
                vec![$({
                    let r = $crate::engine::Route::new::<$request, $reply>(
                        $crate::engine::Method::$method,
                        $path,
                        stringify!($request),
                        stringify!($reply),
                    );
                    $(let r = ($adjust)(r);)*
                    r
                }),*]
            });
    };
}
pub(crate) use routes;

/// The route of `method` among `routes` (a service's `ROUTES`).
pub fn find(routes: &'static [Route], method: Method) -> &'static Route {
    routes
        .iter()
        .find(|r| r.method == method)
        .expect("the service declares this method")
}

/// How one unary method travels: its gRPC path and how its reply decodes.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    /// The method's Perl name, as errors and `on_request` report it.
    pub source: &'static str,
    /// `source` for C.
    pub c_name: &'static CStr,
    /// Request and reply type names, as the protos call them.
    pub request_type: &'static str,
    pub reply_type: &'static str,
    /// Reads a request body strictly as its type (the request echo).
    #[cfg(feature = "test-hooks")]
    pub echo: fn(&'static str, &[u8]) -> Result<EchoedRequest, String>,
    /// Turns the reply into Perl-ready form; sees the request too.
    pub decode: fn(&Shared, &Bytes, Bytes) -> Result<Reply, ReplyError>,
    /// False for authenticate: etcd 3.4 rejects a login carrying a stale token.
    pub with_token: bool,
    /// Whether this request (its body) only reads: `retry` may repeat it
    /// even when it may have reached the server.
    pub read_only: fn(&[u8]) -> bool,
    /// Whether this request (its body) needs a leader: it then carries
    /// etcd's require-leader metadata, so a member that lost its leader
    /// refuses it at once (UNAVAILABLE) instead of letting it hang.
    pub needs_leader: fn(&[u8]) -> bool,
}

impl Route {
    pub fn new<Req, T>(
        method: Method,
        path: &'static str,
        request_type: &'static str,
        reply_type: &'static str,
    ) -> Route
    where
        Req: prost::Message + Default + std::fmt::Debug,
        T: prost::Message + Default + ToPerl + Send + 'static,
    {
        let c_name = perl_name(method);
        Route {
            method,
            path,
            source: c_name.to_str().expect("ASCII"),
            c_name,
            request_type,
            reply_type,
            #[cfg(feature = "test-hooks")]
            echo: super::echo::decode_strictly::<Req>,
            decode: decode_as::<T>,
            with_token: true,
            read_only: |_| false,
            needs_leader: |_| true,
        }
    }

    /// Marks a method that never changes anything.
    pub fn read_only(mut self) -> Route {
        self.read_only = |_| true;
        self
    }

    /// Marks a method a member answers on its own, leader or not
    /// (maintenance: status is how one finds out a member has no leader).
    pub fn local(mut self) -> Route {
        self.needs_leader = |_| false;
        self
    }
}

/// Why a reply body did not become a Perl-ready reply.
pub enum ReplyError {
    /// It did not decode (or made no sense): an INTERNAL error.
    Malformed(String),
    /// It decoded, and says the call failed, the way some of etcd's
    /// replies do instead of a gRPC status (a keepalive's TTL of 0).
    Refused(tonic::Code, &'static str),
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyError::Malformed(m) => f.write_str(m),
            ReplyError::Refused(_, m) => f.write_str(m),
        }
    }
}

impl From<prost::DecodeError> for ReplyError {
    fn from(e: prost::DecodeError) -> Self {
        ReplyError::Malformed(e.to_string())
    }
}

impl From<String> for ReplyError {
    fn from(e: String) -> Self {
        ReplyError::Malformed(e)
    }
}

fn decode_as<T>(_: &Shared, _request: &Bytes, body: Bytes) -> Result<Reply, ReplyError>
where
    T: prost::Message + Default + ToPerl + Send + 'static,
{
    Ok(Box::new(T::decode(body)?))
}
