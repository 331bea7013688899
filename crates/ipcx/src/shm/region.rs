//! [`Region`]: a mapped piece of shared memory, with bounds-checked access.
//!
//! Memory shared with another process can change under the reader at any moment, so the
//! safe interface never hands out a Rust reference to plain bytes in it. It copies bytes
//! in and out ([`Region::read`], [`Region::write`], [`Region::load`], [`Region::store`])
//! with relaxed atomic loads and stores (a word at a time where aligned, a byte at a time
//! at the edges), and gives atomics by reference ([`Region::atomic_u32`],
//! [`Region::atomic_u64`]). Every access is therefore atomic: two threads or processes
//! copying the same bytes at once see some mix of old and new bytes, never undefined
//! behaviour, and the compiler may not re-read a copy's source after the copy, so a
//! reader that copies a peer's data out and then validates the copy (reliability item 10)
//! validates exactly what it uses. Every offset is checked against the length first.
#![allow(unsafe_code)]

use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use bytemuck::Pod;

use crate::error::{Context, Error, ErrorKind, Result};

/// What keeps the mapping alive; dropping it unmaps.
pub(crate) enum Backing {
    /// An `mmap` of a descriptor (POSIX shm, memfd, file).
    Mmap(memmap2::MmapRaw),
    /// A System V segment attached with `shmat`; held for its `Drop` (`shmdt`).
    Sysv(#[allow(dead_code)] crate::sys::shm::Attached),
}

/// A mapping of shared memory: POSIX shm, memfd, System V segment or file.
///
/// The mapping is removed when the `Region` is dropped. A `Region` may be shared between
/// threads; all access through the safe methods is by copy or through atomics.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::Ordering;
/// use ipcx::shm::memfd::Memfd;
///
/// let memfd = Memfd::create("example", 4096)?;
/// let region = memfd.map()?;
/// region.write(0, b"hello")?;
/// let mut buf = [0u8; 5];
/// region.read(0, &mut buf)?;
/// assert_eq!(&buf, b"hello");
///
/// region.store(8, &42u64)?;
/// assert_eq!(region.load::<u64>(8)?, 42);
/// region.atomic_u32(16)?.fetch_add(1, Ordering::AcqRel);
///
/// // Out of bounds is an error, never an access.
/// assert!(region.read(4090, &mut [0u8; 8]).is_err());
/// # Ok::<(), ipcx::Error>(())
/// ```
pub struct Region {
    ptr: NonNull<u8>,
    len: usize,
    writable: bool,
    label: String,
    _backing: Backing,
}

// SAFETY:
// - The mapping is process-wide memory that stays valid until `_backing` is dropped,
//   whichever thread holds the `Region`.
// - The safe methods access it only with atomic operations (the copies in `copy_out` and
//   `copy_in`, and the atomics handed out by reference), so concurrent use from several
//   threads, or with other processes, cannot be a data race.
unsafe impl Send for Region {}
// SAFETY: as for `Send`: everything `&Region` offers is an atomic access.
unsafe impl Sync for Region {}

impl Region {
    pub(crate) fn from_mmap(map: memmap2::MmapRaw, writable: bool, label: String) -> Region {
        let ptr = NonNull::new(map.as_mut_ptr()).unwrap_or(NonNull::dangling());
        Region {
            ptr,
            len: map.len(),
            writable,
            label,
            _backing: Backing::Mmap(map),
        }
    }

    pub(crate) fn from_sysv(
        at: crate::sys::shm::Attached,
        writable: bool,
        label: String,
    ) -> Region {
        Region {
            ptr: at.ptr(),
            len: at.len(),
            writable,
            label,
            _backing: Backing::Sysv(at),
        }
    }

    /// Maps `len` bytes of `file` privately (copy-on-write).
    pub(crate) fn map_private(file: &std::fs::File, len: usize, label: String) -> Result<Region> {
        let mut opts = memmap2::MmapOptions::new();
        opts.len(len);
        // SAFETY: `map_copy` is unsafe only because another process may change the file
        // under the mapping; a `Region` never hands out references to its bytes (it
        // copies), so such a change cannot break Rust's aliasing rules.
        let map = unsafe { opts.map_copy(file) }.op_on("mmap MAP_PRIVATE", &label)?;
        Ok(Region::from_mmap(memmap2::MmapRaw::from(map), true, label))
    }

