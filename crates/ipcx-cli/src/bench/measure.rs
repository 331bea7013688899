//! The measurements: round-trip latency into a histogram, one-way throughput in acked
//! batches, and the two single-process floors (a bare syscall, `memcpy`).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::Fallible;
use super::port::{ACK, Carries, DATA, PING, Port, QUIT};

/// How long a test runs: a number of round trips (or messages), or a time.
#[derive(Clone, Copy, Debug)]
pub enum Stop {
    /// Exactly this many round trips per latency test, messages per throughput test.
    Count(u64),
    /// This long per test.
    Time(Duration),
}

/// What to measure.
#[derive(Clone, Debug)]
pub struct Plan {
    /// How long each test runs.
    pub stop: Stop,
    /// The message sizes of the throughput tests.
    pub sizes: Vec<usize>,
    /// The size of a latency test's messages.
    pub ping: usize,
}

impl Plan {
    /// The largest message the bench sends.
    pub fn largest(&self) -> usize {
        self.sizes.iter().copied().max().unwrap_or(0).max(self.ping)
    }
}

/// When the bench last made progress, so a watchdog can tell a stalled peer from a slow
/// test.
#[derive(Debug)]
pub struct Heartbeat {
    origin: Instant,
    /// Milliseconds since `origin` at the last beat.
    last: AtomicU64,
}

impl Heartbeat {
    /// A heartbeat that beats now.
    pub fn new() -> Self {
        Heartbeat {
            origin: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    /// Records progress.
    pub fn beat(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last.store(ms, Ordering::Relaxed);
    }

    /// How long since the last beat.
    pub fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.origin.elapsed().saturating_sub(last)
    }
}

/// Round-trip latency percentiles, in nanoseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    /// The round trips measured (after the warm-up).
    pub iterations: u64,
    /// The bytes in each message (1 for links that carry no payload).
    pub message_bytes: usize,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub min_ns: u64,
    pub max_ns: u64,
    pub mean_ns: f64,
}

/// One-way throughput at one message size.
#[derive(Clone, Debug, Serialize)]
pub struct Throughput {
    pub size: usize,
    pub messages: u64,
    pub seconds: f64,
    /// Megabytes (10^6 bytes) per second.
    pub mb_per_s: f64,
    pub msgs_per_s: f64,
}

/// How often the latency loop records a heartbeat.
const BEAT_EVERY: u64 = 256;

fn histogram() -> Histogram<u64> {
    // 1 ns to 100 s at 3 significant figures: every value a round trip can take.
    Histogram::new_with_bounds(1, 100_000_000_000, 3)
        .unwrap_or_else(|e| unreachable!("constant histogram bounds are valid: {e}"))
}

/// How many slices the latency tests of several links are cut into, taking turns, so
/// that a machine whose speed drifts during the run (a VM, a CPU changing frequency)
/// treats them alike.
const SLICES: u64 = 10;

/// The transport's limit when it cannot carry the latency test's messages.
pub fn ping_limit(port: &dyn Port, plan: &Plan) -> Option<usize> {
    match port.carries() {
        Carries::Bytes { max } | Carries::Fixed { max, .. } if plan.ping > max => Some(max),
        _ => None,
    }
}

