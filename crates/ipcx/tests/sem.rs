//! Semaphores across real processes: POSIX named semaphores and System V sets, their
//! ownership, modes, limits, errors, and the faults of `reliability.md` they must survive
//! (a killed holder, a creator killed before initialising, a crashed run's leftovers,
//! signals, removal while blocked). Every name and key is recorded in the test ledger.
#![allow(clippy::unwrap_used)] // a failed unwrap is how a test reports failure

mod common;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use ipcx::ErrorKind;
use ipcx::sem::posix::{self, NamedSemaphore, SemOptions};
use ipcx::sem::sysv::{SEMVMX, SemOp, SemSet, SemSetOptions};
use ipcx::sysv::Key;

/// A bound for waits that are expected to succeed.
const T: Duration = Duration::from_secs(20);

/// Unlinks a named semaphore when dropped, for names a killed child left behind.
struct UnlinkGuard(String);

impl Drop for UnlinkGuard {
    fn drop(&mut self) {
        let _ = NamedSemaphore::unlink(&self.0);
    }
}

/// Removes the System V set with a key when dropped, for sets a killed child left behind.
struct RemoveGuard(Key);

impl Drop for RemoveGuard {
    fn drop(&mut self) {
        let _ = SemSet::remove_key(self.0);
    }
}

/// Kills and reaps a child when dropped, so a failing test leaves no process behind.
struct KillOnDrop(Option<Child>);

impl KillOnDrop {
    fn spawn(mut cmd: Command) -> KillOnDrop {
        KillOnDrop(Some(cmd.spawn().unwrap()))
    }

    fn child(&mut self) -> &mut Child {
        self.0.as_mut().unwrap()
    }

    /// Reads the child's stdout until it reports `line` with `common::say`, for at most
    /// [`common::CHILD_LIMIT`]. Takes the child's stdout for good.
    fn wait_for_report(&mut self, line: &str) {
        use std::io::BufRead;
        let stdout = self.child().stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(stdout).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let want = format!("@@{line}");
        let deadline = Instant::now() + common::CHILD_LIMIT;
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(got) if got == want => return,
                Ok(_) => continue,
                Err(_) => panic!(
                    "the child did not report {line:?} within {:?} (or exited)",
                    common::CHILD_LIMIT
                ),
            }
        }
    }

    /// Sends SIGKILL and reaps the child.
    fn kill(&mut self) {
        if let Some(mut child) = self.0.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Waits (bounded) for the child to exit and returns its output.
    fn finish(&mut self) -> std::process::Output {
        common::finish(self.0.take().unwrap())
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `cond` until it holds, for at most [`common::CHILD_LIMIT`].
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < common::CHILD_LIMIT,
            "{what} did not happen within {:?}",
            common::CHILD_LIMIT
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The file glibc keeps a named semaphore in.
fn sem_file(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/dev/shm/sem.{}", name.trim_start_matches('/')))
}

/// A System V set of `values`, created with a fresh key recorded in the ledger.
fn new_set(values: &[u16]) -> SemSet {
    SemSetOptions::new()
        .initial_values(values)
        .create(common::unique_key("sysv-sem"))
        .unwrap()
}

/// The SEMOPM and SEMMSL limits of this machine.
fn sem_limits() -> (usize, usize) {
    let text = std::fs::read_to_string("/proc/sys/kernel/sem").unwrap();
    let f: Vec<usize> = text
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    (f[2], f[0])
}

// ---------------------------------------------------------------------------------------
// POSIX named semaphores

#[test]
fn posix_post_in_one_process_wakes_a_wait_in_another() {
    if common::role().is_some() {
        let sem = NamedSemaphore::open(&common::arg("NAME")).unwrap();
        assert!(!sem.is_owner());
        sem.post().unwrap();
        sem.post().unwrap();
        drop(sem);
        common::say("posted");
        std::process::exit(0);
    }
    let name = common::unique_name("sem");
    let sem = NamedSemaphore::create(&name).unwrap();
    assert!(sem.is_owner());
    let child = common::child(
        "posix_post_in_one_process_wakes_a_wait_in_another",
        "poster",
        &[("NAME", &name)],
    )
    .spawn()
    .unwrap();
    sem.wait_timeout(T).unwrap();
    sem.wait().unwrap();
    let out = common::finish(child);
    assert!(out.status.success());
    assert_eq!(common::reports(&out), "posted");
    assert_eq!(sem.value().unwrap(), 0);
    // The child only opened the semaphore: its exit left the name alone.
    assert!(sem_file(&name).exists());
    drop(sem);
    assert!(!sem_file(&name).exists(), "the creator unlinks on drop");
}

#[test]
fn posix_handle_is_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<NamedSemaphore>();
    let name = common::unique_name("sem");
    let sem = std::sync::Arc::new(NamedSemaphore::create(&name).unwrap());
    let waiter = {
        let sem = sem.clone();
        std::thread::spawn(move || sem.wait_timeout(T))
    };
    sem.post().unwrap();
    waiter.join().unwrap().unwrap();
}

#[test]
fn posix_try_and_timeout_forms_fail_typed() {
    // LTP sem_wait/sem_timedwait: EAGAIN and ETIMEDOUT.
    let name = common::unique_name("sem");
    let sem = NamedSemaphore::create(&name).unwrap();
    let err = sem.try_wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
    assert_eq!(err.errno(), Some(libc::EAGAIN));
    assert!(
        err.to_string()
            .starts_with(&format!("sem_trywait \"{name}\": would block (EAGAIN)")),
        "{err}"
    );
    let start = Instant::now();
    let err = sem.wait_timeout(Duration::from_millis(50)).unwrap_err();
    assert!(start.elapsed() >= Duration::from_millis(50));
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(
        err.to_string().contains(&format!("\"{name}\": timed out")),
        "{err}"
    );
    assert!(err.to_string().contains("stayed 0 for 50ms"), "{err}");
    // A zero timeout still takes a unit that is there.
    sem.post().unwrap();
    sem.wait_timeout(Duration::ZERO).unwrap();
    sem.post().unwrap();
    sem.try_wait().unwrap();
}

#[test]
fn posix_waits_retry_eintr_with_the_remaining_time() {
    let name = common::unique_name("sem");
    let sem = NamedSemaphore::create(&name).unwrap();
    let start = Instant::now();
    let (result, signals) =
        common::under_signal_storm(|| sem.wait_timeout(Duration::from_millis(300)));
    assert!(signals > 0, "the storm interrupted the wait");
    assert_eq!(result.unwrap_err().kind(), ErrorKind::TimedOut);
    assert!(start.elapsed() >= Duration::from_millis(300));

    // The blocking form is not ended by signals either: only a post ends it.
    let poster = {
        let name = name.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            NamedSemaphore::open(&name).unwrap().post().unwrap();
        })
    };
    let (result, signals) = common::under_signal_storm(|| sem.wait());
    poster.join().unwrap();
    result.unwrap();
    assert!(signals > 0);
}

