//! Semaphores: POSIX named and unnamed (process-shared), and System V semaphore sets.
//!
//! A semaphore is a counter in the kernel's or in shared memory that processes take
//! (decrement, waiting while it is 0) and give back (increment). Linux offers two APIs:
//!
//! | | [`posix::NamedSemaphore`] | [`sysv::SemSet`] |
//! |---|---|---|
//! | found by | a name (`/jobs`), a file in `/dev/shm` | a numeric [`Key`](crate::sysv::Key), or an id |
//! | unit | one semaphore | a set of 1 to `SEMMSL` semaphores |
//! | several operations at once | no | yes: all applied atomically, or none |
//! | a holder that dies | keeps what it took: the value stays low for ever | `SEM_UNDO` gives it back when the process exits, however it exits |
//! | largest value | `SEM_VALUE_MAX` (2³¹−1) | `SEMVMX` (32767) |
//! | cost of an uncontended take | no system call (a futex in the mapping) | one system call |
//! | timed wait | `sem_clockwait` / `sem_timedwait` | `semtimedop` |
//! | removed | by the creator's handle on drop, or `sem_unlink` | by the creator's handle on drop, or `IPC_RMID` |
//!
//! Pick POSIX for a fast counter between cooperating processes; pick System V when a
//! process may die while holding the semaphore (`SEM_UNDO`) or when several semaphores
//! must change together (take `empty` and `mutex` in one step).
//!
//! A third kind, [`unnamed::UnnamedSemaphore`], is a POSIX semaphore placed in shared
//! memory the processes already map (`sem_init` with `pshared`): no name to leak, and as
//! fast as a named one.
//!
//! Both kinds follow the ipcx contracts: exclusive creation with mode 0600 by default,
//! the creator removes the object on drop unless told to keep it, openers never do, and
//! every blocking call has `try_` and `_timeout` forms that retry `EINTR` with the
//! remaining time.
//!
//! # References
//! - [sem_overview(7)](https://man7.org/linux/man-pages/man7/sem_overview.7.html)
//! - [semget(2)](https://man7.org/linux/man-pages/man2/semget.2.html),
//!   [semop(2)](https://man7.org/linux/man-pages/man2/semop.2.html)
//! - [sysvipc(7)](https://man7.org/linux/man-pages/man7/sysvipc.7.html)

pub mod posix;
pub mod sysv;
pub mod unnamed;
