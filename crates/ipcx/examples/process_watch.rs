//! Watching processes with pidfds: a child, and an unrelated process known only by the
//! identity it reported.
//!
//! The parent starts two processes, both copies of this program:
//!
//! - a **launcher**, which starts a **stranger** (a third copy), writes the stranger's
//!   [`ProcessId`] (PID and start time) to the parent, and waits for it. The stranger is
//!   the launcher's child, not the parent's: to the parent it is an unrelated process, as
//!   any other would be. (Being its parent, the launcher reaps it, so the example leaves no
//!   zombie behind.) The parent opens it with [`Pidfd::open_checked`], which refuses a PID
//!   that has been reused, and shows that refusal with a forged identity.
//! - a **worker**, the parent's own child, opened with [`Pidfd::from_child`].
//!
//! Then the parent sends `SIGTERM` to the worker through its pidfd (a signal that can never
//! reach a recycled PID) and closes the stranger's stdin, which makes the stranger exit; one
//! [`PollSet`] loop over both pidfds reports each exit as it comes, with how the worker
//! ended. Only a parent can learn how a process ended, so for the stranger the
//! exit is all there is to see, and the parent shows the error that says so.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p ipcx --example process_watch
//! ```

mod common;

use std::error::Error;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Lines, Reaper, TIMEOUT};
use ipcx::pipe::{PipeReader, pipe};
use ipcx::poll::{Interest, PollSet};
use ipcx::process::{ExitStatus, Pidfd, ProcessId};

fn main() -> Result<(), Box<dyn Error>> {
    common::run(parent, |[role]: [OsString; 1]| match role.to_str() {
        Some("launcher") => launcher(),
        Some("stranger") | Some("worker") => run_until_stdin_closes(&role),
        _ => Err(format!("unknown role {role:?}").into()),
    })
}

fn parent() -> Result<(), Box<dyn Error>> {
    println!(
        "[parent] my identity, as a peer would receive it: {}",
        ProcessId::current()?
    );

    // The stranger's stdin: the stranger runs until the parent closes this pipe's write
    // end (or the parent dies, which closes it too).
    let (stranger_stdin, to_stranger) = pipe()?;
    let (from_launcher, launcher_stdout) = pipe()?;
    let mut cmd = common::child_command()?;
    cmd.arg("launcher")
        .stdin(Stdio::from(stranger_stdin))
        .stdout(Stdio::from(launcher_stdout));
    let launcher = Reaper::spawn(&mut cmd)?;
    drop(cmd);
    let line = read_line_timeout(&from_launcher, TIMEOUT)?;
    let stranger: ProcessId = line.parse()?;
    println!("[parent] the launcher reported the stranger's identity {stranger}");

    let forged = ProcessId::from_parts(stranger.pid(), stranger.start_time() + 1);
    match Pidfd::open_checked(&forged) {
        Err(e) => println!("[parent] a forged identity {forged} is refused: {e}"),
        Ok(_) => return Err("a forged process identity was accepted".into()),
    }
    let stranger_fd = Pidfd::open_checked(&stranger)?;
    println!(
        "[parent] watching the stranger (pid {}), which is not my child",
        stranger_fd.pid()
    );

    let mut cmd = common::child_command()?;
    cmd.arg("worker").stdin(Stdio::piped());
    let mut worker = Worker(cmd.spawn()?);
    let worker_fd = Pidfd::from_child(&worker.0)?;
    println!(
        "[parent] watching my child, the worker (pid {})",
        worker_fd.pid()
    );

    // Both events at once: SIGTERM to the worker through its pidfd, end of file to the
    // stranger. Then one poll loop reports each exit as it comes.
    worker_fd.send_signal(libc::SIGTERM)?;
    println!("[parent] sent SIGTERM to the worker through its pidfd");
    drop(to_stranger);
    println!("[parent] closed the stranger's stdin");

    let mut pending = vec![("worker", &worker_fd), ("stranger", &stranger_fd)];
    let mut worker_status = None;
    let deadline = Instant::now() + TIMEOUT;
    while !pending.is_empty() {
        // A pidfd stays readable once its process has exited, so each round polls only
        // the processes not yet seen to exit.
        let mut set = PollSet::new();
        for (_, pidfd) in &pending {
            set.add(*pidfd, Interest::READABLE);
        }
        let ready = set.wait_timeout(deadline.saturating_duration_since(Instant::now()))?;
        if ready.is_empty() {
            let names: Vec<&str> = pending.iter().map(|(name, _)| *name).collect();
            return Err(format!("{names:?} did not exit within {TIMEOUT:?}").into());
        }
        // Highest index first, so that removing one leaves the others' indices valid.
        for r in ready.iter().rev() {
            let (name, pidfd) = pending.remove(r.index);
            match pidfd.try_exit_status() {
                Ok(status) => {
                    println!(
                        "[parent] the {name} (pid {}) has exited: {status}",
                        pidfd.pid()
                    );
                    if name == "worker" {
                        worker_status = Some(status);
                    }
                }
                Err(e) => println!(
                    "[parent] the {name} (pid {}) has exited; how it ended is for its \
                     parent to know: {e}",
                    pidfd.pid()
                ),
            }
        }
    }
    worker.0.wait()?; // reap it, as for any child
    launcher.wait_success(TIMEOUT)?;

    let expected = ExitStatus::Signaled {
        signal: libc::SIGTERM,
        core_dumped: false,
    };
    if worker_status != Some(expected) {
        return Err(format!("the worker ended with {worker_status:?}, not {expected}").into());
    }
    match worker_fd.send_signal(libc::SIGTERM) {
        Err(e) => println!("[parent] a signal to the exited worker is refused: {e}"),
        Ok(()) => return Err("a signal reached an exited process".into()),
    }
    println!("[parent] done");
    Ok(())
}

/// Starts the stranger, reports its identity on stdout, and waits for it to exit.
fn launcher() -> Result<(), Box<dyn Error>> {
    let mut cmd = common::child_command()?;
    // The stranger inherits our stdin: the parent's pipe.
    cmd.arg("stranger").stdout(Stdio::null());
    let stranger = Reaper::spawn(&mut cmd)?;
    let id = ProcessId::of(stranger.id())?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{id}")?;
    stdout.flush()?;
    eprintln!("[launcher] started the stranger, pid {}", stranger.id());
    let status = stranger.wait_success(TIMEOUT)?;
    eprintln!("[launcher] the stranger {status}");
    Ok(())
}

/// Reads one line from a pipe, waiting at most `limit` in all.
fn read_line_timeout(reader: &PipeReader, limit: Duration) -> Result<String, Box<dyn Error>> {
    let deadline = Instant::now() + limit;
    let mut lines = Lines::new();
    let mut buf = [0u8; 64];
    loop {
        if let Some(line) = lines.next_line() {
            return Ok(line);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match reader.read_timeout(&mut buf, left)? {
            0 => return Err("the launcher exited without reporting".into()),
            n => lines.push(&buf[..n])?,
        }
    }
}

/// The worker's and the stranger's life: read stdin until it closes (or a signal ends
/// the process), bounded so that nothing outlives a broken run for long.
fn run_until_stdin_closes(role: &OsString) -> Result<(), Box<dyn Error>> {
    let mut rest = Vec::new();
    std::io::stdin().read_to_end(&mut rest)?;
    eprintln!("[{}] stdin closed; exiting", role.to_string_lossy());
    Ok(())
}

/// The worker: killed and reaped if the parent gives up early.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}
