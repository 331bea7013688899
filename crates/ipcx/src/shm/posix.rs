//! POSIX shared memory objects (`shm_open`): named memory any process can map.
//!
//! ```
//! use ipcx::shm::posix::ShmOptions;
//!
//! # let name = format!("/ipcx-doc-shm-{}", std::process::id());
//! // Creator: a new 4 KiB object, mode 0600, its memory allocated now.
//! let shm = ShmOptions::new().size(4096).create(&name)?;
//! shm.map()?.write(0, b"ready")?;
//!
//! // Another process: open it by name, insisting on at least 4 KiB.
//! let other = ShmOptions::new().size(4096).open(&name)?;
//! let mut buf = [0u8; 5];
//! other.map()?.read(0, &mut buf)?;
//! assert_eq!(&buf, b"ready");
//! // Dropping `shm` unlinks the name; `other` never does.
//! # Ok::<(), ipcx::Error>(())
//! ```
//!
//! - **Allocation up front.** [`ShmOptions::create`] allocates the whole size with
//!   `fallocate`, so a full `/dev/shm` fails at creation with [`ErrorKind::LimitReached`]
//!   (and the hint says how much room is left), not later with a `SIGBUS` on first touch.
//! - **Initialisation.** A new object has size 0 until its allocation is complete, and
//!   [`ShmOptions::open`] waits (briefly, or as long as
//!   [`open_timeout`](ShmOptions::open_timeout) says) for a non-zero size. If the creator
//!   died half-way, the opener gets a "not initialised" [`ErrorKind::TimedOut`] error,
//!   never a zero-length object.
//! - **Shrinking peers.** Any process with write access can `ftruncate` the object, and
//!   touching a mapping past the new end raises `SIGBUS`. [`Shm::map`] maps only what is
//!   there and checks it against the size asked for, but cannot stop a later shrink: when
//!   the peer is not trusted, share a sealed [`memfd`](crate::shm::memfd) instead.
//!
//! - **Removal.** The creator unlinks the name on drop only if it still names the object
//!   it created (same device and inode, which its open descriptor keeps from being
//!   reused). The kernel has no unlink-by-descriptor, so a replacement put there in the
//!   instant between that check and the unlink would be removed.
//! - **Planted links.** Objects are opened as `/dev/shm/NAME` with `O_NOFOLLOW` and must be
//!   regular files: a symbolic link or anything else planted at the name is refused with
//!   [`ErrorKind::PermissionDenied`].
//!
//! # References
//! - [shm_open(3)](https://man7.org/linux/man-pages/man3/shm_open.3.html),
//!   [shm_overview(7)](https://man7.org/linux/man-pages/man7/shm_overview.7.html)

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::fs::{AtFlags, CWD, FallocateFlags, FileType, Mode, OFlags, statat};
use rustix::io::Errno;
use rustix::shm;

use crate::error::{Context, Error, ErrorKind, Result};
use crate::name::PosixName;
use crate::owner::{OpenMode, obtain};
use crate::shm::Region;
use crate::wait::{Backoff, Deadline};

/// Where Linux keeps POSIX shared memory objects (a tmpfs).
const SHM_DIR: &str = "/dev/shm";

/// How long [`ShmOptions::open`] waits for a new object's creator to finish allocating it.
pub const DEFAULT_INIT_WAIT: Duration = Duration::from_secs(1);

/// Options for creating or opening a POSIX shared memory object.
///
/// # References
/// - [shm_open(3)](https://man7.org/linux/man-pages/man3/shm_open.3.html)
#[derive(Clone, Debug)]
pub struct ShmOptions {
    mode: u32,
    size: Option<usize>,
    read_only: bool,
}

impl Default for ShmOptions {
    fn default() -> ShmOptions {
        ShmOptions {
            mode: 0o600,
            size: None,
            read_only: false,
        }
    }
}

