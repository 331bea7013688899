//! System V semaphore sets (`semget`, `semop`, `semctl`): several counters changed
//! atomically, with `SEM_UNDO` so a process that dies gives back what it took.
//!
//! ```
//! use std::time::Duration;
//! use ipcx::sem::sysv::{SemOp, SemSet, SemSetOptions};
//! use ipcx::sysv::Key;
//!
//! // Two semaphores: 0 counts free slots (3), 1 is a mutex (1).
//! let set = SemSetOptions::new().initial_values(&[3, 1]).create(Key::PRIVATE)?;
//! // Take a slot and the mutex in one step, both given back if this process dies.
//! set.op(&[SemOp::acquire(0).undo(), SemOp::acquire(1).undo()])?;
//! assert_eq!(set.get_all()?, [2, 0]);
//! // The mutex is taken: a second attempt would wait.
//! let err = set.op_timeout(&[SemOp::acquire(1)], Duration::from_millis(10)).unwrap_err();
//! assert_eq!(err.kind(), ipcx::ErrorKind::TimedOut);
//! set.op(&[SemOp::release(1).undo()])?;
//! # Ok::<(), ipcx::Error>(())
//! ```
//!
//! # Initialisation without a race
//!
//! `semget` creates a set whose values are 0, and setting them is a second call: a
//! process that opens the set in between sees values nobody chose, and one that opens it
//! after a creator died half-way sees them for ever. ipcx closes the gap the classic way
//! (W. Richard Stevens, *UNIX Network Programming* vol. 2, §11.2), using the time of the
//! last `semop`, `sem_otime`, which the kernel leaves at 0 until the first operation:
//!
//! 1. the creator calls `semget(IPC_CREAT | IPC_EXCL)`, sets every value with `SETALL`,
//!    then applies a `semop` that changes nothing (+1 and −1 on semaphore 0, atomically),
//!    which sets `sem_otime`;
//! 2. an opener waits until `sem_otime` is not 0, polling `IPC_STAT` with a short
//!    backoff, for [`DEFAULT_INIT_WAIT`] with [`SemSet::open`] or for the time given to
//!    [`SemSet::open_timeout`]; if the creator never finishes, the opener fails with
//!    [`ErrorKind::TimedOut`] and a hint that says the set is **not initialised** and how
//!    to remove it.
//!
//! A set made by a program that does not follow this protocol (no `semop` after
//! creation) looks uninitialised; open it with [`SemSetOptions::require_init`]`(false)`.
//!
//! # Ownership
//!
//! The creator's handle removes the set (`IPC_RMID`) when dropped, unless
//! [`keep`](SemSet::keep) is called; handles from `open` and [`SemSet::from_id`] never
//! do. Removal wakes every process blocked on the set with [`ErrorKind::Removed`].
//!
//! # Removed sets and reused ids
//!
//! After a set is removed, every call through a handle on it fails with
//! [`ErrorKind::Removed`], until the kernel gives its id to a new set: an id is reused
//! once the sequence number in it wraps (after tens of thousands of sets in the same
//! slot), or at once if a privileged process writes `/proc/sys/kernel/sem_next_id`. The
//! id is the only name the kernel gives a set, so from then on the old handle reaches the
//! new set, as any C program holding the id would (an owner handle dropped then removes
//! the new set). [`SemSet::get_all`] and
//! [`SemSet::set_all`] notice when the new set's size differs from the handle's and fail
//! with [`ErrorKind::Removed`]; they copy values through a buffer that ends at an
//! inaccessible guard page, so even a set that takes the id during the call makes the
//! kernel fail it (`EFAULT`), never read or write memory outside the buffer.
//!
//! # Limits
//!
//! `/proc/sys/kernel/sem` holds four limits: `SEMMSL` (semaphores per set), `SEMMNS`
//! (semaphores in all sets), `SEMOPM` (operations per `semop` call) and `SEMMNI` (sets).
//! A value may not exceed `SEMVMX` (32767), a kernel constant. Errors that hit a limit
//! name it with its current value.
//!
//! # References
//! - [sysvipc(7)](https://man7.org/linux/man-pages/man7/sysvipc.7.html)
//! - [semget(2)](https://man7.org/linux/man-pages/man2/semget.2.html),
//!   [semop(2)](https://man7.org/linux/man-pages/man2/semop.2.html),
//!   [semctl(2)](https://man7.org/linux/man-pages/man2/semctl.2.html)

use std::time::{Duration, Instant, SystemTime};

use rustix::io::Errno;

use crate::error::{Error, ErrorKind, Result, read_sysctl};
use crate::owner::{OpenMode, obtain};
use crate::sys::sem as sys;
use crate::sysv::{IpcPerm, Key, SysvOwner, check_reusable, describe, enospc_hint, ipc_time};
use crate::wait::{Backoff, Deadline};

/// `SEMVMX`: the largest value a System V semaphore can hold (a kernel constant).
pub const SEMVMX: u16 = 32767;

/// How long [`SemSet::open`] (and [`SemSetOptions::open`] and
/// [`open_or_create`](SemSetOptions::open_or_create)) wait for the creator to finish
/// initialising the set.
pub const DEFAULT_INIT_WAIT: Duration = Duration::from_secs(1);

