//! Connections: the options of `new` (`config`), the endpoints and their
//! channels (`channel`), what every task of a client shares — which
//! endpoint is current, how a broken one is left (`shared`) — the auth
//! token calls carry and the login that renews it (`token`), and the
//! other metadata of a request (`metadata`).

pub mod channel;
pub mod config;
pub mod metadata;
pub mod shared;
pub mod token;

pub use config::Config;
pub use metadata::require_leader;
pub use shared::{Login, Shared};