/// Measures round trips on each port: sends a ping, waits for its echo, records the
/// time. Several ports take turns, in [`SLICES`] slices each.
pub fn latencies(
    ports: &mut [&mut Box<dyn Port>],
    plan: &Plan,
    hb: &Heartbeat,
) -> Fallible<Vec<Latency>> {
    let mut links = Vec::new();
    for port in ports.iter_mut() {
        if let Some(max) = ping_limit(&***port, plan) {
            return Err(format!(
                "the latency messages ({} bytes, --ping-size) are above this transport's \
                 limit of {max} bytes",
                plan.ping
            )
            .into());
        }
        let len = port.carries().ping_len(plan.ping);
        let mut msg: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        msg[0] = PING;
        let mut buf = vec![0u8; port.recv_buffer(plan.ping)];
        // The first echo is checked byte for byte; the others by length and operation.
        port.send(&msg)?;
        let n = port.recv(&mut buf)?;
        if buf[..n] != msg[..] {
            return Err(format!(
                "the peer's echo differs from the ping ({n} bytes back for {len} sent)"
            )
            .into());
        }
        let warm = match plan.stop {
            Stop::Count(n) => Stop::Count((n / 10).max(10)),
            Stop::Time(d) => Stop::Time(d / 10),
        };
        round_trips(&mut ***port, &msg, &mut buf, warm, None, hb)?;
        links.push((msg, buf, histogram()));
    }
    let slices = if ports.len() > 1 { SLICES } else { 1 };
    for slice in 0..slices {
        let stop = match plan.stop {
            Stop::Count(n) => Stop::Count(n / slices + u64::from(slice < n % slices)),
            Stop::Time(d) => Stop::Time(d / slices as u32),
        };
        for (port, (msg, buf, hist)) in ports.iter_mut().zip(&mut links) {
            round_trips(&mut ***port, msg, buf, stop, Some(hist), hb)?;
        }
    }
    Ok(links
        .into_iter()
        .map(|(msg, _, hist)| Latency {
            iterations: hist.len(),
            message_bytes: msg.len(),
            p50_ns: hist.value_at_quantile(0.50),
            p99_ns: hist.value_at_quantile(0.99),
            p999_ns: hist.value_at_quantile(0.999),
            min_ns: hist.min(),
            max_ns: hist.max(),
            mean_ns: hist.mean(),
        })
        .collect())
}

fn round_trips(
    port: &mut dyn Port,
    msg: &[u8],
    buf: &mut [u8],
    stop: Stop,
    mut hist: Option<&mut Histogram<u64>>,
    hb: &Heartbeat,
) -> Fallible<()> {
    let started = Instant::now();
    let mut done: u64 = 0;
    loop {
        match stop {
            Stop::Count(n) if done >= n => return Ok(()),
            Stop::Time(d) if started.elapsed() >= d => return Ok(()),
            _ => {}
        }
        let t0 = Instant::now();
        port.send(msg)?;
        let n = port.recv(buf)?;
        let dt = t0.elapsed();
        if n != msg.len() || buf[0] != PING {
            return Err(format!(
                "protocol error: expected a {}-byte echo, got {n} bytes starting {:#04x}",
                msg.len(),
                buf[0]
            )
            .into());
        }
        if let Some(h) = hist.as_deref_mut() {
            h.saturating_record(u64::try_from(dt.as_nanos()).unwrap_or(u64::MAX).max(1));
        }
        done += 1;
        if done.is_multiple_of(BEAT_EVERY) {
            hb.beat();
        }
    }
}

/// How long the bench waits for the answer to a batch on a lossy transport.
const ACK_WAIT: Duration = Duration::from_secs(2);

