//! `ipcx advise` on given measurements and on a quick run of its own, and
//! `ipcx completions` for each shell.
#![allow(clippy::unwrap_used)] // a failed unwrap is how a test reports failure

mod common;

use common::{TempDir, run, stderr, stdout};
use serde_json::{Value, json};

/// A bench report with made-up numbers, in the shape of `ipcx bench --json`.
fn report() -> Value {
    let row = |name: &str, p50: u64, mb_1m: Option<f64>| {
        json!({
            "name": name,
            "latency": {"p50_ns": p50, "p99_ns": p50 * 3},
            "throughput": [
                {"size": 64, "throughput": {"mb_per_s": 10.0}},
                {"size": 1048576, "throughput": mb_1m.map(|m| json!({"mb_per_s": m}))},
            ],
        })
    };
    json!({"rows": [
        row("tcp", 9000, Some(1500.0)),
        row("unix", 5000, Some(2000.0)),
        row("mq", 3000, None),
        row("sysv-mq", 4000, None),
        row("pipe", 2000, Some(900.0)),
        row("fifo", 2500, Some(800.0)),
        row("shm-sem", 3500, Some(3000.0)),
        row("unix-seqpacket", 6000, None),
        row("unix-dgram", 6500, None),
        row("udp", 7000, None),
    ]})
}

fn advise(extra: &[&str]) -> Value {
    let dir = TempDir::new("advise");
    let path = dir.join("bench.json");
    std::fs::write(&path, report().to_string()).unwrap();
    let mut args = vec!["advise", "--from", &path, "--json"];
    args.extend_from_slice(extra);
    let out = run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ranked(doc: &Value) -> Vec<String> {
    doc["recommended"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["row"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn small_messages_are_ranked_by_the_measured_median() {
    let doc = advise(&[]);
    assert_eq!(doc["ranked_by"], "p50 round trip");
    // pipe is left out: unrelated processes unless --related.
    assert_eq!(
        ranked(&doc),
        [
            "fifo",
            "mq",
            "shm-sem",
            "sysv-mq",
            "unix",
            "unix-seqpacket",
            "unix-dgram",
            "udp",
            "tcp"
        ]
    );
    assert_eq!(ranked(&advise(&["--related"]))[0], "pipe");
}

#[test]
fn needs_exclude_what_cannot_meet_them() {
    assert_eq!(ranked(&advise(&["--priorities"])), ["mq", "sysv-mq"]);
    assert_eq!(ranked(&advise(&["--network"])), ["udp", "tcp"]);
    let doc = advise(&["--size", "1M"]);
    assert_eq!(doc["ranked_by"], "throughput");
    assert_eq!(ranked(&doc), ["shm-sem", "unix", "tcp", "fifo"]);
    let excluded = doc["excluded"].to_string();
    assert!(
        excluded.contains("carries at most 65507 bytes"),
        "{excluded}"
    );
    let doc = advise(&["--priorities", "--size", "1M"]);
    assert!(ranked(&doc).is_empty());
    assert!(
        advise(&["--broadcast"])["broadcast"]
            .as_str()
            .unwrap()
            .contains("one channel per receiver")
    );
}

#[test]
fn the_table_names_its_source() {
    let dir = TempDir::new("advise-table");
    let path = dir.join("bench.json");
    std::fs::write(&path, report().to_string()).unwrap();
    let out = run(&["advise", "--from", &path]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(
        text.contains(&format!("Measured on this machine: {path}")),
        "{text}"
    );
    assert!(
        text.contains("fifo:/path") && text.contains("2.5 us"),
        "{text}"
    );
}

#[test]
fn a_file_that_is_not_a_report_is_an_error() {
    let dir = TempDir::new("advise-bad");
    let path = dir.join("bad.json");
    std::fs::write(&path, "not json").unwrap();
    let out = run(&["advise", "--from", &path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not `ipcx bench --json` output"),
        "{}",
        stderr(&out)
    );
    let out = run(&["advise", "--from", &dir.join("missing.json")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("missing.json"), "{}", stderr(&out));
}

/// Without --from, advise measures: a quick bench run of the same executable.
#[test]
fn without_measurements_advise_measures_quickly() {
    let tmp = TempDir::new("advise-quick");
    let out = common::ipcx()
        .args(["advise", "--json"])
        .env("TMPDIR", &tmp.0)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["source"].as_str().unwrap().contains("quick"), "{doc:#}");
    let first = &doc["recommended"][0];
    assert!(first["p50_ns"].as_u64().unwrap() > 0, "{doc:#}");
}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let text = stdout(&out);
        for sub in ["send", "recv", "relay", "ls", "gc", "advise", "bench"] {
            assert!(text.contains(sub), "{shell} completion lacks {sub}");
        }
        assert!(
            !text.contains("bench-child"),
            "{shell}: the hidden subcommand leaked"
        );
    }
    // The bash script parses.
    let dir = TempDir::new("completions");
    let path = dir.join("ipcx.bash");
    std::fs::write(&path, run(&["completions", "bash"]).stdout).unwrap();
    let status = std::process::Command::new("bash")
        .args(["-n", &path])
        .status();
    if let Ok(status) = status {
        assert!(status.success());
    }
    assert_eq!(run(&["completions", "tcsh"]).status.code(), Some(2));
}
