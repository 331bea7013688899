//! Name and path validation shared by every named IPC object.
//!
//! Names are checked before any system call, so a bad name is always an
//! [`ErrorKind::InvalidName`] that says what is wrong, never an `EINVAL`, an `ENOENT` or,
//! worse, an object created somewhere unexpected.
//!
//! Two families of names exist on Linux:
//!
//! - **POSIX names** (`shm_open`, `mq_open`, `sem_open`): one path component, written
//!   `/name` or `name`, at most 255 bytes, no NUL, no `/` after the leading one, not `.`
//!   or `..`. See [`PosixName`].
//! - **Filesystem paths** (FIFOs, Unix socket files): any path, but no NUL, no component
//!   longer than 255 bytes, at most 4095 bytes in all, not ending in `.` or `..`, and,
//!   for socket paths, at most 107 bytes (the size of `sun_path` less its NUL). See
//!   [`check_path`] and [`check_socket_path`].

use std::ffi::{CString, OsStr};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::error::{Error, ErrorKind, Result};

/// The longest file name Linux accepts in one path component (`NAME_MAX`).
pub const NAME_MAX: usize = 255;
/// The longest path Linux accepts, less the terminating NUL (`PATH_MAX - 1`).
pub const PATH_MAX: usize = 4095;
/// The longest Unix socket path, less the terminating NUL (`sizeof(sun_path) - 1`).
pub const SOCKET_PATH_MAX: usize = 107;

/// A validated POSIX IPC name, stored in its canonical `/name` form.
///
/// # Examples
///
/// ```
/// use ipcx::name::PosixName;
///
/// assert_eq!(PosixName::new("jobs").unwrap().as_str(), "/jobs");
/// assert_eq!(PosixName::new("/jobs").unwrap().as_str(), "/jobs");
/// for bad in ["", "/", "a/b", "..", "/.", "nul\0byte"] {
///     assert_eq!(PosixName::new(bad).unwrap_err().kind(), ipcx::ErrorKind::InvalidName);
/// }
/// ```
///
/// # References
/// - [shm_overview(7)](https://man7.org/linux/man-pages/man7/shm_overview.7.html)
/// - [mq_overview(7)](https://man7.org/linux/man-pages/man7/mq_overview.7.html)
/// - [sem_overview(7)](https://man7.org/linux/man-pages/man7/sem_overview.7.html)
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PosixName {
    canonical: String,
}

impl PosixName {
    /// Validates `name` with the general limit of [`NAME_MAX`] bytes.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidName`] if the name is empty, contains NUL or an interior `/`,
    /// is `.` or `..`, or is longer than the limit.
    pub fn new(name: &str) -> Result<PosixName> {
        PosixName::with_limit(name, NAME_MAX)
    }

    /// Validates `name` against a mechanism-specific length limit (semaphores, whose
    /// names the C library prefixes with `sem.`, allow 251 bytes).
    pub fn with_limit(name: &str, max_len: usize) -> Result<PosixName> {
        let invalid = |why: String| {
            Err(Error::new("validate name", ErrorKind::InvalidName)
                .with_object(name)
                .with_hint(why))
        };
        let bare = name.strip_prefix('/').unwrap_or(name);
        if bare.is_empty() {
            return invalid("a POSIX IPC name needs at least one character after '/'".into());
        }
        if bare.contains('\0') {
            return invalid("a name may not contain a NUL byte".into());
        }
        if bare.contains('/') {
            return invalid("a POSIX IPC name is one component: no '/' after the first".into());
        }
        if bare == "." || bare == ".." {
            return invalid("'.' and '..' are not names".into());
        }
        if bare.len() > max_len {
            return invalid(format!(
                "the name is {} bytes; the limit is {max_len} bytes",
                bare.len()
            ));
        }
        Ok(PosixName {
            canonical: format!("/{bare}"),
        })
    }

