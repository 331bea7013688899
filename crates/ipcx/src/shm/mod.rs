//! Shared memory: POSIX objects, sealed memfds, System V segments and file mappings.
//!
//! | kind | module | found by | goes away |
//! |---|---|---|---|
//! | POSIX object | [`posix`] | a name (`/jobs`), in `/dev/shm` | when unlinked (ipcx: by its creator on drop) and unmapped |
//! | memfd | [`memfd`] | a descriptor passed over a Unix socket | when the last descriptor and mapping go |
//! | System V segment | [`sysv`] | a [`Key`](crate::sysv::Key) or an id | when removed (`IPC_RMID`) and detached |
//! | file mapping | [`file`](mod@file) | a path | the file stays |
//!
//! Each is mapped as a [`Region`]: bounds-checked copies in and out, typed loads and
//! stores of plain data ([`bytemuck::Pod`]), and atomics for synchronisation. Place a
//! process-shared semaphore in one with [`sem::unnamed`](crate::sem::unnamed).
//!
//! **Choosing.** Between a parent and the children it spawns, or with a peer that is not
//! trusted, use a sealed [`memfd`]: nothing to name, nothing to leak, no `SIGBUS`. Between
//! unrelated processes that find each other by name, use [`posix`]. Use [`sysv`] to talk
//! to programs that already use it.
//!
//! Memory-mapped data is only as trustworthy as the least trusted process that can write
//! it: copy a peer's data out of the region, then validate the copy.

pub mod file;
pub mod memfd;
pub mod posix;
mod region;
pub mod sysv;

pub use bytemuck;
pub use region::Region;
