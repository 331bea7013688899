//! The fault-injection suite: peers killed with `SIGKILL` at random points of their work,
//! signals delivered during every blocking call, and a process out of descriptors.
//!
//! - [`sigkill_peers_of_every_mechanism`] kills, for every mechanism, the sending or the
//!   receiving peer at a random message index plus a random delay, many times (more than
//!   1,400 kills per run), and checks on the surviving side that every message it got is
//!   whole, in order and not duplicated (a sequence number and a checksum in each
//!   payload), that it learns of the death as the mechanism documents (`PeerGone`, end of
//!   stream, or a timeout where the mechanism cannot tell), that no descriptor leaked and
//!   that no named object is left. Each mechanism's loop runs in a process of its own (the
//!   surviving side, with `SIGPIPE`'s default action restored, so a write to a dead peer
//!   that raised it would kill it), so its `/proc/self/fd` can be compared before and
//!   after. Receivers are also killed while creating their object: an opener then gets a
//!   clear error or a sender that sees `PeerGone`, never a hang. The seed is
//!   printed; `IPCX_FAULTS_SEED=<seed>` repeats a run, `IPCX_FAULTS_ONLY=<mechanism>`
//!   runs one mechanism, `IPCX_FAULTS_SCALE=<factor>` multiplies the kill counts.
//! - `eintr_*` run each blocking call while another thread sends `SIGUSR2`, whose handler
//!   is installed **without** `SA_RESTART`, every millisecond: the call must still return
//!   what arrives, or `TimedOut` only after its whole timeout (reliability item 18).
//! - [`descriptor_exhaustion_is_limit_reached_and_recoverable`] lowers `RLIMIT_NOFILE` in
//!   a child to exactly its usage and checks accept, receive-with-descriptors
//!   (`MSG_CTRUNC`), pipe and eventfd creation and a channel's lazy accept (item 15).
//!
//! Every name and key comes from `common::unique_name`/`unique_key`; a guard removes what
//! a killed peer created, the way a restarted program (or `ipcx gc`) would, so the
//! leftover check finds nothing.
#![allow(clippy::unwrap_used)] // a failed unwrap is how a test reports failure

mod common;

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ipcx::ErrorKind;
use ipcx::addr::Address;
use ipcx::channel::{self, Receiver, Sender, StreamReceiver, StreamSender};
use ipcx::eventfd::EventFd;
use ipcx::mailbox::MailboxOptions;
use ipcx::pipe::PipeWriter;

use common::Reports;

/// The bound on any single wait for the other process. Never asserted as a maximum: it
/// only turns a hang into a failure.
const T: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// Seeded randomness and self-checking messages
// ---------------------------------------------------------------------------------------

/// splitmix64: small, seedable, good enough to pick kill points and sizes.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A number in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    /// A message length: half the time small, otherwise anything up to `max`.
    fn len(&mut self, max: usize) -> usize {
        let max = max.max(HDR);
        if self.next() & 1 == 0 {
            HDR + self.range(0, 64.min(max - HDR) as u64) as usize
        } else {
            HDR + self.range(0, (max - HDR) as u64) as usize
        }
    }
}

/// Header of every test message: sequence number (8), length (4), checksum (4).
const HDR: usize = 16;

fn fnv(mut h: u32, data: &[u8]) -> u32 {
    for &b in data {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h
}

fn checksum(msg: &[u8]) -> u32 {
    fnv(fnv(0x811c_9dc5, &msg[..12]), &msg[HDR..])
}

/// Message number `seq`, `len` bytes long (at least [`HDR`]), every byte checked.
fn message(seq: u64, len: usize) -> Vec<u8> {
    let mut m = vec![0u8; len.max(HDR)];
    let len = m.len();
    m[..8].copy_from_slice(&seq.to_le_bytes());
    m[8..12].copy_from_slice(&(len as u32).to_le_bytes());
    for (i, b) in m.iter_mut().enumerate().skip(HDR) {
        *b = (seq as usize)
            .wrapping_mul(131)
            .wrapping_add(i.wrapping_mul(7) ^ (i >> 9)) as u8;
    }
    let sum = checksum(&m);
    m[12..16].copy_from_slice(&sum.to_le_bytes());
    m
}

/// The sequence number of a whole message, or what is wrong with it.
fn verify(msg: &[u8]) -> Result<u64, String> {
    if msg.len() < HDR {
        return Err(format!(
            "a {}-byte message is shorter than its header",
            msg.len()
        ));
    }
    let seq = u64::from_le_bytes(msg[..8].try_into().unwrap());
    let len = u32::from_le_bytes(msg[8..12].try_into().unwrap()) as usize;
    let sum = u32::from_le_bytes(msg[12..16].try_into().unwrap());
    if len != msg.len() {
        return Err(format!(
            "message {seq} says {len} bytes but {} arrived (torn)",
            msg.len()
        ));
    }
    if sum != checksum(msg) {
        return Err(format!(
            "message {seq} fails its checksum (torn or corrupt)"
        ));
    }
    Ok(seq)
}

/// Checks order: the next message must be `*next` (or, `lossy`, any later one).
fn check_order(msg: &[u8], next: &mut u64, lossy: bool) -> Result<(), String> {
    let seq = verify(msg)?;
    if seq == *next || (lossy && seq > *next) {
        *next = seq + 1;
        Ok(())
    } else if seq < *next {
        Err(format!(
            "message {seq} again or out of order (expected {next})"
        ))
    } else {
        Err(format!("message {next} lost: {seq} came instead"))
    }
}

// ---------------------------------------------------------------------------------------
// Mechanisms
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mech {
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
    Eventfd,
    Mailbox,
    PosixSem,
    SysvSem,
}

/// Every mechanism with its kills per run (before `IPCX_FAULTS_SCALE`).
const PLAN: [(Mech, usize); 15] = [
    (Mech::Pipe, 120),
    (Mech::Fifo, 120),
    (Mech::Unix, 120),
    (Mech::UnixDgram, 100),
    (Mech::UnixSeqpacket, 120),
    (Mech::Tcp, 120),
    (Mech::Udp, 80),
    (Mech::Mq, 100),
    (Mech::SysvMq, 100),
    (Mech::Shm, 120),
    (Mech::Ring, 120),
    (Mech::Eventfd, 60),
    (Mech::Mailbox, 80),
    (Mech::PosixSem, 60),
    (Mech::SysvSem, 60),
];

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
            Mech::Eventfd => "eventfd",
            Mech::Mailbox => "mailbox",
            Mech::PosixSem => "posix-sem",
            Mech::SysvSem => "sysv-sem",
        }
    }

    fn parse(name: &str) -> Mech {
        PLAN.iter()
            .map(|&(m, _)| m)
            .find(|m| m.name() == name)
            .unwrap_or_else(|| panic!("no mechanism {name:?}"))
    }

    /// Whether a receiver learns that its sender died (the channel module's table); where
    /// it cannot, its waits run to their timeout.
    fn receiver_sees_death(self) -> bool {
        !matches!(self, Mech::UnixDgram | Mech::Udp | Mech::Mq | Mech::SysvMq)
    }

    /// The largest message the tests send (capped by the channel's own maximum).
    fn max_len(self) -> usize {
        match self {
            Mech::Pipe | Mech::Fifo | Mech::Unix | Mech::Tcp => 150_000,
            Mech::UnixDgram | Mech::UnixSeqpacket | Mech::Ring => 60_000,
            Mech::Udp | Mech::Mq | Mech::SysvMq => 8_000,
            Mech::Shm => 65_536,
            Mech::Mailbox => 40_000,
            Mech::Eventfd | Mech::PosixSem | Mech::SysvSem => HDR,
        }
    }
}

/// Removes what a killed receiver created, as a restarted program would.
enum Guard {
    None,
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Mq(String),
    Shm(String),
    Sysv(ipcx::sysv::Key),
}

