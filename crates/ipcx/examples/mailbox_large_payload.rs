//! Mailboxes: a 64 MiB request that travels as a sealed memfd.
//!
//! Above the inline threshold (16 KiB by default), [`Mailbox::request`] writes the payload
//! once into a memfd, seals it against shrinking, growing and writing, and passes the
//! descriptor with the 24-byte header; the receiver checks the seals and the exact size
//! before reading (so the sender cannot change or truncate it afterwards). The parent
//! sends 64 MiB to the child, which answers with a checksum the parent compares with its
//! own.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p ipcx --example mailbox_large_payload
//! ```

mod common;

use std::error::Error;
use std::time::{Duration, Instant};

use common::{Reaper, TIMEOUT};
use ipcx::mailbox::Mailbox;

const SIZE: usize = 64 << 20;

fn main() -> Result<(), Box<dyn Error>> {
    common::run(parent, |[name]| child(&name.to_string_lossy()))
}

/// FNV-1a, enough to show the bytes arrived intact.
fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn parent() -> Result<(), Box<dyn Error>> {
    let client = Mailbox::bind(&format!("big-client-{}", std::process::id()))?;
    let name = format!("big-server-{}", std::process::id());
    let child = Reaper::spawn(common::child_command()?.arg(&name))?;
    let start = Instant::now();
    while !client.path().with_file_name(&name).exists() {
        if start.elapsed() > TIMEOUT {
            return Err("the child did not bind its mailbox".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }

    let payload: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let start = Instant::now();
    let answer = client.request(&name, &payload, TIMEOUT * 5)?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    println!(
        "[parent] sent {} MiB in one request; the child answered {answer:?} after {:?}",
        SIZE >> 20,
        start.elapsed()
    );
    if answer != format!("{} bytes, checksum {:016x}", SIZE, checksum(&payload)) {
        return Err("the checksum differs".into());
    }
    child.wait_success(TIMEOUT)?;
    println!("[parent] checksums match");
    Ok(())
}

fn child(name: &str) -> Result<(), Box<dyn Error>> {
    let me = Mailbox::bind(name)?;
    let env = me.recv_timeout(TIMEOUT * 5)?;
    let data = env.payload();
    eprintln!(
        "[child] received {} bytes from {:?} ({})",
        data.len(),
        env.sender().unwrap_or("unbound"),
        env.credentials()
    );
    env.reply(format!("{} bytes, checksum {:016x}", data.len(), checksum(data)).as_bytes())?;
    Ok(())
}
