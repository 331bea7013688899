//! `ipcx bench --soak`: every mechanism moves messages under load with several producers
//! and none is lost, torn, duplicated or reordered; a fault committed on purpose by every
//! producer is found in every mechanism and fails the run; nothing is left behind.
//!
//! No test asserts a time or a rate: the soak reports those, its tests check counts.
#![allow(clippy::unwrap_used)] // a failed unwrap is how a test reports failure

mod common;

use std::process::{Command, Output};
use std::sync::Mutex;

use common::{TempDir, stderr, stdout};
use serde_json::Value;

/// One soak at a time: each one loads the whole machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const MECHANISMS: [&str; 12] = [
    "pipe",
    "fifo",
    "unix",
    "unix-dgram",
    "unix-seqpacket",
    "tcp",
    "udp",
    "mq",
    "sysv-mq",
    "shm",
    "ring",
    "mailbox",
];

/// Runs `ipcx bench --soak ARGS --json` with its own TMPDIR; returns the output and the
/// pid of the bench (its object names carry it).
fn soak(args: &[&str], fault: Option<&str>, tmp: &TempDir) -> (Output, u32) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ipcx"));
    cmd.args(["bench", "--json", "--soak"])
        .args(args)
        .env("TMPDIR", &tmp.0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(f) = fault {
        cmd.env("IPCX_SOAK_FAULT", f);
    }
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    (child.wait_with_output().unwrap(), pid)
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", stdout(out), stderr(out)))
}

/// Nothing of the bench `pid` is left: its directory, shared memory, queues.
fn nothing_left(pid: u32, tmp: &TempDir) {
    let left: Vec<_> = std::fs::read_dir(&tmp.0).unwrap().collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
    let prefix = format!("ipcx-soak-{pid}-");
    for dir in ["/dev/shm", "/dev/mqueue"] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                assert!(!name.starts_with(&prefix), "left behind: {dir}/{name}");
            }
        }
    }
}

#[test]
fn every_mechanism_moves_messages_with_none_lost_torn_duplicated_or_reordered() {
    let tmp = TempDir::new("soak");
    let (out, pid) = soak(&["2s"], None, &tmp);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let doc = json(&out);
    let mechs = doc["mechanisms"].as_array().unwrap();
    let names: Vec<&str> = mechs
        .iter()
        .map(|m| m["mechanism"].as_str().unwrap())
        .collect();
    assert_eq!(names, MECHANISMS);
    for m in mechs {
        for count in ["sent", "messages", "bytes"] {
            assert!(m[count].as_u64().unwrap() > 0, "{count}: {m:#}");
        }
        assert_eq!(m["sent"], m["messages"], "{m:#}");
        for error in ["lost", "torn", "duplicated", "reordered"] {
            assert_eq!(m[error], 0, "{error}: {m:#}");
        }
        assert!(m["errors"].as_array().unwrap().is_empty(), "{m:#}");
        assert!(m["producer_peak_kib"].as_u64().unwrap() > 0, "{m:#}");
        let single = ["ring", "shm"].contains(&m["mechanism"].as_str().unwrap());
        assert_eq!(m["producers"], if single { 1 } else { 3 }, "{m:#}");
        assert_eq!(m["sharing"] == "single", single, "{m:#}");
    }
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["errors"], 0);
    assert!(doc["bench_peak_kib"].as_u64().unwrap() > 0);
    assert!(doc["messages"].as_u64().unwrap() > 0);
    nothing_left(pid, &tmp);
}

/// The checker's self-test: every producer commits one fault (`IPCX_SOAK_FAULT`); each
/// mechanism must count exactly one per producer, and the run must exit 1.
#[test]
fn a_fault_in_every_producer_is_found_in_every_mechanism() {
    let tmp = TempDir::new("soak-fault");
    for (fault, counts) in [
        ("skip", &["lost"][..]),
        ("duplicate", &["duplicated"][..]),
        ("reorder", &["reordered"][..]),
        // A torn message is not received whole, so it is also lost.
        ("corrupt", &["torn", "lost"][..]),
    ] {
        let (out, pid) = soak(&["1s", "--producers", "2"], Some(fault), &tmp);
        assert_eq!(out.status.code(), Some(1), "{fault}: {}", stderr(&out));
        assert!(stderr(&out).contains("FAILED"), "{}", stderr(&out));
        let doc = json(&out);
        assert_eq!(doc["ok"], false);
        for m in doc["mechanisms"].as_array().unwrap() {
            let producers = m["producers"].as_u64().unwrap();
            for what in ["lost", "torn", "duplicated", "reordered"] {
                let want = if counts.contains(&what) { producers } else { 0 };
                assert_eq!(m[what].as_u64().unwrap(), want, "{fault}, {what}: {m:#}");
            }
        }
        nothing_left(pid, &tmp);
    }
}

#[test]
fn soak_arguments_are_checked() {
    let out = common::run(&["bench", "--soak", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not a duration"), "{}", stderr(&out));
    let out = common::run(&["bench", "--producers", "2"]);
    assert_eq!(out.status.code(), Some(2), "--producers needs --soak");
    let out = common::run(&["bench", "--soak", "1s", "--producers", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let out = common::run(&["bench", "--soak", "1s", "--only", "pipe"]);
    assert_eq!(out.status.code(), Some(2));
}
