//! Descriptor passing: what `UnixSocketExt::recv_fds` makes of the control data that
//! arrives with a message (`SCM_RIGHTS`, `SCM_CREDENTIALS`, `MSG_CTRUNC`).
//!
//! The kernel, not the peer, writes the received control messages, so the peer's power
//! is over what it sends: the fuzzer picks the socket type, the bytes, which of eight
//! marked files to attach (in one or several `SCM_RIGHTS` messages, in any order, with
//! repeats), whether credentials are attached and passed (`SO_PASSCRED`), the receive
//! buffer, the number of descriptors the receiver accepts, and how few descriptors the
//! receiving process may still open (`RLIMIT_NOFILE`, to provoke `MSG_CTRUNC`).
//! Properties (reliability items 12 and 15):
//!
//! - with room for everything, the receiver gets the bytes and exactly the files sent,
//!   in order, each close-on-exec;
//! - more descriptors than accepted is `Corrupt`, a datagram larger than the buffer
//!   `MessageTooLarge`, no room for descriptors `LimitReached` (or `Corrupt` when they
//!   were also too many): never a panic, and never a success that dropped descriptors;
//! - after every receive, success or failure, the process holds exactly the descriptors
//!   it held before: none of those that arrived leaks.
#![no_main]

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::OnceLock;

use ipcx::ErrorKind;
use ipcx::unix::{UnixSocketExt, datagram_pair, seqpacket_pair, stream_pair};
use libfuzzer_sys::fuzz_target;
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sockopt};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Eight files told apart by their inode numbers: what the sender attaches.
fn files() -> &'static [(OwnedFd, u64); 8] {
    static FILES: OnceLock<[(OwnedFd, u64); 8]> = OnceLock::new();
    FILES.get_or_init(|| {
        std::array::from_fn(|i| {
            let fd = rustix::fs::memfd_create(format!("fuzz-{i}"), rustix::fs::MemfdFlags::CLOEXEC)
                .expect("memfd_create");
            let ino = rustix::fs::fstat(&fd).expect("fstat").st_ino;
            (fd, ino)
        })
    })
}

/// Descriptors open in this process, and the highest one.
fn open_fds() -> (usize, i32) {
    let mut n = 0;
    let mut highest = 0;
    for entry in std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd") {
        let name = entry.expect("dir entry").file_name();
        if let Ok(fd) = name.to_string_lossy().parse::<i32>() {
            n += 1;
            highest = highest.max(fd);
        }
    }
    // Minus the descriptor that read_dir itself held while listing.
    (n - 1, highest)
}

/// Sends `data` with `groups` of descriptors, each group its own `SCM_RIGHTS` message,
/// and credentials if asked. Returns whether the kernel took the message.
fn send(sock: BorrowedFd<'_>, data: &[u8], groups: &[Vec<BorrowedFd<'_>>], creds: bool) -> bool {
    let mut space = vec![MaybeUninit::uninit(); 1024];
    let mut control = SendAncillaryBuffer::new(&mut space);
    for g in groups {
        assert!(control.push(SendAncillaryMessage::ScmRights(g)));
    }
    if creds {
        let ucred = rustix::net::UCred {
            pid: rustix::process::getpid(),
            uid: rustix::process::getuid(),
            gid: rustix::process::getgid(),
        };
        assert!(control.push(SendAncillaryMessage::ScmCredentials(ucred)));
    }
    rustix::net::sendmsg(
        sock,
        &[IoSlice::new(data)],
        &mut control,
        SendFlags::NOSIGNAL,
    )
    .is_ok()
}

