//! The etcd services, one module each: the routes of its unary methods
//! (`routes!`), how its replies become Perl data (`ToPerl`), and the tasks
//! of its streams.

pub mod auth;
pub mod cluster;
pub mod election;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod watch;
