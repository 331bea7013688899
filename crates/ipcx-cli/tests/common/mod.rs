//! Helpers shared by the `ipcx` command's tests: running the binary, unique names,
//! temporary directories, C peers, and guards that clean up even when a test fails.
#![allow(dead_code)] // each test file uses its own subset

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NAMES: AtomicU32 = AtomicU32::new(0);

#[path = "../../../ipcx/tests/common/c_peer.rs"]
mod c_peer;
#[allow(unused_imports)] // only the test binaries with C peers use it
pub use c_peer::compile_c;

/// The `ipcx` binary under test.
pub fn ipcx() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ipcx"))
}

/// Runs `ipcx ARGS` to completion.
pub fn run(args: &[&str]) -> Output {
    ipcx().args(args).output().expect("run ipcx")
}

/// A POSIX object name no other test uses at the same time: pid + counter.
pub fn unique_name(kind: &str) -> String {
    let n = NAMES.fetch_add(1, Ordering::Relaxed);
    format!("/ipcx-cli-{kind}-{}-{n}", std::process::id())
}

/// A System V key no other test uses at the same time: 0x4c ('L') in the top byte, the
/// low 16 bits of the pid and a counter (the library's tests use 0x49).
pub fn unique_key() -> i32 {
    let n = NAMES.fetch_add(1, Ordering::Relaxed);
    (0x4c00_0000 | ((std::process::id() & 0xffff) << 8) | (n & 0xff)) as i32
}

/// A private temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let n = NAMES.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("ipcx-cli-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn join(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs a closure on drop: cleanup that happens when a test panics too.
pub struct Guard<F: FnMut()>(pub F);

impl<F: FnMut()> Drop for Guard<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// A child process that is ended (SIGTERM, then SIGKILL) and reaped on drop, so a failed
/// test leaves no process behind. `ipcx recv` removes what it created on SIGTERM.
pub struct Running(pub Option<Child>);

impl Running {
    pub fn spawn(mut cmd: Command) -> Running {
        Running(Some(cmd.spawn().expect("spawn")))
    }

    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.0.as_ref().unwrap().id()
    }

    /// Waits (at most `timeout`) for the process to exit, and returns its output.
    pub fn finish(mut self, timeout: Duration) -> Output {
        let mut child = self.0.take().unwrap();
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > timeout {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "process still running after {timeout:?}; stdout:\n{}\nstderr:\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        child.wait_with_output().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let pid = rustix::process::Pid::from_raw(child.id() as i32);
            if let Some(pid) = pid {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let start = Instant::now();
            while matches!(child.try_wait(), Ok(None)) && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads `stderr` until a line containing `marker` and returns that line.
pub fn line_with(stderr: &mut BufReader<ChildStderr>, marker: &str) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        let n = stderr.read_line(&mut line).unwrap();
        assert!(n > 0, "stderr ended before a line with `{marker}`");
        if line.contains(marker) {
            return line.trim().to_string();
        }
    }
}

/// Waits (at most 10 s) until `cond` holds.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether `python3` runs here; prints a SKIPPED note when it does not.
pub fn have_python() -> bool {
    let ok = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!("SKIPPED: python3 is not installed");
    }
    ok
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