/// The family name in error messages: `"sem set id 5 (key 0x00001234)"`.
const FAMILY: &str = "sem set";

/// The semaphore limits in `/proc/sys/kernel/sem`.
#[derive(Clone, Copy, Debug)]
struct Limits {
    /// `SEMMSL`: semaphores per set.
    semmsl: u64,
    /// `SEMOPM`: operations per `semop` call.
    semopm: u64,
}

impl Limits {
    /// Reads the limits, or `None` if `/proc/sys/kernel/sem` is unreadable.
    fn read() -> Option<Limits> {
        let text = read_sysctl("/proc/sys/kernel/sem")?;
        let mut fields = text.split_ascii_whitespace().map(|f| f.parse::<u64>().ok());
        let semmsl = fields.next()??;
        let _semmns = fields.next()??;
        let semopm = fields.next()??;
        Some(Limits { semmsl, semopm })
    }
}

/// One operation of a [`SemSet::op`] call: add `delta` to semaphore `index`, or wait
/// for it to be 0.
///
/// A negative delta waits until the value is at least `-delta`, then subtracts it; a
/// positive one adds (and wakes waiters); 0 waits until the value is 0. All the
/// operations of one call are applied together or not at all.
///
/// # Examples
///
/// ```
/// use ipcx::sem::sysv::SemOp;
///
/// let take_two = SemOp::new(0, -2).undo();
/// assert_eq!((take_two.index(), take_two.delta(), take_two.is_undo()), (0, -2, true));
/// assert_eq!(SemOp::acquire(1), SemOp::new(1, -1));
/// ```
///
/// # References
/// - [semop(2)](https://man7.org/linux/man-pages/man2/semop.2.html)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SemOp {
    index: u16,
    delta: i16,
    undo: bool,
}

impl SemOp {
    /// Adds `delta` to semaphore `index` (waiting, if it is negative, until the value is
    /// large enough).
    pub const fn new(index: u16, delta: i16) -> SemOp {
        SemOp {
            index,
            delta,
            undo: false,
        }
    }

    /// Takes one unit of semaphore `index` (−1), waiting while its value is 0.
    pub const fn acquire(index: u16) -> SemOp {
        SemOp::new(index, -1)
    }

    /// Gives back one unit of semaphore `index` (+1).
    pub const fn release(index: u16) -> SemOp {
        SemOp::new(index, 1)
    }

    /// Waits until semaphore `index` is 0 (a delta of 0).
    pub const fn wait_zero(index: u16) -> SemOp {
        SemOp::new(index, 0)
    }

    /// Marks the operation `SEM_UNDO`: when this process exits, however it exits, the
    /// kernel reverses it. Use it on both the take and the give-back, so the two
    /// adjustments cancel out while the process lives.
    #[doc(alias = "SEM_UNDO")]
    pub const fn undo(mut self) -> SemOp {
        self.undo = true;
        self
    }

    /// The semaphore's index in the set.
    pub const fn index(&self) -> u16 {
        self.index
    }

    /// The amount added (negative: taken; 0: wait for zero).
    pub const fn delta(&self) -> i16 {
        self.delta
    }

    /// Whether the operation is reversed when the process exits.
    pub const fn is_undo(&self) -> bool {
        self.undo
    }

    fn to_raw(self, nowait: bool) -> libc::sembuf {
        let mut flags = 0;
        if self.undo {
            flags |= libc::SEM_UNDO;
        }
        if nowait {
            flags |= libc::IPC_NOWAIT;
        }
        libc::sembuf {
            sem_num: self.index,
            sem_op: self.delta,
            sem_flg: flags as libc::c_short,
        }
    }
}

/// The initial values of a created set.
#[derive(Clone, Debug)]
enum Initial {
    /// Every semaphore starts at this value.
    All(u16),
    /// One value per semaphore.
    Each(Vec<u16>),
}

/// Options for creating or opening a System V semaphore set.
///
/// # Examples
///
/// ```
/// use ipcx::sem::sysv::SemSetOptions;
/// use ipcx::sysv::Key;
///
/// let set = SemSetOptions::new().count(4).initial(1).mode(0o640).create(Key::PRIVATE)?;
/// assert_eq!(set.nsems(), 4);
/// assert_eq!(set.get_all()?, [1, 1, 1, 1]);
/// assert_eq!(set.stat()?.perm.mode, 0o640);
/// # Ok::<(), ipcx::Error>(())
/// ```
///
/// # References
/// - [semget(2)](https://man7.org/linux/man-pages/man2/semget.2.html)
#[derive(Clone, Debug)]
pub struct SemSetOptions {
    mode: u32,
    count: Option<usize>,
    initial: Initial,
    require_init: bool,
}

impl Default for SemSetOptions {
    fn default() -> SemSetOptions {
        SemSetOptions {
            mode: 0o600,
            count: None,
            initial: Initial::All(0),
            require_init: true,
        }
    }
}

impl SemSetOptions {
    /// Default options: mode 0600, one semaphore, initial value 0, and openers wait for
    /// the set to be initialised.
    pub fn new() -> SemSetOptions {
        SemSetOptions::default()
    }

