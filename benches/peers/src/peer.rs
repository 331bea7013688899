//! The peer process and its supervision.
//!
//! For each row this program starts a second copy of itself (`ipcx-peers-bench peer
//! ROW ...`), as `ipcx bench` starts `ipcx bench-child`: in a process group of its own,
//! its stderr captured, told to die with its parent (`PR_SET_PDEATHSIG`), pinned to the
//! second CPU.
//!
//! As in `ipcx bench` (`session::watch`), each row runs in a worker thread of its own,
//! pinned to the first CPU, and the main thread watches it: a row whose peer died while
//! it still waits, or that makes no progress for [`WATCHDOG`], is ended with an error
//! (its peer killed, its named shared memory removed) and the run goes on with the next
//! row, leaving the worker blocked where it is. SIGINT, SIGTERM and SIGHUP end the run
//! the same way, with status 128 + the signal.

use std::cell::Cell;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ipcx::pipe::PipeReader;

use crate::Fallible;
use crate::measure;

/// How long a peer may take to set up its side, and to exit once told to quit.
pub const SETUP_WAIT: Duration = Duration::from_secs(10);

/// How long a row may make no progress before the watchdog ends it: longer than every
/// wait of the row's own, so the row reports its own error first where it can.
const WATCHDOG: Duration = Duration::from_secs(20);

/// How long after its peer exited a row may take to notice.
const PEER_GRACE: Duration = Duration::from_secs(5);

/// The row under way: its peer and the named objects to remove if the run is cut short.
#[derive(Default)]
struct Current {
    /// Which row this is: a worker abandoned by an earlier row must not touch it.
    id: u64,
    row: &'static str,
    /// What the row is doing, for the watchdog's message.
    stage: &'static str,
    child: Option<Child>,
    /// When the peer was first seen to have exited while the row still waited.
    exited: Option<(ExitStatus, Instant)>,
    /// POSIX shared memory names this row creates (ipcx rings).
    shm: Vec<String>,
    /// The peer's stdout, kept open until the peer exits so that nothing it prints
    /// later (a library's log line) meets a closed pipe.
    stdout: Option<PipeReader>,
}

static CURRENT: Mutex<Option<Current>> = Mutex::new(None);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The row this worker thread runs (0: none).
    static ROW: Cell<u64> = const { Cell::new(0) };
}

fn current() -> MutexGuard<'static, Option<Current>> {
    // A panic while holding the lock leaves the state valid: keep using it.
    CURRENT.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `f` on the current row if it is this worker's own.
fn mine(f: impl FnOnce(&mut Current)) {
    let id = ROW.with(Cell::get);
    if let Some(c) = current().as_mut().filter(|c| c.id == id) {
        f(c);
    }
}

/// Starts a row: from now on [`stalled`] watches it. Returns its id, for [`adopt`] and
/// [`end`].
pub fn begin(row: &'static str) -> u64 {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    measure::beat();
    *current() = Some(Current {
        id,
        row,
        stage: "setting up",
        ..Current::default()
    });
    id
}

/// Makes the calling thread the worker of row `id`.
pub fn adopt(id: u64) {
    ROW.with(|r| r.set(id));
}

/// Records what the row is doing now (for the watchdog's message), and beats.
pub fn stage(what: &'static str) {
    measure::beat();
    mine(|c| c.stage = what);
}

/// Records a POSIX shared memory name the row's link creates, to remove if the row is
/// cut short (a clean end removes it through its owner).
pub fn track_shm(name: &str) {
    mine(|c| c.shm.push(name.to_string()));
}

/// Ends row `id` (nothing if another row is under way): waits up to [`SETUP_WAIT`] for
/// the peer to exit (it has been told to quit; `kill` kills it at once instead), reaps
/// it, and removes what it left. Returns an error describing an unclean end of the peer.
pub fn end(id: u64, kill: bool) -> Fallible<()> {
    let Some(mut cur) = current().take_if(|c| c.id == id) else {
        return Ok(());
    };
    let result = match cur.child.take() {
        Some(child) => reap(child, kill),
        None => Ok(()),
    };
    remove_shm(&cur.shm);
    result
}

fn reap(mut child: Child, kill: bool) -> Fallible<()> {
    let deadline = Instant::now() + if kill { Duration::ZERO } else { SETUP_WAIT };
    let status = loop {
        match child.try_wait()? {
            Some(status) => break status,
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
            None => {
                let _ = child.kill();
                break child.wait()?;
            }
        }
    };
    let mut said = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        // The peer has exited: this reads to the end of what it wrote.
        let _ = pipe.read_to_string(&mut said);
    }
    let said = said.trim();
    // A peer killed here is not at fault unless it said why it stopped.
    if status.success() || (kill && said.is_empty()) {
        Ok(())
    } else if said.is_empty() {
        Err(format!("the peer process ended with {status}").into())
    } else {
        Err(format!("the peer process ended with {status}: {said}").into())
    }
}