#[test]
fn posix_values_beyond_sem_value_max_are_refused() {
    // LTP sem_open EINVAL (value > SEM_VALUE_MAX) and sem_post EOVERFLOW.
    let max = posix::value_max();
    assert_eq!(max, i32::MAX as u32);
    let name = common::unique_name("sem");
    let err = SemOptions::new()
        .initial(max + 1)
        .create(&name)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string()
            .contains("exceeds SEM_VALUE_MAX (2147483647)"),
        "{err}"
    );
    assert!(!sem_file(&name).exists(), "nothing was created");

    let sem = SemOptions::new().initial(max).create(&name).unwrap();
    assert_eq!(sem.value().unwrap(), max);
    let err = sem.post().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitReached);
    assert!(
        err.to_string().starts_with(&format!(
            "sem_post \"{name}\": limit reached (EOVERFLOW): the value is already \
             SEM_VALUE_MAX (2147483647)"
        )),
        "{err}"
    );
    sem.try_wait().unwrap();
    sem.post().unwrap();
}

#[test]
fn posix_creation_is_exclusive_with_an_exact_mode() {
    if common::role().is_some() {
        // A umask of 0 must not widen the default, and 077 must not narrow an explicit mode.
        rustix::process::umask(rustix::fs::Mode::empty());
        let a = NamedSemaphore::create(&common::arg("A")).unwrap();
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
        let b = SemOptions::new()
            .mode(0o640)
            .create(&common::arg("B"))
            .unwrap();
        common::say(format!(
            "{:o} {:o}",
            common::mode_of(&sem_file(a.name())),
            common::mode_of(&sem_file(b.name()))
        ));
        drop((a, b));
        std::process::exit(0);
    }
    let (a, b) = (common::unique_name("sem"), common::unique_name("sem"));
    let out = common::run_ok(common::child(
        "posix_creation_is_exclusive_with_an_exact_mode",
        "c",
        &[("A", &a), ("B", &b)],
    ));
    assert_eq!(out, "600 640");
    assert!(!sem_file(&a).exists() && !sem_file(&b).exists());

    // LTP sem_open EEXIST and ENOENT.
    let name = common::unique_name("sem");
    let err = NamedSemaphore::open(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        err.to_string()
            .starts_with(&format!("sem_open \"{name}\": not found (ENOENT)")),
        "{err}"
    );
    let sem = SemOptions::new().initial(2).create(&name).unwrap();
    let err = NamedSemaphore::create(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert!(
        err.to_string()
            .starts_with(&format!("sem_open \"{name}\": already exists (EEXIST)")),
        "{err}"
    );
    assert!(err.to_string().contains("NamedSemaphore::unlink"), "{err}");
    // open_or_create reuses the caller's own semaphore, without taking ownership.
    let again = NamedSemaphore::open_or_create(&name).unwrap();
    assert!(!again.is_owner());
    assert_eq!(again.value().unwrap(), 2);
    drop(again);
    assert!(sem_file(&name).exists());
    drop(sem);
    // With the name free, open_or_create creates and owns.
    let mut created = NamedSemaphore::open_or_create(&name).unwrap();
    assert!(created.is_owner());
    created.keep();
    assert!(!created.is_owner());
    drop(created);
    assert!(sem_file(&name).exists(), "keep leaves the name in place");
    NamedSemaphore::unlink(&name).unwrap();
    let err = NamedSemaphore::unlink(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().starts_with("sem_unlink"), "{err}");
}

#[test]
fn posix_owner_unlinks_only_its_own_semaphore() {
    let name = common::unique_name("sem");
    let first = NamedSemaphore::create(&name).unwrap();
    // Someone replaces the semaphore: the first owner must not unlink the replacement.
    NamedSemaphore::unlink(&name).unwrap();
    let second = NamedSemaphore::create(&name).unwrap();
    drop(first);
    assert!(sem_file(&name).exists());
    drop(second);
    assert!(!sem_file(&name).exists());
}

#[test]
fn posix_open_without_permission_is_refused() {
    // LTP sem_open EACCES. Root ignores modes, so the opener drops root first.
    if common::role().is_some() {
        common::drop_root();
        let err = NamedSemaphore::open(&common::arg("NAME")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        common::say(err);
        std::process::exit(0);
    }
    let name = common::unique_name("sem");
    let _sem = SemOptions::new().mode(0o000).create(&name).unwrap();
    assert_eq!(common::mode_of(&sem_file(&name)), 0);
    let out = common::run_ok(common::child(
        "posix_open_without_permission_is_refused",
        "stranger",
        &[("NAME", &name)],
    ));
    let me = rustix::process::geteuid().as_raw();
    assert!(
        out.starts_with(&format!("sem_open \"{name}\": permission denied (EACCES)")),
        "{out}"
    );
    assert!(
        out.contains(&format!("is owned by uid {me} with mode 0000")),
        "{out}"
    );
}

#[test]
fn posix_foreign_semaphore_is_refused() {
    if common::role().is_some() {
        common::drop_root();
        let mut sem = SemOptions::new()
            .mode(0o666)
            .create(&common::arg("NAME"))
            .unwrap();
        sem.keep();
        drop(sem);
        common::say("planted");
        std::process::exit(0);
    }
    if !common::is_root() {
        println!("SKIPPED: only root can plant a semaphore owned by another user");
        return;
    }
    let name = common::unique_name("sem");
    let _guard = UnlinkGuard(name.clone());
    let out = common::run_ok(common::child(
        "posix_foreign_semaphore_is_refused",
        "planter",
        &[("NAME", &name)],
    ));
    assert_eq!(out, "planted");
    let err = NamedSemaphore::open_or_create(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("belongs to uid 65534"), "{err}");
    assert!(
        sem_file(&name).exists(),
        "the foreign semaphore was left alone"
    );
}

#[test]
fn posix_invalid_names_are_rejected_before_any_system_call() {
    // LTP sem_open ENAMETOOLONG and EINVAL (bad names).
    let too_long = "x".repeat(posix::NAME_MAX + 1);
    let bad = [
        "",
        "/",
        "//",
        "a/b",
        "/a/b",
        ".",
        "..",
        "/..",
        "nul\0byte",
        &too_long,
    ];
    for name in bad {
        let errors = [
            NamedSemaphore::create(name).map(drop).unwrap_err(),
            NamedSemaphore::open(name).map(drop).unwrap_err(),
            NamedSemaphore::open_or_create(name).map(drop).unwrap_err(),
            NamedSemaphore::unlink(name).unwrap_err(),
        ];
        for err in errors {
            assert_eq!(err.kind(), ErrorKind::InvalidName, "{name:?}: {err}");
            assert_eq!(err.errno(), None, "rejected by ipcx, not the kernel: {err}");
        }
    }
    let err = NamedSemaphore::create(&too_long).unwrap_err();
    assert!(
        err.to_string().contains("252 bytes; the limit is 251"),
        "{err}"
    );
    // Exactly the limit works: "sem." plus 251 bytes is the longest file name.
    let mut longest = common::unique_name("sem");
    longest.push_str(&"x".repeat(posix::NAME_MAX + 1 - longest.len()));
    common::record("sem", &longest);
    let sem = NamedSemaphore::create(&longest).unwrap();
    sem.post().unwrap();
    assert_eq!(NamedSemaphore::open(&longest).unwrap().value().unwrap(), 1);
}

#[test]
fn posix_restart_after_a_crash() {
    if common::role().is_some() {
        let sem = SemOptions::new()
            .initial(1)
            .create(&common::arg("NAME"))
            .unwrap();
        common::say("created");
        std::thread::sleep(common::CHILD_LIMIT);
        drop(sem);
        std::process::exit(1);
    }
    let name = common::unique_name("sem");
    let _guard = UnlinkGuard(name.clone());
    let mut child = KillOnDrop::spawn(common::child(
        "posix_restart_after_a_crash",
        "crasher",
        &[("NAME", &name)],
    ));
    child.wait_for_report("created");
    child.kill();
    assert!(
        sem_file(&name).exists(),
        "the killed creator left its semaphore"
    );

    // The restarted program is told what happened and what to do...
    let err = NamedSemaphore::create(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert!(err.to_string().contains("left by a crashed run"), "{err}");
    // ...and can either reuse the semaphore, whose value survived...
    let old = NamedSemaphore::open(&name).unwrap();
    assert_eq!(old.value().unwrap(), 1);
    drop(old);
    // ...or remove it and start afresh.
    NamedSemaphore::unlink(&name).unwrap();
    let fresh = NamedSemaphore::create(&name).unwrap();
    assert!(fresh.is_owner());
    assert_eq!(fresh.value().unwrap(), 0);
}

// ---------------------------------------------------------------------------------------
// System V semaphore sets

#[test]
fn sysv_undo_gives_back_what_a_killed_holder_took() {
    if common::role().is_some() {
        let key = Key::new(common::arg("KEY").parse().unwrap());
        let set = SemSet::open(key).unwrap();
        assert!(!set.is_owner());
        set.op(&[SemOp::acquire(0).undo()]).unwrap();
        common::say("holding");
        // Hold the semaphore until the parent kills this process.
        std::thread::sleep(common::CHILD_LIMIT);
        std::process::exit(1);
    }
    let set = SemSetOptions::new()
        .initial(1)
        .create(common::unique_key("sysv-sem"))
        .unwrap();
    let key = set.key().raw().to_string();
    let mut child = KillOnDrop::spawn(common::child(
        "sysv_undo_gives_back_what_a_killed_holder_took",
        "holder",
        &[("KEY", &key)],
    ));
    child.wait_for_report("holding");
    assert_eq!(set.get(0).unwrap(), 0);
    let err = set.try_op(&[SemOp::acquire(0)]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock);

    child.kill(); // SIGKILL: no destructor, no clean-up code runs in the holder
    // The kernel reversed the holder's SEM_UNDO operation when it died.
    set.op_timeout(&[SemOp::acquire(0)], T).unwrap();
    assert_eq!(set.get(0).unwrap(), 0);
}

#[test]
fn sysv_operations_apply_atomically() {
    if common::role().is_some() {
        let set = SemSet::from_id(common::arg("ID").parse().unwrap()).unwrap();
        set.op(&[SemOp::acquire(0), SemOp::acquire(1)]).unwrap();
        common::say("took both");
        std::process::exit(0);
    }
    let set = SemSetOptions::new()
        .initial_values(&[1, 0])
        .create(Key::PRIVATE)
        .unwrap();
    common::record_id("sysv-sem-id", set.id());
    // Semaphore 1 is 0, so the pair cannot proceed, and semaphore 0 is not taken alone.
    let err = set
        .try_op(&[SemOp::acquire(0), SemOp::acquire(1)])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
    assert_eq!(set.get_all().unwrap(), [1, 0]);

    let id = set.id().to_string();
    let mut child = KillOnDrop::spawn(common::child(
        "sysv_operations_apply_atomically",
        "taker",
        &[("ID", &id)],
    ));
    wait_until("the child blocking on semaphore 1", || {
        set.waiting_to_take(1).unwrap() == 1
    });
    // While it waits, semaphore 0 is still untouched.
    assert_eq!(set.get(0).unwrap(), 1);
    set.set(1, 1).unwrap();
    let out = child.finish();
    assert!(out.status.success());
    assert_eq!(common::reports(&out), "took both");
    assert_eq!(set.get_all().unwrap(), [0, 0]);
    assert_eq!(set.waiting_to_take(1).unwrap(), 0);
    assert_eq!(set.waiting_for_zero(0).unwrap(), 0);
}

#[test]
fn sysv_try_and_timeout_forms_fail_typed() {
    // LTP semop EAGAIN (IPC_NOWAIT) and semtimedop EAGAIN (timeout), here TimedOut.
    let set = new_set(&[0]);
    let object = format!("\"sem set id {} ({})\"", set.id(), set.key());
    let err = set.try_op(&[SemOp::acquire(0)]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
    assert!(
        err.to_string()
            .starts_with(&format!("semop {object}: would block (EAGAIN)")),
        "{err}"
    );
    let start = Instant::now();
    let err = set
        .op_timeout(&[SemOp::acquire(0)], Duration::from_millis(50))
        .unwrap_err();
    assert!(start.elapsed() >= Duration::from_millis(50));
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(
        err.to_string()
            .starts_with(&format!("semtimedop {object}: timed out")),
        "{err}"
    );
    // Wait-for-zero proceeds at once on a 0 value; nothing was taken by the failures.
    set.try_op(&[SemOp::wait_zero(0)]).unwrap();
    set.op_timeout(&[SemOp::release(0)], Duration::ZERO)
        .unwrap();
    assert_eq!(set.get(0).unwrap(), 1);
    let err = set.try_op(&[SemOp::wait_zero(0)]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
}

#[test]
fn sysv_waits_retry_eintr_with_the_remaining_time() {
    let set = new_set(&[0]);
    let start = Instant::now();
    let (result, signals) = common::under_signal_storm(|| {
        set.op_timeout(&[SemOp::acquire(0)], Duration::from_millis(300))
    });
    assert!(signals > 0, "the storm interrupted the wait");
    assert_eq!(result.unwrap_err().kind(), ErrorKind::TimedOut);
    assert!(start.elapsed() >= Duration::from_millis(300));

    let id = set.id();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        SemSet::from_id(id)
            .unwrap()
            .op(&[SemOp::release(0)])
            .unwrap();
    });
    let (result, signals) = common::under_signal_storm(|| set.op(&[SemOp::acquire(0)]));
    releaser.join().unwrap();
    result.unwrap();
    assert!(signals > 0);
}

#[test]
fn sysv_removal_wakes_a_blocked_process_with_removed() {
    // LTP semop EIDRM; then EINVAL for every later call on the stale id.
    if common::role().is_some() {
        let set = SemSet::from_id(common::arg("ID").parse().unwrap()).unwrap();
        let err = set.op(&[SemOp::acquire(0)]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Removed);
        common::say(err);
        std::process::exit(0);
    }
    let set = new_set(&[0]);
    let id = set.id();
    let object = format!("\"sem set id {id} ({})\"", set.key());
    let mut child = KillOnDrop::spawn(common::child(
        "sysv_removal_wakes_a_blocked_process_with_removed",
        "waiter",
        &[("ID", &id.to_string())],
    ));
    wait_until("the child blocking", || {
        set.waiting_to_take(0).unwrap() == 1
    });
    let stale = SemSet::from_id(id).unwrap();
    set.remove().unwrap();
    let out = child.finish();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        common::reports(&out),
        format!(
            "semop {object}: removed while in use (EIDRM): the set was removed (IPC_RMID) while \
             this call waited"
        )
    );
    for err in [
        stale.try_op(&[SemOp::release(0)]).unwrap_err(),
        stale.get(0).unwrap_err(),
        stale.stat().unwrap_err(),
        stale.remove().unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::Removed, "{err}");
        assert_eq!(err.errno(), Some(libc::EINVAL));
    }
    // Like SysvShm::from_id and SysvMq::from_id: an id that names no set is NotFound.
    for id in [id, -1] {
        let err = SemSet::from_id(id).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(
            err.to_string(),
            format!(
                "semctl IPC_STAT \"sem set id {id}\": not found (EINVAL): no set has this id \
                 (removed, or never created)"
            )
        );
    }
}

#[test]
fn sysv_values_above_semvmx_are_refused() {
    // LTP semop ERANGE and semctl SETVAL ERANGE.
    let set = new_set(&[SEMVMX, 0]);
    let object = format!("\"sem set id {} ({})\"", set.id(), set.key());
    let err = set.op(&[SemOp::release(0)]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitReached);
    assert!(
        err.to_string()
            .starts_with(&format!("semop {object}: limit reached (ERANGE)")),
        "{err}"
    );
    assert!(err.to_string().contains("SEMVMX (32767)"), "{err}");
    assert_eq!(set.get(0).unwrap(), SEMVMX, "nothing was applied");
    // Setting a value: the hint speaks of the value given, not of an addition.
    let err = set.set(1, SEMVMX + 1).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitReached);
    assert_eq!(
        err.to_string(),
        format!(
            "semctl SETVAL {object}: limit reached (ERANGE): the value 32768 given for \
             semaphore 1 exceeds SEMVMX (32767), the largest value a System V semaphore can hold"
        )
    );
    let err = set.set_all(&[0, u16::MAX]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitReached);
    assert_eq!(
        err.to_string(),
        format!(
            "semctl SETALL {object}: limit reached (ERANGE): the value 65535 given for \
             semaphore 1 exceeds SEMVMX (32767), the largest value a System V semaphore can hold"
        )
    );
    assert_eq!(set.get_all().unwrap(), [SEMVMX, 0], "nothing was applied");

    // An initial value out of range is refused before semget: no set is made, not even
    // for a moment.
    let key = common::unique_key("sysv-sem");
    for (options, which) in [
        (SemSetOptions::new().count(2).initial(SEMVMX + 1), ""),
        (
            SemSetOptions::new().initial_values(&[0, SEMVMX + 1]),
            " of semaphore 1",
        ),
    ] {
        for err in [
            options.create(key).unwrap_err(),
            options.open_or_create(key).unwrap_err(),
        ] {
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
            assert_eq!(err.errno(), None, "{err}");
            assert_eq!(
                err.to_string(),
                format!(
                    "semget \"{key}\": invalid argument: the initial value 32768{which} exceeds \
                     SEMVMX (32767), the largest value a System V semaphore can hold"
                )
            );
        }
    }
    assert_eq!(SemSet::open(key).unwrap_err().kind(), ErrorKind::NotFound);
    SemSetOptions::new().initial(SEMVMX).create(key).unwrap();
}

