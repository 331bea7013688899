//! ipcx mailboxes in the runtime directory: a datagram socket file `NAME` with a
//! `NAME.lock` beside it, which the mailbox's process holds with an exclusive `flock`
//! for its whole life (see `ipcx::mailbox`, "Where mailboxes live"). The kernel drops
//! the lock however the process ends, so a free lock and an unbound socket say the
//! owner is gone, without any PID.
//!
//! `ls` reads the locks from /proc/locks and takes none; `rm` and `gc` take the lock
//! themselves (exclusive, without waiting) before they remove anything, exactly as a
//! binding mailbox would, so that no mailbox can be bound under the name while they do.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use super::{Locks, Object, Users};

pub use ipcx::unix::lock_path;

/// The inventory entry for the socket file `path`, if it is a mailbox: its name is a
/// valid mailbox name, a `NAME.lock` regular file is beside it, and if a socket is bound
/// to it, that socket is a datagram socket.
pub fn object(
    root: &Path,
    path: &Path,
    meta: &std::fs::Metadata,
    bound: &HashMap<String, &'static str>,
    users: &Users,
    locks: &Locks,
) -> Option<Object> {
    let file = path.file_name()?.to_str()?;
    ipcx::mailbox::check_name(file).ok()?;
    let lock = std::fs::symlink_metadata(lock_path(path)).ok()?;
    if !lock.is_file() {
        return None;
    }
    let shown = path.display().to_string();
    let binding = bound.get(&shown).copied();
    if binding.is_some_and(|kind| kind != "dgram") {
        return None;
    }
    let held = locks.any(lock.dev(), lock.ino());
    let (stale, why) = match (binding.is_some(), held) {
        (_, true) => (
            false,
            "its lock is held: the mailbox's process runs".to_string(),
        ),
        (true, false) => (
            false,
            "its lock is free but a socket is still bound to it".to_string(),
        ),
        (false, false) => (
            true,
            "its lock is free (its process is gone) and no socket is bound to it".to_string(),
        ),
    };
    // A mailbox in the runtime directory is addressed by its name (`mailbox:NAME`).
    let name = if path.parent() == Some(root) {
        file.to_string()
    } else {
        shown
    };
    Some(Object {
        stale,
        sure: stale,
        why,
        state: Some(format!(
            "{}, lock {}",
            if binding.is_some() {
                "bound"
            } else {
                "unbound"
            },
            if held { "held" } else { "free" }
        )),
        ..Object::of_file("mailbox", name, meta, users)
    })
}

/// Why removing the socket file `path` (and its lock file) was refused.
pub enum Refusal {
    /// Its process runs.
    Live(String),
    /// Something else went wrong (the message says what).
    Failed(String),
}

/// Removes the socket file `path` and its `.lock`, holding the lock (exclusive, taken
/// without waiting) while it does, and only if no socket is bound to the path: a live
/// owner holds the lock, so the attempt fails and nothing is removed.
pub fn remove(path: &Path) -> Result<(), Refusal> {
    let lock = lock_path(path);
    let shown = lock.display();
    let flags = OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK;
    let held: Option<OwnedFd> = match rustix::fs::open(&lock, flags, Mode::empty()) {
        Ok(fd) => {
            match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(Errno::WOULDBLOCK) => {
                    return Err(Refusal::Live(format!(
                        "a live process holds its lock {shown}"
                    )));
                }
                Err(e) => return Err(Refusal::Failed(format!("flock {shown}: {e}"))),
            }
            Some(fd)
        }
        Err(Errno::NOENT) => None,
        Err(e) => return Err(Refusal::Failed(format!("open {shown}: {e}"))),
    };
    let name = path.display().to_string();
    if super::unix_sockets().iter().any(|s| s.path == name) {
        return Err(Refusal::Live(
            "a socket is still bound to it (a process holds it)".into(),
        ));
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Refusal::Failed(format!("unlink {name}: {e}"))),
    }
    if held.is_some() {
        // Still holding the lock, so no binder can have replaced the file; the lock
        // itself goes when `held` closes, right after (as a mailbox does on drop).
        if let Err(e) = std::fs::remove_file(&lock)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(Refusal::Failed(format!("unlink {shown}: {e}")));
        }
    }
    drop(held);
    Ok(())
}