    /// The permission bits of a created set (System V has no umask; only the lower 9 bits
    /// count). Openers need read and alter permission.
    pub fn mode(mut self, mode: u32) -> SemSetOptions {
        self.mode = mode & 0o777;
        self
    }

    /// The number of semaphores in a created set (1 if not given). When opening, the
    /// existing set must have at least this many if it is given.
    ///
    /// At most `SEMMSL` (`/proc/sys/kernel/sem`, first field) and 65536; checked when the
    /// set is created.
    pub fn count(mut self, nsems: usize) -> SemSetOptions {
        self.count = Some(nsems);
        self
    }

    /// The value every semaphore of a created set starts with (0 if not given). At most
    /// [`SEMVMX`], checked before the set is created.
    pub fn initial(mut self, value: u16) -> SemSetOptions {
        self.initial = Initial::All(value);
        self
    }

    /// One starting value per semaphore of a created set; sets the count too, unless
    /// [`count`](SemSetOptions::count) gives it (then the two must agree). Each at most
    /// [`SEMVMX`], checked before the set is created.
    pub fn initial_values(mut self, values: &[u16]) -> SemSetOptions {
        self.initial = Initial::Each(values.to_vec());
        self
    }

    /// Whether opening waits for the creator to have initialised the set (`sem_otime`
    /// not 0, see the [module docs](self)). `true` by default; `false` opens sets made by
    /// programs that do not follow the protocol.
    pub fn require_init(mut self, require: bool) -> SemSetOptions {
        self.require_init = require;
        self
    }

    /// Creates a new set (exclusively for an explicit key), sets its values and marks it
    /// initialised. The returned handle removes it on drop.
    ///
    /// # Errors
    /// - [`ErrorKind::AlreadyExists`] if a set has the key (the hint says how to recover
    ///   from a crashed run that left it behind);
    /// - [`ErrorKind::InvalidInput`] for a count of 0, initial values that do not match
    ///   the count, or an initial value above [`SEMVMX`] (all checked before any system
    ///   call, so no set is created);
    /// - [`ErrorKind::LimitReached`] for a count above `SEMMSL`, or when the system has
    ///   no sets or semaphores left (`ENOSPC`: `SEMMNI`, `SEMMNS`); each hint names the
    ///   limit and its value.
    #[doc(alias = "semget")]
    pub fn create(&self, key: Key) -> Result<SemSet> {
        let values = self.values(key)?;
        self.make(key, &values)
    }

    /// Opens the existing set with `key`, waiting at most [`DEFAULT_INIT_WAIT`] for its
    /// creator to finish initialising it. Never removes it.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] if no set has the key, [`ErrorKind::PermissionDenied`] if
    /// this user may not read and alter it, [`ErrorKind::TimedOut`] if it is not
    /// initialised in time, [`ErrorKind::InvalidInput`] if it has fewer semaphores than a
    /// given [`count`](SemSetOptions::count) or the key is [`Key::PRIVATE`].
    #[doc(alias = "semget")]
    pub fn open(&self, key: Key) -> Result<SemSet> {
        self.open_timeout(key, DEFAULT_INIT_WAIT)
    }

    /// Opens the existing set with `key`, waiting at most `timeout` for its creator to
    /// finish initialising it; see [`open`](SemSetOptions::open).
    #[doc(alias = "semget")]
    pub fn open_timeout(&self, key: Key, timeout: Duration) -> Result<SemSet> {
        self.open_existing(key, timeout, false)
    }

    /// Opens the set with `key` if it exists and belongs to the caller's user, else
    /// creates it (then the handle is its owner, see [`SemSet::is_owner`]). With
    /// [`Key::PRIVATE`] it always creates.
    ///
    /// # Errors
    /// As [`create`](SemSetOptions::create) and [`open`](SemSetOptions::open), and
    /// [`ErrorKind::PermissionDenied`] if the existing set belongs to another user: ipcx
    /// does not reuse an object someone else may have planted.
    #[doc(alias = "semget")]
    pub fn open_or_create(&self, key: Key) -> Result<SemSet> {
        let values = self.values(key)?;
        if key.is_private() {
            return self.make(key, &values);
        }
        obtain(
            OpenMode::OpenOrCreate,
            || self.make(key, &values),
            |mine| self.open_existing(key, DEFAULT_INIT_WAIT, mine),
        )
    }

    /// The validated initial values, one per semaphore.
    fn values(&self, key: Key) -> Result<Vec<u16>> {
        let invalid = |why: String| {
            Err(Error::new("semget", ErrorKind::InvalidInput)
                .with_object(key)
                .with_hint(why))
        };
        let count = match (&self.initial, self.count) {
            (Initial::Each(v), Some(n)) if v.len() != n => {
                return invalid(format!(
                    "{} initial values were given for a set of {n} semaphores",
                    v.len()
                ));
            }
            (Initial::Each(v), _) => v.len(),
            (Initial::All(_), n) => n.unwrap_or(1),
        };
        if count == 0 {
            return invalid("a new set needs at least one semaphore".into());
        }
        if let Some(limits) = Limits::read() {
            if count as u64 > limits.semmsl {
                return Err(Error::new("semget", ErrorKind::LimitReached)
                    .with_object(key)
                    .with_hint(semmsl_hint(count, limits.semmsl)));
            }
        }
        if count > usize::from(u16::MAX) + 1 {
            return invalid(format!(
                "{count} semaphores cannot all be addressed: an index is 16 bits"
            ));
        }
        let values = match &self.initial {
            Initial::All(v) => vec![*v; count],
            Initial::Each(v) => v.clone(),
        };
        if let Some((index, value)) = values.iter().enumerate().find(|(_, v)| **v > SEMVMX) {
            let which = match self.initial {
                Initial::All(_) => String::new(),
                Initial::Each(_) => format!(" of semaphore {index}"),
            };
            return invalid(format!(
                "the initial value {value}{which} exceeds SEMVMX ({SEMVMX}), the largest value \
                 a System V semaphore can hold"
            ));
        }
        Ok(values)
    }

