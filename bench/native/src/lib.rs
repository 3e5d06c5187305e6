//! What the two Rust benchmark clients share with each other and with the
//! Perl client (bench/compare-client.pl): workload sizes, key names, the
//! value every key must hold, statistics, CPU time and the one JSON line a
//! run prints. Change a size or a name here and there together.

use std::time::{Duration, Instant};

pub const WORKLOADS: &[&str] = &[
    "seq_put",
    "seq_get",
    "pipe_put",
    "pipe_get",
    "watch_latency",
    "big_range",
    "many_watch",
];

pub const OPS: usize = 5_000;
pub const WINDOW: usize = 100;
pub const VALUE_SIZE: usize = 100;
pub const GET_KEYS: usize = 100;
pub const WATCH_PUTS: usize = 200;
pub const RANGE_KEYS: usize = 10_000;
pub const RANGE_GETS: usize = 20;
pub const MANY_WATCHES: usize = 1_000;

/// Longest a run may wait for anything before it fails.
pub const STALL: Duration = Duration::from_secs(60);

/// Preloaded by the driver (bench/compare.pl): GET_KEYS keys for the get
/// workloads and RANGE_KEYS keys for big_range.
pub fn get_key(i: usize) -> String {
    format!("/bench/get/{:03}", i % GET_KEYS)
}
pub const RANGE_PREFIX: &str = "/bench/range/";
pub const RANGE_END: &str = "/bench/range0";
pub fn range_key(i: usize) -> String {
    format!("/bench/range/{i:05}")
}

/// Keys a run writes live under its own scratch prefix (the driver deletes
/// /bench/scratch/ between runs).
pub fn scratch(tag: &str, what: &str, i: usize) -> String {
    format!("/bench/scratch/{tag}/{what}/{i:05}")
}

/// The VALUE_SIZE-byte value derived from `seed`: "seed|" repeated, cut.
/// Preloaded keys hold value(key); a put workload writes value(key); the
/// watch workloads write value("key#phase#n").
pub fn value(seed: &str) -> Vec<u8> {
    let s = format!("{seed}|");
    let mut v = s.repeat(VALUE_SIZE / s.len() + 1).into_bytes();
    v.truncate(VALUE_SIZE);
    v
}

/// Command line of a client: --endpoint HOST:PORT --workload NAME --tag T
pub struct Args {
    pub endpoint: String,
    pub workload: String,
    pub tag: String,
}

pub fn args() -> Args {
    let mut a = Args {
        endpoint: String::new(),
        workload: String::new(),
        tag: "x".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it
            .next()
            .unwrap_or_else(|| fail(&format!("{k} needs a value")));
        match k.as_str() {
            "--endpoint" => a.endpoint = v,
            "--workload" => a.workload = v,
            "--tag" => a.tag = v,
            _ => fail(&format!("unknown argument {k}")),
        }
    }
    if a.endpoint.is_empty() || !WORKLOADS.contains(&a.workload.as_str()) {
        fail("usage: --endpoint HOST:PORT --workload NAME [--tag T]");
    }
    a
}

/// Reports a failed run: a message on stderr and exit status 1.
pub fn fail(msg: &str) -> ! {
    eprintln!("FAIL: {msg}");
    std::process::exit(1)
}

/// Like `assert!`, but ends the run through `fail`.
#[macro_export]
macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            $crate::fail(&format!($($fmt)+));
        }
    };
}

/// user+sys CPU time of this process (all threads) in microseconds,
/// from getrusage(RUSAGE_SELF).
pub fn cpu_us() -> u64 {
    // SAFETY: getrusage writes one struct rusage into the zeroed buffer.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        fail("getrusage failed");
    }
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Wall clock and CPU time around the timed part of a run.
pub struct Meter {
    t0: Instant,
    c0: u64,
}

impl Meter {
    pub fn start() -> Self {
        let c0 = cpu_us();
        Meter {
            t0: Instant::now(),
            c0,
        }
    }

    pub fn stop(self) -> (f64, u64) {
        let wall = self.t0.elapsed().as_secs_f64();
        (wall, cpu_us() - self.c0)
    }
}

/// Nearest-rank percentile of sorted seconds, in milliseconds.
pub fn pct_ms(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] * 1000.0
}

/// The result of one run, printed as one JSON line on stdout.
pub struct Report<'a> {
    pub client: &'a str,
    pub workload: &'a str,
    /// Operations the rate counts (puts, gets, keys read, events).
    pub ops: usize,
    pub unit: &'a str,
    pub wall_s: f64,
    pub cpu_us: u64,
    /// Per-operation latencies in seconds (may be empty).
    pub lat: Vec<f64>,
    /// Overrides ops/wall (watch_latency: 1 / mean latency).
    pub rate: Option<f64>,
    /// Responses, events and values checked.
    pub checked: usize,
}

impl Report<'_> {
    pub fn print(mut self) {
        self.lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let rate = self.rate.unwrap_or(self.ops as f64 / self.wall_s);
        let lat = if self.lat.is_empty() {
            "null".to_string()
        } else {
            let mean = self.lat.iter().sum::<f64>() / self.lat.len() as f64;
            format!(
                "{{\"n\":{},\"p50_ms\":{:.4},\"p99_ms\":{:.4},\"mean_ms\":{:.4},\"max_ms\":{:.4}}}",
                self.lat.len(),
                pct_ms(&self.lat, 50.0),
                pct_ms(&self.lat, 99.0),
                mean * 1000.0,
                self.lat[self.lat.len() - 1] * 1000.0
            )
        };
        println!(
            "{{\"client\":\"{}\",\"workload\":\"{}\",\"ops\":{},\"unit\":\"{}\",\"wall_s\":{:.6},\"ops_per_s\":{:.1},\"cpu_us\":{},\"cpu_us_per_op\":{:.3},\"latency\":{},\"checked\":{}}}",
            self.client,
            self.workload,
            self.ops,
            self.unit,
            self.wall_s,
            rate,
            self.cpu_us,
            self.cpu_us as f64 / self.ops as f64,
            lat,
            self.checked
        );
    }
}