    /// The canonical form, with one leading `/`.
    pub fn as_str(&self) -> &str {
        &self.canonical
    }

    /// The canonical form as a C string, for the system call.
    pub fn to_cstring(&self) -> CString {
        // Validation rejected every NUL, so this conversion cannot fail; fall back to an
        // empty name (which every call rejects) rather than panic if that ever changes.
        CString::new(self.canonical.as_bytes()).unwrap_or_default()
    }
}

impl fmt::Display for PosixName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

/// Checks a filesystem path for a named object (a FIFO, a socket file).
///
/// # Errors
/// [`ErrorKind::InvalidName`] if the path is empty, contains NUL, has a component longer
/// than [`NAME_MAX`], is longer than [`PATH_MAX`], or ends in `.`, `..` or `/` (which
/// name a directory, never a new object).
pub fn check_path(path: &Path) -> Result<()> {
    check_path_limit(path, PATH_MAX)
}

/// Checks a Unix domain socket path: as [`check_path`], and at most
/// [`SOCKET_PATH_MAX`] bytes, the size of `sockaddr_un.sun_path`.
///
/// # References
/// - [unix(7)](https://man7.org/linux/man-pages/man7/unix.7.html)
pub fn check_socket_path(path: &Path) -> Result<()> {
    check_path_limit(path, SOCKET_PATH_MAX)
}

fn check_path_limit(path: &Path, max_len: usize) -> Result<()> {
    let invalid = |why: String| {
        Err(Error::new("validate path", ErrorKind::InvalidName)
            .with_object(path.display())
            .with_hint(why))
    };
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() {
        return invalid("the path is empty".into());
    }
    if bytes.contains(&0) {
        return invalid("a path may not contain a NUL byte".into());
    }
    if bytes.len() > max_len {
        return invalid(format!(
            "the path is {} bytes; the limit is {max_len} bytes",
            bytes.len()
        ));
    }
    if let Some(long) = bytes.split(|&b| b == b'/').find(|c| c.len() > NAME_MAX) {
        return invalid(format!(
            "the component {:?} is {} bytes; the limit is {NAME_MAX} bytes",
            OsStr::from_bytes(long),
            long.len()
        ));
    }
    let last = bytes.rsplit(|&b| b == b'/').next().unwrap_or_default();
    if last.is_empty() || last == b"." || last == b".." {
        return invalid("the path names a directory, not a new object".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posix_names_are_canonicalised_and_checked() {
        assert_eq!(
            PosixName::new("a").map(|n| n.to_string()),
            Ok("/a".to_string())
        );
        assert!(PosixName::new(&"x".repeat(255)).is_ok());
        let err = PosixName::new(&"x".repeat(256)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidName);
        assert!(
            err.to_string().contains("256 bytes; the limit is 255"),
            "{err}"
        );
        assert!(PosixName::with_limit(&"x".repeat(252), 251).is_err());
        for bad in ["", "/", "//", "a/b", "/a/b", ".", "..", "/..", "a\0b"] {
            assert_eq!(
                PosixName::new(bad).unwrap_err().kind(),
                ErrorKind::InvalidName,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn paths_are_checked() {
        assert!(check_path(Path::new("/tmp/x")).is_ok());
        assert!(check_path(Path::new("rel/x")).is_ok());
        for bad in ["", "/tmp/..", "/tmp/.", "/tmp/x/", "..", "a\0b"] {
            let err = check_path(Path::new(bad)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidName, "{bad:?}");
        }
        let long_component = format!("/tmp/{}", "c".repeat(256));
        assert!(check_path(Path::new(&long_component)).is_err());
        let long_socket = format!("/tmp/{}", "s".repeat(103));
        assert!(check_path(Path::new(&long_socket)).is_ok());
        let err = check_socket_path(Path::new(&long_socket)).unwrap_err();
        assert!(
            err.to_string().contains("108 bytes; the limit is 107"),
            "{err}"
        );
    }
}