    fn make(&self, key: Key, values: &[u16]) -> Result<SemSet> {
        let nsems = values.len();
        // Owner read and alter are needed to initialise the set; a narrower mode is set
        // afterwards. Other users' bits are the requested ones from the start.
        let flags = libc::IPC_CREAT | libc::IPC_EXCL | (self.mode | 0o600) as i32;
        let id = sys::semget(key.raw(), nsems as i32, flags)
            .map_err(|e| semget_error(e, key, Some(nsems)))?;
        // From here on a failure drops `set`, whose owner removes the half-made set.
        let set = SemSet {
            id,
            key,
            nsems,
            owner: Some(SysvOwner::new(
                id,
                key,
                |id| sys::stat(id).map(|ds| IpcPerm::from_raw(&ds.sem_perm)),
                sys::remove,
            )),
        };
        sys::set_all(id, values).map_err(|e| set.error("semctl SETALL", e))?;
        // A semop that changes nothing sets sem_otime: the mark openers wait for. +1 then
        // -1 unless semaphore 0 is already at SEMVMX (then -1 then +1); IPC_NOWAIT, so a
        // process that ignores the protocol and took units meanwhile cannot block it.
        let (first, second) = if values[0] < SEMVMX { (1, -1) } else { (-1, 1) };
        let mut mark = [
            SemOp::new(0, first).to_raw(true),
            SemOp::new(0, second).to_raw(true),
        ];
        sys::semop(id, &mut mark, None).map_err(|e| set.error("semop", e))?;
        if self.mode & 0o600 != 0o600 {
            sys::set_mode(id, self.mode).map_err(|e| set.error("semctl IPC_SET", e))?;
        }
        Ok(set)
    }

    fn open_existing(&self, key: Key, timeout: Duration, mine_only: bool) -> Result<SemSet> {
        if key.is_private() {
            return Err(Error::new("semget", ErrorKind::InvalidInput)
                .with_object(key)
                .with_hint(
                    "a set made with IPC_PRIVATE cannot be found by key; pass its id to the \
                     other process and use SemSet::from_id",
                ));
        }
        // Ask for read and alter permission, so a set this user may not use fails here
        // with EACCES rather than at its first operation.
        let id = sys::semget(key.raw(), 0, 0o600).map_err(|e| semget_error(e, key, None))?;
        let object = describe(FAMILY, id, key);
        let stat_error = |e: Errno| {
            let err = Error::from_errno("semctl IPC_STAT", e.raw_os_error()).with_object(&object);
            if e == Errno::INVAL || e == Errno::IDRM {
                // Removed since semget found it.
                err.with_kind(ErrorKind::NotFound)
                    .with_hint("the set was removed while it was being opened")
            } else {
                err
            }
        };
        let mut ds = sys::stat(id).map_err(stat_error)?;
        if mine_only {
            // Before waiting: another user's set is refused whatever its state.
            check_reusable(&IpcPerm::from_raw(&ds.sem_perm), "semget", &object)?;
        }
        if self.require_init && ds.sem_otime == 0 {
            let deadline = Deadline::after(timeout);
            let mut backoff = Backoff::new();
            while ds.sem_otime == 0 {
                if let Err(e) = backoff.sleep(deadline, "open semaphore set", &object) {
                    return Err(e.with_hint(format!(
                        "not initialised: the set exists but its creator did not finish \
                         initialising it within {timeout:?} (its sem_otime is still 0); the \
                         creator may have died half-way. Remove it (SemSet::remove_key, or \
                         `ipcrm -S {:#x}`) and create it again; or, if its creator does not \
                         mark sets initialised with a semop, open it with require_init(false)",
                        key.raw()
                    )));
                }
                ds = sys::stat(id).map_err(stat_error)?;
            }
        }
        let nsems = ds.sem_nsems as usize;
        if let Some(want) = self.count {
            if nsems < want {
                return Err(Error::new("semget", ErrorKind::InvalidInput)
                    .with_object(&object)
                    .with_hint(format!(
                        "the set has {nsems} semaphores, fewer than the {want} asked for"
                    )));
            }
        }
        Ok(SemSet {
            id,
            key,
            nsems,
            owner: None,
        })
    }
}

