//! Everything a run creates, and its removal on every path: the peer processes, the
//! private directory for socket files and FIFOs, POSIX names and System V keys.
//!
//! Each row runs in a worker thread (pinned to the bench's CPU) while the main thread
//! watches it: a peer that exits early or a link that stops making progress ends the
//! row with an error instead of hanging the run, and the row's objects are removed even
//! though the stuck worker still holds them. A signal (`SIGINT`, `SIGTERM`, `SIGHUP`)
//! kills the peers and removes everything before the bench exits.

use std::fs::DirBuilder;
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ipcx::ErrorKind;
use ipcx::mq::posix::MessageQueue;
use ipcx::mq::sysv::SysvMq;
use ipcx::shm::posix::Shm;
use ipcx::sysv::Key;

use super::Fallible;
use super::measure::Heartbeat;

/// How long a row may make no progress before the watchdog gives up on it: longer than
/// every wait of the worker's own (10 s), so the worker reports its own error first.
const WATCHDOG: Duration = Duration::from_secs(20);

/// How long after its peer exited a worker may take to notice.
const PEER_GRACE: Duration = Duration::from_secs(5);

/// How long a peer may take to exit once told to quit.
const EXIT_WAIT: Duration = Duration::from_secs(10);

/// A named object a row creates (or whose creation it asked of its peer).
#[derive(Clone, Debug)]
pub enum Object {
    /// A POSIX message queue name.
    Mq(String),
    /// A POSIX shared memory name.
    Shm(String),
    /// A System V message queue key, checked free before the row.
    SysvMq(Key),
}

/// A peer process of the current row.
#[derive(Debug)]
struct Peer {
    child: Child,
    /// Set once the watchdog has seen it exit (and reaped it).
    exited: Option<(ExitStatus, Instant)>,
}

/// How a peer ended: its status and what it wrote on stderr.
#[derive(Debug)]
pub struct PeerEnd {
    /// `None` if the peer could not be reaped (`stderr` then says why).
    pub status: Option<ExitStatus>,
    pub stderr: String,
}

