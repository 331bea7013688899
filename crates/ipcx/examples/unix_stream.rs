//! A Unix stream socket server and a client in another process.
//!
//! The parent listens on a socket file with [`ipcx::unix::listen`] (mode 0600, removed on
//! drop) and starts a second copy of this program as its child, passing it the path. The
//! child connects with [`ipcx::unix::connect_timeout`] and sends a few requests, one line
//! each; the parent accepts with `accept_timeout`, answers each line, and asks the kernel
//! who is at the other end: [`UnixSocketExt::peer_credentials`] gives the child's pid, uid and
//! gid, and [`UnixSocketExt::peer_pidfd`] a pidfd that the parent polls to see the child
//! exit. Every send and receive is bounded with the `SocketExt` `_timeout` methods.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p ipcx --example unix_stream
//! ```

mod common;

use std::error::Error;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Lines, Reaper, TIMEOUT, TempDir, send_all};
use ipcx::ErrorKind;
use ipcx::unix::{ListenerExt, UnixSocketExt};

/// The requests the child sends.
const REQUESTS: [&str; 3] = ["hello server", "what time is it", "goodbye"];

fn main() -> Result<(), Box<dyn Error>> {
    common::run(parent, |[path]| child(Path::new(&path)))
}

fn parent() -> Result<(), Box<dyn Error>> {
    let dir = TempDir::new("unix-stream")?;
    let path = dir.path().join("server.sock");

    let server = ipcx::unix::listen(&path)?;
    let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
    println!(
        "[parent] listening on {} (mode {mode:04o})",
        server.path().display()
    );

    let child = Reaper::spawn(common::child_command()?.arg(&path))?;
    let child_pid = child.id();
    println!("[parent] started child pid {child_pid}");

    let conn = server.accept_timeout(TIMEOUT)?;
    let cred = conn.peer_credentials()?;
    println!("[parent] accepted a connection; SO_PEERCRED says {cred}");
    if cred.pid != Some(child_pid) {
        return Err(format!("the peer is {cred}, not the child {child_pid}").into());
    }
    println!("[parent] the peer's pid is the child's pid from Child::id()");

    // A pidfd names the very process that connected, even if its pid is reused later.
    let pidfd = match conn.peer_pidfd() {
        Ok(fd) => {
            println!(
                "[parent] SO_PEERPIDFD gave pidfd {} for pid {}",
                fd.as_raw_fd(),
                pidfd_pid(&fd).unwrap_or_else(|| "unknown".into())
            );
            Some(fd)
        }
        Err(e) if e.kind() == ErrorKind::Unsupported => {
            println!("[parent] no pidfd on this kernel: {e}");
            None
        }
        Err(e) => return Err(e.into()),
    };

    let mut lines = Lines::new();
    while let Some(line) = lines.recv_line(&conn, TIMEOUT)? {
        println!("[parent] request: {line:?}");
        let reply = format!("echo: {}", line.to_uppercase());
        send_all(&conn, format!("{reply}\n").as_bytes(), TIMEOUT)?;
        println!("[parent] replied: {reply:?}");
    }
    println!("[parent] end of file: the child closed the connection");

    if let Some(fd) = &pidfd {
        wait_readable(fd, TIMEOUT)?;
        println!("[parent] the pidfd became readable: the child process has exited");
    }
    let status = child.wait_success(TIMEOUT)?;
    println!("[parent] child exited with {status}");
    drop(conn);
    drop(server);
    println!(
        "[parent] dropped the listener; the socket file still exists: {}",
        path.exists()
    );
    dir.remove()?;
    println!("[parent] removed the temporary directory; done");
    Ok(())
}

fn child(path: &Path) -> Result<(), Box<dyn Error>> {
    let conn = ipcx::unix::connect_timeout(path, TIMEOUT)?;
    let cred = conn.peer_credentials()?;
    println!(
        "[child] connected to {}; the server is {cred}",
        path.display(),
    );
    let mut lines = Lines::new();
    for request in REQUESTS {
        send_all(&conn, format!("{request}\n").as_bytes(), TIMEOUT)?;
        println!("[child] sent {request:?}");
        let reply = lines
            .recv_line(&conn, TIMEOUT)?
            .ok_or("the server closed the connection")?;
        println!("[child] got reply {reply:?}");
    }
    drop(conn);
    println!("[child] closed the connection and exits");
    Ok(())
}

/// The pid a pidfd refers to, from `/proc/self/fdinfo`.
fn pidfd_pid(fd: &OwnedFd) -> Option<String> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .map(|p| p.trim().to_string())
}

/// Waits at most `limit` for `fd` to become readable. ipcx has no pidfd type, so this uses
/// `poll` from rustix (a dependency of ipcx).
fn wait_readable(fd: &OwnedFd, limit: Duration) -> Result<(), Box<dyn Error>> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("the pidfd did not become readable within {limit:?}").into());
        }
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        match poll(&mut fds, Some(&Timespec::try_from(left)?)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}