impl Guard {
    /// Removes the object now (a queue whose receiver died: the documented way its sender
    /// learns of it is the queue's removal).
    fn remove(&self) {
        match self {
            Guard::Mq(name) => {
                let _ = ipcx::mq::posix::MessageQueue::unlink(name.as_str());
            }
            Guard::Shm(name) => {
                let _ = ipcx::shm::posix::Shm::unlink(name);
            }
            Guard::Sysv(key) => {
                let _ = ipcx::mq::sysv::SysvMq::remove_key(*key);
            }
            Guard::None | Guard::Dir(_) => {}
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A channel address for `mech` and the guard for what it creates. `variant` picks among
/// the transport's modes (the ring's wait strategy).
fn setup(mech: Mech, variant: u64) -> (String, Guard) {
    let in_dir = |scheme: &str, leaf: &str, options: &str| {
        let dir = common::tempdir();
        let addr = format!("{scheme}:{}/{leaf}{options}", dir.path().display());
        (addr, Guard::Dir(dir))
    };
    match mech {
        Mech::Pipe => ("pipe:?max=1M".into(), Guard::None),
        Mech::Fifo => in_dir("fifo", "f", "?max=1M"),
        Mech::Unix => in_dir("unix", "s", "?max=1M"),
        Mech::UnixDgram => in_dir("unix-dgram", "d", ""),
        Mech::UnixSeqpacket => in_dir("unix-seqpacket", "q", ""),
        Mech::Tcp => ("tcp:127.0.0.1:0?max=1M".into(), Guard::None),
        Mech::Udp => ("udp:127.0.0.1:0".into(), Guard::None),
        Mech::Mq => {
            let name = common::unique_name("mq");
            (
                format!("mq:{name}?capacity=8&msgsize=8192"),
                Guard::Mq(name),
            )
        }
        Mech::SysvMq => {
            let key = common::unique_key("sysv-msg");
            (format!("sysv-mq:{}", key.raw()), Guard::Sysv(key))
        }
        Mech::Shm => {
            let name = common::unique_name("shm");
            (format!("shm:{name}?capacity=4&max=64K"), Guard::Shm(name))
        }
        Mech::Ring => {
            let name = common::unique_name("shm");
            let wait = ["adaptive", "blocking", "busy"][(variant % 3) as usize];
            (
                format!("ring:{name}?capacity=256K&wait={wait}"),
                Guard::Shm(name),
            )
        }
        other => panic!("{other:?} is not a channel transport"),
    }
}

// ---------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------

/// A peer process that the test kills.
struct Victim {
    child: Child,
    lines: Option<Reports>,
}

impl Victim {
    fn spawn(mut cmd: Command, reports: bool) -> Victim {
        if !reports {
            cmd.stdout(Stdio::null());
        }
        let mut child = cmd.spawn().expect("spawn the peer");
        // `cmd` may hold a descriptor meant for the child only: drop it now.
        drop(cmd);
        let lines = child.stdout.take().map(|out| Reports::new(out, T));
        Victim { child, lines }
    }

    fn report(&mut self) -> String {
        self.lines.as_mut().expect("reports were asked for").next()
    }

    /// Sends `SIGKILL` and reaps the peer, checking it was still at work (an earlier exit
    /// means it failed a check of its own, or gave up).
    fn kill(&mut self, ctx: &str) {
        let _ = self.child.kill();
        let status = self.child.wait().unwrap();
        self.check_killed(status, ctx);
    }

    fn check_killed(&mut self, status: ExitStatus, ctx: &str) {
        use std::os::unix::process::ExitStatusExt;
        if status.signal() != Some(libc::SIGKILL) {
            let mut err = String::new();
            if let Some(mut e) = self.child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("{ctx}: the peer exited by itself ({status:?}) before the kill:\n{err}");
        }
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const TEST: &str = "sigkill_peers_of_every_mechanism";

/// Child role: sends numbered messages as fast as the channel takes them, for ever.
fn role_send() {
    let addr = common::arg("ADDR");
    let mut rng = Rng::new(common::arg("SEED").parse().unwrap());
    let max_len: usize = common::arg("MAXLEN").parse().unwrap();
    let mut tx: Box<dyn Sender> = if addr == "pipe:" {
        // Our stdin is the write end of the parent's pipe.
        let fd = std::io::stdin().as_fd().try_clone_to_owned().unwrap();
        let writer = PipeWriter::try_from(fd).unwrap();
        Box::new(
            StreamSender::from_pipe(writer)
                .with_max_message(1 << 20)
                .unwrap(),
        )
    } else {
        channel::sender_timeout(&addr.parse().unwrap(), T).unwrap()
    };
    let max = tx.max_message().min(max_len);
    for seq in 0.. {
        let msg = message(seq, rng.len(max));
        tx.send(&msg)
            .unwrap_or_else(|e| panic!("send {seq} while the receiver lives: {e}"));
    }
}

/// Child role: receives and checks every message until killed.
fn role_recv() {
    let addr: Address = common::arg("ADDR").parse().unwrap();
    let lossy = common::arg("LOSSY") == "1";
    let mut rx = channel::receiver(&addr).unwrap();
    let reach = rx
        .address()
        .map_or_else(|| "pipe:".to_string(), |a| a.to_string());
    common::say(format!("ready {reach}"));
    let mut buf = vec![0u8; rx.max_message()];
    let mut next = 0;
    loop {
        let n = rx
            .recv_timeout(&mut buf, T)
            .unwrap_or_else(|e| panic!("receive {next}: {e}"));
        check_order(&buf[..n], &mut next, lossy).unwrap();
    }
}

/// Child role: creates a channel's receiver and waits to be killed (the parent kills it
/// at a random moment around the creation).
fn role_create() {
    let addr: Address = common::arg("ADDR").parse().unwrap();
    common::say("creating");
    let _rx = channel::receiver(&addr).unwrap();
    std::thread::sleep(6 * T);
}

/// Child role: adds 1 to the eventfd that is its stdin, for ever.
fn role_eventfd() {
    let fd = std::io::stdin().as_fd().try_clone_to_owned().unwrap();
    let efd = EventFd::try_from(fd).unwrap();
    loop {
        efd.write(1).unwrap();
    }
}

/// Child role: a mailbox server that echoes every request.
fn role_mailbox() {
    let dir = common::arg("DIR");
    let mb = MailboxOptions::new().dir(&dir).bind("srv").unwrap();
    common::say("ready");
    loop {
        let env = mb.recv().unwrap();
        env.reply(env.payload()).unwrap();
    }
}

/// Child role: takes and gives back a POSIX named semaphore, for ever.
fn role_posix_sem() {
    let sem = ipcx::sem::posix::NamedSemaphore::open(&common::arg("NAME")).unwrap();
    common::say("ready");
    loop {
        sem.wait().unwrap();
        sem.post().unwrap();
    }
}

/// Child role: takes and gives back a System V semaphore with `SEM_UNDO`, for ever.
fn role_sysv_sem() {
    use ipcx::sem::sysv::{SemOp, SemSet};
    let key = ipcx::sysv::Key::new(common::arg("KEY").parse().unwrap());
    let set = SemSet::open(key).unwrap();
    common::say("ready");
    loop {
        set.op(&[SemOp::acquire(0).undo()]).unwrap();
        set.op(&[SemOp::release(0).undo()]).unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// One kill each
// ---------------------------------------------------------------------------------------

/// What one kill measured: which side survived, and how long it took to learn of the
/// death where it can.
#[derive(Clone, Copy, Debug)]
enum Learned {
    /// The receiver survived and saw PeerGone (or end of stream) after this long.
    Receiver(Duration),
    /// The sender (or requester) survived and saw PeerGone after this long.
    Sender(Duration),
    /// The mechanism has no notion of the peer's death: the documented outcome held (waits
    /// time out; SEM_UNDO gave the unit back; a POSIX unit stayed taken).
    Documented,
}

/// The sender dies; the receiver (this process) checks what arrived and the ending.
fn kill_sender(mech: Mech, rng: &mut Rng, ctx: &str) -> Learned {
    let (text, _guard) = setup(mech, rng.next());
    let lossy = mech == Mech::Udp;
    let seed = rng.next().to_string();
    let max_len = mech.max_len().to_string();
    let (mut rx, cmd): (Box<dyn Receiver + Send>, Command) = if mech == Mech::Pipe {
        let (r, w) = ipcx::pipe::pipe().unwrap();
        let rx = StreamReceiver::from_pipe(r)
            .with_max_message(1 << 20)
            .unwrap();
        let mut cmd = common::child(
            TEST,
            "send",
            &[("ADDR", "pipe:"), ("SEED", &seed), ("MAXLEN", &max_len)],
        );
        cmd.stdin(Stdio::from(w));
        (Box::new(rx), cmd)
    } else {
        let rx = channel::receiver(&text.parse().unwrap()).unwrap();
        let reach = rx.address().unwrap().to_string();
        let mut cmd = common::child(
            TEST,
            "send",
            &[("ADDR", &reach), ("SEED", &seed), ("MAXLEN", &max_len)],
        );
        cmd.stdin(Stdio::null());
        (rx, cmd)
    };
    let mut victim = Victim::spawn(cmd, false);
    let k = rng.range(1, 40);
    let delay = Duration::from_micros(rng.range(0, 2000));
    let mut buf = vec![0u8; rx.max_message()];
    let (mut next, mut got) = (0u64, 0u64);
    let mut killed: Option<Instant> = None;
    loop {
        // Where the receiver cannot tell that its sender died, what the sender queued
        // before it died is there now; after that its waits time out.
        let wait = match killed {
            Some(_) if !mech.receiver_sees_death() => Duration::from_millis(30),
            _ => T,
        };
        match rx.recv_timeout(&mut buf, wait) {
            Ok(n) => {
                check_order(&buf[..n], &mut next, lossy)
                    .unwrap_or_else(|e| panic!("{ctx}: {e} (after {got} messages)"));
                got += 1;
                if got == k {
                    std::thread::sleep(delay);
                    victim.kill(ctx);
                    killed = Some(Instant::now());
                }
            }
            Err(e) => match killed {
                Some(at) if e.kind() == ErrorKind::PeerGone && mech.receiver_sees_death() => {
                    return Learned::Receiver(at.elapsed());
                }
                Some(_) if e.kind() == ErrorKind::TimedOut && !mech.receiver_sees_death() => {
                    return Learned::Documented;
                }
                _ => {
                    let status = victim.child.try_wait().unwrap();
                    panic!(
                        "{ctx}: receive after {got} messages (killed: {}): {e} (peer: {status:?})",
                        killed.is_some()
                    )
                }
            },
        }
    }
}

/// The receiver dies; the sender (this process) must learn of it.
fn kill_receiver(mech: Mech, rng: &mut Rng, ctx: &str) -> Learned {
    let (text, guard) = setup(mech, rng.next());
    let lossy = if mech == Mech::Udp { "1" } else { "0" };
    let mut cmd = common::child(TEST, "recv", &[("ADDR", &text), ("LOSSY", lossy)]);
    cmd.stdin(if mech == Mech::Pipe {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut victim = Victim::spawn(cmd, true);
    let ready = victim.report();
    let reach = ready.strip_prefix("ready ").unwrap().to_string();
    let mut tx: Box<dyn Sender + Send> = if mech == Mech::Pipe {
        let stdin = victim.child.stdin.take().unwrap();
        let writer = PipeWriter::try_from(OwnedFd::from(stdin)).unwrap();
        Box::new(
            StreamSender::from_pipe(writer)
                .with_max_message(1 << 20)
                .unwrap(),
        )
    } else {
        channel::sender_timeout(&reach.parse().unwrap(), T).unwrap()
    };
    let max = tx.max_message().min(mech.max_len());
    let k = rng.range(1, 40);
    let delay = Duration::from_micros(rng.range(0, 2000));
    let mut killed: Option<Instant> = None;
    for seq in 0.. {
        let msg = message(seq, rng.len(max));
        match tx.send_timeout(&msg, T) {
            Ok(()) => {
                if seq + 1 == k {
                    std::thread::sleep(delay);
                    victim.kill(ctx);
                    killed = Some(Instant::now());
                    if matches!(mech, Mech::Mq | Mech::SysvMq) {
                        // A queue outlives its receiver; its sender learns of the death
                        // when the queue is removed (a restarted receiver, `ipcx gc`).
                        guard.remove();
                    }
                }
            }
            Err(e) => match killed {
                Some(at) if e.kind() == ErrorKind::PeerGone => {
                    return Learned::Sender(at.elapsed());
                }
                _ => panic!("{ctx}: send {seq} (killed: {}): {e}", killed.is_some()),
            },
        }
        if let Some(at) = killed {
            // A hang guard, not a timing requirement.
            assert!(
                at.elapsed() < 6 * T,
                "{ctx}: the sender never learned that its receiver died ({} sends since)",
                seq + 1 - k
            );
        }
    }
    unreachable!()
}

/// Kills during creation, and what openers saw: (refused, connected then PeerGone).
static CREATOR_OUTCOMES: Mutex<(usize, usize)> = Mutex::new((0, 0));
/// The kinds of the openers' errors after a creator died, with their counts.
static CREATOR_REFUSALS: Mutex<BTreeMap<String, (usize, String)>> = Mutex::new(BTreeMap::new());

/// The receiver dies around the moment it creates its object (reliability items 3 and
/// 6): an opener then gets a clear error (nothing there, not initialised, nobody
/// listening) or a working sender that sees PeerGone; never garbage, never a hang.
fn kill_creator(mech: Mech, rng: &mut Rng, ctx: &str) -> Learned {
    let (text, guard) = setup(mech, rng.next());
    let mut cmd = common::child(TEST, "create", &[("ADDR", &text)]);
    cmd.stdin(Stdio::null());
    let mut victim = Victim::spawn(cmd, true);
    assert_eq!(victim.report(), "creating", "{ctx}");
    std::thread::sleep(Duration::from_micros(rng.range(0, 2000)));
    victim.kill(ctx);
    let killed = Instant::now();
    let addr: Address = text.parse().unwrap();
    let mut tx = match channel::sender_timeout(&addr, Duration::from_millis(100)) {
        Err(e) => {
            assert!(
                matches!(
                    e.kind(),
                    ErrorKind::NotFound
                        | ErrorKind::TimedOut
                        | ErrorKind::PeerGone
                        | ErrorKind::Corrupt
                ),
                "{ctx}: opening after the creator died: {e}"
            );
            let scheme = text.split(':').next().unwrap();
            assert!(
                e.to_string().contains(&format!("\"{scheme}:")),
                "{ctx}: the error does not name the address: {e}"
            );
            CREATOR_OUTCOMES.lock().unwrap().0 += 1;
            CREATOR_REFUSALS
                .lock()
                .unwrap()
                .entry(format!("{:?}", e.kind()))
                .or_insert_with(|| (0, e.to_string()))
                .0 += 1;
            return Learned::Documented;
        }
        Ok(tx) => tx,
    };
    if matches!(mech, Mech::Mq | Mech::SysvMq) {
        guard.remove();
    }
    let max = tx.max_message().min(mech.max_len());
    for seq in 0.. {
        match tx.send_timeout(&message(seq, rng.len(max)), T) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::PeerGone => break,
            Err(e) => panic!("{ctx}: send {seq} to a dead creator's object: {e}"),
        }
        assert!(
            killed.elapsed() < 6 * T,
            "{ctx}: the sender never learned that the creator died"
        );
    }
    CREATOR_OUTCOMES.lock().unwrap().1 += 1;
    Learned::Sender(killed.elapsed())
}

/// The eventfd's writer dies: what it added is there, whole; then reads time out (an
/// eventfd has no notion of a peer).
fn kill_eventfd_writer(rng: &mut Rng, ctx: &str) -> Learned {
    let efd = EventFd::new(0).unwrap();
    let mut cmd = common::child(TEST, "eventfd", &[]);
    cmd.stdin(Stdio::from(efd.try_clone().unwrap()));
    let mut victim = Victim::spawn(cmd, false);
    let k = rng.range(1, 30);
    for i in 0..k {
        let v = efd
            .read_timeout(T)
            .unwrap_or_else(|e| panic!("{ctx}: read {i}: {e}"));
        assert!(v >= 1, "{ctx}: read {i} returned {v}");
    }
    std::thread::sleep(Duration::from_micros(rng.range(0, 2000)));
    victim.kill(ctx);
    match efd.try_read() {
        Ok(v) => assert!(v >= 1, "{ctx}: the last read returned {v}"),
        Err(e) => assert_eq!(e.kind(), ErrorKind::WouldBlock, "{ctx}: {e}"),
    }
    let start = Instant::now();
    let wait = Duration::from_millis(20);
    let err = efd.read_timeout(wait).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{ctx}: {err}");
    assert!(start.elapsed() >= wait, "{ctx}");
    Learned::Documented
}

/// The mailbox server dies while three threads have requests in flight: every reply
/// that came is the request's own, and every pending request fails with PeerGone.
fn kill_mailbox_server(dir: &std::path::Path, i: usize, rng: &mut Rng, ctx: &str) -> Learned {
    let mut victim = Victim::spawn(
        common::child(TEST, "mailbox", &[("DIR", dir.to_str().unwrap())]),
        true,
    );
    assert_eq!(victim.report(), "ready", "{ctx}");
    let client = MailboxOptions::new()
        .dir(dir)
        .bind(&format!("c{i}"))
        .unwrap();
    let k = rng.range(1, 30) as usize;
    let delay = Duration::from_micros(rng.range(0, 3000));
    let seeds = [rng.next(), rng.next(), rng.next()];
    let replies = AtomicUsize::new(0);
    let seqs = AtomicU64::new(0);
    let killed: Mutex<Option<Instant>> = Mutex::new(None);
    let learned = Mutex::new(Duration::ZERO);
    std::thread::scope(|s| {
        for seed in seeds {
            let (client, replies, seqs, killed, learned) =
                (&client, &replies, &seqs, &killed, &learned);
            s.spawn(move || {
                let mut r = Rng::new(seed);
                loop {
                    let seq = seqs.fetch_add(1, Ordering::Relaxed);
                    let req = message(seq, r.len(Mech::Mailbox.max_len()));
                    match client.request("srv", &req, T) {
                        Ok(rep) => {
                            assert!(rep == req, "{ctx}: the reply to request {seq} differs");
                            replies.fetch_add(1, Ordering::AcqRel);
                        }
                        Err(e) if e.kind() == ErrorKind::PeerGone => {
                            let at = killed
                                .lock()
                                .unwrap()
                                .unwrap_or_else(|| panic!("{ctx}: PeerGone before the kill: {e}"));
                            let mut l = learned.lock().unwrap();
                            *l = (*l).max(at.elapsed());
                            return;
                        }
                        Err(e) => panic!("{ctx}: request {seq}: {e}"),
                    }
                }
            });
        }
        let start = Instant::now();
        while replies.load(Ordering::Acquire) < k {
            assert!(start.elapsed() < T, "{ctx}: the server stopped replying");
            std::thread::sleep(Duration::from_micros(100));
        }
        std::thread::sleep(delay);
        *killed.lock().unwrap() = Some(Instant::now());
        victim.kill(ctx);
    });
    let learned = *learned.lock().unwrap();
    Learned::Sender(learned)
}

static POSIX_SEM_UNITS_LOST: AtomicUsize = AtomicUsize::new(0);

/// A POSIX semaphore's holder dies: the value is 0 or 1, never more; a unit taken by the
/// dead holder stays taken (documented: POSIX semaphores have no undo), so a wait times
/// out.
fn kill_posix_sem_holder(rng: &mut Rng, ctx: &str) -> Learned {
    use ipcx::sem::posix::NamedSemaphore;
    let name = common::unique_name("sem");
    let sem = NamedSemaphore::options().initial(1).create(&name).unwrap();
    let mut victim = Victim::spawn(common::child(TEST, "posix-sem", &[("NAME", &name)]), true);
    assert_eq!(victim.report(), "ready", "{ctx}");
    std::thread::sleep(Duration::from_micros(rng.range(0, 3000)));
    victim.kill(ctx);
    let v = sem.value().unwrap();
    assert!(v <= 1, "{ctx}: the value is {v} after the holder died");
    let wait = Duration::from_millis(20);
    if v == 0 {
        let start = Instant::now();
        let err = sem.wait_timeout(wait).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{ctx}: {err}");
        assert!(start.elapsed() >= wait, "{ctx}");
        POSIX_SEM_UNITS_LOST.fetch_add(1, Ordering::Relaxed);
    } else {
        sem.wait_timeout(wait).unwrap();
        sem.post().unwrap();
    }
    Learned::Documented
}

/// A System V semaphore's holder dies: `SEM_UNDO` gives its unit back.
fn kill_sysv_sem_holder(rng: &mut Rng, ctx: &str) -> Learned {
    use ipcx::sem::sysv::{SemOp, SemSetOptions};
    let key = common::unique_key("sysv-sem");
    let set = SemSetOptions::new()
        .count(1)
        .initial(1)
        .create(key)
        .unwrap();
    let mut victim = Victim::spawn(
        common::child(TEST, "sysv-sem", &[("KEY", &key.raw().to_string())]),
        true,
    );
    assert_eq!(victim.report(), "ready", "{ctx}");
    std::thread::sleep(Duration::from_micros(rng.range(0, 3000)));
    victim.kill(ctx);
    assert_eq!(
        set.get(0).unwrap(),
        1,
        "{ctx}: SEM_UNDO did not give back the unit the killed holder took"
    );
    set.try_op(&[SemOp::acquire(0)]).unwrap();
    set.op(&[SemOp::release(0)]).unwrap();
    Learned::Documented
}

// ---------------------------------------------------------------------------------------
// The suite
// ---------------------------------------------------------------------------------------

/// The descriptors open in this process, with what each refers to.
fn fd_table() -> Vec<(i32, String)> {
    let mut fds: Vec<(i32, String)> = common::open_fds()
        .into_iter()
        .filter_map(|fd| {
            let target = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
            Some((fd, target.display().to_string()))
        })
        .collect();
    fds.sort();
    // The listing's own descriptor of /proc/self/fd is gone by now and dropped by
    // `filter_map`; nothing else changes between two calls.
    fds
}

/// Child role: one mechanism's kills, in this process (the survivor of each), then the
/// descriptor check. Reports `kills N learned_max_us M`.
fn suite() {
    // SIGPIPE kills, as in a C program: a write to a dead peer must be an error, never
    // this process's death (reliability item 19).
    common::default_sigpipe();
    let mech = Mech::parse(&common::arg("MECH"));
    let seed: u64 = common::arg("SEED").parse().unwrap();
    let count: usize = common::arg("COUNT").parse().unwrap();
    let mailbox_dir = (mech == Mech::Mailbox).then(|| {
        use std::os::unix::fs::PermissionsExt;
        let dir = common::tempdir();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        dir
    });
    let before = fd_table();
    let (mut rx_max, mut tx_max): (Option<Duration>, Option<Duration>) = (None, None);
    let mut documented = 0;
    let index = PLAN.iter().position(|&(m, _)| m == mech).unwrap() as u64;
    for i in 0..count {
        let iter_seed = Rng::new(seed ^ (index << 48) ^ i as u64).next();
        let mut rng = Rng::new(iter_seed);
        let ctx = format!(
            "{} kill {i} (IPCX_FAULTS_SEED={seed} IPCX_FAULTS_ONLY={} repeats it; iteration seed {iter_seed:#x})",
            mech.name(),
            mech.name()
        );
        let learned = match mech {
            Mech::Eventfd => kill_eventfd_writer(&mut rng, &ctx),
            Mech::Mailbox => {
                kill_mailbox_server(mailbox_dir.as_ref().unwrap().path(), i, &mut rng, &ctx)
            }
            Mech::PosixSem => kill_posix_sem_holder(&mut rng, &ctx),
            Mech::SysvSem => kill_sysv_sem_holder(&mut rng, &ctx),
            _ if i % 2 == 0 => kill_sender(mech, &mut rng, &ctx),
            Mech::Fifo
            | Mech::Unix
            | Mech::UnixDgram
            | Mech::UnixSeqpacket
            | Mech::Mq
            | Mech::SysvMq
            | Mech::Shm
            | Mech::Ring
                if i % 4 == 3 =>
            {
                kill_creator(mech, &mut rng, &ctx)
            }
            _ => kill_receiver(mech, &mut rng, &ctx),
        };
        let max = |m: Option<Duration>, d: Duration| Some(m.map_or(d, |m| m.max(d)));
        match learned {
            Learned::Receiver(d) => rx_max = max(rx_max, d),
            Learned::Sender(d) => tx_max = max(tx_max, d),
            Learned::Documented => documented += 1,
        }
    }
    let after = fd_table();
    assert_eq!(
        before,
        after,
        "{}: descriptors leaked in the surviving process",
        mech.name()
    );
    let us = |d: Option<Duration>| d.map_or(-1, |d| d.as_micros() as i64);
    let creator = *CREATOR_OUTCOMES.lock().unwrap();
    let refusals: Vec<String> = CREATOR_REFUSALS
        .lock()
        .unwrap()
        .iter()
        .map(|(kind, (n, _))| format!("{kind}:{n}"))
        .collect();
    let refusals = if refusals.is_empty() {
        "-".to_string()
    } else {
        refusals.join(",")
    };
    common::say(format!(
        "kills {count} receiver_us {} sender_us {} documented {documented} posix_units_lost {} creator_refused {} creator_gone {} refusals {}",
        us(rx_max),
        us(tx_max),
        POSIX_SEM_UNITS_LOST.load(Ordering::Relaxed),
        creator.0,
        creator.1,
        refusals,
    ));
    for (kind, (_, example)) in CREATOR_REFUSALS.lock().unwrap().iter() {
        common::say(format!("example {kind}: {example}"));
    }
}

/// Waits for a suite child (bounded), returning its output.
fn finish_within(mut child: Child, limit: Duration) -> std::process::Output {
    let start = Instant::now();
    // Read stdout and stderr as they come so a chatty failure cannot fill a pipe.
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let read = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let (out, err) = (read(Box::new(out)), read(Box::new(err)));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::process::Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

#[test]
fn sigkill_peers_of_every_mechanism() {
    match common::role().as_deref() {
        Some("suite") => return suite(),
        Some("send") => return role_send(),
        Some("recv") => return role_recv(),
        Some("create") => return role_create(),
        Some("eventfd") => return role_eventfd(),
        Some("mailbox") => return role_mailbox(),
        Some("posix-sem") => return role_posix_sem(),
        Some("sysv-sem") => return role_sysv_sem(),
        Some(other) => panic!("unknown role {other}"),
        None => {}
    }
    let seed: u64 = std::env::var("IPCX_FAULTS_SEED")
        .ok()
        .map(|s| s.parse().expect("IPCX_FAULTS_SEED is a number"))
        .unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            Rng::new(t.as_nanos() as u64 ^ u64::from(std::process::id())).next() >> 1
        });
    let scale: f64 = std::env::var("IPCX_FAULTS_SCALE")
        .ok()
        .map_or(1.0, |s| s.parse().expect("IPCX_FAULTS_SCALE is a number"));
    let only = std::env::var("IPCX_FAULTS_ONLY").ok();
    println!("faults: seed {seed} (IPCX_FAULTS_SEED={seed} repeats this run's kill points)");
    let plan: Vec<(Mech, usize)> = PLAN
        .iter()
        .filter(|(m, _)| only.as_deref().is_none_or(|o| o == m.name()))
        .map(|&(m, n)| (m, ((n as f64 * scale).round() as usize).max(1)))
        .collect();
    assert!(!plan.is_empty(), "IPCX_FAULTS_ONLY names no mechanism");
    let queue = Mutex::new(plan.clone());
    let results: Mutex<BTreeMap<usize, Vec<String>>> = Mutex::new(BTreeMap::new());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let failed = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let next = {
                        let mut q = queue.lock().unwrap();
                        if q.is_empty() || failed.load(Ordering::Acquire) {
                            return;
                        }
                        q.remove(0)
                    };
                    let (mech, count) = next;
                    let child = common::child(
                        TEST,
                        "suite",
                        &[
                            ("MECH", mech.name()),
                            ("SEED", &seed.to_string()),
                            ("COUNT", &count.to_string()),
                        ],
                    )
                    .stdin(Stdio::null())
                    .spawn()
                    .unwrap();
                    let out = finish_within(child, Duration::from_secs(600));
                    let report = common::reports(&out);
                    if !out.status.success() {
                        failed.store(true, Ordering::Release);
                        panic!(
                            "{}: the suite failed ({:?}); IPCX_FAULTS_SEED={seed} IPCX_FAULTS_ONLY={} repeats it\nstdout:\n{}\nstderr:\n{}",
                            mech.name(),
                            out.status,
                            mech.name(),
                            String::from_utf8_lossy(&out.stdout),
                            String::from_utf8_lossy(&out.stderr)
                        );
                    }
                    let mut lines = report.lines();
                    let fields: Vec<String> = lines
                        .next()
                        .unwrap_or_default()
                        .split_whitespace()
                        .map(String::from)
                        .collect();
                    for example in lines {
                        println!("faults: {}: opener's {example}", mech.name());
                    }
                    assert_eq!(fields.len(), 16, "{report}");
                    let index = PLAN.iter().position(|&(m, _)| m == mech).unwrap();
                    results.lock().unwrap().insert(index, fields);
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    let mut total = 0;
    let mut parts = Vec::new();
    let mut summary = vec![format!(
        "faults: seed {seed} (IPCX_FAULTS_SEED={seed} repeats this run's kill points)"
    )];
    for (index, fields) in &results {
        let mech = PLAN[*index].0;
        let name = mech.name();
        let num = |i: usize| -> i64 { fields[i].parse().unwrap() };
        let kills = num(1) as usize;
        total += kills;
        parts.push(format!("{name} {kills}"));
        let ms = |us: i64| format!("{:.1} ms", us as f64 / 1000.0);
        let mut notes = Vec::new();
        if num(3) >= 0 {
            notes.push(format!(
                "receiver saw PeerGone, slowest after {}",
                ms(num(3))
            ));
        }
        if num(5) >= 0 && mech == Mech::Mailbox {
            notes.push(format!(
                "every pending request failed with PeerGone, slowest after {}",
                ms(num(5))
            ));
        } else if num(5) >= 0 {
            notes.push(format!("sender saw PeerGone, slowest after {}", ms(num(5))));
        }
        let documented = num(7) - num(11);
        if num(11) + num(13) > 0 {
            notes.push(format!(
                "creator killed while creating {} times: opener refused with a clear error {} ({}), opened then saw PeerGone {}",
                num(11) + num(13),
                num(11),
                fields[15],
                num(13)
            ));
        }
        if documented > 0 {
            notes.push(match mech {
                Mech::SysvSem => format!("{documented} times SEM_UNDO gave the unit back"),
                Mech::PosixSem => format!(
                    "{} of {documented} times the dead holder kept its unit (no undo, as documented)",
                    num(9)
                ),
                Mech::Eventfd => format!("{documented} times the reader's wait timed out (an eventfd has no peer)"),
                _ => format!("{documented} times the receiver could not tell (as documented) and its wait timed out"),
            });
        }
        summary.push(format!(
            "faults: {name}: {kills} kills; {}",
            notes.join("; ")
        ));
    }
    summary.push(format!(
        "faults: {total} kills survived ({}), seed {seed}",
        parts.join(", ")
    ));
    // Straight to stderr, past libtest's capture: the figures appear in every run's log.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("{}\n", summary.join("\n")).as_bytes(),
    );
    if only.is_none() && scale >= 1.0 {
        assert!(total >= 1000, "only {total} kills");
    }
}

// ---------------------------------------------------------------------------------------
// Signals during every blocking call (reliability item 18)
// ---------------------------------------------------------------------------------------

thread_local! {
    /// Signals this thread's handler ran for (a plain counter: safe in a handler).
    static CAUGHT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

extern "C" fn count_signal(_: libc::c_int) {
    CAUGHT.with(|c| c.set(c.get() + 1));
}

/// Installs the `SIGUSR2` handler **without** `SA_RESTART`, so that every blocking system
/// call it interrupts returns `EINTR` to ipcx (signal-hook, which `common` uses, sets
/// `SA_RESTART`, under which the kernel restarts most calls itself).
fn install_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY:
        // - `sa` is zeroed (a valid `sigaction`), then given a handler of the right
        //   signature that touches only a thread-local `Cell` of a plain integer
        //   (async-signal-safe) and an empty mask;
        // - `old` is a valid out-pointer for the disposition read back.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = count_signal as extern "C" fn(libc::c_int) as usize;
            sa.sa_flags = 0;
            libc::sigemptyset(&mut sa.sa_mask);
            assert_eq!(libc::sigaction(libc::SIGUSR2, &sa, std::ptr::null_mut()), 0);
            let mut old: libc::sigaction = std::mem::zeroed();
            assert_eq!(
                libc::sigaction(libc::SIGUSR2, std::ptr::null(), &mut old),
                0
            );
            assert_eq!(old.sa_flags & libc::SA_RESTART, 0, "SA_RESTART must be off");
        }
    });
}

/// Runs `f` on this thread while another thread sends it `SIGUSR2` every millisecond;
/// returns `f`'s result and how many signals this thread's handler caught meanwhile.
fn storm<T>(f: impl FnOnce() -> T) -> (T, usize) {
    install_handler();
    // SAFETY: pthread_self has no preconditions.
    let target = unsafe { libc::pthread_self() };
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Acquire) {
                // SAFETY: `target` is the thread running `f`, alive until `done` is set,
                // and the scope joins this thread before that thread goes on.
                unsafe { libc::pthread_kill(target, libc::SIGUSR2) };
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let before = CAUGHT.with(|c| c.get());
        let result = f();
        let caught = CAUGHT.with(|c| c.get()) - before;
        done.store(true, Ordering::Release);
        (result, caught)
    })
}

/// How long a supplier waits before it provides what the interrupted call waits for.
const DELAY: Duration = Duration::from_millis(80);
/// The timeout of the calls that must time out.
const SHORT: Duration = Duration::from_millis(150);

/// `call` under a signal storm; at least one signal must have landed during it.
fn interrupted<T>(what: &str, call: impl FnOnce() -> T) -> T {
    let (result, caught) = storm(call);
    assert!(caught > 0, "{what}: no signal landed during the call");
    result
}

/// `call` (with timeout `timeout`, nothing arriving) under a signal storm: it must fail
/// with TimedOut, and only after the whole timeout.
fn times_out<T: std::fmt::Debug>(
    what: &str,
    timeout: Duration,
    call: impl FnOnce() -> ipcx::Result<T>,
) {
    let start = Instant::now();
    let result = interrupted(what, call);
    let waited = start.elapsed();
    let err = result.expect_err(what);
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{what}: {err}");
    assert!(
        waited >= timeout,
        "{what}: gave up after {waited:?} of {timeout:?}: a signal cut the wait short"
    );
}

/// `call` under a signal storm while another thread runs `supply` after [`DELAY`]: the
/// call must complete with what was supplied.
fn arrives<T>(what: &str, supply: impl FnOnce() + Send, call: impl FnOnce() -> T) -> T {
    std::thread::scope(|s| {
        s.spawn(move || {
            std::thread::sleep(DELAY);
            supply();
        });
        interrupted(what, call)
    })
}

#[test]
fn eintr_pipe_read_and_write() {
    use std::io::{Read, Write};
    let (r, w) = ipcx::pipe::pipe().unwrap();
    let mut buf = [0u8; 64];
    let n = arrives(
        "pipe read (blocking)",
        || {
            (&w).write_all(b"hello").unwrap();
        },
        || (&r).read(&mut buf).unwrap(),
    );
    assert_eq!(&buf[..n], b"hello");
    let n = arrives(
        "pipe read_timeout",
        || {
            (&w).write_all(b"again").unwrap();
        },
        || r.read_timeout(&mut buf, T).unwrap(),
    );
    assert_eq!(&buf[..n], b"again");
    times_out("pipe read_timeout, nothing written", SHORT, || {
        r.read_timeout(&mut buf, SHORT)
    });
    // A full pipe: writes wait.
    let mut filled = 0;
    while let Ok(n) = w.try_write(&[7u8; 4096]) {
        filled += n;
    }
    times_out("pipe write_timeout on a full pipe", SHORT, || {
        w.write_timeout(b"x", SHORT)
    });
    let drained = std::sync::atomic::AtomicUsize::new(0);
    arrives(
        "pipe write (blocking) on a full pipe",
        || {
            let mut big = vec![0u8; filled];
            let mut got = 0;
            while got < filled {
                got += r.read_timeout(&mut big[..filled - got], T).unwrap();
            }
            drained.store(got, Ordering::Release);
        },
        || (&w).write_all(b"last").unwrap(),
    );
    assert_eq!(drained.load(Ordering::Acquire), filled);
    let n = r.read_timeout(&mut buf, T).unwrap();
    assert_eq!(&buf[..n], b"last");
}

/// The channel transports: each receive form and the sender's wait for room, on every
/// transport, in one process (the sockets' lazy accept is the first receive's wait).
#[test]
fn eintr_channel_waits_on_every_transport() {
    let transports = [
        (Mech::Pipe, 120),
        (Mech::Fifo, 120),
        (Mech::Unix, 120),
        (Mech::UnixDgram, 100),
        (Mech::UnixSeqpacket, 120),
        (Mech::Tcp, 120),
        (Mech::Udp, 80),
        (Mech::Mq, 100),
        (Mech::SysvMq, 100),
        (Mech::Shm, 120),
        (Mech::Ring, 120),
        (Mech::Ring, 120),
        (Mech::Ring, 120),
    ];
    for (mech, variant) in transports {
        let (text, _guard) = setup(mech, variant);
        let what = |call: &str| format!("{text}: {call}");
        let (mut rx, mut tx): (Box<dyn Receiver + Send>, Box<dyn Sender + Send>) =
            if mech == Mech::Pipe {
                let (r, w) = ipcx::pipe::pipe().unwrap();
                (
                    Box::new(StreamReceiver::from_pipe(r)),
                    Box::new(StreamSender::from_pipe(w)),
                )
            } else {
                let mut rx = channel::receiver(&text.parse().unwrap()).unwrap();
                let mut buf = vec![0u8; rx.max_message()];
                // Before any sender: a socket receiver's wait to accept, a FIFO's open.
                times_out(&what("recv_timeout before any sender"), SHORT, || {
                    rx.recv_timeout(&mut buf, SHORT)
                });
                let reach = rx.address().unwrap();
                // Connecting rarely waits long enough for a signal to land; it must
                // still succeed under the storm.
                let (tx, _) = storm(|| channel::sender_timeout(&reach, T).unwrap());
                (rx, tx)
            };
        let mut buf = vec![0u8; rx.max_message()];
        let n = arrives(
            &what("recv (blocking)"),
            || tx.send(b"one").unwrap(),
            || rx.recv(&mut buf).unwrap(),
        );
        assert_eq!(&buf[..n], b"one", "{text}");
        let n = arrives(
            &what("recv_timeout"),
            || tx.send(b"two").unwrap(),
            || rx.recv_timeout(&mut buf, T).unwrap(),
        );
        assert_eq!(&buf[..n], b"two", "{text}");
        times_out(&what("recv_timeout, nothing sent"), SHORT, || {
            rx.recv_timeout(&mut buf, SHORT)
        });
        if mech == Mech::Udp {
            continue; // a UDP sender never waits for room
        }
        // Fill the channel, then the sender waits for room.
        let len = tx.max_message().min(16 << 10);
        let mut seq = 0;
        loop {
            match tx.try_send(&message(seq, len)) {
                Ok(()) => seq += 1,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("{text}: filling: {e}"),
            }
            assert!(seq < 100_000, "{text}: the channel never filled");
        }
        let filled = seq;
        times_out(&what("send_timeout on a full channel"), SHORT, || {
            tx.send_timeout(&message(filled, len), SHORT)
        });
        let last = message(filled, len);
        arrives(
            &what("send (blocking) on a full channel"),
            || {
                let mut next = 0;
                let mut buf = vec![0u8; rx.max_message()];
                while next < filled {
                    let n = rx.recv_timeout(&mut buf, T).unwrap();
                    check_order(&buf[..n], &mut next, false)
                        .unwrap_or_else(|e| panic!("{text}: {e}"));
                }
            },
            || tx.send(&last).unwrap(),
        );
        let n = rx.recv_timeout(&mut buf, T).unwrap();
        let mut next = filled;
        check_order(&buf[..n], &mut next, false).unwrap_or_else(|e| panic!("{text}: {e}"));
        let err = rx.try_recv(&mut buf).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WouldBlock, "{text}: {err}");
    }
}

