//! POSIX named semaphores (`sem_open`): a counter shared by name between processes.
//!
//! ```
//! use std::time::Duration;
//! use ipcx::sem::posix::{NamedSemaphore, SemOptions};
//!
//! # let name = format!("/ipcx-doc-posix-{}", std::process::id());
//! // One process creates the semaphore (mode 0600, fails if the name is taken)...
//! let sem = SemOptions::new().initial(1).create(&name)?;
//! // ...another opens it by name.
//! let other = NamedSemaphore::open(&name)?;
//! other.wait_timeout(Duration::from_secs(1))?; // takes the one unit
//! assert_eq!(sem.try_wait().unwrap_err().kind(), ipcx::ErrorKind::WouldBlock);
//! other.post()?;
//! assert_eq!(sem.value()?, 1);
//! drop(other); // an opener never removes the name
//! drop(sem); // the creator does
//! assert_eq!(NamedSemaphore::open(&name).unwrap_err().kind(), ipcx::ErrorKind::NotFound);
//! # Ok::<(), ipcx::Error>(())
//! ```
//!
//! # What ipcx adds to `sem_open`
//!
//! - **Exact permissions.** `sem_open` applies the umask to the mode it is given. ipcx
//!   then sets the exact mode on the file the C library created (`/dev/shm/sem.NAME`),
//!   through a descriptor opened with `O_PATH | O_NOFOLLOW` on that very file, so the
//!   default 0600 is never widened by a permissive umask nor an explicit mode narrowed by
//!   a strict one. The mode is at most narrower than asked in the moment between the two
//!   calls, never wider.
//! - **Ownership.** The creator unlinks the name when its handle is dropped (unless
//!   [`keep`](NamedSemaphore::keep) is called), and only if the name still refers to the
//!   semaphore it created: it records the device and inode of the file right after
//!   creation (checking them against its own mapping of the semaphore) and compares them
//!   again, with a `stat` of the name, before unlinking. The mapping keeps the inode
//!   alive, so its number cannot be given to a newer file meanwhile. A semaphore that
//!   another process unlinked and replaced before that `stat` is left alone; one
//!   replaced in the instant between the `stat` and the `sem_unlink` would still be
//!   removed, because the kernel has no unlink-by-descriptor. Openers never unlink.
//! - **No foreign objects.** [`SemOptions::open_or_create`] refuses a semaphore that
//!   another user created, as every ipcx `open_or_create` does.
//! - **Timeouts on the monotonic clock.** See [`NamedSemaphore::wait_timeout`].
//!
//! A POSIX semaphore has no undo: if a process dies after [`wait`](NamedSemaphore::wait)
//! and before [`post`](NamedSemaphore::post), the unit it took is lost. When that matters,
//! use a System V set with `SEM_UNDO` ([`crate::sem::sysv`]).
//!
//! # Trust
//!
//! A POSIX semaphore, named or [unnamed](crate::sem::unnamed), is a `sem_t` in memory
//! that every process using it maps and writes: the C library keeps its whole state
//! there, and nothing checks it. A process that can write that memory (for a named
//! semaphore, any process allowed to open `/dev/shm/sem.NAME` for writing) can set the
//! count at will, and with glibc it can crash every process that waits on or posts the
//! semaphore: glibc takes the flags of its `futex` calls from a word of the `sem_t`, and
//! when a bad value there makes `futex` fail in a way glibc deems impossible, it aborts
//! the process ("The futex facility returned an unexpected error code"). Memory safety
//! holds (the abort is a crash, not undefined behaviour), but POSIX semaphores are for
//! cooperating processes. With peers you do not trust, use a System V set
//! ([`crate::sem::sysv`]), whose state the kernel holds and checks.
//!
//! # Names
//!
//! A name is one component, `/name` or `name`, checked before any system call. The C
//! library stores the semaphore as `/dev/shm/sem.name`, so a name may have at most
//! [`NAME_MAX`] (251) bytes: the 255 of a file name less the `sem.` prefix.
//!
//! # References
//! - [sem_overview(7)](https://man7.org/linux/man-pages/man7/sem_overview.7.html)
//! - [sem_open(3)](https://man7.org/linux/man-pages/man3/sem_open.3.html),
//!   [sem_unlink(3)](https://man7.org/linux/man-pages/man3/sem_unlink.3.html)

use std::fmt::Display;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use rustix::fs::{AtFlags, CWD, Mode, OFlags, statat};
use rustix::io::Errno;
use rustix::time::{ClockId, Timespec};

