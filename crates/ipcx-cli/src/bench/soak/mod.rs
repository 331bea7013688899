//! `ipcx bench --soak DURATION`: every mechanism under load at once, every message
//! checked.
//!
//! For each mechanism the bench is the consumer (one thread per link) and starts
//! producer processes (`ipcx soak-child`, see [`producer`]) that send numbered,
//! checksummed messages of varied sizes as fast as the transport takes them for the
//! whole duration. All mechanisms run at the same time, so each is soaked while the
//! others load the machine. How the producers share a mechanism depends on it:
//!
//! - **shared** (unix-dgram, udp, mq, sysv-mq, mailbox): all producers send to one
//!   receiving endpoint, which is what these transports are for;
//! - **own link** (pipe, fifo, unix, unix-seqpacket, tcp): each producer has its own
//!   pipe, FIFO or connection, and the consumer reads them all at once. A byte stream
//!   carries one writer: writers sharing one would interleave the bytes of frames larger
//!   than `PIPE_BUF`, and a channel-layer receiver of a connection serves one sender at
//!   a time;
//! - **single** (ring, shm): one producer, since these channels carry one sender for
//!   their life (single-producer, single-consumer).
//!
//! The consumer checks each message whole ([`wire`]): header, length, checksum, and the
//! bytes regenerated from (producer, sequence number). Per producer, it tells a message
//! that arrives after a later one (reordered) from one that arrives twice (duplicated);
//! what a producer reports having sent and the consumer never received is lost. UDP
//! does not hold back a fast sender, so its producers keep at most a window of messages
//! unacknowledged (credits on their stdin); mailbox producers make every
//! [`ACK_EVERY`]-th message a request and wait for its reply. Peak memory is each
//! process's VmHWM: every producer's, and the bench's (all consumers are its threads).
//!
//! `IPCX_SOAK_FAULT=skip|duplicate|corrupt|reorder` in the environment makes every
//! producer commit that fault once (see [`producer`]): the checker's self-test, which
//! the command's tests run to show each fault is found on every transport.

mod producer;
mod wire;

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{ChildStdin, Command, ExitCode, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipcx::ErrorKind;
use ipcx::addr::Address;
use ipcx::channel::{self, StreamReceiver};
use ipcx::pipe::PipeReader;
use serde::{Deserialize, Serialize};

pub use producer::main as producer_main;

use super::Fallible;
use super::rows::escape_path;
use super::session::{self, Object, REGISTRY};
use wire::{Checker, HEADER};

/// Mailbox producers wait for a reply every this many messages; a UDP consumer returns
/// one credit byte per this many.
pub const ACK_EVERY: u64 = 4;
/// UDP: messages a producer may have unacknowledged.
const UDP_WINDOW: u64 = 16;
/// How long after the duration the consumers wait for the producers' last messages.
const GRACE: Duration = Duration::from_secs(20);
/// How often a consumer looks up from its receive.
const TICK: Duration = Duration::from_millis(200);

/// The mechanisms of the soak, in the order they are reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mech {
    Pipe,
    Fifo,
    Unix,
    UnixDgram,
    UnixSeqpacket,
    Tcp,
    Udp,
    Mq,
    SysvMq,
    Shm,
    Ring,
    Mailbox,
}

const ALL: [Mech; 12] = [
    Mech::Pipe,
    Mech::Fifo,
    Mech::Unix,
    Mech::UnixDgram,
    Mech::UnixSeqpacket,
    Mech::Tcp,
    Mech::Udp,
    Mech::Mq,
    Mech::SysvMq,
    Mech::Shm,
    Mech::Ring,
    Mech::Mailbox,
];

/// How a mechanism's producers share it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Sharing {
    /// All producers send to one receiving endpoint.
    Shared,
    /// Each producer has its own pipe, FIFO or connection.
    OwnLink,
    /// One producer: the channel carries one sender.
    Single,
}

