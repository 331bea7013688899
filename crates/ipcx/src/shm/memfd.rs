//! Anonymous shared memory (`memfd_create`), sealed and handed to another process.
//!
//! A memfd has no name in any namespace: it exists while a descriptor or a mapping of it
//! exists, so nothing can be left behind. The creator passes the descriptor over a Unix
//! socket ([`UnixSocketExt::send_fds`](crate::unix::UnixSocketExt::send_fds)); the
//! receiver adopts it with [`Memfd::from_peer`], which checks the seals and the size
//! before anything is mapped.
//!
//! **Seals** are what make a memfd safe to share with a process you do not trust. Once
//! [`Seals::SHRINK`] is set, no one can truncate the file, so a mapping can never raise
//! `SIGBUS` (reliability item 11); with [`Seals::WRITE`] (or [`Seals::FUTURE_WRITE`]) the
//! contents are frozen, so the receiver may validate them once and rely on them.
//! [`Memfd::from_peer`] therefore always requires `SHRINK`.
//!
//! ```
//! use ipcx::shm::memfd::{Memfd, Seals};
//!
//! let memfd = Memfd::create("frame", 4096)?;
//! memfd.map()?.write(0, b"pixels")?;
//! memfd.seal(Seals::SHRINK | Seals::GROW | Seals::WRITE)?;
//!
//! // The receiving side, after recv_fds: checks before it maps.
//! let fd = memfd.into_fd(); // stands in for the descriptor received
//! let frame = Memfd::from_peer(fd, Seals::WRITE, 4096)?;
//! let region = frame.map_read_only()?;
//! let mut buf = [0u8; 6];
//! region.read(0, &mut buf)?;
//! assert_eq!(&buf, b"pixels");
//! # Ok::<(), ipcx::Error>(())
//! ```
//!
//! # References
//! - [memfd_create(2)](https://man7.org/linux/man-pages/man2/memfd_create.2.html)
//! - [fcntl(2), File Sealing](https://man7.org/linux/man-pages/man2/fcntl.2.html)

use std::fmt;
use std::ops::BitOr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{FileType, MemfdFlags, SealFlags};
use rustix::io::Errno;

use crate::error::{Context, Error, ErrorKind, Result};
use crate::shm::Region;

/// The longest name `memfd_create` accepts (249 bytes; the kernel prefixes `memfd:`).
pub const MEMFD_NAME_MAX: usize = 249;

/// A set of memfd seals (`F_SEAL_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Seals(u32);

impl Seals {
    /// No seals.
    pub const NONE: Seals = Seals(0);
    /// No further seals may be added (`F_SEAL_SEAL`).
    pub const SEAL: Seals = Seals(SealFlags::SEAL.bits());
    /// The file may not shrink (`F_SEAL_SHRINK`): mappings cannot fault with `SIGBUS`.
    pub const SHRINK: Seals = Seals(SealFlags::SHRINK.bits());
    /// The file may not grow (`F_SEAL_GROW`).
    pub const GROW: Seals = Seals(SealFlags::GROW.bits());
    /// The contents may not change (`F_SEAL_WRITE`); refused while a writable shared
    /// mapping exists.
    pub const WRITE: Seals = Seals(SealFlags::WRITE.bits());
    /// No new writable mapping or write may be made, but mappings that exist stay
    /// writable (`F_SEAL_FUTURE_WRITE`, Linux 5.1): the creator keeps writing, receivers
    /// only read.
    pub const FUTURE_WRITE: Seals = Seals(SealFlags::FUTURE_WRITE.bits());

    /// Whether every seal in `other` is in `self`.
    pub fn contains(self, other: Seals) -> bool {
        self.0 & other.0 == other.0
    }

    fn flags(self) -> SealFlags {
        SealFlags::from_bits_retain(self.0)
    }
}

impl BitOr for Seals {
    type Output = Seals;
    fn bitor(self, rhs: Seals) -> Seals {
        Seals(self.0 | rhs.0)
    }
}

impl fmt::Display for Seals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Seals::SEAL, "SEAL"),
            (Seals::SHRINK, "SHRINK"),
            (Seals::GROW, "GROW"),
            (Seals::WRITE, "WRITE"),
            (Seals::FUTURE_WRITE, "FUTURE_WRITE"),
        ];
        let set: Vec<&str> = names
            .iter()
            .filter(|(s, _)| self.contains(*s))
            .map(|&(_, n)| n)
            .collect();
        if set.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&set.join("|"))
        }
    }
}

/// An anonymous, sealable shared memory file.
#[derive(Debug)]
pub struct Memfd {
    fd: OwnedFd,
    size: usize,
    label: String,
}