use crate::error::{Context, Error, ErrorKind, Result};
use crate::name::PosixName;
use crate::owner::{OpenMode, obtain};
use crate::sys::sem::{self as sys, LiveSem, NamedSem};
use crate::wait::Deadline;

/// The longest semaphore name, in bytes without the leading `/`: 255 less the `sem.`
/// prefix the C library adds to make the file name in `/dev/shm`.
pub const NAME_MAX: usize = 251;

/// Where the C library keeps named semaphores (glibc and musl alike).
const SHM_DIR: &str = "/dev/shm";

/// `SEM_VALUE_MAX`: the largest value a POSIX semaphore can hold (2147483647 on Linux).
pub fn value_max() -> u32 {
    sys::sem_value_max()
}

/// Options for creating or opening a named semaphore.
///
/// # Examples
///
/// ```
/// use ipcx::sem::posix::SemOptions;
///
/// # let name = format!("/ipcx-doc-opts-{}", std::process::id());
/// let sem = SemOptions::new().mode(0o640).initial(3).create(&name)?;
/// assert_eq!(sem.value()?, 3);
/// # Ok::<(), ipcx::Error>(())
/// ```
///
/// # References
/// - [sem_open(3)](https://man7.org/linux/man-pages/man3/sem_open.3.html)
#[derive(Clone, Debug)]
pub struct SemOptions {
    mode: u32,
    initial: u32,
}

impl Default for SemOptions {
    fn default() -> SemOptions {
        SemOptions {
            mode: 0o600,
            initial: 0,
        }
    }
}

impl SemOptions {
    /// Default options: mode 0600 (owner read and write only), initial value 0.
    pub fn new() -> SemOptions {
        SemOptions::default()
    }

    /// The permission bits of a created semaphore, applied exactly whatever the umask.
    /// Only the lower 9 bits count. A process needs read and write permission to open it.
    pub fn mode(mut self, mode: u32) -> SemOptions {
        self.mode = mode & 0o777;
        self
    }

    /// The value of a created semaphore (ignored when an existing one is opened). At most
    /// [`value_max`] (`SEM_VALUE_MAX`), checked when creating.
    pub fn initial(mut self, value: u32) -> SemOptions {
        self.initial = value;
        self
    }

    /// Creates a new named semaphore; fails with [`ErrorKind::AlreadyExists`] if the name
    /// is taken. The returned handle unlinks the name on drop.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidName`] for a bad name (checked before any system call),
    /// [`ErrorKind::InvalidInput`] for an initial value above `SEM_VALUE_MAX`,
    /// [`ErrorKind::AlreadyExists`] if the name is taken (the hint says how to recover
    /// from a crashed run that left it behind).
    #[doc(alias = "sem_open")]
    pub fn create(&self, name: &str) -> Result<NamedSemaphore> {
        let name = PosixName::with_limit(name, NAME_MAX)?;
        self.check_initial(&name)?;
        self.make(name)
    }

    /// Opens an existing named semaphore. Never unlinks it.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] if there is none, [`ErrorKind::PermissionDenied`] if its
    /// mode does not let this user read and write it.
    #[doc(alias = "sem_open")]
    pub fn open(&self, name: &str) -> Result<NamedSemaphore> {
        let name = PosixName::with_limit(name, NAME_MAX)?;
        open_existing(name, false)
    }

    /// Opens the named semaphore if it exists and belongs to the caller's user, else
    /// creates it (then the handle is its owner, see [`NamedSemaphore::is_owner`]).
    ///
    /// # Errors
    /// As [`create`](SemOptions::create) and [`open`](SemOptions::open), and
    /// [`ErrorKind::PermissionDenied`] if the existing semaphore was created by another
    /// user: ipcx does not reuse an object someone else may have planted.
    #[doc(alias = "sem_open")]
    pub fn open_or_create(&self, name: &str) -> Result<NamedSemaphore> {
        let name = PosixName::with_limit(name, NAME_MAX)?;
        self.check_initial(&name)?;
        obtain(
            OpenMode::OpenOrCreate,
            || self.make(name.clone()),
            |mine| open_existing(name.clone(), mine),
        )
    }

    fn check_initial(&self, name: &PosixName) -> Result<()> {
        let max = sys::sem_value_max();
        if self.initial > max {
            return Err(Error::new("sem_open", ErrorKind::InvalidInput)
                .with_object(name)
                .with_hint(format!(
                    "the initial value {} exceeds SEM_VALUE_MAX ({max}), the largest value a \
                     POSIX semaphore can hold",
                    self.initial
                )));
        }
        Ok(())
    }