#[test]
fn sysv_too_many_operations_name_semopm() {
    // LTP semop E2BIG.
    let (semopm, _) = sem_limits();
    if semopm > 100_000 {
        println!("SKIPPED: SEMOPM is {semopm}, too many operations to build");
        return;
    }
    let set = new_set(&[0]);
    let ops = vec![SemOp::wait_zero(0); semopm + 1];
    let err = set.try_op(&ops).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitReached);
    assert!(
        err.to_string().contains(&format!(
            "limit reached (E2BIG): one semop call may apply at most SEMOPM operations \
             (/proc/sys/kernel/sem, 3rd field, now {semopm}); {} were given",
            semopm + 1
        )),
        "{err}"
    );
    set.try_op(&ops[..semopm]).unwrap();
}

#[test]
fn sysv_arguments_are_checked_before_the_system_call() {
    // LTP semget EINVAL (nsems above SEMMSL) and semop EFBIG (index out of range).
    let (_, semmsl) = sem_limits();
    let key = common::unique_key("sysv-sem");
    let err = SemSetOptions::new()
        .count(semmsl + 1)
        .create(key)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitReached);
    assert!(
        err.to_string().contains(&format!(
            "at most SEMMSL semaphores (/proc/sys/kernel/sem, 1st field, now {semmsl}); {} were \
             asked for",
            semmsl + 1
        )),
        "{err}"
    );
    for err in [
        SemSetOptions::new().count(0).create(key).unwrap_err(),
        SemSetOptions::new()
            .count(3)
            .initial_values(&[1, 2])
            .create(key)
            .unwrap_err(),
        SemSetOptions::new()
            .initial_values(&[])
            .create(key)
            .unwrap_err(),
        SemSet::open(Key::PRIVATE).unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert_eq!(err.errno(), None, "{err}");
    }
    assert_eq!(SemSet::open(key).unwrap_err().kind(), ErrorKind::NotFound);

    let set = SemSetOptions::new().count(2).create(key).unwrap();
    for err in [
        set.op(&[]).unwrap_err(),
        set.op(&[SemOp::release(0), SemOp::release(2)]).unwrap_err(),
        set.get(2).unwrap_err(),
        set.set(2, 1).unwrap_err(),
        set.waiting_to_take(9).unwrap_err(),
        set.set_all(&[1]).unwrap_err(),
        SemSetOptions::new().count(3).open(key).unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert_eq!(err.errno(), None, "{err}");
    }
    assert_eq!(set.get_all().unwrap(), [0, 0], "nothing was applied");
    let err = set.get(2).unwrap_err();
    assert!(
        err.to_string()
            .contains("index 2 is out of range: the set has 2 semaphores"),
        "{err}"
    );
}