#[test]
fn eintr_message_queue_waits() {
    use ipcx::mq::posix::MqOptions;
    use ipcx::mq::sysv::{SysvMqOptions, TypeFilter};
    let name = common::unique_name("mq");
    let mq = MqOptions::new()
        .capacity(2)
        .max_msg_size(64)
        .create(&name)
        .unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = arrives(
        "mq_receive (blocking)",
        || mq.send(b"posix", 0).unwrap(),
        || mq.recv(&mut buf).unwrap(),
    );
    assert_eq!(&buf[..n], b"posix");
    times_out("mq_timedreceive", SHORT, || {
        mq.recv_timeout(&mut buf, SHORT)
    });
    mq.send(b"1", 0).unwrap();
    mq.send(b"2", 0).unwrap();
    times_out("mq_timedsend on a full queue", SHORT, || {
        mq.send_timeout(b"3", 0, SHORT)
    });
    arrives(
        "mq_send (blocking) on a full queue",
        || {
            mq.recv_timeout(&mut [0u8; 64], T).unwrap();
        },
        || mq.send(b"3", 0).unwrap(),
    );

    let key = common::unique_key("sysv-msg");
    let q = SysvMqOptions::new().create(key).unwrap();
    let (t, n) = arrives(
        "msgrcv (blocking)",
        || q.send(5, b"sysv").unwrap(),
        || q.recv(TypeFilter::Any, &mut buf).unwrap(),
    );
    assert_eq!((t, &buf[..n]), (5, &b"sysv"[..]));
    times_out("msgrcv with a timeout", SHORT, || {
        q.recv_timeout(TypeFilter::Any, &mut buf, SHORT)
    });
    q.set_qbytes(16).unwrap();
    q.send(1, &[1u8; 16]).unwrap();
    times_out("msgsnd with a timeout on a full queue", SHORT, || {
        q.send_timeout(1, b"more", SHORT)
    });
    arrives(
        "msgsnd (blocking) on a full queue",
        || {
            q.recv_timeout(TypeFilter::Any, &mut [0u8; 64], T).unwrap();
        },
        || q.send(1, b"more").unwrap(),
    );
}

