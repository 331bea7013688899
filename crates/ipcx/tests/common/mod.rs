//! Helpers shared by the integration tests: child processes, bounded waits, signals.
//!
//! Multi-process tests re-execute the test binary with `IPCX_TEST_ROLE` set, running the
//! same test function, which then plays the child's part (the pattern of ipc-channel's
//! `src/test.rs`). Nothing here forks inside the multi-threaded test harness.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Read;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long any child may run before the test kills it and fails.
pub const CHILD_LIMIT: Duration = Duration::from_secs(30);

/// The role this process plays, if it was started by [`child`].
pub fn role() -> Option<String> {
    std::env::var("IPCX_TEST_ROLE").ok()
}

/// A value the parent passed to the child.
pub fn arg(name: &str) -> String {
    std::env::var(format!("IPCX_TEST_{name}"))
        .unwrap_or_else(|_| panic!("child needs IPCX_TEST_{name}"))
}

/// A command that re-runs test `test` of this binary as role `role`, with `args` passed
/// as environment variables (`IPCX_TEST_<name>`).
pub fn child(test: &str, role: &str, args: &[(&str, &str)]) -> Command {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let mut cmd = Command::new(exe);
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1", "-q"]);
    cmd.env("IPCX_TEST_ROLE", role);
    for (k, v) in args {
        cmd.env(format!("IPCX_TEST_{k}"), v);
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

/// Waits for `child` at most [`CHILD_LIMIT`], killing it if it overruns, and returns its
/// output.
pub fn finish(mut child: Child) -> Output {
    let start = Instant::now();
    loop {
        match child.try_wait().expect("try_wait") {
            Some(_) => return child.wait_with_output().expect("wait_with_output"),
            None if start.elapsed() > CHILD_LIMIT => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("wait_with_output");
                panic!(
                    "child overran {CHILD_LIMIT:?}; stdout:\n{}\nstderr:\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Reports a line from a child to its parent (libtest prints its own lines around it).
pub fn say(line: impl std::fmt::Display) {
    println!("@@{line}");
}

/// The lines a child reported with [`say`], joined by newlines.
pub fn reports(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("@@"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs a command to completion (bounded), asserting success, and returns what it
/// reported with [`say`].
pub fn run_ok(mut cmd: Command) -> String {
    let out = finish(cmd.spawn().expect("spawn child"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child failed with {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    reports(&out)
}

/// Reads a line the child printed, with a bound on how long to wait.
pub fn read_line(child: &mut Child) -> String {
    let stdout = child.stdout.as_mut().expect("child stdout is piped");
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while stdout.read(&mut byte).expect("read child stdout") == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    String::from_utf8_lossy(&line).into_owned()
}

/// A fresh private directory, removed when dropped. Short, so socket paths fit.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ipcx-")
        .tempdir_in("/tmp")
        .expect("create temp dir")
}

/// The `python3` interpreter, or `None` with the reason printed.
pub fn python3() -> Option<PathBuf> {
    match Command::new("python3").arg("--version").output() {
        Ok(out) if out.status.success() => Some(PathBuf::from("python3")),
        _ => {
            println!("SKIPPED: python3 is not installed, so the non-ipcx peer cannot run");
            None
        }
    }
}

/// Runs a Python snippet with `args`, returning the command for the caller to wire up.
pub fn python(script: &str, args: &[&str]) -> Option<Command> {
    let py = python3()?;
    let mut cmd = Command::new(py);
    cmd.arg("-c").arg(script).args(args);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    Some(cmd)
}

/// Whether this process runs as root (some ownership tests need another user to exist).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Drops root for the rest of this (child) process's test thread, to provoke
/// unprivileged limits and permission checks.
///
/// The raw system calls change only the calling thread's credentials (the kernel keeps
/// them per thread). glibc's `setresuid` would instead broadcast the change to every
/// thread from a signal handler running on each thread's alternate signal stack, and a
/// child that exits at once can unmap the main thread's stack while the handler still
/// runs there: a rare `SIGSEGV`. The test thread makes every call the test checks.
pub fn drop_root() {
    if !is_root() {
        return;
    }
    // SAFETY:
    // - these system calls take plain integers (and a null list with a zero count) and
    //   change only the calling thread's credentials;
    // - nothing else in this thread is using the credentials concurrently.
    let rc = unsafe {
        libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>());
        libc::syscall(libc::SYS_setresgid, 65534, 65534, 65534);
        libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534)
    };
    assert_eq!(rc, 0, "setresuid failed");
}

/// Sets this process's soft limit on open descriptors.
pub fn set_nofile(soft: u64) {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let new = rustix::process::Rlimit {
        current: Some(soft),
        maximum: limit.maximum,
    };
    rustix::process::setrlimit(rustix::process::Resource::Nofile, new).expect("setrlimit");
}

/// The number the next new descriptor would get: the lowest one not open. A soft
/// `RLIMIT_NOFILE` equal to it leaves no room for one more.
pub fn lowest_free_fd() -> u64 {
    // Probe with F_GETFD: listing /proc/self/fd would count the listing's own descriptor.
    // SAFETY: F_GETFD only reads the flags of descriptor `n`, or fails with EBADF.
    let free = (0..).find(|&n| unsafe { libc::fcntl(n, libc::F_GETFD) } == -1);
    free.map_or(0, |n: i32| n as u64)
}

/// The descriptors open in this process.
pub fn open_fds() -> Vec<i32> {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// What `/proc/self/fd/N` points at ("pipe:[123]", "socket:[456]", a path).
pub fn fd_target(fd: BorrowedFd<'_>) -> String {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// Whether `fd` has `FD_CLOEXEC` set.
pub fn is_cloexec(fd: BorrowedFd<'_>) -> bool {
    rustix::io::fcntl_getfd(fd)
        .expect("F_GETFD")
        .contains(rustix::io::FdFlags::CLOEXEC)
}

/// The mode bits of a path (not following a final symlink).
pub fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .expect("stat")
        .permissions()
        .mode()
        & 0o777
}

/// Restores `SIGPIPE`'s default action (death) in this child process, as a C program
/// would have it, so a test can prove ipcx never lets it fire.
pub fn default_sigpipe() {
    // SAFETY:
    // - `SIG_DFL` is a valid disposition for SIGPIPE;
    // - the previous disposition (ignore, set by the Rust runtime) needs no clean-up.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Whether `SIGPIPE` is pending for this thread or process.
pub fn sigpipe_pending() -> bool {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `set` is a local that `sigemptyset`/`sigpending` initialise before it is read.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigpending(set.as_mut_ptr());
        libc::sigismember(set.as_ptr(), libc::SIGPIPE) == 1
    }
}

/// Runs `f` on this thread while another thread interrupts it with `SIGUSR1` every few
/// milliseconds (a real signal with a real handler, so blocking calls see `EINTR`), and
/// returns `f`'s result with the number of signals the handler caught.
pub fn under_signal_storm<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let caught = Arc::new(AtomicBool::new(false));
    let id = signal_hook::flag::register(signal_hook::consts::SIGUSR1, caught.clone())
        .expect("register");
    // SAFETY: pthread_self has no preconditions.
    let target = unsafe { libc::pthread_self() };
    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicUsize::new(0));
    let storm = {
        let (done, count, caught) = (done.clone(), count.clone(), caught.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Acquire) {
                // SAFETY: `target` is the thread running `f`, alive until `done` is set
                // (the spawning thread joins this one before it returns).
                unsafe { libc::pthread_kill(target, libc::SIGUSR1) };
                std::thread::sleep(Duration::from_millis(3));
                if caught.swap(false, Ordering::AcqRel) {
                    count.fetch_add(1, Ordering::AcqRel);
                }
            }
        })
    };
    let result = f();
    done.store(true, Ordering::Release);
    storm.join().expect("signal thread");
    signal_hook::low_level::unregister(id);
    (result, count.load(Ordering::Acquire))
}

/// Waits (bounded by [`CHILD_LIMIT`]) until `fd` is readable.
pub fn wait_readable(fd: BorrowedFd<'_>) {
    let mut fds = [rustix::event::PollFd::new(
        &fd,
        rustix::event::PollFlags::IN,
    )];
    let limit = rustix::time::Timespec {
        tv_sec: CHILD_LIMIT.as_secs() as i64,
        tv_nsec: 0,
    };
    let ready = loop {
        match rustix::event::poll(&mut fds, Some(&limit)) {
            Err(rustix::io::Errno::INTR) => continue,
            other => break other.expect("poll"),
        }
    };
    assert_eq!(ready, 1, "nothing arrived within {CHILD_LIMIT:?}");
}

/// Every named object and System V key or id a test creates is written here, one line
/// each, so `tests/leftovers.rs` can check after the suite that none was left behind.
pub fn ledger_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("ipcx-ledger")
}

/// Appends `kind value` to this process's ledger file.
pub fn record(kind: &str, value: impl std::fmt::Display) {
    use std::io::Write;
    let dir = ledger_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(std::process::id().to_string()))
        .unwrap();
    // One write per line: with O_APPEND a single write lands whole, so lines from the
    // test threads of this process cannot interleave.
    f.write_all(format!("{kind} {value}\n").as_bytes()).unwrap();
}

static NAMES: AtomicUsize = AtomicUsize::new(0);

mod c_peer;
#[allow(unused_imports)] // only the test binaries with C peers use it
pub use c_peer::compile_c;

/// A POSIX IPC name no other test or run uses (`/ipcx-t-<kind>-<pid>-<n>`), recorded in
/// the ledger under `kind` (`shm`, `mq`, `sem`).
pub fn unique_name(kind: &str) -> String {
    let n = NAMES.fetch_add(1, Ordering::Relaxed);
    let name = format!("/ipcx-t-{kind}-{}-{n}", std::process::id());
    record(kind, &name);
    name
}

/// A System V key no other test uses at the same time: 0x49 ('I') in the top byte, the
/// low 16 bits of the pid, and a counter. Recorded in the ledger under `kind`
/// (`sysv-shm`, `sysv-sem`, `sysv-msg`). Creation is exclusive, so a clash with a
/// stranger's key is an `AlreadyExists` failure, never a shared object.
pub fn unique_key(kind: &str) -> ipcx::sysv::Key {
    let n = NAMES.fetch_add(1, Ordering::Relaxed) as u32;
    let key = 0x4900_0000 | ((std::process::id() & 0xffff) << 8) | (n & 0xff);
    let key = ipcx::sysv::Key::new(key as i32);
    record(kind, key.raw());
    key
}

/// Records the id of a System V object created with `IPC_PRIVATE` (`kind` is
/// `sysv-shm-id`, `sysv-sem-id` or `sysv-msg-id`).
pub fn record_id(kind: &str, id: i32) {
    record(kind, id);
}

/// `cmd` run in a fresh IPC and mount namespace, inside a new user namespace where the
/// caller maps to root: there the test may mount a small tmpfs over `/dev/shm` or lower
/// the namespace's own IPC limits
/// (`/proc/sys/kernel/{shmmni,shmall,sem,msgmni}`, `/proc/sys/fs/mqueue/*`) to provoke
/// `ENOSPC` for real without touching the machine's, and whatever it creates dies with the
/// namespace. `None` (printed SKIPPED) where user namespaces are not available.
pub fn in_private_ipc_namespace(cmd: Command) -> Option<Command> {
    let probe = Command::new("unshare")
        .args(["--user", "--map-root-user", "--ipc", "--mount", "true"])
        .stderr(Stdio::null())
        .status();
    if !matches!(probe, Ok(s) if s.success()) {
        println!("SKIPPED: `unshare --user --ipc` is not available here");
        return None;
    }
    let mut wrapped = Command::new("unshare");
    wrapped
        .args(["--user", "--map-root-user", "--ipc", "--mount", "--"])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    wrapped.stdout(Stdio::piped()).stderr(Stdio::piped());
    Some(wrapped)
}

/// Writes a `/proc/sys` value (in a private IPC namespace, see
/// [`in_private_ipc_namespace`]).
pub fn set_sysctl(path: &str, value: &str) {
    std::fs::write(path, value).unwrap_or_else(|e| panic!("write {value} to {path}: {e}"));
}

/// Ends this (child) process with `SIGKILL`, running no destructor: what a crashed program
/// leaves behind is what stays.
pub fn die_like_a_crash() -> ! {
    rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL)
        .unwrap();
    unreachable!("SIGKILL does not return");
}

/// What each descriptor open in this process refers to ("pipe:[123]", a path…).
pub fn open_fd_targets() -> Vec<String> {
    open_fds()
        .into_iter()
        .filter_map(|fd| std::fs::read_link(format!("/proc/self/fd/{fd}")).ok())
        .map(|p| p.display().to_string())
        .collect()
}

/// In a child: asserts that none of the comma-separated `forbidden` targets (as
/// [`fd_target`] names them in the parent) is open here, and returns how many were
/// checked.
pub fn assert_not_inherited(forbidden: &str) -> usize {
    let mine = open_fd_targets();
    for target in forbidden.split(',') {
        assert!(
            !mine.contains(&target.to_string()),
            "{target} leaked into the child: {mine:?}"
        );
    }
    forbidden.split(',').count()
}

/// Reads the reports (`@@` lines, see [`say`]) of a child whose stdout the parent took,
/// each with a bounded wait, so that a child that hangs fails the test instead of
/// hanging it.
pub struct Reports {
    reader: ipcx::pipe::PipeReader,
    pending: Vec<u8>,
    wait: Duration,
}

impl Reports {
    /// Reports from `stdout`, each awaited at most `wait`.
    pub fn new(stdout: std::process::ChildStdout, wait: Duration) -> Reports {
        Reports {
            reader: ipcx::pipe::PipeReader::try_from(std::os::fd::OwnedFd::from(stdout)).unwrap(),
            pending: Vec::new(),
            wait,
        }
    }

    /// The next report line, without its `@@`; other output lines are skipped.
    pub fn next(&mut self) -> String {
        let deadline = Instant::now() + self.wait;
        loop {
            while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line[..end]).into_owned();
                if let Some(report) = line.strip_prefix("@@") {
                    return report.to_string();
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let mut buf = [0u8; 4096];
            let n = self
                .reader
                .read_timeout(&mut buf, left)
                .unwrap_or_else(|e| panic!("waiting for the child's report: {e}"));
            assert!(n > 0, "the child closed its stdout before reporting");
            self.pending.extend_from_slice(&buf[..n]);
        }
    }

    /// Waits for the next report and checks that it is `want`.
    pub fn expect(&mut self, want: &str) {
        let got = self.next();
        assert_eq!(got, want, "child report");
    }
}
