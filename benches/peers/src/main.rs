//! The ring channel beside its peers: `ipcx bench`'s round-trip ping-pong run through
//! ipcx's ring, iceoryx2 and ipc-channel in one run, with the machine's floors measured
//! in the same run.
//!
//! ```text
//! cargo run --release --manifest-path benches/peers/Cargo.toml -- [OPTIONS]
//! ```
//!
//! Every row is two real processes: this program and a second copy of itself (the
//! peer), pinned to two CPUs. This side sends a 64-byte ping, the peer sends it back, and
//! this side times each round trip; one echo is checked byte for byte, a tenth of the
//! test is a discarded warm-up, then each round trip of the test (1 s by default) goes
//! into an HDR histogram. Each row is compared with its floor (busy rows with the
//! cache-line ping-pong, blocking rows with the futex ping-pong) and with `ring-busy`.
//! See README.md for every configuration choice.

mod floor;
mod iox;
mod ipcc;
mod machine;
mod measure;
mod peer;
mod report;
mod ring;

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use ipcx::ring::Wait as RingWait;

use crate::machine::Machine;
use crate::measure::{Latency, Port, Stop};
use crate::report::{Report, RowResult, Settings};

/// Errors: a message for the row (or the run) they end.
pub type Fallible<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The round trips of `--quick`, as `ipcx bench --quick`.
const QUICK_ITERATIONS: u64 = 300;

/// A row: a mechanism measured between two processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowId {
    /// The busy floor: one cache line bounced between the two CPUs.
    Cacheline,
    /// The blocking floor: futex wake-ups.
    Futex,
    RingBusy,
    Ring,
    RingBlocking,
    RingBusyLoan,
    IoxBusy,
    IoxBusyPreloan,
    IoxEvent,
    IpcChannel,
    IpcChannelBytes,
}

/// How a row waits, which decides its floor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Wait {
    /// Spins on shared memory: compared with the cache-line floor.
    Busy,
    /// Sleeps in the kernel: compared with the futex floor.
    Blocking,
}

impl RowId {
    /// Every row, in the order they run: the floors first.
    pub const ALL: [RowId; 11] = [
        RowId::Cacheline,
        RowId::Futex,
        RowId::RingBusy,
        RowId::Ring,
        RowId::RingBlocking,
        RowId::RingBusyLoan,
        RowId::IoxBusy,
        RowId::IoxBusyPreloan,
        RowId::IoxEvent,
        RowId::IpcChannel,
        RowId::IpcChannelBytes,
    ];

    /// The row's name, as `--only` takes it.
    pub fn name(self) -> &'static str {
        match self {
            RowId::Cacheline => "cache-line",
            RowId::Futex => "futex",
            RowId::RingBusy => "ring-busy",
            RowId::Ring => "ring",
            RowId::RingBlocking => "ring-blocking",
            RowId::RingBusyLoan => "ring-busy-loan",
            RowId::IoxBusy => "iceoryx2-busy",
            RowId::IoxBusyPreloan => "iceoryx2-busy-preloan",
            RowId::IoxEvent => "iceoryx2-event",
            RowId::IpcChannel => "ipc-channel",
            RowId::IpcChannelBytes => "ipc-channel-bytes",
        }
    }

    /// What the row measures, in a few words.
    pub fn what(self) -> &'static str {
        match self {
            RowId::Cacheline => "floor: one cache line bounced between the CPUs",
            RowId::Futex => "floor: futex wake ping-pong",
            RowId::RingBusy => "ipcx ring, busy polling (`ring:` with wait=busy), as `ipcx bench`",
            RowId::Ring => {
                "ipcx ring, adaptive: spin, yield, then futex (`ring:`), as `ipcx bench`"
            }
            RowId::RingBlocking => {
                "ipcx ring, futex waits (`ring:` with wait=blocking), as `ipcx bench`"
            }
            RowId::RingBusyLoan => "ipcx ring, busy, zero-copy: loan/commit and recv_ref",
            RowId::IoxBusy => "iceoryx2 publish-subscribe, zero-copy loans, polling receive",
            RowId::IoxBusyPreloan => {
                "iceoryx2-busy, the next sample loaned while waiting (iceoryx2's own benchmark)"
            }
            RowId::IoxEvent => {
                "iceoryx2 publish-subscribe + event service: notify, Listener::blocking_wait"
            }
            RowId::IpcChannel => "ipc-channel IpcSender/IpcReceiver<Vec<u8>> (serde, postcard)",
            RowId::IpcChannelBytes => "ipc-channel IpcBytesSender/IpcBytesReceiver (raw bytes)",
        }
    }

    /// How the row waits.
    pub fn wait(self) -> Wait {
        match self {
            RowId::Cacheline
            | RowId::RingBusy
            | RowId::Ring
            | RowId::RingBusyLoan
            | RowId::IoxBusy
            | RowId::IoxBusyPreloan => Wait::Busy,
            _ => Wait::Blocking,
        }
    }

    /// Whether the row is one of the machine's floors.
    pub fn is_floor(self) -> bool {
        matches!(self, RowId::Cacheline | RowId::Futex)
    }

    fn parse(s: &str) -> Result<RowId, String> {
        RowId::ALL
            .into_iter()
            .find(|r| r.name() == s.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = RowId::ALL.iter().map(|r| r.name()).collect();
                format!("unknown row `{s}`; the rows are: {}", names.join(", "))
            })
    }
}

