//! Async wrappers on `tokio::io::unix::AsyncFd` (feature `tokio`).
