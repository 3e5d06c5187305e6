//! Completion queue between the runtime thread and the Perl thread.
//!
//! Producers push a completion and write one byte to a non-blocking socket pair only
//! when no wake-up is outstanding; the Perl side acknowledges the wake-up
//! *before* draining, so a completion pushed after its last look always
//! triggers a fresh write and none can be stranded. Completions of the
//! local runtime (see `local`) are pushed on the Perl thread itself, which
//! drains after each drive: they need no wake-up.

use crate::error::EtcdError;
use crate::perl::ToPerl;
use crossbeam_channel::{Receiver, Sender};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub type Reply = Box<dyn ToPerl + Send>;

/// What a completion does to the Perl-side callback entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Call the callback and keep it (a stream message).
    Keep,
    /// Call the callback and forget it (a unary reply, a stream's last error).
    Last,
}

pub struct Completion {
    pub id: u64,
    pub disposition: Disposition,
    pub result: Result<Reply, EtcdError>,
    /// For `on_request`: how a unary call went (only when a hook is set).
    pub info: Option<Box<CallInfo>>,
}

/// What the `on_request` hook learns about one finished unary call; its
/// status comes from the completion's result.
#[derive(Debug, Clone)]
pub struct CallInfo {
    pub method: &'static str,
    /// host:port of the endpoint the last attempt went to.
    pub endpoint: String,
    pub duration: std::time::Duration,
    pub retries: u32,
}

struct Wake {
    read: UnixStream,
    write: UnixStream,
    pending: AtomicBool,
}

#[derive(Clone)]
pub struct CompletionSender {
    tx: Sender<Completion>,
    wake: Arc<Wake>,
}

pub struct CompletionQueue {
    rx: Receiver<Completion>,
    wake: Arc<Wake>,
}

pub fn completion_queue() -> std::io::Result<(CompletionSender, CompletionQueue)> {
    let (read, write) = UnixStream::pair()?;
    read.set_nonblocking(true)?;
    write.set_nonblocking(true)?;
    let wake = Arc::new(Wake {
        read,
        write,
        pending: AtomicBool::new(false),
    });
    let (tx, rx) = crossbeam_channel::unbounded();
    Ok((
        CompletionSender {
            tx,
            wake: wake.clone(),
        },
        CompletionQueue { rx, wake },
    ))
}

impl CompletionSender {
    pub fn send(&self, c: Completion) {
        if self.tx.send(c).is_err() {
            return; // the client is gone; nobody is waiting
        }
        if crate::local::driving() {
            return; // the Perl thread drains after the drive
        }
        if !self.wake.pending.swap(true, Ordering::AcqRel) {
            // A full socket buffer already means a wake-up is on its way.
            let _ = (&self.wake.write).write(&[1u8]);
        }
    }
}

impl CompletionQueue {
    pub fn fd(&self) -> RawFd {
        self.wake.read.as_raw_fd()
    }

    /// Empties the socket and re-arms the wake-up; call before draining.
    pub fn acknowledge(&self) {
        let mut buf = [0u8; 64];
        while let Ok(n) = (&self.wake.read).read(&mut buf) {
            if n < buf.len() {
                break;
            }
        }
        self.wake.pending.store(false, Ordering::Release);
        std::sync::atomic::fence(Ordering::SeqCst);
    }

    /// Asks for another wake-up when completions are left over (a drain
    /// that stopped early so the loop can run other watchers).
    pub fn rewake(&self) {
        if !self.rx.is_empty() && !self.wake.pending.swap(true, Ordering::AcqRel) {
            let _ = (&self.wake.write).write(&[1u8]);
        }
    }

    /// Whether completions wait to be delivered.
    pub fn has_completions(&self) -> bool {
        !self.rx.is_empty()
    }

    pub fn try_next(&self) -> Option<Completion> {
        self.rx.try_recv().ok()
    }
}
