//! What the three System V IPC families share: keys, permissions and removal by the owner.
//!
//! System V shared memory ([`shm::sysv`](crate::shm::sysv)), semaphore sets
//! ([`sem::sysv`](crate::sem::sysv)) and message queues ([`mq::sysv`](crate::mq::sysv))
//! are found by a numeric [`Key`] and identified, once created, by an id the kernel
//! chooses. They have no file descriptor and outlive every process until removed with
//! `IPC_RMID`, which is why ipcx gives each created object one owner that removes it on
//! drop (unless told to [`keep`](crate::shm::sysv::SysvShm::keep) it).
//!
//! # Keys
//!
//! - [`Key::PRIVATE`] (`IPC_PRIVATE`) always makes a new object that no other process can
//!   find by key; hand the id to a child instead.
//! - [`Key::new`] takes an explicit number the processes agree on.
//! - [`Key::ftok`] derives a key from a file and a project byte, as `ftok(3)` does. Its
//!   key keeps only the low 8 bits of the device number and the low 16 bits of the inode
//!   number, so two different files can give the same key: with many files on one
//!   filesystem a collision is likely, and exclusive creation is the only protection.
//!   Prefer explicit keys agreed in configuration.
//!
//! # References
//! - [sysvipc(7)](https://man7.org/linux/man-pages/man7/sysvipc.7.html)
//! - [ftok(3)](https://man7.org/linux/man-pages/man3/ftok.3.html)

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::error::{Context, Error, ErrorKind, Result};

/// A System V IPC key (`key_t`).
///
/// # Examples
///
/// ```
/// use ipcx::sysv::Key;
///
/// assert_eq!(Key::new(0x1234).to_string(), "key 0x00001234");
/// assert_eq!("0x1234".parse::<Key>().unwrap(), Key::new(0x1234));
/// assert_eq!("4660".parse::<Key>().unwrap(), Key::new(0x1234));
/// assert!(Key::PRIVATE.is_private());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key(i32);

impl Key {
    /// `IPC_PRIVATE`: a new object that cannot be found by key.
    pub const PRIVATE: Key = Key(libc::IPC_PRIVATE);

    /// An explicit key. `Key::new(0)` is [`Key::PRIVATE`].
    pub const fn new(key: i32) -> Key {
        Key(key)
    }

    /// The key `ftok(3)` derives from `path` and `proj_id`: the project byte, then the low
    /// 8 bits of the file's device number and the low 16 bits of its inode number.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] if `proj_id` is 0 (its low 8 bits must not be zero);
    /// the `stat` error if the file cannot be examined.
    pub fn ftok(path: impl AsRef<Path>, proj_id: u8) -> Result<Key> {
        let path = path.as_ref();
        if proj_id == 0 {
            return Err(Error::new("ftok", ErrorKind::InvalidInput)
                .with_object(path.display())
                .with_hint("the project id must be non-zero"));
        }
        let st = rustix::fs::stat(path).op_on("ftok", path.display())?;
        let key = (u32::from(proj_id) << 24)
            | ((st.st_dev as u32 & 0xff) << 16)
            | (st.st_ino as u32 & 0xffff);
        Ok(Key(key as i32))
    }

    /// The raw `key_t`.
    pub const fn raw(self) -> i32 {
        self.0
    }

    /// Whether this is `IPC_PRIVATE`.
    pub const fn is_private(self) -> bool {
        self.0 == libc::IPC_PRIVATE
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_private() {
            f.write_str("IPC_PRIVATE")
        } else {
            write!(f, "key {:#010x}", self.0)
        }
    }
}

impl FromStr for Key {
    type Err = Error;

    /// Parses a decimal number, or a hexadecimal one with a `0x` prefix, as `ipcs` prints
    /// keys. Negative decimal keys are accepted (`key_t` is signed).
    fn from_str(s: &str) -> Result<Key> {
        // Rust's parsers take a leading `+` (and `from_str_radix` a sign after `0x`);
        // a key has one spelling: digits, with a `-` only before a decimal.
        let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            Some(hex) if hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                u32::from_str_radix(hex, 16).map(|k| k as i32).ok()
            }
            Some(_) => None,
            None if s
                .strip_prefix('-')
                .unwrap_or(s)
                .bytes()
                .all(|b| b.is_ascii_digit()) =>
            {
                s.parse::<i32>().ok()
            }
            None => None,
        };
        parsed.map(Key).ok_or_else(|| {
            Error::new("parse key", ErrorKind::InvalidInput)
                .with_object(s)
                .with_hint("a System V key is a 32-bit number: decimal, or hex with 0x")
        })
    }
}

/// The owner and permissions of a System V object (`struct ipc_perm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct IpcPerm {
    /// The key the object was created with.
    pub key: Key,
    /// The owner's user id (changeable with `IPC_SET`).
    pub uid: u32,
    /// The owner's group id.
    pub gid: u32,
    /// The creator's user id (fixed).
    pub cuid: u32,
    /// The creator's group id (fixed).
    pub cgid: u32,
    /// The permission bits (the low 9 bits of `mode`).
    pub mode: u32,
}

impl IpcPerm {
    pub(crate) fn from_raw(p: &libc::ipc_perm) -> IpcPerm {
        IpcPerm {
            key: Key(p.__key),
            uid: p.uid,
            gid: p.gid,
            cuid: p.cuid,
            cgid: p.cgid,
            mode: u32::from(p.mode) & 0o777,
        }
    }
}

