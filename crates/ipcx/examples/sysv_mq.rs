//! A System V message queue shared by a dispatcher and a worker, who pick messages by type.
//!
//! The parent creates a private queue with [`SysvMq::create`]`(Key::PRIVATE)` (mode 0600,
//! removed with `IPC_RMID` when the handle is dropped) and starts a second copy of this
//! program as its child, passing it the queue's id; the child attaches with
//! [`SysvMq::from_id`]. The message type is the address: the parent sends jobs of type 1
//! (for a worker that does not exist here) and of type 2 (for the child), and the child,
//! worker 2, receives only type 2 with [`TypeFilter::Exact`] and answers each job with a
//! message of type 10, until a "stop" job. The parent collects the answers with
//! `TypeFilter::Exact(10)`, finds the job for worker 1 still queued, and then shows
//! [`TypeFilter::UpTo`]: with types used as urgency levels, the lowest type up to the
//! bound comes first.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p ipcx --example sysv_mq
//! ```

mod common;

use std::error::Error;

use common::{Reaper, TIMEOUT};
use ipcx::mq::sysv::{SysvMq, TypeFilter};
use ipcx::sysv::Key;

/// The message type of worker 2's jobs.
const WORKER: i64 = 2;
/// The message type of answers to the dispatcher.
const ANSWER: i64 = 10;

fn main() -> Result<(), Box<dyn Error>> {
    common::run(parent, |[id]| child(id.to_string_lossy().parse()?))
}

fn parent() -> Result<(), Box<dyn Error>> {
    let queue = SysvMq::create(Key::PRIVATE)?;
    let stat = queue.stat()?;
    println!(
        "[parent] created {queue}: mode {:04o}, holds up to {} bytes; owner: {}",
        stat.perm.mode,
        stat.qbytes,
        queue.is_owner()
    );

    let jobs = [
        (WORKER, "resize image 17"),
        (1, "job for worker 1"),
        (WORKER, "resize image 18"),
        (WORKER, "stop"),
    ];
    for (mtype, job) in jobs {
        queue.send_timeout(mtype, job.as_bytes(), TIMEOUT)?;
        println!("[parent] sent type {mtype}: {job:?}");
    }

    let child = Reaper::spawn(common::child_command()?.arg(queue.id().to_string()))?;
    println!(
        "[parent] started child pid {} with the queue's id",
        child.id()
    );

    let mut buf = [0u8; 256];
    for _ in 0..2 {
        let (_, len) = queue.recv_timeout(TypeFilter::Exact(ANSWER), &mut buf, TIMEOUT)?;
        println!(
            "[parent] answer: {:?}",
            String::from_utf8_lossy(&buf[..len])
        );
    }
    let status = child.wait_success(TIMEOUT)?;
    println!("[parent] the child exited with {status}");

    let (mtype, len) = queue.try_recv(TypeFilter::Any, &mut buf)?;
    println!(
        "[parent] left untouched by worker 2: type {mtype}: {:?}",
        String::from_utf8_lossy(&buf[..len])
    );

    // Types as urgency levels: UpTo(3) takes the lowest type first, whatever the order.
    for (mtype, msg) in [(3, "routine"), (1, "urgent"), (2, "soon"), (7, "ignored")] {
        queue.send(mtype, msg.as_bytes())?;
    }
    println!("[parent] sent types 3, 1, 2 and 7; receiving the lowest type up to 3:");
    for _ in 0..3 {
        let (mtype, len) = queue.try_recv(TypeFilter::UpTo(3), &mut buf)?;
        println!(
            "[parent]   type {mtype}: {:?}",
            String::from_utf8_lossy(&buf[..len])
        );
    }
    let stat = queue.stat()?;
    println!(
        "[parent] {} message(s) left ({} bytes); last sent by pid {:?}",
        stat.qnum, stat.cbytes, stat.lspid
    );

    drop(queue);
    println!("[parent] dropped the owner, which removed the queue and its last message; done");
    Ok(())
}

fn child(id: i32) -> Result<(), Box<dyn Error>> {
    let queue = SysvMq::from_id(id)?;
    println!(
        "[child] attached to {queue}; owner: {} (it will not remove it)",
        queue.is_owner()
    );
    let mut buf = [0u8; 256];
    loop {
        let (_, len) = queue.recv_timeout(TypeFilter::Exact(WORKER), &mut buf, TIMEOUT)?;
        let job = String::from_utf8_lossy(&buf[..len]).into_owned();
        println!("[child] worker {WORKER} got {job:?}");
        if job == "stop" {
            return Ok(());
        }
        let answer = format!("worker {WORKER} did {job:?}");
        queue.send_timeout(ANSWER, answer.as_bytes(), TIMEOUT)?;
    }
}
