//! Named pipes (FIFOs): a pipe with a path, so unrelated processes can find it.
//!
//! ```no_run
//! use std::io::Write;
//! use std::time::Duration;
//! use ipcx::fifo::Fifo;
//!
//! // Server: create the FIFO (mode 0600, fails if it exists) and read from it.
//! let fifo = Fifo::create("/tmp/jobs.fifo")?;
//! let reader = fifo.open_reader()?;
//!
//! // Client, in another process: wait at most a second for a reader to be there.
//! let mut writer = Fifo::open("/tmp/jobs.fifo")?.open_writer_timeout(Duration::from_secs(1))?;
//! writer.write_all(b"job 1\n")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Two hangs lurk in the raw API and ipcx removes both:
//!
//! - `open(O_WRONLY)` blocks until a reader opens the FIFO, for ever if none comes.
//!   [`Fifo::open_writer_timeout`] gives up after a timeout with [`ErrorKind::TimedOut`]
//!   and [`Fifo::try_open_writer`] at once with [`ErrorKind::PeerGone`].
//! - `open(O_RDONLY)` blocks until a writer opens it. [`Fifo::open_reader`] never blocks;
//!   the first read waits for data instead, and can be bounded with
//!   [`PipeReader::read_timeout`]. A reader sees end of file only after a writer has
//!   come and gone, never merely because no writer has arrived yet.
//!
//! The process that creates the FIFO owns it and removes it on drop (unless
//! [`keep`](Fifo::keep) is called); processes that [`open`](Fifo::open) it never do.
//!
//! # References
//! - [fifo(7)](https://man7.org/linux/man-pages/man7/fifo.7.html),
//!   [mkfifo(3)](https://man7.org/linux/man-pages/man3/mkfifo.3.html)

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, statat};
use rustix::io::Errno;

use crate::error::{Context, Error, ErrorKind, Result};
use crate::name::check_path;
use crate::owner::{OpenMode, PathOwner};
use crate::pipe::{PipeReader, PipeWriter};
use crate::wait::{Deadline, retry_sleeping};

/// Options for creating or opening a FIFO.
///
/// # References
/// - [mkfifo(3)](https://man7.org/linux/man-pages/man3/mkfifo.3.html)
/// - [open(2)](https://man7.org/linux/man-pages/man2/open.2.html)
#[derive(Clone, Debug)]
pub struct FifoOptions {
    mode: u32,
}

impl Default for FifoOptions {
    fn default() -> FifoOptions {
        FifoOptions { mode: 0o600 }
    }
}

impl FifoOptions {
    /// Default options: mode 0600 (owner read and write only).
    pub fn new() -> FifoOptions {
        FifoOptions::default()
    }

    /// The permission bits of a created FIFO, applied exactly (the umask cannot narrow
    /// them, and nothing wider than asked is ever visible). Only the lower 9 bits count.
    pub fn mode(mut self, mode: u32) -> FifoOptions {
        self.mode = mode & 0o777;
        self
    }

    /// Creates a new FIFO at `path`; fails with [`ErrorKind::AlreadyExists`] if anything
    /// is there. The returned [`Fifo`] removes the path on drop.
    #[doc(alias = "mkfifo")]
    pub fn create(&self, path: impl AsRef<Path>) -> Result<Fifo> {
        self.obtain(path.as_ref(), OpenMode::Create)
    }

    /// Opens an existing FIFO, following no symbolic link. Never removes it.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<Fifo> {
        self.obtain(path.as_ref(), OpenMode::Open)
    }

    /// Opens the FIFO at `path` if it exists and belongs to the caller, else creates it.
    /// A FIFO of another user, a symbolic link or any other kind of file is refused.
    pub fn open_or_create(&self, path: impl AsRef<Path>) -> Result<Fifo> {
        self.obtain(path.as_ref(), OpenMode::OpenOrCreate)
    }

    fn obtain(&self, path: &Path, how: OpenMode) -> Result<Fifo> {
        check_path(path)?;
        match how {
            OpenMode::Create => self.make(path),
            OpenMode::Open => {
                check_existing(path, false)?;
                Ok(Fifo {
                    path: path.to_path_buf(),
                    owner: None,
                })
            }
            OpenMode::OpenOrCreate => match self.make(path) {
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    check_existing(path, true)?;
                    Ok(Fifo {
                        path: path.to_path_buf(),
                        owner: None,
                    })
                }
                other => other,
            },
        }
    }

    fn make(&self, path: &Path) -> Result<Fifo> {
        rustix::fs::mkfifoat(CWD, path, Mode::from_raw_mode(self.mode)).map_err(|e| {
            let err = Error::from_errno("mkfifo", e.raw_os_error()).with_object(path.display());
            match e {
                Errno::EXIST => err.with_hint(
                    "something already exists at this path; open it with Fifo::open, \
                     or remove it if it is a stale FIFO of yours",
                ),
                Errno::NOENT => err.with_hint("the parent directory does not exist"),
                _ => err,
            }
        })?;
        let owner = PathOwner::record(path)?;
        // mkfifo applied the umask, which can only have removed bits: set the exact mode.
        owner.set_mode(self.mode)?;
        Ok(Fifo {
            path: path.to_path_buf(),
            owner: Some(owner),
        })
    }
}

