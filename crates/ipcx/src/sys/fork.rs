//! A count of the `fork`s that made this process, for state that a fork makes shared
//! behind its owner's back (an open file description whose mode a channel toggles).

use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

static FORKS: AtomicU64 = AtomicU64::new(0);
static HOOKED: Once = Once::new();

extern "C" fn forked() {
    // Relaxed: runs in the new child before fork() returns there, so the child's thread
    // (its only one) sees it; no other data is published with it.
    FORKS.fetch_add(1, Ordering::Relaxed);
}

/// The number of `fork`s, since the first call, that this process is the child of: a
/// value that differs from an earlier one means the caller runs in a forked child, which
/// shares its parent's open file descriptions. Raw `fork` system calls that bypass the C
/// library are not counted, nor are `vfork`-style spawns (`posix_spawn`), whose child runs
/// no handlers and execs at once, closing ipcx's close-on-exec descriptors.
pub(crate) fn generation() -> u64 {
    HOOKED.call_once(|| {
        // SAFETY:
        // - `forked` is an `extern "C" fn()` with no arguments, as pthread_atfork expects;
        //   it only increments a static atomic, which is async-signal-safe and valid in a
        //   freshly forked child;
        // - the handlers stay registered for the life of the process, and `forked` is a
        //   function with static lifetime;
        // - a failure (ENOMEM) leaves forks uncounted; it is reported by the caller's
        //   behaviour staying as before (see the caller's docs), never as memory unsafety.
        unsafe {
            libc::pthread_atfork(None, None, Some(forked));
        }
    });
    FORKS.load(Ordering::Relaxed)
}
