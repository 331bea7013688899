//! A soak producer: `ipcx soak-child SPEC`, started by `ipcx bench --soak`. It sends
//! numbered, checksummed messages of varied sizes as fast as the transport takes them
//! until its time is up, then an end message, and reports on stderr (one line,
//! `SOAK-REPORT {json}`): how many it sent, any error, and its peak memory.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ipcx::addr::Address;
use ipcx::channel;
use rustix::event::{PollFd, PollFlags};
use rustix::process::Signal;
use serde::{Deserialize, Serialize};

use super::wire::{self, HEADER};
use super::{ACK_EVERY, Mech};
use crate::bench::Fallible;

/// How long a producer waits to connect, or for a credit, or for a mailbox reply.
const WAIT: Duration = Duration::from_secs(10);

/// What a producer is told.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Spec {
    pub mech: Mech,
    /// The bench's pid: the producer exits if its parent is already gone.
    pub parent: u32,
    pub producer: u32,
    /// The address to send to; for a mailbox, the consumer mailbox's socket path.
    pub to: String,
    /// Mailbox only: the directory to bind this producer's own mailbox in.
    pub dir: Option<String>,
    pub millis: u64,
    pub max_payload: usize,
    /// UDP only: at most this many messages not yet acknowledged; the consumer writes
    /// one byte on the producer's stdin per [`ACK_EVERY`] messages it has accounted for.
    pub window: Option<u64>,
}

/// What a producer reports.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Report {
    pub sent: u64,
    pub bytes: u64,
    pub error: Option<String>,
    /// Peak resident memory (VmHWM), KiB.
    pub peak_kib: u64,
}

/// The peak resident set (VmHWM) of process `pid` ("self" for this one), in KiB.
pub fn vm_hwm(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmHWM:")?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0)
}

/// Runs the producer described by the JSON `spec`.
pub fn main(spec: &str) -> ExitCode {
    let spec: Spec = match serde_json::from_str(spec) {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!(
                "ipcx soak-child: bad instructions ({e}); this subcommand is started by \
                 `ipcx bench --soak`, not by hand"
            );
            return ExitCode::from(2);
        }
    };
    let mut report = Report::default();
    let result = run(&spec, &mut report);
    if let Err(e) = result {
        report.error = Some(format!("producer {}: {e}", spec.producer));
    }
    report.peak_kib = vm_hwm("self");
    match serde_json::to_string(&report) {
        Ok(line) => eprintln!("SOAK-REPORT {line}"),
        Err(e) => eprintln!("ipcx soak-child: cannot write the report: {e}"),
    }
    if report.error.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Where messages go.
enum Out {
    Channel(Box<dyn channel::Sender + Send>),
    Mailbox {
        mailbox: ipcx::mailbox::Mailbox,
        to: String,
    },
}

fn run(spec: &Spec, report: &mut Report) -> Fallible<()> {
    // Die with the bench: a producer blocked on a full queue would otherwise wait for ever.
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
    if rustix::process::getppid().map(|p| p.as_raw_nonzero().get() as u32) != Some(spec.parent) {
        return Err("the bench exited before its producer started".into());
    }
    let mut out = match (&spec.dir, spec.mech) {
        (Some(dir), Mech::Mailbox) => Out::Mailbox {
            mailbox: ipcx::mailbox::MailboxOptions::new()
                .dir(dir)
                .bind(&format!("producer-{}", spec.producer))?,
            to: spec.to.clone(),
        },
        _ => {
            let addr: Address = spec.to.parse()?;
            Out::Channel(channel::sender_timeout(&addr, WAIT)?)
        }
    };
    let max = match &out {
        Out::Channel(tx) => spec
            .max_payload
            .min(tx.max_message().saturating_sub(HEADER)),
        Out::Mailbox { .. } => spec.max_payload,
    };
    let mut credits = match spec.window {
        Some(window) => Some(Credits::new(window)?),
        None => None,
    };
    let mut msg = Vec::with_capacity(HEADER + max);
    let fault = Fault::from_env()?;
    let deadline = Instant::now() + Duration::from_millis(spec.millis);
    let mut seq = 0u64;
    while Instant::now() < deadline {
        if let Some(c) = &mut credits {
            c.wait_for_room(seq)?;
        }
        wire::data(&mut msg, spec.producer, seq, max);
        let mut next = seq + 1;
        match fault {
            Some(Fault::Skip) if seq == FAULT_AT => {}
            Some(Fault::Duplicate) if seq == FAULT_AT => {
                send(&mut out, &msg, seq)?;
                send(&mut out, &msg, seq)?;
            }
            Some(Fault::Corrupt) if seq == FAULT_AT => {
                // The last byte: payload, or the checksum of an empty message.
                if let Some(b) = msg.last_mut() {
                    *b ^= 0x20;
                }
                send(&mut out, &msg, seq)?;
            }
            Some(Fault::Reorder) if seq == FAULT_AT => {
                let mut later = Vec::new();
                wire::data(&mut later, spec.producer, seq + 1, max);
                send(&mut out, &later, seq + 1)?;
                send(&mut out, &msg, seq)?;
                report.bytes += (later.len() - HEADER) as u64;
                next = seq + 2;
            }
            _ => send(&mut out, &msg, seq)?,
        }
        report.bytes += (msg.len() - HEADER) as u64;
        seq = next;
        report.sent = seq;
    }
    wire::end(&mut msg, spec.producer, seq);
    match &mut out {
        Out::Channel(tx) => {
            tx.send(&msg)?;
            tx.flush_timeout(WAIT)?;
        }
        Out::Mailbox { mailbox, to } => {
            mailbox.request(to, &msg, WAIT)?;
        }
    }
    Ok(())
}

