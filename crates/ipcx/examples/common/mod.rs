//! Helpers shared by the examples: the parent/child plumbing every example needs, so each
//! example file can tell only its own story.
//!
//! Every example is one program that plays two roles: run without arguments it is the
//! parent, which starts a second copy of itself (via [`child_command`]) in the child role.
//! [`run`] picks the role, [`Reaper`] makes sure the child never outlives a parent that
//! gives up early, and [`TempDir`] gives each run a private directory for its socket files,
//! FIFOs and files. The rest are small bounded-time loops over ipcx's `_timeout` calls.
//!
//! This directory is not an example itself (it has no `main.rs`); each example includes it
//! with `mod common;`.

// Each example uses a subset of these helpers; the rest would be dead code in that example.
#![allow(dead_code)]

use std::error::Error;
use std::ffi::OsString;
use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use ipcx::SocketExt;
use ipcx::pipe::PipeReader;

/// The longest any single step may wait for the other process.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// The longest line [`Lines`] accepts from a peer.
const MAX_LINE: usize = 1024;

/// The first argument that makes this program run as the child.
const CHILD_ROLE: &str = "child";

/// Runs `parent` when the program was started without arguments, or `child` with the `N`
/// arguments after the role when the parent started it with [`child_command`]. Each role
/// first prints its pid (the child on stderr, because an example may make the child's
/// stdout a pipe); a failure is printed with the role's prefix before it is returned, so
/// the exit status is not 0.
pub fn run<const N: usize>(
    parent: impl FnOnce() -> Result<(), Box<dyn Error>>,
    child: impl FnOnce([OsString; N]) -> Result<(), Box<dyn Error>>,
) -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args_os().skip(1);
    let (role, result) = match args.next() {
        None => {
            println!("[parent] pid {}", std::process::id());
            ("parent", parent())
        }
        Some(role) if role == CHILD_ROLE => {
            eprintln!("[child] pid {} started", std::process::id());
            let args: Vec<OsString> = args.collect();
            let count = args.len();
            let result = match <[OsString; N]>::try_from(args) {
                Ok(args) => child(args),
                Err(_) => Err(format!("the child expects {N} argument(s), got {count}").into()),
            };
            ("child", result)
        }
        Some(other) => ("parent", Err(format!("unknown role {other:?}").into())),
    };
    if let Err(e) = &result {
        eprintln!("[{role}] FAILED: {e}");
    }
    result
}

/// A command that runs this same program in the child role. Add the child's arguments
/// and stdio, then start it with [`Reaper::spawn`].
pub fn child_command() -> std::io::Result<Command> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg(CHILD_ROLE);
    Ok(cmd)
}

/// A child process that is killed and reaped if the parent gives up early.
#[derive(Debug)]
pub struct Reaper(Child);

impl Reaper {
    /// Starts `cmd`. The command keeps the parent's copies of any stdio it was given until
    /// it is dropped.
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Reaper> {
        cmd.spawn().map(Reaper)
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// Waits at most `limit` for the child to exit, and fails unless it exited
    /// successfully. If it does not exit in time, dropping the `Reaper` kills it.
    pub fn wait_success(mut self, limit: Duration) -> Result<ExitStatus, Box<dyn Error>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.0.try_wait()? {
                if !status.success() {
                    return Err(format!("the child failed: {status}").into());
                }
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(format!("the child did not exit within {limit:?}; killing it").into());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// A private directory (mode 0700) for this run, removed by [`TempDir::remove`] at the
/// end or, on an early return, when it is dropped.
#[derive(Debug)]
pub struct TempDir {
    /// Empty once [`TempDir::remove`] has removed the directory.
    path: PathBuf,
}

impl TempDir {
    /// Creates `ipcx-example-NAME-PID` in the system's temporary directory.
    pub fn new(name: &str) -> Result<TempDir, Box<dyn Error>> {
        let path = std::env::temp_dir().join(format!("ipcx-example-{name}-{}", std::process::id()));
        DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(TempDir { path })
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the directory and everything in it, reporting any failure.
    pub fn remove(mut self) -> std::io::Result<()> {
        std::fs::remove_dir_all(std::mem::take(&mut self.path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Reads a pipe until end of file, waiting at most `limit` in all.
pub fn read_to_end_timeout(
    reader: &PipeReader,
    limit: Duration,
) -> Result<Vec<u8>, Box<dyn Error>> {
    let deadline = Instant::now() + limit;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match reader.read_timeout(&mut buf, left)? {
            0 => return Ok(data),
            n => data.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends all of `data` on a stream socket, waiting at most `limit` in all.
pub fn send_all(
    conn: &impl SocketExt,
    mut data: &[u8],
    limit: Duration,
) -> Result<(), Box<dyn Error>> {
    let deadline = Instant::now() + limit;
    while !data.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = conn.send_timeout(data, left)?;
        data = &data[n..];
    }
    Ok(())
}

/// Splits a byte stream into newline-terminated lines: bytes go in as they are read, and
/// whole lines come out; the start of an unfinished line waits for the rest.
#[derive(Debug, Default)]
pub struct Lines {
    pending: Vec<u8>,
}

impl Lines {
    /// An empty buffer.
    pub fn new() -> Lines {
        Lines::default()
    }

    /// Adds bytes that were read. Fails if an unfinished line grows past [`MAX_LINE`]
    /// bytes, so a peer cannot make us buffer without end.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), Box<dyn Error>> {
        self.pending.extend_from_slice(bytes);
        let line_start = self
            .pending
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        if self.pending.len() - line_start > MAX_LINE {
            return Err(format!("the peer sent a line longer than {MAX_LINE} bytes").into());
        }
        Ok(())
    }

    /// Takes the next whole line, without its newline, if one has arrived.
    pub fn next_line(&mut self) -> Option<String> {
        let end = self.pending.iter().position(|&b| b == b'\n')?;
        let line: Vec<u8> = self.pending.drain(..=end).collect();
        Some(String::from_utf8_lossy(&line[..end]).into_owned())
    }

    /// Whether bytes are left over; once [`Lines::next_line`] has returned `None`, they are
    /// the start of an unfinished line.
    pub fn has_partial(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Returns the next line from a stream socket, receiving as needed and waiting at
    /// most `limit`; `None` at end of file.
    pub fn recv_line(
        &mut self,
        conn: &impl SocketExt,
        limit: Duration,
    ) -> Result<Option<String>, Box<dyn Error>> {
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 256];
        loop {
            if let Some(line) = self.next_line() {
                return Ok(Some(line));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match conn.recv_timeout(&mut buf, left)? {
                0 if self.has_partial() => {
                    return Err("the peer closed the connection in the middle of a line".into());
                }
                0 => return Ok(None),
                n => self.push(&buf[..n])?,
            }
        }
    }
}