fn remove_shm(names: &[String]) {
    for name in names {
        match ipcx::shm::posix::Shm::unlink(name) {
            Ok(()) => {}
            Err(e) if e.kind() == ipcx::ErrorKind::NotFound => {}
            Err(e) => eprintln!("peers: cleaning up: {e}"),
        }
    }
}

/// What the peer of a row is told on its command line.
pub struct Spec<'a> {
    pub row: &'static str,
    /// The CPU to pin the peer to.
    pub cpu: Option<usize>,
    /// Busy waits yield (both processes share one CPU).
    pub single_cpu: bool,
    /// The ping's size in bytes.
    pub ping: usize,
    /// The row's own arguments (addresses, names).
    pub args: &'a [String],
}

/// Starts the row's peer with `stdin` as its standard input and its standard output
/// piped (for its `ready` line). Returns that pipe's read end.
pub fn spawn(spec: &Spec<'_>, stdin: Stdio) -> Fallible<OwnedFd> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find this program to start the peer: {e}"))?;
    let mut child = Command::new(&exe)
        .arg("peer")
        .arg(spec.row)
        .arg(std::process::id().to_string())
        .arg(spec.cpu.map_or("-".to_string(), |c| c.to_string()))
        .arg(if spec.single_cpu { "1" } else { "0" })
        .arg(spec.ping.to_string())
        .args(spec.args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A Ctrl-C reaches this process, which stops the peer and cleans up.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start the peer {}: {e}", exe.display()))?;
    let stdout = child.stdout.take().map(OwnedFd::from);
    let mut child = Some(child);
    mine(|c| c.child = child.take());
    if let Some(mut orphan) = child {
        let _ = orphan.kill();
        let _ = orphan.wait();
        return Err("a peer was started outside its row".into());
    }
    stdout.ok_or_else(|| "the peer's stdout was not piped".into())
}

/// Reads the peer's `ready` line (`ready` and an optional word) from its stdout,
/// waiting up to [`SETUP_WAIT`]. Returns the word.
pub fn read_ready(stdout: OwnedFd) -> Fallible<String> {
    let reader = PipeReader::try_from(stdout)?;
    let deadline = Instant::now() + SETUP_WAIT;
    let mut line = Vec::new();
    let mut buf = [0u8; 256];
    while !line.contains(&b'\n') {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = reader
            .read_timeout(&mut buf, left)
            .map_err(|e| format!("waiting for the peer to set up: {e}"))?;
        if n == 0 {
            return Err("the peer exited before it was ready".into());
        }
        line.extend_from_slice(&buf[..n]);
        if line.len() > 4096 {
            return Err("the peer's ready line is longer than 4096 bytes".into());
        }
    }
    let mut reader = Some(reader);
    mine(|c| c.stdout = reader.take());
    let text = String::from_utf8_lossy(&line);
    let first = text.lines().next().unwrap_or_default();
    match first.strip_prefix("ready") {
        Some(rest) => Ok(rest.trim().to_string()),
        None => Err(format!("the peer said {first:?} instead of `ready`").into()),
    }
}

/// The peer's side: says it is ready, with `word` (an address it created, or nothing).
pub fn say_ready(word: &str) -> Fallible<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {word}")?;
    out.flush()?;
    Ok(())
}

/// Why row `id` must be given up, if it must: its peer exited more than [`PEER_GRACE`]
/// ago while the row still waits, or it made no progress for [`WATCHDOG`].
pub fn stalled(id: u64) -> Option<String> {
    let mut guard = current();
    let cur = guard.as_mut().filter(|c| c.id == id)?;
    if cur.exited.is_none()
        && let Some(child) = cur.child.as_mut()
        && let Ok(Some(status)) = child.try_wait()
    {
        cur.exited = Some((status, Instant::now()));
    }
    match cur.exited {
        Some((status, at)) if at.elapsed() > PEER_GRACE => Some(format!(
            "the peer process ended ({status}) during {} but this side is still waiting for \
             it (this transport cannot tell that its peer has gone)",
            cur.stage
        )),
        _ if measure::idle() > WATCHDOG => Some(format!(
            "no progress for {WATCHDOG:?} during {}: the link is stuck; the row was given up \
             and its peer killed",
            cur.stage
        )),
        _ => None,
    }
}

/// The signals that end a run: SIGINT, SIGTERM and SIGHUP, to look at with
/// [`interrupted`].
pub fn signals() -> Fallible<signal_hook::iterator::Signals> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    Ok(signal_hook::iterator::Signals::new([
        SIGINT, SIGTERM, SIGHUP,
    ])?)
}

/// If a signal arrived: kills the current row's peer, removes its objects and exits with
/// 128 + the signal.
pub fn interrupted(signals: &mut signal_hook::iterator::Signals) {
    if let Some(sig) = signals.pending().next() {
        let (id, row) = current().as_ref().map_or((0, ""), |c| (c.id, c.row));
        let said = match end(id, true) {
            Ok(()) => String::new(),
            Err(e) => format!("; {e}"),
        };
        eprintln!(
            "peers: interrupted by signal {sig} during {row}{said}; peer stopped, its shared \
             memory removed"
        );
        std::process::exit(128 + sig);
    }
}
