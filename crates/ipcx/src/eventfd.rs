//! eventfd: a kernel counter for wake-ups and counting between processes.
