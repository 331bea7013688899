//! The results of a run: the data (`--json` prints it as is) and the terminal table.

use std::fmt::Write as _;

use serde::Serialize;

use super::machine::Machine;
use super::measure::{Latency, Throughput};
use super::rows::{RowId, Wait};

/// Everything a run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    pub ipcx_version: &'static str,
    /// The command line that produced the report.
    pub command: String,
    pub machine: Machine,
    pub settings: Settings,
    pub floors: Floors,
    /// Sorted by round-trip p50; rows without a latency last.
    pub rows: Vec<Row>,
    /// ipcx rows against their libc baselines, where both ran.
    pub wrapper_overhead: Vec<Overhead>,
    /// Latency floors that moved by more than 25% between the start and the end of the
    /// run: ratios against them are unreliable.
    pub floor_drift: Vec<Drift>,
    /// How many rows or floors failed.
    pub errors: usize,
}

/// What the run was asked to do.
#[derive(Debug, Serialize)]
pub struct Settings {
    /// Round trips per latency test and messages per throughput test, when fixed.
    pub iterations: Option<u64>,
    /// Seconds per test, when not fixed by `iterations`.
    pub duration_s: Option<f64>,
    /// Throughput message sizes.
    pub sizes: Vec<usize>,
    /// Latency message size.
    pub ping_size: usize,
}

/// A floor measured with two processes.
#[derive(Debug, Serialize)]
pub struct FloorLatency {
    pub latency: Option<Latency>,
    pub error: Option<String>,
}

/// The machine's floors, measured in the same run.
#[derive(Debug, Serialize)]
pub struct Floors {
    /// Two processes bouncing one cache line (busy polling).
    pub cache_line: FloorLatency,
    /// Two processes waking each other with futexes (blocking).
    pub futex: FloorLatency,
    /// One `getppid` system call, in nanoseconds.
    pub syscall_ns: Option<f64>,
    /// Single-thread `memcpy` of `memcpy_block` bytes, in GB/s (10^9 bytes).
    pub memcpy_gb_per_s: Option<f64>,
    pub memcpy_block: usize,
    /// The cache-line floor's p50 measured again after the rows, in nanoseconds.
    pub cache_line_after: Option<u64>,
    /// The futex floor's p50 measured again after the rows, in nanoseconds.
    pub futex_after: Option<u64>,
}

/// How far a floor may move between the start and the end of a run before the report
/// says its ratios are unreliable.
const FLOOR_DRIFT: f64 = 0.25;

/// A latency floor that moved by more than [`FLOOR_DRIFT`] during the run.
#[derive(Debug, Serialize, PartialEq)]
pub struct Drift {
    /// `cache-line` or `futex`.
    pub floor: &'static str,
    pub before_p50_ns: u64,
    pub after_p50_ns: u64,
}

impl Floors {
    /// Each latency floor whose p50 moved by more than [`FLOOR_DRIFT`] during the run.
    pub fn drifted(&self) -> Vec<Drift> {
        [
            ("cache-line", &self.cache_line, self.cache_line_after),
            ("futex", &self.futex, self.futex_after),
        ]
        .into_iter()
        .filter_map(|(floor, first, after)| {
            let before = first.latency.as_ref()?.p50_ns;
            let after = after?;
            let moved = (after as f64 - before as f64).abs() / before.max(1) as f64;
            (moved > FLOOR_DRIFT).then_some(Drift {
                floor,
                before_p50_ns: before,
                after_p50_ns: after,
            })
        })
        .collect()
    }
}

/// One row's results.
#[derive(Debug, Serialize)]
pub struct Row {
    pub name: &'static str,
    pub what: &'static str,
    pub wait: Wait,
    pub latency: Option<Latency>,
    /// The transport's message limit, when the latency messages are above it (latency
    /// not measured).
    pub latency_limit: Option<usize>,
    /// The floor this row is compared with: `cache-line` (busy) or `futex` (blocking).
    pub floor: &'static str,
    /// p50 over the floor's p50.
    pub floor_ratio: Option<f64>,
    /// One entry per size; empty for links without a payload.
    pub throughput: Vec<SizeResult>,
    pub error: Option<String>,
}