fn check(
    stream: bool,
    result: ipcx::Result<(usize, Vec<OwnedFd>)>,
    data: &[u8],
    buf: &[u8],
    sent: &[u64],
    max_fds: usize,
    limited: bool,
) {
    match result {
        Ok((n, fds)) => {
            if stream {
                // As with `Read::read`, an empty buffer reads 0 bytes (not end of file);
                // whatever descriptors came are returned all the same.
                assert!(n <= data.len().min(buf.len()), "{n} bytes");
                assert!(
                    n >= 1 || buf.is_empty(),
                    "0 bytes into a {}-byte buffer",
                    buf.len()
                );
            } else {
                assert_eq!(n, data.len());
            }
            assert_eq!(&buf[..n], &data[..n]);
            assert!(
                fds.len() <= max_fds,
                "{} descriptors with max {max_fds}",
                fds.len()
            );
            let inos: Vec<u64> = fds
                .iter()
                .map(|fd| rustix::fs::fstat(fd).expect("fstat").st_ino)
                .collect();
            assert_eq!(inos, sent, "the files that arrived are not those sent");
            for fd in &fds {
                let flags = rustix::io::fcntl_getfd(fd).expect("F_GETFD");
                assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
            }
        }
        Err(e) => match e.kind() {
            ErrorKind::Corrupt => assert!(sent.len() > max_fds || limited, "{e}"),
            ErrorKind::MessageTooLarge => assert!(!stream && data.len() > buf.len(), "{e}"),
            ErrorKind::LimitReached => assert!(limited && !sent.is_empty(), "{e}"),
            _ => panic!("recv_fds: {e} ({:?})", e.kind()),
        },
    }
}

fn run<S: UnixSocketExt>(a: S, b: S, stream: bool, input: &[u8]) {
    let [flags, max_fds, buf_len, limit, picks @ ..] = input else {
        return;
    };
    let max_fds = usize::from(*max_fds % 10);
    let (picks, data) = picks.split_at(usize::from(flags >> 4).min(picks.len()));
    if data.is_empty() {
        return;
    }
    let data = &data[..data.len().min(4096)];
    let files = files();
    // Each pick attaches file `p % 8`; a pick with the high bit set starts a new group.
    let mut groups: Vec<Vec<BorrowedFd<'_>>> = Vec::new();
    let mut sent = Vec::new();
    for &p in picks {
        if groups.is_empty() || p & 0x80 != 0 {
            groups.push(Vec::new());
        }
        let (fd, ino) = &files[usize::from(p % 8)];
        groups.last_mut().expect("a group").push(fd.as_fd());
        sent.push(*ino);
    }
    let creds = flags & 1 != 0;
    if flags & 2 != 0 {
        sockopt::set_socket_passcred(&b, true).expect("SO_PASSCRED");
    }
    if !send(a.as_fd(), data, &groups, creds) {
        return;
    }
    let mut buf = vec![0u8; usize::from(*buf_len) * 17];
    let (before, highest) = open_fds();
    // A low descriptor limit, so that the kernel has no room for what arrives.
    let limited = flags & 4 != 0;
    let saved = getrlimit(Resource::Nofile);
    if limited {
        let soft = (highest as u64) + 1 + u64::from(*limit % 8);
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(soft),
                maximum: saved.maximum,
            },
        )
        .expect("lowering RLIMIT_NOFILE");
    }
    let result = b.try_recv_fds(&mut buf, max_fds);
    if limited {
        setrlimit(Resource::Nofile, saved).expect("restoring RLIMIT_NOFILE");
    }
    if result
        .as_ref()
        .is_err_and(|e| e.kind() == ErrorKind::WouldBlock)
    {
        panic!("a sent message was not there to receive");
    }
    let kept = result.as_ref().map_or(0, |(_, fds)| fds.len());
    let (after, _) = open_fds();
    assert_eq!(after, before + kept, "descriptors leaked by a receive");
    check(stream, result, data, &buf, &sent, max_fds, limited);
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    files();
    let (baseline, _) = open_fds();
    match kind % 3 {
        0 => {
            let (a, b) = stream_pair().expect("socketpair");
            run(a, b, true, rest);
        }
        1 => {
            let (a, b) = datagram_pair().expect("socketpair");
            run(a, b, false, rest);
        }
        _ => {
            let (a, b) = seqpacket_pair().expect("socketpair");
            run(a, b, false, rest);
        }
    }
    assert_eq!(open_fds().0, baseline, "descriptors leaked");
});
