//! Client (b) of bench/compare.sh: the project's Rust core with no Perl.
//!
//! It drives `ev_etcd` through exactly the C ABI the XS layer uses
//! (evetcd_new / _call / _watch / _fd / _ack / _next / _local_fd / _drive),
//! on one thread, the way xs-glue/Etcd.xs does from the EV loop: calls made
//! while draining start together after the drain (evetcd_drive), the local
//! runtime is driven whenever its fd is readable and every millisecond while
//! calls are unanswered; when the completion fd becomes readable (poll(2)),
//! acknowledge, then drain every completion with
//! evetcd_next, which builds each reply through a builder vtable. Here that
//! vtable builds an owned Rust tree (`Node`) instead of Perl hashes, so the
//! conversion cost is paid as in Perl, and the checks read values back out
//! of that tree. Requests are protobuf bodies encoded with prost from the
//! crate's own generated types, as the XS encoders produce them.

use ev_etcd::ffi::{
    evetcd_ack, evetcd_call, evetcd_drive, evetcd_fd, evetcd_free, evetcd_local_fd, evetcd_new,
    evetcd_next, evetcd_watch, EvetcdConfig, EvetcdWatchRequest,
};
use ev_etcd::perl::{BuilderVtable, Key, REPLY_KEYS};
use ev_etcd::proto::etcdserverpb::{PutRequest, RangeRequest};
use ev_etcd::client::Client;
use ev_etcd::services::kv::KvMethod as Method;
use ev_etcd_bench::*;
use prost::Message;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void};
use std::time::Instant;

const CLIENT: &str = "core";

// ---- the reply tree and the builder vtable ----

/// A reply as the builder makes it: what XS makes of it in Perl, as Rust data.
pub enum Node {
    Hash(Vec<(&'static [u8], Node)>),
    Array(Vec<Node>),
    Bytes(Vec<u8>),
    Int(i64),
    UInt(u64),
}

impl Node {
    fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Hash(fields) => fields
                .iter()
                .find(|(k, _)| **k == *key.as_bytes())
                .map(|(_, v)| v),
            _ => None,
        }
    }
    fn path(&self, keys: &[&str]) -> Option<&Node> {
        keys.iter().try_fold(self, |n, k| n.get(k))
    }
    fn int(&self) -> Option<i64> {
        match self {
            Node::Int(v) => Some(*v),
            Node::UInt(v) => i64::try_from(*v).ok(),
            _ => None,
        }
    }
    fn bytes(&self) -> Option<&[u8]> {
        match self {
            Node::Bytes(b) => Some(b),
            _ => None,
        }
    }
    fn array(&self) -> Option<&[Node]> {
        match self {
            Node::Array(a) => Some(a),
            _ => None,
        }
    }
    fn int_at(&self, keys: &[&str]) -> i64 {
        self.path(keys).and_then(Node::int).unwrap_or(-1)
    }
    fn bytes_at(&self, keys: &[&str]) -> &[u8] {
        self.path(keys).and_then(Node::bytes).unwrap_or(b"")
    }
    fn array_at(&self, key: &str) -> &[Node] {
        self.get(key).and_then(Node::array).unwrap_or(&[])
    }
}

unsafe fn bytes_of<'a>(p: *const c_char, len: usize) -> &'a [u8] {
    if len == 0 {
        &[]
    } else {
        // SAFETY: the core passes `len` readable bytes at `p`.
        unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) }
    }
}

fn new_node(n: Node) -> *mut c_void {
    Box::into_raw(Box::new(n)).cast()
}

/// Takes back ownership of a handle the builder handed out.
unsafe fn take(h: *mut c_void) -> Node {
    // SAFETY: every handle is a Box<Node> from new_node, given back once.
    *unsafe { Box::from_raw(h.cast::<Node>()) }
}

unsafe fn hash_put(hv: *mut c_void, key: Key, v: Node) {
    // SAFETY: hv is a live Hash handle from hv_new.
    match unsafe { &mut *hv.cast::<Node>() } {
        Node::Hash(fields) => fields.push((REPLY_KEYS[key.0 as usize].as_bytes(), v)),
        _ => std::process::abort(),
    }
}

