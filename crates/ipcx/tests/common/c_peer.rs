//! Building C peers for the tests: shared by this crate's tests and the `ipcx` command's
//! (`crates/ipcx-cli/tests/common` includes this file by path).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static BUILDS: AtomicU32 = AtomicU32::new(0);

/// Compiles a C peer with gcc into a fresh file under the target's temp dir and returns
/// its path, or `None` (with the reason printed) when gcc is missing.
pub fn compile_c(stem: &str, source: &str, libs: &[&str]) -> Option<PathBuf> {
    if Command::new("gcc").arg("--version").output().is_err() {
        println!("SKIPPED: gcc is not installed, so the C peer cannot be built");
        return None;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c-peers");
    std::fs::create_dir_all(&dir).unwrap();
    let n = BUILDS.fetch_add(1, Ordering::Relaxed);
    let src = dir.join(format!("{stem}-{}-{n}.c", std::process::id()));
    let exe = src.with_extension("");
    std::fs::write(&src, source).unwrap();
    let out = Command::new("gcc")
        .args(["-O1", "-Wall", "-Werror", "-pthread", "-o"])
        .arg(&exe)
        .arg(&src)
        .args(libs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gcc failed on {}:\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(&src);
    Some(exe)
}
