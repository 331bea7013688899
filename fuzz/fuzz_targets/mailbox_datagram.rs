//! A live mailbox receiving datagrams the fuzzer writes, with the control data a peer
//! controls: descriptors (none, one or several memfds, sealed or not, of the announced
//! size or not) and credentials (as root, any uid, which the access list then refuses).
//!
//! This is the receiving thread's whole path: `recvmsg` with `SCM_RIGHTS` and
//! `SCM_CREDENTIALS`, `MSG_CTRUNC`/`MSG_TRUNC`, the header, the memfd's seals and size,
//! the caps. Properties (reliability items 7, 8, 11, 12 and 27):
//!
//! - every datagram is accounted for exactly once: delivered, or counted in exactly one
//!   of the rejection counters, and the mailbox keeps receiving;
//! - a delivered message is the one sent: the inline bytes, or the memfd's contents;
//!   a request expects a reply, nothing else does;
//! - a rejected message's descriptors are closed: the process holds, once the mailbox has
//!   dealt with the datagram, the descriptors it held before.
#![no_main]

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ipcx::mailbox::{
    Mailbox, MailboxOptions, MailboxStats, WireHeader, decode_wire_header, encode_wire_header,
};
use libfuzzer_sys::fuzz_target;
use rustix::fs::{MemfdFlags, SealFlags};
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix};

const MAX_PAYLOAD: usize = 2048;
const MAX_QUEUED: usize = 1500;

struct Setup {
    dir: PathBuf,
    mailbox: Mailbox,
    /// A bound peer, so that requests have an address to be refused to.
    peer: UnixDatagram,
    /// An unbound one.
    anonymous: UnixDatagram,
}

static DIR: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_dir() {
    if let Some(dir) = DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ipcx-fuzz-mailbox-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mailbox directory");
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .expect("chmod 0700");
        DIR.set(dir.clone()).expect("set once");
        // libFuzzer ends a bounded run with exit(): remove the directory then.
        // SAFETY: `remove_dir` is an `extern "C" fn()` that never unwinds across the FFI
        // boundary (it ignores every error) and only touches a `OnceLock` set above.
        unsafe { libc::atexit(remove_dir) };
        let mailbox = MailboxOptions::new()
            .dir(&dir)
            .max_payload(MAX_PAYLOAD)
            .max_queued_bytes(MAX_QUEUED)
            .bind("fuzz")
            .expect("bind the mailbox");
        let peer = UnixDatagram::bind(dir.join("peer")).expect("bind the peer");
        peer.set_nonblocking(true).expect("nonblocking");
        let anonymous = UnixDatagram::unbound().expect("unbound socket");
        Setup {
            dir,
            mailbox,
            peer,
            anonymous,
        }
    })
}

fn counters(s: &MailboxStats) -> [u64; 6] {
    [
        s.delivered,
        s.malformed,
        s.denied,
        s.too_large,
        s.queue_full,
        s.late_replies,
    ]
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
        - 1
}