/// Measures one-way throughput at `size`: batches of messages, the last of each asking
/// for a one-byte answer, so the time covers the peer receiving every byte.
pub fn throughput(
    port: &mut dyn Port,
    size: usize,
    plan: &Plan,
    hb: &Heartbeat,
) -> Fallible<Throughput> {
    let mut data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    data[0] = DATA;
    let mut last = data.clone();
    last[0] = ACK;
    let mut buf = vec![0u8; port.recv_buffer(plan.ping)];
    let max_batch = port.max_batch().max(1) as u64;

    let mut batch = 8.min(max_batch);
    let (warm, stop) = match plan.stop {
        Stop::Count(n) => (Stop::Count(batch.min(n)), Stop::Count(n)),
        Stop::Time(d) => (Stop::Time(d / 10), Stop::Time(d)),
    };
    for (phase, stop) in [(0, warm), (1, stop)] {
        let started = Instant::now();
        let mut sent: u64 = 0;
        loop {
            let this = match stop {
                Stop::Count(n) if sent >= n => break,
                Stop::Count(n) => batch.min(n - sent),
                Stop::Time(d) if started.elapsed() >= d && sent > 0 => break,
                Stop::Time(_) => batch,
            };
            let t0 = Instant::now();
            for _ in 1..this {
                port.send(&data)?;
            }
            port.send(&last)?;
            let n = port.recv_ack(&mut buf, ACK_WAIT)?;
            if n != 1 || buf[0] != ACK {
                return Err(format!(
                    "protocol error: expected a 1-byte answer to the batch, got {n} bytes"
                )
                .into());
            }
            sent += this;
            hb.beat();
            // Grow the batch until one takes a few milliseconds, so the answer's round
            // trip is a small part of the time.
            if t0.elapsed() < Duration::from_millis(2) {
                batch = (batch * 2).min(max_batch);
            }
        }
        if phase == 1 {
            let seconds = started.elapsed().as_secs_f64();
            return Ok(Throughput {
                size,
                messages: sent,
                seconds,
                mb_per_s: (sent as f64 * size as f64) / seconds / 1e6,
                msgs_per_s: sent as f64 / seconds,
            });
        }
    }
    unreachable!("the loop returns in its second phase")
}

/// Tells the peer to stop. Fixed-size links (the libc baselines) need a message of the
/// ping's size; the others take any.
pub fn quit(port: &mut dyn Port) -> Fallible<()> {
    let len = match port.carries() {
        // A message queue takes a shorter message whole; a stream needs the full size.
        Carries::Fixed { size, max } => size.min(max),
        Carries::Bytes { .. } | Carries::Signal => 1,
    };
    port.send(&vec![QUIT; len.max(1)])
}

/// The cost of one bare system call (`getppid`), in nanoseconds: the median over
/// batches of calls.
pub fn syscall_ns(stop: Stop) -> f64 {
    const BATCH: u32 = 10_000;
    let mut per_call = Vec::new();
    let started = Instant::now();
    loop {
        match stop {
            Stop::Count(n) if per_call.len() as u64 >= (n / 100).clamp(3, 200) => break,
            Stop::Time(d) if started.elapsed() >= d / 4 && per_call.len() >= 3 => break,
            _ => {}
        }
        let t0 = Instant::now();
        for _ in 0..BATCH {
            black_box(rustix::process::getppid());
        }
        per_call.push(t0.elapsed().as_nanos() as f64 / f64::from(BATCH));
    }
    median(&mut per_call)
}

/// The block `memcpy` copies: the largest default message.
pub const MEMCPY_BLOCK: usize = 1 << 20;

/// Single-thread `memcpy` bandwidth in GB/s (10^9 bytes): the median over batches of
/// copies of a [`MEMCPY_BLOCK`] between two buffers that stay warm, as a transport's
/// reused message buffers do.
pub fn memcpy_gbps(stop: Stop) -> f64 {
    const BATCH: u32 = 64;
    let src: Vec<u8> = (0..MEMCPY_BLOCK).map(|i| (i % 251) as u8).collect();
    let mut dst = vec![0u8; MEMCPY_BLOCK];
    let mut rates = Vec::new();
    let started = Instant::now();
    loop {
        match stop {
            Stop::Count(n) if rates.len() as u64 >= (n / 100).clamp(3, 200) => break,
            Stop::Time(d) if started.elapsed() >= d / 4 && rates.len() >= 3 => break,
            _ => {}
        }
        let t0 = Instant::now();
        for _ in 0..BATCH {
            dst.copy_from_slice(black_box(&src));
            black_box(&mut dst);
        }
        let secs = t0.elapsed().as_secs_f64();
        rates.push(f64::from(BATCH) * MEMCPY_BLOCK as f64 / secs / 1e9);
    }
    median(&mut rates)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}