/// Refuses anything at `path` but a FIFO (and, if `mine_only`, a FIFO of another user).
fn check_existing(path: &Path, mine_only: bool) -> Result<()> {
    let st = statat(CWD, path, AtFlags::SYMLINK_NOFOLLOW).op_on("stat", path.display())?;
    let ft = FileType::from_raw_mode(st.st_mode);
    if ft == FileType::Symlink {
        return Err(Error::new("open FIFO", ErrorKind::PermissionDenied)
            .with_object(path.display())
            .with_hint("the path is a symbolic link; ipcx does not follow links to FIFOs"));
    }
    if ft != FileType::Fifo {
        let kind = if mine_only {
            ErrorKind::AlreadyExists
        } else {
            ErrorKind::InvalidInput
        };
        return Err(Error::new("open FIFO", kind)
            .with_object(path.display())
            .with_hint(format!("the path exists but is a {ft:?}, not a FIFO")));
    }
    let me = rustix::process::geteuid().as_raw();
    if mine_only && st.st_uid != me {
        return Err(Error::new("open FIFO", ErrorKind::PermissionDenied)
            .with_object(path.display())
            .with_hint(format!(
                "the FIFO belongs to uid {} (you are uid {me}); refusing to reuse an object \
                 another user created",
                st.st_uid
            )));
    }
    Ok(())
}

/// A FIFO on the filesystem, owned (and removed on drop) by its creator.
///
/// # References
/// - [fifo(7)](https://man7.org/linux/man-pages/man7/fifo.7.html)
/// - [mkfifo(3)](https://man7.org/linux/man-pages/man3/mkfifo.3.html)
#[derive(Debug)]
pub struct Fifo {
    path: PathBuf,
    owner: Option<PathOwner>,
}

impl Fifo {
    /// Options for mode and creation.
    pub fn options() -> FifoOptions {
        FifoOptions::new()
    }

    /// Creates a new FIFO with mode 0600; see [`FifoOptions::create`].
    ///
    /// # Errors
    /// [`ErrorKind::InvalidName`] for a bad path (checked before any system call),
    /// [`ErrorKind::AlreadyExists`] if the path exists.
    pub fn create(path: impl AsRef<Path>) -> Result<Fifo> {
        FifoOptions::new().create(path)
    }

    /// Opens an existing FIFO; see [`FifoOptions::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Fifo> {
        FifoOptions::new().open(path)
    }

    /// Opens or creates; see [`FifoOptions::open_or_create`].
    pub fn open_or_create(path: impl AsRef<Path>) -> Result<Fifo> {
        FifoOptions::new().open_or_create(path)
    }

    /// The FIFO's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this handle created the FIFO and will remove it on drop.
    pub fn is_owner(&self) -> bool {
        self.owner.is_some()
    }

    /// Leaves the FIFO on the filesystem when this handle is dropped.
    pub fn keep(mut self) -> PathBuf {
        if let Some(owner) = self.owner.as_mut() {
            owner.keep();
        }
        self.path.clone()
    }

    /// Opens the read end. Never blocks, even with no writer; reads wait for data.
    pub fn open_reader(&self) -> Result<PipeReader> {
        let fd = self.open_end(OFlags::RDONLY, Deadline::Now)?;
        PipeReader::from_parts(fd, self.label(), "open FIFO")
    }

    /// Opens the write end, waiting for ever for a reader to open the FIFO.
    pub fn open_writer(&self) -> Result<PipeWriter> {
        self.writer(Deadline::Never)
    }

    /// Opens the write end, waiting at most `timeout` for a reader.
    ///
    /// # Errors
    /// [`ErrorKind::TimedOut`] if no reader opened the FIFO in time.
    pub fn open_writer_timeout(&self, timeout: Duration) -> Result<PipeWriter> {
        self.writer(Deadline::after(timeout))
    }

    /// Opens the write end only if a reader has the FIFO open now.
    ///
    /// # Errors
    /// [`ErrorKind::PeerGone`] (`ENXIO`) if there is no reader.
    pub fn try_open_writer(&self) -> Result<PipeWriter> {
        self.writer(Deadline::Now)
    }

    fn writer(&self, deadline: Deadline) -> Result<PipeWriter> {
        let fd = self.open_end(OFlags::WRONLY, deadline)?;
        PipeWriter::from_parts(fd, self.label(), "open FIFO")
    }

    fn open_end(&self, access: OFlags, deadline: Deadline) -> Result<std::os::fd::OwnedFd> {
        let flags = access | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NOCTTY;
        let object = self.path.display();
        // Never open anything but a FIFO (opening a device can have effects); the opened
        // descriptor is checked again, since the path can change between the two.
        check_existing(&self.path, false)?;
        // A non-blocking O_WRONLY open fails with ENXIO while no reader is there, and the
        // kernel offers no event for a reader arriving: poll for it with a short backoff.
        retry_sleeping(&[Errno::NXIO], deadline, "open FIFO", &object, || {
            rustix::fs::open(&self.path, flags, Mode::empty())
        })
        .map_err(|e| match e.errno() {
            Some(libc::ENXIO) => e.with_hint("no process has the FIFO open for reading"),
            Some(libc::ELOOP) => e
                .with_kind(ErrorKind::PermissionDenied)
                .with_hint("the path is a symbolic link; ipcx does not follow links to FIFOs"),
            _ if e.kind() == ErrorKind::TimedOut => {
                e.with_hint("no process opened the FIFO for reading in time")
            }
            _ => e,
        })
    }

    fn label(&self) -> Arc<str> {
        Arc::from(self.path.display().to_string())
    }
}
