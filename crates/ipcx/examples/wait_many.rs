//! One `poll` loop over everything a parent waits for: a child's pipe, a POSIX message
//! queue, a signal, and the child's exit.
//!
//! The parent blocks `SIGUSR1` (in `main`, before any thread exists, so no thread can
//! take it) and reads it from a [`SignalFd`]; it creates a POSIX queue and a pipe, and
//! starts a second copy of this program as its child, with the pipe as the child's stdout
//! and the parent's [`ProcessId`] and the queue's name as arguments. The child writes
//! lines, sends messages with priorities, and signals the parent through a pidfd opened
//! with [`Pidfd::open_checked`] (so the signal cannot reach a process that merely reused
//! the parent's PID), then exits with status 7.
//!
//! The parent puts the pipe, the queue, the signalfd and the child's [`Pidfd`] in one
//! [`PollSet`] and handles whatever is ready, with the `try_` forms, until it has seen
//! end of file, every message, the signal and the exit; then it reads the exit status.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p ipcx --example wait_many
//! ```

mod common;

use std::error::Error;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use common::{Reaper, TIMEOUT};
use ipcx::ErrorKind;
use ipcx::mq::Access;
use ipcx::mq::posix::MqOptions;
use ipcx::poll::{Interest, PollSet};
use ipcx::process::{ExitStatus, Pidfd, ProcessId};
use ipcx::signal::{SignalFd, SignalMask, SignalSet};

const MESSAGES: [(&str, u32); 3] = [("routine", 1), ("urgent", 9), ("routine again", 1)];

fn main() -> Result<(), Box<dyn Error>> {
    common::run(parent, |[parent_id, name]| {
        child(&parent_id.to_string_lossy(), &name.to_string_lossy())
    })
}

fn parent() -> Result<(), Box<dyn Error>> {
    // Block before anything else: signalfd sees only signals that no thread takes.
    let set = SignalSet::new(&[libc::SIGUSR1])?;
    let _mask = SignalMask::block(&set)?;
    let signals = SignalFd::new(&set)?;

    let name = format!("/ipcx-example-wait-many-{}", std::process::id());
    let queue = MqOptions::new()
        .capacity(8)
        .max_msg_size(64)
        .create(&name)?;
    let (reader, writer) = ipcx::pipe::pipe()?;
    let mut cmd = common::child_command()?;
    cmd.arg(ProcessId::current()?.to_string())
        .arg(&name)
        .stdout(Stdio::from(writer));
    let child = Reaper::spawn(&mut cmd)?;
    drop(cmd);
    let pidfd = Pidfd::open(child.id())?;
    println!(
        "[parent] started child {}; waiting on its pipe, {name}, SIGUSR1 and its exit",
        child.id()
    );

    let (mut eof, mut messages, mut signalled, mut exited) = (false, 0, false, false);
    let mut buf = [0u8; 64];
    while !(eof && messages == MESSAGES.len() && signalled && exited) {
        // Watch only what is still pending: a pipe at end of file and an exited process
        // stay ready for ever, and would make every wait return at once.
        let mut set = PollSet::new();
        let mut sources = Vec::new();
        if !eof {
            sources.push((set.add(&reader, Interest::READABLE), Source::Pipe));
        }
        if messages < MESSAGES.len() {
            sources.push((set.add(&queue, Interest::READABLE), Source::Queue));
        }
        if !signalled {
            sources.push((set.add(&signals, Interest::READABLE), Source::Signal));
        }
        if !exited {
            sources.push((set.add(&pidfd, Interest::READABLE), Source::Exit));
        }
        let ready = set.wait_timeout(TIMEOUT)?;
        if ready.is_empty() {
            return Err(format!(
                "nothing within {TIMEOUT:?}: end of file {eof}, {messages} messages, \
                 signal {signalled}, exit {exited}"
            )
            .into());
        }
        for r in ready {
            let Some(&(_, source)) = sources.iter().find(|(i, _)| *i == r.index) else {
                continue;
            };
            match source {
                Source::Pipe => match reader.try_read(&mut buf) {
                    Ok(0) => {
                        eof = true;
                        println!("[parent] pipe:   end of file");
                    }
                    Ok(n) => print!("[parent] pipe:   {}", String::from_utf8_lossy(&buf[..n])),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e.into()),
                },
                Source::Queue => {
                    while let Ok((n, prio)) = queue.try_recv(&mut buf) {
                        messages += 1;
                        println!(
                            "[parent] queue:  priority {prio}: {:?}",
                            String::from_utf8_lossy(&buf[..n])
                        );
                    }
                }
                Source::Signal => {
                    let info = signals.try_read()?;
                    signalled = true;
                    println!("[parent] signal: {info}");
                }
                Source::Exit => {
                    exited = true;
                    println!("[parent] exit:   the child exited");
                }
            }
        }
    }
    let status = pidfd.exit_status()?;
    println!("[parent] its exit status: {status}");
    if status != ExitStatus::Exited(7) {
        return Err(format!("expected exit status 7, got {status}").into());
    }
    drop(child); // reaps it
    println!("[parent] everything arrived in one loop; dropping the queue removes it; done");
    Ok(())
}

/// What a ready entry of the poll set is.
#[derive(Clone, Copy)]
enum Source {
    Pipe,
    Queue,
    Signal,
    Exit,
}

fn child(parent_id: &str, name: &str) -> Result<(), Box<dyn Error>> {
    let queue = MqOptions::new().access(Access::SendOnly).open(name)?;
    let mut stdout = std::io::stdout().lock();
    for (msg, prio) in MESSAGES {
        writeln!(stdout, "child: sending {msg:?}")?;
        stdout.flush()?;
        queue.send_timeout(msg.as_bytes(), prio, TIMEOUT)?;
        std::thread::sleep(Duration::from_millis(10));
    }
    let parent = Pidfd::open_checked(&parent_id.parse()?)?;
    parent.send_signal(libc::SIGUSR1)?;
    eprintln!("[child] signalled the parent through a pidfd; exiting with 7");
    drop(stdout);
    std::process::exit(7);
}
