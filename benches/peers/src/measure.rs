//! The ping-pong, as `ipcx bench` runs it (`crates/ipcx-cli/src/bench/measure.rs`): one
//! round trip checked byte for byte, a warm-up of a tenth of the test, then round trips
//! timed one by one on the initiating side into an HDR histogram.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::Fallible;

/// The first byte of a ping: the peer echoes the message.
pub const PING: u8 = b'p';
/// The first byte of the last message: the peer closes its side and exits.
pub const QUIT: u8 = b'q';

/// How long each test runs (the bench's `Stop`).
#[derive(Clone, Copy, Debug)]
pub enum Stop {
    /// Exactly this many round trips.
    Count(u64),
    /// Round trips for this long.
    Time(Duration),
}

/// One side of a two-process link, as the ping-pong drives it.
///
/// `send` and `recv` are the initiating side's; `echo` is the peer's. A transport that
/// lends its messages in place (a ring's views, an iceoryx2 sample) hands the loaned
/// bytes to `recv`'s closure and echoes from them without an intermediate copy; a
/// copying transport receives into a buffer of its own first, as `ipcx bench` does.
pub trait Port {
    /// Sends one message (its first byte says what it is).
    fn send(&mut self, msg: &[u8]) -> Fallible<()>;

    /// Waits for the next message and passes it to `look`.
    fn recv<R>(&mut self, look: impl FnOnce(&[u8]) -> R) -> Fallible<R>;

    /// The peer's side: waits for a message and sends it back unchanged; returns false
    /// (without answering) when it was [`QUIT`].
    fn echo(&mut self) -> Fallible<bool>;

    /// Whether messages carry bytes; the floors carry only what a message is (a counter
    /// change), so their pings are one byte.
    fn carries_payload(&self) -> bool {
        true
    }
}

/// The peer's loop: echo until told to quit.
pub fn serve(port: &mut impl Port) -> Fallible<()> {
    while port.echo()? {}
    Ok(())
}

/// Round-trip latency percentiles, in nanoseconds (the bench's `Latency`).
#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    /// The round trips measured (after the warm-up).
    pub iterations: u64,
    /// The bytes in each message (1 for the floors, which carry no payload).
    pub message_bytes: usize,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub min_ns: u64,
    pub max_ns: u64,
    pub mean_ns: f64,
}

/// How often the timed loop records a heartbeat for the watchdog.
const BEAT_EVERY: u64 = 256;

fn histogram() -> Histogram<u64> {
    // 1 ns to 100 s at 3 significant figures, as the bench.
    Histogram::new_with_bounds(1, 100_000_000_000, 3)
        .unwrap_or_else(|e| unreachable!("constant histogram bounds are valid: {e}"))
}

/// Measures the round trips of `port` with messages of `ping` bytes: the first echo is
/// checked byte for byte, a warm-up of a tenth of `stop` (at least 10 round trips) is
/// discarded, then every round trip of `stop` is timed and recorded.
pub fn latency(port: &mut impl Port, ping: usize, stop: Stop) -> Fallible<Latency> {
    let len = if port.carries_payload() { ping } else { 1 };
    let mut msg: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    msg[0] = PING;
    crate::peer::stage("the first round trip");
    port.send(&msg)?;
    let (n, same) = port.recv(|echo| (echo.len(), echo == &msg[..]))?;
    if !same {
        return Err(format!(
            "the peer's echo differs from the ping ({n} bytes back for {len} sent)"
        )
        .into());
    }
    let warm = match stop {
        Stop::Count(n) => Stop::Count((n / 10).max(10)),
        Stop::Time(d) => Stop::Time(d / 10),
    };
    crate::peer::stage("the warm-up");
    round_trips(port, &msg, warm, None)?;
    crate::peer::stage("the timed round trips");
    let mut hist = histogram();
    round_trips(port, &msg, stop, Some(&mut hist))?;
    Ok(Latency {
        iterations: hist.len(),
        message_bytes: msg.len(),
        p50_ns: hist.value_at_quantile(0.50),
        p99_ns: hist.value_at_quantile(0.99),
        p999_ns: hist.value_at_quantile(0.999),
        min_ns: hist.min(),
        max_ns: hist.max(),
        mean_ns: hist.mean(),
    })
}

fn round_trips(
    port: &mut impl Port,
    msg: &[u8],
    stop: Stop,
    mut hist: Option<&mut Histogram<u64>>,
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
        let (n, first) = port.recv(|echo| (echo.len(), echo.first().copied()))?;
        let dt = t0.elapsed();
        if n != msg.len() || first != Some(PING) {
            return Err(format!(
                "protocol error: expected a {}-byte echo, got {n} bytes starting {first:?}",
                msg.len(),
            )
            .into());
        }
        if let Some(h) = hist.as_deref_mut() {
            h.saturating_record(u64::try_from(dt.as_nanos()).unwrap_or(u64::MAX).max(1));
        }
        done += 1;
        if done.is_multiple_of(BEAT_EVERY) {
            beat();
        }
    }
}

/// Sends the quit message: one byte for every port.
pub fn quit(port: &mut impl Port) -> Fallible<()> {
    port.send(&[QUIT])
}

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Milliseconds since [`origin`] at the last sign of progress.
static LAST_BEAT: AtomicU64 = AtomicU64::new(0);

/// Records progress, for the watchdog.
pub fn beat() {
    let ms = origin().elapsed().as_millis() as u64;
    LAST_BEAT.store(ms, Ordering::Relaxed);
}

/// How long since the last [`beat`].
pub fn idle() -> Duration {
    let last = Duration::from_millis(LAST_BEAT.load(Ordering::Relaxed));
    origin().elapsed().saturating_sub(last)
}

/// Set when both processes share one CPU: a busy wait then yields on every turn, as the
/// bench's do, or it would only burn the time slice the other side needs.
static YIELD_WHEN_SPINNING: AtomicBool = AtomicBool::new(false);

/// Makes [`spin`] yield the CPU on every turn.
pub fn yield_when_spinning(on: bool) {
    YIELD_WHEN_SPINNING.store(on, Ordering::Relaxed);
}

/// One turn of a busy wait: a pause instruction, or a yield on a single CPU.
#[inline(always)]
pub fn spin() {
    if YIELD_WHEN_SPINNING.load(Ordering::Relaxed) {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}