impl ShmOptions {
    /// Default options: mode 0600, read-write, no size (required for creation).
    pub fn new() -> ShmOptions {
        ShmOptions::default()
    }

    /// The permission bits of a created object, applied exactly whatever the umask.
    pub fn mode(mut self, mode: u32) -> ShmOptions {
        self.mode = mode & 0o777;
        self
    }

    /// The size in bytes: what [`create`](ShmOptions::create) allocates, and the least
    /// an opened object must have.
    pub fn size(mut self, size: usize) -> ShmOptions {
        self.size = Some(size);
        self
    }

    /// Opens the object read-only (`O_RDONLY`); its mappings cannot be written.
    pub fn read_only(mut self, read_only: bool) -> ShmOptions {
        self.read_only = read_only;
        self
    }

    /// Creates a new object of [`size`](ShmOptions::size) bytes, allocated now; fails
    /// with [`ErrorKind::AlreadyExists`] if the name is taken. The returned [`Shm`]
    /// unlinks the name on drop unless [`kept`](Shm::keep).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidName`] for a bad name, [`ErrorKind::InvalidInput`] without a
    /// size or with size 0, [`ErrorKind::LimitReached`] if `/dev/shm` is full.
    #[doc(alias = "shm_open")]
    pub fn create(&self, name: &str) -> Result<Shm> {
        self.obtain(name, OpenMode::Create, DEFAULT_INIT_WAIT)
    }

    /// Opens an existing object, waiting up to [`DEFAULT_INIT_WAIT`] for its creator to
    /// finish allocating it. Never unlinks it.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] if there is none; [`ErrorKind::TimedOut`] ("not
    /// initialised") if it stays empty; [`ErrorKind::InvalidInput`] if it is smaller than
    /// [`size`](ShmOptions::size).
    pub fn open(&self, name: &str) -> Result<Shm> {
        self.obtain(name, OpenMode::Open, DEFAULT_INIT_WAIT)
    }

    /// As [`open`](ShmOptions::open), waiting up to `timeout` for the object to be
    /// initialised (non-empty).
    pub fn open_timeout(&self, name: &str, timeout: Duration) -> Result<Shm> {
        self.obtain(name, OpenMode::Open, timeout)
    }

    /// Opens the object if it exists and belongs to the caller, else creates it.
    ///
    /// # Errors
    /// [`ErrorKind::PermissionDenied`] if an object of that name belongs to another user.
    pub fn open_or_create(&self, name: &str) -> Result<Shm> {
        self.obtain(name, OpenMode::OpenOrCreate, DEFAULT_INIT_WAIT)
    }

    fn obtain(&self, name: &str, how: OpenMode, init_wait: Duration) -> Result<Shm> {
        let name = PosixName::new(name)?;
        if how != OpenMode::Open {
            match self.size {
                Some(size) if size > 0 => {}
                _ => {
                    return Err(Error::new("shm_open", ErrorKind::InvalidInput)
                        .with_object(&name)
                        .with_hint("creating shared memory needs a non-zero size()"));
                }
            }
        }
        obtain(
            how,
            || self.create_new(&name),
            |mine| self.open_existing(&name, init_wait, mine),
        )
    }