unsafe fn array_push(av: *mut c_void, v: Node) {
    // SAFETY: av is a live Array handle from av_new.
    match unsafe { &mut *av.cast::<Node>() } {
        Node::Array(items) => items.push(v),
        _ => std::process::abort(),
    }
}

unsafe extern "C" fn b_hv_new(_: *mut c_void) -> *mut c_void {
    new_node(Node::Hash(Vec::new()))
}
unsafe extern "C" fn b_av_new(_: *mut c_void, cap: usize) -> *mut c_void {
    new_node(Node::Array(Vec::with_capacity(cap)))
}
unsafe extern "C" fn b_hv_bytes(
    _: *mut c_void,
    hv: *mut c_void,
    key: Key,
    v: *const c_char,
    vl: usize,
) {
    unsafe { hash_put(hv, key, Node::Bytes(bytes_of(v, vl).to_vec())) }
}
unsafe extern "C" fn b_hv_int(_: *mut c_void, hv: *mut c_void, key: Key, v: i64) {
    unsafe { hash_put(hv, key, Node::Int(v)) }
}
unsafe extern "C" fn b_hv_uint(_: *mut c_void, hv: *mut c_void, key: Key, v: u64) {
    unsafe { hash_put(hv, key, Node::UInt(v)) }
}
unsafe extern "C" fn b_hv_ref(_: *mut c_void, hv: *mut c_void, key: Key, child: *mut c_void) {
    unsafe { hash_put(hv, key, take(child)) }
}
unsafe extern "C" fn b_av_bytes(_: *mut c_void, av: *mut c_void, v: *const c_char, vl: usize) {
    unsafe { array_push(av, Node::Bytes(bytes_of(v, vl).to_vec())) }
}
unsafe extern "C" fn b_av_int(_: *mut c_void, av: *mut c_void, v: i64) {
    unsafe { array_push(av, Node::Int(v)) }
}
unsafe extern "C" fn b_av_ref(_: *mut c_void, av: *mut c_void, child: *mut c_void) {
    unsafe { array_push(av, take(child)) }
}
unsafe extern "C" fn b_hv_num(_: *mut c_void, hv: *mut c_void, key: Key, v: f64) {
    // Only on_request hashes carry floats; the benchmark sets no hook.
    unsafe { hash_put(hv, key, Node::Int(v as i64)) }
}

const VTABLE: BuilderVtable = BuilderVtable {
    ctx: std::ptr::null_mut(),
    hv_new: b_hv_new,
    av_new: b_av_new,
    hv_bytes: b_hv_bytes,
    hv_int: b_hv_int,
    hv_uint: b_hv_uint,
    hv_ref: b_hv_ref,
    av_bytes: b_av_bytes,
    av_int: b_av_int,
    av_ref: b_av_ref,
    hv_num: b_hv_num,
};

// ---- the client, as the XS layer holds it ----

struct Done {
    id: u64,
    /// 0 keep (stream message), 1 last, 2 drop.
    disposition: c_int,
    resp: Option<Node>,
    err: Option<Node>,
}

impl Done {
    /// The reply of a successful call; a failed one ends the run.
    fn ok(self, what: &str) -> Node {
        if let Some(e) = self.err {
            fail(&format!(
                "{what}: {} {}",
                String::from_utf8_lossy(e.bytes_at(&["status"])),
                String::from_utf8_lossy(e.bytes_at(&["message"]))
            ));
        }
        match self.resp {
            Some(r) => r,
            None => fail(&format!("{what}: completion without a reply")),
        }
    }
}

struct Core {
    c: *mut Client,
    fd: c_int,
    /// The local runtime's fd, or -1 (see src/local.rs).
    local_fd: c_int,
    /// Calls made since the last drive; unanswered local calls.
    queued: bool,
    unanswered: i64,
    /// How soon the local runtime wants driving again, in ms (-1: only
    /// when its fd says so); set while watches are open.
    next_ms: c_int,
    vt: BuilderVtable,
    next_id: u64,
}