/// The error of a failed `semget`, with what to do about it.
fn semget_error(e: Errno, key: Key, creating: Option<usize>) -> Error {
    let err = Error::from_errno("semget", e.raw_os_error()).with_object(key);
    match e {
        Errno::EXIST => err.with_hint(format!(
            "a semaphore set with this key exists, perhaps left by a crashed run: open it \
             with SemSet::open, or remove it (SemSet::remove_key, or `ipcrm -S {:#x}`) if it \
             is a stale set of yours",
            key.raw()
        )),
        Errno::NOENT => err.with_hint("no semaphore set has this key; create it first"),
        Errno::ACCESS => err.with_hint(owner_hint(key, None)),
        Errno::NOSPC => err.with_hint(enospc_hint(
            "sem",
            "semaphore sets (SEMMNI, the 4th field) or on semaphores in all sets (SEMMNS, \
             the 2nd field)",
        )),
        Errno::INVAL => match (creating, Limits::read()) {
            (Some(n), Some(limits)) => err
                .with_kind(ErrorKind::LimitReached)
                .with_hint(semmsl_hint(n, limits.semmsl)),
            _ => err,
        },
        _ => err,
    }
}

fn semmsl_hint(count: usize, semmsl: u64) -> String {
    format!(
        "a set may hold at most SEMMSL semaphores (/proc/sys/kernel/sem, 1st field, now \
         {semmsl}); {count} were asked for"
    )
}

/// "owned by uid 1000 with mode 0600", read from `/proc/sysvipc/sem`, which every user
/// may read. The set is looked up by `id` if known, else by `key`.
fn owner_hint(key: Key, id: Option<i32>) -> String {
    let owner = std::fs::read_to_string("/proc/sysvipc/sem")
        .ok()
        .and_then(|table| {
            table.lines().skip(1).find_map(|line| {
                // key semid perms nsems uid gid cuid cgid otime ctime
                let f: Vec<&str> = line.split_ascii_whitespace().collect();
                let found = match id {
                    Some(id) => f.get(1)?.parse::<i32>().ok()? == id,
                    None => f.first()?.parse::<i32>().ok()? == key.raw(),
                };
                if !found || f.len() < 5 {
                    return None;
                }
                // The kernel prints the permissions in octal.
                let mode = u32::from_str_radix(f[2], 8).ok()?;
                Some(format!(
                    "the set is owned by uid {} with mode {:04o}; ",
                    f[4],
                    mode & 0o777
                ))
            })
        })
        .unwrap_or_default();
    format!("{owner}this user needs read and alter permission to use it")
}

/// A System V semaphore set: an id, the number of semaphores, and whether this handle
/// removes it on drop.
///
/// The handle holds no descriptor; it is `Send`, `Sync`, and cheap. Any process that
/// knows the key or the id can use the set, within its mode.
///
/// # References
/// - [sysvipc(7)](https://man7.org/linux/man-pages/man7/sysvipc.7.html)
/// - [semget(2)](https://man7.org/linux/man-pages/man2/semget.2.html)
#[derive(Debug)]
pub struct SemSet {
    id: i32,
    key: Key,
    nsems: usize,
    owner: Option<SysvOwner>,
}

/// What `IPC_STAT` reports about a set (`struct semid_ds`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SemSetStat {
    /// Owner, creator and permission bits.
    pub perm: IpcPerm,
    /// The number of semaphores in the set.
    pub nsems: usize,
    /// The time of the last `semop`; `None` if there was none (the set is not
    /// initialised, see the [module docs](self)).
    pub otime: Option<SystemTime>,
    /// The time of creation or of the last `IPC_SET`/`SETVAL`/`SETALL`.
    pub ctime: SystemTime,
}

impl SemSet {
    /// Options for mode, count, initial values and creation.
    pub fn options() -> SemSetOptions {
        SemSetOptions::new()
    }

    /// Creates a set of one semaphore with value 0 and mode 0600; see
    /// [`SemSetOptions::create`].
    #[doc(alias = "semget")]
    pub fn create(key: Key) -> Result<SemSet> {
        SemSetOptions::new().create(key)
    }

    /// Opens an existing set; see [`SemSetOptions::open`].
    #[doc(alias = "semget")]
    pub fn open(key: Key) -> Result<SemSet> {
        SemSetOptions::new().open(key)
    }

    /// Opens an existing set, waiting at most `timeout` for it to be initialised; see
    /// [`SemSetOptions::open_timeout`].
    #[doc(alias = "semget")]
    pub fn open_timeout(key: Key, timeout: Duration) -> Result<SemSet> {
        SemSetOptions::new().open_timeout(key, timeout)
    }

    /// Opens or creates; see [`SemSetOptions::open_or_create`].
    #[doc(alias = "semget")]
    pub fn open_or_create(key: Key) -> Result<SemSet> {
        SemSetOptions::new().open_or_create(key)
    }

    /// Uses the set with `id`, such as one created with [`Key::PRIVATE`] by another
    /// process. The handle never removes it, and does not wait for initialisation.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] if no set has the id (it was removed, or never created),
    /// [`ErrorKind::PermissionDenied`] if this user may not read it.
    #[doc(alias = "semctl")]
    pub fn from_id(id: i32) -> Result<SemSet> {
        let ds = match sys::stat(id) {
            Ok(ds) => ds,
            Err(e) => {
                let err = Error::from_errno("semctl IPC_STAT", e.raw_os_error())
                    .with_object(describe(FAMILY, id, Key::PRIVATE));
                return Err(match e {
                    Errno::INVAL | Errno::IDRM => err
                        .with_kind(ErrorKind::NotFound)
                        .with_hint("no set has this id (removed, or never created)"),
                    Errno::ACCESS => err.with_hint(owner_hint(Key::PRIVATE, Some(id))),
                    _ => err,
                });
            }
        };
        Ok(SemSet {
            id,
            key: Key::new(ds.sem_perm.__key),
            nsems: ds.sem_nsems as usize,
            owner: None,
        })
    }