#[test]
fn eintr_semaphore_waits() {
    use ipcx::sem::posix::NamedSemaphore;
    use ipcx::sem::sysv::{SemOp, SemSetOptions};
    let name = common::unique_name("sem");
    let sem = NamedSemaphore::create(&name).unwrap();
    arrives(
        "sem_wait (blocking)",
        || sem.post().unwrap(),
        || sem.wait().unwrap(),
    );
    times_out("sem_timedwait", SHORT, || sem.wait_timeout(SHORT));

    let key = common::unique_key("sysv-sem");
    let set = SemSetOptions::new()
        .count(1)
        .initial(0)
        .create(key)
        .unwrap();
    arrives(
        "semop (blocking)",
        || set.op(&[SemOp::release(0)]).unwrap(),
        || set.op(&[SemOp::acquire(0)]).unwrap(),
    );
    times_out("semtimedop", SHORT, || {
        set.op_timeout(&[SemOp::acquire(0)], SHORT)
    });
}

#[test]
fn eintr_eventfd_waits() {
    let efd = EventFd::new(0).unwrap();
    let v = arrives(
        "eventfd read (blocking)",
        || efd.write(3).unwrap(),
        || efd.read().unwrap(),
    );
    assert_eq!(v, 3);
    times_out("eventfd read_timeout", SHORT, || efd.read_timeout(SHORT));
    // At its maximum (2^64 - 2) the counter takes nothing more: writes wait.
    efd.write(u64::MAX - 1).unwrap();
    times_out("eventfd write_timeout at the maximum", SHORT, || {
        efd.write_timeout(1, SHORT)
    });
    arrives(
        "eventfd write (blocking) at the maximum",
        || {
            efd.read_timeout(T).unwrap();
        },
        || efd.write(1).unwrap(),
    );
    assert_eq!(efd.try_read().unwrap(), 1);
}

