//! Reads the versions of ipcx, iceoryx2 and ipc-channel that this build resolved from
//! `Cargo.lock`, so that every report names what it compared against.

use std::fs;

fn main() {
    println!("cargo::rerun-if-changed=Cargo.lock");
    let lock = fs::read_to_string("Cargo.lock").unwrap_or_default();
    for (krate, var) in [
        ("ipcx", "PEERS_IPCX_VERSION"),
        ("iceoryx2", "PEERS_ICEORYX2_VERSION"),
        ("ipc-channel", "PEERS_IPC_CHANNEL_VERSION"),
    ] {
        let version = version_of(&lock, krate).unwrap_or_else(|| "unknown".into());
        println!("cargo::rustc-env={var}={version}");
    }
}

/// The version of the `[[package]]` named `name` in a lock file.
fn version_of(lock: &str, name: &str) -> Option<String> {
    let wanted = format!("name = \"{name}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == wanted {
            let next = lines.next()?;
            let v = next
                .trim()
                .strip_prefix("version = \"")?
                .strip_suffix('"')?;
            return Some(v.to_string());
        }
    }
    None
}