/// Throughput at one size, or why it was not measured.
#[derive(Clone, Debug, Serialize)]
pub struct SizeResult {
    pub size: usize,
    pub throughput: Option<Throughput>,
    /// MB/s over memcpy's.
    pub memcpy_ratio: Option<f64>,
    /// The transport's message limit, when the size is above it (not measured).
    pub limit: Option<usize>,
}

/// An ipcx row against the same ping-pong with direct libc calls.
#[derive(Debug, Serialize)]
pub struct Overhead {
    pub row: &'static str,
    pub baseline: &'static str,
    pub ipcx_p50_ns: u64,
    pub libc_p50_ns: u64,
    /// How much slower ipcx's median is, in percent (negative: faster).
    pub overhead_percent: f64,
}

impl Row {
    /// A row with nothing measured yet.
    pub fn new(id: RowId) -> Row {
        Row {
            name: id.name(),
            what: id.what(),
            wait: id.wait(),
            latency: None,
            latency_limit: None,
            floor: match id.wait() {
                Wait::Busy => "cache-line",
                Wait::Blocking => "futex",
            },
            floor_ratio: None,
            throughput: Vec::new(),
            error: None,
        }
    }
}

impl Report {
    /// Sorts the rows by p50, fills in the ratios and the wrapper overhead, and counts
    /// the errors.
    pub fn finish(&mut self, baselines: &[(RowId, RowId)]) {
        let p50 = |f: &FloorLatency| f.latency.as_ref().map(|l| l.p50_ns as f64);
        let (busy, blocking) = (p50(&self.floors.cache_line), p50(&self.floors.futex));
        let memcpy_mb = self.floors.memcpy_gb_per_s.map(|g| g * 1000.0);
        for row in &mut self.rows {
            let floor = match row.wait {
                Wait::Busy => busy,
                Wait::Blocking => blocking,
            };
            row.floor_ratio = match (&row.latency, floor) {
                (Some(l), Some(f)) if f > 0.0 => Some(l.p50_ns as f64 / f),
                _ => None,
            };
            for size in &mut row.throughput {
                size.memcpy_ratio = match (&size.throughput, memcpy_mb) {
                    (Some(t), Some(m)) if m > 0.0 => Some(t.mb_per_s / m),
                    _ => None,
                };
            }
        }
        self.rows
            .sort_by_key(|r| r.latency.as_ref().map_or(u64::MAX, |l| l.p50_ns));
        let find = |name: &str| {
            self.rows
                .iter()
                .find(|r| r.name == name)
                .and_then(|r| r.latency.as_ref())
                .map(|l| l.p50_ns)
        };
        self.wrapper_overhead = baselines
            .iter()
            .filter_map(|&(row, base)| {
                let (ipcx, libc) = (find(row.name())?, find(base.name())?);
                Some(Overhead {
                    row: row.name(),
                    baseline: base.name(),
                    ipcx_p50_ns: ipcx,
                    libc_p50_ns: libc,
                    overhead_percent: (ipcx as f64 - libc as f64) / libc.max(1) as f64 * 100.0,
                })
            })
            .collect();
        self.floor_drift = self.floors.drifted();
        self.errors = self.rows.iter().filter(|r| r.error.is_some()).count()
            + usize::from(self.floors.cache_line.error.is_some())
            + usize::from(self.floors.futex.error.is_some());
    }

    /// The report as the terminal shows it.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let s = &self.settings;
        let _ = writeln!(
            out,
            "ipcx bench {} — {}",
            self.ipcx_version,
            self.machine.summary()
        );
        let pinned = match self.machine.pinned {
            Some((a, b)) => format!("bench on CPU {a}, peer on CPU {b}"),
            None => "not pinned (one usable CPU: busy waits yield)".into(),
        };
        let each = match (s.iterations, s.duration_s) {
            (Some(n), _) => format!("{n} round trips / messages per test"),
            (None, Some(d)) => format!("{} per test", secs(d)),
            (None, None) => String::new(),
        };
        let _ = writeln!(out, "{pinned} · {each} · `{}`", self.command);