impl Mech {
    fn name(self) -> &'static str {
        match self {
            Mech::Pipe => "pipe",
            Mech::Fifo => "fifo",
            Mech::Unix => "unix",
            Mech::UnixDgram => "unix-dgram",
            Mech::UnixSeqpacket => "unix-seqpacket",
            Mech::Tcp => "tcp",
            Mech::Udp => "udp",
            Mech::Mq => "mq",
            Mech::SysvMq => "sysv-mq",
            Mech::Shm => "shm",
            Mech::Ring => "ring",
            Mech::Mailbox => "mailbox",
        }
    }

    fn sharing(self) -> Sharing {
        match self {
            Mech::UnixDgram | Mech::Udp | Mech::Mq | Mech::SysvMq | Mech::Mailbox => {
                Sharing::Shared
            }
            Mech::Pipe | Mech::Fifo | Mech::Unix | Mech::UnixSeqpacket | Mech::Tcp => {
                Sharing::OwnLink
            }
            Mech::Shm | Mech::Ring => Sharing::Single,
        }
    }

    /// The largest payload sent (the transport's own limit may be lower: queues).
    fn max_payload(self) -> usize {
        match self {
            // Small datagrams, so that a window of them fits the receive buffer.
            Mech::Udp => 1400,
            Mech::UnixDgram | Mech::UnixSeqpacket | Mech::Mailbox | Mech::Shm => 32 << 10,
            _ => 64 << 10,
        }
    }
}

/// One mechanism's result.
#[derive(Debug, Serialize)]
struct MechResult {
    mechanism: &'static str,
    sharing: Sharing,
    producers: u32,
    /// Data messages the producers sent (their own count).
    sent: u64,
    /// Distinct data messages received whole.
    messages: u64,
    /// Payload bytes of those.
    bytes: u64,
    lost: u64,
    torn: u64,
    duplicated: u64,
    reordered: u64,
    /// What went wrong besides the counts: setup, receive and producer errors.
    errors: Vec<String>,
    /// The highest peak resident memory (VmHWM) of its producer processes, KiB.
    producer_peak_kib: u64,
}

impl MechResult {
    fn new(mech: Mech, producers: u32) -> MechResult {
        MechResult {
            mechanism: mech.name(),
            sharing: mech.sharing(),
            producers,
            sent: 0,
            messages: 0,
            bytes: 0,
            lost: 0,
            torn: 0,
            duplicated: 0,
            reordered: 0,
            errors: Vec::new(),
            producer_peak_kib: 0,
        }
    }

    fn clean(&self) -> bool {
        self.lost + self.torn + self.duplicated + self.reordered == 0 && self.errors.is_empty()
    }
}

/// The whole run's result.
#[derive(Debug, Serialize)]
struct SoakReport {
    ipcx_version: &'static str,
    duration_s: f64,
    producers_per_mechanism: u32,
    mechanisms: Vec<MechResult>,
    /// Sums over the mechanisms.
    messages: u64,
    bytes: u64,
    lost: u64,
    torn: u64,
    duplicated: u64,
    reordered: u64,
    errors: usize,
    /// Peak resident memory (VmHWM) of the bench itself, where all consumers run, KiB.
    bench_peak_kib: u64,
    /// The highest VmHWM of any producer process, KiB.
    producer_peak_kib: u64,
    /// The sum of every producer process's VmHWM, KiB: a bound on what they held at once.
    producers_peak_sum_kib: u64,
    /// Every message of every mechanism arrived whole, once and in order, and nothing
    /// failed.
    ok: bool,
}

