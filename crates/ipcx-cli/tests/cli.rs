//! The `ipcx` binary as a user runs it.
#![allow(clippy::unwrap_used)] // a failed unwrap is how a test reports failure

use std::process::Command;

fn ipcx(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ipcx"))
        .args(args)
        .output()
        .expect("run ipcx")
}

#[test]
fn version_names_the_package_version() {
    let out = ipcx(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("ipcx {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn help_says_what_ipcx_is() {
    let out = ipcx(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Measure, inspect, clean up and drive Linux IPC"),
        "{text}"
    );
    assert!(text.contains("--version"), "{text}");
}

#[test]
fn no_arguments_prints_help_and_fails() {
    let out = ipcx(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage: ipcx"));
}

#[test]
fn an_unknown_argument_is_an_error() {
    let out = ipcx(&["--frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unexpected argument '--frobnicate'"));
}