        let f = &self.floors;
        let _ = writeln!(out, "\nFloors (this machine, this run)");
        let mut t = Table::new(&[Align::Left, Align::Left]);
        let syscall = f.syscall_ns.map(|ns| format!("{ns:.1} ns per call"));
        let memcpy = f.memcpy_gb_per_s.map(|g| format!("{g:.1} GB/s"));
        // Measured again after the rows; only when the first measurement worked.
        let again = |first: &FloorLatency, after: Option<u64>| match (&first.latency, after) {
            (None, _) => String::new(),
            (Some(_), Some(a)) => format!("   (after the rows: p50 {})", ns(a)),
            (Some(_), None) => "   (after the rows: failed, so no drift check)".into(),
        };
        for (what, value) in [
            (
                "cache-line ping-pong (busy)".to_string(),
                floor_cell(&f.cache_line) + &again(&f.cache_line, f.cache_line_after),
            ),
            (
                "futex wake ping-pong (blocking)".into(),
                floor_cell(&f.futex) + &again(&f.futex, f.futex_after),
            ),
            (
                "bare syscall (getppid)".into(),
                syscall.unwrap_or("—".into()),
            ),
            (
                format!("memcpy, one thread, {}", size(f.memcpy_block)),
                memcpy.unwrap_or("—".into()),
            ),
        ] {
            t.row(vec![what.into(), value.into()]);
        }
        t.write(&mut out);
        for d in &self.floor_drift {
            let _ = writeln!(
                out,
                "! The {} floor moved from {} to {} during the run: the machine changed \
                 under it (a virtual machine's CPUs can move), so ratios against it are \
                 unreliable. Run again.",
                d.floor,
                ns(d.before_p50_ns),
                ns(d.after_p50_ns)
            );
        }

        let _ = writeln!(
            out,
            "\nRound-trip latency, {} B messages, sorted by p50 (× floor: p50 over the \
             floor's p50)",
            s.ping_size
        );
        let mut t = Table::new(&[
            Align::Left,
            Align::Left,
            Align::Right,
            Align::Right,
            Align::Right,
            Align::Right,
            Align::Right,
        ]);
        t.row(
            [
                "row",
                "waits",
                "p50",
                "p99",
                "p99.9",
                "× floor",
                "round trips",
            ]
            .map(Cell::from)
            .into(),
        );
        for row in &self.rows {
            let Some(l) = &row.latency else {
                if let Some(limit) = row.latency_limit {
                    t.row(vec![
                        row.name.into(),
                        wait(row.wait).into(),
                        Cell::spanning(format!("n/a (limit {limit})"), 5, Align::Left),
                    ]);
                }
                continue;
            };
            t.row(vec![
                row.name.into(),
                wait(row.wait).into(),
                ns(l.p50_ns).into(),
                ns(l.p99_ns).into(),
                ns(l.p999_ns).into(),
                row.floor_ratio
                    .map_or("—".into(), |r| format!("{r:.2}× {}", row.floor))
                    .into(),
                count(l.iterations as f64).into(),
            ]);
        }
        t.write(&mut out);

        if !s.sizes.is_empty() && self.rows.iter().any(|r| !r.throughput.is_empty()) {
            let _ = writeln!(
                out,
                "\nOne-way throughput, same order (MB = 10^6 bytes; %: share of the memcpy \
                 floor)"
            );
            let mut align = vec![Align::Left];
            align.extend(s.sizes.iter().flat_map(|_| [Align::Right; 3]));
            let mut t = Table::new(&align);
            let mut head = vec![Cell::from("row")];
            head.extend(
                s.sizes
                    .iter()
                    .map(|&n| Cell::spanning(size(n), 3, Align::Right)),
            );
            t.row(head);
            for row in self.rows.iter().filter(|r| !r.throughput.is_empty()) {
                let mut cells = vec![Cell::from(row.name)];
                for &n in &s.sizes {
                    cells.extend(throughput_cells(
                        row.throughput.iter().find(|t| t.size == n),
                    ));
                }
                t.row(cells);
            }
            t.write(&mut out);
            let latency_only: Vec<&str> = self
                .rows
                .iter()
                .filter(|r| r.throughput.is_empty() && r.latency.is_some())
                .map(|r| r.name)
                .collect();
            if !latency_only.is_empty() {
                let _ = writeln!(
                    out,
                    "  (latency only: {}; eventfd carries no payload, and the libc baselines \
                     no framing)",
                    latency_only.join(", ")
                );
            }
        }

