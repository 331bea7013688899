//! The suite leaves nothing behind: every POSIX name and System V key or id the tests
//! recorded in the ledger (see `common::record`) must be gone from `/dev/shm`, the POSIX
//! message queue namespace and `/proc/sysvipc`.
//!
//! It is `#[ignore]`d because it must run after every other test: `.ci/run` runs it last
//! with `cargo test --workspace --test leftovers -- --ignored`.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

/// The ids and keys of live objects in one `/proc/sysvipc` table (columns: key, id).
fn sysv_table(file: &str) -> Vec<(i32, i32)> {
    let text = std::fs::read_to_string(format!("/proc/sysvipc/{file}")).unwrap();
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut cols = line.split_whitespace();
            let key = cols.next()?.parse::<i32>().ok()?;
            let id = cols.next()?.parse::<i32>().ok()?;
            Some((key, id))
        })
        .collect()
}

#[test]
#[ignore = "runs after the whole suite; see .ci/run"]
fn nothing_left_behind() {
    let dir = common::ledger_dir();
    let mut entries = BTreeSet::new();
    for file in std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("no ledger at {} ({e}): run the suite first", dir.display()))
    {
        let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
        for line in text.lines() {
            let (kind, value) = line.split_once(' ').unwrap();
            entries.insert((kind.to_string(), value.to_string()));
        }
    }
    assert!(
        !entries.is_empty(),
        "the ledger is empty: run the suite first"
    );

    let shm = sysv_table("shm");
    let sem = sysv_table("sem");
    let msg = sysv_table("msg");
    let mqueue_mounted = std::path::Path::new("/dev/mqueue").is_dir();
    let mut left = Vec::new();
    let mut checked = 0;
    for (kind, value) in &entries {
        let bare = value.trim_start_matches('/');
        let present = match kind.as_str() {
            "shm" => present("/dev/shm", bare),
            "sem" => present("/dev/shm", &format!("sem.{bare}")),
            "mq" if mqueue_mounted => present("/dev/mqueue", bare),
            "mq" => probe_mq(value),
            "sysv-shm" => shm.iter().any(|&(k, _)| k.to_string() == *value),
            "sysv-sem" => sem.iter().any(|&(k, _)| k.to_string() == *value),
            "sysv-msg" => msg.iter().any(|&(k, _)| k.to_string() == *value),
            "sysv-shm-id" => shm.iter().any(|&(_, id)| id.to_string() == *value),
            "sysv-sem-id" => sem.iter().any(|&(_, id)| id.to_string() == *value),
            "sysv-msg-id" => msg.iter().any(|&(_, id)| id.to_string() == *value),
            // A mailbox in the runtime directory: its socket file or its lock.
            "mailbox" => {
                let dir = ipcx::runtime::runtime_dir();
                dir.join(bare).exists() || dir.join(format!("{bare}.lock")).exists()
            }
            other => panic!("unknown ledger kind {other:?}"),
        };
        checked += 1;
        if present {
            left.push(format!("{kind} {value}"));
        }
    }
    assert!(
        left.is_empty(),
        "the suite left {} of {checked} objects behind:\n{}",
        left.len(),
        left.join("\n")
    );
    // A clean run starts the next ledger afresh.
    std::fs::remove_dir_all(&dir).unwrap();
    println!("checked {checked} recorded objects: none left behind");
}

/// Whether `dir/name` exists, as anything (a dangling symbolic link counts).
fn present(dir: &str, name: &str) -> bool {
    std::fs::symlink_metadata(std::path::Path::new(dir).join(name)).is_ok()
}

/// Whether a POSIX queue exists when `/dev/mqueue` is not mounted: opening it tells.
fn probe_mq(name: &str) -> bool {
    match ipcx::mq::posix::MqOptions::new().open(name) {
        Ok(_) => true,
        Err(e) => e.kind() != ipcx::ErrorKind::NotFound,
    }
}
