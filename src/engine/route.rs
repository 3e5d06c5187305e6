//! Unary methods: the ids the C side names them by, how each travels
//! (`Route`), and `routes!`, with which each service declares its own.

#[cfg(feature = "test-hooks")]
use super::echo::EchoedRequest;
use crate::conn::Shared;
use crate::perl::ToPerl;
use crate::queue::Reply;
use bytes::Bytes;
use std::ffi::CStr;

/// A method's Perl name (its `routes!` name in snake_case), NUL-terminated
/// for the C side. Leaks it: only called when a route is built, and routes
/// are built once.
fn perl_name(method: &str) -> &'static CStr {
    let mut name = String::new();
    for c in method.chars() {
        if c.is_ascii_uppercase() && !name.is_empty() {
            name.push('_');
        }
        name.push(c.to_ascii_lowercase());
    }
    name.push('\0');
    let name: &'static str = Box::leak(name.into_boxed_str());
    CStr::from_bytes_with_nul(name.as_bytes()).expect("one NUL, at the end")
}

/// Declares a service's unary methods after the name of its method enum
/// (`#[repr(u32)]`, numbered from 0xN00 for service N, in the order of
/// this list: the C side's ids), one a line:
/// `Method => RequestType => ReplyType, "/package.Service/Rpc"`, then
/// adjustments applied to the Route in order. Makes `ROUTES`, built on
/// first use, in enum order. The XS side encodes the request; its type
/// here is what the request echo (t/48-request-encoding.t) reads those
/// bytes as.
macro_rules! routes {
    ($enum:ident; $($method:ident => $request:ty => $reply:ty, $path:literal $(, $adjust:expr)*;)*) => {
        /// This service's unary methods, in the order of their ids.
        pub static ROUTES: std::sync::LazyLock<Vec<$crate::engine::Route>> =
            std::sync::LazyLock::new(|| {
                vec![$({
                    let r = $crate::engine::Route::new::<$request, $reply>(
                        $enum::$method as u32,
                        stringify!($method),
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

/// The route of method `id` among `routes` (a service's `ROUTES`).
pub fn find(routes: &'static [Route], id: u32) -> &'static Route {
    routes
        .iter()
        .find(|r| r.id == id)
        .expect("the service declares this method")
}

/// How one unary method travels: its gRPC path and how its reply decodes.
pub struct Route {
    /// The method's id (its service's method enum).
    pub id: u32,
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
        id: u32,
        name: &'static str,
        path: &'static str,
        request_type: &'static str,
        reply_type: &'static str,
    ) -> Route
    where
        Req: prost::Message + Default + std::fmt::Debug,
        T: prost::Message + Default + ToPerl + Send + 'static,
    {
        let c_name = perl_name(name);
        Route {
            id,
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
