//! Keeps the order of a watch and the calls made after it: a unary call
//! made while a watch created before it is not yet created on the server
//! is held until it is. A program that creates a watch and then puts a key
//! it watches sees that put, in either I/O mode (the watch stream and the
//! call travel separately, and the put could otherwise be applied first).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// The gate as the layers below the client see it: the watch front door
/// and hub, and `Shared::send`, which lets a watch's first answer through.
pub trait WatchOrder: Send + Sync {
    /// Watch `id` is being created: calls made from now on wait for it.
    fn await_watch(&self, id: u64);
    /// Watch `id` was answered (created, refused or ended), or cancelled.
    fn settle(&self, id: u64);
    /// The watch stream failed: nothing is awaited any more.
    fn settle_all(&self);
    /// How many calls are held.
    fn held(&self) -> usize;
}

impl<T: Send> WatchOrder for CallGate<T> {
    fn await_watch(&self, id: u64) {
        CallGate::await_watch(self, id)
    }
    fn settle(&self, id: u64) {
        CallGate::settle(self, id)
    }
    fn settle_all(&self) {
        CallGate::settle_all(self)
    }
    fn held(&self) -> usize {
        CallGate::held(self)
    }
}

pub struct CallGate<T> {
    /// True while a watch is awaited or calls are held: the fast path of
    /// every call reads only this.
    closed: AtomicBool,
    state: Mutex<State<T>>,
    /// Where a call goes when it may pass (the calls are started in the
    /// order this is called).
    start: Box<dyn Fn(T) + Send + Sync>,
}

struct State<T> {
    /// Completion ids of the watches being created.
    awaited: HashSet<u64>,
    held: Vec<T>,
}

impl<T> CallGate<T> {
    pub fn new(start: impl Fn(T) + Send + Sync + 'static) -> Self {
        CallGate {
            closed: AtomicBool::new(false),
            state: Mutex::new(State {
                awaited: HashSet::new(),
                held: Vec::new(),
            }),
            start: Box::new(start),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Watch `id` is being created: calls made from now on wait for it.
    pub fn await_watch(&self, id: u64) {
        self.lock().awaited.insert(id);
        self.closed.store(true, Ordering::Release);
    }

    /// Starts `call`, or holds it behind the watches awaited.
    pub fn pass(&self, call: T) {
        if !self.closed.load(Ordering::Acquire) {
            return (self.start)(call);
        }
        let mut s = self.lock();
        if s.awaited.is_empty() && s.held.is_empty() {
            // (Under the lock: a release in progress starts its calls first.)
            (self.start)(call);
        } else {
            s.held.push(call);
        }
    }

    /// Watch `id` was answered (created, refused or ended), or cancelled:
    /// when no other is awaited, the held calls start.
    pub fn settle(&self, id: u64) {
        if !self.closed.load(Ordering::Acquire) {
            return;
        }
        let mut s = self.lock();
        if s.awaited.remove(&id) {
            self.release(&mut s);
        }
    }

    /// The watch stream failed: the held calls go now rather than wait
    /// out its reconnection (the order cannot be kept across a failure).
    pub fn settle_all(&self) {
        if !self.closed.load(Ordering::Acquire) {
            return;
        }
        let mut s = self.lock();
        s.awaited.clear();
        self.release(&mut s);
    }

    fn release(&self, s: &mut State<T>) {
        if !s.awaited.is_empty() {
            return;
        }
        for call in s.held.drain(..) {
            (self.start)(call);
        }
        self.closed.store(false, Ordering::Release);
    }

    /// How many calls are held.
    pub fn held(&self) -> usize {
        if !self.closed.load(Ordering::Acquire) {
            return 0;
        }
        self.lock().held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn gate() -> (CallGate<u32>, Arc<Mutex<Vec<u32>>>) {
        let started = Arc::new(Mutex::new(Vec::new()));
        let sink = started.clone();
        (
            CallGate::new(move |c| sink.lock().unwrap().push(c)),
            started,
        )
    }

    #[test]
    fn calls_after_a_watch_wait_for_it_and_keep_their_order() {
        let (g, started) = gate();
        g.pass(1);
        g.await_watch(10);
        g.pass(2);
        g.await_watch(11);
        g.pass(3);
        assert_eq!(*started.lock().unwrap(), vec![1]);
        assert_eq!(g.held(), 2);
        g.settle(10);
        assert_eq!(*started.lock().unwrap(), vec![1], "still awaiting 11");
        g.settle(99);
        g.settle(11);
        assert_eq!(*started.lock().unwrap(), vec![1, 2, 3]);
        g.pass(4);
        assert_eq!(*started.lock().unwrap(), vec![1, 2, 3, 4]);
        assert_eq!(g.held(), 0);
    }

    #[test]
    fn a_failed_stream_releases_everything() {
        let (g, started) = gate();
        g.await_watch(1);
        g.await_watch(2);
        g.pass(7);
        g.settle_all();
        assert_eq!(*started.lock().unwrap(), vec![7]);
        g.settle(1);
        g.pass(8);
        assert_eq!(*started.lock().unwrap(), vec![7, 8]);
    }
}
