//! FIFOs across real processes: ownership, exclusivity, modes, open timeouts, names.
#![allow(clippy::unwrap_used)] // a failed unwrap is how a test reports failure

mod common;

use std::io::Write;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use ipcx::ErrorKind;
use ipcx::fifo::{Fifo, FifoOptions};

#[test]
fn unrelated_process_writes_into_the_fifo() {
    if common::role().is_some() {
        let fifo = Fifo::open(common::arg("PATH")).unwrap();
        assert!(!fifo.is_owner());
        let mut w = fifo.open_writer_timeout(Duration::from_secs(10)).unwrap();
        w.write_all(b"from the child").unwrap();
        common::say("written");
        std::process::exit(0);
    }
    let dir = common::tempdir();
    let path = dir.path().join("jobs");
    let fifo = Fifo::create(&path).unwrap();
    let reader = fifo.open_reader().unwrap();
    let child = common::child(
        "unrelated_process_writes_into_the_fifo",
        "writer",
        &[("PATH", path.to_str().unwrap())],
    )
    .spawn()
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        let n = reader.read_timeout(&mut buf, common::CHILD_LIMIT).unwrap();
        if n == 0 {
            break; // the child's writer came and went
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"from the child");
    let out = common::finish(child);
    assert!(out.status.success());
    assert_eq!(common::reports(&out), "written");
    // A child that only opened the FIFO never removes it; the owner does, on drop.
    assert!(path.exists());
    drop(fifo);
    assert!(!path.exists());
}

#[test]
fn python_peer_writes_into_the_fifo() {
    let dir = common::tempdir();
    let path = dir.path().join("py");
    let fifo = Fifo::create(&path).unwrap();
    let reader = fifo.open_reader().unwrap();
    let Some(mut cmd) = common::python(
        "import sys; open(sys.argv[1], 'wb').write(b'hello from python')",
        &[path.to_str().unwrap()],
    ) else {
        return;
    };
    let child = cmd.spawn().unwrap();
    let mut buf = [0u8; 64];
    let n = reader.read_timeout(&mut buf, common::CHILD_LIMIT).unwrap();
    assert_eq!(&buf[..n], b"hello from python");
    assert!(common::finish(child).status.success());
}

#[test]
fn creation_is_exclusive_with_an_exact_mode() {
    if common::role().is_some() {
        // A umask of 0 must not widen the default, and 077 must not narrow an explicit mode.
        let dir = common::arg("DIR");
        rustix::process::umask(rustix::fs::Mode::empty());
        let a = Fifo::create(Path::new(&dir).join("a")).unwrap();
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
        let b = FifoOptions::new()
            .mode(0o640)
            .create(Path::new(&dir).join("b"))
            .unwrap();
        common::say(format!(
            "{:o} {:o}",
            common::mode_of(a.path()),
            common::mode_of(b.path())
        ));
        std::process::exit(0);
    }
    let dir = common::tempdir();
    let out = common::run_ok(common::child(
        "creation_is_exclusive_with_an_exact_mode",
        "c",
        &[("DIR", dir.path().to_str().unwrap())],
    ));
    assert_eq!(out, "600 640");

    let path = dir.path().join("x");
    let _fifo = Fifo::create(&path).unwrap();
    let err = Fifo::create(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert!(
        err.to_string().starts_with(&format!(
            "mkfifo \"{}\": already exists (EEXIST)",
            path.display()
        )),
        "{err}"
    );
    // open_or_create reuses the caller's own FIFO, without taking ownership.
    let again = Fifo::open_or_create(&path).unwrap();
    assert!(!again.is_owner());
}

#[test]
fn opening_a_writer_without_a_reader_times_out_instead_of_hanging() {
    let dir = common::tempdir();
    let fifo = Fifo::create(dir.path().join("lonely")).unwrap();
    let err = fifo.try_open_writer().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PeerGone);
    assert!(
        err.to_string()
            .contains("(ENXIO): no process has the FIFO open for reading"),
        "{err}"
    );
    let start = Instant::now();
    let err = fifo
        .open_writer_timeout(Duration::from_millis(80))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(
        err.to_string()
            .contains("no process opened the FIFO for reading in time"),
        "{err}"
    );
    assert!(start.elapsed() >= Duration::from_millis(80));
}