#[test]
fn eintr_socket_accept_and_receive() {
    use ipcx::unix::{Seqpacket, UnixSocketExt};
    use ipcx::{ListenerExt, SocketExt};
    use std::os::unix::net::UnixStream;
    let dir = common::tempdir();
    let listener = ipcx::unix::listen(dir.path().join("l")).unwrap();
    times_out("accept_timeout, nobody connecting", SHORT, || {
        listener.accept_timeout(SHORT)
    });
    let path = listener.path().to_path_buf();
    let client = Mutex::new(None);
    let server = arrives(
        "accept_timeout, a client connecting",
        || *client.lock().unwrap() = Some(UnixStream::connect(&path).unwrap()),
        || listener.accept_timeout(T).unwrap(),
    );
    let client = client.into_inner().unwrap().unwrap();
    let mut buf = [0u8; 16];
    let n = arrives(
        "recv (blocking) on a stream",
        || {
            client.send_timeout(b"stream", T).unwrap();
        },
        || server.recv_blocking(&mut buf).unwrap(),
    );
    assert_eq!(&buf[..n], b"stream");
    times_out("recv_timeout on a stream", SHORT, || {
        server.recv_timeout(&mut buf, SHORT)
    });
    let file = tempfile::tempfile().unwrap();
    let (n, fds) = arrives(
        "recvmsg with SCM_RIGHTS (blocking)",
        || {
            client.send_fds(b"fd", &[file.as_fd()]).unwrap();
        },
        || server.recv_fds(&mut buf, 1).unwrap(),
    );
    assert_eq!((&buf[..n], fds.len()), (&b"fd"[..], 1));
    times_out("recvmsg with SCM_RIGHTS, timed", SHORT, || {
        server.recv_fds_timeout(&mut buf, 1, SHORT)
    });
    let (a, b) = Seqpacket::pair().unwrap();
    let n = arrives(
        "seqpacket recv (blocking)",
        || {
            a.send(b"packet").unwrap();
        },
        || b.recv(&mut buf).unwrap(),
    );
    assert_eq!(&buf[..n], b"packet");
}