/// Runs the soak and prints its report; exit status 1 if anything was lost, torn,
/// duplicated or reordered, or failed.
pub fn run(duration: Duration, producers: u32, json: bool) -> ExitCode {
    let result = soak(duration, producers);
    session::wait_if_interrupted();
    REGISTRY.shutdown();
    match result {
        Ok(report) => {
            if json {
                match serde_json::to_string_pretty(&report) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        eprintln!("ipcx bench: cannot write JSON: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{}", table(&report));
            }
            if report.ok {
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "ipcx bench --soak: FAILED: {} lost, {} torn, {} duplicated, {} reordered, \
                     {} errors",
                    report.lost, report.torn, report.duplicated, report.reordered, report.errors
                );
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("ipcx bench --soak: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One link the consumer reads, and what it needs to.
struct Link {
    mech: Mech,
    from: LinkFrom,
    /// The producers that send on it.
    ids: Vec<u32>,
    /// UDP: each producer's credit pipe.
    credits: Vec<(u32, ChildStdin)>,
    buf_len: usize,
}

enum LinkFrom {
    Channel(Box<dyn channel::Receiver + Send>),
    Mailbox(ipcx::mailbox::Mailbox),
}

/// What a link's consumer found.
struct LinkResult {
    mech: Mech,
    checker: Checker,
    errors: Vec<String>,
}

/// A producer process started for a mechanism.
struct Started {
    mech: Mech,
    producer: u32,
}

fn soak(duration: Duration, producers: u32) -> Fallible<SoakReport> {
    session::handle_signals(|| {})?;
    let dir = REGISTRY.create_dir()?;
    let millis = duration.as_millis().max(1) as u64;
    let mut started: Vec<Started> = Vec::new();
    let mut links: Vec<Link> = Vec::new();
    let mut results: Vec<MechResult> = Vec::new();
    let mut next_id = 0u32;
    for mech in ALL {
        let n = if mech.sharing() == Sharing::Single {
            1
        } else {
            producers
        };
        let mut result = MechResult::new(mech, n);
        let ids: Vec<u32> = (next_id..next_id + n).collect();
        next_id += n;
        match set_up(mech, &dir, &ids, millis, &mut started) {
            Ok(mut l) => links.append(&mut l),
            Err(e) => result.errors.push(format!("setting up: {e}")),
        }
        results.push(result);
    }
    let stop_at = Instant::now() + duration + GRACE;
    let threads: Vec<(Mech, JoinHandle<LinkResult>)> = links
        .into_iter()
        .map(|link| {
            let mech = link.mech;
            let handle = std::thread::Builder::new()
                .name(format!("soak-{}", mech.name()))
                .spawn(move || consume(link, stop_at));
            (mech, handle)
        })
        .filter_map(|(mech, h)| match h {
            Ok(h) => Some((mech, h)),
            Err(e) => {
                eprintln!(
                    "ipcx bench --soak: cannot start a consumer for {}: {e}",
                    mech.name()
                );
                None
            }
        })
        .collect();
    let mut found: Vec<LinkResult> = Vec::new();
    for (mech, handle) in threads {
        match handle.join() {
            Ok(r) => found.push(r),
            Err(_) => found.push(LinkResult {
                mech,
                checker: Checker::new(&[]),
                errors: vec!["the consumer thread panicked".into()],
            }),
        }
    }
    let ends = REGISTRY.end_peers(false);
    let bench_peak_kib = producer::vm_hwm("self");

    // Each producer's own count, beside what its consumer received.
    let mut reports: HashMap<u32, producer::Report> = HashMap::new();
    let (mut peak_max, mut peak_sum) = (0, 0);
    for (who, end) in started.iter().zip(&ends) {
        let result = results.iter_mut().find(|r| r.mechanism == who.mech.name());
        let report = end.stderr.lines().find_map(|l| {
            serde_json::from_str::<producer::Report>(l.strip_prefix("SOAK-REPORT ")?).ok()
        });
        match (report, result) {
            (Some(report), Some(result)) => {
                if let Some(e) = &report.error {
                    result.errors.push(e.clone());
                }
                result.producer_peak_kib = result.producer_peak_kib.max(report.peak_kib);
                peak_max = peak_max.max(report.peak_kib);
                peak_sum += report.peak_kib;
                reports.insert(who.producer, report);
            }
            (None, Some(result)) => result.errors.push(format!(
                "producer {}: no report{}",
                who.producer,
                end.failure().map(|f| format!(": {f}")).unwrap_or_default()
            )),
            _ => {}
        }
    }
    for link in &found {
        let Some(result) = results.iter_mut().find(|r| r.mechanism == link.mech.name()) else {
            continue;
        };
        result.errors.extend(link.errors.iter().cloned());
        result.torn += link.checker.torn;
        if let Some(why) = &link.checker.first_torn {
            result.errors.push(format!("first torn message: {why}"));
        }
        for (id, tally) in link.checker.tallies() {
            result.messages += tally.received;
            result.bytes += tally.bytes;
            result.duplicated += tally.duplicated;
            result.reordered += tally.reordered;
            let sent = reports.get(&id).map(|r| r.sent).or(tally.end);
            match sent {
                Some(sent) => {
                    result.sent += sent;
                    result.lost += sent.saturating_sub(tally.received);
                    if tally.received > sent {
                        result.errors.push(format!(
                            "producer {id}: {} received, but it sent {sent}",
                            tally.received
                        ));
                    }
                    if tally.end.is_some_and(|e| e != sent) {
                        result.errors.push(format!(
                            "producer {id}: its end message says {:?} sent, its report {sent}",
                            tally.end
                        ));
                    }
                }
                None => result
                    .errors
                    .push(format!("producer {id}: how many it sent is unknown")),
            }
        }
    }
    let sum = |f: fn(&MechResult) -> u64| results.iter().map(f).sum::<u64>();
    let report = SoakReport {
        ipcx_version: env!("CARGO_PKG_VERSION"),
        duration_s: duration.as_secs_f64(),
        producers_per_mechanism: producers,
        messages: sum(|r| r.messages),
        bytes: sum(|r| r.bytes),
        lost: sum(|r| r.lost),
        torn: sum(|r| r.torn),
        duplicated: sum(|r| r.duplicated),
        reordered: sum(|r| r.reordered),
        errors: results.iter().map(|r| r.errors.len()).sum(),
        ok: results.iter().all(MechResult::clean),
        bench_peak_kib,
        producer_peak_kib: peak_max,
        producers_peak_sum_kib: peak_sum,
        mechanisms: results,
    };
    Ok(report)
}

/// Creates the receiving side(s) of `mech` and starts its producers `ids`.
fn set_up(
    mech: Mech,
    dir: &Path,
    ids: &[u32],
    millis: u64,
    started: &mut Vec<Started>,
) -> Fallible<Vec<Link>> {
    let path = |what: &str| escape_path(dir.join(what).as_os_str().as_bytes());
    let pid = std::process::id();
    let max = mech.max_payload();
    let spawn = |producer: u32, to: String, extra: Option<String>, stdin: Stdio, stdout: Stdio| {
        let spec = producer::Spec {
            mech,
            parent: pid,
            producer,
            to,
            dir: extra,
            millis,
            max_payload: max,
            window: (mech == Mech::Udp).then_some(UDP_WINDOW),
        };
        start(&spec, stdin, stdout)
    };
    let link = |from: LinkFrom, ids: Vec<u32>| {
        let buf_len = match &from {
            LinkFrom::Channel(rx) => rx.max_message().min(HEADER + max),
            LinkFrom::Mailbox(_) => 0,
        };
        Link {
            mech,
            from,
            ids,
            credits: Vec::new(),
            buf_len,
        }
    };
    let mut links = Vec::new();
    match mech.sharing() {
        Sharing::Shared => {
            let from = match mech {
                Mech::Mailbox => {
                    let mdir = dir.join("mailbox");
                    std::fs::DirBuilder::new().mode(0o700).create(&mdir)?;
                    let mailbox = ipcx::mailbox::MailboxOptions::new()
                        .dir(&mdir)
                        .bind("consumer")?;
                    let to = mailbox.path().display().to_string();
                    for &id in ids {
                        spawn(
                            id,
                            to.clone(),
                            Some(mdir.display().to_string()),
                            Stdio::null(),
                            Stdio::null(),
                        )?;
                        started.push(Started { mech, producer: id });
                    }
                    links.push(link(LinkFrom::Mailbox(mailbox), ids.to_vec()));
                    return Ok(links);
                }
                Mech::UnixDgram => format!("unix-dgram:{}", path("unix-dgram.sock")),
                Mech::Udp => "udp:127.0.0.1:0".into(),
                Mech::Mq => {
                    let name = format!("/ipcx-soak-{pid}-mq");
                    REGISTRY.track(Object::Mq(name.clone()));
                    format!("mq:{name}")
                }
                _ => {
                    let key = session::free_sysv_key(0x50a4)?;
                    REGISTRY.track(Object::SysvMq(key));
                    format!("sysv-mq:{:#x}", key.raw())
                }
            };
            let addr: Address = from.parse()?;
            let rx = channel::receiver(&addr)?;
            let to = rx.address().unwrap_or(addr).to_string();
            let mut l = link(LinkFrom::Channel(rx), ids.to_vec());
            for &id in ids {
                let udp = mech == Mech::Udp;
                let stdin = if udp { Stdio::piped() } else { Stdio::null() };
                let (credit, _) = spawn(id, to.clone(), None, stdin, Stdio::null())?;
                started.push(Started { mech, producer: id });
                if let Some(credit) = credit {
                    l.credits.push((id, credit));
                }
            }
            links.push(l);
        }
        Sharing::OwnLink | Sharing::Single => {
            for &id in ids {
                let rx: Box<dyn channel::Receiver + Send> = if mech == Mech::Pipe {
                    let (_, stdout) =
                        spawn(id, "pipe:".into(), None, Stdio::null(), Stdio::piped())?;
                    started.push(Started { mech, producer: id });
                    let stdout = stdout.ok_or("the pipe producer has no stdout")?;
                    Box::new(StreamReceiver::from_pipe(PipeReader::try_from(
                        OwnedFd::from(stdout),
                    )?))
                } else {
                    let from = match mech {
                        Mech::Fifo => format!("fifo:{}", path(&format!("fifo-{id}"))),
                        Mech::Unix => format!("unix:{}", path(&format!("unix-{id}.sock"))),
                        Mech::UnixSeqpacket => {
                            format!("unix-seqpacket:{}", path(&format!("seqpacket-{id}.sock")))
                        }
                        Mech::Tcp => "tcp:127.0.0.1:0".into(),
                        Mech::Shm | Mech::Ring => {
                            let name = format!("/ipcx-soak-{pid}-{}", mech.name());
                            REGISTRY.track(Object::Shm(name.clone()));
                            format!("{}:{name}", mech.name())
                        }
                        _ => return Err(format!("{} has no own-link form", mech.name()).into()),
                    };
                    let addr: Address = from.parse()?;
                    let rx = channel::receiver(&addr)?;
                    let to = rx.address().unwrap_or(addr).to_string();
                    spawn(id, to, None, Stdio::null(), Stdio::null())?;
                    started.push(Started { mech, producer: id });
                    rx
                };
                links.push(link(LinkFrom::Channel(rx), vec![id]));
            }
        }
    }
    Ok(links)
}

/// Starts a producer with `spec`, in a process group of its own (a Ctrl-C reaches the
/// bench, which stops it and cleans up), and returns its piped stdin and stdout.
fn start(
    spec: &producer::Spec,
    stdin: Stdio,
    stdout: Stdio,
) -> Fallible<(Option<ChildStdin>, Option<std::process::ChildStdout>)> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find this program to start a producer: {e}"))?;
    let mut child = Command::new(&exe)
        .arg("soak-child")
        .arg(serde_json::to_string(spec)?)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start a producer {}: {e}", exe.display()))?;
    let (stdin, stdout) = (child.stdin.take(), child.stdout.take());
    REGISTRY.add_peer(child)?;
    Ok((stdin, stdout))
}

/// Reads and checks one link until every producer on it has sent its end message (or
/// its stream ended), or until `stop_at`.
fn consume(mut link: Link, stop_at: Instant) -> LinkResult {
    let mut checker = Checker::new(&link.ids);
    let mut errors = Vec::new();
    let mut buf = vec![0u8; link.buf_len.max(1)];
    let mut acked: HashMap<u32, u64> = HashMap::new();
    let name = link.mech.name();
    while !checker.all_ended() {
        if Instant::now() > stop_at {
            errors.push(format!(
                "{name}: gave up waiting for the producers' end messages {GRACE:?} after the \
                 duration"
            ));
            break;
        }
        let got = match &mut link.from {
            LinkFrom::Channel(rx) => rx.recv_timeout(&mut buf, TICK).map(|n| {
                checker.check(&buf[..n]);
            }),
            LinkFrom::Mailbox(mailbox) => mailbox.recv_timeout(TICK).and_then(|env| {
                checker.check(env.payload());
                if env.expects_reply() {
                    env.reply(b"")?;
                }
                Ok(())
            }),
        };
        match got {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {}
            // A stream's producer closed it: whatever it sent has been read.
            Err(e) if e.kind() == ErrorKind::PeerGone => break,
            Err(e) => {
                errors.push(format!("{name}: receive: {e}"));
                break;
            }
        }
        for (id, pipe) in &mut link.credits {
            let done = checker.accounted(*id);
            let acks = acked.entry(*id).or_default();
            let owed = (done / ACK_EVERY).saturating_sub(*acks);
            if owed > 0 {
                // A producer that has exited no longer reads: nothing more to say.
                let _ = pipe.write_all(&vec![1u8; owed as usize]);
                *acks += owed;
            }
        }
    }
    LinkResult {
        mech: link.mech,
        checker,
        errors,
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn bytes(b: u64) -> String {
    match b {
        0..1024 => format!("{b} B"),
        1024..1_048_576 => format!("{:.1} KiB", b as f64 / 1024.0),
        1_048_576..1_073_741_824 => format!("{:.1} MiB", b as f64 / 1_048_576.0),
        _ => format!("{:.2} GiB", b as f64 / 1_073_741_824.0),
    }
}

fn table(r: &SoakReport) -> String {
    let mut out = format!(
        "ipcx bench --soak {}s: every mechanism at once, {} producers each (1 for ring and \
         shm: single-sender)\n\n",
        r.duration_s, r.producers_per_mechanism
    );
    let header = [
        "MECHANISM",
        "PRODUCERS",
        "MESSAGES",
        "BYTES",
        "LOST",
        "TORN",
        "DUP",
        "REORDERED",
        "PEAK RSS",
    ];
    let mut rows: Vec<[String; 9]> = r
        .mechanisms
        .iter()
        .map(|m| {
            [
                m.mechanism.to_string(),
                format!(
                    "{} {}",
                    m.producers,
                    match m.sharing {
                        Sharing::Shared => "shared",
                        Sharing::OwnLink => "own link",
                        Sharing::Single => "single",
                    }
                ),
                m.messages.to_string(),
                bytes(m.bytes),
                m.lost.to_string(),
                m.torn.to_string(),
                m.duplicated.to_string(),
                m.reordered.to_string(),
                mib(m.producer_peak_kib),
            ]
        })
        .collect();
    rows.push([
        "total".into(),
        String::new(),
        r.messages.to_string(),
        bytes(r.bytes),
        r.lost.to_string(),
        r.torn.to_string(),
        r.duplicated.to_string(),
        r.reordered.to_string(),
        String::new(),
    ]);
    let mut width = header.map(str::len);
    for row in &rows {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i < 2 {
                s.push_str(&format!("{c:<w$}  ", w = width[i]));
            } else {
                s.push_str(&format!("{c:>w$}  ", w = width[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    out.push_str(&line(&header.map(String::from)));
    for row in &rows {
        out.push_str(&line(row));
    }
    out.push_str(&format!(
        "\nPEAK RSS is the highest VmHWM among a mechanism's producer processes. The bench \
         (every consumer): {}; all {} producers together: {}.\n",
        mib(r.bench_peak_kib),
        r.mechanisms.iter().map(|m| m.producers).sum::<u32>(),
        mib(r.producers_peak_sum_kib)
    ));
    let errors: Vec<String> = r
        .mechanisms
        .iter()
        .flat_map(|m| {
            m.errors
                .iter()
                .map(move |e| format!("  {}: {e}", m.mechanism))
        })
        .collect();
    if errors.is_empty() {
        out.push_str(if r.ok {
            "Every message arrived whole, once and in order.\n"
        } else {
            ""
        });
    } else {
        out.push_str("\nErrors:\n");
        for e in errors {
            out.push_str(&e);
            out.push('\n');
        }
    }
    out
}
