//! A POSIX message queue between two processes: the receiver takes urgent messages first.
//!
//! The parent creates a queue with [`MqOptions::create`] (mode 0600, room for 8 messages
//! of up to 128 bytes, unlinked again when the handle is dropped) and starts a second copy
//! of this program as its child, passing it the queue's name. The child opens the queue
//! send-only with [`MqOptions::open`] and sends a few messages with different priorities,
//! in no particular order, then exits. The parent waits for the queue's descriptor to
//! become readable (it can be polled like a socket), then drains it with
//! [`MessageQueue::recv_timeout`]: the highest priority comes out first, and messages of
//! one priority in the order they were sent. Once the queue is empty,
//! [`MessageQueue::try_recv`] says `WouldBlock`; a buffer smaller than the queue's
//! message size is refused before the call. Dropping the parent's handle removes the
//! queue.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p ipcx --example posix_mq
//! ```

mod common;

use std::error::Error;

use common::{Reaper, TIMEOUT};
use ipcx::ErrorKind;
use ipcx::mq::Access;
use ipcx::mq::posix::{MessageQueue, MqOptions};

/// What the child sends, with each message's priority (higher is more urgent).
const MESSAGES: [(&str, u32); 5] = [
    ("log: disk at 70%", 1),
    ("report: nightly build passed", 5),
    ("alert: disk at 95%", 10),
    ("log: disk at 80%", 1),
    ("report: backup finished", 5),
];

fn main() -> Result<(), Box<dyn Error>> {
    common::run(parent, |[name]| child(&name.to_string_lossy()))
}

fn parent() -> Result<(), Box<dyn Error>> {
    let name = format!("/ipcx-example-posix-mq-{}", std::process::id());
    let queue = MqOptions::new()
        .capacity(8)
        .max_msg_size(128)
        .create(&name)?;
    let attr = queue.attributes()?;
    println!(
        "[parent] created {name}: {} messages of up to {} bytes; owner: {}",
        attr.capacity,
        attr.max_msg_size,
        queue.is_owner()
    );

    let child = Reaper::spawn(common::child_command()?.arg(&name))?;
    println!(
        "[parent] started child pid {} with the queue's name",
        child.id()
    );
    let status = child.wait_success(TIMEOUT)?;
    println!("[parent] the child sent everything and exited with {status}");

    // The descriptor is pollable: readable while a message is queued.
    let mut fds = [rustix::event::PollFd::new(
        &queue,
        rustix::event::PollFlags::IN,
    )];
    rustix::event::poll(&mut fds, None)?;
    println!(
        "[parent] poll on the queue's descriptor says {:?}; {} messages are queued",
        fds[0].revents(),
        queue.attributes()?.messages
    );

    let mut buf = vec![0u8; queue.max_msg_size()];
    for _ in 0..MESSAGES.len() {
        let (len, prio) = queue.recv_timeout(&mut buf, TIMEOUT)?;
        println!(
            "[parent] priority {prio:2}: {:?}",
            String::from_utf8_lossy(&buf[..len])
        );
    }

    match queue.try_recv(&mut buf) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {
            println!("[parent] the queue is empty now: {e}");
        }
        Err(e) => return Err(e.into()),
        Ok(_) => return Err("the queue should be empty".into()),
    }
    match queue.try_recv(&mut buf[..16]) {
        Err(e) if e.kind() == ErrorKind::MessageTooLarge => {
            println!("[parent] a 16-byte buffer is refused up front: {e}");
        }
        Err(e) => return Err(e.into()),
        Ok(_) => return Err("a small buffer should be refused".into()),
    }

    drop(queue);
    match MessageQueue::open(&name) {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            println!("[parent] dropped the owner; the queue is gone; done");
            Ok(())
        }
        Err(e) => Err(e.into()),
        Ok(_) => Err("the owner's drop should have removed the queue".into()),
    }
}

fn child(name: &str) -> Result<(), Box<dyn Error>> {
    let queue = MqOptions::new().access(Access::SendOnly).open(name)?;
    println!(
        "[child] opened {name} send-only; owner: {} (it will not remove it)",
        queue.is_owner()
    );
    for (msg, prio) in MESSAGES {
        queue.send_timeout(msg.as_bytes(), prio, TIMEOUT)?;
        println!("[child] sent {msg:?} at priority {prio}");
    }
    Ok(())
}