impl PeerEnd {
    /// A description of an unsuccessful end, or `None` for a clean exit.
    pub fn failure(&self) -> Option<String> {
        let said = self.stderr.trim();
        match self.status {
            Some(status) if status.success() => None,
            Some(status) if said.is_empty() => {
                Some(format!("the peer process ended with {status}"))
            }
            Some(status) => Some(format!("the peer process ended with {status}: {said}")),
            None => Some(said.to_string()),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// Set when the run is being torn down: no new peers.
    closing: bool,
    dir: Option<PathBuf>,
    objects: Vec<Object>,
    peers: Vec<Peer>,
}

/// What this run has created and not yet removed.
#[derive(Debug)]
pub struct Registry {
    state: Mutex<State>,
}

/// The one registry of the process (the signal thread must reach it).
pub static REGISTRY: Registry = Registry {
    state: Mutex::new(State {
        closing: false,
        dir: None,
        objects: Vec::new(),
        peers: Vec::new(),
    }),
};

impl Registry {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the lists valid: keep using them.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates the run's private directory (mode 0700) under the system's temporary
    /// directory, for socket files and FIFOs.
    pub fn create_dir(&self) -> Fallible<PathBuf> {
        let base = std::env::temp_dir();
        let pid = std::process::id();
        for n in 0..100 {
            let name = if n == 0 {
                format!("ipcx-bench-{pid}")
            } else {
                format!("ipcx-bench-{pid}-{n}")
            };
            let path = base.join(name);
            match DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {
                    self.lock().dir = Some(path.clone());
                    return Ok(path);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(format!(
                        "cannot create the bench's directory {}: {e} (set TMPDIR to a writable \
                         directory)",
                        path.display()
                    )
                    .into());
                }
            }
        }
        Err(format!(
            "cannot create the bench's directory: {}/ipcx-bench-{pid}-0 to -99 all exist",
            base.display()
        )
        .into())
    }

    /// Records an object the current row is about to create.
    pub fn track(&self, object: Object) {
        self.lock().objects.push(object);
    }

    /// Records a peer process of the current row. During teardown the peer is killed at
    /// once and this fails.
    pub fn add_peer(&self, mut child: Child) -> Fallible<()> {
        let mut state = self.lock();
        if state.closing {
            let _ = child.kill();
            let _ = child.wait();
            return Err("the bench is shutting down".into());
        }
        state.peers.push(Peer {
            child,
            exited: None,
        });
        Ok(())
    }

    /// Whether a peer of the current row has exited, and since when (the peer is reaped;
    /// [`Registry::end_peers`] still reports it).
    fn peer_exited_since(&self) -> Option<Instant> {
        let mut state = self.lock();
        let mut first: Option<Instant> = None;
        for peer in &mut state.peers {
            if peer.exited.is_none() {
                if let Ok(Some(status)) = peer.child.try_wait() {
                    peer.exited = Some((status, Instant::now()));
                }
            }
            if let Some((_, at)) = peer.exited {
                first = Some(first.map_or(at, |f| f.min(at)));
            }
        }
        first
    }

    /// Ends the current row's peers: waits up to [`EXIT_WAIT`] for each to exit (or
    /// kills it at once with `kill`), reaps it, and returns how each ended.
    pub fn end_peers(&self, kill: bool) -> Vec<PeerEnd> {
        let peers = std::mem::take(&mut self.lock().peers);
        peers.into_iter().map(|p| end_peer(p, kill)).collect()
    }

    /// Removes the current row's objects that still exist. POSIX names carry this
    /// process's id, so they are always ours; a System V key is removed only after an
    /// abnormal end (`abnormal`), when its creator may not have removed it: after a clean
    /// end its owner has, and the key could since belong to someone else.
    pub fn remove_objects(&self, abnormal: bool) {
        let objects = std::mem::take(&mut self.lock().objects);
        remove(&objects, abnormal);
    }

    /// Tears everything down: kills every peer, removes every object and the directory.
    /// Called at the end of a run and from the signal thread.
    pub fn shutdown(&self) {
        let (peers, objects, dir) = {
            let mut state = self.lock();
            state.closing = true;
            (
                std::mem::take(&mut state.peers),
                std::mem::take(&mut state.objects),
                state.dir.take(),
            )
        };
        for peer in peers {
            end_peer(peer, true);
        }
        remove(&objects, true);
        if let Some(dir) = dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn end_peer(mut peer: Peer, kill: bool) -> PeerEnd {
    let status = match peer.exited {
        Some((status, _)) => status,
        None => {
            let deadline = Instant::now() + if kill { Duration::ZERO } else { EXIT_WAIT };
            loop {
                match peer.child.try_wait() {
                    Ok(Some(status)) => break status,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    _ => {
                        let _ = peer.child.kill();
                        match peer.child.wait() {
                            Ok(status) => break status,
                            Err(e) => {
                                return PeerEnd {
                                    status: None,
                                    stderr: format!("cannot reap the peer process: {e}"),
                                };
                            }
                        }
                    }
                }
            }
        }
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = peer.child.stderr.take() {
        // The peer has exited, so this reads to the end of what it wrote.
        let _ = pipe.read_to_string(&mut stderr);
    }
    PeerEnd {
        status: Some(status),
        stderr,
    }
}

fn remove(objects: &[Object], sysv_too: bool) {
    let gone = |r: ipcx::Result<()>| match r {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => eprintln!("ipcx bench: cleaning up: {e}"),
    };
    for object in objects {
        match object {
            Object::Mq(name) => gone(MessageQueue::unlink(name)),
            Object::Shm(name) => gone(Shm::unlink(name)),
            Object::SysvMq(key) if sysv_too => gone(SysvMq::remove_key(*key)),
            Object::SysvMq(_) => {}
        }
    }
}

/// Picks a System V key that no queue uses now, in a range of its own
/// (`0x4942xxxx`, "IB").
pub fn free_sysv_key(salt: u32) -> Fallible<Key> {
    let pid = std::process::id();
    for n in 0..64u32 {
        let low = (pid.wrapping_mul(2_654_435_761) ^ salt.wrapping_mul(40_503) ^ n) & 0xffff;
        let key = Key::new((0x4942_0000 | low) as i32);
        match SysvMq::options().open(key) {
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(key),
            _ => continue,
        }
    }
    Err("no free System V key found in 0x4942xxxx after 64 tries".into())
}

/// Held by the signal thread from the moment it takes a signal until the process exits.
static TEARDOWN: Mutex<()> = Mutex::new(());

/// The signal that interrupted the run, or 0. Set only while [`TEARDOWN`] is held.
static INTERRUPTED: AtomicI32 = AtomicI32::new(0);

/// Starts the thread that turns `SIGINT`, `SIGTERM` and `SIGHUP` into a clean exit:
/// `on_signal` runs first (to clear the progress bar), then every peer is killed and
/// every object removed, and the process exits with 128 + the signal's number.
pub fn handle_signals(on_signal: impl Fn() + Send + 'static) -> Fallible<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("ipcx-bench-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                // Never released: the process exits holding it.
                let _teardown = TEARDOWN.lock().unwrap_or_else(|p| p.into_inner());
                INTERRUPTED.store(sig, Ordering::SeqCst);
                on_signal();
                REGISTRY.shutdown();
                eprintln!(
                    "ipcx bench: interrupted by signal {sig}; peers stopped, objects removed"
                );
                std::process::exit(128 + sig);
            }
        })?;
    Ok(())
}

/// Waits for the signal thread, if a signal interrupted the run: the results of an
/// interrupted run are not reported, and the process must not exit before the
/// teardown is done.
pub fn wait_if_interrupted() {
    let sig = INTERRUPTED.load(Ordering::SeqCst);
    if sig != 0 {
        // The signal thread holds the lock until it ends the process; getting it means
        // the thread died half-way (a panic): end the process here instead.
        let _teardown = TEARDOWN.lock();
        REGISTRY.shutdown();
        std::process::exit(128 + sig);
    }
}

/// Runs `work` in a worker thread pinned by `pin`, watching it: returns its result, or
/// an error when its peer exits and the worker does not notice within [`PEER_GRACE`],
/// or when it makes no progress for [`WATCHDOG`]. Either way the row's peers are ended
/// and its objects removed before this returns.
pub fn watch<T: Send + 'static>(
    name: &str,
    pin: impl FnOnce() + Send + 'static,
    work: impl FnOnce(&Heartbeat) -> Fallible<T> + Send + 'static,
) -> Fallible<T> {
    let hb = Arc::new(Heartbeat::new());
    let (tx, rx) = mpsc::channel();
    let worker_hb = hb.clone();
    let worker = std::thread::Builder::new()
        .name(format!("ipcx-bench-{name}"))
        .spawn(move || {
            pin();
            let result = work(&worker_hb).map_err(|e| e.to_string());
            // End the peers here, not in the watching thread: a peer's parent-death
            // signal fires when the thread that started it ends, so this thread must
            // outlive them.
            let ends = REGISTRY.end_peers(result.is_err());
            let _ = tx.send((result, ends));
        })?;
    loop {
        // Rarely: this thread shares the two CPUs with the measurement.
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok((result, ends)) => {
                let _ = worker.join();
                let peer_said = ends.iter().find_map(PeerEnd::failure);
                REGISTRY.remove_objects(result.is_err() || peer_said.is_some());
                return match (result, peer_said) {
                    (Ok(v), None) => Ok(v),
                    (Ok(_), Some(said)) => Err(said.into()),
                    (Err(e), None) => Err(e.into()),
                    (Err(e), Some(said)) => Err(format!("{e}; {said}").into()),
                };
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let ends = REGISTRY.end_peers(true);
                REGISTRY.remove_objects(true);
                let said = ends.iter().find_map(PeerEnd::failure).unwrap_or_default();
                return Err(format!("the bench's worker thread panicked {said}").into());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let why = if REGISTRY
                    .peer_exited_since()
                    .is_some_and(|at| at.elapsed() > PEER_GRACE)
                {
                    "the peer process ended but the bench's side is still waiting (this \
                     transport cannot tell that its peer has gone)"
                        .to_string()
                } else if hb.idle() > WATCHDOG {
                    format!("no progress for {WATCHDOG:?}: the link is stuck")
                } else {
                    continue;
                };
                // Leave the worker blocked where it is; its peer is killed and the
                // objects it holds are removed under it.
                let ends = REGISTRY.end_peers(true);
                REGISTRY.remove_objects(true);
                let said = ends
                    .iter()
                    .find_map(PeerEnd::failure)
                    .map(|s| format!("; {s}"))
                    .unwrap_or_default();
                return Err(format!("{why}{said}").into());
            }
        }
    }
}
