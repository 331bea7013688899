//! The one error type of ipcx: which operation, on which object, what went wrong, and what
//! to do about it.
//!
//! Every fallible ipcx call returns [`Result`]. An [`Error`] carries
//!
//! - the **operation**, named after the system call or ipcx step (`"mkfifo"`, `"bind"`),
//! - the **object** it acted on, when there is one (a path, a POSIX name, a key),
//! - an [`ErrorKind`] to match on,
//! - the **errno**, when the kernel reported one,
//! - and a **hint** that says what to do, when there is something useful to say.
//!
//! It prints as one sentence, for example
//! `mkfifo "/run/app/jobs": already exists (EEXIST): another process created it; open it
//! with Fifo::open, or remove it if it is stale`, and converts into [`std::io::Error`] with
//! the whole message preserved.

use std::borrow::Cow;
use std::fmt;
use std::io;

/// What went wrong, in categories a caller can act on.
///
/// The list may grow: match with a wildcard arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The object does not exist (`ENOENT`).
    NotFound,
    /// The object exists already, or the address is in use (`EEXIST`, `EADDRINUSE`).
    AlreadyExists,
    /// The caller may not do this to the object (`EACCES`, `EPERM`), or the object belongs
    /// to someone else and ipcx refused to reuse it.
    PermissionDenied,
    /// A non-blocking call could not proceed now (`EAGAIN`).
    WouldBlock,
    /// A call with a timeout ran out of time (`ETIMEDOUT`, or ipcx's own deadline).
    TimedOut,
    /// A message is larger than the transport, the peer's buffer or a configured cap
    /// allows (`EMSGSIZE`, or a truncated receive).
    MessageTooLarge,
    /// The other side is gone: closed its end, exited, or refused the connection
    /// (`EPIPE`, `ECONNRESET`, `ECONNREFUSED`, `ENXIO` on a FIFO).
    PeerGone,
    /// A name or path was rejected before any system call: empty, containing NUL or `/`
    /// where not allowed, `.`/`..`, or too long.
    InvalidName,
    /// An argument was out of range or inconsistent (`EINVAL`).
    InvalidInput,
    /// A system or per-process limit was hit (`EMFILE`, `ENFILE`, `ENOSPC`, `ENOMEM`,
    /// `ENOBUFS`, a sysctl maximum); the hint names the limit and its value.
    LimitReached,
    /// The object was removed while the call was using it (`EIDRM`).
    Removed,
    /// Data from a peer failed validation: a bad length, header, or control message.
    Corrupt,
    /// The kernel or the object does not support the operation (`ENOSYS`, `EOPNOTSUPP`,
    /// `ENOPROTOOPT`, `EAFNOSUPPORT`).
    Unsupported,
    /// Anything else; the errno, when present, says more.
    Other,
}

impl ErrorKind {
    /// The kind ipcx assigns to a kernel error number.
    pub fn from_errno(errno: i32) -> ErrorKind {
        use libc::*;
        match errno {
            ENOENT => ErrorKind::NotFound,
            EEXIST | EADDRINUSE | ENOTEMPTY => ErrorKind::AlreadyExists,
            EACCES | EPERM | EROFS => ErrorKind::PermissionDenied,
            EAGAIN => ErrorKind::WouldBlock,
            ETIMEDOUT => ErrorKind::TimedOut,
            EMSGSIZE | EFBIG => ErrorKind::MessageTooLarge,
            EPIPE | ECONNRESET | ECONNREFUSED | ECONNABORTED | ENXIO | ESRCH => ErrorKind::PeerGone,
            ENAMETOOLONG => ErrorKind::InvalidName,
            EINVAL | EBADF | ENOTSOCK | EISDIR | ENOTDIR | EBUSY | ESPIPE | ENOTCONN
            | EDESTADDRREQ | EISCONN => ErrorKind::InvalidInput,
            EMFILE | ENFILE | ENOSPC | ENOMEM | ENOBUFS | EDQUOT | EMLINK | ETOOMANYREFS => {
                ErrorKind::LimitReached
            }
            EIDRM => ErrorKind::Removed,
            ENOSYS | EOPNOTSUPP | ENOPROTOOPT | EAFNOSUPPORT | EPROTONOSUPPORT
            | ESOCKTNOSUPPORT => ErrorKind::Unsupported,
            _ => ErrorKind::Other,
        }
    }

