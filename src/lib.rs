//! Rust core of EV::Etcd: an etcd v3 client whose calls are submitted from
//! Perl through a small C ABI (`ffi`) and whose completions are handed back
//! through a queue that wakes the EV loop (`queue`).

pub mod error;
pub mod ffi;
pub mod local;
pub mod net;
pub mod perl;
pub mod proto;
pub mod queue;
pub mod request_echo;
pub mod routes;
pub mod runtime;
pub mod streams;
pub mod tls;

#[cfg(test)]
mod abi_check;
pub mod auth;
pub mod cluster;
pub mod election;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod watch;