    fn create_new(&self, name: &PosixName) -> Result<Shm> {
        let size = self.size.unwrap_or(0);
        // The owner's read and write bits are on from the start, so the creator's own
        // other processes can open the object while it is being set up (they then wait
        // for its size); the exact mode follows with `fchmod`, whatever the umask did.
        let fd = open_in_shm_dir(
            name,
            OFlags::CREATE | OFlags::EXCL | OFlags::RDWR,
            Mode::from_raw_mode(self.mode | 0o600),
        )?;
        // From here on the name is ours: on any failure, remove it again.
        let owner = ShmOwner::record(name, &fd)?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(self.mode)).op_on("fchmod", name)?;
        allocate(&fd, size, name, Backing::ShmDir)?;
        Ok(Shm {
            fd,
            name: name.clone(),
            size,
            read_only: false,
            owner: Some(owner),
        })
    }

    fn open_existing(&self, name: &PosixName, init_wait: Duration, mine: bool) -> Result<Shm> {
        let access = if self.read_only {
            OFlags::RDONLY
        } else {
            OFlags::RDWR
        };
        let fd = open_in_shm_dir(name, access, Mode::empty())?;
        let st = rustix::fs::fstat(&fd).op_on("fstat", name)?;
        if mine {
            let me = rustix::process::geteuid().as_raw();
            if st.st_uid != me {
                return Err(Error::new("shm_open", ErrorKind::PermissionDenied)
                    .with_object(name)
                    .with_hint(format!(
                        "the existing object belongs to uid {}, not to this user (uid {me}); \
                         refusing to reuse it",
                        st.st_uid
                    )));
            }
        }
        let size = wait_initialised(&fd, name, init_wait)?;
        if let Some(want) = self.size {
            if size < want {
                return Err(Error::new("shm_open", ErrorKind::InvalidInput)
                    .with_object(name)
                    .with_hint(format!(
                        "the object has {size} bytes, fewer than the {want} asked for"
                    )));
            }
        }
        Ok(Shm {
            fd,
            name: name.clone(),
            size,
            read_only: self.read_only,
            owner: None,
        })
    }
}

/// `shm_open`, as glibc does it, but never following a symbolic link: the object is
/// opened as `/dev/shm/NAME` with `O_NOFOLLOW` (rustix's `shm::open` follows links), and
/// must be a regular file. `O_NONBLOCK` keeps a FIFO planted at the name from blocking
/// the open; it means nothing for a regular file.
fn open_in_shm_dir(name: &PosixName, flags: OFlags, mode: Mode) -> Result<OwnedFd> {
    let path = format!("{SHM_DIR}{}", name.as_str());
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let fd = rustix::fs::open(path.as_str(), flags, mode).map_err(|e| open_error(e, name))?;
    let st = rustix::fs::fstat(&fd).op_on("fstat", name)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(Error::new("shm_open", ErrorKind::PermissionDenied)
            .with_object(name)
            .with_hint(format!(
                "{path} is not a shared memory object (not a regular file); refusing to use it"
            )));
    }
    Ok(fd)
}

/// The error of `shm_open`, with the hints that apply to it.
fn open_error(e: Errno, name: &PosixName) -> Error {
    let err = Error::from_errno("shm_open", e.raw_os_error()).with_object(name);
    match e {
        Errno::EXIST => err.with_hint(
            "an object of this name exists; open it, or remove it if a crashed run left it \
             (`ipcx rm`, Shm::unlink)",
        ),
        Errno::NOENT => err.with_hint("no shared memory object of this name; create it first"),
        Errno::ACCESS => err.with_hint(owner_hint(name)),
        Errno::LOOP => err
            .with_kind(ErrorKind::PermissionDenied)
            .with_hint(format!(
                "{SHM_DIR}{} is a symbolic link, which a shared memory object never is: someone \
             planted it; refusing to follow it",
                name.as_str()
            )),
        _ => err,
    }
}

/// Who owns the object and with which mode, for `EACCES` hints.
fn owner_hint(name: &PosixName) -> String {
    let path = format!("{SHM_DIR}{}", name.as_str());
    match statat(CWD, path.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => format!(
            "owned by uid {} with mode {:04o}",
            st.st_uid,
            st.st_mode & 0o777
        ),
        Err(_) => "the object's mode does not allow this user".into(),
    }
}

/// Where the memory of an object comes from, for the hint when there is none left.
#[derive(Clone, Copy)]
pub(crate) enum Backing {
    /// A named object in `/dev/shm`, bounded by that tmpfs's size.
    ShmDir,
    /// A memfd, charged to the process's memory cgroup (RAM and swap).
    Memory,
}

