//! The call engine: how a unary method travels (`route`, `codec`), one call
//! with its login, retries and deadline (`call`), the machinery the
//! long-lived streams share (`stream`), the health probe (`health`) and the
//! request echo test hook (`echo`, in a build with the `test-hooks`
//! feature only). It knows no service: each declares its own routes with
//! `routes!`.

pub mod call;
pub mod codec;
#[cfg(feature = "test-hooks")]
pub mod echo;
pub mod health;
pub mod route;
pub mod stream;

pub use call::{call_once, ReplyGuard};
pub(crate) use route::routes;
pub use route::{find, ReplyError, Route};
