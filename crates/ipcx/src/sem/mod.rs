//! Semaphores: POSIX named and unnamed (process-shared), and System V semaphore sets.

pub mod unnamed;