#[test]
fn sysv_creation_is_exclusive_with_an_exact_mode() {
    // LTP semget EEXIST and ENOENT; reliability 23 and 24.
    let key = common::unique_key("sysv-sem");
    let err = SemSet::open(key).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        err.to_string()
            .starts_with(&format!("semget \"{key}\": not found (ENOENT)")),
        "{err}"
    );
    let set = SemSet::create(key).unwrap();
    let me = rustix::process::geteuid().as_raw();
    let st = set.stat().unwrap();
    assert_eq!((st.perm.mode, st.perm.uid, st.perm.cuid), (0o600, me, me));
    assert_eq!((st.perm.key, st.nsems), (key, 1));
    assert!(st.otime.is_some(), "the creator marked the set initialised");
    let err = SemSet::create(key).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert!(
        err.to_string()
            .starts_with(&format!("semget \"{key}\": already exists (EEXIST)")),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&format!("ipcrm -S {:#x}", key.raw())),
        "{err}"
    );
    let again = SemSet::open_or_create(key).unwrap();
    assert!(!again.is_owner());
    assert_eq!(again.id(), set.id());
    drop(again);
    drop(set);
    assert_eq!(SemSet::open(key).unwrap_err().kind(), ErrorKind::NotFound);
    let created = SemSet::open_or_create(key).unwrap();
    assert!(created.is_owner());
    drop(created);

    // Explicit modes are exact, even those that leave the owner no access (the owner
    // needs none to remove the set).
    for mode in [0o640, 0o400, 0o000] {
        let set = SemSetOptions::new()
            .mode(mode)
            .initial(3)
            .create(Key::PRIVATE)
            .unwrap();
        common::record_id("sysv-sem-id", set.id());
        assert_eq!(sysvipc_mode(set.id()), mode);
    }
}

