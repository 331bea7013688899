//! Memory-mapped files: shared mappings that other processes (and the file) see, private
//! copy-on-write mappings, `msync`, and growth.
//!
//! ```
//! use ipcx::shm::file::MappedFile;
//!
//! # let dir = tempfile::tempdir().map_err(|e| ipcx::Error::from_io("tempdir", &e))?;
//! # let path = dir.path().join("data.bin");
//! let mut file = MappedFile::create(&path, 4096)?;
//! file.region().write(0, b"persisted")?;
//! file.flush()?;                       // msync: on disk now
//! file.grow(8192)?;                    // extend the file and the mapping
//! assert_eq!(file.region().len(), 8192);
//! assert_eq!(&std::fs::read(&path).unwrap()[..9], b"persisted");
//! # Ok::<(), ipcx::Error>(())
//! ```
//!
//! Files are ordinary filesystem objects: ipcx creates them with mode 0600 and
//! `O_EXCL`, but does not remove them, since a mapped file is usually data meant to stay.
//! A process that truncates a mapped file makes accesses past the new end raise `SIGBUS`;
//! share files only among trusting processes, or use a sealed
//! [`memfd`](crate::shm::memfd).
//!
//! # References
//! - [mmap(2)](https://man7.org/linux/man-pages/man2/mmap.2.html),
//!   [msync(2)](https://man7.org/linux/man-pages/man2/msync.2.html),
//!   [mremap(2)](https://man7.org/linux/man-pages/man2/mremap.2.html)

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Context, Error, ErrorKind, Result};
use crate::name::check_path;
use crate::owner::PathOwner;
use crate::shm::Region;
use crate::shm::posix::check_file_size_limit;

/// A file mapped shared into memory, which can grow.
#[derive(Debug)]
pub struct MappedFile {
    region: Region,
    file: File,
    path: PathBuf,
}

impl MappedFile {
    /// Creates a new file of `len` bytes (mode 0600, `O_EXCL`) and maps it shared.
    ///
    /// # Errors
    /// [`ErrorKind::AlreadyExists`] if the path exists; [`ErrorKind::InvalidInput`] if
    /// `len` is 0.
    pub fn create(path: impl AsRef<Path>, len: usize) -> Result<MappedFile> {
        let path = path.as_ref();
        check_path(path)?;
        if len == 0 {
            return Err(Error::new("mmap", ErrorKind::InvalidInput)
                .with_object(path.display())
                .with_hint("a mapping needs a non-zero length"));
        }
        let object = path.display();
        let bytes = u64::try_from(len)
            .ok()
            .filter(|&b| b <= i64::MAX as u64)
            .ok_or_else(|| {
                Error::new("mmap", ErrorKind::InvalidInput)
                    .with_object(&object)
                    .with_hint(format!("{len} bytes is more than a file can hold"))
            })?;
        check_file_size_limit("ftruncate", bytes, &object)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .op_on("open", &object)?;
        // Until the mapping exists the new file is ours to remove again, so a failure
        // leaves nothing behind for the retry to trip over.
        let mut guard = PathOwner::record(path)?;
        file.set_len(bytes).op_on("ftruncate", &object)?;
        let mapped = MappedFile::map(file, path, false)?;
        guard.keep();
        Ok(mapped)
    }

    /// Opens an existing file and maps all of it, shared (`read_only`: a read-only
    /// mapping of a file opened read-only).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] if the file is empty (nothing to map).
    pub fn open(path: impl AsRef<Path>, read_only: bool) -> Result<MappedFile> {
        let path = path.as_ref();
        check_path(path)?;
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .op_on("open", path.display())?;
        MappedFile::map(file, path, read_only)
    }

    fn map(file: File, path: &Path, read_only: bool) -> Result<MappedFile> {
        let label = path.display().to_string();
        let len = file.metadata().op_on("fstat", &label)?.len();
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l > 0)
            .ok_or_else(|| {
                Error::new("mmap", ErrorKind::InvalidInput)
                    .with_object(&label)
                    .with_hint(format!("a {len}-byte file cannot be mapped"))
            })?;
        let mut opts = memmap2::MmapOptions::new();
        opts.len(len);
        let map = if read_only {
            opts.map_raw_read_only(&file)
        } else {
            opts.map_raw(&file)
        }
        .op_on("mmap", &label)?;
        Ok(MappedFile {
            region: Region::from_mmap(map, !read_only, label),
            file,
            path: path.to_path_buf(),
        })
    }

    /// The mapping.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the mapping's changes to the file and waits for them (`msync(MS_SYNC)`).
    pub fn flush(&self) -> Result<()> {
        self.region.flush()
    }

    /// Extends the file to `new_len` bytes and the mapping with it (`ftruncate` then
    /// `mremap`). The mapping may move; `&mut self` guarantees nothing borrowed from it
    /// is alive.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] if `new_len` is smaller than the current length
    /// (shrinking a mapped file is how `SIGBUS` happens) or the mapping is read-only.
    pub fn grow(&mut self, new_len: usize) -> Result<()> {
        let label = self.path.display().to_string();
        if new_len < self.region.len() || !self.region.is_writable() {
            return Err(Error::new("grow mapping", ErrorKind::InvalidInput)
                .with_object(&label)
                .with_hint(format!(
                    "can only grow a writable mapping: {} -> {new_len} bytes",
                    self.region.len()
                )));
        }
        check_file_size_limit("ftruncate", new_len as u64, &label)?;
        self.file
            .set_len(new_len as u64)
            .op_on("ftruncate", &label)?;
        self.region.remap(new_len)
    }
}

/// Maps `file` privately (`MAP_PRIVATE`): copy-on-write, so writes stay in this process
/// and never reach the file or other processes. The mapping is writable if the file was
/// opened for reading.
///
/// # Errors
/// [`ErrorKind::InvalidInput`] if the file is empty.
pub fn map_private(file: &File) -> Result<Region> {
    let len = file.metadata().op("fstat")?.len();
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l > 0)
        .ok_or_else(|| {
            Error::new("mmap MAP_PRIVATE", ErrorKind::InvalidInput)
                .with_hint(format!("a {len}-byte file cannot be mapped"))
        })?;
    Region::map_private(file, len, "private mapping".into())
}
