//! The results of a run: the data (`--json` prints it as is) and the terminal table.

use std::fmt::Write as _;

use serde::Serialize;

use crate::machine::Machine;
use crate::measure::{Latency, Stop};
use crate::{Fallible, RowId, Wait};

/// Everything a run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The versions compared: ipcx (this repository) and the two crates from crates.io.
    pub versions: Versions,
    /// The command line that produced the report.
    pub command: String,
    pub machine: Machine,
    pub settings: Settings,
    /// The cache-line and futex floors, in that order.
    pub floors: Vec<RowResult>,
    /// The mechanisms, sorted by round-trip p50; rows that failed last.
    pub rows: Vec<RowResult>,
    /// How many rows or floors failed.
    pub errors: usize,
}

/// What was compared.
#[derive(Debug, Serialize)]
pub struct Versions {
    pub ipcx: &'static str,
    pub iceoryx2: &'static str,
    pub ipc_channel: &'static str,
}

/// What the run was asked to do.
#[derive(Debug, Serialize)]
pub struct Settings {
    /// Round trips per test, when fixed.
    pub iterations: Option<u64>,
    /// Seconds per test, when not fixed by `iterations`.
    pub duration_s: Option<f64>,
    /// The ping's size in bytes.
    pub ping_size: usize,
}

impl Settings {
    /// The settings of a run with `stop` and pings of `ping` bytes.
    pub fn new(stop: Stop, ping: usize) -> Settings {
        Settings {
            iterations: match stop {
                Stop::Count(n) => Some(n),
                Stop::Time(_) => None,
            },
            duration_s: match stop {
                Stop::Count(_) => None,
                Stop::Time(d) => Some(d.as_secs_f64()),
            },
            ping_size: ping,
        }
    }
}

/// One row's (or floor's) result.
#[derive(Debug, Serialize)]
pub struct RowResult {
    pub name: &'static str,
    pub what: &'static str,
    pub wait: Wait,
    pub latency: Option<Latency>,
    /// The floor this row is compared with: `cache-line` (busy) or `futex` (blocking).
    pub floor: &'static str,
    /// p50 over the floor's p50.
    pub floor_ratio: Option<f64>,
    /// p50 over `ring-busy`'s p50.
    pub ring_busy_ratio: Option<f64>,
    /// The ipcx ring row this row is compared with in the table: `ring-busy` for busy
    /// rows, `ring-blocking` for blocking ones.
    pub ipcx_row: &'static str,
    /// p50 over `ipcx_row`'s p50.
    pub ipcx_ratio: Option<f64>,
    pub error: Option<String>,
    #[serde(skip)]
    id: RowId,
}

impl RowResult {
    /// A row's result, the ratios not yet filled in.
    pub fn new(id: RowId, result: Fallible<Latency>) -> RowResult {
        let (latency, error) = match result {
            Ok(l) => (Some(l), None),
            Err(e) => (None, Some(e.to_string())),
        };
        RowResult {
            name: id.name(),
            what: id.what(),
            wait: id.wait(),
            latency,
            floor: match id.wait() {
                Wait::Busy => "cache-line",
                Wait::Blocking => "futex",
            },
            floor_ratio: None,
            ring_busy_ratio: None,
            ipcx_row: match id.wait() {
                Wait::Busy => RowId::RingBusy.name(),
                Wait::Blocking => RowId::RingBlocking.name(),
            },
            ipcx_ratio: None,
            error,
            id,
        }
    }

