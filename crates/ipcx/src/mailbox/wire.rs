//! The mailbox wire header: 24 bytes, little-endian, validated field by field.

use crate::error::{Error, ErrorKind, Result};

/// `"IPMB"`: the first four bytes of every mailbox datagram.
pub(crate) const MAGIC: [u8; 4] = *b"IPMB";
/// The only version this implementation speaks.
pub(crate) const VERSION: u8 = 1;
/// The header's size in bytes.
pub(crate) const HEADER_LEN: usize = 24;
/// Flag bit 0: the payload travels in a sealed memfd attached with `SCM_RIGHTS`.
pub(crate) const FLAG_MEMFD: u16 = 1;
/// Every flag this version knows; any other bit set is a malformed header.
const KNOWN_FLAGS: u16 = FLAG_MEMFD;

/// What a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Expects a reply carrying the same correlation id.
    Request = 1,
    /// Answers the request with the same correlation id.
    Reply = 2,
    /// Expects no reply; correlation id 0.
    OneWay = 3,
    /// Answers a request the receiver refused: payload is a `u32` LE code and UTF-8 text.
    Refusal = 4,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Request,
            2 => Kind::Reply,
            3 => Kind::OneWay,
            4 => Kind::Refusal,
            _ => return None,
        })
    }
}

/// Why a receiver refused a request (the code in a [`Kind::Refusal`] payload).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The sender's uid and gid are not allowed.
    Denied = 1,
    /// The receiver's queue is full.
    QueueFull = 2,
    /// The payload is above the receiver's cap.
    TooLarge = 3,
    /// (TCP only) The mailbox a request was forwarded to is gone.
    Gone = 4,
    /// (TCP only) The mailbox a request was forwarded to did not reply in time.
    TimedOut = 5,
    /// (TCP only) Forwarding failed otherwise; the text says why.
    Failed = 6,
}

impl Refusal {
    pub(crate) fn from_u32(v: u32) -> Option<Refusal> {
        Some(match v {
            1 => Refusal::Denied,
            2 => Refusal::QueueFull,
            3 => Refusal::TooLarge,
            4 => Refusal::Gone,
            5 => Refusal::TimedOut,
            6 => Refusal::Failed,
            _ => return None,
        })
    }

    pub(crate) fn kind(self) -> ErrorKind {
        match self {
            Refusal::Denied => ErrorKind::PermissionDenied,
            Refusal::QueueFull => ErrorKind::LimitReached,
            Refusal::TooLarge => ErrorKind::MessageTooLarge,
            Refusal::Gone => ErrorKind::PeerGone,
            Refusal::TimedOut => ErrorKind::TimedOut,
            Refusal::Failed => ErrorKind::Other,
        }
    }
}

/// A decoded header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) kind: Kind,
    pub(crate) flags: u16,
    pub(crate) id: u64,
    pub(crate) len: u64,
}