    /// Removes the set with `key`, whoever created it, waking its waiters with
    /// [`ErrorKind::Removed`]. The way to clear a set that a crashed run left behind,
    /// initialised or not.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] if no set has the key, [`ErrorKind::PermissionDenied`]
    /// unless this user created or owns it (or is privileged).
    #[doc(alias = "IPC_RMID")]
    pub fn remove_key(key: Key) -> Result<()> {
        if key.is_private() {
            return Err(Error::new("semget", ErrorKind::InvalidInput)
                .with_object(key)
                .with_hint("IPC_PRIVATE names no set; remove it by its id"));
        }
        let id = sys::semget(key.raw(), 0, 0).map_err(|e| semget_error(e, key, None))?;
        sys::remove(id).map_err(|e| remove_error(e, &describe(FAMILY, id, key)))
    }

    /// The kernel's id of the set, which other processes can pass to
    /// [`SemSet::from_id`].
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The key the set was created with ([`Key::PRIVATE`] for a private set).
    pub fn key(&self) -> Key {
        self.key
    }

    /// The number of semaphores in the set.
    pub fn nsems(&self) -> usize {
        self.nsems
    }

    /// Whether this handle created the set and will remove it on drop.
    pub fn is_owner(&self) -> bool {
        self.owner.as_ref().is_some_and(|o| !o.is_kept())
    }

    /// Leaves the set in place when this handle is dropped; [`is_owner`](SemSet::is_owner)
    /// is `false` from then on.
    pub fn keep(&mut self) {
        if let Some(owner) = self.owner.as_mut() {
            owner.keep();
        }
    }

    /// Removes the set now, whoever created it, waking every process blocked on it with
    /// [`ErrorKind::Removed`].
    ///
    /// # Errors
    /// [`ErrorKind::PermissionDenied`] (`EPERM`) unless this user created or owns the set
    /// (or is privileged); [`ErrorKind::Removed`] if it is already gone.
    ///
    /// # References
    /// - [semctl(2) IPC_RMID](https://man7.org/linux/man-pages/man2/semctl.2.html)
    #[doc(alias = "IPC_RMID")]
    pub fn remove(mut self) -> Result<()> {
        let result = sys::remove(self.id).map_err(|e| remove_error(e, &self.describe()));
        if let Some(owner) = self.owner.as_mut() {
            // Removed now, or failing for a reason a second attempt in drop would share.
            owner.keep();
        }
        result
    }

    /// Applies all of `ops` atomically, waiting as long as it takes until they can all
    /// proceed. A signal does not end the wait (`EINTR` is retried; nothing was applied).
    ///
    /// # Errors
    /// - [`ErrorKind::InvalidInput`] for no operations or an index outside the set
    ///   (checked before the system call);
    /// - [`ErrorKind::Removed`] if the set is removed, before or during the wait;
    /// - [`ErrorKind::LimitReached`] if a value would exceed [`SEMVMX`] (`ERANGE`) or
    ///   there are more operations than `SEMOPM` allows (`E2BIG`);
    /// - [`ErrorKind::PermissionDenied`] if this user may not alter the set.
    ///
    /// # References
    /// - [semop(2)](https://man7.org/linux/man-pages/man2/semop.2.html)
    #[doc(alias = "semop")]
    pub fn op(&self, ops: &[SemOp]) -> Result<()> {
        self.op_until(ops, Deadline::Never)
    }

    /// Applies all of `ops` atomically if they can all proceed now, without waiting.
    ///
    /// # Errors
    /// [`ErrorKind::WouldBlock`] if one of them would have to wait; otherwise as
    /// [`op`](SemSet::op).
    #[doc(alias = "semop", alias = "IPC_NOWAIT")]
    pub fn try_op(&self, ops: &[SemOp]) -> Result<()> {
        self.op_until(ops, Deadline::Now)
    }

    /// Applies all of `ops` atomically, waiting at most `timeout` (on the monotonic
    /// clock) until they can all proceed. A signal does not end the wait: `EINTR` is
    /// retried with the time that remains.
    ///
    /// # Errors
    /// [`ErrorKind::TimedOut`] if they could not proceed in time; otherwise as
    /// [`op`](SemSet::op).
    ///
    /// # References
    /// - [semtimedop(2)](https://man7.org/linux/man-pages/man2/semop.2.html)
    #[doc(alias = "semtimedop")]
    pub fn op_timeout(&self, ops: &[SemOp], timeout: Duration) -> Result<()> {
        self.op_until(ops, Deadline::after(timeout))
    }

