//! Shared memory across real processes: POSIX objects, memfds, System V segments, file
//! mappings, and peers that are not ipcx (C and Python).
#![allow(clippy::unwrap_used)]

mod common;

use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::time::Duration;

use ipcx::ErrorKind;
use ipcx::shm::file::{MappedFile, map_private};
use ipcx::shm::memfd::{Memfd, Seals};
use ipcx::shm::posix::{Shm, ShmOptions};
use ipcx::shm::sysv::{SysvShm, SysvShmOptions};
use ipcx::sysv::Key;
use ipcx::unix::UnixSocketExt;

use common::{arg, child, finish, record_id, reports, role, run_ok, say, unique_key, unique_name};

/// Unlinks a POSIX shm name when dropped, so a failing test that created it by other
/// means (a crashed child, raw calls) still leaves nothing behind.
struct UnlinkOnDrop(String);

impl Drop for UnlinkOnDrop {
    fn drop(&mut self) {
        let _ = Shm::unlink(&self.0);
    }
}

fn posix_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new("/dev/shm").join(name.trim_start_matches('/'))
}

// ---------------------------------------------------------------------------------------
// POSIX shared memory

#[test]
fn posix_object_is_shared_with_another_process_and_unlinked_by_its_creator() {
    if role().as_deref() == Some("opener") {
        let shm = ShmOptions::new().size(4096).open(&arg("NAME")).unwrap();
        assert!(!shm.is_owner());
        let region = shm.map().unwrap();
        let mut buf = [0u8; 5];
        region.read(0, &mut buf).unwrap();
        say(String::from_utf8_lossy(&buf));
        region.store(64, &0xfeed_u64).unwrap();
        return;
    }
    let name = unique_name("shm");
    let shm = ShmOptions::new().size(4096).create(&name).unwrap();
    assert!(shm.is_owner());
    assert_eq!(shm.size(), 4096);
    assert!(
        common::is_cloexec(shm.as_fd()),
        "reliability 22: no leak into children"
    );
    let region = shm.map().unwrap();
    region.write(0, b"hello").unwrap();
    let said = run_ok(child(
        "posix_object_is_shared_with_another_process_and_unlinked_by_its_creator",
        "opener",
        &[("NAME", &name)],
    ));
    assert_eq!(said, "hello");
    assert_eq!(region.load::<u64>(64).unwrap(), 0xfeed);
    // The opener's drop did not unlink it; the creator's does.
    assert!(posix_path(&name).exists());
    drop(region);
    drop(shm);
    assert!(!posix_path(&name).exists());
}

#[test]
fn posix_mode_is_exact_whatever_the_umask() {
    if role().as_deref() == Some("umask") {
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
        let shm = ShmOptions::new()
            .size(4096)
            .mode(0o640)
            .create(&arg("NAME"))
            .unwrap();
        say(format!("{:o}", common::mode_of(&posix_path(shm.name()))));
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0));
        let name2 = arg("NAME2");
        let shm2 = ShmOptions::new().size(4096).create(&name2).unwrap();
        say(format!("{:o}", common::mode_of(&posix_path(shm2.name()))));
        return;
    }
    let (a, b) = (unique_name("shm"), unique_name("shm"));
    let said = run_ok(child(
        "posix_mode_is_exact_whatever_the_umask",
        "umask",
        &[("NAME", &a), ("NAME2", &b)],
    ));
    assert_eq!(said, "640\n600");
    assert!(!posix_path(&a).exists() && !posix_path(&b).exists());
}

