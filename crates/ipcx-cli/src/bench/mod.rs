//! `ipcx bench`: every mechanism measured between two real processes on this machine,
//! beside the machine's own floor.
//!
//! For each row the bench starts a second copy of itself (`ipcx bench-child`, see
//! [`child`]) as the peer, each pinned to its own CPU when there are two. Over one link
//! per row it measures round-trip latency (ping-pong into an `hdrhistogram`), then
//! one-way throughput at each size (batches the peer acknowledges). The floors come
//! first: a cache line bounced between the two processes (busy), futex wake-ups
//! (blocking), a bare syscall and `memcpy`; every row is reported as a ratio to its
//! floor. The libc baselines (`pipe-libc`, `unix-libc`, `mq-libc`) run the same
//! ping-pong without ipcx, which gives the wrapper's overhead.

pub mod child;
mod direct;
mod machine;
mod mailbox;
mod measure;
mod port;
mod report;
mod rows;
mod session;
mod shm;
pub mod soak;
mod svg;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use machine::Machine;
use measure::{Plan, Stop};
use port::Carries;
use report::{FloorLatency, Floors, Report, Row, Settings, SizeResult};
use rows::{RowId, Setup};
use session::REGISTRY;

/// Errors inside the bench: a message for the row it ends.
pub type Fallible<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The round trips (and messages) of `--quick`: enough to exercise every row.
const QUICK_ITERATIONS: u64 = 300;

/// Measure every IPC mechanism between two processes on this machine.
///
/// Each row runs a round-trip ping-pong (latency: p50, p99, p99.9) and one-way
/// throughput at each --size between this process and a peer process (a second copy of
/// ipcx), each pinned to its own CPU. The machine's floors are measured in the same
/// run: a cache line bounced between the two CPUs (busy), futex wake-ups (blocking), a
/// bare syscall and memcpy. Busy rows are compared with the cache-line floor, blocking
/// rows with the futex floor, throughput with memcpy. The -libc rows run the same
/// ping-pong with direct libc calls: the cost of ipcx's wrapper.
///
/// The default run takes about a minute on a two-core machine. It exits with status 1
/// if any row fails (the others still run), 2 for bad arguments.
#[derive(Args, Debug)]
#[command(
    after_help = "Rows: ring-busy, ring, ring-blocking, shm-atomic, shm-sem, pipe, fifo, \
    unix, unix-dgram, unix-seqpacket, mq, sysv-mq, tcp, udp, mailbox, mailbox-tcp, eventfd, \
    pipe-libc, unix-libc, mq-libc (--list describes them)."
)]
pub struct BenchArgs {
    /// Run only these rows (comma-separated names; see --list). The floors always run.
    #[arg(long, value_name = "ROWS", value_delimiter = ',', value_parser = parse_row)]
    only: Option<Vec<RowId>>,

