//! `ipcx advise`: the decision guide, answered with this machine's measured numbers.

use std::path::PathBuf;
use std::process::Command;

use clap::Args;
use serde_json::Value;

use crate::exit::{self, Failure, outln};

/// Recommends channel addresses for a use, ranked by this machine's measurements.
///
/// Answers the decision guide — across machines or not, related processes or not,
/// message size, priorities, messages that must wait in the kernel, broadcast — by
/// keeping the channel transports that fit and ranking them by the round-trip median
/// (or, for messages of 64 KiB and more, by throughput at the nearest measured size)
/// from `ipcx bench --json` output. With no --from, runs `ipcx bench --quick --json`
/// first (a few seconds; quick numbers are rough: save a full run with
/// `ipcx bench --json > bench.json` and pass --from bench.json).
#[derive(Args, Debug)]
#[command(after_long_help = after_help())]
pub struct AdviseArgs {
    /// Read the measurements from this `ipcx bench --json` output.
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// The peers are on different machines.
    #[arg(long)]
    pub network: bool,
    /// The peers are parent and child (a pipe can be inherited).
    #[arg(long)]
    pub related: bool,
    /// The largest message, in bytes (K and M suffixes, 1024-based).
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = "64")]
    pub size: usize,
    /// Messages need priorities (most urgent first).
    #[arg(long)]
    pub priorities: bool,
    /// Messages must wait in the kernel while no receiver runs, and outlive the sender.
    #[arg(long)]
    pub persist: bool,
    /// One message must reach several receivers.
    #[arg(long)]
    pub broadcast: bool,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
}

fn after_help() -> String {
    format!(
        "EXAMPLES:\n  ipcx bench --json > bench.json && ipcx advise --from bench.json\n  \
         ipcx advise --from bench.json --size 1M\n  ipcx advise --priorities --persist\n\n{}",
        exit::HELP
    )
}

fn parse_size(s: &str) -> Result<usize, String> {
    let (num, mult) = match s.trim().to_ascii_uppercase() {
        t if t.ends_with('K') => (t[..t.len() - 1].to_string(), 1 << 10),
        t if t.ends_with('M') => (t[..t.len() - 1].to_string(), 1 << 20),
        t => (t, 1),
    };
    num.parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("`{s}` is not a size: write e.g. 64, 8K or 1M"))
}

/// What the guide knows about a transport, apart from its speed.
struct Transport {
    row: &'static str,
    address: &'static str,
    network: bool,
    related_only: bool,
    priorities: bool,
    persists: bool,
    /// The largest message, or where it comes from.
    max: fn() -> usize,
    note: &'static str,
}