    fn make(&self, name: PosixName) -> Result<NamedSemaphore> {
        let cname = name.to_cstring();
        let sem = NamedSem::open(
            &cname,
            libc::O_CREAT | libc::O_EXCL,
            self.mode,
            self.initial,
        )
        .map_err(|e| open_error(e, &name))?;
        // The semaphore exists now. Find its file, check it is the one just mapped (and
        // not a replacement put there in between), and take ownership of it.
        let path = file_path(&name);
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let pinned = rustix::fs::open(&path, flags, Mode::empty())
            .and_then(|pin| rustix::fs::fstat(&pin).map(|st| (pin, st)));
        let (pin, st) = match pinned {
            Ok(pinned) => pinned,
            Err(e) => {
                // Out of descriptors, say: remove the semaphore just created rather than
                // leave it without an owner (unless someone removed it already).
                if e != Errno::NOENT {
                    let _ = sys::unlink(&cname);
                }
                return Err(Error::from_errno("open", e.raw_os_error()).with_object(&path));
            }
        };
        let mut sem = NamedSemaphore {
            sem,
            name,
            owner: Some(FileId {
                dev: st.st_dev,
                ino: st.st_ino,
            }),
        };
        // From here on a failure drops `sem`, which unlinks the file if it is still the
        // one pinned.
        if Some(mapped_file(sem.sem.addr(), &sem.name)?) != sem.owner {
            sem.owner = None;
            return Err(Error::new("sem_open", ErrorKind::AlreadyExists)
                .with_object(&sem.name)
                .with_hint(format!(
                    "{path} was replaced by another process right after this one created \
                     the semaphore; leaving the replacement alone"
                )));
        }
        // sem_open applied the umask, which can only have removed bits: set the exact
        // mode, through the descriptor on the file itself (a path could be swapped).
        let via_pin = format!("/proc/self/fd/{}", pin.as_raw_fd());
        rustix::fs::chmodat(
            CWD,
            via_pin.as_str(),
            Mode::from_raw_mode(self.mode),
            AtFlags::empty(),
        )
        .op_on("chmod", &path)?;
        Ok(sem)
    }
}

/// Opens an existing semaphore; with `mine_only`, refuses one created by another user.
fn open_existing(name: PosixName, mine_only: bool) -> Result<NamedSemaphore> {
    let sem = NamedSem::open(&name.to_cstring(), 0, 0, 0).map_err(|e| open_error(e, &name))?;
    if mine_only {
        let path = file_path(&name);
        let st = statat(CWD, path.as_str(), AtFlags::SYMLINK_NOFOLLOW).op_on("stat", &path)?;
        let id = FileId {
            dev: st.st_dev,
            ino: st.st_ino,
        };
        if mapped_file(sem.addr(), &name)? != id {
            // Replaced between the open and the stat; the caller tries again.
            return Err(Error::from_errno("sem_open", libc::ENOENT).with_object(&name));
        }
        let me = rustix::process::geteuid().as_raw();
        if st.st_uid != me {
            return Err(Error::new("sem_open", ErrorKind::PermissionDenied)
                .with_object(&name)
                .with_hint(format!(
                    "the semaphore belongs to uid {} (you are uid {me}); refusing to reuse an \
                     object another user created",
                    st.st_uid
                )));
        }
    }
    Ok(NamedSemaphore {
        sem,
        name,
        owner: None,
    })
}

/// The error of a failed `sem_open`, with what to do about it.
fn open_error(e: Errno, name: &PosixName) -> Error {
    let err = Error::from_errno("sem_open", e.raw_os_error()).with_object(name);
    match e {
        Errno::EXIST => err.with_hint(format!(
            "a semaphore with this name exists ({}), perhaps left by a crashed run: open it \
             with NamedSemaphore::open, or remove it with NamedSemaphore::unlink if it is a \
             stale one of yours",
            file_path(name)
        )),
        Errno::NOENT => err.with_hint("no semaphore has this name; create it first"),
        Errno::ACCESS => err.with_hint(owner_hint(name)),
        Errno::LOOP => err
            .with_kind(ErrorKind::PermissionDenied)
            .with_hint(format!(
                "{} is a symbolic link; semaphores are never opened through links",
                file_path(name)
            )),
        Errno::NOSPC => err.with_hint(format!("{SHM_DIR} is full; free space or enlarge it")),
        _ => err,
    }
}

