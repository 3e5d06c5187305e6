//! Client (c) of bench/compare.sh: the etcd-client crate, used the plain
//! idiomatic way on a tokio current_thread runtime (one thread): KvClient
//! put/get awaited one by one, or a JoinSet of tasks for the pipelined
//! workloads; watches through WatchClient streams (one stream carrying all
//! watches in many_watch, as the etcd-client docs suggest).

use etcd_client::{Client, EventType, GetOptions, KvClient, WatchResponse, WatchStream};
use ev_etcd_bench::*;
use std::collections::HashMap;
use std::time::Instant;
use tokio::task::JoinSet;

const CLIENT: &str = "native";

fn fail_on<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| fail(&format!("{what}: {e}")))
}

async fn stall<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(STALL, f).await {
        Ok(v) => v,
        Err(_) => fail(&format!("{what}: nothing for {} s", STALL.as_secs())),
    }
}

fn check_put(r: &etcd_client::PutResponse, last_rev: &mut i64) {
    let rev = r.header().map_or(0, |h| h.revision());
    check!(rev > 0, "put reply without a revision");
    *last_rev = (*last_rev).max(rev);
}

fn check_get(r: &etcd_client::GetResponse, key: &str) {
    let kvs = r.kvs();
    check!(kvs.len() == 1, "get {key}: {} kvs, expected 1", kvs.len());
    check!(kvs[0].key() == key.as_bytes(), "get {key}: wrong key");
    check!(kvs[0].value() == value(key), "get {key}: wrong value");
}

fn check_event(r: &WatchResponse, key: &str, val: &[u8], what: &str) {
    check!(
        !r.created() && !r.canceled(),
        "{what}: unexpected created/canceled message"
    );
    let evs = r.events();
    check!(
        evs.len() == 1,
        "{what}: {} events in one message, expected 1",
        evs.len()
    );
    check!(
        evs[0].event_type() == EventType::Put,
        "{what}: event is not a PUT"
    );
    let kv = evs[0].kv().unwrap_or_else(|| fail("event without kv"));
    check!(
        kv.key() == key.as_bytes(),
        "{what}: event for the wrong key"
    );
    check!(kv.value() == val, "{what}: event with the wrong value");
}

async fn next_message(ws: &mut WatchStream, what: &str) -> WatchResponse {
    match stall(what, ws.message()).await {
        Ok(Some(m)) => m,
        Ok(None) => fail(&format!("{what}: watch stream ended")),
        Err(e) => fail(&format!("{what}: {e}")),
    }
}

type Task<T> = (usize, Instant, Result<T, etcd_client::Error>);

/// `n` operations with at most `window` in flight, each a task of a
/// JoinSet; `start(kv, i)` makes operation i, `done(i, reply)` checks it.
async fn windowed<T, F>(
    kv: &KvClient,
    n: usize,
    window: usize,
    start: impl Fn(KvClient, usize) -> F,
    mut done: impl FnMut(usize, T),
    lat: &mut Vec<f64>,
) where
    T: Send + 'static,
    F: std::future::Future<Output = Result<T, etcd_client::Error>> + Send + 'static,
{
    let mut set: JoinSet<Task<T>> = JoinSet::new();
    let spawn = |set: &mut JoinSet<Task<T>>, i: usize| {
        let t0 = Instant::now();
        let f = start(kv.clone(), i);
        set.spawn(async move { (i, t0, f.await) });
    };
    let mut issued = 0;
    while issued < n.min(window) {
        spawn(&mut set, issued);
        issued += 1;
    }
    while let Some(j) = stall("call", set.join_next()).await {
        let (i, t0, r) = fail_on(j, "task");
        lat.push(t0.elapsed().as_secs_f64());
        done(i, fail_on(r, "call"));
        if issued < n {
            spawn(&mut set, issued);
            issued += 1;
        }
    }
}