#[test]
fn eintr_mailbox_request_and_receive() {
    use std::os::unix::fs::PermissionsExt;
    let dir = common::tempdir();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let server = MailboxOptions::new().dir(dir.path()).bind("srv").unwrap();
    let client = MailboxOptions::new().dir(dir.path()).bind("cli").unwrap();
    times_out("mailbox recv_timeout", SHORT, || server.recv_timeout(SHORT));
    let reply = arrives(
        "mailbox request, answered after a delay",
        || {
            let env = server.recv_timeout(T).unwrap();
            env.reply(b"pong").unwrap();
        },
        || client.request("srv", b"ping", T).unwrap(),
    );
    assert_eq!(reply, b"pong");
    times_out("mailbox request, never answered", SHORT, || {
        client.request("srv", b"ignored", SHORT)
    });
    let env = arrives(
        "mailbox recv (blocking)",
        || client.send("srv", b"one-way").unwrap(),
        || loop {
            // The unanswered request is queued first.
            let env = server.recv().unwrap();
            if env.payload() == b"one-way" {
                break env;
            }
        },
    );
    assert!(!env.expects_reply());
}

#[test]
fn eintr_poll_and_process_waits() {
    use ipcx::poll::{Interest, PollSet};
    use ipcx::process::Pidfd;
    let (r, w) = ipcx::pipe::pipe().unwrap();
    let ready = {
        let mut set = PollSet::new();
        set.add(&r, Interest::READABLE);
        arrives(
            "poll (blocking)",
            || {
                w.try_write(b"x").unwrap();
            },
            || set.wait().unwrap(),
        )
    };
    assert_eq!(ready.len(), 1);
    r.try_read(&mut [0u8; 1]).unwrap();
    let mut set = PollSet::new();
    set.add(&r, Interest::READABLE);
    let start = Instant::now();
    let ready = interrupted("poll with a timeout", || set.wait_timeout(SHORT).unwrap());
    assert!(ready.is_empty());
    assert!(start.elapsed() >= SHORT, "a signal cut the poll short");
    // A pidfd's wait for a child's exit.
    let mut child = Command::new("sleep").arg("0.3").spawn().unwrap();
    let pidfd = Pidfd::from_child(&child).unwrap();
    times_out("pidfd wait_exit_timeout", SHORT, || {
        pidfd.wait_exit_timeout(SHORT)
    });
    interrupted("pidfd wait_exit (blocking)", || pidfd.wait_exit().unwrap());
    child.wait().unwrap();
}

