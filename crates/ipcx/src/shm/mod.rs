//! Shared memory: POSIX objects, sealed memfds, System V segments and file mappings.
