//! Ownership of named objects: the creator unlinks, openers never do.
//!
//! A [`PathOwner`] records the identity (device and inode) of the file its creator made.
//! On drop it removes the path only if the path still names that very file, so an owner
//! never deletes a replacement that another process put there after it.

use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, statat};

use crate::error::{Context, Result};

/// How a named object is obtained.
///
/// Creation is exclusive by default: ipcx never silently reuses an object it did not
/// create. `OpenOrCreate` opens an existing object only if it is of the right type and
/// belongs to the caller's user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Create a new object; fail with `AlreadyExists` if one is there (`O_EXCL`).
    Create,
    /// Open an existing object; fail with `NotFound` if there is none. Never unlinks.
    Open,
    /// Open the object if it exists and is the caller's, else create it.
    OpenOrCreate,
}

/// Removes a path on drop if it still names the file its creator made.
#[derive(Debug)]
pub(crate) struct PathOwner {
    path: PathBuf,
    dev: u64,
    ino: u64,
    keep: bool,
}

impl PathOwner {
    /// Records the file now at `path` as created by the caller.
    pub(crate) fn record(path: &Path) -> Result<PathOwner> {
        let st = statat(CWD, path, AtFlags::SYMLINK_NOFOLLOW).op_on("stat", path.display())?;
        Ok(PathOwner {
            path: path.to_path_buf(),
            dev: st.st_dev,
            ino: st.st_ino,
            keep: false,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
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
