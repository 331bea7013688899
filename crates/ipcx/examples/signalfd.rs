//! Receiving signals as reads on a descriptor (`signalfd`), with who sent them and the
//! value `sigqueue` attached.
//!
//! The child blocks `SIGUSR1` and `SIGTERM` with [`SignalMask::block`] first thing in
//! `main`, *before* it starts a worker thread, so the worker inherits the mask and no
//! thread of the process can take the signals away from the signalfd. It checks that with
//! [`SignalFd::threads_not_blocking`], opens a [`SignalFd`], and tells the parent it is
//! ready through a pipe on its stdout.
//!
//! The parent then sends `SIGUSR1` with the value 42 through [`sigqueue`], and `SIGTERM`
//! through a pidfd with [`send_via_pidfd`], so that the signal can only ever reach this
//! child, even if it had exited and its PID been reused. The child reads both from the
//! signalfd, prints who sent them, and exits on `SIGTERM`: blocked, it cannot end the
//! process, it is just a message.
//!
//! The child prints its steps on stderr, because its stdout is the pipe.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p ipcx --example signalfd
//! ```

mod common;

use std::error::Error;
use std::io::Write;
use std::process::Stdio;
use std::sync::mpsc;

use common::{Reaper, TIMEOUT};
use ipcx::pipe::pipe;
use ipcx::signal::{SignalFd, SignalMask, SignalSet, SignalSource, send_via_pidfd, sigqueue};

/// The value the parent attaches to `SIGUSR1`.
const VALUE: i32 = 42;

fn main() -> Result<(), Box<dyn Error>> {
    common::run(parent, |[]| child())
}

fn parent() -> Result<(), Box<dyn Error>> {
    let (ready, child_stdout) = pipe()?;
    let mut cmd = common::child_command()?;
    cmd.stdout(Stdio::from(child_stdout));
    let child = Reaper::spawn(&mut cmd)?;
    drop(cmd);
    let pid = child.id();
    println!("[parent] started child pid {pid}");

    // Until the child has blocked the signals, SIGTERM or SIGUSR1 would kill it.
    let mut buf = [0u8; 16];
    let n = ready.read_timeout(&mut buf, TIMEOUT)?;
    if &buf[..n] != b"ready\n" {
        return Err(format!("unexpected word from the child: {:?}", &buf[..n]).into());
    }
    println!("[parent] the child blocks its signals and reads them from a signalfd");

    // A pidfd names this child for good. Open it while the child cannot have been reaped
    // (we have not waited for it), so it is sure to be the child.
    let raw_pid = rustix::process::Pid::from_raw(pid as i32).ok_or("pid 0")?;
    let pidfd = rustix::process::pidfd_open(raw_pid, rustix::process::PidfdFlags::empty())?;

    sigqueue(pid, libc::SIGUSR1, VALUE)?;
    println!("[parent] sigqueue(SIGUSR1, value {VALUE})");
    send_via_pidfd(&pidfd, libc::SIGTERM)?;
    println!("[parent] pidfd_send_signal(SIGTERM)");

    let status = child.wait_success(TIMEOUT)?;
    println!("[parent] child exited with {status}; done");
    Ok(())
}

fn child() -> Result<(), Box<dyn Error>> {
    // First thing in main, before any thread exists: every thread started from here on
    // inherits the mask.
    let signals = SignalSet::new(&[libc::SIGUSR1, libc::SIGTERM])?;
    let _mask = SignalMask::block(&signals)?;
    eprintln!("[child] blocked {signals} in main");

    let (stop, stopped) = mpsc::channel::<()>();
    let worker = std::thread::spawn(move || {
        // A worker that never thinks about signals; it blocks them all the same.
        let _ = stopped.recv_timeout(TIMEOUT);
    });

    let sfd = SignalFd::new(&signals)?;
    let missing = sfd.threads_not_blocking()?;
    if !missing.is_empty() {
        return Err(format!("threads that would take the signals: {missing:?}").into());
    }
    eprintln!("[child] opened {sfd}; every thread blocks the set, the worker included");
    let mut stdout = std::io::stdout();
    stdout.write_all(b"ready\n")?;
    stdout.flush()?;

    let parent = std::os::unix::process::parent_id();
    let mut got_value = false;
    loop {
        let info = sfd.read_timeout(TIMEOUT)?;
        eprintln!("[child] read {info}");
        if info.pid != parent {
            return Err(format!("{info} did not come from my parent ({parent})").into());
        }
        if info.signal == libc::SIGUSR1 {
            got_value = info.source() == SignalSource::Queue && info.value == VALUE;
        }
        if info.signal == libc::SIGTERM {
            break;
        }
    }
    drop(stop);
    worker.join().map_err(|_| "the worker panicked")?;
    if !got_value {
        return Err(format!("SIGUSR1 did not arrive with the value {VALUE}").into());
    }
    eprintln!("[child] SIGTERM read as a message; exiting cleanly");
    Ok(())
}
