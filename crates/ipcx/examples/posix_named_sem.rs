//! Two processes taking turns with a pair of POSIX named semaphores.
//!
//! The parent creates two named semaphores, `ping` and `pong`, with
//! [`NamedSemaphore::create`] (value 0, mode 0600 whatever the umask, unlinked again when
//! dropped) and starts a second copy of this program as its child, passing it the names.
//! The child opens both with [`NamedSemaphore::open`]. Then, for a few rounds, the parent
//! posts `ping` and waits on `pong` with [`NamedSemaphore::wait_timeout`], while the child
//! waits on `ping` and posts `pong`: each process runs only when the other lets it.
//! [`NamedSemaphore::try_wait`] shows a semaphore at 0 without waiting.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p ipcx --example posix_named_sem
//! ```

mod common;

use std::error::Error;
use std::os::unix::fs::PermissionsExt;

use common::{Reaper, TIMEOUT};
use ipcx::ErrorKind;
use ipcx::sem::posix::NamedSemaphore;

/// How many times the two processes hand over to each other.
const ROUNDS: u32 = 3;

fn main() -> Result<(), Box<dyn Error>> {
    common::run(parent, |[ping, pong]| {
        child(&ping.to_string_lossy(), &pong.to_string_lossy())
    })
}

fn parent() -> Result<(), Box<dyn Error>> {
    let pid = std::process::id();
    let ping = NamedSemaphore::create(&format!("/ipcx-example-ping-{pid}"))?;
    let pong = NamedSemaphore::create(&format!("/ipcx-example-pong-{pid}"))?;
    let file = format!("/dev/shm/sem.{}", &ping.name()[1..]);
    let mode = std::fs::metadata(&file)?.permissions().mode() & 0o777;
    println!(
        "[parent] created {} and {} (stored as {file}, mode {mode:04o})",
        ping.name(),
        pong.name()
    );

    match pong.try_wait() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {
            println!("[parent] try_wait on pong at 0 fails at once: {e}");
        }
        Err(e) => return Err(e.into()),
        Ok(()) => return Err("pong was not 0".into()),
    }

    let child = Reaper::spawn(common::child_command()?.arg(ping.name()).arg(pong.name()))?;
    println!("[parent] started child pid {}", child.id());

    for round in 1..=ROUNDS {
        ping.post()?;
        println!("[parent] round {round}: posted ping");
        pong.wait_timeout(TIMEOUT)?;
        println!("[parent] round {round}: the child answered on pong");
    }

    let status = child.wait_success(TIMEOUT)?;
    println!("[parent] child exited with {status}");

    drop((ping, pong));
    if std::path::Path::new(&file).exists() {
        return Err(format!("{file} is still there after its owner was dropped").into());
    }
    println!("[parent] dropped the owners: both names are unlinked; done");
    Ok(())
}

fn child(ping: &str, pong: &str) -> Result<(), Box<dyn Error>> {
    let ping = NamedSemaphore::open(ping)?;
    let pong = NamedSemaphore::open(pong)?;
    eprintln!(
        "[child] opened {} and {} (an opener never unlinks them)",
        ping.name(),
        pong.name()
    );
    for round in 1..=ROUNDS {
        ping.wait_timeout(TIMEOUT)?;
        eprintln!("[child] round {round}: got ping, posting pong");
        pong.post()?;
    }
    Ok(())
}