/// "owned by uid 1000 with mode 0600", for a permission error.
fn owner_hint(name: &PosixName) -> String {
    let path = file_path(name);
    match statat(CWD, path.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => format!(
            "{path} is owned by uid {} with mode {:04o}; a process needs read and write \
             permission to open a semaphore",
            st.st_uid,
            st.st_mode & 0o777
        ),
        Err(_) => "this user may not read and write the semaphore".into(),
    }
}

/// The file the C library keeps a named semaphore in.
fn file_path(name: &PosixName) -> String {
    format!("{SHM_DIR}/sem.{}", &name.as_str()[1..])
}

/// A file's identity: device and inode numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

/// The identity of the file mapped at `addr` in this process, from `/proc/self/maps`
/// (which prints the device as `major:minor` in hex).
fn mapped_file(addr: usize, name: &PosixName) -> Result<FileId> {
    let maps = std::fs::read_to_string("/proc/self/maps").op_on("read", "/proc/self/maps")?;
    for line in maps.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(range), Some(_perms), Some(_offset), Some(dev), Some(ino)) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            continue;
        };
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        if !(start..end).contains(&addr) {
            continue;
        }
        let parsed = dev.split_once(':').and_then(|(major, minor)| {
            let major = u32::from_str_radix(major, 16).ok()?;
            let minor = u32::from_str_radix(minor, 16).ok()?;
            Some(FileId {
                dev: rustix::fs::makedev(major, minor),
                ino: ino.parse().ok()?,
            })
        });
        if let Some(id) = parsed {
            return Ok(id);
        }
        break;
    }
    Err(Error::new("sem_open", ErrorKind::Other)
        .with_object(name)
        .with_hint("cannot find the semaphore's mapping in /proc/self/maps"))
}

/// A POSIX named semaphore, closed on drop and, if this handle created it, unlinked.
///
/// It is `Send` and `Sync`: threads may share one handle, and every process that opens
/// the name shares the same counter.
///
/// # References
/// - [sem_overview(7)](https://man7.org/linux/man-pages/man7/sem_overview.7.html)
/// - [sem_open(3)](https://man7.org/linux/man-pages/man3/sem_open.3.html),
///   [sem_close(3)](https://man7.org/linux/man-pages/man3/sem_close.3.html)
#[derive(Debug)]
pub struct NamedSemaphore {
    sem: NamedSem,
    name: PosixName,
    /// The file this handle created and will unlink on drop, if any.
    owner: Option<FileId>,
}

impl NamedSemaphore {
    /// Options for mode, initial value and creation.
    pub fn options() -> SemOptions {
        SemOptions::new()
    }

    /// Creates a new semaphore with value 0 and mode 0600; see [`SemOptions::create`].
    #[doc(alias = "sem_open")]
    pub fn create(name: &str) -> Result<NamedSemaphore> {
        SemOptions::new().create(name)
    }

    /// Opens an existing semaphore; see [`SemOptions::open`].
    #[doc(alias = "sem_open")]
    pub fn open(name: &str) -> Result<NamedSemaphore> {
        SemOptions::new().open(name)
    }

    /// Opens or creates; see [`SemOptions::open_or_create`].
    #[doc(alias = "sem_open")]
    pub fn open_or_create(name: &str) -> Result<NamedSemaphore> {
        SemOptions::new().open_or_create(name)
    }

    /// Removes the name, whoever created it: processes that have the semaphore open keep
    /// using it, and a new semaphore can be created under the name. The way to clear a
    /// semaphore that a crashed run left behind.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidName`] for a bad name, [`ErrorKind::NotFound`] if no semaphore
    /// has the name, [`ErrorKind::PermissionDenied`] if it belongs to another user
    /// (`/dev/shm` is sticky).
    ///
    /// # References
    /// - [sem_unlink(3)](https://man7.org/linux/man-pages/man3/sem_unlink.3.html)
    #[doc(alias = "sem_unlink")]
    pub fn unlink(name: &str) -> Result<()> {
        let name = PosixName::with_limit(name, NAME_MAX)?;
        sys::unlink(&name.to_cstring()).map_err(|e| {
            let err = Error::from_errno("sem_unlink", e.raw_os_error()).with_object(&name);
            match e {
                Errno::NOENT => err.with_hint("no semaphore has this name"),
                Errno::ACCESS | Errno::PERM => err.with_hint(owner_hint(&name)),
                _ => err,
            }
        })
    }

