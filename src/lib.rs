//! Rust core of EV::Etcd: an etcd v3 client whose calls are submitted from
//! Perl through a small C ABI (`ffi`) and whose completions are handed back
//! through a queue that wakes the EV loop (`queue`).
//!
//! Layers, from the bottom; a module uses only its own layer and those
//! below it, and no two modules use each other (tests/layers.rs reads the
//! top-level modules of each layer, in backquotes, from this list):
//!
//! - io: `local` (`local_none` where there is none), the runtime on the
//!   Perl thread;
//! - values: `error`, `perl` (the reply builder), `proto`, `queue`;
//! - network: `net` (TCP, TLS);
//! - connections: `conn` (options, endpoints, channels, the auth token);
//! - call engine: `engine` (routes, codec, retries, deadlines, streams);
//! - services: `services` (kv, watch, lease, lock, election, auth,
//!   maintenance, cluster), each declaring its own routes;
//! - client: `client`, the façade the C ABI drives;
//! - C ABI: `ffi`.

/// Allocations made by Rust code (the runtimes, tonic, h2, prost) come from
/// mimalloc; Perl and XS keep the C library's malloc. Nothing allocated on
/// one side is freed on the other (the builder copies into Perl values).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// The runtime on the Perl thread finds tokio's epoll descriptor through
// Linux's /proc; elsewhere calls and watches run on the background thread.
#[cfg(target_os = "linux")]
pub mod local;
#[cfg(not(target_os = "linux"))]
#[path = "local_none.rs"]
pub mod local;

pub mod error;
pub mod perl;
pub mod proto;
pub mod queue;

pub mod net;

pub mod conn;

pub mod engine;

pub mod services;

pub mod client;

pub mod ffi;
