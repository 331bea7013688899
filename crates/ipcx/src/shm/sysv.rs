//! System V shared memory segments (`shmget`, `shmat`, `shmdt`, `shmctl`).
//!
//! ```
//! use ipcx::shm::sysv::SysvShmOptions;
//! use ipcx::sysv::Key;
//!
//! // A private segment: share its id with a child instead of a key.
//! let shm = SysvShmOptions::new().size(4096).create(Key::PRIVATE)?;
//! let region = shm.attach()?;
//! region.write(0, b"hello")?;
//! assert_eq!(shm.stat()?.attaches, 1);
//! assert_eq!(shm.stat()?.perm.mode, 0o600);
//! // Dropping `shm` removes the segment (IPC_RMID); it goes once the last process
//! // detaches.
//! # Ok::<(), ipcx::Error>(())
//! ```
//!
//! A segment outlives every process until removed. The creator's [`SysvShm`] removes it
//! on drop unless [`kept`](SysvShm::keep); the kernel then frees it when the last
//! attachment goes, so a process still attached keeps working. Openers never remove.
//!
//! # References
//! - [shmget(2)](https://man7.org/linux/man-pages/man2/shmget.2.html),
//!   [shmop(2)](https://man7.org/linux/man-pages/man2/shmop.2.html),
//!   [shmctl(2)](https://man7.org/linux/man-pages/man2/shmctl.2.html)

use std::time::{SystemTime, UNIX_EPOCH};

use rustix::io::Errno;

use crate::error::{Error, ErrorKind, Result, read_sysctl};
use crate::owner::{OpenMode, obtain};
use crate::shm::Region;
use crate::sys::shm as sys;
use crate::sysv::{IpcPerm, Key, SysvOwner, check_reusable, describe, ipc_time};

/// Options for creating or opening a System V shared memory segment.
#[derive(Clone, Debug)]
pub struct SysvShmOptions {
    mode: u32,
    size: usize,
}

impl Default for SysvShmOptions {
    fn default() -> SysvShmOptions {
        SysvShmOptions {
            mode: 0o600,
            size: 0,
        }
    }
}

impl SysvShmOptions {
    /// Default options: mode 0600 and no size (required for creation).
    pub fn new() -> SysvShmOptions {
        SysvShmOptions::default()
    }

    /// The permission bits of a created segment (System V ignores the umask).
    pub fn mode(mut self, mode: u32) -> SysvShmOptions {
        self.mode = mode & 0o777;
        self
    }

    /// The size in bytes: what [`create`](SysvShmOptions::create) makes, and the least
    /// an opened segment must have.
    pub fn size(mut self, size: usize) -> SysvShmOptions {
        self.size = size;
        self
    }

    /// Creates a new segment (`IPC_CREAT | IPC_EXCL`); fails with
    /// [`ErrorKind::AlreadyExists`] if the key is taken. The returned [`SysvShm`] removes
    /// it on drop unless [`kept`](SysvShm::keep).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] if the size is 0 or above `/proc/sys/kernel/shmmax`;
    /// [`ErrorKind::LimitReached`] if `shmmni` segments or `shmall` pages are in use.
    #[doc(alias = "shmget")]
    pub fn create(&self, key: Key) -> Result<SysvShm> {
        self.obtain(key, OpenMode::Create)
    }

    /// Opens the existing segment of `key`. Never removes it.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] if there is none; [`ErrorKind::InvalidInput`] if it is
    /// smaller than [`size`](SysvShmOptions::size).
    pub fn open(&self, key: Key) -> Result<SysvShm> {
        self.obtain(key, OpenMode::Open)
    }

    /// Opens the segment of `key` if it exists and belongs to the caller, else creates
    /// it.
    pub fn open_or_create(&self, key: Key) -> Result<SysvShm> {
        self.obtain(key, OpenMode::OpenOrCreate)
    }