/// The permission bits of set `id` as `/proc/sysvipc/sem` shows them to every user.
fn sysvipc_mode(id: i32) -> u32 {
    let table = std::fs::read_to_string("/proc/sysvipc/sem").unwrap();
    table
        .lines()
        .skip(1)
        .find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f[1].parse::<i32>().ok()? == id).then(|| u32::from_str_radix(f[2], 8).unwrap())
        })
        .unwrap()
}

#[test]
fn sysv_open_without_permission_is_refused() {
    // LTP semget EACCES. Root ignores modes, so the opener drops root first.
    if common::role().is_some() {
        common::drop_root();
        let err = SemSet::open(Key::new(common::arg("KEY").parse().unwrap())).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        common::say(err);
        std::process::exit(0);
    }
    let key = common::unique_key("sysv-sem");
    let _set = SemSetOptions::new().mode(0o000).create(key).unwrap();
    let out = common::run_ok(common::child(
        "sysv_open_without_permission_is_refused",
        "stranger",
        &[("KEY", &key.raw().to_string())],
    ));
    let me = rustix::process::geteuid().as_raw();
    assert!(
        out.starts_with(&format!("semget \"{key}\": permission denied (EACCES)")),
        "{out}"
    );
    assert!(
        out.contains(&format!("owned by uid {me} with mode 0000")),
        "{out}"
    );
}

