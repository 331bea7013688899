//! A smoke run of the whole comparison: every row between two real processes, a few
//! hundred round trips each, JSON out; nothing of this run is left in /dev/shm.

use std::process::{Command, Stdio};

#[test]
fn a_quick_run_measures_every_row_and_leaves_nothing_behind() {
    let child = Command::new(env!("CARGO_BIN_EXE_ipcx-peers-bench"))
        .args(["--quick", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ipcx-peers-bench");
    let pid = child.id();
    let out = child.wait_with_output().expect("run ipcx-peers-bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "status {}: {stderr}", out.status);
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("the report is JSON");
    assert_eq!(report["errors"], 0, "{report:#}");
    let rows = report["rows"].as_array().expect("rows");
    let floors = report["floors"].as_array().expect("floors");
    assert_eq!(floors.len(), 2);
    assert_eq!(rows.len(), 9);
    for row in rows.iter().chain(floors) {
        let l = &row["latency"];
        assert_eq!(l["iterations"], 300, "{row:#}");
        assert!(l["p50_ns"].as_u64().is_some_and(|p| p > 0), "{row:#}");
        assert!(row["floor_ratio"].as_f64().is_some(), "{row:#}");
    }
    for row in rows {
        let bytes = if row["name"] == "cache-line" || row["name"] == "futex" {
            1
        } else {
            64
        };
        assert_eq!(row["latency"]["message_bytes"], bytes, "{row:#}");
        assert!(row["ring_busy_ratio"].as_f64().is_some(), "{row:#}");
        assert!(row["ipcx_ratio"].as_f64().is_some(), "{row:#}");
    }
    // The rings' names carry the run's pid.
    let prefix = format!("ipcx-peers-{pid}-");
    let left: Vec<String> = std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "left in /dev/shm: {left:?}");
}