#[test]
fn posix_creation_is_exclusive_and_a_restart_after_a_crash_can_recover() {
    if role().as_deref() == Some("crasher") {
        let mut shm = ShmOptions::new().size(4096).create(&arg("NAME")).unwrap();
        shm.keep();
        say("created");
        // Die without running any destructor, as a crash would.
        common::die_like_a_crash();
    }
    let name = unique_name("shm");
    let _cleanup = UnlinkOnDrop(name.clone());
    let out = finish(
        child(
            "posix_creation_is_exclusive_and_a_restart_after_a_crash_can_recover",
            "crasher",
            &[("NAME", &name)],
        )
        .spawn()
        .unwrap(),
    );
    assert_eq!(reports(&out), "created");
    assert!(
        posix_path(&name).exists(),
        "the crashed creator's object stays"
    );

    // The restarted program's create is refused with a hint saying what to do.
    let err = ShmOptions::new().size(4096).create(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert_eq!(err.operation(), "shm_open");
    assert!(err.to_string().contains(&name), "{err}");
    assert!(err.hint().unwrap().contains("remove it"), "{err}");
    // open_or_create takes over the object: it is ours.
    let reopened = ShmOptions::new().size(4096).open_or_create(&name).unwrap();
    assert!(!reopened.is_owner());
    drop(reopened);
    // Removing it lets a fresh create succeed.
    Shm::unlink(&name).unwrap();
    let fresh = ShmOptions::new().size(4096).create(&name).unwrap();
    assert!(fresh.is_owner());
}

#[test]
fn posix_open_or_create_refuses_an_object_of_another_user() {
    if !common::is_root() {
        println!("SKIPPED: planting an object owned by another user needs root");
        return;
    }
    let name = unique_name("shm");
    let planted = ShmOptions::new()
        .size(4096)
        .mode(0o666)
        .create(&name)
        .unwrap();
    std::os::unix::fs::chown(posix_path(&name), Some(65534), Some(65534)).unwrap();
    let err = ShmOptions::new()
        .size(4096)
        .open_or_create(&name)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(err.hint().unwrap().contains("uid 65534"), "{err}");
    drop(planted);
}

#[test]
fn posix_open_without_permission_names_owner_and_mode() {
    if role().as_deref() == Some("stranger") {
        common::drop_root();
        let err = ShmOptions::new().open(&arg("NAME")).unwrap_err();
        say(format!("{:?}|{}", err.kind(), err));
        return;
    }
    let name = unique_name("shm");
    let shm = ShmOptions::new().size(4096).create(&name).unwrap();
    let cmd = child(
        "posix_open_without_permission_names_owner_and_mode",
        "stranger",
        &[("NAME", &name)],
    );
    if !common::is_root() {
        // Without root there is no other user to become; mode 0000 denies the owner too.
        rustix::fs::fchmod(shm.as_fd(), rustix::fs::Mode::empty()).unwrap();
    }
    let said = run_ok(cmd);
    let (kind, msg) = said.split_once('|').unwrap();
    assert_eq!(kind, "PermissionDenied");
    assert!(
        msg.contains("EACCES") && msg.contains("owned by uid"),
        "{msg}"
    );
}

#[test]
fn posix_open_waits_for_a_creator_to_finish_and_times_out_on_a_dead_one() {
    // Reliability 3: a creator killed half-way leaves an empty object.
    if role().as_deref() == Some("half-creator") {
        let flags =
            rustix::shm::OFlags::CREATE | rustix::shm::OFlags::EXCL | rustix::shm::OFlags::RDWR;
        let _fd = rustix::shm::open(
            arg("NAME").as_str(),
            flags,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        say("created, not allocated");
        common::die_like_a_crash();
    }
    let name = unique_name("shm");
    let _cleanup = UnlinkOnDrop(name.clone());
    let out = finish(
        child(
            "posix_open_waits_for_a_creator_to_finish_and_times_out_on_a_dead_one",
            "half-creator",
            &[("NAME", &name)],
        )
        .spawn()
        .unwrap(),
    );
    assert_eq!(reports(&out), "created, not allocated");
    let err = ShmOptions::new()
        .open_timeout(&name, Duration::from_millis(50))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(err.hint().unwrap().contains("not initialised"), "{err}");

    // A slow but live creator: the opener waits for the allocation and gets it all.
    let opener = std::thread::spawn({
        let name = name.clone();
        move || ShmOptions::new().open_timeout(&name, Duration::from_secs(20))
    });
    std::thread::sleep(Duration::from_millis(50));
    let fd = rustix::shm::open(
        name.as_str(),
        rustix::shm::OFlags::RDWR,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    rustix::fs::fallocate(&fd, rustix::fs::FallocateFlags::empty(), 0, 8192).unwrap();
    let shm = opener.join().unwrap().unwrap();
    assert_eq!(shm.size(), 8192);
    Shm::unlink(&name).unwrap();
}

#[test]
fn posix_peer_shrinking_the_object_is_caught_before_mapping() {
    // Reliability 11: mapping a truncated object would SIGBUS on touch.
    if role().as_deref() == Some("shrinker") {
        let shm = ShmOptions::new().open(&arg("NAME")).unwrap();
        rustix::fs::ftruncate(shm.as_fd(), 100).unwrap();
        say("shrunk");
        return;
    }
    let name = unique_name("shm");
    let shm = ShmOptions::new().size(1 << 16).create(&name).unwrap();
    assert_eq!(
        run_ok(child(
            "posix_peer_shrinking_the_object_is_caught_before_mapping",
            "shrinker",
            &[("NAME", &name)]
        )),
        "shrunk"
    );
    let err = shm.map().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(
        err.hint().unwrap().contains("shrank from 65536 to 100"),
        "{err}"
    );
    // An opener that asks for the size it expects is told it is short.
    let err = ShmOptions::new().size(1 << 16).open(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.hint().unwrap().contains("100 bytes"), "{err}");
}

#[test]
fn posix_full_tmpfs_fails_at_creation_with_the_room_left() {
    // Reliability 16: allocation is up front. /dev/shm refuses a request larger than the
    // whole filesystem at once, without allocating anything.
    let name = unique_name("shm");
    let err = ShmOptions::new().size(1 << 50).create(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitReached, "{err}");
    assert_eq!(err.errno(), Some(libc::ENOSPC));
    assert!(err.hint().unwrap().contains("/dev/shm has"), "{err}");
    assert!(
        !posix_path(&name).exists(),
        "a failed create leaves nothing"
    );
}

#[test]
fn posix_bad_names_and_sizes_are_refused_before_any_syscall() {
    // Reliability 14 and LTP's shm_open EINVAL/ENAMETOOLONG cases.
    let long = "x".repeat(256);
    for bad in ["", "/", "a/b", "..", ".", "nul\0", long.as_str()] {
        let err = ShmOptions::new().size(4096).create(bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidName, "{bad:?}: {err}");
        assert_eq!(err.errno(), None, "refused before the kernel saw it");
        assert_eq!(
            ShmOptions::new().open(bad).unwrap_err().kind(),
            ErrorKind::InvalidName
        );
        assert_eq!(Shm::unlink(bad).unwrap_err().kind(), ErrorKind::InvalidName);
    }
    let name = unique_name("shm");
    let err = ShmOptions::new().create(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.hint().unwrap().contains("size"), "{err}");
    let err = ShmOptions::new().open(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.errno(), Some(libc::ENOENT));
    assert_eq!(Shm::unlink(&name).unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn read_only_objects_and_regions_refuse_writes() {
    let name = unique_name("shm");
    let shm = ShmOptions::new().size(4096).create(&name).unwrap();
    let ro = ShmOptions::new().read_only(true).open(&name).unwrap();
    let region = ro.map().unwrap();
    assert!(!region.is_writable());
    let err = region.write(0, b"x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert_eq!(
        region.atomic_u32(0).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    let mut buf = [1u8; 4];
    region.read(0, &mut buf).unwrap();
    assert_eq!(buf, [0; 4]);
    drop(shm);
}

#[test]
fn region_bounds_alignment_and_overflow_are_checked() {
    // Reliability 7: an offset or length from a peer cannot reach outside the mapping.
    let memfd = Memfd::create("bounds", 4096).unwrap();
    let region = memfd.map().unwrap();
    assert_eq!(region.len(), 4096);
    region.write(4095, b"z").unwrap();
    region.read(4096, &mut []).unwrap();
    // Past the end, straddling it, and offsets whose sum with the length overflows.
    for (offset, len) in [(4096, 1), (4095, 2), (usize::MAX, 1), (usize::MAX - 2, 8)] {
        let mut probe = vec![0u8; len];
        let err = region.read(offset, &mut probe).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{offset}+{len}");
        assert!(err.hint().unwrap().contains("4096-byte region"), "{err}");
    }
    assert!(region.load::<u64>(4090).is_err());
    assert_eq!(
        region.atomic_u32(2).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        region.atomic_u64(4092).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    region
        .atomic_u64(4088)
        .unwrap()
        .store(7, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(region.load::<u64>(4088).unwrap(), 7);
    // Unaligned plain-data loads and stores are fine.
    region.store(3, &0x0102_0304_u32).unwrap();
    assert_eq!(region.load::<u32>(3).unwrap(), 0x0102_0304);
}

// ---------------------------------------------------------------------------------------
// memfd

#[test]
fn sealed_memfd_is_handed_over_a_socket_and_checked_by_the_receiver() {
    if role().as_deref() == Some("receiver") {
        use std::os::fd::FromRawFd;
        // SAFETY: the parent spawned this child with its end of the socket pair as
        // stdin (fd 0), which nothing else in the child owns.
        let sock = unsafe { UnixStream::from_raw_fd(0) };
        let mut buf = [0u8; 16];
        let (n, fds) = sock.recv_fds(&mut buf, 1).unwrap();
        assert_eq!(&buf[..n], b"frame");
        let fd = fds.into_iter().next().unwrap();
        let memfd = Memfd::from_peer(fd, Seals::WRITE | Seals::GROW, 8192).unwrap();
        let region = memfd.map_read_only().unwrap();
        let mut text = [0u8; 6];
        region.read(0, &mut text).unwrap();
        say(String::from_utf8_lossy(&text));
        // A receiver cannot shrink it (SIGBUS-proof), grow it, or write it.
        let shrink = rustix::fs::ftruncate(memfd.as_fd(), 10).unwrap_err();
        say(format!(
            "shrink EPERM {}",
            shrink == rustix::io::Errno::PERM
        ));
        let err = memfd.map().unwrap_err();
        say(format!("map rw {:?}", err.kind()));
        return;
    }
    let memfd = Memfd::create("frame", 8192).unwrap();
    {
        let region = memfd.map().unwrap();
        region.write(0, b"pixels").unwrap();
    }
    memfd
        .seal(Seals::SHRINK | Seals::GROW | Seals::WRITE | Seals::SEAL)
        .unwrap();
    assert_eq!(memfd.seals().unwrap().to_string(), "SEAL|SHRINK|GROW|WRITE");
    let (ours, theirs) = UnixStream::pair().unwrap();
    let mut cmd = child(
        "sealed_memfd_is_handed_over_a_socket_and_checked_by_the_receiver",
        "receiver",
        &[],
    );
    cmd.stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)));
    let proc = cmd.spawn().unwrap();
    ours.send_fds(b"frame", &[memfd.as_fd()]).unwrap();
    let out = finish(proc);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        reports(&out),
        "pixels\nshrink EPERM true\nmap rw PermissionDenied"
    );
}

#[test]
fn memfd_from_peer_rejects_missing_seals_small_files_and_non_memfds() {
    // Reliability 11 and 12: the receiver checks before mapping; the descriptor is closed.
    let unsealed = Memfd::create("unsealed", 4096).unwrap();
    let err = Memfd::from_peer(unsealed.into_fd(), Seals::NONE, 0).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(err.hint().unwrap().contains("SHRINK is required"), "{err}");

    let small = Memfd::create("small", 4096).unwrap();
    small.seal(Seals::SHRINK).unwrap();
    let err = Memfd::from_peer(small.into_fd(), Seals::NONE, 8192).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(err.hint().unwrap().contains("4096 bytes"), "{err}");

    let only_shrink = Memfd::create("no-write-seal", 4096).unwrap();
    only_shrink.seal(Seals::SHRINK).unwrap();
    let err = Memfd::from_peer(only_shrink.into_fd(), Seals::WRITE, 0).unwrap_err();
    assert!(err.hint().unwrap().contains("sealed with SHRINK"), "{err}");

    let dir = common::tempdir();
    let file = std::fs::File::create(dir.path().join("plain")).unwrap();
    file.set_len(4096).unwrap();
    let err = Memfd::from_peer(file.into(), Seals::NONE, 0).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(err.hint().unwrap().contains("not a memfd"), "{err}");

    let (r, _w) = ipcx::pipe::pipe().unwrap();
    let err = Memfd::from_peer(std::os::fd::OwnedFd::from(r), Seals::NONE, 0).unwrap_err();
    assert!(err.hint().unwrap().contains("not a memfd"), "{err}");
}

#[test]
fn memfd_write_seal_needs_writable_mappings_gone_and_future_write_does_not() {
    let memfd = Memfd::create("busy", 4096).unwrap();
    memfd.seal(Seals::SHRINK).unwrap();
    let region = memfd.map().unwrap();
    let err = memfd.seal(Seals::WRITE).unwrap_err();
    assert_eq!(err.errno(), Some(libc::EBUSY));
    assert!(err.hint().unwrap().contains("FUTURE_WRITE"), "{err}");
    // FUTURE_WRITE: the creator's mapping stays writable; no new writable one.
    memfd.seal(Seals::FUTURE_WRITE).unwrap();
    region.write(0, b"still mine").unwrap();
    assert_eq!(memfd.map().unwrap_err().kind(), ErrorKind::PermissionDenied);
    memfd.map_read_only().unwrap();
    memfd.seal(Seals::SEAL).unwrap();
    let err = memfd.seal(Seals::GROW).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
}

#[test]
fn memfd_names_and_sizes_are_validated() {
    let long = "m".repeat(250);
    assert_eq!(
        Memfd::create(&long, 4096).unwrap_err().kind(),
        ErrorKind::InvalidName
    );
    assert_eq!(
        Memfd::create("a\0b", 4096).unwrap_err().kind(),
        ErrorKind::InvalidName
    );
    assert_eq!(
        Memfd::create("zero", 0).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let fd = Memfd::create("cloexec", 4096).unwrap();
    assert!(common::is_cloexec(fd.as_fd()));
}

// ---------------------------------------------------------------------------------------
// System V shared memory

#[test]
fn sysv_private_segment_is_shared_by_id_and_stat_reports_attachments() {
    if role().as_deref() == Some("attacher") {
        let id: i32 = arg("ID").parse().unwrap();
        let shm = SysvShm::from_id(id).unwrap();
        assert!(!shm.is_owner());
        let region = shm.attach().unwrap();
        let mut buf = [0u8; 5];
        region.read(0, &mut buf).unwrap();
        say(String::from_utf8_lossy(&buf));
        region.write(8, b"reply").unwrap();
        say(shm.stat().unwrap().attaches);
        return;
    }
    let shm = SysvShmOptions::new()
        .size(4096)
        .create(Key::PRIVATE)
        .unwrap();
    record_id("sysv-shm-id", shm.id());
    let region = shm.attach().unwrap();
    region.write(0, b"hello").unwrap();
    let st = shm.stat().unwrap();
    assert_eq!(st.perm.mode, 0o600);
    assert_eq!(st.size, 4096);
    assert_eq!(st.attaches, 1);
    assert_eq!(st.creator_pid as u32, std::process::id());
    assert_eq!(st.perm.uid, rustix::process::geteuid().as_raw());
    assert!(st.change_time > std::time::UNIX_EPOCH);
    assert_eq!(st.detach_time, None, "nobody detached yet");
    let said = run_ok(child(
        "sysv_private_segment_is_shared_by_id_and_stat_reports_attachments",
        "attacher",
        &[("ID", &shm.id().to_string())],
    ));
    assert_eq!(said, "hello\n2");
    let mut reply = [0u8; 5];
    region.read(8, &mut reply).unwrap();
    assert_eq!(&reply, b"reply");
    let st = shm.stat().unwrap();
    assert_eq!(st.attaches, 1, "the child detached on exit");
    assert!(st.last_pid > 0 && st.attach_time.is_some() && st.detach_time.is_some());
    let id = shm.id();
    drop(shm);
    // Removed but still attached: usable until detached, then gone.
    region.write(0, b"still").unwrap();
    drop(region);
    assert_eq!(
        SysvShm::from_id(id).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn sysv_keyed_segment_creation_is_exclusive_and_open_checks_size() {
    let key = unique_key("sysv-shm");
    let shm = SysvShmOptions::new().size(8192).create(key).unwrap();
    assert_eq!(shm.key(), key);
    let err = SysvShmOptions::new().size(8192).create(key).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert!(err.to_string().contains(&key.to_string()), "{err}");
    let opened = SysvShmOptions::new().size(4096).open(key).unwrap();
    assert_eq!(opened.id(), shm.id());
    assert!(!opened.is_owner());
    let err = SysvShmOptions::new().size(16384).open(key).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.hint().unwrap().contains("8192 bytes"), "{err}");
    let same = SysvShmOptions::new()
        .size(8192)
        .open_or_create(key)
        .unwrap();
    assert_eq!(same.id(), shm.id());
    drop((opened, same));
    shm.remove().unwrap();
    let err = SysvShmOptions::new().open(key).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.errno(), Some(libc::ENOENT));
}

#[test]
fn sysv_error_cases_map_to_kinds() {
    // LTP shmget/shmat/shmctl: EINVAL (size), ENOENT, EIDRM/EINVAL (removed id).
    let err = SysvShmOptions::new()
        .size(usize::MAX)
        .create(Key::PRIVATE)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.hint().unwrap().contains("shmmax"), "{err}");
    let err = SysvShmOptions::new().create(Key::PRIVATE).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = SysvShmOptions::new().open(Key::PRIVATE).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let shm = SysvShmOptions::new()
        .size(4096)
        .create(Key::PRIVATE)
        .unwrap();
    let id = shm.id();
    record_id("sysv-shm-id", id);
    let opened = SysvShm::from_id(id).unwrap();
    shm.remove().unwrap();
    let err = opened.attach().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Removed, "{err}");
    assert_eq!(opened.stat().unwrap_err().kind(), ErrorKind::Removed);
}

#[test]
fn sysv_segment_limits_fail_with_the_limit_named() {
    // Reliability 16: ENOSPC from shmget, provoked in a private IPC namespace whose
    // limits the test lowers (the machine's are untouched).
    if role().as_deref() == Some("limited") {
        common::set_sysctl("/proc/sys/kernel/shmmni", "1");
        let first = SysvShmOptions::new()
            .size(4096)
            .create(Key::PRIVATE)
            .unwrap();
        let err = SysvShmOptions::new()
            .size(4096)
            .create(Key::PRIVATE)
            .unwrap_err();
        say(format!("{:?}|{err}", err.kind()));
        drop(first);
        common::set_sysctl("/proc/sys/kernel/shmmni", "4096");
        common::set_sysctl("/proc/sys/kernel/shmall", "2");
        let err = SysvShmOptions::new()
            .size(3 * 4096)
            .create(Key::PRIVATE)
            .unwrap_err();
        say(format!("{:?}|{err}", err.kind()));
        return;
    }
    let Some(cmd) = common::in_private_ipc_namespace(child(
        "sysv_segment_limits_fail_with_the_limit_named",
        "limited",
        &[],
    )) else {
        return;
    };
    let said = run_ok(cmd);
    let mut lines = said.lines();
    let segments = lines.next().unwrap();
    assert!(segments.starts_with("LimitReached|shmget"), "{segments}");
    assert!(
        segments.contains("ENOSPC") && segments.contains("shmmni, now 1"),
        "{segments}"
    );
    let pages = lines.next().unwrap();
    assert!(pages.starts_with("LimitReached|"), "{pages}");
    assert!(pages.contains("shmall, now 2"), "{pages}");
}

#[test]
fn sysv_owner_never_removes_a_successor_that_inherited_its_id() {
    // The owner's segment is removed behind its back and the kernel hands the same id to
    // a new segment (forced with shm_next_id in a private IPC namespace). Dropping the old
    // owner must leave the successor alone.
    if role().as_deref() == Some("reuse") {
        let first = SysvShmOptions::new()
            .size(4096)
            .create(Key::new(0x1111))
            .unwrap();
        let id = first.id();
        SysvShm::remove_key(Key::new(0x1111)).unwrap();
        common::set_sysctl("/proc/sys/kernel/shm_next_id", &id.to_string());
        let mut successor = SysvShmOptions::new()
            .size(4096)
            .create(Key::new(0x2222))
            .unwrap();
        assert_eq!(successor.id(), id, "the kernel reused the id");
        successor.keep();
        drop(first);
        say(format!(
            "successor {}",
            if SysvShm::from_id(id).is_ok() {
                "survived"
            } else {
                "removed"
            }
        ));
        return;
    }
    let Some(cmd) = common::in_private_ipc_namespace(child(
        "sysv_owner_never_removes_a_successor_that_inherited_its_id",
        "reuse",
        &[],
    )) else {
        return;
    };
    assert_eq!(run_ok(cmd), "successor survived");
}

#[test]
fn sysv_segment_mode_denies_other_users() {
    if role().as_deref() == Some("stranger") {
        common::drop_root();
        let id: i32 = arg("ID").parse().unwrap();
        let err = match SysvShm::from_id(id) {
            Ok(shm) => shm.attach().map(drop).unwrap_err(),
            Err(e) => e,
        };
        say(format!("{:?}|{err}", err.kind()));
        return;
    }
    let mode = if common::is_root() { 0o600 } else { 0o000 };
    let shm = SysvShmOptions::new()
        .size(4096)
        .mode(mode)
        .create(Key::PRIVATE)
        .unwrap();
    record_id("sysv-shm-id", shm.id());
    let said = run_ok(child(
        "sysv_segment_mode_denies_other_users",
        "stranger",
        &[("ID", &shm.id().to_string())],
    ));
    let (kind, msg) = said.split_once('|').unwrap();
    assert_eq!(kind, "PermissionDenied", "{msg}");
    assert!(msg.contains("EACCES"), "{msg}");
}

#[test]
fn sysv_segment_is_read_and_written_by_a_c_peer() {
    let Some(peer) = common::compile_c(
        "shm-peer",
        r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/shm.h>
int main(int argc, char **argv) {
    key_t key = (key_t)strtol(argv[1], NULL, 10);
    int id = shmget(key, 0, 0);
    if (id < 0) { perror("shmget"); return 1; }
    char *p = shmat(id, NULL, 0);
    if (p == (void *)-1) { perror("shmat"); return 1; }
    printf("%s\n", p);
    strcpy(p + 100, "from C");
    return shmdt(p) != 0;
}
"#,
        &[],
    ) else {
        return;
    };
    let key = unique_key("sysv-shm");
    let shm = SysvShmOptions::new().size(4096).create(key).unwrap();
    let region = shm.attach().unwrap();
    region.write(0, b"from ipcx\0").unwrap();
    let out = std::process::Command::new(peer)
        .arg(key.raw().to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from ipcx\n");
    let mut buf = [0u8; 6];
    region.read(100, &mut buf).unwrap();
    assert_eq!(&buf, b"from C");
}

// ---------------------------------------------------------------------------------------
// Peers that are not ipcx

#[test]
fn python_shared_memory_attaches_to_an_ipcx_object_by_name() {
    let name = unique_name("shm");
    let shm = ShmOptions::new().size(4096).create(&name).unwrap();
    let region = shm.map().unwrap();
    region.write(0, b"written by ipcx").unwrap();
    // Python's resource tracker (before 3.13) unlinks objects it merely attached to when
    // the process exits; unregister so the name stays the creator's to remove.
    let script = r#"
import sys
from multiprocessing import shared_memory, resource_tracker
shm = shared_memory.SharedMemory(name=sys.argv[1], create=False)
resource_tracker.unregister(shm._name, "shared_memory")
print(bytes(shm.buf[:15]).decode())
shm.buf[100:111] = b"from python"
shm.close()
"#;
    let Some(mut cmd) = common::python(script, &[name.trim_start_matches('/')]) else {
        return;
    };
    let out = finish(cmd.spawn().unwrap());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "written by ipcx\n");
    let mut buf = [0u8; 11];
    region.read(100, &mut buf).unwrap();
    assert_eq!(&buf, b"from python");
    assert!(posix_path(&name).exists(), "python did not unlink it");
}

// ---------------------------------------------------------------------------------------
// File mappings

#[test]
fn shared_file_mapping_is_seen_by_another_process_and_grows() {
    if role().as_deref() == Some("mapper") {
        let file = MappedFile::open(arg("PATH"), false).unwrap();
        let mut buf = [0u8; 4];
        file.region().read(0, &mut buf).unwrap();
        say(String::from_utf8_lossy(&buf));
        file.region().write(5000, b"grown").unwrap();
        return;
    }
    let dir = common::tempdir();
    let path = dir.path().join("map.bin");
    let mut file = MappedFile::create(&path, 4096).unwrap();
    assert_eq!(common::mode_of(&path), 0o600);
    file.region().write(0, b"data").unwrap();
    file.grow(8192).unwrap();
    assert_eq!(file.region().len(), 8192);
    let err = file.grow(100).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let said = run_ok(child(
        "shared_file_mapping_is_seen_by_another_process_and_grows",
        "mapper",
        &[("PATH", path.to_str().unwrap())],
    ));
    assert_eq!(said, "data");
    let mut buf = [0u8; 5];
    file.region().read(5000, &mut buf).unwrap();
    assert_eq!(&buf, b"grown");
    file.flush().unwrap();
    assert_eq!(&std::fs::read(&path).unwrap()[5000..5005], b"grown");
    assert_eq!(
        MappedFile::create(&path, 10).unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
}

#[test]
fn private_file_mapping_keeps_writes_to_itself() {
    let dir = common::tempdir();
    let path = dir.path().join("cow.bin");
    std::fs::write(&path, b"original").unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let region = map_private(&file).unwrap();
    region.write(0, b"modified").unwrap();
    let mut buf = [0u8; 8];
    region.read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"modified");
    assert_eq!(std::fs::read(&path).unwrap(), b"original");
    let empty = std::fs::File::create(dir.path().join("empty")).unwrap();
    assert_eq!(
        map_private(&empty).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

// ---------------------------------------------------------------------------------------
// Regressions from review: races, planted files, process limits

#[test]
fn memfd_receiver_is_not_fooled_by_a_peer_that_truncates_then_seals() {
    // Reliability 11: the peer keeps a copy of the descriptor and, while the receiver
    // checks it, truncates it to nothing and only then seals SHRINK. The receiver must
    // read the seals before the size, or it maps a stale size and dies of SIGBUS (which
    // would kill this test binary).
    let mut mapped = 0;
    for _ in 0..5000 {
        let memfd = Memfd::create("race", 4096).unwrap();
        let peer = memfd.as_fd().try_clone_to_owned().unwrap();
        let racer = std::thread::spawn(move || {
            rustix::fs::ftruncate(&peer, 0).unwrap();
            rustix::fs::fcntl_add_seals(&peer, rustix::fs::SealFlags::SHRINK).unwrap();
        });
        if let Ok(received) = Memfd::from_peer(memfd.into_fd(), Seals::NONE, 0) {
            let region = received.map_read_only().unwrap();
            region.read(region.len() - 1, &mut [0u8]).unwrap();
            mapped += 1;
        }
        racer.join().unwrap();
    }
    // Whatever the interleavings, every accepted memfd was safe to touch; none with a
    // size of 0 was accepted.
    println!("{mapped} of 5000 accepted (sealed before the check, at full size)");
}

#[test]
fn posix_planted_symlinks_and_fifos_are_refused() {
    // Reliability 24: something planted at the name is never followed or reused.
    let dir = common::tempdir();
    let target = dir.path().join("victim");
    std::fs::write(&target, vec![0u8; 8192]).unwrap();
    let link = unique_name("shm");
    let _cleanup = UnlinkOnDrop(link.clone());
    std::os::unix::fs::symlink(&target, posix_path(&link)).unwrap();
    for result in [
        ShmOptions::new().open(&link),
        ShmOptions::new().size(4096).open_or_create(&link),
    ] {
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
        assert!(err.hint().unwrap().contains("symbolic link"), "{err}");
    }
    assert_eq!(
        ShmOptions::new()
            .size(4096)
            .create(&link)
            .unwrap_err()
            .kind(),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        std::fs::read(&target).unwrap(),
        vec![0u8; 8192],
        "untouched"
    );

    let fifo = unique_name("shm");
    let _cleanup_fifo = UnlinkOnDrop(fifo.clone());
    rustix::fs::mknodat(
        rustix::fs::CWD,
        posix_path(&fifo),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let err = ShmOptions::new().open(&fifo).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(
        err.hint().unwrap().contains("not a shared memory object"),
        "{err}"
    );
}

#[test]
fn same_user_openers_racing_a_creator_are_never_denied() {
    // The creator gives itself read and write from the first instant, so another
    // process of the same user never meets a half-made object it may not open.
    if role().as_deref() == Some("racers") {
        common::drop_root();
        let name = arg("NAME");
        let racers: Vec<_> = (0..2)
            .map(|_| {
                let name = name.clone();
                std::thread::spawn(move || {
                    let mut denied = 0;
                    for _ in 0..300 {
                        match ShmOptions::new().size(4096).open_or_create(&name) {
                            Ok(_) => {}
                            Err(e) if e.kind() == ErrorKind::PermissionDenied => denied += 1,
                            Err(e) => panic!("{e}"),
                        }
                    }
                    denied
                })
            })
            .collect();
        let denied: usize = racers.into_iter().map(|t| t.join().unwrap()).sum();
        say(format!("denied {denied}"));
        return;
    }
    let name = unique_name("shm");
    let _cleanup = UnlinkOnDrop(name.clone());
    let said = run_ok(child(
        "same_user_openers_racing_a_creator_are_never_denied",
        "racers",
        &[("NAME", &name)],
    ));
    assert_eq!(said, "denied 0");
}

#[test]
fn file_size_limit_is_an_error_not_a_sigxfsz_death() {
    if role().as_deref() == Some("limited") {
        let limit = rustix::process::Rlimit {
            current: Some(1 << 20),
            maximum: rustix::process::getrlimit(rustix::process::Resource::Fsize).maximum,
        };
        rustix::process::setrlimit(rustix::process::Resource::Fsize, limit).unwrap();
        let err = Memfd::create("big", 2 << 20).unwrap_err();
        say(format!("{:?}|{err}", err.kind()));
        let err = ShmOptions::new()
            .size(2 << 20)
            .create(&arg("NAME"))
            .unwrap_err();
        say(format!("{:?}|{err}", err.kind()));
        let path = std::path::PathBuf::from(arg("PATH"));
        let err = MappedFile::create(&path, 2 << 20).unwrap_err();
        say(format!("{:?}|{err}", err.kind()));
        say(format!("file left: {}", path.exists()));
        return;
    }
    let name = unique_name("shm");
    let _cleanup = UnlinkOnDrop(name.clone());
    let dir = common::tempdir();
    let path = dir.path().join("big.bin");
    let said = run_ok(child(
        "file_size_limit_is_an_error_not_a_sigxfsz_death",
        "limited",
        &[("NAME", &name), ("PATH", path.to_str().unwrap())],
    ));
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(lines.len(), 4, "{said}");
    for line in &lines[..3] {
        assert!(line.starts_with("LimitReached|"), "{line}");
        assert!(line.contains("RLIMIT_FSIZE, now 1048576"), "{line}");
    }
    assert_eq!(lines[3], "file left: false");
    assert!(!posix_path(&name).exists());
}

#[test]
fn mapped_file_that_cannot_be_mapped_is_not_left_behind() {
    // The address-space limit makes the mmap itself fail, after the file exists.
    if role().as_deref() == Some("small-address-space") {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let vm_kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmSize:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        let limit = rustix::process::Rlimit {
            current: Some(vm_kib * 1024 + (256 << 20)),
            maximum: None,
        };
        rustix::process::setrlimit(rustix::process::Resource::As, limit).unwrap();
        let path = std::path::PathBuf::from(arg("PATH"));
        let err = MappedFile::create(&path, 8 << 30).unwrap_err();
        say(format!(
            "{:?}|{}|left {}",
            err.kind(),
            err.operation(),
            path.exists()
        ));
        return;
    }
    let dir = common::tempdir();
    let path = dir.path().join("huge.bin");
    let said = run_ok(child(
        "mapped_file_that_cannot_be_mapped_is_not_left_behind",
        "small-address-space",
        &[("PATH", path.to_str().unwrap())],
    ));
    assert_eq!(said, "LimitReached|mmap|left false");
}

#[test]
fn posix_full_tmpfs_fails_at_creation_and_leaves_nothing() {
    // Reliability 16 for real: a 1 MiB tmpfs over /dev/shm in a private mount namespace
    // has room for one 768 KiB object, not two; the second fails at creation.
    if role().as_deref() == Some("small-tmpfs") {
        // SAFETY: mount(2) with valid NUL-terminated strings; it changes only this
        // private mount namespace.
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                c"/dev/shm".as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                c"size=1m".as_ptr().cast(),
            )
        };
        assert_eq!(rc, 0, "mount tmpfs: {}", std::io::Error::last_os_error());
        let first = ShmOptions::new().size(768 << 10).create("/first").unwrap();
        let err = ShmOptions::new()
            .size(768 << 10)
            .create("/second")
            .unwrap_err();
        say(format!("{:?}|{err}", err.kind()));
        say(format!("second left: {}", posix_path("/second").exists()));
        drop(first);
        return;
    }
    let Some(cmd) = common::in_private_ipc_namespace(child(
        "posix_full_tmpfs_fails_at_creation_and_leaves_nothing",
        "small-tmpfs",
        &[],
    )) else {
        return;
    };
    let said = run_ok(cmd);
    let mut lines = said.lines();
    let err = lines.next().unwrap();
    assert!(
        err.starts_with("LimitReached|fallocate \"/second\""),
        "{err}"
    );
    assert!(
        err.contains("ENOSPC") && err.contains("of 1048576"),
        "{err}"
    );
    assert_eq!(lines.next(), Some("second left: false"));
}

#[test]
fn region_copies_are_exact_at_every_alignment() {
    let memfd = Memfd::create("copies", 4096).unwrap();
    let region = memfd.map().unwrap();
    let pattern: Vec<u8> = (0..64u8)
        .map(|b| b.wrapping_mul(37).wrapping_add(11))
        .collect();
    for offset in 0..17 {
        for len in 0..40 {
            region.write(100, &[0xee; 80]).unwrap();
            region.write(100 + offset, &pattern[..len]).unwrap();
            let mut back = vec![0u8; len];
            region.read(100 + offset, &mut back).unwrap();
            assert_eq!(back, pattern[..len], "offset {offset} len {len}");
            let mut before = [0u8; 1];
            region.read(99 + offset, &mut before).unwrap();
            if offset > 0 {
                assert_eq!(before, [0xee], "byte before offset {offset} untouched");
            }
            let mut after = [0u8; 1];
            region.read(100 + offset + len, &mut after).unwrap();
            assert_eq!(
                after,
                [0xee],
                "byte after offset {offset} len {len} untouched"
            );
        }
    }
}