    /// Throughput message sizes, comma-separated, with K and M suffixes (1024-based).
    #[arg(
        long,
        value_name = "SIZES",
        value_delimiter = ',',
        value_parser = parse_size,
        default_value = "64,64K,1M"
    )]
    size: Vec<usize>,

    /// The size of the latency test's messages, in bytes.
    #[arg(long, value_name = "BYTES", value_parser = parse_ping, default_value = "64")]
    ping_size: usize,

    /// Exactly N round trips per latency test and N messages per throughput test,
    /// instead of a time.
    #[arg(long, value_name = "N", value_parser = parse_iterations, conflicts_with_all = ["duration", "quick"])]
    iterations: Option<u64>,

    /// Seconds per latency test and per throughput size.
    #[arg(long, value_name = "SECS", value_parser = parse_duration, default_value = "1")]
    duration: f64,

    /// A smoke run: 300 round trips and messages per test (for CI).
    #[arg(long, conflicts_with = "duration")]
    quick: bool,

    /// Print the results as JSON on stdout instead of the table.
    #[arg(long)]
    json: bool,

    /// Also write a chart of the results to FILE, as SVG.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,

    /// List the rows and what each measures, and exit.
    #[arg(long)]
    list: bool,

    /// Soak test instead of measuring: every mechanism under load for DURATION, every
    /// message checked.
    ///
    /// Runs every mechanism (pipe, fifo, unix, unix-dgram, unix-seqpacket, tcp, udp, mq,
    /// sysv-mq, shm, ring, mailbox) at once for DURATION (500ms, 60s, 10m), with several
    /// producer processes each, checking every message's bytes, checksum and
    /// per-producer order. Reports messages moved, bytes, lost, torn, duplicated and
    /// reordered messages and peak memory (VmHWM) per mechanism, as a table or with
    /// --json; exits 1 if any message was lost, torn, duplicated or reordered, or
    /// anything failed.
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = parse_soak,
        conflicts_with_all = ["only", "iterations", "quick", "svg", "list"]
    )]
    soak: Option<Duration>,

    /// Producer processes per mechanism in --soak (ring and shm: always one).
    ///
    /// A ring or shm channel carries one sender for its life, so those two always run
    /// single-producer, single-consumer.
    #[arg(
        long,
        value_name = "N",
        default_value = "3",
        requires = "soak",
        value_parser = clap::value_parser!(u32).range(1..=32)
    )]
    producers: u32,
}

fn parse_row(s: &str) -> Result<RowId, String> {
    s.trim().parse()
}

fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (digits, scale) = match s.as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 1usize << 10),
        Some(b'm' | b'M') => (&s[..s.len() - 1], 1 << 20),
        _ => (s, 1),
    };
    let n = digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| {
            format!("`{s}` is not a size: a number of bytes, with K or M (64, 64K, 1M)")
        })?;
    if n == 0 || n > 64 << 20 {
        return Err(format!("{s}: a size is from 1 byte to 64M"));
    }
    Ok(n)
}

fn parse_ping(s: &str) -> Result<usize, String> {
    let n = parse_size(s)?;
    if n > 1 << 20 {
        return Err(format!("{s}: the latency message is at most 1M"));
    }
    Ok(n)
}

fn parse_soak(s: &str) -> Result<Duration, String> {
    let d = crate::msg::parse_duration(s)?;
    if d.is_zero() || d > Duration::from_secs(7 * 24 * 3600) {
        return Err(format!("{s}: a soak lasts more than 0 and at most a week"));
    }
    Ok(d)
}