    fn op_until(&self, ops: &[SemOp], deadline: Deadline) -> Result<()> {
        let op = match deadline {
            Deadline::At(..) => "semtimedop",
            _ => "semop",
        };
        if ops.is_empty() {
            return Err(Error::new(op, ErrorKind::InvalidInput)
                .with_object(self.describe())
                .with_hint("no operations were given"));
        }
        if let Some(bad) = ops.iter().find(|o| usize::from(o.index) >= self.nsems) {
            return Err(Error::new(op, ErrorKind::InvalidInput)
                .with_object(self.describe())
                .with_hint(format!(
                    "index {} is out of range: the set has {} semaphores",
                    bad.index, self.nsems
                )));
        }
        let nowait = matches!(deadline, Deadline::Now);
        let mut raw: Vec<libc::sembuf> = ops.iter().map(|o| o.to_raw(nowait)).collect();
        loop {
            let timeout = match deadline {
                Deadline::At(at, _) => Some(at.saturating_duration_since(Instant::now())),
                Deadline::Now | Deadline::Never => None,
            };
            match sys::semop(self.id, &mut raw, timeout) {
                Ok(()) => return Ok(()),
                // Interrupted: nothing was applied, so trying again is safe.
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) if !nowait => {
                    // semtimedop's timeout; go round again if the clock says time is left.
                    deadline
                        .remaining(op, &self.describe())
                        .map_err(|e| e.with_hint("the operations could not proceed in time"))?;
                }
                Err(e) => return Err(self.op_error(op, e, ops.len())),
            }
        }
    }

    /// The value of semaphore `index`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for an index outside the set, [`ErrorKind::Removed`]
    /// if the set is gone.
    #[doc(alias = "GETVAL")]
    pub fn get(&self, index: u16) -> Result<u16> {
        self.check_index("semctl GETVAL", index)?;
        let v =
            sys::get(self.id, index, libc::GETVAL).map_err(|e| self.error("semctl GETVAL", e))?;
        Ok(u16::try_from(v).unwrap_or(SEMVMX))
    }

    /// Sets semaphore `index` to `value`, waking processes that can now proceed. Clears
    /// the `SEM_UNDO` adjustments every process holds for it.
    ///
    /// # Errors
    /// [`ErrorKind::LimitReached`] (`ERANGE`) for a value above [`SEMVMX`]; otherwise as
    /// [`get`](SemSet::get).
    #[doc(alias = "SETVAL")]
    pub fn set(&self, index: u16, value: u16) -> Result<()> {
        self.check_index("semctl SETVAL", index)?;
        sys::set_val(self.id, index, i32::from(value)).map_err(|e| {
            let err = self.error("semctl SETVAL", e);
            if e == Errno::RANGE {
                err.with_hint(above_semvmx(index, value))
            } else {
                err
            }
        })
    }

    /// Every value of the set, in index order, read atomically.
    ///
    /// # Errors
    /// [`ErrorKind::Removed`] if the set is gone, including when its id now names another
    /// set of a different size (see the [module docs](self#removed-sets-and-reused-ids)).
    #[doc(alias = "GETALL")]
    pub fn get_all(&self) -> Result<Vec<u16>> {
        let values =
            sys::get_all(self.id, self.nsems).map_err(|e| self.error("semctl GETALL", e))?;
        // A larger set at this id made GETALL fail (EFAULT); a smaller one filled only the
        // first values, which only its size gives away.
        self.check_same_set("semctl GETALL")?;
        Ok(values)
    }

    /// Sets every value of the set at once, in index order.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] unless there is one value per semaphore;
    /// [`ErrorKind::LimitReached`] (`ERANGE`) for a value above [`SEMVMX`];
    /// [`ErrorKind::Removed`] if the set is gone, including when its id now names another
    /// set of a different size (see the [module docs](self#removed-sets-and-reused-ids)).
    #[doc(alias = "SETALL")]
    pub fn set_all(&self, values: &[u16]) -> Result<()> {
        if values.len() != self.nsems {
            return Err(Error::new("semctl SETALL", ErrorKind::InvalidInput)
                .with_object(self.describe())
                .with_hint(format!(
                    "{} values were given for a set of {} semaphores",
                    values.len(),
                    self.nsems
                )));
        }
        // A smaller set at this id would take the first values without complaint; a
        // larger one that takes the id after this check makes SETALL fail (EFAULT).
        self.check_same_set("semctl SETALL")?;
        sys::set_all(self.id, values).map_err(|e| {
            let err = self.error("semctl SETALL", e);
            match values.iter().position(|v| *v > SEMVMX) {
                Some(index) if e == Errno::RANGE => {
                    err.with_hint(above_semvmx(index, values[index]))
                }
                _ => err,
            }
        })
    }

    /// Fails with [`ErrorKind::Removed`] unless the set at this handle's id still has the
    /// handle's number of semaphores.
    fn check_same_set(&self, op: &'static str) -> Result<()> {
        let ds = sys::stat(self.id).map_err(|e| self.error(op, e))?;
        let nsems = ds.sem_nsems as usize;
        if nsems == self.nsems {
            return Ok(());
        }
        Err(Error::new(op, ErrorKind::Removed)
            .with_object(self.describe())
            .with_hint(format!(
                "the set of {} semaphores was removed, and the kernel gave its id to another \
                 set, of {nsems}; this handle's set is gone",
                self.nsems
            )))
    }

    /// How many processes are waiting for semaphore `index` to increase (`GETNCNT`).
    #[doc(alias = "GETNCNT")]
    pub fn waiting_to_take(&self, index: u16) -> Result<usize> {
        self.check_index("semctl GETNCNT", index)?;
        let n =
            sys::get(self.id, index, libc::GETNCNT).map_err(|e| self.error("semctl GETNCNT", e))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// How many processes are waiting for semaphore `index` to be 0 (`GETZCNT`).
    #[doc(alias = "GETZCNT")]
    pub fn waiting_for_zero(&self, index: u16) -> Result<usize> {
        self.check_index("semctl GETZCNT", index)?;
        let n =
            sys::get(self.id, index, libc::GETZCNT).map_err(|e| self.error("semctl GETZCNT", e))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// The set's owner, permissions, size and times (`IPC_STAT`).
    ///
    /// # References
    /// - [semctl(2) IPC_STAT](https://man7.org/linux/man-pages/man2/semctl.2.html)
    #[doc(alias = "IPC_STAT")]
    pub fn stat(&self) -> Result<SemSetStat> {
        let ds = sys::stat(self.id).map_err(|e| self.error("semctl IPC_STAT", e))?;
        Ok(SemSetStat {
            perm: IpcPerm::from_raw(&ds.sem_perm),
            nsems: ds.sem_nsems as usize,
            otime: ipc_time(ds.sem_otime),
            ctime: ipc_time(ds.sem_ctime).unwrap_or(SystemTime::UNIX_EPOCH),
        })
    }

    fn check_index(&self, op: &'static str, index: u16) -> Result<()> {
        if usize::from(index) < self.nsems {
            return Ok(());
        }
        Err(Error::new(op, ErrorKind::InvalidInput)
            .with_object(self.describe())
            .with_hint(format!(
                "index {index} is out of range: the set has {} semaphores",
                self.nsems
            )))
    }

    fn describe(&self) -> String {
        describe(FAMILY, self.id, self.key)
    }

    /// The error of a failed `semctl` or `semop` on this set.
    fn error(&self, op: &'static str, e: Errno) -> Error {
        self.op_error(op, e, 0)
    }

    fn op_error(&self, op: &'static str, e: Errno, nops: usize) -> Error {
        let err = Error::from_errno(op, e.raw_os_error()).with_object(self.describe());
        match e {
            Errno::IDRM => err.with_hint("the set was removed (IPC_RMID) while this call waited"),
            // The arguments were checked, so EINVAL means the id no longer names a set.
            Errno::INVAL => err
                .with_kind(ErrorKind::Removed)
                .with_hint("the set no longer exists: it was removed (IPC_RMID)"),
            Errno::AGAIN => err.with_hint("the operations cannot all proceed now"),
            // SETVAL and SETALL: set and set_all name the value in their own hint.
            Errno::RANGE if op.starts_with("semctl") => {
                err.with_kind(ErrorKind::LimitReached).with_hint(format!(
                    "a value given exceeds SEMVMX ({SEMVMX}), the largest value a System V \
                     semaphore can hold"
                ))
            }
            Errno::RANGE => err.with_kind(ErrorKind::LimitReached).with_hint(format!(
                "a semaphore's value would exceed SEMVMX ({SEMVMX}), the kernel's maximum (or a \
                 SEM_UNDO adjustment would exceed SEMAEM, also {SEMVMX}); take units before \
                 adding more"
            )),
            // GETALL and SETALL copy through a buffer of this set's size that ends at a
            // guard page: the set at this id is larger, so it is another set.
            Errno::FAULT => err.with_kind(ErrorKind::Removed).with_hint(format!(
                "the set of {} semaphores was removed, and the kernel gave its id to a larger \
                 set; this handle's set is gone",
                self.nsems
            )),
            Errno::TOOBIG => {
                let limit =
                    Limits::read().map_or_else(|| "unknown".to_string(), |l| l.semopm.to_string());
                err.with_kind(ErrorKind::LimitReached).with_hint(format!(
                    "one semop call may apply at most SEMOPM operations (/proc/sys/kernel/sem, \
                     3rd field, now {limit}); {nops} were given"
                ))
            }
            Errno::ACCESS => err.with_hint(owner_hint(self.key, Some(self.id))),
            Errno::NOMEM => err.with_hint("the kernel has no memory for the SEM_UNDO record"),
            _ => err,
        }
    }
}

/// The hint for `ERANGE` from `SETVAL` or `SETALL`: the value given is too large.
fn above_semvmx(index: impl std::fmt::Display, value: u16) -> String {
    format!(
        "the value {value} given for semaphore {index} exceeds SEMVMX ({SEMVMX}), the largest \
         value a System V semaphore can hold"
    )
}

/// The error of a failed `IPC_RMID`.
fn remove_error(e: Errno, object: &str) -> Error {
    let err = Error::from_errno("semctl IPC_RMID", e.raw_os_error()).with_object(object);
    match e {
        Errno::PERM => {
            err.with_hint("only the set's creator, its owner or a privileged process may remove it")
        }
        Errno::INVAL | Errno::IDRM => err
            .with_kind(ErrorKind::Removed)
            .with_hint("the set was already removed"),
        _ => err,
    }
}