    /// The matching [`std::io::ErrorKind`], used by the conversion into `std::io::Error`.
    pub fn to_io(self) -> io::ErrorKind {
        match self {
            ErrorKind::NotFound => io::ErrorKind::NotFound,
            ErrorKind::AlreadyExists => io::ErrorKind::AlreadyExists,
            ErrorKind::PermissionDenied => io::ErrorKind::PermissionDenied,
            ErrorKind::WouldBlock => io::ErrorKind::WouldBlock,
            ErrorKind::TimedOut => io::ErrorKind::TimedOut,
            ErrorKind::MessageTooLarge => io::ErrorKind::InvalidData,
            ErrorKind::PeerGone => io::ErrorKind::BrokenPipe,
            ErrorKind::InvalidName | ErrorKind::InvalidInput => io::ErrorKind::InvalidInput,
            ErrorKind::LimitReached => io::ErrorKind::OutOfMemory,
            ErrorKind::Removed => io::ErrorKind::NotFound,
            ErrorKind::Corrupt => io::ErrorKind::InvalidData,
            ErrorKind::Unsupported => io::ErrorKind::Unsupported,
            ErrorKind::Other => io::ErrorKind::Other,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::WouldBlock => "would block",
            ErrorKind::TimedOut => "timed out",
            ErrorKind::MessageTooLarge => "message too large",
            ErrorKind::PeerGone => "peer gone",
            ErrorKind::InvalidName => "invalid name",
            ErrorKind::InvalidInput => "invalid argument",
            ErrorKind::LimitReached => "limit reached",
            ErrorKind::Removed => "removed while in use",
            ErrorKind::Corrupt => "corrupt data from peer",
            ErrorKind::Unsupported => "not supported",
            ErrorKind::Other => "failed",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// An ipcx error: operation, object, kind, errno and hint.
///
/// # Examples
///
/// ```
/// use ipcx::{Error, ErrorKind};
///
/// let e = Error::from_errno("mkfifo", libc::EEXIST)
///     .with_object("/tmp/jobs")
///     .with_hint("open it with Fifo::open instead");
/// assert_eq!(e.kind(), ErrorKind::AlreadyExists);
/// assert_eq!(
///     e.to_string(),
///     "mkfifo \"/tmp/jobs\": already exists (EEXIST): open it with Fifo::open instead"
/// );
/// let io: std::io::Error = e.into();
/// assert_eq!(io.kind(), std::io::ErrorKind::AlreadyExists);
/// ```
///
/// # References
/// - [errno(3)](https://man7.org/linux/man-pages/man3/errno.3.html)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    op: &'static str,
    object: Option<String>,
    kind: ErrorKind,
    errno: Option<i32>,
    hint: Option<Cow<'static, str>>,
}

/// `Result<T, ipcx::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` raised by ipcx itself (no errno) during `op`.
    pub fn new(op: &'static str, kind: ErrorKind) -> Error {
        Error {
            op,
            object: None,
            kind,
            errno: None,
            hint: None,
        }
    }

    /// An error from the kernel: `errno` returned by `op`. The kind is derived from the
    /// errno and a default hint is attached where ipcx knows a useful one.
    pub fn from_errno(op: &'static str, errno: i32) -> Error {
        let mut e = Error {
            op,
            object: None,
            kind: ErrorKind::from_errno(errno),
            errno: Some(errno),
            hint: None,
        };
        e.hint = default_hint(errno).map(Cow::Owned);
        e
    }

    /// An error from a `std::io::Error` returned by `op`.
    pub fn from_io(op: &'static str, err: &io::Error) -> Error {
        match err.raw_os_error() {
            Some(errno) => Error::from_errno(op, errno),
            None => {
                let kind = match err.kind() {
                    io::ErrorKind::TimedOut => ErrorKind::TimedOut,
                    io::ErrorKind::WouldBlock => ErrorKind::WouldBlock,
                    io::ErrorKind::InvalidInput => ErrorKind::InvalidInput,
                    io::ErrorKind::UnexpectedEof => ErrorKind::PeerGone,
                    _ => ErrorKind::Other,
                };
                Error::new(op, kind).with_hint(err.to_string())
            }
        }
    }

    /// Names the object the operation acted on (a path, a POSIX name, an address).
    #[must_use]
    pub fn with_object(mut self, object: impl fmt::Display) -> Error {
        self.object = Some(object.to_string());
        self
    }

    /// Replaces the hint: what the caller can do about the error.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<Cow<'static, str>>) -> Error {
        self.hint = Some(hint.into());
        self
    }

    /// Overrides the kind (for an errno whose meaning depends on the call).
    #[must_use]
    pub fn with_kind(mut self, kind: ErrorKind) -> Error {
        self.kind = kind;
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The operation that failed, such as `"bind"` or `"F_SETPIPE_SZ"`.
    pub fn operation(&self) -> &'static str {
        self.op
    }

    /// The object the operation acted on, if any.
    pub fn object(&self) -> Option<&str> {
        self.object.as_deref()
    }

