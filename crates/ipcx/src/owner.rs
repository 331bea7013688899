//! Ownership of named objects: the creator unlinks, openers never do.
//!
//! A [`PathOwner`] holds an `O_PATH` descriptor on the file its creator made, which pins
//! the inode: while it is open, the filesystem cannot give its inode number to another
//! file. On drop the owner removes the path only if the path still names that very inode,
//! so it never deletes a replacement that another process put there after it. (Comparing
//! device and inode numbers alone is not enough: filesystems reuse a freed inode number
//! at once.) Each owned named object therefore costs one descriptor.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, Mode, OFlags, statat};

use crate::error::{Context, ErrorKind, Result};

/// How a named object is obtained.
///
/// Creation is exclusive by default: ipcx never silently reuses an object it did not
/// create. `OpenOrCreate` opens an existing object only if it is of the right type and
/// belongs to the caller's user.
///
/// # References
/// - [open(2) O_EXCL](https://man7.org/linux/man-pages/man2/open.2.html)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpenMode {
    /// Create a new object; fail with `AlreadyExists` if one is there (`O_EXCL`).
    Create,
    /// Open an existing object; fail with `NotFound` if there is none. Never unlinks.
    Open,
    /// Open the object if it exists and is the caller's, else create it.
    OpenOrCreate,
}

/// How often `open_or_create` goes round when the object keeps vanishing between its
/// failed create and its open (other processes creating and removing it).
pub(crate) const OPEN_OR_CREATE_ROUNDS: u32 = 8;

/// Obtains a named object the way `how` says, from the two primitives every kind has:
/// `create` (exclusive) and `open(mine)`, where `mine` asks the opener to refuse an
/// object of another user. `OpenOrCreate` creates, opens on `AlreadyExists`, and goes
/// round again (a bounded number of times) when the object vanished in between.
pub(crate) fn obtain<T>(
    how: OpenMode,
    mut create: impl FnMut() -> Result<T>,
    mut open: impl FnMut(bool) -> Result<T>,
) -> Result<T> {
    let mut rounds = 0;
    loop {
        rounds += 1;
        let result = match how {
            OpenMode::Create => return create(),
            OpenMode::Open => return open(false),
            OpenMode::OpenOrCreate => match create() {
                Err(e) if e.kind() == ErrorKind::AlreadyExists => open(true),
                other => other,
            },
        };
        match result {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                if rounds == OPEN_OR_CREATE_ROUNDS {
                    return Err(e.with_hint(format!(
                        "other processes removed the object {rounds} times between this \
                         one's create and open; they are fighting over the name"
                    )));
                }
            }
            other => return other,
        }
    }
}

/// Removes a path on drop if it still names the file its creator made.
#[derive(Debug)]
pub(crate) struct PathOwner {
    path: PathBuf,
    /// Keeps the inode alive, so its number stays unique while the owner exists.
    _pin: OwnedFd,
    dev: u64,
    ino: u64,
    keep: bool,
}

impl PathOwner {
    /// Records the file the caller has just created at `path`. The path is made
    /// absolute, so a later `chdir` cannot make the owner miss its file. If the file
    /// cannot be pinned (out of descriptors), it is removed again and the error returned,
    /// so a retry does not find an ownerless leftover.
    pub(crate) fn record(path: &Path) -> Result<PathOwner> {
        let pinned = std::path::absolute(path)
            .op_on("absolute path", path.display())
            .and_then(|abs| {
                let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let pin = rustix::fs::open(&abs, flags, Mode::empty())
                    .op_on("open O_PATH", path.display())?;
                let st = rustix::fs::fstat(&pin).op_on("stat", path.display())?;
                Ok(PathOwner {
                    path: abs,
                    _pin: pin,
                    dev: st.st_dev,
                    ino: st.st_ino,
                    keep: false,
                })
            });
        if pinned.is_err() {
            let _ = std::fs::remove_file(path);
        }
        pinned
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Sets the permission bits of the owned file itself, through the pin: a symbolic
    /// link swapped in at the path meanwhile cannot redirect the change elsewhere.
    pub(crate) fn set_mode(&self, mode: u32) -> Result<()> {
        use std::os::fd::AsRawFd;
        let via_pin = format!("/proc/self/fd/{}", self._pin.as_raw_fd());
        rustix::fs::chmodat(
            CWD,
            via_pin.as_str(),
            Mode::from_raw_mode(mode),
            AtFlags::empty(),
        )
        .op_on("chmod", self.path.display())
    }

    /// Leaves the file in place when the owner is dropped.
    pub(crate) fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for PathOwner {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if let Ok(st) = statat(CWD, &self.path, AtFlags::SYMLINK_NOFOLLOW) {
            if st.st_dev == self.dev && st.st_ino == self.ino {
                // Nothing useful can be done with a failure in drop; the file is then
                // left for `ipcx gc`.
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}
