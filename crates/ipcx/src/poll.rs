//! Waiting on many ipcx descriptors at once.
