//! `ipcx bench` as a user and a CI script run it: the JSON has the rows asked for, bad
//! arguments are clear errors, the chart is valid SVG, a failing row fails the run
//! without stopping the others, and nothing is left behind, even after Ctrl-C.
//!
//! No test asserts a time: speed is what the bench reports, not what its tests check.
#![allow(clippy::unwrap_used)] // a failed unwrap is how a test reports failure

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ipcx::ErrorKind;
use ipcx::mq::posix::MessageQueue;
use serde_json::Value;

/// One bench at a time: two would share the two CPUs and slow each other down.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A private temporary directory for one test, given to the bench as `TMPDIR`.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("ipcx-cli-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    /// What the directory holds.
    fn entries(&self) -> Vec<String> {
        std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bench(args: &[&str], tmp: &Path) -> Output {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    Command::new(env!("CARGO_BIN_EXE_ipcx"))
        .arg("bench")
        .args(args)
        .env("TMPDIR", tmp)
        .output()
        .expect("run ipcx bench")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn row<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no row {name} in {report:#}"))
}

/// System V message queue keys in the bench's range (0x4942xxxx), from /proc/sysvipc.
fn bench_sysv_keys() -> Vec<String> {
    std::fs::read_to_string("/proc/sysvipc/msg")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|k| k.parse::<i64>().ok())
        .filter(|k| (k >> 16) == 0x4942)
        .map(|k| format!("{k:#x}"))
        .collect()
}

/// Checks that the bench of process `pid` left nothing behind: no peer process, no
/// POSIX object with its pid in the name, no System V queue in its key range that was
/// not there before, and an empty `TMPDIR`.
fn assert_nothing_left(pid: u32, tmp: &TempDir, sysv_before: &[String]) {
    let marker = format!("\"parent\":{pid},");
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline);
            assert!(
                !(cmdline.contains("bench-child") && cmdline.contains(&marker)),
                "a peer of bench {pid} is still running: {cmdline}"
            );
        }
    }
    let prefix = format!("ipcx-bench-{pid}-");
    let shm: Vec<String> = std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default();
    assert!(shm.is_empty(), "shared memory left behind: {shm:?}");
    for row in ["mq", "mq-libc"] {
        for side in ["a", "b"] {
            let name = format!("/{prefix}{row}-{side}");
            let err = MessageQueue::open(&name).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotFound, "{name} left behind: {err}");
        }
    }
    let new: Vec<String> = bench_sysv_keys()
        .into_iter()
        .filter(|k| !sysv_before.contains(k))
        .collect();
    assert!(new.is_empty(), "System V queues left behind: {new:?}");
    assert!(
        tmp.entries().is_empty(),
        "files left in TMPDIR: {:?}",
        tmp.entries()
    );
}

#[test]
fn json_has_the_rows_asked_for() {
    let tmp = TempDir::new("json");
    let out = bench(
        &["--iterations", "200", "--json", "--only", "pipe,unix"],
        &tmp.0,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    assert_eq!(report["errors"], 0);
    assert_eq!(report["settings"]["iterations"], 200);
    assert!(!report["machine"]["cpu"].as_str().unwrap().is_empty());
    assert!(!report["machine"]["kernel"].as_str().unwrap().is_empty());
    let names: Vec<&str> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.contains(&"pipe") && names.contains(&"unix"),
        "{names:?}"
    );
    for name in ["pipe", "unix"] {
        let r = row(&report, name);
        assert!(r["error"].is_null(), "{name}: {}", r["error"]);
        let l = &r["latency"];
        assert_eq!(l["iterations"], 200, "{name}");
        let (p50, p99, p999) = (
            l["p50_ns"].as_u64().unwrap(),
            l["p99_ns"].as_u64().unwrap(),
            l["p999_ns"].as_u64().unwrap(),
        );
        assert!(0 < p50 && p50 <= p99 && p99 <= p999, "{name}: {l}");
        assert_eq!(r["wait"], "blocking");
        assert!(r["floor_ratio"].as_f64().unwrap() > 0.0, "{name}");
        let sizes: Vec<u64> = r["throughput"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                assert_eq!(t["throughput"]["messages"], 200, "{name}: {t}");
                assert!(t["throughput"]["mb_per_s"].as_f64().unwrap() > 0.0);
                t["size"].as_u64().unwrap()
            })
            .collect();
        assert_eq!(sizes, [64, 65536, 1 << 20], "{name}");
    }
    // The floors are measured in the same run.
    let floors = &report["floors"];
    assert!(floors["cache_line"]["latency"]["p50_ns"].as_u64().unwrap() > 0);
    assert!(floors["futex"]["latency"]["p50_ns"].as_u64().unwrap() > 0);
    assert!(floors["syscall_ns"].as_f64().unwrap() > 0.0);
    assert!(floors["memcpy_gb_per_s"].as_f64().unwrap() > 0.0);
    // And the latency floors again after the rows, with the verdict on how far they
    // moved (a list, empty unless one moved by more than a quarter).
    assert!(floors["cache_line_after"].as_u64().unwrap() > 0);
    assert!(floors["futex_after"].as_u64().unwrap() > 0);
    for d in report["floor_drift"].as_array().unwrap() {
        assert!(d["before_p50_ns"].as_u64().unwrap() > 0, "{d}");
        assert!(d["after_p50_ns"].as_u64().unwrap() > 0, "{d}");
    }
    assert!(tmp.entries().is_empty(), "{:?}", tmp.entries());
}