    fn p50(&self) -> Option<f64> {
        self.latency.as_ref().map(|l| l.p50_ns as f64)
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

impl Report {
    /// Sorts the rows, fills in the ratios and counts the errors.
    pub fn new(
        command: String,
        machine: Machine,
        settings: Settings,
        results: Vec<RowResult>,
    ) -> Report {
        let (mut floors, mut rows): (Vec<_>, Vec<_>) =
            results.into_iter().partition(|r| r.id.is_floor());
        let p50_of = |id: RowId| {
            floors
                .iter()
                .chain(rows.iter())
                .find(|r| r.id == id)
                .and_then(RowResult::p50)
        };
        let (busy, blocking) = (p50_of(RowId::Cacheline), p50_of(RowId::Futex));
        let ring_busy = p50_of(RowId::RingBusy);
        let ring_blocking = p50_of(RowId::RingBlocking);
        for r in floors.iter_mut().chain(rows.iter_mut()) {
            let (floor, ipcx) = match r.wait {
                Wait::Busy => (busy, ring_busy),
                Wait::Blocking => (blocking, ring_blocking),
            };
            r.floor_ratio = ratio(r.p50(), floor);
            r.ring_busy_ratio = ratio(r.p50(), ring_busy);
            r.ipcx_ratio = ratio(r.p50(), ipcx);
        }
        rows.sort_by_key(|r| r.latency.as_ref().map_or(u64::MAX, |l| l.p50_ns));
        floors.sort_by_key(|r| r.id != RowId::Cacheline);
        let errors = floors
            .iter()
            .chain(rows.iter())
            .filter(|r| r.error.is_some())
            .count();
        Report {
            versions: Versions {
                ipcx: ipcx_version(),
                iceoryx2: env!("PEERS_ICEORYX2_VERSION"),
                ipc_channel: env!("PEERS_IPC_CHANNEL_VERSION"),
            },
            command,
            machine,
            settings,
            floors,
            rows,
            errors,
        }
    }

    /// The report as the terminal shows it.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let v = &self.versions;
        let _ = writeln!(
            out,
            "ipcx {} vs iceoryx2 {} vs ipc-channel {} — {}",
            v.ipcx,
            v.iceoryx2,
            v.ipc_channel,
            self.machine.summary()
        );
        let pinned = match self.machine.pinned {
            Some((a, b)) => format!("this side on CPU {a}, peer on CPU {b}"),
            None => "not pinned (one usable CPU: busy waits yield)".into(),
        };
        let s = &self.settings;
        let each = match (s.iterations, s.duration_s) {
            (Some(n), _) => format!("{n} round trips per test"),
            (None, Some(d)) => format!("{d} s per test"),
            (None, None) => String::new(),
        };
        let _ = writeln!(out, "{pinned} · {each} · `{}`", self.command);
        let _ = writeln!(
            out,
            "load average before {} · after {}",
            self.machine.load_before, self.machine.load_after
        );

        let _ = writeln!(out, "\nFloors (this machine, this run)");
        let mut t = Table::default();
        for f in &self.floors {
            let what = match f.id {
                RowId::Cacheline => "cache-line ping-pong (busy)",
                _ => "futex wake ping-pong (blocking)",
            };
            let cell = match (&f.latency, &f.error) {
                (Some(l), _) => format!(
                    "p50 {}   p99 {}   p99.9 {}",
                    ns(l.p50_ns),
                    ns(l.p99_ns),
                    ns(l.p999_ns)
                ),
                (None, Some(e)) => format!("failed: {e}"),
                (None, None) => "—".into(),
            };
            t.row(vec![(what.into(), false), (cell, false)]);
        }
        t.write(&mut out);

        let _ = writeln!(
            out,
            "\nRound-trip latency, {} B messages, sorted by p50 (× ipcx: p50 over the ipcx ring \
             row that waits alike; × floor: p50 over the floor's p50)",
            s.ping_size
        );
        let mut t = Table::default();
        let head = [
            "mechanism",
            "waits",
            "p50",
            "p99",
            "p99.9",
            "× ipcx",
            "× floor",
            "round trips",
        ];
        t.row(
            head.iter()
                .enumerate()
                .map(|(i, h)| (h.to_string(), i >= 2))
                .collect(),
        );
        let mut failed = Vec::new();
        for r in &self.rows {
            let Some(l) = &r.latency else {
                failed.push(r);
                continue;
            };
            t.row(vec![
                (r.name.into(), false),
                (wait_name(r.wait).into(), false),
                (ns(l.p50_ns), true),
                (ns(l.p99_ns), true),
                (ns(l.p999_ns), true),
                (
                    r.ipcx_ratio
                        .map_or("—".into(), |x| format!("{x:.2}× {}", r.ipcx_row)),
                    true,
                ),
                (
                    r.floor_ratio
                        .map_or("—".into(), |x| format!("{x:.2}× {}", r.floor)),
                    true,
                ),
                (count(l.iterations as f64), true),
            ]);
        }
        t.write(&mut out);
        if !failed.is_empty() || self.floors.iter().any(|f| f.error.is_some()) {
            let _ = writeln!(out, "\nErrors");
            for r in self.floors.iter().chain(failed) {
                if let Some(e) = &r.error {
                    let _ = writeln!(out, "  {}: {e}", r.name);
                }
            }
        }
        out
    }
}

/// ipcx's version, as its Cargo.toml (the workspace's) gives it to this build.
fn ipcx_version() -> &'static str {
    // The path dependency's version is not in this crate's environment; the workspace
    // version is the one every ipcx crate shares, recorded in Cargo.lock.
    env!("PEERS_IPCX_VERSION")
}

