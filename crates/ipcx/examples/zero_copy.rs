//! Zero-copy moves into a child process: `vmsplice`, `sendfile`, `tee` and `splice`.
//!
//! The parent fills a staging pipe without copying through its own buffers: a header with
//! [`PipeWriter::vmsplice_timeout`] and the contents of a temporary file with
//! [`ipcx::pipe::sendfile_timeout`]. It then drains the staging pipe into the child's
//! stdin with [`PipeReader::splice_to_timeout`], after duplicating each chunk into a third
//! pipe with [`PipeReader::tee_to_timeout`], so it keeps a copy to check against. The child
//! (a second copy of this program) reads its stdin to end of file and reports the length
//! and an FNV-1a checksum on its stdout; the parent compares them with its copy.
//!
//! Every move uses its call's `_timeout` form, so no step waits longer than the example's
//! time limit for data or room in the pipes: a stuck child is an error, never a hang.
//!
//! [`PipeWriter::vmsplice_timeout`]: ipcx::pipe::PipeWriter::vmsplice_timeout
//!
//! Run it with:
//!
//! ```text
//! cargo run -p ipcx --example zero_copy
//! ```

mod common;

use std::error::Error;
use std::fs::File;
use std::io::{IoSlice, Write};
use std::os::fd::AsFd;
use std::process::Stdio;

use common::{Reaper, TIMEOUT, TempDir, read_to_end_timeout};
use ipcx::pipe::{PipeReader, pipe, sendfile_timeout};

/// How many lines the temporary file holds (about 16 KiB).
const FILE_LINES: usize = 400;

fn main() -> Result<(), Box<dyn Error>> {
    common::run(parent, |[]| child())
}

fn parent() -> Result<(), Box<dyn Error>> {
    let dir = TempDir::new("zero-copy")?;
    let path = dir.path().join("payload.txt");
    let mut contents = String::new();
    for i in 0..FILE_LINES {
        contents.push_str(&format!(
            "line {i:04} of the file that travels by sendfile\n"
        ));
    }
    std::fs::write(&path, &contents)?;
    let file = File::open(&path)?;
    let file_len = usize::try_from(file.metadata()?.len())?;
    println!(
        "[parent] wrote a {file_len}-byte temporary file {}",
        path.display()
    );

    // The staging pipe: filled by vmsplice and sendfile, drained by tee and splice. All it
    // holds here fits its 64 KiB, so filling it before draining it never has to wait (were
    // it more, sendfile_timeout would fail with TimedOut rather than hang).
    let (staging, staging_w) = pipe()?;

    // vmsplice maps the header's pages into the pipe; the header must not change until
    // the child has read it, so it lives until the end of this function.
    let header = format!("header from parent {}\n", std::process::id());
    let n = staging_w.vmsplice_timeout(&[IoSlice::new(header.as_bytes())], TIMEOUT)?;
    if n != header.len() {
        return Err(format!("vmsplice queued {n} of {} bytes", header.len()).into());
    }
    println!("[parent] vmsplice put the {n}-byte header into the staging pipe");

    let mut offset = 0u64;
    let mut sent = 0;
    while sent < file_len {
        match sendfile_timeout(
            &staging_w,
            &file,
            Some(&mut offset),
            file_len - sent,
            TIMEOUT,
        )? {
            0 => return Err("the file ended early".into()),
            n => sent += n,
        }
    }
    println!("[parent] sendfile copied the {sent}-byte file into the staging pipe in the kernel");
    drop(staging_w);
    let total = header.len() + sent;

    // The child: its stdin is a pipe we write, its stdout a pipe we read.
    let (child_stdin, to_child) = pipe()?;
    let (from_child, child_stdout) = pipe()?;
    let mut cmd = common::child_command()?;
    cmd.stdin(Stdio::from(child_stdin))
        .stdout(Stdio::from(child_stdout));
    let child = Reaper::spawn(&mut cmd)?;
    drop(cmd); // close the parent's copies of the child's ends
    println!("[parent] started child pid {}", child.id());

    // Duplicate each chunk into `copy` with tee (the data stays in the staging pipe), then
    // move exactly that much into the child's stdin with splice.
    let (copy, copy_w) = pipe()?;
    let mut moved = 0;
    while moved < total {
        let teed = match staging.tee_to_timeout(&copy_w, total - moved, TIMEOUT)? {
            0 => return Err("the staging pipe ended early".into()),
            n => n,
        };
        let mut spliced = 0;
        while spliced < teed {
            match staging.splice_to_timeout(&to_child, teed - spliced, TIMEOUT)? {
                0 => return Err("the staging pipe ended early".into()),
                n => spliced += n,
            }
        }
        moved += spliced;
        println!("[parent] tee duplicated {teed} bytes, splice moved them to the child");
    }
    drop(to_child);
    drop(copy_w);
    println!("[parent] moved {moved} bytes in all and closed the child's stdin");

    let kept = read_to_end_timeout(&copy, TIMEOUT)?;
    let expected = format!("{} {:016x}", kept.len(), fnv1a(&kept));
    if kept != [header.as_bytes(), contents.as_bytes()].concat() {
        return Err("the tee copy differs from the header and file that went in".into());
    }
    println!("[parent] the tee copy matches the header and file: {expected} (length, checksum)");

    let reply = read_to_end_timeout(&from_child, TIMEOUT)?;
    let reply = String::from_utf8_lossy(&reply);
    let reply = reply.trim_end();
    println!("[parent] the child reports: {reply}");
    let status = child.wait_success(TIMEOUT)?;
    if reply != expected {
        return Err(format!("the child got {reply:?}, expected {expected:?}").into());
    }
    println!("[parent] the child received exactly what was sent; it exited with {status}");
    drop(header);
    dir.remove()?;
    println!("[parent] removed the temporary directory; done");
    Ok(())
}

fn child() -> Result<(), Box<dyn Error>> {
    // A duplicate of stdin adopted for read_timeout; dropping it restores stdin's blocking
    // mode.
    let stdin = PipeReader::try_from(std::io::stdin().as_fd().try_clone_to_owned()?)?;
    let data = read_to_end_timeout(&stdin, TIMEOUT)?;
    let first = data.split(|&b| b == b'\n').next().unwrap_or_default();
    eprintln!(
        "[child] read {} bytes from stdin; the first line is {:?}",
        data.len(),
        String::from_utf8_lossy(first)
    );
    let report = format!("{} {:016x}", data.len(), fnv1a(&data));
    eprintln!("[child] length and checksum: {report}");
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{report}")?;
    stdout.flush()?;
    Ok(())
}

/// The 64-bit FNV-1a hash: a checksum simple enough to write out here.
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
