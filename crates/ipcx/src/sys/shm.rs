//! System V shared memory: `shmget`, `shmat`, `shmdt`, `shmctl`.

use std::ptr::NonNull;

use rustix::io::{Errno, Result};

fn check(ret: libc::c_int) -> Result<libc::c_int> {
    if ret == -1 {
        Err(Errno::from_raw_os_error(errno()))
    } else {
        Ok(ret)
    }
}

pub(crate) fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `shmget(key, size, flags)`: the id of the segment.
pub(crate) fn shmget(key: i32, size: usize, flags: i32) -> Result<i32> {
    // SAFETY: `shmget` takes only integers and touches no memory of ours.
    check(unsafe { libc::shmget(key, size, flags) })
}

/// `shmctl(id, IPC_STAT)`.
pub(crate) fn stat(id: i32) -> Result<libc::shmid_ds> {
    // SAFETY: `shmid_ds` is plain old data; all zeroes is a valid value.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY:
    // - `ds` is a valid, writable `shmid_ds` that outlives the call.
    // - IPC_STAT writes exactly one `shmid_ds`.
    check(unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) })?;
    Ok(ds)
}

/// `shmctl(id, IPC_RMID)`: the segment goes once the last process detaches.
pub(crate) fn remove(id: i32) -> Result<()> {
    // SAFETY: IPC_RMID ignores the buffer argument, so a null pointer is allowed.
    check(unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) }).map(drop)
}

/// A segment attached with `shmat`; detached with `shmdt` on drop.
#[derive(Debug)]
pub(crate) struct Attached {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the attachment is process-wide; detaching from any thread is allowed, and the
// pointer is only used through `Region`, which documents its own sharing rules.
unsafe impl Send for Attached {}
// SAFETY: `&Attached` exposes only the address and length.
unsafe impl Sync for Attached {}

impl Attached {
    pub(crate) fn ptr(&self) -> NonNull<u8> {
        self.ptr
    }
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// `shmat(id, NULL, flags)`, then the segment's size from `IPC_STAT` as the extent of
/// the mapping. The size is read after attaching: the attachment keeps the segment (and
/// so its id) alive, so the size is that of the segment mapped, not of a successor that
/// reused the id in between.
pub(crate) fn attach(id: i32, read_only: bool) -> Result<Attached> {
    let flags = if read_only { libc::SHM_RDONLY } else { 0 };
    // SAFETY:
    // - A null address lets the kernel choose where to map, so nothing of ours is
    //   replaced.
    // - The result is checked for the `(void *) -1` error value before use.
    let addr = unsafe { libc::shmat(id, std::ptr::null(), flags) };
    if addr as isize == -1 {
        return Err(Errno::from_raw_os_error(errno()));
    }
    let ptr = NonNull::new(addr.cast::<u8>()).ok_or(Errno::FAULT)?;
    // From here on `Attached`'s drop detaches, whatever happens next.
    let mut attached = Attached { ptr, len: 0 };
    attached.len = stat(id)?.shm_segsz;
    Ok(attached)
}

impl Drop for Attached {
    fn drop(&mut self) {
        // SAFETY:
        // - `ptr` is the address `shmat` returned and has not been detached (only this
        //   drop does so).
        // - `Region` borrows references from the attachment only for its own lifetime,
        //   and it drops this `Attached` last.
        unsafe { libc::shmdt(self.ptr.as_ptr().cast()) };
    }
}