/// A memfd holding `len` bytes of `fill`, with the seals `seals` picks.
fn memfd(len: usize, fill: u8, seals: u8) -> OwnedFd {
    let fd = rustix::fs::memfd_create(
        "fuzz-payload",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
    .expect("memfd_create");
    let bytes = vec![fill; len];
    let n = rustix::io::pwrite(&fd, &bytes, 0).expect("pwrite");
    assert_eq!(n, len);
    let mut flags = SealFlags::empty();
    for (bit, seal) in [
        (1, SealFlags::SHRINK),
        (2, SealFlags::GROW),
        (4, SealFlags::WRITE),
        (8, SealFlags::SEAL),
    ] {
        if seals & bit != 0 {
            flags |= seal;
        }
    }
    rustix::fs::fcntl_add_seals(&fd, flags).expect("seals");
    fd
}

fuzz_target!(|data: &[u8]| {
    let [how, fds, seals, size, uid, rest @ ..] = data else {
        return;
    };
    let s = setup();
    // Half the runs start from a valid header (then overwrite one byte of it), so that
    // the checks past the magic are reached at once.
    let mut datagram = rest.to_vec();
    if how & 1 != 0 && datagram.len() >= 4 {
        let kind = datagram[0] % 4 + 1;
        let memfd_flag = u16::from(datagram[1] & 1);
        let body = datagram.len() - 4;
        let h = WireHeader {
            kind,
            flags: memfd_flag,
            id: if kind == 3 {
                0
            } else {
                u64::from(datagram[2]) + 1
            },
            len: if memfd_flag == 1 {
                u64::from(*size) * 16
            } else {
                body as u64
            },
        };
        let mut d = encode_wire_header(h).expect("a valid kind").to_vec();
        d.extend_from_slice(&datagram[4..]);
        if datagram[3] != 0 {
            let at = usize::from(datagram[3]) % 24;
            d[at] ^= datagram[3];
        }
        datagram = d;
    }
    // The descriptors: 0 to 3 memfds, each of `size * 16` bytes, give or take one.
    let n_fds = usize::from(fds % 4);
    let len = usize::from(*size) * 16 + usize::from(fds >> 6) % 2;
    let memfds: Vec<OwnedFd> = (0..n_fds)
        .map(|i| memfd(len, i as u8 + 1, *seals))
        .collect();
    let borrowed: Vec<_> = memfds.iter().map(|f| f.as_fd()).collect();

    let baseline = open_fds();
    let before = counters(&s.mailbox.stats());
    let mut space = [MaybeUninit::<u8>::uninit(); 256];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !borrowed.is_empty() {
        assert!(control.push(SendAncillaryMessage::ScmRights(&borrowed)));
    }
    let foreign = how & 2 != 0 && rustix::process::getuid().is_root();
    if foreign {
        // Only a privileged sender may claim another uid; the mailbox must refuse it.
        let ucred = rustix::net::UCred {
            pid: rustix::process::getpid(),
            uid: rustix::process::Uid::from_raw(u32::from(*uid) + 60_000),
            gid: rustix::process::getgid(),
        };
        assert!(control.push(SendAncillaryMessage::ScmCredentials(ucred)));
    }
    let from = if how & 4 != 0 { &s.anonymous } else { &s.peer };
    let to = SocketAddrUnix::new(s.dir.join("fuzz")).expect("socket address");
    let sent = rustix::net::sendmsg_addr(
        from,
        &to,
        &[IoSlice::new(&datagram)],
        &mut control,
        SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
    );
    drop(memfds);
    if sent.is_err() {
        return;
    }

    // Exactly one counter moves.
    let deadline = Instant::now() + Duration::from_secs(5);
    let after = loop {
        let now = counters(&s.mailbox.stats());
        if now != before {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "a datagram was never accounted for"
        );
        std::thread::yield_now();
    };
    let moved: Vec<usize> = (0..6).filter(|&i| after[i] != before[i]).collect();
    assert_eq!(moved.len(), 1, "{before:?} -> {after:?}");
    assert_eq!(
        after[moved[0]],
        before[moved[0]] + 1,
        "{before:?} -> {after:?}"
    );

    let header = decode_wire_header(&datagram, n_fds);
    match moved[0] {
        0 => {
            let h = header.expect("delivered a datagram whose header is malformed");
            assert!(
                !foreign,
                "delivered a message from a uid the mailbox does not allow"
            );
            let env = s
                .mailbox
                .try_recv()
                .expect("the delivered message is queued");
            if h.flags & 1 == 0 {
                assert_eq!(env.payload(), &datagram[24..]);
            } else {
                assert_eq!(env.payload(), vec![1u8; h.len as usize]);
            }
            assert_eq!(env.expects_reply(), h.kind == 1);
        }
        1 => {
            let e = s.mailbox.stats().last_rejected.expect("a reason");
            assert_eq!(e.kind(), ipcx::ErrorKind::Corrupt, "{e}");
        }
        2 => assert!(foreign, "denied our own uid"),
        3 => {
            let h = header.expect("refused a datagram whose header is malformed");
            assert!(h.len > MAX_PAYLOAD as u64, "{h:?} refused as too large");
        }
        4 => {
            // The queue is empty here (every delivered message is taken at once).
            let h = header.expect("refused a datagram whose header is malformed");
            let cost = h.len + ipcx::mailbox::ENVELOPE_OVERHEAD as u64;
            assert!(cost > MAX_QUEUED as u64, "{h:?} refused for a full queue");
        }
        _ => {
            let h = header.expect("routed a malformed reply");
            assert!(h.kind == 2 || h.kind == 4);
        }
    }

    // Whatever came back to the peer (refusals of requests) is drained.
    let mut buf = [0u8; 4096];
    while s.peer.recv(&mut buf).is_ok() {}
    // Every descriptor the mailbox received is closed (it may close them just after
    // counting the datagram).
    let deadline = Instant::now() + Duration::from_secs(5);
    while open_fds() != baseline - n_fds {
        assert!(
            Instant::now() < deadline,
            "descriptors leaked: {} open, {} before",
            open_fds(),
            baseline - n_fds
        );
        std::thread::yield_now();
    }
});