fn parse_iterations(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{s}` is not a number of iterations (1 or more)")),
    }
}

fn parse_duration(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(d) if d.is_finite() && d > 0.0 && d <= 3600.0 => Ok(d),
        _ => Err(format!(
            "`{s}` is not a duration in seconds (above 0, at most 3600)"
        )),
    }
}

/// Runs `ipcx bench`.
pub fn run(args: BenchArgs) -> ExitCode {
    if let Some(duration) = args.soak {
        return soak::run(duration, args.producers, args.json);
    }
    if args.list {
        for row in RowId::SELECTABLE {
            println!("{:<15} {}", row.name(), row.what());
        }
        return ExitCode::SUCCESS;
    }
    let result = bench(&args);
    session::wait_if_interrupted();
    let code = report(result, &args);
    session::wait_if_interrupted();
    code
}

/// Prints the results (or the error), writes the chart, and says how the run ended.
fn report(result: Fallible<Report>, args: &BenchArgs) -> ExitCode {
    match result {
        Ok(report) => {
            if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        eprintln!("ipcx bench: cannot write JSON: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{}", report.table());
            }
            if let Some(path) = &args.svg {
                if let Err(e) = svg::write(&report, path) {
                    eprintln!(
                        "ipcx bench: cannot write the chart to {}: {e}",
                        path.display()
                    );
                    return ExitCode::FAILURE;
                }
                if !args.json {
                    println!("\nchart written to {}", path.display());
                }
            }
            if report.errors > 0 {
                eprintln!(
                    "ipcx bench: {} row{} failed (see Errors)",
                    report.errors,
                    if report.errors == 1 { "" } else { "s" }
                );
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("ipcx bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench(args: &BenchArgs) -> Fallible<Report> {
    let plan = Plan {
        stop: match (args.iterations, args.quick) {
            (Some(n), _) => Stop::Count(n),
            (None, true) => Stop::Count(QUICK_ITERATIONS),
            (None, false) => Stop::Time(Duration::from_secs_f64(args.duration)),
        },
        sizes: {
            let mut sizes = args.size.clone();
            sizes.sort_unstable();
            sizes.dedup();
            sizes
        },
        ping: args.ping_size,
    };
    let rows: Vec<RowId> = match &args.only {
        Some(only) => RowId::SELECTABLE
            .into_iter()
            .filter(|r| only.contains(r))
            .collect(),
        None => RowId::SELECTABLE.to_vec(),
    };
    let machine = Machine::detect();
    let single_cpu = machine.pinned.is_none();
    shm::yield_when_spinning(single_cpu);

    let steps = 6 + groups(&rows).iter().map(|g| steps(g, &plan)).sum::<usize>();
    let progress = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stderr())
        .with_style(
            ProgressStyle::with_template(
                "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        )
        .with_prefix("ipcx bench");
    let bar = progress.clone();
    session::handle_signals(move || bar.finish_and_clear())?;

    let dir = REGISTRY.create_dir()?;
    let setup = Setup {
        plan: &plan,
        dir: &dir,
        cpus: machine.pinned,
        single_cpu,
    };
    let mut floors = floors(&setup, &progress);
    let mut measured = Vec::new();
    for group in groups(&rows) {
        measured.extend(measure_group(group, &setup, &progress));
    }
    // The two latency floors once more: a virtual machine's CPUs can move under a run
    // (here the cache-line floor jumps between about 150 and 450 ns), and a ratio is
    // only as good as the floor it divides by. The report shows both and warns when
    // they disagree.
    floors.cache_line_after = floor_p50(
        RowId::Cacheline,
        "cache-line ping-pong, again",
        &setup,
        &progress,
    );
    floors.futex_after = floor_p50(RowId::Futex, "futex ping-pong, again", &setup, &progress);
    progress.finish_and_clear();
    REGISTRY.shutdown();

    let mut report = Report {
        ipcx_version: env!("CARGO_PKG_VERSION"),
        command: command_line(),
        machine,
        settings: Settings {
            iterations: match plan.stop {
                Stop::Count(n) => Some(n),
                Stop::Time(_) => None,
            },
            duration_s: match plan.stop {
                Stop::Count(_) => None,
                Stop::Time(d) => Some(d.as_secs_f64()),
            },
            sizes: plan.sizes.clone(),
            ping_size: plan.ping,
        },
        floors,
        rows: measured,
        wrapper_overhead: Vec::new(),
        floor_drift: Vec::new(),
        errors: 0,
    };
    let baselines: Vec<(RowId, RowId)> = RowId::SELECTABLE
        .into_iter()
        .filter_map(|b| Some((b.baseline_of()?, b)))
        .collect();
    report.finish(&baselines);
    Ok(report)
}

/// Whether a row carries payload (so has throughput tests).
fn carries_bytes(row: RowId) -> bool {
    !matches!(
        row,
        RowId::Eventfd | RowId::PipeLibc | RowId::UnixLibc | RowId::MqLibc
    )
}

/// The command as typed, for the report.
fn command_line() -> String {
    let mut words = vec!["ipcx".to_string()];
    words.extend(std::env::args().skip(1));
    words.join(" ")
}

/// A closure that pins the worker thread to the bench's CPU.
fn pinner(setup: &Setup<'_>) -> impl FnOnce() + Send + 'static {
    let cpu = setup.cpus.map(|(bench, _)| bench);
    move || {
        if let Some(cpu) = cpu {
            // Without the pin the numbers are noisier, not wrong: go on.
            if let Err(e) = machine::pin_current_thread(cpu) {
                eprintln!("ipcx bench: {e}");
            }
        }
    }
}

/// Measures one latency floor, saying so on the progress bar.
fn floor_latency(
    row: RowId,
    what: &str,
    setup: &Setup<'_>,
    progress: &ProgressBar,
) -> Fallible<measure::Latency> {
    progress.set_message(format!("floor: {what}"));
    let result = latency_only(row, setup);
    progress.inc(1);
    result
}

/// A latency floor's p50 re-measured after the rows (`None` if it failed: the first
/// measurement's error, if any, is the one reported).
fn floor_p50(row: RowId, what: &str, setup: &Setup<'_>, progress: &ProgressBar) -> Option<u64> {
    floor_latency(row, what, setup, progress)
        .ok()
        .map(|l| l.p50_ns)
}

fn floors(setup: &Setup<'_>, progress: &ProgressBar) -> Floors {
    let latency = |row: RowId, what: &str| match floor_latency(row, what, setup, progress) {
        Ok(l) => FloorLatency {
            latency: Some(l),
            error: None,
        },
        Err(e) => FloorLatency {
            latency: None,
            error: Some(e.to_string()),
        },
    };
    let cache_line = latency(RowId::Cacheline, "cache-line ping-pong");
    let futex = latency(RowId::Futex, "futex ping-pong");
    let stop = setup.plan.stop;
    progress.set_message("floor: bare syscall");
    let syscall_ns = session::watch("syscall", pinner(setup), move |_| {
        Ok(measure::syscall_ns(stop))
    })
    .ok();
    progress.inc(1);
    progress.set_message("floor: memcpy");
    let memcpy_gb_per_s = session::watch("memcpy", pinner(setup), move |_| {
        Ok(measure::memcpy_gbps(stop))
    })
    .ok();
    progress.inc(1);
    Floors {
        cache_line,
        futex,
        syscall_ns,
        memcpy_gb_per_s,
        memcpy_block: measure::MEMCPY_BLOCK,
        cache_line_after: None,
        futex_after: None,
    }
}

/// Measures only the latency of a two-process floor.
fn latency_only(row: RowId, setup: &Setup<'_>) -> Fallible<measure::Latency> {
    let plan = setup.plan.clone();
    let (dir, cpus, single_cpu) = (setup.dir.to_path_buf(), setup.cpus, setup.single_cpu);
    session::watch(row.name(), pinner(setup), move |hb| {
        let setup = Setup {
            plan: &plan,
            dir: &dir,
            cpus,
            single_cpu,
        };
        let mut port = rows::connect(row, &setup)?;
        let latency = measure::latencies(&mut [&mut port], &plan, hb)?;
        measure::quit(&mut *port)?;
        latency
            .into_iter()
            .next()
            .ok_or_else(|| "no latency measured".into())
    })
}

/// What a worker has measured of a group so far, kept when a later test fails.
#[derive(Default)]
struct Partial {
    /// One per row of the group, once measured; `Err(limit)` for a row whose transport
    /// cannot carry the latency test's messages.
    latency: Vec<Result<measure::Latency, usize>>,
    /// The first row's.
    throughput: Vec<SizeResult>,
    /// The test under way, to say where an error happened.
    stage: String,
}

/// The rows in the order they run, in groups: an ipcx row and its libc baseline (when
/// both are selected) are measured together, their latency tests taking turns, so that
/// the wrapper's overhead is not lost in the machine's drift between them.
fn groups(selected: &[RowId]) -> Vec<Vec<RowId>> {
    let mut out: Vec<Vec<RowId>> = Vec::new();
    for &row in selected {
        match row.baseline_of() {
            Some(of) if selected.contains(&of) => {
                if let Some(group) = out.iter_mut().find(|g| g[0] == of) {
                    group.push(row);
                }
            }
            _ => out.push(vec![row]),
        }
    }
    out
}

fn steps(group: &[RowId], plan: &Plan) -> usize {
    group.len()
        + if carries_bytes(group[0]) {
            plan.sizes.len()
        } else {
            0
        }
}

fn measure_group(group: Vec<RowId>, setup: &Setup<'_>, progress: &ProgressBar) -> Vec<Row> {
    let plan = setup.plan.clone();
    let (dir, cpus, single_cpu) = (setup.dir.to_path_buf(), setup.cpus, setup.single_cpu);
    let bar = progress.clone();
    let before = progress.position();
    let steps = steps(&group, &plan);
    let name: Vec<&str> = group.iter().map(|r| r.name()).collect();
    let name = name.join(" + ");
    let partial = Arc::new(Mutex::new(Partial::default()));
    let shared = partial.clone();
    let rows = group.clone();
    let label = name.clone();
    let result = session::watch(group[0].name(), pinner(setup), move |hb| {
        let update = |f: &mut dyn FnMut(&mut Partial)| {
            f(&mut shared.lock().unwrap_or_else(|p| p.into_inner()));
        };
        let setup = Setup {
            plan: &plan,
            dir: &dir,
            cpus,
            single_cpu,
        };
        let mut ports = Vec::new();
        for &row in &rows {
            update(&mut |p| p.stage = format!("setting up {}", row.name()));
            bar.set_message(format!("{label}: setting up"));
            ports.push(rows::connect(row, &setup)?);
        }
        update(&mut |p| p.stage = "latency".into());
        bar.set_message(format!("{label}: latency"));
        let limits: Vec<Option<usize>> = ports
            .iter()
            .map(|p| measure::ping_limit(&**p, &plan))
            .collect();
        let mut fit: Vec<&mut Box<dyn port::Port>> = ports
            .iter_mut()
            .zip(&limits)
            .filter(|(_, limit)| limit.is_none())
            .map(|(p, _)| p)
            .collect();
        let mut measured = measure::latencies(&mut fit, &plan, hb)?.into_iter();
        let latency: Vec<Result<measure::Latency, usize>> = limits
            .iter()
            .map(|limit| match limit {
                Some(max) => Err(*max),
                None => measured.next().ok_or(0),
            })
            .collect();
        update(&mut |p| p.latency = latency.clone());
        bar.inc(rows.len() as u64);
        let first = &mut *ports[0];
        if let Carries::Bytes { max } = first.carries() {
            for &size in &plan.sizes {
                let stage = format!("throughput {}", report::size(size));
                bar.set_message(format!("{}: {stage}", rows[0].name()));
                update(&mut |p| p.stage = stage.clone());
                let result = if size > max {
                    SizeResult {
                        size,
                        throughput: None,
                        memcpy_ratio: None,
                        limit: Some(max),
                    }
                } else {
                    SizeResult {
                        size,
                        throughput: Some(measure::throughput(first, size, &plan, hb)?),
                        memcpy_ratio: None,
                        limit: None,
                    }
                };
                update(&mut |p| p.throughput.push(result.clone()));
                bar.inc(1);
            }
        }
        update(&mut |p| p.stage = "stopping the peer".into());
        for port in &mut ports {
            measure::quit(&mut **port)?;
        }
        Ok(())
    });
    // Whatever happened, the bar moves past this group's steps.
    progress.set_position(before + steps as u64);
    let p = std::mem::take(&mut *partial.lock().unwrap_or_else(|p| p.into_inner()));
    let mut latency = p.latency.into_iter();
    let mut out: Vec<Row> = group
        .iter()
        .map(|&row| {
            let mut r = Row::new(row);
            match latency.next() {
                Some(Ok(l)) => r.latency = Some(l),
                Some(Err(limit)) => r.latency_limit = Some(limit),
                None => {}
            }
            r
        })
        .collect();
    out[0].throughput = p.throughput;
    if let Err(e) = result {
        let e = if group.len() > 1 {
            format!("{} (measured together with {name}): {e}", p.stage)
        } else {
            format!("{}: {e}", p.stage)
        };
        for r in &mut out {
            r.error = Some(e.clone());
        }
    }
    out
}