impl Core {
    fn new(endpoint: &str) -> Core {
        let eps = [endpoint.as_ptr().cast::<c_char>()];
        let lens = [endpoint.len()];
        // The XS defaults of EV::Etcd->new.
        let cfg = EvetcdConfig {
            endpoints: eps.as_ptr(),
            endpoint_lens: lens.as_ptr(),
            n_endpoints: 1,
            ..EvetcdConfig::default()
        };
        let mut err = [0 as c_char; 512];
        // SAFETY: cfg and its arrays live across the call; err has its size.
        let c = unsafe { evetcd_new(&cfg, err.as_mut_ptr(), err.len()) };
        if c.is_null() {
            // SAFETY: evetcd_new wrote a NUL-terminated message.
            let msg = unsafe { std::ffi::CStr::from_ptr(err.as_ptr()) };
            fail(&format!("evetcd_new: {}", msg.to_string_lossy()));
        }
        // SAFETY: c is a live client.
        let fd = unsafe { evetcd_fd(c) };
        // SAFETY: c is a live client.
        let local_fd = unsafe { evetcd_local_fd(c) };
        Core {
            c,
            fd,
            local_fd,
            queued: false,
            unanswered: 0,
            next_ms: -1,
            vt: VTABLE,
            next_id: 0,
        }
    }

    fn call(&mut self, method: Method, body: &[u8]) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        // SAFETY: live client; body is readable for its length.
        let rc = unsafe {
            evetcd_call(
                self.c,
                id,
                method as u32,
                body.as_ptr().cast(),
                body.len(),
                -1.0, // the client's timeout
            )
        };
        check!(rc == 0, "{method:?}: evetcd_call returned {rc}");
        self.queued = true;
        id
    }

    /// Runs the local runtime until it would wait; `timers`: on the tick.
    fn drive(&mut self, timers: bool) {
        let mut next = -1.0;
        // SAFETY: live client, on the thread that made it; `next` writable.
        self.unanswered = unsafe { evetcd_drive(self.c, c_int::from(timers), &mut next) };
        check!(self.unanswered >= 0, "evetcd_drive failed");
        self.next_ms = if next >= 0.0 {
            (next * 1000.0) as c_int + 1
        } else {
            -1
        };
        self.queued = false;
    }

    fn put(&mut self, key: &str, value: Vec<u8>) -> u64 {
        let body = PutRequest {
            key: key.as_bytes().to_vec(),
            value,
            ..Default::default()
        }
        .encode_to_vec();
        self.call(Method::Put, &body)
    }

    fn get(&mut self, key: &str, range_end: &str) -> u64 {
        let body = RangeRequest {
            key: key.as_bytes().to_vec(),
            range_end: range_end.as_bytes().to_vec(),
            ..Default::default()
        }
        .encode_to_vec();
        self.call(Method::Get, &body)
    }

    fn watch(&mut self, key: &str) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        // As the XS side asks for a plain watch of one key.
        let req = EvetcdWatchRequest {
            key: key.as_ptr().cast(),
            key_len: key.len(),
            range_end: std::ptr::null(),
            range_end_len: 0,
            start_revision: 0,
            watch_id: 0,
            progress_notify: 0,
            prev_kv: 0,
            fragment: 1,
            no_put: 0,
            no_delete: 0,
        };
        // SAFETY: live client; req and the key it points at outlive the call.
        let rc = unsafe { evetcd_watch(self.c, id, &req, 1, 0) };
        check!(rc == 0, "watch: evetcd_watch returned {rc}");
        id
    }

    /// Waits until completions may be ready, the way the XS side does:
    /// starts the calls made so far, else blocks in poll(2) on the
    /// completion fd and the local runtime's fd (a millisecond at most
    /// while calls are unanswered) and drives the local runtime or
    /// acknowledges the wake-up. The caller then drains with `next`.
    /// Fails after STALL without any.
    fn wait(&mut self) {
        if self.queued && self.local_fd >= 0 {
            self.drive(false); // its completions need no wake-up
            return;
        }
        let started = Instant::now();
        loop {
            let mut p = [
                libc::pollfd {
                    fd: self.fd,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.local_fd,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            let ticking = self.unanswered > 0 || self.next_ms >= 0;
            let timeout = match (self.unanswered > 0, self.next_ms) {
                (true, _) => 1,
                (false, ms) if ms >= 0 => ms,
                _ => STALL.as_millis() as c_int,
            };
            // SAFETY: two valid pollfds (a negative fd is skipped).
            let n = unsafe { libc::poll(p.as_mut_ptr(), 2, timeout) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    fail(&format!("poll: {e}"));
                }
                continue;
            }
            if p[0].revents != 0 {
                // SAFETY: live client.
                unsafe { evetcd_ack(self.c) };
                return;
            }
            if p[1].revents != 0 || ticking {
                self.drive(p[1].revents == 0);
                return;
            }
            if started.elapsed() > STALL {
                fail(&format!("nothing completed for {} s", STALL.as_secs()));
            }
        }
    }

    fn next(&self) -> Option<Done> {
        let (mut id, mut disp) = (0u64, 0 as c_int);
        let (mut resp, mut err) = (std::ptr::null_mut(), std::ptr::null_mut());
        let mut info = std::ptr::null_mut();
        // SAFETY: live client, working builder, writable out-pointers.
        let got = unsafe {
            evetcd_next(
                self.c, &self.vt, &mut id, &mut disp, &mut resp, &mut err, &mut info,
            )
        };
        if got == 0 {
            return None;
        }
        // SAFETY: handles returned by evetcd_next are ours to own.
        let own = |h: *mut c_void| (!h.is_null()).then(|| unsafe { take(h) });
        drop(own(info));
        Some(Done {
            id,
            disposition: disp,
            resp: own(resp),
            err: own(err),
        })
    }

    /// Runs the loop until completion `id` arrives; nothing else may.
    /// Like every wake-up, drains the queue completely.
    fn wait_for(&mut self, id: u64, what: &str) -> Node {
        loop {
            self.wait();
            let mut got = None;
            while let Some(d) = self.next() {
                check!(
                    d.id == id && got.is_none(),
                    "{what}: unexpected completion {} (waiting for {id})",
                    d.id
                );
                got = Some(d);
            }
            if let Some(d) = got {
                return d.ok(what);
            }
        }
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        // SAFETY: the client is not used after this.
        unsafe { evetcd_free(self.c) };
    }
}