        if !self.wrapper_overhead.is_empty() {
            let _ = writeln!(
                out,
                "\nipcx wrapper overhead: p50 round trip against the same ping-pong with \
                 direct libc calls"
            );
            let mut t = Table::new(&[Align::Left, Align::Right, Align::Right, Align::Right]);
            t.row(["row", "ipcx", "libc", "overhead"].map(Cell::from).into());
            for o in &self.wrapper_overhead {
                t.row(vec![
                    format!("{} vs {}", o.row, o.baseline).into(),
                    ns(o.ipcx_p50_ns).into(),
                    ns(o.libc_p50_ns).into(),
                    format!("{:+.1}%", o.overhead_percent).into(),
                ]);
            }
            t.write(&mut out);
        }

        let failed: Vec<(&str, &str)> = [
            ("cache-line floor", f.cache_line.error.as_deref()),
            ("futex floor", f.futex.error.as_deref()),
        ]
        .into_iter()
        .filter_map(|(n, e)| Some((n, e?)))
        .chain(
            self.rows
                .iter()
                .filter_map(|r| Some((r.name, r.error.as_deref()?))),
        )
        .collect();
        if !failed.is_empty() {
            let _ = writeln!(out, "\nErrors");
            for (name, e) in failed {
                let _ = writeln!(out, "  {name}: {e}");
            }
        }
        out
    }
}

fn wait(w: Wait) -> &'static str {
    match w {
        Wait::Busy => "busy",
        Wait::Blocking => "blocking",
    }
}

fn floor_cell(f: &FloorLatency) -> String {
    match (&f.latency, &f.error) {
        (Some(l), _) => format!(
            "p50 {}   p99 {}   p99.9 {}",
            ns(l.p50_ns),
            ns(l.p99_ns),
            ns(l.p999_ns)
        ),
        (None, Some(_)) => "failed (see Errors)".into(),
        (None, None) => "—".into(),
    }
}

/// Three cells for one size: MB/s, messages/s and the share of memcpy, or one cell
/// spanning them that says why there is no measurement.
fn throughput_cells(s: Option<&SizeResult>) -> Vec<Cell> {
    match s.map(|s| (s, &s.throughput, s.limit)) {
        Some((s, Some(t), _)) => vec![
            rate(t.mb_per_s).into(),
            per_second(t.msgs_per_s).into(),
            s.memcpy_ratio.map_or("—".into(), percent).into(),
        ],
        Some((_, None, Some(limit))) => {
            vec![Cell::spanning(
                format!("n/a (limit {limit})"),
                3,
                Align::Right,
            )]
        }
        _ => vec![Cell::spanning("—".into(), 3, Align::Right)],
    }
}

/// A ratio as a percentage with two significant digits: `31%`, `2.3%`, `0.041%`.
fn percent(ratio: f64) -> String {
    let p = ratio * 100.0;
    if p >= 10.0 {
        format!("{p:.0}%")
    } else if p > 0.0 {
        let decimals = (1.0 - p.log10().floor()).clamp(1.0, 6.0) as usize;
        format!("{p:.decimals$}%")
    } else {
        "0%".into()
    }
}

/// A duration in nanoseconds, with a unit that keeps three significant digits.
pub fn ns(ns: u64) -> String {
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

fn secs(s: f64) -> String {
    if s >= 1.0 && s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s} s")
    }
}

/// Megabytes per second, as MB/s or GB/s.
pub fn rate(mb_per_s: f64) -> String {
    if mb_per_s >= 1000.0 {
        format!("{} GB/s", sig3(mb_per_s / 1000.0))
    } else {
        format!("{} MB/s", sig3(mb_per_s))
    }
}