    fn obtain(&self, key: Key, how: OpenMode) -> Result<SysvShm> {
        if how != OpenMode::Open && self.size == 0 {
            return Err(Error::new("shmget", ErrorKind::InvalidInput)
                .with_object(key)
                .with_hint("creating a segment needs a non-zero size()"));
        }
        if how == OpenMode::Open && key.is_private() {
            return Err(Error::new("shmget", ErrorKind::InvalidInput)
                .with_object(key)
                .with_hint("IPC_PRIVATE always creates; open a private segment by id"));
        }
        obtain(
            how,
            || self.create_new(key),
            |mine| self.open_existing(key, mine),
        )
    }

    fn create_new(&self, key: Key) -> Result<SysvShm> {
        let flags = libc::IPC_CREAT | libc::IPC_EXCL | self.mode as i32;
        let id = sys::shmget(key.raw(), self.size, flags).map_err(|e| self.get_error(e, key))?;
        Ok(SysvShm {
            id,
            key,
            owner: Some(SysvOwner::new(
                id,
                key,
                |id| sys::stat(id).map(|ds| IpcPerm::from_raw(&ds.shm_perm)),
                sys::remove,
            )),
        })
    }

    fn open_existing(&self, key: Key, mine: bool) -> Result<SysvShm> {
        // Size 0 matches a segment of any size; the size is checked below with a clear
        // message instead of shmget's bare EINVAL.
        let id = sys::shmget(key.raw(), 0, 0).map_err(|e| self.get_error(e, key))?;
        let shm = SysvShm {
            id,
            key,
            owner: None,
        };
        let st = shm.stat()?;
        if mine {
            check_reusable(&st.perm, "shmget", &shm.label())?;
        }
        if st.size < self.size {
            return Err(Error::new("shmget", ErrorKind::InvalidInput)
                .with_object(shm.label())
                .with_hint(format!(
                    "the segment has {} bytes, fewer than the {} asked for",
                    st.size, self.size
                )));
        }
        Ok(shm)
    }

    fn get_error(&self, e: Errno, key: Key) -> Error {
        let err = Error::from_errno("shmget", e.raw_os_error()).with_object(key);
        match e {
            Errno::EXIST => err.with_hint(
                "a segment with this key exists; open it, or remove it if a crashed run left \
                 it (SysvShm::remove_key, `ipcrm`)",
            ),
            Errno::NOENT => err.with_hint("no segment has this key; create it first"),
            Errno::INVAL => err.with_hint(format!(
                "{} bytes is outside what the kernel allows (/proc/sys/kernel/shmmax, now {}; \
                 minimum 1)",
                self.size,
                read_sysctl("/proc/sys/kernel/shmmax").unwrap_or_else(|| "unknown".into())
            )),
            Errno::NOSPC => err.with_hint(format!(
                "the system-wide limits on segments (/proc/sys/kernel/shmmni, now {}) or on \
                 shared memory pages in all (/proc/sys/kernel/shmall, now {}) are reached; \
                 remove stale segments (`ipcs -m`, `ipcx gc`) or raise the limits",
                read_sysctl("/proc/sys/kernel/shmmni").unwrap_or_else(|| "unknown".into()),
                read_sysctl("/proc/sys/kernel/shmall").unwrap_or_else(|| "unknown".into())
            )),
            Errno::NOMEM => err.with_hint(
                "the kernel could not allocate the segment (memory or memory-cgroup limit); \
                 free memory or ask for less",
            ),
            _ => err,
        }
    }
}

/// What `IPC_STAT` reports about a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShmStat {
    /// Owner, creator and permission bits.
    pub perm: IpcPerm,
    /// The size in bytes.
    pub size: usize,
    /// How many attachments exist now (`shm_nattch`).
    pub attaches: u64,
    /// The pid of the creator.
    pub creator_pid: i32,
    /// The pid of the last process to attach or detach.
    pub last_pid: i32,
    /// When a process last attached (`shm_atime`), if ever.
    pub attach_time: Option<SystemTime>,
    /// When a process last detached (`shm_dtime`), if ever.
    pub detach_time: Option<SystemTime>,
    /// When the segment was created or last changed with `IPC_SET` (`shm_ctime`).
    pub change_time: SystemTime,
}

/// A System V shared memory segment, by id.
#[derive(Debug)]
pub struct SysvShm {
    id: i32,
    key: Key,
    owner: Option<SysvOwner>,
}