impl Header {
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&MAGIC);
        out[4] = VERSION;
        out[5] = self.kind as u8;
        out[6..8].copy_from_slice(&self.flags.to_le_bytes());
        out[8..16].copy_from_slice(&self.id.to_le_bytes());
        out[16..24].copy_from_slice(&self.len.to_le_bytes());
        out
    }

    /// Decodes and checks a header against the datagram it came in: `body` is the number
    /// of bytes after the header, `fds` the descriptors attached.
    pub(crate) fn decode(datagram: &[u8], fds: usize) -> Result<Header> {
        let Some(head) = datagram.first_chunk::<HEADER_LEN>() else {
            return bad(format!(
                "a {}-byte datagram is shorter than the {HEADER_LEN}-byte header",
                datagram.len()
            ));
        };
        let header = Header::decode_fields(head)?;
        let body = (datagram.len() - HEADER_LEN) as u64;
        if header.flags & FLAG_MEMFD != 0 {
            if fds != 1 || body != 0 {
                return bad(format!(
                    "a memfd message must carry exactly one descriptor and no inline body \
                     (got {fds} descriptors, {body} bytes)"
                ));
            }
        } else {
            if fds != 0 {
                return bad(format!(
                    "{fds} descriptors attached to an inline message (closed)"
                ));
            }
            if header.len != body {
                return bad(format!(
                    "the header announces {} payload bytes but {body} followed it",
                    header.len
                ));
            }
        }
        Ok(header)
    }

    /// Decodes and checks a header read from a TCP stream, where no descriptor can
    /// travel: the memfd flag is refused. The caller checks `len` against its cap before
    /// reading (or allocating for) the payload.
    pub(crate) fn decode_stream(head: &[u8; HEADER_LEN]) -> Result<Header> {
        let header = Header::decode_fields(head)?;
        if header.flags & FLAG_MEMFD != 0 {
            return bad(
                "the memfd flag is set on a TCP stream, where no descriptor can travel".into(),
            );
        }
        Ok(header)
    }

    /// The checks every header passes, wherever it came from: magic, version, kind,
    /// flags, and the correlation id's rule.
    fn decode_fields(head: &[u8; HEADER_LEN]) -> Result<Header> {
        if head[0..4] != MAGIC {
            return bad(format!(
                "bad magic {:02x?} (expected {:02x?} \"IPMB\"): not an ipcx mailbox peer",
                &head[0..4],
                MAGIC
            ));
        }
        if head[4] != VERSION {
            return bad(format!(
                "wire version {} is not the supported version {VERSION}",
                head[4]
            ));
        }
        let Some(kind) = Kind::from_u8(head[5]) else {
            return bad(format!("unknown message kind {}", head[5]));
        };
        let flags = u16::from_le_bytes([head[6], head[7]]);
        if flags & !KNOWN_FLAGS != 0 {
            return bad(format!("unknown flag bits {flags:#06x}"));
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&head[8..16]);
        let id = u64::from_le_bytes(id);
        let mut len = [0u8; 8];
        len.copy_from_slice(&head[16..24]);
        let len = u64::from_le_bytes(len);
        match kind {
            Kind::OneWay if id != 0 => bad(format!(
                "a one-way message carries correlation id {id}, not 0"
            )),
            Kind::Request | Kind::Reply | Kind::Refusal if id == 0 => {
                bad("correlation id 0 is reserved for one-way messages".into())
            }
            _ => Ok(Header {
                kind,
                flags,
                id,
                len,
            }),
        }
    }
}

fn bad<T>(why: String) -> Result<T> {
    Err(Error::new("recv mailbox message", ErrorKind::Corrupt).with_hint(why))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(h: &Header, body: &[u8]) -> Vec<u8> {
        let mut v = h.encode().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn round_trips_and_is_little_endian() {
        let h = Header {
            kind: Kind::Request,
            flags: 0,
            id: 0x0102_0304_0506_0708,
            len: 3,
        };
        let d = datagram(&h, b"abc");
        assert_eq!(&d[..8], b"IPMB\x01\x01\x00\x00");
        assert_eq!(&d[8..16], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(Header::decode(&d, 0), Ok(h));
    }

    #[test]
    fn every_field_is_checked() {
        let good = Header {
            kind: Kind::Reply,
            flags: 0,
            id: 9,
            len: 2,
        };
        let base = datagram(&good, b"hi");
        let cases: Vec<(Vec<u8>, usize, &str)> = vec![
            (base[..10].to_vec(), 0, "shorter than"),
            (
                {
                    let mut d = base.clone();
                    d[0] = b'X';
                    d
                },
                0,
                "bad magic",
            ),
            (
                {
                    let mut d = base.clone();
                    d[4] = 2;
                    d
                },
                0,
                "version 2",
            ),
            (
                {
                    let mut d = base.clone();
                    d[5] = 9;
                    d
                },
                0,
                "kind 9",
            ),
            (
                {
                    let mut d = base.clone();
                    d[6] = 0x80;
                    d
                },
                0,
                "flag bits",
            ),
            (
                {
                    let mut d = base.clone();
                    d[16] = 200;
                    d
                },
                0,
                "announces 200",
            ),
            (
                {
                    let mut d = base.clone();
                    d[8] = 0;
                    d
                },
                0,
                "id 0",
            ),
            (base.clone(), 1, "descriptors attached"),
        ];
        for (d, fds, needle) in cases {
            let err = Header::decode(&d, fds).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Corrupt);
            assert!(err.to_string().contains(needle), "{err} lacks {needle:?}");
        }
        let memfd = Header {
            kind: Kind::OneWay,
            flags: FLAG_MEMFD,
            id: 0,
            len: 1 << 40,
        };
        assert!(Header::decode(&memfd.encode(), 1).is_ok());
        assert!(Header::decode(&memfd.encode(), 0).is_err());
    }
}
