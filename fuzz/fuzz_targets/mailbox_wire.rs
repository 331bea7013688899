//! The mailbox wire header (crates/ipcx/src/mailbox/wire.rs), checked against a
//! reference written from the wire-format table in the mailbox module's documentation.
//!
//! The input is a datagram and the number of descriptors that came with it. Properties:
//!
//! - the receiver's decoder accepts exactly the datagrams the specification allows, and
//!   reads the same fields from them; every refusal is `Corrupt` (reliability items 7, 8
//!   and 12: a length that does not match the bytes, unknown kinds or flags, descriptors
//!   on an inline message, a memfd message without exactly one descriptor);
//! - an accepted header encodes back to the very bytes it was decoded from;
//! - a refusal payload (a `u32` reason and text) maps to the documented error kinds,
//!   whatever its bytes.
#![no_main]

use ipcx::ErrorKind;
use ipcx::mailbox::{WireHeader, decode_wire_header, encode_wire_header, refusal_payload_error};
use libfuzzer_sys::fuzz_target;

const HEADER_LEN: usize = 24;

/// The specification: magic "IPMB", version 1, kind 1..=4, flags with only bit 0,
/// little-endian id and length; inline: no descriptor and exactly `len` bytes follow;
/// memfd: one descriptor and nothing follows; a one-way message has id 0, every other
/// kind a non-zero id.
fn reference(d: &[u8], fds: usize) -> Option<WireHeader> {
    if d.len() < HEADER_LEN || &d[0..4] != b"IPMB" || d[4] != 1 {
        return None;
    }
    let kind = d[5];
    let flags = u16::from_le_bytes([d[6], d[7]]);
    let id = u64::from_le_bytes(d[8..16].try_into().ok()?);
    let len = u64::from_le_bytes(d[16..24].try_into().ok()?);
    let body = (d.len() - HEADER_LEN) as u64;
    let shape_ok = match flags {
        0 => fds == 0 && len == body,
        1 => fds == 1 && body == 0,
        _ => false,
    };
    let id_ok = match kind {
        3 => id == 0,
        1 | 2 | 4 => id != 0,
        _ => false,
    };
    (shape_ok && id_ok).then_some(WireHeader {
        kind,
        flags,
        id,
        len,
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&fds, rest)) = data.split_first() else {
        return;
    };
    let fds = usize::from(fds % 4);
    // Half the runs start from a valid header, so that the fuzzer reaches the checks past
    // the magic and version quickly; the rest of the input then overwrites it.
    let mut datagram = rest.to_vec();
    if fds & 2 != 0 && datagram.len() >= 6 {
        let kind = datagram[0] % 4 + 1;
        let body = datagram.len() - 6;
        let h = WireHeader {
            kind,
            flags: u16::from(datagram[1] & 1),
            id: if kind == 3 {
                0
            } else {
                u64::from(datagram[2]) + 1
            },
            len: if datagram[1] & 1 == 1 {
                u64::from(datagram[3])
            } else {
                body as u64
            },
        };
        let header = encode_wire_header(h).expect("kind 1 to 4 encodes");
        let mut d = header.to_vec();
        d.extend_from_slice(&datagram[6..]);
        if datagram[4] != 0 {
            let at = usize::from(datagram[4]) % HEADER_LEN;
            d[at] = datagram[5];
        }
        datagram = d;
    }

    let got = decode_wire_header(&datagram, fds);
    let want = reference(&datagram, fds);
    match (&got, want) {
        (Ok(h), Some(w)) => {
            assert_eq!(*h, w);
            let again = encode_wire_header(*h).expect("a decoded kind encodes");
            assert_eq!(
                &again[..],
                &datagram[..HEADER_LEN],
                "re-encoding changed the header"
            );
        }
        (Err(e), None) => {
            assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
            assert!(e.to_string().contains("recv mailbox message"), "{e}");
        }
        (got, want) => panic!("decoder says {got:?}, the specification {want:?}"),
    }

    // A refusal's payload, as a requester parses it.
    let e = refusal_payload_error(rest);
    let code = rest
        .get(..4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
    let kind = match code {
        Some(1) => ErrorKind::PermissionDenied,
        Some(2) => ErrorKind::LimitReached,
        Some(3) => ErrorKind::MessageTooLarge,
        // Codes 4 to 6 come from the TCP server (wire.rs: gone, timed out, failed).
        Some(4) => ErrorKind::PeerGone,
        Some(5) => ErrorKind::TimedOut,
        Some(6) => ErrorKind::Other,
        _ => ErrorKind::Corrupt,
    };
    assert_eq!(e.kind(), kind, "{e}");
});