#[test]
fn sysv_foreign_sets_are_refused_and_cannot_be_removed_by_strangers() {
    // Reliability 24, and LTP semctl EPERM (IPC_RMID by a stranger).
    if common::role() == Some("planter".into()) {
        common::drop_root();
        let key = Key::new(common::arg("KEY").parse().unwrap());
        SemSetOptions::new().mode(0o666).create(key).unwrap().keep();
        common::say("planted");
        std::process::exit(0);
    }
    if common::role() == Some("remover".into()) {
        common::drop_root();
        let key = Key::new(common::arg("KEY").parse().unwrap());
        let err = SemSet::open(key).unwrap().remove().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        common::say(err);
        std::process::exit(0);
    }
    if !common::is_root() {
        println!("SKIPPED: only root can plant a set owned by another user");
        return;
    }
    let test = "sysv_foreign_sets_are_refused_and_cannot_be_removed_by_strangers";
    let key = common::unique_key("sysv-sem");
    let _guard = RemoveGuard(key);
    let out = common::run_ok(common::child(
        test,
        "planter",
        &[("KEY", &key.raw().to_string())],
    ));
    assert_eq!(out, "planted");
    let err = SemSet::open_or_create(key).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("belongs to uid 65534"), "{err}");
    SemSet::remove_key(key).unwrap();

    let key = common::unique_key("sysv-sem");
    let set = SemSetOptions::new().mode(0o666).create(key).unwrap();
    let out = common::run_ok(common::child(
        test,
        "remover",
        &[("KEY", &key.raw().to_string())],
    ));
    assert!(
        out.contains("permission denied (EPERM): only the set's creator"),
        "{out}"
    );
    assert!(set.stat().is_ok(), "the set survived");
}

