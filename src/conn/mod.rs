//! Connections: the options of `new` (`config`), the endpoints and their
//! channels (`channel`), what every task of a client shares — which
//! endpoint is current, how a broken one is left (`shared`) — the auth
//! token calls carry and the login that renews it (`token`), and the
//! other metadata of a request (`metadata`); and the gate that keeps calls
//! made after a watch behind it (`call_gate`).

pub mod call_gate;
pub mod channel;
pub mod config;
pub mod metadata;
pub mod shared;
pub mod token;

pub use call_gate::{CallGate, WatchOrder};
pub use config::Config;
pub use metadata::require_leader;
pub use shared::{Login, Shared};