async fn run(a: Args) {
    let client = fail_on(
        Client::connect([a.endpoint.as_str()], None).await,
        "connect",
    );
    let mut kv = client.kv_client();
    let tag = format!("{CLIENT}-{}", a.tag);

    // Untimed: connect and make one round trip.
    let r = fail_on(kv.get(get_key(0), None).await, "warm-up");
    check_get(&r, &get_key(0));

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
                let v = value(&key);
                let r = fail_on(stall("put", kv.put(key, v, None)).await, "put");
                lat.push(t0.elapsed().as_secs_f64());
                check_put(&r, &mut rev);
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
                let r = fail_on(stall("get", kv.get(key.as_str(), None)).await, "get");
                lat.push(t0.elapsed().as_secs_f64());
                check_get(&r, &key);
                checked += 1;
            }
            let (w, c) = m.stop();
            (OPS, "op", w, c)
        }
        "pipe_put" => {
            let mut rev = 0;
            let m = Meter::start();
            windowed(
                &kv,
                OPS,
                WINDOW,
                |mut kv, i| {
                    let key = scratch(&tag, "put", i);
                    let v = value(&key);
                    async move { kv.put(key, v, None).await }
                },
                |_, r| {
                    check_put(&r, &mut rev);
                    checked += 1;
                },
                &mut lat,
            )
            .await;
            let (w, c) = m.stop();
            (OPS, "op", w, c)
        }
        "pipe_get" => {
            let m = Meter::start();
            windowed(
                &kv,
                OPS,
                WINDOW,
                |mut kv, i| async move { kv.get(get_key(i), None).await },
                |i, r| {
                    check_get(&r, &get_key(i));
                    checked += 1;
                },
                &mut lat,
            )
            .await;
            let (w, c) = m.stop();
            (OPS, "op", w, c)
        }
        "watch_latency" => {
            let key = scratch(&tag, "watch", 0);
            let mut wc = client.watch_client();
            let mut ws = fail_on(wc.watch(key.as_str(), None).await, "watch");
            let r = next_message(&mut ws, "watch create").await;
            check!(r.created(), "watch: first message is not 'created'");
            let mut rev = 0;
            let m = Meter::start();
            for i in 0..WATCH_PUTS {
                let val = value(&format!("{key}#lat#{i}"));
                let t0 = Instant::now();
                let (put, (ev, at)) = stall("watch_latency", async {
                    tokio::join!(kv.put(key.as_str(), val.clone(), None), async {
                        let m = next_message(&mut ws, "watch").await;
                        (m, Instant::now())
                    })
                })
                .await;
                lat.push((at - t0).as_secs_f64());
                check_put(&fail_on(put, "put"), &mut rev);
                check_event(&ev, &key, &val, "watch");
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
                let opts = GetOptions::new().with_range(RANGE_END);
                let r = fail_on(
                    stall("range", kv.get(RANGE_PREFIX, Some(opts))).await,
                    "range",
                );
                lat.push(t0.elapsed().as_secs_f64());
                check!(r.count() == RANGE_KEYS as i64, "range: wrong count");
                let kvs = r.kvs();
                check!(
                    kvs.len() == RANGE_KEYS,
                    "range: {} kvs, expected {RANGE_KEYS}",
                    kvs.len()
                );
                for (i, kv) in kvs.iter().enumerate() {
                    check!(kv.key() == &keys[i][..], "range: wrong key at {i}");
                    check!(kv.value() == &vals[i][..], "range: wrong value at {i}");
                }
                checked += kvs.len();
            }
            let (w, c) = m.stop();
            (RANGE_GETS * RANGE_KEYS, "key", w, c)
        }
        "many_watch" => {
            let keys: Vec<String> = (0..MANY_WATCHES).map(|i| scratch(&tag, "mw", i)).collect();
            let mut wc = client.watch_client();
            // One stream for all of them: the first watch opens it, the
            // others are added to it.
            let mut ws = fail_on(wc.watch(keys[0].as_str(), None).await, "watch");
            for k in &keys[1..] {
                fail_on(ws.watch(k.as_str(), None).await, "watch");
            }
            // Creates are answered in order: the i-th created is key i.
            let mut of_wid: HashMap<i64, usize> = HashMap::with_capacity(MANY_WATCHES);
            while of_wid.len() < MANY_WATCHES {
                let r = next_message(&mut ws, "watch create").await;
                check!(r.created() && !r.canceled(), "watch: not created");
                check!(
                    of_wid.insert(r.watch_id(), of_wid.len()).is_none(),
                    "watch_id {} twice",
                    r.watch_id()
                );
            }
            let mut rev = 0;
            let mut round = async |phase: &str, lat: &mut Vec<f64>| {
                let vals: Vec<Vec<u8>> = keys
                    .iter()
                    .map(|k| value(&format!("{k}#{phase}")))
                    .collect();
                let mut sent_at = vec![None::<Instant>; MANY_WATCHES];
                let mut seen = vec![false; MANY_WATCHES];
                let mut set: JoinSet<Result<etcd_client::PutResponse, etcd_client::Error>> =
                    JoinSet::new();
                let (mut issued, mut acked, mut events) = (0, 0, 0);
                let spawn = |set: &mut JoinSet<_>, i: usize, sent_at: &mut Vec<_>| {
                    let mut kv = kv.clone();
                    let (k, v) = (keys[i].clone(), vals[i].clone());
                    sent_at[i] = Some(Instant::now());
                    set.spawn(async move { kv.put(k, v, None).await });
                };
                while issued < WINDOW {
                    spawn(&mut set, issued, &mut sent_at);
                    issued += 1;
                }
                while acked < MANY_WATCHES || events < MANY_WATCHES {
                    tokio::select! {
                        Some(j) = set.join_next() => {
                            check_put(&fail_on(fail_on(j, "task"), "put"), &mut rev);
                            acked += 1;
                            if issued < MANY_WATCHES {
                                spawn(&mut set, issued, &mut sent_at);
                                issued += 1;
                            }
                        }
                        m = next_message(&mut ws, "watch") => {
                            let Some(&i) = of_wid.get(&m.watch_id()) else {
                                fail("event for an unknown watch_id")
                            };
                            check!(!seen[i], "watch {i}: a second event");
                            let t0 = sent_at[i].unwrap_or_else(|| fail("event before its put"));
                            lat.push(t0.elapsed().as_secs_f64());
                            check_event(&m, &keys[i], &vals[i], "watch");
                            seen[i] = true;
                            events += 1;
                        }
                    }
                }
                acked + events
            };
            let mut warm = Vec::new();
            round("warm", &mut warm).await;
            let m = Meter::start();
            checked += round("timed", &mut lat).await;
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
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("runtime: {e}")));
    rt.block_on(run(a));
}
