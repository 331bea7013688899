//! Counting and waking between a parent and a child through eventfds.
//!
//! The parent creates two eventfds with [`ipcx::eventfd::EventFd`]: `jobs`, a counter it
//! adds work to, handed to the child as its stdin; and `done`, a semaphore the child adds
//! 1 to per finished job, handed over as the child's stdout. The child adopts both with
//! `EventFd::try_from` (which checks that they are eventfds), and each side waits on the
//! other with `read_timeout`. No bytes of data travel: the counter is the message, and
//! several writes before a read add up to one wake-up.
//!
//! First the parent shows the counter's limits in-process: a write of `u64::MAX` is
//! refused before any system call, and a counter at its maximum refuses more with
//! `WouldBlock` rather than wrapping.
//!
//! The child prints its steps on stderr, because its stdout is an eventfd.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p ipcx --example eventfd
//! ```

mod common;

use std::error::Error;
use std::os::fd::AsFd;

use common::{Reaper, TIMEOUT};
use ipcx::ErrorKind;
use ipcx::eventfd::{EventFd, MAX_COUNT};

/// The batches of jobs the parent hands out.
const BATCHES: [u64; 2] = [3, 2];

fn main() -> Result<(), Box<dyn Error>> {
    common::run(parent, |[total]| {
        let total: u64 = total
            .to_str()
            .and_then(|t| t.parse().ok())
            .ok_or("the job count is not a number")?;
        child(total)
    })
}

fn parent() -> Result<(), Box<dyn Error>> {
    limits()?;

    let jobs = EventFd::new(0)?;
    let done = EventFd::semaphore(0)?;
    let total: u64 = BATCHES.iter().sum();
    let mut cmd = common::child_command()?;
    cmd.arg(total.to_string())
        .stdin(jobs.try_clone()?)
        .stdout(done.try_clone()?);
    let child = Reaper::spawn(&mut cmd)?;
    drop(cmd);
    println!(
        "[parent] started child pid {} with a copy of `jobs` as its stdin and of `done` as \
         its stdout",
        child.id()
    );

    let mut finished = 0;
    for batch in BATCHES {
        // Separate writes of 1: the child may wake once for all of them.
        for _ in 0..batch {
            jobs.write(1)?;
        }
        println!("[parent] added {batch} jobs to the counter");
        for _ in 0..batch {
            // Semaphore mode: each read takes one finished job.
            done.read_timeout(TIMEOUT)?;
            finished += 1;
            println!("[parent] a job finished ({finished} of {total})");
        }
    }

    let status = child.wait_success(TIMEOUT)?;
    println!("[parent] child exited with {status}");
    // The child's copies shared this process's counters and their non-blocking mode:
    // nothing is left over, and asking does not block.
    match jobs.try_read() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {
            println!("[parent] the job counter is empty; done")
        }
        other => return Err(format!("jobs left over: {other:?}").into()),
    }
    Ok(())
}

fn limits() -> Result<(), Box<dyn Error>> {
    let efd = EventFd::new(0)?;
    let err = efd.write(u64::MAX).err().ok_or("u64::MAX was accepted")?;
    println!("[parent] write(u64::MAX): {err}");
    efd.write(MAX_COUNT)?;
    let err = efd
        .try_write(1)
        .err()
        .ok_or("a saturated counter took more")?;
    println!("[parent] counter at u64::MAX - 1, try_write(1): {err}");
    println!("[parent] read back {} (nothing wrapped)", efd.read()?);
    Ok(())
}

fn child(total: u64) -> Result<(), Box<dyn Error>> {
    let jobs = EventFd::try_from(std::io::stdin().as_fd().try_clone_to_owned()?)?;
    let done = EventFd::try_from(std::io::stdout().as_fd().try_clone_to_owned()?)?;
    eprintln!("[child] adopted stdin and stdout: both are eventfds");
    let mut handled = 0;
    while handled < total {
        let n = jobs.read_timeout(TIMEOUT)?;
        eprintln!("[child] woke up with {n} job(s)");
        for _ in 0..n {
            handled += 1;
            done.write(1)?;
        }
    }
    eprintln!("[child] handled {handled} jobs; exiting");
    Ok(())
}