impl SysvShm {
    /// The segment with id `id`, as another process created it (for `IPC_PRIVATE`
    /// segments, whose id is passed along instead of a key). Never removes it.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] or [`ErrorKind::NotFound`] if no such segment exists.
    pub fn from_id(id: i32) -> Result<SysvShm> {
        let ds =
            sys::stat(id).map_err(|e| {
                let err = Error::from_errno("shmctl IPC_STAT", e.raw_os_error())
                    .with_object(describe("shm", id, Key::PRIVATE));
                if e == Errno::INVAL || e == Errno::IDRM {
                    err.with_kind(ErrorKind::NotFound)
                        .with_hint("no segment has this id (removed, or never created)")
                } else {
                    err
                }
            })?;
        Ok(SysvShm {
            id,
            key: Key::new(ds.shm_perm.__key),
            owner: None,
        })
    }

    /// Marks the segment of `key` for removal: what to do with one a crashed run left
    /// behind. Attached processes keep it until they detach.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] if no segment has the key; [`ErrorKind::PermissionDenied`]
    /// if the caller is neither its owner nor its creator.
    pub fn remove_key(key: Key) -> Result<()> {
        let shm = SysvShmOptions::new().open(key)?;
        sys::remove(shm.id).map_err(|e| shm.ctl_error("shmctl IPC_RMID", e))
    }

    /// The segment's id.
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The key it was created with.
    pub fn key(&self) -> Key {
        self.key
    }

    fn label(&self) -> String {
        describe("shm", self.id, self.key)
    }

    /// Reads the segment's status (`IPC_STAT`).
    #[doc(alias = "shmctl")]
    pub fn stat(&self) -> Result<ShmStat> {
        let ds = sys::stat(self.id).map_err(|e| self.ctl_error("shmctl IPC_STAT", e))?;
        Ok(ShmStat {
            perm: IpcPerm::from_raw(&ds.shm_perm),
            size: ds.shm_segsz,
            attaches: ds.shm_nattch,
            creator_pid: ds.shm_cpid,
            last_pid: ds.shm_lpid,
            attach_time: ipc_time(ds.shm_atime),
            detach_time: ipc_time(ds.shm_dtime),
            change_time: ipc_time(ds.shm_ctime).unwrap_or(UNIX_EPOCH),
        })
    }

    /// Attaches the whole segment read-write (`shmat`).
    #[doc(alias = "shmat")]
    pub fn attach(&self) -> Result<Region> {
        self.attach_with(false)
    }

    /// Attaches the whole segment read-only (`SHM_RDONLY`).
    pub fn attach_read_only(&self) -> Result<Region> {
        self.attach_with(true)
    }

    fn attach_with(&self, read_only: bool) -> Result<Region> {
        let at = sys::attach(self.id, read_only).map_err(|e| self.ctl_error("shmat", e))?;
        Ok(Region::from_sysv(at, !read_only, self.label()))
    }

    /// Marks the segment for removal (`IPC_RMID`) now. It disappears once the last
    /// process detaches; until then attached processes keep using it.
    pub fn remove(mut self) -> Result<()> {
        if let Some(owner) = &mut self.owner {
            owner.keep();
        }
        sys::remove(self.id).map_err(|e| self.ctl_error("shmctl IPC_RMID", e))
    }

    /// Leaves the segment in place when this handle is dropped.
    pub fn keep(&mut self) {
        if let Some(owner) = &mut self.owner {
            owner.keep();
        }
    }

    /// Whether this handle created the segment and will remove it on drop.
    pub fn is_owner(&self) -> bool {
        self.owner.as_ref().is_some_and(|o| !o.is_kept())
    }

    fn ctl_error(&self, op: &'static str, e: Errno) -> Error {
        let err = Error::from_errno(op, e.raw_os_error()).with_object(self.label());
        match e {
            Errno::IDRM | Errno::INVAL => err
                .with_kind(ErrorKind::Removed)
                .with_hint("the segment was removed"),
            Errno::ACCESS => err.with_hint("the segment's mode does not allow this user"),
            _ => err,
        }
    }
}