/// Sends one message.
fn send(out: &mut Out, msg: &[u8], seq: u64) -> Fallible<()> {
    match out {
        Out::Channel(tx) => tx.send(msg)?,
        // Every ACK_EVERY-th message is a request: its reply says the consumer has taken
        // everything before it, which bounds what waits in its queue.
        Out::Mailbox { mailbox, to } if (seq + 1).is_multiple_of(ACK_EVERY) => {
            mailbox.request(to, msg, WAIT)?;
        }
        Out::Mailbox { mailbox, to } => mailbox.send(to, msg)?,
    }
    Ok(())
}

/// The message a [`Fault`] is committed at.
const FAULT_AT: u64 = 5;

/// A fault a producer commits on purpose, once, when `IPCX_SOAK_FAULT` names it: the
/// self-test of the checker (a run with a fault must report it and exit 1).
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Message 5 is counted as sent but never sent: lost.
    Skip,
    /// Message 5 is sent twice: duplicated.
    Duplicate,
    /// A byte of message 5 is flipped after its checksum: torn (and so lost).
    Corrupt,
    /// Message 6 is sent before message 5: reordered.
    Reorder,
}

impl Fault {
    fn from_env() -> Fallible<Option<Fault>> {
        Ok(match std::env::var("IPCX_SOAK_FAULT").ok().as_deref() {
            None | Some("") => None,
            Some("skip") => Some(Fault::Skip),
            Some("duplicate") => Some(Fault::Duplicate),
            Some("corrupt") => Some(Fault::Corrupt),
            Some("reorder") => Some(Fault::Reorder),
            Some(other) => {
                return Err(format!(
                    "IPCX_SOAK_FAULT={other}: the faults are skip, duplicate, corrupt and reorder"
                )
                .into());
            }
        })
    }
}

/// UDP flow control: credits read from stdin, one byte per [`ACK_EVERY`] messages.
struct Credits {
    stdin: File,
    window: u64,
    acked: u64,
}

impl Credits {
    fn new(window: u64) -> Fallible<Credits> {
        let stdin = File::from(std::io::stdin().as_fd().try_clone_to_owned()?);
        Ok(Credits {
            stdin,
            window,
            acked: 0,
        })
    }

    /// Waits until fewer than `window` messages before `seq` are unacknowledged. A
    /// datagram lost at the end of a burst would leave nothing behind it to reveal the
    /// gap, so after [`WAIT`] without a credit the producer goes on (the consumer then
    /// sees the gap and counts the loss).
    fn wait_for_room(&mut self, seq: u64) -> Fallible<()> {
        while seq.saturating_sub(self.acked) >= self.window {
            let mut fds = [PollFd::new(&self.stdin, PollFlags::IN)];
            let ts = rustix::time::Timespec {
                tv_sec: WAIT.as_secs() as i64,
                tv_nsec: 0,
            };
            match rustix::event::poll(&mut fds, Some(&ts)) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let mut buf = [0u8; 256];
            let n = self.stdin.read(&mut buf)?;
            if n == 0 {
                return Err("the bench closed the credit pipe".into());
            }
            self.acked += n as u64 * ACK_EVERY;
        }
        Ok(())
    }
}