fn sysctl(path: &str, default: usize) -> usize {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

const STREAM_MAX: usize = 16 << 20;

const TRANSPORTS: &[Transport] = &[
    Transport {
        row: "pipe",
        address: "pipe:",
        network: false,
        related_only: true,
        priorities: false,
        persists: false,
        max: || STREAM_MAX,
        note: "parent and child only; the simplest",
    },
    Transport {
        row: "fifo",
        address: "fifo:/path",
        network: false,
        related_only: false,
        priorities: false,
        persists: false,
        max: || STREAM_MAX,
        note: "one sender at a time (writers would interleave)",
    },
    Transport {
        row: "unix",
        address: "unix:/path",
        network: false,
        related_only: false,
        priorities: false,
        persists: false,
        max: || STREAM_MAX,
        note: "connection, peer gone both ways, large messages",
    },
    Transport {
        row: "unix-seqpacket",
        address: "unix-seqpacket:/path",
        network: false,
        related_only: false,
        priorities: false,
        persists: false,
        max: || 64 << 10,
        note: "kernel message boundaries and a connection (64 KiB by default: ?max=N)",
    },
    Transport {
        row: "unix-dgram",
        address: "unix-dgram:/path",
        network: false,
        related_only: false,
        priorities: false,
        persists: false,
        max: || 64 << 10,
        note: "no connection: the receiver cannot tell the sender left (64 KiB: ?max=N)",
    },
    Transport {
        row: "shm-sem",
        address: "shm:/name",
        network: false,
        related_only: false,
        priorities: false,
        persists: false,
        max: || STREAM_MAX,
        note: "no copy through the kernel; peers must trust each other; ?max=N above 64 KiB",
    },
    Transport {
        row: "mq",
        address: "mq:/name",
        network: false,
        related_only: false,
        priorities: true,
        persists: true,
        max: || sysctl("/proc/sys/fs/mqueue/msgsize_max", 8192),
        note: "priorities (?prio=N); limit from /proc/sys/fs/mqueue/msgsize_max",
    },
    Transport {
        row: "sysv-mq",
        address: "sysv-mq:KEY",
        network: false,
        related_only: false,
        priorities: true,
        persists: true,
        max: || sysctl("/proc/sys/kernel/msgmax", 8192),
        note: "message types as priorities (?type=N); limit /proc/sys/kernel/msgmax",
    },
    Transport {
        row: "tcp",
        address: "tcp:host:port",
        network: true,
        related_only: false,
        priorities: false,
        persists: false,
        max: || STREAM_MAX,
        note: "reliable, across machines",
    },
    Transport {
        row: "udp",
        address: "udp:host:port",
        network: true,
        related_only: false,
        priorities: false,
        persists: false,
        max: || 65507,
        note: "may drop or reorder across a network; multicast for broadcast",
    },
];

fn load(args: &AdviseArgs) -> Result<(Value, String), Failure> {
    if let Some(path) = &args.from {
        let text = std::fs::read(path)
            .map_err(|e| Failure::new(exit::FAILED, format!("read {}: {e}", path.display())))?;
        let doc = serde_json::from_slice(&text).map_err(|e| {
            Failure::new(
                exit::FAILED,
                format!("{}: not `ipcx bench --json` output ({e})", path.display()),
            )
        })?;
        return Ok((doc, path.display().to_string()));
    }
    eprintln!("ipcx: no --from: measuring with `ipcx bench --quick --json` (rough numbers)");
    let exe = std::env::current_exe()
        .map_err(|e| Failure::new(exit::FAILED, format!("find the ipcx executable: {e}")))?;
    let out = Command::new(exe)
        .args(["bench", "--quick", "--json"])
        .output()
        .map_err(|e| Failure::new(exit::FAILED, format!("run ipcx bench: {e}")))?;
    // A failed row still leaves a report (exit 1); only unreadable output is fatal.
    let doc = serde_json::from_slice(&out.stdout).map_err(|e| {
        Failure::new(
            exit::FAILED,
            format!(
                "ipcx bench --quick --json gave no report ({e}): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        )
    })?;
    Ok((
        doc,
        "a quick measurement just now (ipcx bench --quick)".into(),
    ))
}

struct Pick {
    row: &'static str,
    address: &'static str,
    p50_ns: Option<u64>,
    p99_ns: Option<u64>,
    mb_per_s: Option<(usize, f64)>,
    note: &'static str,
}

/// The throughput at the measured size nearest `size` (on a log scale).
fn throughput_near(row: &Value, size: usize) -> Option<(usize, f64)> {
    row["throughput"]
        .as_array()?
        .iter()
        .filter_map(|t| {
            Some((
                t["size"].as_u64()? as usize,
                t["throughput"]["mb_per_s"].as_f64()?,
            ))
        })
        .min_by(|a, b| {
            let d = |s: usize| ((s as f64).ln() - (size.max(1) as f64).ln()).abs();
            d(a.0).total_cmp(&d(b.0))
        })
}

pub fn advise(args: AdviseArgs) -> Result<(), Failure> {
    let (doc, source) = load(&args)?;
    let rows = doc["rows"].as_array().ok_or_else(|| {
        Failure::new(exit::FAILED, format!("{source}: no \"rows\" in the report"))
    })?;
    let mut excluded = Vec::new();
    let mut picks = Vec::new();
    for t in TRANSPORTS {
        let max = (t.max)();
        let why_not = if args.network && !t.network {
            Some("does not cross machines".to_string())
        } else if t.related_only && !args.related {
            Some("needs parent and child (--related)".into())
        } else if args.priorities && !t.priorities {
            Some("has no priorities".into())
        } else if args.persist && !t.persists {
            Some("keeps no messages without a receiver".into())
        } else if args.size > max {
            Some(format!("carries at most {max} bytes"))
        } else {
            None
        };
        if let Some(why) = why_not {
            excluded.push((t.row, why));
            continue;
        }
        let row = rows.iter().find(|r| r["name"] == t.row);
        picks.push(Pick {
            row: t.row,
            address: t.address,
            p50_ns: row.and_then(|r| r["latency"]["p50_ns"].as_u64()),
            p99_ns: row.and_then(|r| r["latency"]["p99_ns"].as_u64()),
            mb_per_s: row.and_then(|r| throughput_near(r, args.size)),
            note: t.note,
        });
    }
    let by_throughput = args.size >= 64 << 10;
    picks.sort_by(|a, b| {
        if by_throughput {
            let mb = |p: &Pick| p.mb_per_s.map_or(-1.0, |m| m.1);
            mb(b).total_cmp(&mb(a))
        } else {
            a.p50_ns
                .unwrap_or(u64::MAX)
                .cmp(&b.p50_ns.unwrap_or(u64::MAX))
        }
    });
    let broadcast = args.broadcast.then_some(
        "no ipcx channel delivers one message to several receivers: open one channel per \
         receiver (and send to each), or use UDP multicast outside the channel layer",
    );
    if args.json {
        let doc = serde_json::json!({
            "source": source,
            "ranked_by": if by_throughput { "throughput" } else { "p50 round trip" },
            "recommended": picks.iter().map(|p| serde_json::json!({
                "row": p.row, "address": p.address, "p50_ns": p.p50_ns, "p99_ns": p.p99_ns,
                "throughput": p.mb_per_s.map(|(s, m)| serde_json::json!({"size": s, "mb_per_s": m})),
                "note": p.note,
            })).collect::<Vec<_>>(),
            "excluded": excluded.iter().map(|(r, w)| serde_json::json!({"row": r, "why": w})).collect::<Vec<_>>(),
            "broadcast": broadcast,
        });
        outln!("{doc:#}");
        return Ok(());
    }
    outln!("Measured on this machine: {source}");
    outln!(
        "Ranked by {} for messages of {} bytes.\n",
        if by_throughput {
            "throughput at the nearest measured size"
        } else {
            "round-trip median (p50)"
        },
        human(args.size)
    );
    if picks.is_empty() {
        outln!("No channel transport fits all of these needs; relax one (see excluded below).");
    } else {
        outln!(
            "{:<3} {:<22} {:>10} {:>10} {:>16}  NOTE",
            "#",
            "ADDRESS",
            "P50",
            "P99",
            "THROUGHPUT"
        );
        for (i, p) in picks.iter().enumerate() {
            let t = |ns: Option<u64>| {
                ns.map_or_else(|| "-".into(), |n| format!("{:.1} us", n as f64 / 1000.0))
            };
            let mb = p
                .mb_per_s
                .map_or_else(|| "-".into(), |(s, m)| format!("{m:.0} MB/s@{}", human(s)));
            outln!(
                "{:<3} {:<22} {:>10} {:>10} {:>16}  {}",
                i + 1,
                p.address,
                t(p.p50_ns),
                t(p.p99_ns),
                mb,
                p.note
            );
        }
    }
    if !excluded.is_empty() {
        outln!("\nExcluded:");
        for (row, why) in &excluded {
            outln!("  {row:<15} {why}");
        }
    }
    if let Some(b) = broadcast {
        outln!("\nBroadcast: {b}.");
    }
    Ok(())
}

fn human(size: usize) -> String {
    match size {
        s if s >= 1 << 20 && s % (1 << 20) == 0 => format!("{}M", s >> 20),
        s if s >= 1 << 10 && s % (1 << 10) == 0 => format!("{}K", s >> 10),
        s => s.to_string(),
    }
}