// ---- checks ----

fn check_put(r: &Node, last_rev: &mut i64, what: &str) {
    let rev = r.int_at(&["header", "revision"]);
    check!(rev > 0, "{what}: put reply without a revision");
    *last_rev = (*last_rev).max(rev);
}

fn check_get(r: &Node, key: &str) {
    let kvs = r.array_at("kvs");
    check!(kvs.len() == 1, "get {key}: {} kvs, expected 1", kvs.len());
    check!(
        kvs[0].bytes_at(&["key"]) == key.as_bytes(),
        "get {key}: wrong key"
    );
    check!(
        kvs[0].bytes_at(&["value"]) == value(key),
        "get {key}: wrong value"
    );
}

/// Checks a watch message that must carry exactly one PUT of key = value.
fn check_event(r: &Node, key: &str, val: &[u8], what: &str) {
    check!(
        r.int_at(&["created"]) == 0,
        "{what}: unexpected created message"
    );
    let evs = r.array_at("events");
    check!(
        evs.len() == 1,
        "{what}: {} events in one message, expected 1",
        evs.len()
    );
    check!(
        evs[0].bytes_at(&["type"]) == b"PUT",
        "{what}: event is not a PUT"
    );
    check!(
        evs[0].bytes_at(&["kv", "key"]) == key.as_bytes(),
        "{what}: event for the wrong key"
    );
    check!(
        evs[0].bytes_at(&["kv", "value"]) == val,
        "{what}: event with the wrong value"
    );
}

// ---- workloads ----

/// `n` operations with at most `window` in flight, refilled as replies come
/// in. `start(core, i)` starts operation i; `done(i, reply)` checks it.
fn windowed(
    core: &mut Core,
    n: usize,
    window: usize,
    mut start: impl FnMut(&mut Core, usize) -> u64,
    mut done: impl FnMut(usize, Node),
    lat: &mut Vec<f64>,
) {
    let mut inflight: HashMap<u64, (usize, Instant)> = HashMap::with_capacity(window);
    let mut issued = 0;
    let mut completed = 0;
    while issued < n && inflight.len() < window {
        let t0 = Instant::now();
        inflight.insert(start(core, issued), (issued, t0));
        issued += 1;
    }
    while completed < n {
        core.wait();
        while let Some(d) = core.next() {
            let Some((i, t0)) = inflight.remove(&d.id) else {
                fail(&format!("unexpected completion {}", d.id));
            };
            lat.push(t0.elapsed().as_secs_f64());
            done(i, d.ok("call"));
            completed += 1;
            if issued < n {
                let t0 = Instant::now();
                inflight.insert(start(core, issued), (issued, t0));
                issued += 1;
            }
        }
    }
}