/// Allocates `size` bytes of the object now, so a full tmpfs fails here and not with a
/// `SIGBUS` on first touch. tmpfs publishes the new size only once every page is
/// allocated, which is what openers wait for.
pub(crate) fn allocate(
    fd: &OwnedFd,
    size: usize,
    object: &dyn std::fmt::Display,
    backing: Backing,
) -> Result<()> {
    check_file_size_limit("fallocate", size as u64, object)?;
    let len = size as u64;
    match rustix::fs::fallocate(fd, FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        Err(Errno::NOSPC) => {
            let room = match backing {
                Backing::ShmDir => format!("{}; free space there", tmpfs_room()),
                Backing::Memory => "a memfd is charged to this process's memory cgroup (RAM \
                                    and swap), which is exhausted; free memory"
                    .to_string(),
            };
            Err(Error::from_errno("fallocate", libc::ENOSPC)
                .with_object(object)
                .with_hint(format!("{size} bytes do not fit: {room} or ask for less")))
        }
        Err(Errno::FBIG) => Err(Error::from_errno("fallocate", libc::EFBIG)
            .with_object(object)
            .with_kind(ErrorKind::LimitReached)
            .with_hint(format!("{size} bytes is larger than the filesystem allows"))),
        Err(Errno::OPNOTSUPP) => rustix::fs::ftruncate(fd, len).op_on("ftruncate", object),
        Err(e) => Err(Error::from_errno("fallocate", e.raw_os_error()).with_object(object)),
    }
}

/// Refuses, before the call, a file size above `RLIMIT_FSIZE`: growing a file past it
/// raises `SIGXFSZ`, which kills the process unless it is handled.
pub(crate) fn check_file_size_limit(
    op: &'static str,
    size: u64,
    object: &dyn std::fmt::Display,
) -> Result<()> {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Fsize).current;
    match limit {
        Some(limit) if size > limit => Err(Error::new(op, ErrorKind::LimitReached)
            .with_object(object)
            .with_hint(format!(
                "{size} bytes exceed this process's file size limit (RLIMIT_FSIZE, now {limit} \
                 bytes); raise it with `ulimit -f` or ask for less"
            ))),
        _ => Ok(()),
    }
}

/// "/dev/shm has N bytes free of M" for `ENOSPC` hints.
fn tmpfs_room() -> String {
    match rustix::fs::statvfs(SHM_DIR) {
        Ok(st) => format!(
            "{SHM_DIR} has {} bytes free of {}",
            st.f_bavail * st.f_frsize,
            st.f_blocks * st.f_frsize
        ),
        Err(_) => format!("{SHM_DIR} is full"),
    }
}

/// Waits until the object has a non-zero size: its creator has finished allocating it.
fn wait_initialised(fd: &OwnedFd, name: &PosixName, timeout: Duration) -> Result<usize> {
    let deadline = Deadline::after(timeout);
    let mut backoff = Backoff::new();
    loop {
        let size = rustix::fs::fstat(fd).op_on("fstat", name)?.st_size as usize;
        if size > 0 {
            return Ok(size);
        }
        if let Err(e) = backoff.sleep(deadline, "shm_open", name) {
            return Err(e.with_hint(format!(
                "not initialised: the object is still empty after {timeout:?}; its creator \
                 may have died while setting it up — remove it (Shm::unlink) \
                 and create it again"
            )));
        }
    }
}

/// A POSIX shared memory object: its descriptor, and the name if this process created it.
///
/// The descriptor implements [`AsFd`], so it can be passed to another process over a
/// Unix socket (see [`UnixSocketExt`](crate::unix::UnixSocketExt)).
#[derive(Debug)]
pub struct Shm {
    // Dropped first: the owner's check relies on `fd` still pinning the inode.
    owner: Option<ShmOwner>,
    fd: OwnedFd,
    name: PosixName,
    size: usize,
    read_only: bool,
}

