//! The private runtime directory where ipcx keeps per-user endpoints (mailboxes).
//!
//! The directory is `$XDG_RUNTIME_DIR/ipcx` when `XDG_RUNTIME_DIR` is set and not empty,
//! else `/tmp/ipcx-<euid>`. It is created with mode 0700 exactly (whatever the umask);
//! one that exists already is used only if it is a real directory (not a symbolic link)
//! that belongs to the caller and gives no access to group or others. Anything else is
//! refused with [`ErrorKind::PermissionDenied`]: in a
//! shared `/tmp`, another user could have planted the directory, or a symbolic link to
//! one of theirs, to read or intercept what the caller puts there (reliability items 24,
//! 25).
//!
//! ```
//! # let tmp = std::env::temp_dir().join(format!("ipcx-doc-rt-{}", std::process::id()));
//! # std::fs::create_dir_all(&tmp)?;
//! let dir = tmp.join("private");
//! ipcx::runtime::ensure_private_dir(&dir)?;      // created 0700
//! ipcx::runtime::ensure_private_dir(&dir)?;      // checked and accepted
//! # std::fs::remove_dir_all(&tmp)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # References
//! - [XDG Base Directory Specification, `XDG_RUNTIME_DIR`](https://specifications.freedesktop.org/basedir-spec/latest/)
//! - [mkdir(2)](https://man7.org/linux/man-pages/man2/mkdir.2.html),
//!   [open(2) `O_NOFOLLOW`](https://man7.org/linux/man-pages/man2/open.2.html)

use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Context, Error, ErrorKind, Result};

/// The runtime directory's path, computed without touching the filesystem:
/// `$XDG_RUNTIME_DIR/ipcx`, else `/tmp/ipcx-<euid>`.
///
/// Use [`ensure_runtime_dir`] to create and check it.
pub fn runtime_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("ipcx"),
        None => PathBuf::from(format!("/tmp/ipcx-{}", rustix::process::geteuid().as_raw())),
    }
}

/// Creates the runtime directory ([`runtime_dir`]) if needed, checks it with
/// [`ensure_private_dir`], and returns its path.
///
/// # Errors
/// As [`ensure_private_dir`]; [`ErrorKind::NotFound`] when `XDG_RUNTIME_DIR` names a
/// directory that does not exist.
pub fn ensure_runtime_dir() -> Result<PathBuf> {
    let dir = runtime_dir();
    ensure_private_dir(&dir)?;
    Ok(dir)
}

/// Creates `dir` with mode 0700 exactly if it does not exist, then checks that it is a
/// real directory (not a symbolic link), owned by the caller's effective uid, with no
/// access for group or others.
///
/// The check is made on the opened directory (`O_NOFOLLOW | O_DIRECTORY`, then `fstat`),
/// so a symbolic link swapped in between the creation and the check is seen, not followed.
///
/// # Errors
/// [`ErrorKind::PermissionDenied`] for a symbolic link, a non-directory, another user's
/// directory or one open to group or others (the hint says what is wrong and what to
/// do); [`ErrorKind::NotFound`] when the parent directory is missing.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    let object = dir.display();
    let created = match rustix::fs::mkdir(dir, Mode::from_raw_mode(0o700)) {
        Ok(()) => true,
        Err(Errno::EXIST) => false,
        Err(e) => {
            let err = Error::from_errno("mkdir", e.raw_os_error()).with_object(&object);
            return Err(match e {
                Errno::NOENT => err.with_hint(
                    "the parent directory does not exist; check XDG_RUNTIME_DIR, or create the parent",
                ),
                _ => err,
            });
        }
    };
    let refuse = |hint: String| {
        Err(
            Error::new("check runtime directory", ErrorKind::PermissionDenied)
                .with_object(&object)
                .with_hint(hint),
        )
    };
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = match rustix::fs::open(dir, flags, Mode::empty()) {
        Ok(fd) => fd,
        // With O_DIRECTORY, a symbolic link is reported as ENOTDIR rather than ELOOP.
        Err(Errno::LOOP | Errno::NOTDIR) if is_symlink(dir) => {
            return refuse(
                "it is a symbolic link, which someone may have planted to redirect ipcx; \
                 remove it (or set XDG_RUNTIME_DIR to a private directory)"
                    .into(),
            );
        }
        Err(Errno::NOTDIR) => {
            return refuse(
                "it exists but is not a directory; remove it, or set XDG_RUNTIME_DIR elsewhere"
                    .into(),
            );
        }
        Err(e) => return Err(Error::from_errno("open", e.raw_os_error()).with_object(&object)),
    };
    let me = rustix::process::geteuid().as_raw();
    if created {
        // mkdir(2) applied the umask; make the mode exactly 0700.
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700)).op_on("fchmod", &object)?;
    }
    let st = rustix::fs::fstat(&fd).op_on("fstat", &object)?;
    if st.st_uid != me {
        return refuse(format!(
            "it belongs to uid {} but you are uid {me}: another user may have created it to \
             intercept your endpoints; remove it (as its owner or root) or set XDG_RUNTIME_DIR \
             to a private directory of yours",
            st.st_uid
        ));
    }
    let mode = st.st_mode & 0o7777;
    if mode & 0o077 != 0 {
        return refuse(format!(
            "its mode is {mode:04o}, which lets group or others in; run `chmod 700 {object}`"
        ));
    }
    Ok(())
}

/// Checks a directory chosen explicitly for shared endpoints: a real directory (not a
/// symbolic link) owned by the caller or by root, that group and others cannot write to.
/// Unlike [`ensure_private_dir`], it may be searchable by others (so other users can
/// reach a mailbox whose socket file admits them), and it is never created.
pub(crate) fn check_shared_dir(dir: &Path) -> Result<()> {
    let object = dir.display();
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let refuse = |hint: String| {
        Err(Error::new("check directory", ErrorKind::PermissionDenied)
            .with_object(&object)
            .with_hint(hint))
    };
    let fd = match rustix::fs::open(dir, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::LOOP | Errno::NOTDIR) if is_symlink(dir) => {
            return refuse("it is a symbolic link; give the real directory".into());
        }
        Err(e) => return Err(Error::from_errno("open", e.raw_os_error()).with_object(&object)),
    };
    let st = rustix::fs::fstat(&fd).op_on("fstat", &object)?;
    let me = rustix::process::geteuid().as_raw();
    if st.st_uid != me && st.st_uid != 0 {
        return refuse(format!(
            "it belongs to uid {} (you are uid {me}); use a directory of yours",
            st.st_uid
        ));
    }
    if st.st_mode & 0o022 != 0 {
        return refuse(format!(
            "its mode is {:04o}: group or others can write to it and replace endpoints; \
             run `chmod go-w {object}`",
            st.st_mode & 0o7777
        ));
    }
    Ok(())
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}
