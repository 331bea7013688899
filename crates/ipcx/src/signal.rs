//! Signals: masks, signalfd, sending (`kill`, `sigqueue`, pidfd), and handler-style
//! signals through signal-hook.