// ---------------------------------------------------------------------------------------
// Out of descriptors (reliability items 12 and 15)
// ---------------------------------------------------------------------------------------

/// In a child whose `RLIMIT_NOFILE` is lowered to exactly the descriptors it has open:
/// accept (Unix, seqpacket, TCP, a channel's lazy accept), a receive that carries
/// descriptors (the kernel cuts them: `MSG_CTRUNC`), pipe and eventfd creation all fail
/// with LimitReached naming the limit and what to do, nothing leaks, and once the limit
/// is raised every one of them works: the listeners stayed up and the pending
/// connections were kept.
#[test]
fn descriptor_exhaustion_is_limit_reached_and_recoverable() {
    use ipcx::ListenerExt;
    use ipcx::unix::{Seqpacket, UnixSocketExt};
    use std::net::{TcpListener, TcpStream};
    use std::os::unix::net::UnixStream;
    if common::role().is_some() {
        let dir = common::tempdir();
        let unix = ipcx::unix::listen(dir.path().join("l")).unwrap();
        let seq = ipcx::unix::listen_seqpacket(dir.path().join("q")).unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let _c1 = UnixStream::connect(unix.path()).unwrap();
        let _c2 = Seqpacket::connect(seq.path()).unwrap();
        let _c3 = TcpStream::connect(tcp.local_addr().unwrap()).unwrap();
        let (a, b) = UnixStream::pair().unwrap();
        let file = tempfile::tempfile().unwrap();
        a.send_fds(b"f", &[file.as_fd(), file.as_fd()]).unwrap();
        let (c, d) = Seqpacket::pair().unwrap();
        c.send_fds(b"p", &[file.as_fd()]).unwrap();
        let addr: Address = format!("unix-seqpacket:{}/ch", dir.path().display())
            .parse()
            .unwrap();
        let mut rx = channel::receiver(&addr).unwrap();
        let mut tx = channel::sender_timeout(&addr, T).unwrap();
        tx.send(b"queued").unwrap();
        let original = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(4096);

        let before = fd_table();
        common::set_nofile(common::lowest_free_fd());
        let mut buf = [0u8; 64];
        let errors = [
            ("accept unix", unix.try_accept().map(drop)),
            ("accept seqpacket", seq.try_accept().map(drop)),
            ("accept tcp", tcp.try_accept().map(drop)),
            ("recv_fds stream", b.recv_fds(&mut buf, 4).map(drop)),
            ("recv_fds seqpacket", d.recv_fds(&mut buf, 4).map(drop)),
            ("pipe", ipcx::pipe::pipe().map(drop)),
            ("eventfd", EventFd::new(0).map(drop)),
            (
                "channel recv",
                rx.recv_timeout(&mut buf, Duration::from_millis(200))
                    .map(drop),
            ),
        ];
        common::set_nofile(original);
        // (Listing /proc/self/fd takes a descriptor: only now is there room for one.)
        let after = fd_table();
        assert_eq!(before, after, "descriptors leaked while out of them");
        for (what, result) in errors {
            match result {
                Err(e) => common::say(format!("{what}: {:?}: {e}", e.kind())),
                Ok(()) => common::say(format!("{what}: succeeded")),
            }
        }
        // Recovery: the same objects work, nothing pending was lost.
        unix.accept_timeout(T).unwrap();
        seq.accept_timeout(T).unwrap();
        tcp.accept_timeout(T).unwrap();
        a.send_fds(b"g", &[file.as_fd()]).unwrap();
        let (n, fds) = b.recv_fds_timeout(&mut buf, 4, T).unwrap();
        assert_eq!((&buf[..n], fds.len()), (&b"g"[..], 1));
        c.send_fds(b"s", &[file.as_fd()]).unwrap();
        let (n, fds) = d.recv_fds_timeout(&mut buf, 4, T).unwrap();
        assert_eq!((&buf[..n], fds.len()), (&b"s"[..], 1));
        ipcx::pipe::pipe().unwrap();
        EventFd::new(0).unwrap();
        let n = rx.recv_timeout(&mut buf, T).unwrap();
        assert_eq!(&buf[..n], b"queued");
        common::say("recovered");
        return;
    }
    let out = common::run_ok(common::child(
        "descriptor_exhaustion_is_limit_reached_and_recoverable",
        "child",
        &[],
    ));
    println!("{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.last(), Some(&"recovered"), "{out}");
    for line in &lines[..lines.len() - 1] {
        assert!(line.contains(": LimitReached: "), "{line}");
        assert!(
            line.contains("RLIMIT_NOFILE"),
            "the limit is not named: {line}"
        );
        assert!(
            line.contains("ulimit -n") || line.contains("close"),
            "no advice on what to do: {line}"
        );
    }
    assert_eq!(lines.len(), 9, "{out}");
}