#[test]
fn a_reader_without_a_writer_is_not_at_eof() {
    let dir = common::tempdir();
    let fifo = Fifo::create(dir.path().join("quiet")).unwrap();
    let reader = fifo.open_reader().unwrap();
    let mut buf = [0u8; 8];
    // A raw non-blocking read would return 0 here, which looks like end of file.
    assert_eq!(
        reader.try_read(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    let err = reader
        .read_timeout(&mut buf, Duration::from_millis(30))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    // Once a writer has come and gone, 0 really is end of file.
    let writer = fifo.open_writer_timeout(Duration::from_secs(5)).unwrap();
    writer.try_write(b"bye").unwrap();
    drop(writer);
    assert_eq!(reader.try_read(&mut buf).unwrap(), 3);
    assert_eq!(reader.try_read(&mut buf).unwrap(), 0);
}

#[test]
fn writer_gets_peer_gone_when_the_reader_leaves() {
    if common::role().is_some() {
        common::default_sigpipe();
        let dir = common::tempdir();
        let fifo = Fifo::create(dir.path().join("f")).unwrap();
        let reader = fifo.open_reader().unwrap();
        let writer = fifo.open_writer_timeout(Duration::from_secs(5)).unwrap();
        drop(reader);
        let err = writer.try_write(b"x").unwrap_err();
        common::say(err);
        std::process::exit(0);
    }
    let out = common::run_ok(common::child(
        "writer_gets_peer_gone_when_the_reader_leaves",
        "c",
        &[],
    ));
    assert!(out.contains(": peer gone (EPIPE)"), "{out}");
}

#[test]
fn owner_removes_only_its_own_file_and_keep_leaves_it() {
    let dir = common::tempdir();
    let path = dir.path().join("owned");
    let first = Fifo::create(&path).unwrap();
    // Someone replaces the FIFO: the first owner must not delete the replacement.
    std::fs::remove_file(&path).unwrap();
    let second = Fifo::create(&path).unwrap();
    drop(first);
    assert!(path.exists());
    let kept = second.keep();
    assert!(kept.exists());
    let reopened = Fifo::open(&kept).unwrap();
    drop(reopened);
    assert!(kept.exists(), "an opener never removes the FIFO");
}

#[test]
fn invalid_names_are_rejected_before_any_system_call() {
    let dir = common::tempdir();
    let long = dir.path().join("n".repeat(256));
    let bad: Vec<std::path::PathBuf> = vec![
        "".into(),
        dir.path().join(".."),
        dir.path().join("."),
        std::path::PathBuf::from(format!("{}/", dir.path().display())),
        long,
        std::path::PathBuf::from(
            <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(
                b"/tmp/nul\0byte".to_vec(),
            ),
        ),
    ];
    for path in &bad {
        for result in [
            Fifo::create(path),
            Fifo::open(path),
            Fifo::open_or_create(path),
        ] {
            let err = result.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidName, "{path:?}: {err}");
            assert_eq!(
                err.errno(),
                None,
                "rejected by ipcx, not by the kernel: {err}"
            );
        }
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing was created"
    );
}

#[test]
fn links_other_files_and_foreign_fifos_are_refused() {
    let dir = common::tempdir();
    let target = dir.path().join("target");
    let _real = Fifo::create(&target).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    for result in [Fifo::open(&link), Fifo::open_or_create(&link)] {
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }
    let file = dir.path().join("file");
    std::fs::write(&file, b"not a fifo").unwrap();
    let err = Fifo::open_or_create(&file).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert!(err.to_string().contains("not a FIFO"), "{err}");

    if !common::is_root() {
        println!("SKIPPED foreign-owner case: only root can make a FIFO owned by another user");
        return;
    }
    let foreign = dir.path().join("foreign");
    Fifo::create(&foreign).unwrap().keep();
    std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
    let err = Fifo::open_or_create(&foreign).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("belongs to uid 65534"), "{err}");
}

#[test]
fn fifo_ends_are_close_on_exec() {
    let dir = common::tempdir();
    let fifo = Fifo::create(dir.path().join("c")).unwrap();
    let r = fifo.open_reader().unwrap();
    let w = fifo.open_writer_timeout(Duration::from_secs(5)).unwrap();
    assert!(common::is_cloexec(r.as_fd()));
    assert!(common::is_cloexec(w.as_fd()));
}

#[test]
fn fifo_ends_block_in_read_and_write_like_pipes() {
    use std::io::Read;
    let dir = common::tempdir();
    let fifo = Fifo::create(dir.path().join("big")).unwrap();
    let mut reader = fifo.open_reader().unwrap();
    let mut writer = fifo.open_writer_timeout(Duration::from_secs(5)).unwrap();
    // Four times the FIFO's capacity: Write must wait for the reader, not fail with EAGAIN.
    let total = 4 * writer.capacity().unwrap();
    let sender = std::thread::spawn(move || {
        writer.write_all(&vec![3u8; total]).unwrap();
    });
    let mut got = Vec::new();
    reader.read_to_end(&mut got).unwrap();
    sender.join().unwrap();
    assert_eq!(got.len(), total);
}