#[test]
fn sysv_uninitialised_set_is_reported_not_used() {
    // Reliability 3: a creator killed between semget and its first semop.
    if common::role() == Some("half".into()) {
        let key: i32 = common::arg("KEY").parse().unwrap();
        // SAFETY: semget takes plain integers.
        let id = unsafe { libc::semget(key, 2, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
        assert!(id >= 0, "semget: {}", std::io::Error::last_os_error());
        common::say("created");
        common::die_like_a_crash();
    }
    if common::role() == Some("slow".into()) {
        let key: i32 = common::arg("KEY").parse().unwrap();
        // SAFETY: semget takes plain integers.
        let id = unsafe { libc::semget(key, 1, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
        assert!(id >= 0, "semget: {}", std::io::Error::last_os_error());
        common::say("created");
        std::thread::sleep(Duration::from_millis(300));
        let mut op = libc::sembuf {
            sem_num: 0,
            sem_op: 5,
            sem_flg: 0,
        };
        // SAFETY: `op` is one valid `sembuf`, and the count says one.
        let rc = unsafe { libc::semop(id, &mut op, 1) };
        assert_eq!(rc, 0, "semop: {}", std::io::Error::last_os_error());
        std::process::exit(0);
    }
    let test = "sysv_uninitialised_set_is_reported_not_used";
    let key = common::unique_key("sysv-sem");
    let _guard = RemoveGuard(key);
    let out = common::finish(
        common::child(test, "half", &[("KEY", &key.raw().to_string())])
            .spawn()
            .unwrap(),
    );
    assert_eq!(common::reports(&out), "created");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(libc::SIGKILL)
    );

    let start = Instant::now();
    let err = SemSet::open_timeout(key, Duration::from_millis(200)).unwrap_err();
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    let text = err.to_string();
    assert!(
        text.starts_with("open semaphore set \"sem set id "),
        "{text}"
    );
    assert!(
        text.contains(
            "timed out: not initialised: the set exists but its creator did not \
                       finish initialising it within 200ms (its sem_otime is still 0)"
        ),
        "{text}"
    );
    assert!(text.contains("SemSet::remove_key"), "{text}");
    // The plain open gives up the same way after its documented default.
    let err = SemSet::open(key).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    // It is still there and still not initialised (the kernel's values are all 0)...
    let raw = SemSetOptions::new().require_init(false).open(key).unwrap();
    assert_eq!(raw.stat().unwrap().otime, None);
    assert_eq!(raw.get_all().unwrap(), [0, 0]);
    // ...so remove it and create it properly.
    SemSet::remove_key(key).unwrap();
    let fresh = SemSetOptions::new().initial(1).create(key).unwrap();
    assert_eq!(SemSet::open(key).unwrap().get(0).unwrap(), 1);
    drop(fresh);

    // A creator that is merely slow is waited for.
    let key = common::unique_key("sysv-sem");
    let _guard = RemoveGuard(key);
    let mut child = KillOnDrop::spawn(common::child(
        test,
        "slow",
        &[("KEY", &key.raw().to_string())],
    ));
    child.wait_for_report("created");
    let set = SemSet::open_timeout(key, T).unwrap();
    assert_eq!(set.get(0).unwrap(), 5);
    assert!(child.finish().status.success());
}

#[test]
fn sysv_restart_after_a_crash() {
    if common::role().is_some() {
        let key = Key::new(common::arg("KEY").parse().unwrap());
        let set = SemSetOptions::new().initial(2).create(key).unwrap();
        common::say("created");
        std::thread::sleep(common::CHILD_LIMIT);
        drop(set);
        std::process::exit(1);
    }
    let key = common::unique_key("sysv-sem");
    let _guard = RemoveGuard(key);
    let mut child = KillOnDrop::spawn(common::child(
        "sysv_restart_after_a_crash",
        "crasher",
        &[("KEY", &key.raw().to_string())],
    ));
    child.wait_for_report("created");
    child.kill();

    let err = SemSet::create(key).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert!(err.to_string().contains("left by a crashed run"), "{err}");
    let old = SemSet::open(key).unwrap();
    assert!(!old.is_owner());
    assert_eq!(old.get(0).unwrap(), 2, "the values survived");
    old.remove().unwrap();
    let fresh = SemSet::create(key).unwrap();
    assert!(fresh.is_owner());
    assert_eq!(fresh.get(0).unwrap(), 0);
}

#[test]
fn sysv_stat_and_from_id() {
    let set = new_set(&[4, 5, 6]);
    let before = std::time::SystemTime::now() - Duration::from_secs(5);
    let st = set.stat().unwrap();
    assert_eq!(st.nsems, 3);
    assert_eq!(st.perm.key, set.key());
    assert!(st.ctime >= before);
    assert!(st.otime.is_some_and(|t| t >= before));
    let other = SemSet::from_id(set.id()).unwrap();
    assert!(!other.is_owner());
    assert_eq!((other.key(), other.nsems()), (set.key(), 3));
    assert_eq!(other.get_all().unwrap(), [4, 5, 6]);
    other.set_all(&[1, 2, 3]).unwrap();
    assert_eq!(set.get_all().unwrap(), [1, 2, 3]);
    drop(other);
    assert!(
        set.stat().is_ok(),
        "a handle from from_id never removes the set"
    );
    let mut kept = set;
    kept.keep();
    assert!(!kept.is_owner());
    let id = kept.id();
    drop(kept);
    let again = SemSet::from_id(id).unwrap();
    again.remove().unwrap();

    fn send_sync<T: Send + Sync>() {}
    send_sync::<SemSet>();
}

#[test]
fn sysv_enospc_names_the_limit() {
    // Reliability 16: semget ENOSPC. A private IPC namespace with room for one set keeps
    // the rest of the machine out of it (its sets vanish with the namespace, so none is
    // recorded in the ledger, which describes the machine's own namespace).
    if common::role().is_some() {
        common::set_sysctl("/proc/sys/kernel/sem", "250 32000 32 1");
        let _first = SemSet::create(Key::PRIVATE).unwrap();
        let err = SemSet::create(Key::PRIVATE).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::LimitReached);
        common::say(err);
        return;
    }
    let Some(cmd) =
        common::in_private_ipc_namespace(common::child("sysv_enospc_names_the_limit", "ns", &[]))
    else {
        return;
    };
    let out = common::run_ok(cmd);
    assert_eq!(
        out,
        "semget \"IPC_PRIVATE\": limit reached (ENOSPC): the system-wide limit on semaphore \
         sets (SEMMNI, the 4th field) or on semaphores in all sets (SEMMNS, the 2nd field) is \
         reached (/proc/sys/kernel/sem, now 250 32000 32 1); remove stale objects (`ipcs`, \
         `ipcx gc`) or raise the limit"
    );
}

#[test]
fn sysv_reused_id_is_detected_never_overrun() {
    // A handle whose set was removed and whose id the kernel then gave to another set.
    // GETALL into the handle's buffer must not overrun it when the new set is larger (the
    // buffer ends at a guard page: EFAULT), and both GETALL and SETALL must report the
    // old set gone. /proc/sys/kernel/sem_next_id forces the reuse at once; it can only be
    // written in a private IPC namespace (whose sets vanish with it, so none is recorded
    // in the ledger).
    if common::role().is_some() {
        let old = SemSetOptions::new()
            .initial_values(&[1, 2])
            .create(Key::PRIVATE)
            .unwrap();
        let id = old.id();
        let stale = SemSet::from_id(id).unwrap();
        old.remove().unwrap();
        common::say(id);
        for values in [vec![7; 300], vec![9]] {
            common::set_sysctl("/proc/sys/kernel/sem_next_id", &id.to_string());
            let new = SemSetOptions::new()
                .initial_values(&values)
                .create(Key::PRIVATE)
                .unwrap();
            assert_eq!(new.id(), id, "sem_next_id gave the old id to the new set");
            for err in [
                stale.get_all().unwrap_err(),
                stale.set_all(&[3, 4]).unwrap_err(),
            ] {
                assert_eq!(err.kind(), ErrorKind::Removed, "{err}");
                common::say(err);
            }
            assert_eq!(new.get_all().unwrap(), values, "the new set is untouched");
        }
        return;
    }
    let Some(cmd) = common::in_private_ipc_namespace(common::child(
        "sysv_reused_id_is_detected_never_overrun",
        "ns",
        &[],
    )) else {
        return;
    };
    let out = common::run_ok(cmd);
    let (id, out) = out.split_once('\n').unwrap();
    let gone = |op: &str, errno: &str, to: &str| {
        format!(
            "semctl {op} \"sem set id {id}\": removed while in use{errno}: the set of 2 semaphores \
             was removed, and the kernel gave its id to {to}; this handle's set is gone"
        )
    };
    let expected = [
        // GETALL into the handle's buffer of 2 ran into the guard page.
        gone("GETALL", " (EFAULT)", "a larger set"),
        gone("SETALL", "", "another set, of 300"),
        gone("GETALL", "", "another set, of 1"),
        gone("SETALL", "", "another set, of 1"),
    ];
    assert_eq!(out, expected.join("\n"));
}

// ---------------------------------------------------------------------------------------
// A peer that is not ipcx

/// A C program that takes ipcx's POSIX semaphore and System V set by name and key.
const C_PEER: &str = r#"
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/sem.h>

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    sem_t *s = sem_open(argv[1], 0);
    if (s == SEM_FAILED) { perror("sem_open"); return 1; }
    /* ipcx created it with the value 2: two units are there, and no third. */
    if (sem_trywait(s) || sem_trywait(s)) { perror("sem_trywait"); return 1; }
    if (sem_trywait(s) == 0) { fprintf(stderr, "a third unit was there\n"); return 1; }

    int id = semget((key_t)strtol(argv[2], NULL, 10), 0, 0600);
    if (id < 0) { perror("semget"); return 1; }
    /* Add 4 to semaphore 0 and take semaphore 1 with SEM_UNDO, in one atomic step. */
    struct sembuf ops[2] = {{0, 4, 0}, {1, -1, SEM_UNDO}};
    if (semop(id, ops, 2) != 0) { perror("semop"); return 1; }

    if (sem_post(s) || sem_post(s) || sem_post(s)) { perror("sem_post"); return 1; }
    sem_close(s);
    printf("peer done\n");
    return 0;
}
"#;

#[test]
fn c_peer_uses_ipcx_semaphores() {
    let Some(prog) = common::compile_c("sem-peer", C_PEER, &[]) else {
        return;
    };

    let name = common::unique_name("sem");
    let sem = SemOptions::new().initial(2).create(&name).unwrap();
    let set = new_set(&[0, 1]);
    let mut cmd = Command::new(&prog);
    cmd.arg(&name).arg(set.key().raw().to_string());
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut peer = KillOnDrop::spawn(cmd);
    // ipcx waits for what the C program adds with semop (after its two sem_trywaits)...
    set.op_timeout(&[SemOp::new(0, -4)], T).unwrap();
    // ...and for what it posts afterwards.
    for _ in 0..3 {
        sem.wait_timeout(T).unwrap();
    }
    let out = peer.finish();
    assert!(
        out.status.success(),
        "C peer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "peer done\n");
    assert_eq!(sem.value().unwrap(), 0);
    // The peer exited holding semaphore 1 with SEM_UNDO: the kernel gave it back.
    assert_eq!(set.get_all().unwrap(), [0, 1]);
}