impl Shm {
    /// The object's name, in its canonical `/name` form.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The size the object had when it was created or opened.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Maps the whole object, read-write (or read-only if opened so).
    ///
    /// # Errors
    /// [`ErrorKind::Corrupt`] if the object has shrunk below the size seen at open (a
    /// peer truncated it); mapping it would risk `SIGBUS`.
    #[doc(alias = "mmap")]
    pub fn map(&self) -> Result<Region> {
        self.map_with(self.read_only)
    }

    /// Maps the whole object read-only, whatever it was opened for.
    pub fn map_read_only(&self) -> Result<Region> {
        self.map_with(true)
    }

    fn map_with(&self, read_only: bool) -> Result<Region> {
        let now = rustix::fs::fstat(&self.fd)
            .op_on("fstat", &self.name)?
            .st_size as usize;
        if now < self.size {
            return Err(Error::new("mmap", ErrorKind::Corrupt)
                .with_object(&self.name)
                .with_hint(format!(
                    "the object shrank from {} to {now} bytes since it was opened; another \
                     process truncated it",
                    self.size
                )));
        }
        map_fd(&self.fd, self.size, read_only, self.name.as_str())
    }

    /// Leaves the object in place when this `Shm` is dropped (it then lives until
    /// [`Shm::unlink`] or reboot).
    pub fn keep(&mut self) {
        if let Some(owner) = &mut self.owner {
            owner.keep = true;
        }
    }

    /// Whether this process created the object and will unlink it on drop.
    pub fn is_owner(&self) -> bool {
        self.owner.as_ref().is_some_and(|o| !o.keep)
    }

    /// Removes the name of a POSIX shared memory object: what to do with one a crashed
    /// run left behind. Processes that have it open or mapped keep it until they close it.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] if there is no such object.
    #[doc(alias = "shm_unlink")]
    pub fn unlink(name: &str) -> Result<()> {
        let name = PosixName::new(name)?;
        shm::unlink(name.as_str()).op_on("shm_unlink", &name)
    }
}

impl AsFd for Shm {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Maps `len` bytes of `fd` shared, for a [`Region`] labelled `label`.
pub(crate) fn map_fd(fd: &OwnedFd, len: usize, read_only: bool, label: &str) -> Result<Region> {
    use std::os::fd::AsRawFd;
    let mut opts = memmap2::MmapOptions::new();
    opts.len(len);
    let raw = fd.as_raw_fd();
    let map = if read_only {
        opts.map_raw_read_only(raw)
    } else {
        opts.map_raw(raw)
    };
    let map = map.op_on("mmap", label)?;
    Ok(Region::from_mmap(map, !read_only, label.to_string()))
}

/// Unlinks the creator's object on drop, if the name still refers to it.
#[derive(Debug)]
struct ShmOwner {
    name: PosixName,
    dev: u64,
    ino: u64,
    keep: bool,
}

impl ShmOwner {
    /// Records the object just created; if that fails, removes it again so no ownerless
    /// object is left.
    fn record(name: &PosixName, fd: &OwnedFd) -> Result<ShmOwner> {
        match rustix::fs::fstat(fd) {
            Ok(st) => Ok(ShmOwner {
                name: name.clone(),
                dev: st.st_dev,
                ino: st.st_ino,
                keep: false,
            }),
            Err(e) => {
                let _ = shm::unlink(name.as_str());
                Err(Error::from_errno("fstat", e.raw_os_error()).with_object(name))
            }
        }
    }
}

impl Drop for ShmOwner {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        // The descriptor `Shm` holds keeps our inode alive until after this drop, so its
        // number cannot have been given to a replacement: matching it proves the name is
        // still ours.
        let path = format!("{SHM_DIR}{}", self.name.as_str());
        match statat(CWD, path.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if st.st_dev == self.dev && st.st_ino == self.ino => {
                let _ = shm::unlink(self.name.as_str());
            }
            _ => {}
        }
    }
}