#[test]
fn an_unknown_row_is_a_clear_usage_error() {
    let tmp = TempDir::new("bad-only");
    let out = bench(&["--only", "pipe,carrier-pigeon"], &tmp.0);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown row `carrier-pigeon`"), "{err}");
    assert!(
        err.contains("the rows are: ring-busy, ring, ring-blocking, shm-atomic, shm-sem, pipe"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_sizes_and_counts_are_usage_errors() {
    let tmp = TempDir::new("bad-args");
    for (args, says) in [
        (&["--size", "64,0"][..], "a size is from 1 byte to 64M"),
        (&["--size", "12Q"][..], "is not a size"),
        (&["--iterations", "0"][..], "is not a number of iterations"),
        (&["--duration", "0"][..], "is not a duration in seconds"),
        (
            &["--iterations", "5", "--duration", "2"][..],
            "cannot be used with",
        ),
    ] {
        let out = bench(args, &tmp.0);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn the_list_names_every_row() {
    let tmp = TempDir::new("list");
    let out = bench(&["--list"], &tmp.0);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for name in [
        "shm-atomic",
        "shm-sem",
        "pipe",
        "fifo",
        "unix",
        "unix-dgram",
        "unix-seqpacket",
        "mq",
        "sysv-mq",
        "tcp",
        "udp",
        "mailbox",
        "mailbox-tcp",
        "eventfd",
        "pipe-libc",
        "unix-libc",
        "mq-libc",
    ] {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().next() == Some(name)),
            "{name} missing from:\n{text}"
        );
    }
}

#[test]
fn svg_writes_a_valid_chart() {
    let tmp = TempDir::new("svg");
    let chart = std::env::temp_dir().join(format!("ipcx-cli-test-{}.svg", std::process::id()));
    let out = bench(
        &[
            "--iterations",
            "100",
            "--only",
            "pipe,eventfd",
            "--svg",
            chart.to_str().unwrap(),
        ],
        &tmp.0,
    );
    let text = std::fs::read_to_string(&chart);
    let _ = std::fs::remove_file(&chart);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = text.unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("not XML: {e}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    let words: String = doc
        .descendants()
        .filter_map(|n| n.text())
        .collect::<Vec<_>>()
        .join(" ");
    for expected in ["pipe", "eventfd", "futex floor", "memcpy floor", "64 KiB"] {
        assert!(
            words.contains(expected),
            "{expected} not in the chart: {words}"
        );
    }
    assert!(String::from_utf8_lossy(&out.stdout).contains("chart written to"));
}

#[test]
fn nothing_is_left_behind() {
    let tmp = TempDir::new("leftovers");
    let sysv_before = bench_sysv_keys();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let child = Command::new(env!("CARGO_BIN_EXE_ipcx"))
        .args([
            "bench",
            "--iterations",
            "100",
            "--size",
            "64",
            "--json",
            "--only",
            "shm-atomic,shm-sem,fifo,unix,unix-dgram,unix-seqpacket,mq,sysv-mq,unix-libc,mq-libc",
        ])
        .env("TMPDIR", &tmp.0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&out)["rows"].as_array().unwrap().len(), 10);
    assert_nothing_left(pid, &tmp, &sysv_before);
}

#[test]
fn a_failing_row_fails_the_run_and_the_others_still_run() {
    // A TMPDIR so deep that the socket paths in it pass the 108-byte limit of a Unix
    // socket address: the unix row fails for real, the pipe row does not need it.
    let tmp = TempDir::new("long-path");
    let deep = tmp.0.join("d".repeat(120));
    std::fs::create_dir(&deep).unwrap();
    let out = bench(
        &["--iterations", "100", "--json", "--only", "pipe,unix"],
        &deep,
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    assert_eq!(report["errors"], 1);
    let pipe = row(&report, "pipe");
    assert!(pipe["error"].is_null(), "{}", pipe["error"]);
    assert_eq!(pipe["latency"]["iterations"], 100);
    let unix = row(&report, "unix");
    assert!(unix["latency"].is_null());
    let error = unix["error"].as_str().unwrap();
    assert!(error.contains("setting up unix"), "{error}");
    assert!(
        error.contains("unix:"),
        "the error names the address: {error}"
    );
    assert!(
        error.contains("the limit is 107 bytes"),
        "the error names the limit: {error}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("1 row failed"), "{err}");
    std::fs::remove_dir(&deep).unwrap();
}

#[test]
fn a_quick_run_passes_every_row() {
    let tmp = TempDir::new("quick");
    let sysv_before = bench_sysv_keys();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let child = Command::new(env!("CARGO_BIN_EXE_ipcx"))
        .args(["bench", "--quick"])
        .env("TMPDIR", &tmp.0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{table}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for heading in [
        "Floors",
        "Round-trip latency",
        "One-way throughput",
        "wrapper overhead",
    ] {
        assert!(table.contains(heading), "{heading} missing:\n{table}");
    }
    assert!(
        table.contains("n/a (limit"),
        "sizes above a limit are marked:\n{table}"
    );
    assert!(!table.contains("Errors"), "{table}");
    assert_nothing_left(pid, &tmp, &sysv_before);
}

#[test]
fn an_interrupt_stops_the_peers_and_removes_everything() {
    let tmp = TempDir::new("sigint");
    let sysv_before = bench_sysv_keys();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut child = Command::new(env!("CARGO_BIN_EXE_ipcx"))
        .args(["bench", "--duration", "1", "--size", "64", "--only", "mq"])
        .env("TMPDIR", &tmp.0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait until the mq row is under way: its queues exist.
    let queue = format!("/ipcx-bench-{pid}-mq-b");
    let deadline = Instant::now() + Duration::from_secs(60);
    while MessageQueue::open(&queue).is_err() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the bench ended before its mq row began"
        );
        assert!(Instant::now() < deadline, "the mq row never began");
        std::thread::sleep(Duration::from_millis(5));
    }
    let target = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(target, rustix::process::Signal::INT).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the bench did not exit after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted by signal 2"), "{err}");
    assert_nothing_left(pid, &tmp, &sysv_before);
}

#[test]
fn a_ping_above_a_transports_limit_is_not_applicable_not_an_error() {
    let tmp = TempDir::new("big-ping");
    let out = bench(
        &[
            "--iterations",
            "50",
            "--ping-size",
            "1M",
            "--size",
            "64",
            "--json",
            "--only",
            "mq,pipe",
        ],
        &tmp.0,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    let mq = row(&report, "mq");
    assert!(mq["error"].is_null(), "{}", mq["error"]);
    assert!(mq["latency"].is_null());
    let limit = mq["latency_limit"].as_u64().unwrap();
    assert!(0 < limit && limit < 1 << 20, "{limit}");
    // The queue still carries the 64-byte throughput messages.
    assert_eq!(mq["throughput"][0]["throughput"]["messages"], 50);
    let pipe = row(&report, "pipe");
    assert_eq!(pipe["latency"]["message_bytes"], 1 << 20);
}

#[test]
fn a_tmpdir_with_address_syntax_in_its_name_works() {
    // `?` starts an address's options and `%` an escape: the bench escapes both.
    let tmp = TempDir::new("odd");
    let odd = tmp.0.join("100% sure?");
    std::fs::create_dir(&odd).unwrap();
    let out = bench(
        &[
            "--iterations",
            "50",
            "--size",
            "64",
            "--json",
            "--only",
            "fifo,unix-libc",
        ],
        &odd,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&out)["errors"], 0);
    assert_eq!(std::fs::read_dir(&odd).unwrap().count(), 0);
    std::fs::remove_dir(&odd).unwrap();
}
