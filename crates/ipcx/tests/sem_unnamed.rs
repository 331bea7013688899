//! Unnamed process-shared semaphores in shared memory, across real processes.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use ipcx::ErrorKind;
use ipcx::sem::unnamed::UnnamedSemaphore;
use ipcx::shm::memfd::Memfd;
use ipcx::shm::posix::ShmOptions;

use common::{arg, child, role, say, under_signal_storm, unique_name};

/// The layout both processes agree on: three semaphores, then a ring of `SLOTS` counters.
const EMPTY: usize = 0;
const FULL: usize = 64;
const MUTEX: usize = 128;
const RING: usize = 192;
const SLOTS: usize = 4;
const ITEMS: u64 = 2000;
/// A bound on every wait, so a dead peer fails the test instead of hanging it.
const T: Duration = Duration::from_secs(20);

#[test]
fn producer_and_consumer_share_a_bounded_buffer_guarded_by_three_semaphores() {
    if role().as_deref() == Some("consumer") {
        let shm = ShmOptions::new().size(4096).open(&arg("NAME")).unwrap();
        let region = shm.map().unwrap();
        let empty = UnnamedSemaphore::attach(&region, EMPTY).unwrap();
        let full = UnnamedSemaphore::attach(&region, FULL).unwrap();
        let mutex = UnnamedSemaphore::attach(&region, MUTEX).unwrap();
        let mut sum = 0u64;
        for i in 0..ITEMS {
            full.wait_timeout(T).unwrap();
            mutex.wait_timeout(T).unwrap();
            let slot = RING + (i as usize % SLOTS) * 8;
            let item: u64 = region.load(slot).unwrap();
            mutex.post().unwrap();
            empty.post().unwrap();
            assert_eq!(item, i + 1, "items arrive in order, none lost or doubled");
            sum += item;
        }
        say(sum);
        return;
    }
    let name = unique_name("shm");
    let shm = ShmOptions::new().size(4096).create(&name).unwrap();
    let region = shm.map().unwrap();
    let empty = UnnamedSemaphore::init(&region, EMPTY, SLOTS as u32).unwrap();
    let full = UnnamedSemaphore::init(&region, FULL, 0).unwrap();
    let mutex = UnnamedSemaphore::init(&region, MUTEX, 1).unwrap();
    let consumer = child(
        "producer_and_consumer_share_a_bounded_buffer_guarded_by_three_semaphores",
        "consumer",
        &[("NAME", &name)],
    )
    .spawn()
    .unwrap();
    for i in 0..ITEMS {
        empty.wait_timeout(T).unwrap();
        mutex.wait_timeout(T).unwrap();
        region
            .store(RING + (i as usize % SLOTS) * 8, &(i + 1))
            .unwrap();
        mutex.post().unwrap();
        full.post().unwrap();
    }
    let out = common::finish(consumer);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(common::reports(&out), (ITEMS * (ITEMS + 1) / 2).to_string());
    assert_eq!(empty.value().unwrap(), SLOTS as u32);
    assert_eq!(full.value().unwrap(), 0);
}

#[test]
fn attach_to_an_uninitialised_or_abandoned_slot_fails_clearly() {
    // Reliability 3: never a wait on garbage.
    let memfd = Memfd::create("sems", 4096).unwrap();
    let region = memfd.map().unwrap();
    let err = UnnamedSemaphore::attach_timeout(&region, 0, Duration::from_millis(30)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(err.hint().unwrap().contains("not initialised"), "{err}");
    assert!(
        err.hint().unwrap().contains("no process has initialised"),
        "{err}"
    );

    // An initialiser that claimed the slot and died before publishing it.
    region
        .atomic_u32(64)
        .unwrap()
        .store(0x4950_0001, std::sync::atomic::Ordering::Release);
    let err = UnnamedSemaphore::attach_timeout(&region, 64, Duration::from_millis(30)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(err.hint().unwrap().contains("may have died"), "{err}");
    assert_eq!(
        UnnamedSemaphore::init(&region, 64, 1).unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );

    // Something else entirely at the offset.
    region.store(128, &0xdead_beef_u32).unwrap();
    let err = UnnamedSemaphore::attach(&region, 128).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(err.hint().unwrap().contains("0xdeadbeef"), "{err}");
    assert_eq!(
        UnnamedSemaphore::init(&region, 128, 1).unwrap_err().kind(),
        ErrorKind::Corrupt
    );
}

#[test]
fn attach_waits_for_an_initialiser_in_another_process() {
    if role().as_deref() == Some("late-initialiser") {
        let shm = ShmOptions::new().open(&arg("NAME")).unwrap();
        let region = shm.map().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let sem = UnnamedSemaphore::init(&region, 0, 0).unwrap();
        sem.post().unwrap();
        say("posted");
        return;
    }
    let name = unique_name("shm");
    let shm = ShmOptions::new().size(4096).create(&name).unwrap();
    let region = shm.map().unwrap();
    let initialiser = child(
        "attach_waits_for_an_initialiser_in_another_process",
        "late-initialiser",
        &[("NAME", &name)],
    )
    .spawn()
    .unwrap();
    let sem = UnnamedSemaphore::attach_timeout(&region, 0, Duration::from_secs(20)).unwrap();
    sem.wait_timeout(Duration::from_secs(20)).unwrap();
    let out = common::finish(initialiser);
    assert_eq!(common::reports(&out), "posted");
}

#[test]
fn try_and_timeout_forms_and_signals() {
    let memfd = Memfd::create("sems", 4096).unwrap();
    let region = memfd.map().unwrap();
    let sem = UnnamedSemaphore::init(&region, 0, 1).unwrap();
    sem.try_wait().unwrap();
    let err = sem.try_wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
    assert_eq!(err.operation(), "sem_trywait");
    let err = sem.wait_timeout(Duration::from_millis(20)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(
        err.to_string().contains("unnamed semaphore at offset 0"),
        "{err}"
    );

    // Reliability 18: signals arriving during the wait neither end it early nor surface
    // as an error; it still ends with TimedOut once its whole time has passed.
    let timeout = Duration::from_millis(300);
    let start = Instant::now();
    let (result, signals) = under_signal_storm(|| sem.wait_timeout(timeout));
    assert_eq!(result.unwrap_err().kind(), ErrorKind::TimedOut);
    assert!(start.elapsed() >= timeout, "the wait was cut short");
    assert!(signals > 0, "no signal arrived during the wait");

    // A post from another thread during a signal storm wakes the waiter.
    let (result, _) = under_signal_storm(|| {
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                sem.post().unwrap();
            });
            sem.wait()
        })
    });
    result.unwrap();
}

#[test]
fn values_slots_and_overflow_are_checked() {
    let memfd = Memfd::create("sems", 4096).unwrap();
    let region = memfd.map().unwrap();
    for bad in [4, 4096 - 8, usize::MAX - 3] {
        let err = UnnamedSemaphore::init(&region, bad, 0).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "offset {bad}");
    }
    let err = UnnamedSemaphore::init(&region, 0, u32::MAX).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.hint().unwrap().contains("SEM_VALUE_MAX"), "{err}");
    let max = i32::MAX as u32;
    let sem = UnnamedSemaphore::init(&region, 0, max).unwrap();
    assert_eq!(sem.value().unwrap(), max);
    let err = sem.post().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitReached);
    assert_eq!(err.errno(), Some(libc::EOVERFLOW));
    assert!(err.to_string().contains("EOVERFLOW"), "{err}");
    let read_only = memfd.map_read_only().unwrap();
    assert_eq!(
        UnnamedSemaphore::attach(&read_only, 0).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
}