    /// The semaphore's name, in its canonical `/name` form.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// Whether this handle created the semaphore and will unlink its name on drop.
    pub fn is_owner(&self) -> bool {
        self.owner.is_some()
    }

    /// Leaves the name in place when this handle is dropped;
    /// [`is_owner`](NamedSemaphore::is_owner) is `false` from then on.
    pub fn keep(&mut self) {
        self.owner = None;
    }

    /// Takes one unit, waiting for ever while the value is 0. A signal does not end the
    /// wait (`EINTR` is retried).
    ///
    /// # References
    /// - [sem_wait(3)](https://man7.org/linux/man-pages/man3/sem_wait.3.html)
    #[doc(alias = "sem_wait")]
    pub fn wait(&self) -> Result<()> {
        wait_until(&self.sem, Deadline::Never, &self.name)
    }

    /// Takes one unit if the value is above 0, without waiting.
    ///
    /// # Errors
    /// [`ErrorKind::WouldBlock`] if the value is 0.
    #[doc(alias = "sem_trywait")]
    pub fn try_wait(&self) -> Result<()> {
        wait_until(&self.sem, Deadline::Now, &self.name)
    }

    /// Takes one unit, waiting at most `timeout` for the value to rise above 0.
    ///
    /// The time is measured on the monotonic clock: with a C library that has
    /// `sem_clockwait` (glibc 2.30 and later) the wait is a `sem_clockwait` on
    /// `CLOCK_MONOTONIC`, which a change of the wall clock does not affect. Otherwise it is
    /// a `sem_timedwait`, whose absolute deadline is on `CLOCK_REALTIME`: a wall clock set
    /// forward wakes it early, and ipcx then waits again for the time left on the
    /// monotonic clock, so the timeout is never cut short; a wall clock set back, though,
    /// lengthens that wait by as much. A signal does not end the wait: `EINTR` is retried
    /// with the time that remains.
    ///
    /// # Errors
    /// [`ErrorKind::TimedOut`] if the value stayed 0 for `timeout`.
    ///
    /// # References
    /// - [sem_wait(3)](https://man7.org/linux/man-pages/man3/sem_wait.3.html)
    #[doc(alias = "sem_timedwait", alias = "sem_clockwait")]
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        wait_until(&self.sem, Deadline::after(timeout), &self.name)
    }

    /// Gives back one unit, waking one waiter if there is any.
    ///
    /// # Errors
    /// [`ErrorKind::LimitReached`] (`EOVERFLOW`) if the value is already `SEM_VALUE_MAX`.
    ///
    /// # References
    /// - [sem_post(3)](https://man7.org/linux/man-pages/man3/sem_post.3.html)
    #[doc(alias = "sem_post")]
    pub fn post(&self) -> Result<()> {
        post(&self.sem, &self.name)
    }

    /// The current value: how many units can be taken without waiting. Another process
    /// may change it at any moment, so it is a snapshot.
    ///
    /// # References
    /// - [sem_getvalue(3)](https://man7.org/linux/man-pages/man3/sem_getvalue.3.html)
    #[doc(alias = "sem_getvalue")]
    pub fn value(&self) -> Result<u32> {
        sys::value(&self.sem).op_on("sem_getvalue", &self.name)
    }
}

impl Drop for NamedSemaphore {
    fn drop(&mut self) {
        let Some(id) = self.owner else {
            return;
        };
        // Unlink only the file this handle created. The semaphore is still mapped here
        // (`self.sem` is closed after this), which keeps its inode number from being
        // given to another file. A replacement made between the stat and the unlink
        // would still be removed: there is no unlink-by-descriptor (see the module docs).
        // A failure cannot be reported from drop; the name is then left for `ipcx gc`.
        let path = file_path(&self.name);
        if let Ok(st) = statat(CWD, path.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            if st.st_dev == id.dev && st.st_ino == id.ino {
                let _ = sys::unlink(&self.name.to_cstring());
            }
        }
    }
}

/// Waits on `sem` until `deadline`: the three forms of every POSIX semaphore wait, for
/// named semaphores and for unnamed ones in shared memory alike.
pub(crate) fn wait_until(
    sem: &impl LiveSem,
    deadline: Deadline,
    object: &dyn Display,
) -> Result<()> {
    wait_with(sem, deadline, object, sys::has_clockwait())
}

