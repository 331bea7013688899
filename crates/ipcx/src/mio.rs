//! `mio::event::Source` for every ipcx descriptor type (feature `mio`).