/// Where the peers run and what they carry.
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    /// The ping's size in bytes.
    pub ping: usize,
    /// This side's CPU and the peer's.
    pub cpus: Option<(usize, usize)>,
    /// Busy waits yield (both processes share one CPU).
    pub single_cpu: bool,
}

impl Setup {
    /// The command line of `row`'s peer.
    pub fn spec<'a>(&self, row: &'static str, args: &'a [String]) -> peer::Spec<'a> {
        peer::Spec {
            row,
            cpu: self.cpus.map(|(_, peer)| peer),
            single_cpu: self.single_cpu,
            ping: self.ping,
            args,
        }
    }
}

/// The command line, parsed.
struct Args {
    only: Option<Vec<RowId>>,
    stop: Stop,
    ping: usize,
    json: bool,
    list: bool,
}

const USAGE: &str = "\
usage: ipcx-peers-bench [--only ROWS] [--duration SECS | --iterations N | --quick]
                        [--ping-size BYTES] [--json] [--list]

The ipcx bench's round-trip ping-pong through ipcx's ring, iceoryx2 and ipc-channel,
between two processes pinned to two CPUs, with the cache-line and futex floors measured
in the same run.

  --only ROWS        run only these rows (comma-separated; the floors always run)
  --duration SECS    seconds per test (default 1)
  --iterations N     exactly N round trips per test instead of a time
  --quick            300 round trips per test (a smoke run)
  --ping-size BYTES  the message size (default 64, at most 65536)
  --json             print the results as JSON instead of the table
  --list             list the rows and exit";

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut out = Args {
        only: None,
        stop: Stop::Time(Duration::from_secs(1)),
        ping: 64,
        json: false,
        list: false,
    };
    let mut stops = 0;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag {
            "--only" => {
                let rows = value("--only")?
                    .split(',')
                    .map(RowId::parse)
                    .collect::<Result<Vec<_>, _>>()?;
                out.only = Some(rows);
            }
            "--duration" => {
                let v = value("--duration")?;
                match v.parse::<f64>() {
                    Ok(d) if d.is_finite() && d > 0.0 && d <= 3600.0 => {
                        out.stop = Stop::Time(Duration::from_secs_f64(d));
                    }
                    _ => return Err(format!("`{v}` is not a duration in seconds (0 to 3600)")),
                }
                stops += 1;
            }
            "--iterations" => {
                let v = value("--iterations")?;
                match v.parse::<u64>() {
                    Ok(n) if n >= 1 => out.stop = Stop::Count(n),
                    _ => return Err(format!("`{v}` is not a number of round trips (1 or more)")),
                }
                stops += 1;
            }
            "--quick" => {
                out.stop = Stop::Count(QUICK_ITERATIONS);
                stops += 1;
            }
            "--ping-size" => {
                let v = value("--ping-size")?;
                match v.parse::<usize>() {
                    Ok(n) if (1..=65536).contains(&n) => out.ping = n,
                    _ => return Err(format!("`{v}` is not a message size (1 to 65536 bytes)")),
                }
            }
            "--json" => out.json = true,
            "--list" => out.list = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if stops > 1 {
        return Err("--duration, --iterations and --quick exclude each other".into());
    }
    Ok(out)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("peer") {
        return peer_main(&args[1..]);
    }
    let args = match parse_args(&args) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("ipcx-peers-bench: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.list {
        for row in RowId::ALL {
            println!(
                "{:<18} {:<9} {}",
                row.name(),
                wait_name(row.wait()),
                row.what()
            );
        }
        return ExitCode::SUCCESS;
    }
    match run(&args) {
        Ok(report) => {
            if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        eprintln!("ipcx-peers-bench: cannot write JSON: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{}", report.table());
            }
            if report.errors > 0 {
                eprintln!(
                    "ipcx-peers-bench: {} row(s) failed (see the table)",
                    report.errors
                );
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("ipcx-peers-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn wait_name(w: Wait) -> &'static str {
    match w {
        Wait::Busy => "busy",
        Wait::Blocking => "blocking",
    }
}

fn run(args: &Args) -> Fallible<Report> {
    let mut machine = Machine::detect();
    let setup = Setup {
        ping: args.ping,
        cpus: machine.pinned,
        single_cpu: machine.pinned.is_none(),
    };
    measure::yield_when_spinning(setup.single_cpu);
    let mut signals = peer::signals()?;
    let rows: Vec<RowId> = RowId::ALL
        .into_iter()
        .filter(|r| r.is_floor() || args.only.as_ref().is_none_or(|o| o.contains(r)))
        .collect();
    // A progress line, only for a person watching.
    let progress = std::io::stderr().is_terminal();
    let mut results = Vec::new();
    for row in rows {
        if progress {
            eprint!("\rmeasuring {:<20}", row.name());
        }
        let result = measure_row(row, setup, args.stop, &mut signals);
        results.push(RowResult::new(row, result));
    }
    if progress {
        eprint!("\r{:<31}\r", "");
    }
    machine.load_after = machine::load();
    Ok(Report::new(
        command_line(),
        machine,
        Settings::new(args.stop, args.ping),
        results,
    ))
}

/// The command as typed, for the report.
fn command_line() -> String {
    let mut words = vec!["ipcx-peers-bench".to_string()];
    words.extend(std::env::args().skip(1));
    words.join(" ")
}

/// Measures one row in a worker thread pinned to this side's CPU, as `ipcx bench`
/// does, and watches it from this thread: the worker starts the peer, runs the
/// ping-pong, tells the peer to quit and waits for it (or kills it on an error). A row
/// that stalls is given up: its peer is killed, its objects removed, and its worker left
/// blocked where it is.
fn measure_row(
    row: RowId,
    setup: Setup,
    stop: Stop,
    signals: &mut signal_hook::iterator::Signals,
) -> Fallible<Latency> {
    let id = peer::begin(row.name());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(format!("peers-{}", row.name()))
        .spawn(move || {
            peer::adopt(id);
            if let Some((cpu, _)) = setup.cpus {
                // Without the pin the numbers are noisier, not wrong: go on.
                if let Err(e) = machine::pin_current_thread(cpu) {
                    eprintln!("ipcx-peers-bench: {e}");
                }
            }
            // The peer's parent-death signal fires when the thread that started it ends:
            // this thread ends the peer itself before it returns.
            let result = match drive_row(row, &setup, stop) {
                Ok(latency) => {
                    peer::stage("waiting for the peer to exit");
                    peer::end(id, false).map(|()| latency)
                }
                Err(e) => match peer::end(id, true) {
                    Ok(()) => Err(e),
                    Err(said) => Err(format!("{e}; {said}").into()),
                },
            };
            let _ = tx.send(result.map_err(|e| e.to_string()));
        })?;
    loop {
        // Rarely: this thread shares the two CPUs with the measurement.
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(result) => return result.map_err(Into::into),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let _ = peer::end(id, true);
                return Err("the row's worker thread panicked".into());
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                peer::interrupted(signals);
                if let Some(why) = peer::stalled(id) {
                    return match peer::end(id, true) {
                        Ok(()) => Err(why.into()),
                        Err(said) => Err(format!("{why}; {said}").into()),
                    };
                }
            }
        }
    }
}

fn drive_row(row: RowId, setup: &Setup, stop: Stop) -> Fallible<Latency> {
    let name = row.name();
    match row {
        RowId::Cacheline | RowId::Futex => {
            let (region, fd) = floor::create(&format!("ipcx-peers-{name}"))?;
            let stdout = peer::spawn(&setup.spec(name, &[]), Stdio::from(fd))?;
            peer::read_ready(stdout)?;
            if row == RowId::Cacheline {
                drive(&mut floor::CachelinePort::new(region), setup, stop)
            } else {
                drive(&mut floor::FutexPort::new(region), setup, stop)
            }
        }
        RowId::RingBusy | RowId::Ring | RowId::RingBlocking => {
            let wait = match row {
                RowId::RingBusy => RingWait::Busy,
                RowId::Ring => RingWait::Adaptive,
                _ => RingWait::Blocking,
            };
            drive(
                &mut ring::ChannelPort::connect(name, wait, setup)?,
                setup,
                stop,
            )
        }
        RowId::RingBusyLoan => drive(&mut ring::LoanPort::connect(name, setup)?, setup, stop),
        RowId::IoxBusy | RowId::IoxBusyPreloan | RowId::IoxEvent => {
            let mode = match row {
                RowId::IoxBusy => iox::Mode::Busy,
                RowId::IoxBusyPreloan => iox::Mode::Preloan,
                _ => iox::Mode::Event,
            };
            drive(&mut iox::IoxPort::connect(name, mode, setup)?, setup, stop)
        }
        RowId::IpcChannel => drive(&mut ipcc::TypedPort::connect(name, setup)?, setup, stop),
        RowId::IpcChannelBytes => drive(&mut ipcc::BytesPort::connect(name, setup)?, setup, stop),
    }
}

fn drive(port: &mut impl Port, setup: &Setup, stop: Stop) -> Fallible<Latency> {
    let latency = measure::latency(port, setup.ping, stop)?;
    peer::stage("telling the peer to quit");
    measure::quit(port)?;
    Ok(latency)
}

/// The peer process: `peer ROW PARENT-PID CPU|- YIELD(0|1) PING ARGS...`.
fn peer_main(args: &[String]) -> ExitCode {
    match run_peer(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run_peer(args: &[String]) -> Fallible<()> {
    let [row, parent, cpu, single_cpu, ping, rest @ ..] = args else {
        return Err(
            "this is the peer of ipcx-peers-bench, started by it; run it without \
                    `peer`"
                .into(),
        );
    };
    let row = RowId::parse(row)?;
    let parent: u32 = parent.parse()?;
    let ping: usize = ping.parse()?;
    // Die with the initiating side: a peer blocked in a wait would otherwise wait for ever.
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
    if rustix::process::getppid().map(|p| p.as_raw_nonzero().get() as u32) != Some(parent) {
        return Err("the initiating side exited before its peer started".into());
    }
    if cpu != "-" {
        machine::pin_current_thread(cpu.parse()?)?;
    }
    measure::yield_when_spinning(single_cpu == "1");
    match row {
        RowId::Cacheline | RowId::Futex => {
            let fd = std::io::stdin().as_fd().try_clone_to_owned()?;
            let region = floor::adopt(fd)?;
            peer::say_ready("")?;
            if row == RowId::Cacheline {
                measure::serve(&mut floor::CachelinePort::new(region))
            } else {
                measure::serve(&mut floor::FutexPort::new(region))
            }
        }
        RowId::RingBusy | RowId::Ring | RowId::RingBlocking => {
            measure::serve(&mut ring::ChannelPort::peer(rest)?)
        }
        RowId::RingBusyLoan => measure::serve(&mut ring::LoanPort::peer(rest)?),
        RowId::IoxBusy | RowId::IoxBusyPreloan | RowId::IoxEvent => {
            measure::serve(&mut iox::IoxPort::peer(rest, ping)?)
        }
        RowId::IpcChannel => measure::serve(&mut ipcc::TypedPort::peer(rest)?),
        RowId::IpcChannelBytes => measure::serve(&mut ipcc::BytesPort::peer(rest)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Result<Args, String> {
        parse_args(&words.iter().map(|w| w.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn options_parse_as_the_bench_takes_them() {
        let a = args(&[]).unwrap();
        assert!(matches!(a.stop, Stop::Time(d) if d == Duration::from_secs(1)));
        assert_eq!(a.ping, 64);
        let a = args(&[
            "--only",
            "ring-busy,iceoryx2-busy",
            "--iterations=1000",
            "--json",
        ])
        .unwrap();
        assert_eq!(a.only, Some(vec![RowId::RingBusy, RowId::IoxBusy]));
        assert!(matches!(a.stop, Stop::Count(1000)));
        assert!(a.json);
        assert!(matches!(
            args(&["--quick"]).unwrap().stop,
            Stop::Count(QUICK_ITERATIONS)
        ));
    }

    #[test]
    fn bad_options_say_what_is_wrong() {
        let e = args(&["--only", "ring,nope"]).err().unwrap();
        assert!(
            e.contains("unknown row `nope`") && e.contains("ring-busy"),
            "{e}"
        );
        let e = args(&["--quick", "--duration", "2"]).err().unwrap();
        assert!(e.contains("exclude each other"), "{e}");
        assert!(
            args(&["--ping-size", "0"])
                .err()
                .unwrap()
                .contains("1 to 65536")
        );
        assert!(
            args(&["--duration"])
                .err()
                .unwrap()
                .contains("needs a value")
        );
    }

    #[test]
    fn every_row_has_a_unique_name_that_parses_back() {
        for row in RowId::ALL {
            assert_eq!(RowId::parse(row.name()), Ok(row));
        }
    }
}
