//! System V message queue calls (`msgget`, `msgsnd`, `msgrcv`, `msgctl`), which no safe
//! crate wraps.
//!
//! A System V message travels as `struct msgbuf { long mtype; char mtext[]; }`. The
//! buffers here are `Vec<c_long>`, so the type field is aligned as C requires, and the
//! text is reached through `bytemuck` as plain bytes after it.

use std::mem::MaybeUninit;

use rustix::io::Errno;

/// The size of the `mtype` field that precedes every message's text.
const TYPE_SIZE: usize = std::mem::size_of::<libc::c_long>();

/// The errno of the libc call that just failed.
fn last_errno() -> Errno {
    Errno::from_raw_os_error(
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL),
    )
}

/// A `msgbuf` with room for `text` bytes of text: one `c_long` for the type, then enough
/// `c_long`s to hold the text.
fn msgbuf(text: usize) -> Vec<libc::c_long> {
    vec![0; 1 + text.div_ceil(TYPE_SIZE)]
}

/// `msgget(key, flags)`: the queue's id.
pub(crate) fn get(key: i32, flags: libc::c_int) -> rustix::io::Result<i32> {
    // SAFETY:
    // - `msgget` takes two integers and touches no memory of this process.
    let id = unsafe { libc::msgget(key, flags) };
    if id < 0 {
        return Err(last_errno());
    }
    Ok(id)
}

/// `msgsnd(id, {mtype, data}, flags)`.
pub(crate) fn send(
    id: i32,
    mtype: libc::c_long,
    data: &[u8],
    flags: libc::c_int,
) -> rustix::io::Result<()> {
    let mut buf = msgbuf(data.len());
    buf[0] = mtype;
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut buf);
    bytes[TYPE_SIZE..TYPE_SIZE + data.len()].copy_from_slice(data);
    // SAFETY:
    // - `buf` is a live, `c_long`-aligned `msgbuf` whose text holds at least `data.len()`
    //   bytes after the type, so the kernel reads within it;
    // - the kernel only reads the buffer.
    let rc = unsafe { libc::msgsnd(id, buf.as_ptr().cast(), data.len(), flags) };
    if rc != 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// `msgrcv(id, msgtyp, flags)` into `out`: the message's type and the number of text
/// bytes copied into `out`.
pub(crate) fn receive(
    id: i32,
    msgtyp: libc::c_long,
    out: &mut [u8],
    flags: libc::c_int,
) -> rustix::io::Result<(i64, usize)> {
    let mut buf = msgbuf(out.len());
    // SAFETY:
    // - `buf` is a live, exclusively borrowed, `c_long`-aligned `msgbuf` with room for the
    //   type and at least `out.len()` text bytes, and the kernel writes at most the type
    //   and `out.len()` text bytes (`msgsz`), so it writes within it.
    let n = unsafe { libc::msgrcv(id, buf.as_mut_ptr().cast(), out.len(), msgtyp, flags) };
    if n < 0 {
        return Err(last_errno());
    }
    let n = (n as usize).min(out.len());
    #[allow(clippy::useless_conversion)] // `c_long` is 32 bits on 32-bit targets
    let mtype = i64::from(buf[0]);
    let bytes: &[u8] = bytemuck::cast_slice(&buf);
    out[..n].copy_from_slice(&bytes[TYPE_SIZE..TYPE_SIZE + n]);
    Ok((mtype, n))
}

/// `msgctl(id, IPC_STAT)`.
pub(crate) fn stat(id: i32) -> rustix::io::Result<libc::msqid_ds> {
    let mut ds = MaybeUninit::<libc::msqid_ds>::zeroed();
    // SAFETY:
    // - `ds` is a local `msqid_ds` the kernel fills in; it is read only on success, and
    //   was zeroed first, so padding the kernel skips is initialised too.
    if unsafe { libc::msgctl(id, libc::IPC_STAT, ds.as_mut_ptr()) } != 0 {
        return Err(last_errno());
    }
    // SAFETY:
    // - the call succeeded, so the kernel filled the structure; every field is a plain
    //   integer, for which any bit pattern is valid.
    Ok(unsafe { ds.assume_init() })
}

/// `msgctl(id, IPC_SET, ds)`: sets the owner, mode and `msg_qbytes` from `ds`.
pub(crate) fn set(id: i32, ds: &libc::msqid_ds) -> rustix::io::Result<()> {
    let mut copy = *ds;
    // SAFETY:
    // - `copy` is a local, initialised `msqid_ds` that the kernel only reads for IPC_SET
    //   (the C prototype takes a non-const pointer for every command).
    if unsafe { libc::msgctl(id, libc::IPC_SET, &mut copy) } != 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// `msgctl(id, IPC_RMID)`: removes the queue, waking every waiter with `EIDRM`.
pub(crate) fn remove(id: i32) -> rustix::io::Result<()> {
    // SAFETY:
    // - IPC_RMID ignores the buffer argument, so a null pointer is valid.
    if unsafe { libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()) } != 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// Bytes currently queued (`msg_cbytes`), a field glibc names differently on MIPS.
#[cfg(not(all(
    target_env = "gnu",
    any(target_arch = "mips", target_arch = "mips32r6")
)))]
#[allow(clippy::unnecessary_cast)] // `c_ulong` on 32-bit targets
pub(crate) fn cbytes(ds: &libc::msqid_ds) -> u64 {
    ds.__msg_cbytes as u64
}

/// Bytes currently queued: not exposed by `libc` on 32-bit MIPS glibc.
#[cfg(all(
    target_env = "gnu",
    any(target_arch = "mips", target_arch = "mips32r6")
))]
pub(crate) fn cbytes(_ds: &libc::msqid_ds) -> u64 {
    0
}
