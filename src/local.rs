//! The runtime of unary calls and watches: a tokio current-thread runtime
//! on the Perl thread, run for a moment each time the EV loop says it has
//! work.
//!
//! A call that crosses to the client's background thread and back pays two
//! thread wake-ups that a single-threaded client does not, and on small
//! virtual machines a wake-up costs more than the whole round trip's own
//! work; so does every watch event read on that thread. Unary calls and
//! the watch stream therefore run here: the XS side watches this runtime's
//! epoll descriptor with EV and calls `drive` when it is readable, when a
//! call was made, and on a timer while calls are in flight or watches are
//! open (tokio's timers are not visible to EV). Lease keepalives, observe
//! and snapshots stay on the background thread, so a lease is kept alive
//! while Perl is busy.
//!
//! tokio does not expose its epoll descriptor: it is found as the epoll
//! instance that building the runtime added to /proc/self/fd. Where that is
//! not clear-cut, there is no local runtime and calls go to the background
//! thread as before. This file is built on Linux only; other systems get
//! `local_none.rs`, which has no local runtime at all.

use std::cell::Cell;
use std::collections::HashSet;
use std::future::Future;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

thread_local! {
    /// True while a local runtime runs its tasks on this thread: they use
    /// the channels made for it (see `Shared::connection`).
    static DRIVING: Cell<bool> = const { Cell::new(false) };
}

/// Whether the caller runs inside `PerlRuntime::drive`.
pub fn driving() -> bool {
    DRIVING.with(Cell::get)
}

/// Sets DRIVING for its lifetime, a panic included.
struct Driving;

impl Driving {
    fn start() -> Driving {
        DRIVING.with(|d| d.set(true));
        Driving
    }
}

impl Drop for Driving {
    fn drop(&mut self) {
        DRIVING.with(|d| d.set(false));
    }
}

/// Counts the times the runtime's park hook found nothing left to run.
#[derive(Default)]
struct Idle {
    reached: AtomicU32,
    waker: Mutex<Option<Waker>>,
}

impl Idle {
    fn signal(&self) {
        self.reached.fetch_add(1, Ordering::AcqRel);
        if let Some(w) = self.waker.lock().unwrap_or_else(|p| p.into_inner()).take() {
            w.wake();
        }
    }
}

/// Ready once the runtime has been idle `times` times. Each time, tokio
/// then polls its I/O and timers once more without waiting, and what that
/// wakes runs only in a later round: a second round runs the tasks of
/// timers that had expired before the drive.
struct UntilIdle<'a> {
    idle: &'a Idle,
    times: u32,
}

impl Future for UntilIdle<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.idle.reached.load(Ordering::Acquire) >= self.times {
            return Poll::Ready(());
        }
        *self.idle.waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// The longest one drive runs before the loop gets its turn: reading a
/// backlog in one go (a watch far behind, megabytes waiting on the socket)
/// would hold up the program's timers and other I/O for as long as it
/// takes. tokio checks its timers every few dozen task polls even while
/// busy, so the drive ends soon after.
const DRIVE_BUDGET: std::time::Duration = std::time::Duration::from_millis(10);

pub struct PerlRuntime {
    rt: tokio::runtime::Runtime,
    epoll: RawFd,
    idle: Arc<Idle>,
}

/// The epoll instances among this process's open descriptors.
fn epoll_fds() -> Option<HashSet<RawFd>> {
    let mut found = HashSet::new();
    for entry in std::fs::read_dir("/proc/self/fd").ok()? {
        let entry = entry.ok()?;
        let link = std::fs::read_link(entry.path()).unwrap_or_default();
        if link.as_os_str() == "anon_inode:[eventpoll]" {
            if let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
                found.insert(fd);
            }
        }
    }
    Some(found)
}

/// Whether epoll instance `fd` has events waiting (without taking them).
fn has_events(fd: RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, a zero timeout; nothing is kept.
    unsafe { libc::poll(&mut p, 1, 0) > 0 }
}

impl PerlRuntime {
    /// A runtime for the calling (Perl) thread, or None when its epoll
    /// descriptor cannot be told apart. Another thread making an epoll
    /// instance at the same moment (a client starting elsewhere) makes
    /// the difference ambiguous: then it tries again, a few times.
    pub fn new() -> Option<PerlRuntime> {
        (0..5).find_map(|_| Self::try_new())
    }

    fn try_new() -> Option<PerlRuntime> {
        let before = epoll_fds()?;
        let idle = Arc::new(Idle::default());
        let epoll = Arc::new(std::sync::atomic::AtomicI32::new(-1));
        let (hook_idle, hook_epoll) = (idle.clone(), epoll.clone());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .on_thread_park(move || {
                // Events already waiting would wake tokio at once: let it
                // take them. Otherwise it is idle, and `drive` returns.
                let fd = hook_epoll.load(Ordering::Relaxed);
                if fd < 0 || !has_events(fd) {
                    hook_idle.signal();
                }
            })
            .build()
            .ok()?;
        // tokio keeps two descriptors of its one epoll instance (mio's
        // and a duplicate for registrations): they must describe the same
        // instance, which /proc shows as the same fdinfo.
        let after = epoll_fds()?;
        let new: Vec<RawFd> = after.difference(&before).copied().collect();
        let info = |fd: &RawFd| std::fs::read(format!("/proc/self/fdinfo/{fd}")).ok();
        let first = info(new.first()?)?;
        if new.iter().any(|fd| info(fd).as_ref() != Some(&first)) {
            return None;
        }
        let fd = *new.iter().min()?;
        epoll.store(fd, Ordering::Relaxed);
        Some(PerlRuntime {
            rt,
            epoll: fd,
            idle,
        })
    }

    /// For spawning the tasks that live here (the watch hub).
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.rt.handle().clone()
    }

    /// The descriptor EV watches: readable when the runtime has I/O or a
    /// wake-up from another thread to handle.
    pub fn fd(&self) -> RawFd {
        self.epoll
    }

    /// Starts `spawn` and runs every task until none can go on without
    /// waiting; with `timers`, also the tasks of expired timers. Never
    /// blocks, and returns after DRIVE_BUDGET at the latest: true when it
    /// stopped there with work left (drive again soon).
    pub fn drive(&self, spawn: impl FnOnce(), timers: bool) -> bool {
        self.idle.reached.store(0, Ordering::Release);
        let _driving = Driving::start();
        self.rt.block_on(async {
            spawn();
            let idle = UntilIdle {
                idle: &self.idle,
                times: 1 + u32::from(timers),
            };
            tokio::select! {
                biased;
                () = idle => false,
                () = tokio::time::sleep(DRIVE_BUDGET) => true,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_its_epoll_descriptor() {
        let before = epoll_fds().expect("/proc/self/fd is readable");
        let local = PerlRuntime::new().expect("a local runtime");
        assert!(!before.contains(&local.fd()));
        assert_eq!(
            std::fs::read_link(format!("/proc/self/fd/{}", local.fd()))
                .unwrap()
                .as_os_str(),
            "anon_inode:[eventpoll]"
        );
    }
}