    /// The length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the mapping may be written (it was not mapped read-only).
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// The first byte of the mapping, for code that builds its own structure on it.
    /// Reading or writing through it is `unsafe` and must stay within [`len`](Region::len).
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Checks that `len` bytes at `offset` lie inside the region and returns a pointer to
    /// the first.
    fn span(&self, op: &'static str, offset: usize, len: usize) -> Result<*mut u8> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => {
                // SAFETY:
                // - `offset <= end <= self.len`, so the result stays inside the mapping
                //   (or one past its end when `len` is 0), as `add` requires.
                Ok(unsafe { self.ptr.as_ptr().add(offset) })
            }
            _ => Err(Error::new(op, ErrorKind::InvalidInput)
                .with_object(&self.label)
                .with_hint(format!(
                    "{len} bytes at offset {offset} reach past the end of the {}-byte region",
                    self.len
                ))),
        }
    }

    fn check_writable(&self, op: &'static str) -> Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(Error::new(op, ErrorKind::PermissionDenied)
                .with_object(&self.label)
                .with_hint("the region is mapped read-only"))
        }
    }

    /// Copies `buf.len()` bytes at `offset` into `buf`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] if the range reaches past the end.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        let src = self.span("read region", offset, buf.len())?;
        // SAFETY: `src..src + buf.len()` is inside the live mapping (checked by `span`),
        // which `&self` keeps mapped for the call.
        unsafe { copy_out(src, buf) };
        Ok(())
    }

    /// Copies `data` into the region at `offset`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] if the range reaches past the end;
    /// [`ErrorKind::PermissionDenied`] if the region is read-only.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.check_writable("write region")?;
        let dst = self.span("write region", offset, data.len())?;
        // SAFETY: `dst..dst + data.len()` is inside the live, writable mapping (checked
        // above), which `&self` keeps mapped for the call.
        unsafe { copy_in(dst, data) };
        Ok(())
    }

    /// Copies a value of plain data type `T` out of the region at `offset` (which need not
    /// be aligned).
    ///
    /// `T: Pod` (from [`bytemuck`]) guarantees that any bytes a peer wrote form a valid
    /// `T`; validate its fields after the copy, not before.
    pub fn load<T: Pod>(&self, offset: usize) -> Result<T> {
        let mut value = T::zeroed();
        self.read(offset, bytemuck::bytes_of_mut(&mut value))?;
        Ok(value)
    }

    /// Copies `value` into the region at `offset` (which need not be aligned).
    pub fn store<T: Pod>(&self, offset: usize, value: &T) -> Result<()> {
        self.write(offset, bytemuck::bytes_of(value))
    }

    /// The 32-bit atomic at `offset`, which must be 4-byte aligned.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] if out of bounds or misaligned;
    /// [`ErrorKind::PermissionDenied`] if the region is read-only (an atomic store there
    /// would fault).
    pub fn atomic_u32(&self, offset: usize) -> Result<&AtomicU32> {
        let p = self.atomic_span::<AtomicU32>("atomic_u32", offset)?;
        // SAFETY:
        // - `p` is in bounds, aligned for `AtomicU32` and writable (checked).
        // - `AtomicU32` has the size and alignment of `u32` and every bit pattern is
        //   valid; concurrent access from other processes is through atomics too (or is
        //   the peer's data race, which cannot make the value invalid).
        // - The reference borrows `self`, so the mapping outlives it.
        Ok(unsafe { &*p.cast::<AtomicU32>() })
    }

    /// The 64-bit atomic at `offset`, which must be 8-byte aligned.
    ///
    /// # Errors
    /// As for [`atomic_u32`](Region::atomic_u32).
    pub fn atomic_u64(&self, offset: usize) -> Result<&AtomicU64> {
        let p = self.atomic_span::<AtomicU64>("atomic_u64", offset)?;
        // SAFETY: as in `atomic_u32`, for `AtomicU64` (size and alignment 8, checked).
        Ok(unsafe { &*p.cast::<AtomicU64>() })
    }

    fn atomic_span<A>(&self, op: &'static str, offset: usize) -> Result<*mut u8> {
        self.check_writable(op)?;
        let p = self.span(op, offset, size_of::<A>())?;
        if !(p as usize).is_multiple_of(align_of::<A>()) {
            return Err(Error::new(op, ErrorKind::InvalidInput)
                .with_object(&self.label)
                .with_hint(format!(
                    "offset {offset} is not aligned to {} bytes",
                    align_of::<A>()
                )));
        }
        Ok(p)
    }

    /// The `sem_t` at `offset`, for [`sem::unnamed`](crate::sem::unnamed).
    pub(crate) fn sem_at(&self, offset: usize) -> Result<crate::sys::sem::ShmSem<'_>> {
        let p = self.atomic_span::<libc::sem_t>("sem_init", offset)?;
        let sem = NonNull::new(p.cast::<libc::sem_t>()).ok_or_else(|| {
            Error::new("sem_init", ErrorKind::InvalidInput).with_object(&self.label)
        })?;
        // SAFETY:
        // - `p` is in bounds for a `sem_t`, aligned for it and writable (checked by
        //   `atomic_span`).
        // - The returned reference borrows `self`, so the mapping outlives it.
        Ok(unsafe { crate::sys::sem::ShmSem::new(sem) })
    }

    /// Views the whole region as bytes.
    ///
    /// # Safety
    /// No process may write to the region while the slice is alive (for example, the
    /// region is read-only and its memfd sealed with [`Seals::WRITE`]), otherwise the
    /// slice would observe a data race.
    ///
    /// [`Seals::WRITE`]: crate::shm::memfd::Seals::WRITE
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY:
        // - `ptr` is valid for `len` bytes for as long as `self` is borrowed.
        // - The caller promises no concurrent writes.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// Flushes the changes of a file mapping to the file (`msync(MS_SYNC)`). Shared
    /// memory that is not backed by a file (POSIX shm, memfd, System V) needs no flush;
    /// for it this does nothing.
    #[doc(alias = "msync")]
    pub fn flush(&self) -> Result<()> {
        match &self._backing {
            Backing::Mmap(map) => map.flush().op_on("msync", &self.label),
            Backing::Sysv(_) => Ok(()),
        }
    }

    /// Remaps a file mapping to `new_len` bytes after the file grew (`mremap`).
    pub(crate) fn remap(&mut self, new_len: usize) -> Result<()> {
        let Backing::Mmap(map) = &mut self._backing else {
            return Err(Error::new("mremap", ErrorKind::Unsupported).with_object(&self.label));
        };
        // SAFETY:
        // - `&mut self` proves no reference handed out by this region (atomics) is alive,
        //   so moving the mapping cannot leave one dangling.
        // - `may_move` lets the kernel relocate the mapping; `ptr` is re-read below.
        unsafe { map.remap(new_len, memmap2::RemapOptions::new().may_move(true)) }
            .op_on("mremap", &self.label)?;
        self.ptr = NonNull::new(map.as_mut_ptr()).unwrap_or(NonNull::dangling());
        self.len = map.len();
        Ok(())
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("object", &self.label)
            .field("len", &self.len)
            .field("writable", &self.writable)
            .finish()
    }
}