    /// The kernel error number, if the kernel reported the error.
    pub fn errno(&self) -> Option<i32> {
        self.errno
    }

    /// What to do about it, if ipcx has something useful to say.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.op)?;
        if let Some(object) = &self.object {
            write!(f, " {object:?}")?;
        }
        write!(f, ": {}", self.kind)?;
        if let Some(errno) = self.errno {
            match errno_name(errno) {
                Some(name) => write!(f, " ({name})")?,
                None => write!(f, " (errno {errno})")?,
            }
        }
        if let Some(hint) = &self.hint {
            write!(f, ": {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<Error> for io::Error {
    /// Keeps the whole message (and the `ipcx::Error`, reachable with `get_ref`). The
    /// `io::ErrorKind` is the one std gives the errno (`ConnectionRefused`,
    /// `StorageFull`, …), so code that matches std's kinds keeps working; errors without
    /// an errno use [`ErrorKind::to_io`].
    fn from(e: Error) -> io::Error {
        let kind = match e.errno {
            Some(errno) if e.kind == ErrorKind::from_errno(errno) => {
                io::Error::from_raw_os_error(errno).kind()
            }
            _ => e.kind.to_io(),
        };
        io::Error::new(kind, e)
    }
}

/// Attaches an operation and object to a failed system call.
pub(crate) trait Context<T> {
    /// `op` failed with no particular object.
    fn op(self, op: &'static str) -> Result<T>;
    /// `op` failed on `object`.
    fn op_on(self, op: &'static str, object: impl fmt::Display) -> Result<T>;
}

impl<T> Context<T> for rustix::io::Result<T> {
    fn op(self, op: &'static str) -> Result<T> {
        self.map_err(|e| Error::from_errno(op, e.raw_os_error()))
    }
    fn op_on(self, op: &'static str, object: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error::from_errno(op, e.raw_os_error()).with_object(object))
    }
}

impl<T> Context<T> for io::Result<T> {
    fn op(self, op: &'static str) -> Result<T> {
        self.map_err(|e| Error::from_io(op, &e))
    }
    fn op_on(self, op: &'static str, object: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error::from_io(op, &e).with_object(object))
    }
}

/// The limit hints that apply whatever the call: descriptor and memory exhaustion.
fn default_hint(errno: i32) -> Option<String> {
    match errno {
        libc::EMFILE => {
            let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
            let limit = limit.map_or_else(|| "unlimited".to_string(), |n| n.to_string());
            Some(format!(
                "this process has reached its open-file limit (RLIMIT_NOFILE, now {limit}); \
                 close descriptors or raise it with `ulimit -n`"
            ))
        }
        libc::ENFILE => Some(format!(
            "the system-wide open-file limit is reached (/proc/sys/fs/file-max, now {})",
            read_sysctl("/proc/sys/fs/file-max").unwrap_or_else(|| "unknown".into())
        )),
        libc::EINTR => Some("interrupted by a signal".into()),
        _ => None,
    }
}

/// Reads a `/proc/sys` value as a trimmed string, for hints that name a limit.
pub(crate) fn read_sysctl(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The symbolic name of an errno value, as in the man pages.
pub fn errno_name(errno: i32) -> Option<&'static str> {
    use libc::*;
    Some(match errno {
        EPERM => "EPERM",
        ENOENT => "ENOENT",
        ESRCH => "ESRCH",
        EINTR => "EINTR",
        EIO => "EIO",
        ENXIO => "ENXIO",
        E2BIG => "E2BIG",
        EBADF => "EBADF",
        ECHILD => "ECHILD",
        EAGAIN => "EAGAIN",
        ENOMEM => "ENOMEM",
        EACCES => "EACCES",
        EFAULT => "EFAULT",
        EBUSY => "EBUSY",
        EEXIST => "EEXIST",
        ENOTDIR => "ENOTDIR",
        EISDIR => "EISDIR",
        EINVAL => "EINVAL",
        ENFILE => "ENFILE",
        EMFILE => "EMFILE",
        EFBIG => "EFBIG",
        ENOSPC => "ENOSPC",
        ESPIPE => "ESPIPE",
        EROFS => "EROFS",
        EMLINK => "EMLINK",
        EPIPE => "EPIPE",
        ERANGE => "ERANGE",
        ENAMETOOLONG => "ENAMETOOLONG",
        ENOSYS => "ENOSYS",
        ENOTEMPTY => "ENOTEMPTY",
        ELOOP => "ELOOP",
        ENOMSG => "ENOMSG",
        EIDRM => "EIDRM",
        ENOTSOCK => "ENOTSOCK",
        EMSGSIZE => "EMSGSIZE",
        EPROTOTYPE => "EPROTOTYPE",
        ENOPROTOOPT => "ENOPROTOOPT",
        EPROTONOSUPPORT => "EPROTONOSUPPORT",
        ESOCKTNOSUPPORT => "ESOCKTNOSUPPORT",
        EOPNOTSUPP => "EOPNOTSUPP",
        EAFNOSUPPORT => "EAFNOSUPPORT",
        EADDRINUSE => "EADDRINUSE",
        EADDRNOTAVAIL => "EADDRNOTAVAIL",
        ENETUNREACH => "ENETUNREACH",
        ECONNABORTED => "ECONNABORTED",
        ECONNRESET => "ECONNRESET",
        ENOBUFS => "ENOBUFS",
        EISCONN => "EISCONN",
        ENOTCONN => "ENOTCONN",
        ETIMEDOUT => "ETIMEDOUT",
        ECONNREFUSED => "ECONNREFUSED",
        EHOSTUNREACH => "EHOSTUNREACH",
        EALREADY => "EALREADY",
        EINPROGRESS => "EINPROGRESS",
        EDQUOT => "EDQUOT",
        ETOOMANYREFS => "ETOOMANYREFS",
        ENODATA => "ENODATA",
        EDESTADDRREQ => "EDESTADDRREQ",
        EPROTO => "EPROTO",
        EOVERFLOW => "EOVERFLOW",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_sentence_with_every_part() {
        let e = Error::from_errno("mq_open", libc::EACCES)
            .with_object("/jobs")
            .with_hint("owned by uid 1000 with mode 0600");
        assert_eq!(
            e.to_string(),
            "mq_open \"/jobs\": permission denied (EACCES): owned by uid 1000 with mode 0600"
        );
    }

    #[test]
    fn ipcx_errors_without_errno_omit_it() {
        let e = Error::new("recv", ErrorKind::Corrupt).with_hint("length 9 exceeds cap 8");
        assert_eq!(
            e.to_string(),
            "recv: corrupt data from peer: length 9 exceeds cap 8"
        );
        assert_eq!(e.errno(), None);
    }

    #[test]
    fn unknown_errno_is_printed_by_number() {
        let e = Error::from_errno("x", 4000);
        assert_eq!(e.kind(), ErrorKind::Other);
        assert_eq!(e.to_string(), "x: failed (errno 4000)");
    }

    #[test]
    fn emfile_hint_names_the_limit_and_its_value() {
        let e = Error::from_errno("pipe2", libc::EMFILE);
        assert_eq!(e.kind(), ErrorKind::LimitReached);
        let hint = e.hint().unwrap_or_default();
        assert!(hint.contains("RLIMIT_NOFILE, now "), "{hint}");
    }

    #[test]
    fn io_error_kinds_follow_std_for_kernel_errors() {
        let refused: io::Error = Error::from_errno("connect", libc::ECONNREFUSED).into();
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
        let full: io::Error = Error::from_errno("write", libc::ENOSPC).into();
        assert_eq!(full.kind(), io::ErrorKind::StorageFull);
        // A kind ipcx chose over the errno's own keeps ipcx's mapping.
        let overridden: io::Error = Error::from_errno("bind", libc::ELOOP)
            .with_kind(ErrorKind::PermissionDenied)
            .into();
        assert_eq!(overridden.kind(), io::ErrorKind::PermissionDenied);
        let not_connected = Error::from_errno("send", libc::ENOTCONN);
        assert_eq!(not_connected.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn converts_into_io_error_keeping_the_message() {
        let e = Error::from_errno("write", libc::EPIPE).with_object("pipe");
        let io: io::Error = e.clone().into();
        assert_eq!(io.kind(), io::ErrorKind::BrokenPipe);
        assert_eq!(io.to_string(), e.to_string());
        let inner = io.get_ref().and_then(|i| i.downcast_ref::<Error>());
        assert_eq!(inner, Some(&e));
    }

    #[test]
    fn errno_mapping_covers_the_typed_kinds() {
        for (errno, kind) in [
            (libc::EAGAIN, ErrorKind::WouldBlock),
            (libc::ETIMEDOUT, ErrorKind::TimedOut),
            (libc::EMSGSIZE, ErrorKind::MessageTooLarge),
            (libc::EIDRM, ErrorKind::Removed),
            (libc::EPIPE, ErrorKind::PeerGone),
            (libc::ENFILE, ErrorKind::LimitReached),
            (libc::EEXIST, ErrorKind::AlreadyExists),
        ] {
            assert_eq!(ErrorKind::from_errno(errno), kind, "errno {errno}");
        }
    }
}