impl Memfd {
    /// Creates a memfd of `size` bytes, allocated now (so a full memory cgroup or tmpfs
    /// limit fails here, not with `SIGBUS` later), close-on-exec and sealable. `name`
    /// only labels it in `/proc/<pid>/fd` and in errors.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidName`] if `name` contains NUL or is longer than
    /// [`MEMFD_NAME_MAX`]; [`ErrorKind::InvalidInput`] if `size` is 0;
    /// [`ErrorKind::LimitReached`] if the memory cannot be allocated.
    #[doc(alias = "memfd_create")]
    pub fn create(name: &str, size: usize) -> Result<Memfd> {
        let label = format!("memfd:{name}");
        if name.contains('\0') || name.len() > MEMFD_NAME_MAX {
            return Err(Error::new("memfd_create", ErrorKind::InvalidName)
                .with_object(&label)
                .with_hint(format!(
                    "a memfd name has at most {MEMFD_NAME_MAX} bytes and no NUL"
                )));
        }
        if size == 0 {
            return Err(Error::new("memfd_create", ErrorKind::InvalidInput)
                .with_object(&label)
                .with_hint("a memfd to share needs a non-zero size"));
        }
        let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
            .op_on("memfd_create", &label)?;
        super::posix::allocate(&fd, size, &label, super::posix::Backing::Memory)?;
        Ok(Memfd { fd, size, label })
    }

    /// Adopts a memfd received from another process, after checking it: it must be a
    /// sealable shared memory file carrying [`Seals::SHRINK`] and every seal in
    /// `required`, and be at least `min_size` bytes. The descriptor is closed on error.
    ///
    /// # Errors
    /// [`ErrorKind::Corrupt`] if the descriptor is not a memfd, lacks a seal, or is too
    /// small: the peer broke the contract.
    pub fn from_peer(fd: OwnedFd, required: Seals, min_size: usize) -> Result<Memfd> {
        let label = "memfd from peer".to_string();
        let corrupt = |hint: String| {
            Err(Error::new("check memfd", ErrorKind::Corrupt)
                .with_object(&label)
                .with_hint(hint))
        };
        // Seals first, size second: once SHRINK is seen the size can only grow, so the
        // size read after it is a floor the peer cannot undercut. (Read the other way
        // round, a peer could truncate and then seal between the two reads.)
        let seals = match rustix::fs::fcntl_get_seals(&fd) {
            Ok(s) => Seals(s.bits()),
            Err(Errno::INVAL) => {
                return corrupt("the descriptor is not a memfd: it cannot carry seals".into());
            }
            Err(e) => {
                return Err(Error::from_errno("F_GET_SEALS", e.raw_os_error()).with_object(&label));
            }
        };
        let needed = required | Seals::SHRINK;
        if !seals.contains(needed) {
            return corrupt(format!(
                "the memfd is sealed with {seals}, but {needed} is required; without SHRINK \
                 the peer could truncate it under our mapping"
            ));
        }
        let st = rustix::fs::fstat(&fd).op_on("fstat", &label)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return corrupt("the descriptor is not a memfd (not a regular file)".into());
        }
        let size = st.st_size as usize;
        if size == 0 || size < min_size {
            return corrupt(format!(
                "the memfd has {size} bytes, fewer than the {} expected",
                min_size.max(1)
            ));
        }
        Ok(Memfd { fd, size, label })
    }

    /// Adds `seals` (`F_ADD_SEALS`).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] (`EBUSY`) when sealing [`Seals::WRITE`] while a
    /// writable shared mapping exists: drop the [`Region`] first, or use
    /// [`Seals::FUTURE_WRITE`]; [`ErrorKind::PermissionDenied`] once [`Seals::SEAL`] is
    /// set.
    pub fn seal(&self, seals: Seals) -> Result<()> {
        rustix::fs::fcntl_add_seals(&self.fd, seals.flags()).map_err(|e| {
            let err = Error::from_errno("F_ADD_SEALS", e.raw_os_error()).with_object(&self.label);
            match e {
                Errno::BUSY => err.with_hint(
                    "WRITE cannot be sealed while a writable mapping exists; drop the Region \
                     first, or seal FUTURE_WRITE",
                ),
                Errno::PERM => err.with_hint("the memfd is sealed with SEAL: no more seals"),
                _ => err,
            }
        })
    }

    /// The seals set now (`F_GET_SEALS`).
    pub fn seals(&self) -> Result<Seals> {
        rustix::fs::fcntl_get_seals(&self.fd)
            .map(|s| Seals(s.bits()))
            .op_on("F_GET_SEALS", &self.label)
    }

    /// The size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Maps the memfd read-write, shared.
    ///
    /// # Errors
    /// [`ErrorKind::PermissionDenied`] if it is sealed against writing.
    pub fn map(&self) -> Result<Region> {
        super::posix::map_fd(&self.fd, self.size, false, &self.label)
    }

    /// Maps the memfd read-only.
    pub fn map_read_only(&self) -> Result<Region> {
        super::posix::map_fd(&self.fd, self.size, true, &self.label)
    }

    /// The descriptor, to send to another process.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

impl AsFd for Memfd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
