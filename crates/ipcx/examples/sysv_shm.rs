//! A System V shared memory segment shared with a child by id.
//!
//! The parent creates a private segment ([`Key::PRIVATE`], mode 0600) with
//! [`SysvShmOptions::create`], attaches it and writes a greeting, then starts a second
//! copy of this program with the segment's id. The child finds the segment with
//! [`SysvShm::from_id`], attaches it, reads the greeting and writes a reply. The parent
//! reads the reply and the segment's `IPC_STAT` (attach count, creator, last pid), and
//! its `SysvShm` removes the segment on drop, so `ipcs -m` shows nothing afterwards.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p ipcx --example sysv_shm
//! ```

mod common;

use std::error::Error;

use common::{Reaper, TIMEOUT};
use ipcx::shm::sysv::{SysvShm, SysvShmOptions};
use ipcx::sysv::Key;

const GREETING: &[u8] = b"hello from the parent";
const REPLY: &[u8] = b"hello from the child";
const REPLY_AT: usize = 1024;

fn main() -> Result<(), Box<dyn Error>> {
    common::run(parent, |[id]| child(&id.to_string_lossy()))
}

fn parent() -> Result<(), Box<dyn Error>> {
    let shm = SysvShmOptions::new().size(4096).create(Key::PRIVATE)?;
    let region = shm.attach()?;
    region.write(0, GREETING)?;
    println!(
        "[parent] created segment id {} (IPC_PRIVATE, mode {:o}) and wrote a greeting",
        shm.id(),
        shm.stat()?.perm.mode
    );

    let mut cmd = common::child_command()?;
    cmd.arg(shm.id().to_string());
    let child = Reaper::spawn(&mut cmd)?;
    let child_pid = child.id();
    let status = child.wait_success(TIMEOUT)?;
    println!("[parent] child {child_pid} exited with {status}");

    let mut reply = vec![0u8; REPLY.len()];
    region.read(REPLY_AT, &mut reply)?;
    println!(
        "[parent] read the reply: {:?}",
        String::from_utf8_lossy(&reply)
    );
    let st = shm.stat()?;
    println!(
        "[parent] IPC_STAT: {} attached, created by pid {}, last attach/detach by pid {}",
        st.attaches, st.creator_pid, st.last_pid
    );
    if reply != REPLY || st.last_pid as u32 != child_pid {
        return Err("the child's reply or pid is not what it should be".into());
    }
    drop(region);
    drop(shm);
    println!("[parent] removed the segment; done");
    Ok(())
}

fn child(id: &str) -> Result<(), Box<dyn Error>> {
    let shm = SysvShm::from_id(id.parse()?)?;
    let region = shm.attach()?;
    let mut greeting = vec![0u8; GREETING.len()];
    region.read(0, &mut greeting)?;
    eprintln!(
        "[child] attached segment {id} and read {:?}",
        String::from_utf8_lossy(&greeting)
    );
    region.write(REPLY_AT, REPLY)?;
    eprintln!("[child] wrote a reply and detaches on exit");
    Ok(())
}
