//! A parent waits on a child's pipe, a POSIX message queue, a signal and the child's exit
//! at once, with tokio.
//!
//! The parent creates a POSIX message queue (mode 0600, unlinked again when dropped) and a
//! pipe, and starts a second copy of this program as its child, with the pipe as the
//! child's stdout and the queue's name as its argument. The child writes progress lines
//! to its stdout and, in between, sends messages with priorities to the queue; then it
//! exits, which closes the pipe.
//!
//! Before it starts its runtime, the parent blocks `SIGUSR1` (so no thread can take it)
//! and opens a signalfd for it; the child signals the parent through a pidfd once it has
//! sent everything, then exits with status 7.
//!
//! The parent wraps the pipe's read end in an [`AsyncPipeReader`], the queue in an
//! [`AsyncMessageQueue`], the signalfd in an [`AsyncSignalFd`] and the child's pidfd in an
//! [`AsyncPidfd`], and waits on all four in one `tokio::select!` loop, with a deadline as
//! a fifth branch. Each turn, the branch that loses has its future dropped; that
//! loses nothing, because `next_line` and `recv` are cancellation-safe (a message is taken
//! from the queue only by the poll that returns it). The loop ends when the pipe is at end
//! of file, every message and the signal have arrived and the child has exited.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p ipcx --example tokio_wait --features tokio
//! ```

mod common;

use std::error::Error;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use common::{Reaper, TIMEOUT};
use ipcx::mq::Access;
use ipcx::mq::posix::MqOptions;
use ipcx::process::{ExitStatus, Pidfd, ProcessId};
use ipcx::signal::{SignalFd, SignalMask, SignalSet};
use ipcx::tokio::{AsyncMessageQueue, AsyncPidfd, AsyncPipeReader, AsyncSignalFd};
use tokio::io::{AsyncBufReadExt, BufReader};

/// What the child sends to the queue, with each message's priority, between its lines.
const MESSAGES: [(&str, u32); 4] = [
    ("job 1 queued", 1),
    ("job 2 queued", 1),
    ("disk almost full", 9),
    ("job 3 queued", 1),
];

fn main() -> Result<(), Box<dyn Error>> {
    common::run(parent, |[parent_id, name]| {
        child(&parent_id.to_string_lossy(), &name.to_string_lossy())
    })
}

fn parent() -> Result<(), Box<dyn Error>> {
    // Block SIGUSR1 before the runtime exists: its threads inherit the mask, and a thread
    // that did not block the signal would take it instead of the signalfd.
    let set = SignalSet::new(&[libc::SIGUSR1])?;
    let _mask = SignalMask::block(&set)?;
    let signals = SignalFd::new(&set)?;
    // A runtime on this thread; `enable_all` gives it the I/O driver and timers.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(wait_on_all(signals))
}

async fn wait_on_all(signals: SignalFd) -> Result<(), Box<dyn Error>> {
    let name = format!("/ipcx-example-tokio-wait-{}", std::process::id());
    let queue = MqOptions::new()
        .capacity(8)
        .max_msg_size(128)
        .create(&name)?;
    let (reader, writer) = ipcx::pipe::pipe()?;
    println!("[parent] created the queue {name} and a pipe");

    let mut cmd = common::child_command()?;
    cmd.arg(ProcessId::current()?.to_string())
        .arg(&name)
        .stdout(Stdio::from(writer));
    let child = Reaper::spawn(&mut cmd)?;
    drop(cmd); // the parent's copy of the write end: end of file needs every copy closed
    println!(
        "[parent] started child pid {} with the pipe as its stdout",
        child.id()
    );

    // Register both with this runtime. (Outside a runtime this fails, and gives the
    // queue back rather than dropping, and so unlinking, it.)
    let queue = AsyncMessageQueue::new(queue)?;
    let signals = AsyncSignalFd::new(signals)?;
    let exit = AsyncPidfd::new(Pidfd::open(child.id())?)?;
    let mut lines = BufReader::new(AsyncPipeReader::new(reader)?).lines();
    let mut buf = vec![0u8; queue.get_ref().max_msg_size()];

    let deadline = tokio::time::sleep(TIMEOUT);
    tokio::pin!(deadline);
    let (mut eof, mut received, mut turns) = (false, 0, 0);
    let (mut signalled, mut exited) = (false, false);
    while !eof || received < MESSAGES.len() || !signalled || !exited {
        turns += 1;
        tokio::select! {
            // Once the pipe is at end of file, stop asking it (it would answer at once).
            line = lines.next_line(), if !eof => match line? {
                Some(line) => println!("[parent] pipe:   {line}"),
                None => {
                    eof = true;
                    println!("[parent] pipe:   end of file (the child closed its stdout)");
                }
            },
            got = queue.recv(&mut buf), if received < MESSAGES.len() => {
                let (len, prio) = got?;
                received += 1;
                println!(
                    "[parent] queue:  priority {prio}: {:?}",
                    String::from_utf8_lossy(&buf[..len])
                );
            }
            info = signals.recv(), if !signalled => {
                signalled = true;
                println!("[parent] signal: {}", info?);
            }
            done = exit.exited(), if !exited => {
                done?;
                exited = true;
                println!("[parent] exit:   the child exited");
            }
            () = &mut deadline => {
                return Err(format!(
                    "gave up after {TIMEOUT:?}: end of file {eof}, {received} of {} messages, \
                     signal {signalled}, exit {exited}",
                    MESSAGES.len()
                ).into());
            }
        }
    }
    println!("[parent] {turns} turns of select!, nothing lost");
    let status = exit.exit_status().await?;
    println!("[parent] the child's exit status: {status}");
    if status != ExitStatus::Exited(7) {
        return Err(format!("expected exit status 7, got {status}").into());
    }
    drop(child); // reaps it
    println!("[parent] dropping the queue removes it; done");
    Ok(())
}
fn child(parent_id: &str, name: &str) -> Result<(), Box<dyn Error>> {
    let queue = MqOptions::new().access(Access::SendOnly).open(name)?;
    eprintln!("[child] opened {name} send-only");
    let mut stdout = std::io::stdout().lock();
    for (i, (msg, prio)) in MESSAGES.into_iter().enumerate() {
        writeln!(stdout, "child step {i}: about to send {msg:?}")?;
        stdout.flush()?;
        std::thread::sleep(Duration::from_millis(20));
        queue.send_timeout(msg.as_bytes(), prio, TIMEOUT)?;
        eprintln!("[child] sent {msg:?} at priority {prio}");
    }
    writeln!(stdout, "child done")?;
    stdout.flush()?;
    drop(stdout);
    let parent = Pidfd::open_checked(&parent_id.parse()?)?;
    parent.send_signal(libc::SIGUSR1)?;
    eprintln!("[child] signalled the parent through a pidfd; exiting with 7");
    std::process::exit(7);
}