fn wait_name(w: Wait) -> &'static str {
    match w {
        Wait::Busy => "busy",
        Wait::Blocking => "blocking",
    }
}

/// A duration in nanoseconds, with a unit that keeps three significant digits (the
/// bench's format).
fn ns(ns: u64) -> String {
    let v = ns as f64;
    if v < 1e3 {
        format!("{ns} ns")
    } else if v < 1e6 {
        format!("{} µs", sig3(v / 1e3))
    } else if v < 1e9 {
        format!("{} ms", sig3(v / 1e6))
    } else {
        format!("{} s", sig3(v / 1e9))
    }
}

fn count(n: f64) -> String {
    if n >= 1e6 {
        format!("{} M", sig3(n / 1e6))
    } else if n >= 1e4 {
        format!("{} k", sig3(n / 1e3))
    } else {
        format!("{n:.0}")
    }
}

/// Three significant digits: 1.23, 12.3, 123.
fn sig3(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A text table: cells are (text, right-aligned).
#[derive(Default)]
struct Table {
    rows: Vec<Vec<(String, bool)>>,
}

impl Table {
    fn row(&mut self, cells: Vec<(String, bool)>) {
        self.rows.push(cells);
    }

    fn write(&self, out: &mut String) {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let width: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|(s, _)| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &self.rows {
            let mut line = String::new();
            for (c, (text, right)) in row.iter().enumerate() {
                let pad = width[c].saturating_sub(text.chars().count());
                line.push_str("  ");
                if *right {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(text);
                } else {
                    line.push_str(text);
                    line.push_str(&" ".repeat(pad));
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latency(p50: u64) -> Fallible<Latency> {
        Ok(Latency {
            iterations: 10,
            message_bytes: 64,
            p50_ns: p50,
            p99_ns: p50 * 2,
            p999_ns: p50 * 3,
            min_ns: p50,
            max_ns: p50 * 4,
            mean_ns: p50 as f64,
        })
    }

    #[test]
    fn rows_are_sorted_and_compared_with_their_floor_and_ring_busy() {
        let results = vec![
            RowResult::new(RowId::Cacheline, latency(100)),
            RowResult::new(RowId::Futex, latency(10_000)),
            RowResult::new(RowId::IoxBusy, latency(900)),
            RowResult::new(RowId::RingBusy, latency(300)),
            RowResult::new(RowId::IpcChannel, Err("broken".into())),
            RowResult::new(RowId::IoxEvent, latency(20_000)),
        ];
        let r = Report::new(
            "x".into(),
            Machine::detect(),
            Settings::new(Stop::Count(10), 64),
            results,
        );
        let names: Vec<&str> = r.rows.iter().map(|r| r.name).collect();
        assert_eq!(
            names,
            [
                "ring-busy",
                "iceoryx2-busy",
                "iceoryx2-event",
                "ipc-channel"
            ]
        );
        assert_eq!(r.rows[1].floor_ratio, Some(9.0));
        assert_eq!(r.rows[1].ring_busy_ratio, Some(3.0));
        assert_eq!(r.rows[2].floor, "futex");
        assert_eq!(r.rows[2].floor_ratio, Some(2.0));
        // No ring-blocking in this run: nothing to compare iceoryx2-event with.
        assert_eq!(r.rows[2].ipcx_ratio, None);
        assert_eq!(r.rows[2].ring_busy_ratio, Some(20_000.0 / 300.0));
        assert_eq!(r.rows[1].ipcx_ratio, Some(3.0));
        assert_eq!(r.errors, 1);
        let table = r.table();
        assert!(table.contains("ipc-channel: broken"), "{table}");
        assert!(table.contains("9.00× cache-line"), "{table}");
        assert!(table.contains("3.00× ring-busy"), "{table}");
    }
}