fn main() {
    let a = args();
    let mut core = Core::new(&a.endpoint);
    let tag = format!("{CLIENT}-{}", a.tag);

    // Untimed: connect and make one round trip.
    let id = core.get(&get_key(0), "");
    check_get(&core.wait_for(id, "warm-up"), &get_key(0));

    let mut lat = Vec::new();
    let mut checked = 0usize;
    let mut rate = None;
    let (ops, unit, wall, cpu) = match a.workload.as_str() {
        "seq_put" => {
            let mut rev = 0;
            let m = Meter::start();
            for i in 0..OPS {
                let key = scratch(&tag, "put", i);
                let t0 = Instant::now();
                let id = core.put(&key, value(&key));
                let r = core.wait_for(id, "put");
                lat.push(t0.elapsed().as_secs_f64());
                check_put(&r, &mut rev, "put");
                checked += 1;
            }
            let (w, c) = m.stop();
            (OPS, "op", w, c)
        }
        "seq_get" => {
            let m = Meter::start();
            for i in 0..OPS {
                let key = get_key(i);
                let t0 = Instant::now();
                let id = core.get(&key, "");
                let r = core.wait_for(id, "get");
                lat.push(t0.elapsed().as_secs_f64());
                check_get(&r, &key);
                checked += 1;
            }
            let (w, c) = m.stop();
            (OPS, "op", w, c)
        }
        "pipe_put" => {
            let mut rev = 0;
            let t = tag.clone();
            let m = Meter::start();
            windowed(
                &mut core,
                OPS,
                WINDOW,
                |c, i| {
                    let key = scratch(&t, "put", i);
                    let v = value(&key);
                    c.put(&key, v)
                },
                |_, r| {
                    check_put(&r, &mut rev, "put");
                    checked += 1;
                },
                &mut lat,
            );
            let (w, c) = m.stop();
            (OPS, "op", w, c)
        }
        "pipe_get" => {
            let m = Meter::start();
            windowed(
                &mut core,
                OPS,
                WINDOW,
                |c, i| c.get(&get_key(i), ""),
                |i, r| {
                    check_get(&r, &get_key(i));
                    checked += 1;
                },
                &mut lat,
            );
            let (w, c) = m.stop();
            (OPS, "op", w, c)
        }
        "watch_latency" => {
            let key = scratch(&tag, "watch", 0);
            let wid = core.watch(&key);
            let r = core.wait_for(wid, "watch create");
            check!(
                r.int_at(&["created"]) == 1,
                "watch: first message is not 'created'"
            );
            let mut rev = 0;
            let m = Meter::start();
            for i in 0..WATCH_PUTS {
                let val = value(&format!("{key}#lat#{i}"));
                let t0 = Instant::now();
                let pid = core.put(&key, val.clone());
                let (mut acked, mut seen) = (false, false);
                while !(acked && seen) {
                    core.wait();
                    while let Some(d) = core.next() {
                        if d.id == pid && !acked {
                            check_put(&d.ok("put"), &mut rev, "put");
                            acked = true;
                        } else if d.id == wid && !seen {
                            lat.push(t0.elapsed().as_secs_f64());
                            check!(d.disposition == ev_etcd::ffi::EVETCD_KEEP, "watch ended");
                            check_event(&d.ok("watch"), &key, &val, "watch");
                            seen = true;
                        } else {
                            fail(&format!("unexpected completion {}", d.id));
                        }
                    }
                }
                checked += 2;
            }
            let (w, c) = m.stop();
            let mean = lat.iter().sum::<f64>() / lat.len() as f64;
            rate = Some(1.0 / mean);
            (WATCH_PUTS, "op", w, c)
        }
        "big_range" => {
            let keys: Vec<Vec<u8>> = (0..RANGE_KEYS).map(|i| range_key(i).into_bytes()).collect();
            let vals: Vec<Vec<u8>> = (0..RANGE_KEYS).map(|i| value(&range_key(i))).collect();
            let m = Meter::start();
            for _ in 0..RANGE_GETS {
                let t0 = Instant::now();
                let id = core.get(RANGE_PREFIX, RANGE_END);
                let r = core.wait_for(id, "range");
                lat.push(t0.elapsed().as_secs_f64());
                check!(
                    r.int_at(&["count"]) == RANGE_KEYS as i64,
                    "range: wrong count"
                );
                let kvs = r.array_at("kvs");
                check!(
                    kvs.len() == RANGE_KEYS,
                    "range: {} kvs, expected {RANGE_KEYS}",
                    kvs.len()
                );
                for (i, kv) in kvs.iter().enumerate() {
                    check!(
                        kv.bytes_at(&["key"]) == &keys[i][..],
                        "range: wrong key at {i}"
                    );
                    check!(
                        kv.bytes_at(&["value"]) == &vals[i][..],
                        "range: wrong value at {i}"
                    );
                }
                checked += kvs.len();
            }
            let (w, c) = m.stop();
            (RANGE_GETS * RANGE_KEYS, "key", w, c)
        }
        "many_watch" => {
            let keys: Vec<String> = (0..MANY_WATCHES).map(|i| scratch(&tag, "mw", i)).collect();
            let mut of_id: HashMap<u64, usize> = HashMap::with_capacity(MANY_WATCHES);
            for (i, k) in keys.iter().enumerate() {
                of_id.insert(core.watch(k), i);
            }
            let mut created = vec![false; MANY_WATCHES];
            let mut n_created = 0;
            while n_created < MANY_WATCHES {
                core.wait();
                while let Some(d) = core.next() {
                    let Some(&i) = of_id.get(&d.id) else {
                        fail("unexpected completion")
                    };
                    let r = d.ok("watch create");
                    check!(
                        r.int_at(&["created"]) == 1 && !created[i],
                        "watch {i}: not created"
                    );
                    created[i] = true;
                    n_created += 1;
                }
            }
            let mut rev = 0;
            // Both rounds: put every key once (WINDOW in flight) and wait
            // for every put's reply and every watch's event.
            let mut round = |core: &mut Core, phase: &str, lat: &mut Vec<f64>| {
                let vals: Vec<Vec<u8>> = keys
                    .iter()
                    .map(|k| value(&format!("{k}#{phase}")))
                    .collect();
                let mut sent_at = vec![None::<Instant>; MANY_WATCHES];
                let mut seen = vec![false; MANY_WATCHES];
                let mut puts: HashMap<u64, usize> = HashMap::with_capacity(WINDOW);
                let (mut issued, mut acked, mut events) = (0, 0, 0);
                while issued < WINDOW {
                    sent_at[issued] = Some(Instant::now());
                    puts.insert(core.put(&keys[issued], vals[issued].clone()), issued);
                    issued += 1;
                }
                while acked < MANY_WATCHES || events < MANY_WATCHES {
                    core.wait();
                    while let Some(d) = core.next() {
                        if puts.remove(&d.id).is_some() {
                            check_put(&d.ok("put"), &mut rev, "put");
                            acked += 1;
                            if issued < MANY_WATCHES {
                                sent_at[issued] = Some(Instant::now());
                                puts.insert(core.put(&keys[issued], vals[issued].clone()), issued);
                                issued += 1;
                            }
                        } else if let Some(&i) = of_id.get(&d.id) {
                            check!(!seen[i], "watch {i}: a second event");
                            let t0 = sent_at[i].unwrap_or_else(|| fail("event before its put"));
                            lat.push(t0.elapsed().as_secs_f64());
                            check_event(&d.ok("watch"), &keys[i], &vals[i], "watch");
                            seen[i] = true;
                            events += 1;
                        } else {
                            fail(&format!("unexpected completion {}", d.id));
                        }
                    }
                }
                acked + events
            };
            let mut warm = Vec::new();
            round(&mut core, "warm", &mut warm);
            let m = Meter::start();
            checked += round(&mut core, "timed", &mut lat);
            let (w, c) = m.stop();
            (MANY_WATCHES, "event", w, c)
        }
        _ => unreachable!(),
    };
    Report {
        client: CLIENT,
        workload: &a.workload,
        ops,
        unit,
        wall_s: wall,
        cpu_us: cpu,
        lat,
        rate,
        checked,
    }
    .print();
    drop(core);
}