fn per_second(n: f64) -> String {
    format!("{}/s", count(n))
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

/// A size in bytes: `64 B`, `64 KiB`, `1 MiB`.
pub fn size(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

#[derive(Clone, Copy)]
enum Align {
    Left,
    Right,
}

/// A cell of a [`Table`]: text, how many columns it covers, and its alignment when it
/// is not its first column's.
struct Cell {
    text: String,
    span: usize,
    align: Option<Align>,
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell {
            text,
            span: 1,
            align: None,
        }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell::from(text.to_string())
    }
}

impl Cell {
    fn spanning(text: String, span: usize, align: Align) -> Cell {
        Cell {
            text,
            span: span.max(1),
            align: Some(align),
        }
    }
}

/// A plain text table: columns as wide as their widest cell, two spaces apart; a cell
/// may span several columns.
struct Table {
    align: Vec<Align>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    fn new(align: &[Align]) -> Table {
        Table {
            align: align.to_vec(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    fn write(&self, out: &mut String) {
        let cols = self
            .rows
            .iter()
            .map(|r| r.iter().map(|c| c.span).sum::<usize>())
            .max()
            .unwrap_or(0);
        let mut widths = vec![0usize; cols];
        for row in &self.rows {
            let mut c = 0;
            for cell in row {
                if cell.span == 1 {
                    widths[c] = widths[c].max(cell.text.chars().count());
                }
                c += cell.span;
            }
        }
        // A spanning cell wider than its columns widens the last of them.
        for row in &self.rows {
            let mut c = 0;
            for cell in row {
                if cell.span > 1 {
                    let end = (c + cell.span).min(cols);
                    let have: usize = widths[c..end].iter().sum::<usize>() + 2 * (end - c - 1);
                    let need = cell.text.chars().count();
                    if need > have {
                        widths[end - 1] += need - have;
                    }
                }
                c += cell.span;
            }
        }
        for row in &self.rows {
            let mut line = String::from(" ");
            let mut c = 0;
            for cell in row {
                let end = (c + cell.span).min(cols);
                let w: usize = widths[c..end].iter().sum::<usize>() + 2 * (end - c - 1);
                let align = cell
                    .align
                    .unwrap_or_else(|| self.align.get(c).copied().unwrap_or(Align::Left));
                let text = &cell.text;
                let _ = match align {
                    Align::Left => write!(line, " {text:<w$}"),
                    Align::Right => write!(line, " {text:>w$}"),
                };
                line.push(' ');
                c = end;
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::measure::MEMCPY_BLOCK;

    fn floor(p50_ns: Option<u64>) -> FloorLatency {
        FloorLatency {
            latency: p50_ns.map(|p50_ns| Latency {
                iterations: 1000,
                message_bytes: 1,
                p50_ns,
                p99_ns: p50_ns,
                p999_ns: p50_ns,
                min_ns: p50_ns,
                max_ns: p50_ns,
                mean_ns: p50_ns as f64,
            }),
            error: p50_ns.is_none().then(|| "failed".to_string()),
        }
    }

    /// Floors with the latency floors' p50 at the start and after the rows.
    fn floors(cache_line: (Option<u64>, Option<u64>), futex: (Option<u64>, Option<u64>)) -> Floors {
        Floors {
            cache_line: floor(cache_line.0),
            futex: floor(futex.0),
            syscall_ns: None,
            memcpy_gb_per_s: None,
            memcpy_block: MEMCPY_BLOCK,
            cache_line_after: cache_line.1,
            futex_after: futex.1,
        }
    }

    #[test]
    fn a_floor_that_moves_by_more_than_a_quarter_is_reported_either_way() {
        let f = floors((Some(140), Some(441)), (Some(11_000), Some(10_900)));
        assert_eq!(
            f.drifted(),
            [Drift {
                floor: "cache-line",
                before_p50_ns: 140,
                after_p50_ns: 441
            }]
        );
        let f = floors((Some(441), Some(140)), (Some(10_000), Some(20_700)));
        let moved: Vec<_> = f.drifted().iter().map(|d| d.floor).collect();
        assert_eq!(moved, ["cache-line", "futex"]);
        // Within a quarter: quiet. A floor missing at either end: nothing to compare.
        let f = floors((Some(140), Some(170)), (Some(10_000), Some(7_600)));
        assert!(f.drifted().is_empty());
        let f = floors((None, Some(140)), (Some(10_000), None));
        assert!(f.drifted().is_empty());
    }

    #[test]
    fn units_keep_three_digits() {
        assert_eq!(ns(182), "182 ns");
        assert_eq!(ns(5_210), "5.21 µs");
        assert_eq!(ns(52_100), "52.1 µs");
        assert_eq!(ns(1_230_000), "1.23 ms");
        assert_eq!(rate(812.4), "812 MB/s");
        assert_eq!(rate(8_120.0), "8.12 GB/s");
        assert_eq!(size(64), "64 B");
        assert_eq!(size(65_536), "64 KiB");
        assert_eq!(size(1 << 20), "1 MiB");
        assert_eq!(size(1000), "1000 B");
        assert_eq!(count(12_400.0), "12.4 k");
        assert_eq!(percent(0.31), "31%");
        assert_eq!(percent(0.023), "2.3%");
        assert_eq!(percent(0.000_41), "0.041%");
        assert_eq!(MEMCPY_BLOCK, 1 << 20);
    }
}
