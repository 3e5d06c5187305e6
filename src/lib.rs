//! Rust core of EV::Etcd: an etcd v3 client whose calls are submitted from
//! Perl through a small C ABI (`ffi`) and whose completions are handed back
//! through a queue that wakes the EV loop (`queue`).

/// Allocations made by Rust code (the runtimes, tonic, h2, prost) come from
/// mimalloc; Perl and XS keep the C library's malloc. Nothing allocated on
/// one side is freed on the other (the builder copies into Perl values).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod call_gate;
pub mod error;
pub mod ffi;
// The runtime on the Perl thread finds tokio's epoll descriptor through
// Linux's /proc; elsewhere calls and watches run on the background thread.
#[cfg(target_os = "linux")]
pub mod local;
#[cfg(not(target_os = "linux"))]
#[path = "local_none.rs"]
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

pub mod auth;
pub mod cluster;
pub mod election;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod watch;