/// [`wait_until`], choosing the clock: `sem_clockwait` on `CLOCK_MONOTONIC` if
/// `monotonic`, else `sem_timedwait` on `CLOCK_REALTIME`.
fn wait_with(
    sem: &impl LiveSem,
    deadline: Deadline,
    object: &dyn Display,
    monotonic: bool,
) -> Result<()> {
    let op = match deadline {
        Deadline::Now => "sem_trywait",
        Deadline::Never => "sem_wait",
        Deadline::At(..) if monotonic => "sem_clockwait",
        Deadline::At(..) => "sem_timedwait",
    };
    loop {
        let result = match deadline {
            Deadline::Now => sys::try_wait(sem),
            Deadline::Never => sys::wait(sem),
            Deadline::At(at, _) => {
                let left = at.saturating_duration_since(Instant::now());
                if monotonic {
                    sys::clock_wait_monotonic(sem, &absolute(ClockId::Monotonic, left))
                } else {
                    sys::timed_wait_realtime(sem, &absolute(ClockId::Realtime, left))
                }
            }
        };
        match result {
            Ok(()) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => {
                return Err(Error::from_errno(op, libc::EAGAIN)
                    .with_object(object)
                    .with_hint("the semaphore's value is 0"));
            }
            Err(Errno::TIMEDOUT) => {
                // Out of time on the monotonic clock too? Otherwise the wall clock jumped
                // forward under sem_timedwait: wait again for what is left.
                if let Err(e) = deadline.remaining(op, object) {
                    let Deadline::At(_, timeout) = deadline else {
                        return Err(e);
                    };
                    return Err(
                        e.with_hint(format!("the semaphore's value stayed 0 for {timeout:?}"))
                    );
                }
            }
            Err(e) => return Err(Error::from_errno(op, e.raw_os_error()).with_object(object)),
        }
    }
}

/// Gives back one unit of `sem`.
pub(crate) fn post(sem: &impl LiveSem, object: &dyn Display) -> Result<()> {
    sys::post(sem).map_err(|e| {
        let err = Error::from_errno("sem_post", e.raw_os_error()).with_object(object);
        if e == Errno::OVERFLOW {
            err.with_kind(ErrorKind::LimitReached).with_hint(format!(
                "the value is already SEM_VALUE_MAX ({}), the largest a POSIX semaphore can \
                 hold; take units before posting more",
                sys::sem_value_max()
            ))
        } else {
            err
        }
    })
}

/// The absolute time `left` from now on `clock`, as the timed waits take it.
fn absolute(clock: ClockId, left: Duration) -> libc::timespec {
    let now = rustix::time::clock_gettime(clock);
    let left = Timespec::try_from(left).unwrap_or(Timespec {
        tv_sec: i64::MAX / 2,
        tv_nsec: 0,
    });
    let abs = now.checked_add(left).unwrap_or(Timespec {
        tv_sec: i64::MAX / 2,
        tv_nsec: 0,
    });
    libc::timespec {
        tv_sec: libc::time_t::try_from(abs.tv_sec).unwrap_or(libc::time_t::MAX),
        tv_nsec: abs.tv_nsec as _,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unique(tag: &str) -> String {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        format!("/ipcx-unit-sem-{tag}-{}-{n}", std::process::id())
    }

    #[test]
    fn both_clocks_time_out_and_succeed() {
        let sem = SemOptions::new().create(&unique("clock")).unwrap();
        for monotonic in [true, false] {
            if monotonic && !sys::has_clockwait() {
                continue;
            }
            let start = Instant::now();
            let deadline = Deadline::after(Duration::from_millis(30));
            let err = wait_with(&sem.sem, deadline, &sem.name, monotonic).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
            assert!(start.elapsed() >= Duration::from_millis(30));
            assert!(err.to_string().contains("stayed 0 for 30ms"), "{err}");
            sem.post().unwrap();
            let deadline = Deadline::after(Duration::from_secs(5));
            wait_with(&sem.sem, deadline, &sem.name, monotonic).unwrap();
        }
    }

    #[test]
    fn the_mapping_names_the_file() {
        let sem = SemOptions::new().create(&unique("map")).unwrap();
        let st = rustix::fs::stat(file_path(&sem.name).as_str()).unwrap();
        let id = mapped_file(sem.sem.addr(), &sem.name).unwrap();
        assert_eq!(
            id,
            FileId {
                dev: st.st_dev,
                ino: st.st_ino
            }
        );
    }
}
