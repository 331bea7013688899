//! The only home of raw FFI in ipcx.
//!
//! Everything here is a thin, audited wrapper around a `libc` call that no safe crate
//! covers; the public modules above it are safe. Each `unsafe` block says, in its
//! `// SAFETY:` comment, why every precondition holds.
#![allow(unsafe_code)]

#[cfg(feature = "tokio")]
pub(crate) mod async_fd;
pub(crate) mod fork;
pub(crate) mod lock;
pub(crate) mod mq;
pub(crate) mod msg;
pub(crate) mod pidfd;
pub(crate) mod sem;
pub(crate) mod shm;
pub(crate) mod signal;
pub(crate) mod sigpipe;
pub(crate) mod sock;
