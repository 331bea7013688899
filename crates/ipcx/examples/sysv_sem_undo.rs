//! A System V semaphore that survives a holder killed while holding it, thanks to
//! `SEM_UNDO`.
//!
//! The parent creates a private set of one semaphore with the value 1 (a lock) using
//! [`SemSetOptions::create`] and starts a second copy of this program as its child, passing
//! it the set's id. The child takes the lock with [`SemOp::acquire`]`(0).`[`undo`](SemOp::undo)
//! and then sleeps, as a process would that hangs or is about to crash. The parent sees the
//! lock taken ([`SemSet::try_op`] fails with `WouldBlock`), kills the child with `SIGKILL`
//! (no destructor, no clean-up code runs in it), and then takes the lock itself with
//! [`SemSet::op_timeout`]: the kernel gave back what the dead process took. The set is
//! removed when the parent's handle is dropped.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p ipcx --example sysv_sem_undo
//! ```

mod common;

use std::error::Error;
use std::time::{Duration, Instant};

use common::{Reaper, TIMEOUT};
use ipcx::ErrorKind;
use ipcx::sem::sysv::{SemOp, SemSet, SemSetOptions};
use ipcx::sysv::Key;

/// How long the child holds the lock if nobody kills it.
const HOLD: Duration = Duration::from_secs(30);

fn main() -> Result<(), Box<dyn Error>> {
    common::run(parent, |[id]| child(&id.to_string_lossy()))
}

fn parent() -> Result<(), Box<dyn Error>> {
    let set = SemSetOptions::new().initial(1).create(Key::PRIVATE)?;
    let st = set.stat()?;
    println!(
        "[parent] created semaphore set id {} (mode {:04o}, {} semaphore, value {})",
        set.id(),
        st.perm.mode,
        st.nsems,
        set.get(0)?
    );

    let child = Reaper::spawn(common::child_command()?.arg(set.id().to_string()))?;
    println!("[parent] started child pid {}", child.id());

    // Wait, bounded, until the child holds the lock.
    let deadline = Instant::now() + TIMEOUT;
    while set.get(0)? != 0 {
        if Instant::now() >= deadline {
            return Err("the child did not take the lock in time".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    match set.try_op(&[SemOp::acquire(0)]) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {
            println!("[parent] the child holds the lock; try_op fails as expected: {e}");
        }
        Err(e) => return Err(e.into()),
        Ok(()) => return Err("the lock was free while the child should hold it".into()),
    }

    // Dropping the Reaper sends SIGKILL and reaps the child.
    drop(child);
    println!("[parent] killed the child with SIGKILL while it held the lock");

    set.op_timeout(&[SemOp::acquire(0).undo()], TIMEOUT)?;
    println!("[parent] took the lock: the kernel undid the dead holder's operation");
    set.op(&[SemOp::release(0).undo()])?;
    println!("[parent] released it; value is {}", set.get(0)?);

    let id = set.id();
    drop(set);
    match SemSet::from_id(id) {
        Err(_) => println!("[parent] dropped the set's owner handle: set {id} is removed"),
        Ok(_) => return Err(format!("set {id} still exists after its owner was dropped").into()),
    }
    Ok(())
}

fn child(id: &str) -> Result<(), Box<dyn Error>> {
    let set = SemSet::from_id(id.parse()?)?;
    set.op_timeout(&[SemOp::acquire(0).undo()], TIMEOUT)?;
    eprintln!("[child] took the lock with SEM_UNDO; now holding it until killed");
    std::thread::sleep(HOLD);
    Err("nobody killed the child".into())
}
