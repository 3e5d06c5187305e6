//! The stand-in for `local.rs` where there is no runtime on the Perl thread:
//! `local.rs` finds tokio's epoll descriptor through Linux's /proc, which
//! other systems do not have. `PerlRuntime::new` says there is none, so
//! unary calls and watches run on the background thread, as they do on
//! Linux when that descriptor cannot be found.

use std::os::fd::RawFd;

/// Never: nothing runs on the Perl thread here.
pub fn driving() -> bool {
    false
}

/// No value of this type exists: the methods are there for the callers
/// that `new` never lets reach them.
pub enum PerlRuntime {}

impl PerlRuntime {
    pub fn new() -> Option<PerlRuntime> {
        None
    }

    pub fn handle(&self) -> tokio::runtime::Handle {
        match *self {}
    }

    pub fn fd(&self) -> RawFd {
        match *self {}
    }

    pub fn drive(&self, _spawn: impl FnOnce(), _timers: bool) -> bool {
        match *self {}
    }
}