/// A System V timestamp (seconds since the epoch, 0 for "never") as a time.
pub(crate) fn ipc_time(secs: libc::time_t) -> Option<std::time::SystemTime> {
    let secs = u64::try_from(secs).ok().filter(|&s| s > 0)?;
    std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(secs))
}

/// The object an error is about: `"shm id 32769 (key 0x00001234)"`.
pub(crate) fn describe(family: &str, id: i32, key: Key) -> String {
    if key.is_private() {
        format!("{family} id {id}")
    } else {
        format!("{family} id {id} ({key})")
    }
}

/// The check `open_or_create` makes of an existing object: it must belong to the caller,
/// otherwise another user planted it and ipcx refuses to reuse it.
pub(crate) fn check_reusable(perm: &IpcPerm, op: &'static str, object: &str) -> Result<()> {
    let me = rustix::process::geteuid().as_raw();
    if perm.uid != me || perm.cuid != me {
        return Err(Error::new(op, ErrorKind::PermissionDenied)
            .with_object(object)
            .with_hint(format!(
                "the existing object belongs to uid {} (created by uid {}), not to this user \
                 (uid {me}); refusing to reuse it",
                perm.uid, perm.cuid
            )));
    }
    Ok(())
}

/// Removes a created System V object on drop, unless kept.
///
/// The kernel encodes a sequence number in each id, but with many objects created and
/// removed the number can come round again: if someone else removed our object and the
/// id now names a new one, removing by id alone would remove theirs. So the owner first
/// checks, with `IPC_STAT`, that the id still names an object with our key created by our
/// user, and removes it only then. (A replacement made in the instant between the check
/// and the removal is the remaining, unavoidable gap: there is no remove-if-same call;
/// and for `IPC_PRIVATE` objects, whose key is 0, a private object of the same user that
/// inherited the id passes the check.)
pub(crate) struct SysvOwner {
    id: i32,
    key: Key,
    creator: u32,
    perm: fn(i32) -> rustix::io::Result<IpcPerm>,
    remove: fn(i32) -> rustix::io::Result<()>,
    keep: bool,
}

impl SysvOwner {
    /// The owner of object `id`, just created with `key`; `perm` reads its `ipc_perm`
    /// and `remove` removes it (`IPC_RMID`).
    pub(crate) fn new(
        id: i32,
        key: Key,
        perm: fn(i32) -> rustix::io::Result<IpcPerm>,
        remove: fn(i32) -> rustix::io::Result<()>,
    ) -> SysvOwner {
        SysvOwner {
            id,
            key,
            creator: rustix::process::geteuid().as_raw(),
            perm,
            remove,
            keep: false,
        }
    }

    pub(crate) fn keep(&mut self) {
        self.keep = true;
    }

    pub(crate) fn is_kept(&self) -> bool {
        self.keep
    }
}

impl fmt::Debug for SysvOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SysvOwner")
            .field("id", &self.id)
            .field("key", &self.key)
            .field("keep", &self.keep)
            .finish()
    }
}

impl Drop for SysvOwner {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        // EIDRM/EINVAL: someone removed it already. Nothing else can be done in drop;
        // an object left behind is found by `ipcx gc`.
        let ours = match (self.perm)(self.id) {
            Ok(perm) => perm.key == self.key && perm.cuid == self.creator,
            // A mode without read permission hides the status even from the owner, who
            // may still remove it: do as the creator asked, as the POSIX owners do when
            // they cannot check.
            Err(rustix::io::Errno::ACCESS) => true,
            Err(_) => false,
        };
        if ours {
            let _ = (self.remove)(self.id);
        }
    }
}

/// The hint for `ENOSPC` from `shmget`/`semget`/`msgget`: which system-wide limit on the
/// number of objects was reached, with its current value.
pub(crate) fn enospc_hint(sysctl: &str, what: &str) -> String {
    let path = format!("/proc/sys/kernel/{sysctl}");
    // Some of these files hold several tab-separated values (kernel/sem holds four).
    let now = crate::error::read_sysctl(&path).map_or_else(
        || "unknown".into(),
        |v| v.split_ascii_whitespace().collect::<Vec<_>>().join(" "),
    );
    format!(
        "the system-wide limit on {what} is reached ({path}, now {now}); remove stale objects \
         (`ipcs`, `ipcx gc`) or raise the limit"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ftok_packs_project_device_and_inode() {
        let st = rustix::fs::stat("/").unwrap();
        let key = Key::ftok("/", b'x').unwrap();
        let k = key.raw() as u32;
        assert_eq!(k >> 24, u32::from(b'x'));
        assert_eq!((k >> 16) & 0xff, st.st_dev as u32 & 0xff);
        assert_eq!(k & 0xffff, st.st_ino as u32 & 0xffff);
        assert_eq!(
            Key::ftok("/", 0).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            Key::ftok("/no/such/file", 1).unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }

    #[test]
    fn keys_parse_and_print_like_ipcs() {
        assert_eq!("0xffffffff".parse::<Key>().unwrap(), Key::new(-1));
        assert_eq!("-1".parse::<Key>().unwrap(), Key::new(-1));
        assert_eq!(Key::new(-1).to_string(), "key 0xffffffff");
        assert!("0x1_0000_0000".parse::<Key>().is_err());
        assert!("twelve".parse::<Key>().is_err());
        assert_eq!(Key::new(0).to_string(), "IPC_PRIVATE");
    }
}