/// The word the copies move at a time where the shared memory is aligned.
const WORD: usize = size_of::<usize>();

/// Copies `dst.len()` bytes out of shared memory at `src` with relaxed atomic loads.
///
/// # Safety
/// `src..src + dst.len()` must lie inside a mapping that stays mapped for the call. Other
/// threads and processes may access those bytes at the same time, with atomic operations
/// (this module's) or from another process in any way.
unsafe fn copy_out(src: *const u8, dst: &mut [u8]) {
    let len = dst.len();
    let mut i = 0;
    while i < len && !(src as usize + i).is_multiple_of(WORD) {
        // SAFETY: `src + i` is inside the mapping (caller's contract); `AtomicU8` has no
        // alignment requirement; every access to the byte from this process is atomic.
        dst[i] = unsafe { AtomicU8::from_ptr(src.add(i).cast_mut()) }.load(Ordering::Relaxed);
        i += 1;
    }
    while i + WORD <= len {
        // SAFETY: `src + i` is inside the mapping with `WORD` bytes after it (checked by
        // the loop condition) and aligned for `usize` (the loop above stopped there).
        let word = unsafe { AtomicUsize::from_ptr(src.add(i).cast::<usize>().cast_mut()) }
            .load(Ordering::Relaxed);
        dst[i..i + WORD].copy_from_slice(&word.to_ne_bytes());
        i += WORD;
    }
    while i < len {
        // SAFETY: as for the first loop.
        dst[i] = unsafe { AtomicU8::from_ptr(src.add(i).cast_mut()) }.load(Ordering::Relaxed);
        i += 1;
    }
}

/// Copies `src` into shared memory at `dst` with relaxed atomic stores.
///
/// # Safety
/// `dst..dst + src.len()` must lie inside a writable mapping that stays mapped for the
/// call; other accesses may happen at the same time, as for [`copy_out`].
unsafe fn copy_in(dst: *mut u8, src: &[u8]) {
    let len = src.len();
    let mut i = 0;
    while i < len && !(dst as usize + i).is_multiple_of(WORD) {
        // SAFETY: `dst + i` is inside the writable mapping (caller's contract).
        unsafe { AtomicU8::from_ptr(dst.add(i)) }.store(src[i], Ordering::Relaxed);
        i += 1;
    }
    while i + WORD <= len {
        let mut word = [0u8; WORD];
        word.copy_from_slice(&src[i..i + WORD]);
        // SAFETY: `dst + i` is inside the writable mapping with `WORD` bytes after it and
        // aligned for `usize` (see the loops' conditions).
        unsafe { AtomicUsize::from_ptr(dst.add(i).cast::<usize>()) }
            .store(usize::from_ne_bytes(word), Ordering::Relaxed);
        i += WORD;
    }
    while i < len {
        // SAFETY: as for the first loop.
        unsafe { AtomicU8::from_ptr(dst.add(i)) }.store(src[i], Ordering::Relaxed);
        i += 1;
    }
}
