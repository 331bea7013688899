//! The one place the ring's protocol takes its atomics from.
//!
//! The protocol ([`super::protocol`]) names its atomics and fences only through
//! `super::sync`. In the library that is this module, and the atomics are the standard
//! ones, placed in shared memory. The `loom` model (`tests/ring_loom.rs`, built with
//! `RUSTFLAGS="--cfg ipcx_loom"`) compiles the very same `protocol.rs` file beside a `sync`
//! module of its own that re-exports `loom`'s atomics, so the model checks the code that
//! runs, not a copy of it (crossbeam's `primitive` shim, one level down: loom's atomics
//! cannot live in memory another process maps, so the swap happens in the model crate).

pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
