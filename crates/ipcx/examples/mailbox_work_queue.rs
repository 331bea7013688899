//! Mailboxes: one client, several worker processes, many requests in flight.
//!
//! The parent starts three copies of this program as workers; each binds its own mailbox
//! (`worker-<parent pid>-<n>`) and answers every job with the job's result and its own
//! pid. The parent binds a client mailbox and hands out twelve jobs from four threads at
//! once, round-robin over the workers, with [`Mailbox::request`]: replies are routed back
//! to the right thread by correlation id. Finally it sends each worker a one-way "stop"
//! ([`Mailbox::send`]).
//!
//! Run it with:
//!
//! ```text
//! cargo run -p ipcx --example mailbox_work_queue
//! ```

mod common;

use std::error::Error;
use std::time::{Duration, Instant};

use common::{Reaper, TIMEOUT};
use ipcx::mailbox::Mailbox;

const WORKERS: usize = 3;
const JOBS: u64 = 12;
const THREADS: u64 = 4;

fn main() -> Result<(), Box<dyn Error>> {
    common::run(parent, |[name]| worker(&name.to_string_lossy()))
}

fn worker_name(n: usize) -> String {
    format!("worker-{}-{n}", std::process::id())
}

fn parent() -> Result<(), Box<dyn Error>> {
    let client = Mailbox::bind(&format!("work-client-{}", std::process::id()))?;
    let names: Vec<String> = (0..WORKERS).map(worker_name).collect();
    let mut workers = Vec::new();
    for name in &names {
        workers.push(Reaper::spawn(common::child_command()?.arg(name))?);
    }
    // Wait until every worker has bound its mailbox (a request before that is NotFound).
    for name in &names {
        let start = Instant::now();
        while !client.path().with_file_name(name).exists() {
            if start.elapsed() > TIMEOUT {
                return Err(format!("worker {name} did not start").into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    println!("[parent] {WORKERS} workers are up: {names:?}");

    std::thread::scope(|s| -> Result<(), Box<dyn Error + Send + Sync>> {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (client, names) = (&client, &names);
                s.spawn(move || -> Result<(), Box<dyn Error + Send + Sync>> {
                    for job in (t..JOBS).step_by(THREADS as usize) {
                        let to = &names[job as usize % names.len()];
                        let answer = client.request(to, &job.to_le_bytes(), TIMEOUT)?;
                        println!(
                            "[parent] thread {t}: job {job} -> {}",
                            String::from_utf8_lossy(&answer)
                        );
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| "a client thread panicked")??;
        }
        Ok(())
    })
    .map_err(|e| e.to_string())?;

    for name in &names {
        client.send(name, b"stop")?;
    }
    for w in workers {
        w.wait_success(TIMEOUT)?;
    }
    println!("[parent] all {JOBS} jobs done, workers stopped");
    Ok(())
}

fn worker(name: &str) -> Result<(), Box<dyn Error>> {
    let me = Mailbox::bind(name)?;
    loop {
        let env = me.recv_timeout(TIMEOUT * 5)?;
        let Ok(job) = <[u8; 8]>::try_from(env.payload()) else {
            if env.payload() == b"stop" {
                eprintln!("[child] {name} stops");
                return Ok(());
            }
            return Err("a job is 8 bytes".into());
        };
        let job = u64::from_le_bytes(job);
        let answer = format!(
            "{} squared is {} (worker pid {})",
            job,
            job * job,
            std::process::id()
        );
        env.reply(answer.as_bytes())?;
    }
}
