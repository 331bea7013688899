//! The classic bounded buffer between two processes: POSIX shared memory holding a ring of
//! slots and three process-shared semaphores, `empty` (free slots), `full` (filled slots)
//! and `mutex` (who may touch the ring).
//!
//! The parent creates the object with [`ShmOptions::create`] (mode 0600, memory allocated
//! up front), initialises the semaphores in it with [`UnnamedSemaphore::init`] and starts
//! a second copy of this program as the consumer, passing the object's name. The consumer
//! opens the object by name, attaches to the semaphores and takes every item out; the
//! parent produces them. The shared counter of items consumed is read back at the end. The
//! parent's `Shm` unlinks the name when it is dropped, so nothing is left in `/dev/shm`.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p ipcx --example shm_producer_consumer
//! ```

mod common;

use std::error::Error;
use std::sync::atomic::Ordering;

use common::{Reaper, TIMEOUT};
use ipcx::sem::unnamed::UnnamedSemaphore;
use ipcx::shm::posix::ShmOptions;

/// The layout both processes agree on.
const EMPTY: usize = 0;
const FULL: usize = 64;
const MUTEX: usize = 128;
const CONSUMED: usize = 192;
const RING: usize = 256;
const SLOTS: usize = 8;
const ITEMS: u64 = 10_000;
const SIZE: usize = 4096;

fn main() -> Result<(), Box<dyn Error>> {
    common::run(parent, |[name]| consumer(&name.to_string_lossy()))
}

fn parent() -> Result<(), Box<dyn Error>> {
    let name = format!("/ipcx-example-pc-{}", std::process::id());
    let shm = ShmOptions::new().size(SIZE).create(&name)?;
    let region = shm.map()?;
    println!("[parent] created {name} ({SIZE} bytes, mode 0600) and mapped it");

    let empty = UnnamedSemaphore::init(&region, EMPTY, SLOTS as u32)?;
    let full = UnnamedSemaphore::init(&region, FULL, 0)?;
    let mutex = UnnamedSemaphore::init(&region, MUTEX, 1)?;
    println!("[parent] initialised empty={SLOTS}, full=0, mutex=1 in the shared memory");

    let mut cmd = common::child_command()?;
    cmd.arg(&name);
    let child = Reaper::spawn(&mut cmd)?;
    println!("[parent] started consumer pid {}", child.id());

    for i in 0..ITEMS {
        empty.wait_timeout(TIMEOUT)?;
        mutex.wait_timeout(TIMEOUT)?;
        region.store(RING + (i as usize % SLOTS) * 8, &(i + 1))?;
        mutex.post()?;
        full.post()?;
    }
    println!("[parent] produced {ITEMS} items through {SLOTS} slots");

    let status = child.wait_success(TIMEOUT * 5)?;
    let consumed = region.atomic_u64(CONSUMED)?.load(Ordering::Acquire);
    println!("[parent] consumer exited with {status}; the shared counter says {consumed} items");
    if consumed != ITEMS {
        return Err(format!("expected {ITEMS} items consumed, the counter says {consumed}").into());
    }
    drop(region);
    drop(shm);
    println!("[parent] unlinked {name}; done");
    Ok(())
}

fn consumer(name: &str) -> Result<(), Box<dyn Error>> {
    let shm = ShmOptions::new().size(SIZE).open(name)?;
    let region = shm.map()?;
    let empty = UnnamedSemaphore::attach(&region, EMPTY)?;
    let full = UnnamedSemaphore::attach(&region, FULL)?;
    let mutex = UnnamedSemaphore::attach(&region, MUTEX)?;
    eprintln!("[child] opened {name} and attached to the three semaphores");

    let mut sum = 0u64;
    for i in 0..ITEMS {
        full.wait_timeout(TIMEOUT)?;
        mutex.wait_timeout(TIMEOUT)?;
        let item: u64 = region.load(RING + (i as usize % SLOTS) * 8)?;
        mutex.post()?;
        empty.post()?;
        if item != i + 1 {
            return Err(format!("item {i} is {item}: lost or doubled").into());
        }
        sum += item;
        region.atomic_u64(CONSUMED)?.fetch_add(1, Ordering::AcqRel);
    }
    eprintln!("[child] consumed {ITEMS} items in order; their sum is {sum}");
    Ok(())
}
