//! Property tests of the frame decoder: every stream of frames decodes back to its
//! messages however it is cut into reads, and arbitrary bytes never panic it, never make
//! it allocate beyond its bound, and never yield a message longer than the cap
//! (reliability items 7, 8 and 13).
#![allow(clippy::unwrap_used)]

use ipcx::ErrorKind;
use ipcx::channel::frame::{Decoder, HEADER_LEN, encode_header};
use proptest::prelude::*;

/// A source that hands out `data` in reads of the sizes in `cuts` (cycled), sometimes
/// failing with a timeout in between, then reports the end of the stream.
fn source(
    data: Vec<u8>,
    cuts: Vec<usize>,
    stalls: bool,
) -> impl FnMut(&mut [u8]) -> ipcx::Result<usize> {
    let mut pos = 0;
    let mut i = 0;
    move |buf: &mut [u8]| {
        i += 1;
        if stalls && i % 3 == 0 {
            return Err(ipcx::Error::new("read", ErrorKind::TimedOut));
        }
        let want = cuts[i % cuts.len()].max(1);
        let n = want.min(buf.len()).min(data.len() - pos);
        buf[..n].copy_from_slice(&data[pos..pos + n]);
        pos += n;
        Ok(n)
    }
}

fn encode(msgs: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        out.extend_from_slice(&encode_header(m.len()).unwrap());
        out.extend_from_slice(m);
    }
    out
}

/// Messages from empty to larger than the direct-read threshold and the read-ahead.
fn messages() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let small = prop::collection::vec(any::<u8>(), 0..64);
    let large = (0usize..100_000).prop_map(|n| (0..n).map(|i| (i % 251) as u8).collect());
    prop::collection::vec(prop_oneof![4 => small, 1 => large], 0..12)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn frames_round_trip_over_any_split(
        msgs in messages(),
        cuts in prop::collection::vec(1usize..70_000, 1..8),
        stalls in any::<bool>(),
    ) {
        let stream = encode(&msgs);
        let mut read = source(stream, cuts, stalls);
        let mut d = Decoder::new(100_000);
        for (i, want) in msgs.iter().enumerate() {
            let n = loop {
                // A fresh buffer each call: nothing may depend on its identity.
                let mut out = vec![0u8; 100_000];
                match d.read_message(&mut out, &mut read) {
                    Ok(n) => {
                        prop_assert_eq!(&out[..n], &want[..], "message {}", i);
                        break n;
                    }
                    Err(e) => prop_assert_eq!(e.kind(), ErrorKind::TimedOut, "{}", e),
                }
            };
            prop_assert_eq!(n, want.len());
        }
        // Then the clean end of the stream.
        let end = loop {
            match d.read_message(&mut [0u8; 16], &mut read) {
                Err(e) if e.kind() == ErrorKind::TimedOut => continue,
                other => break other,
            }
        };
        prop_assert_eq!(end.unwrap_err().kind(), ErrorKind::PeerGone);
        prop_assert!(d.at_boundary());
    }

    #[test]
    fn garbage_never_panics_or_over_allocates(
        bytes in prop::collection::vec(any::<u8>(), 0..4096),
        framed_prefix in any::<bool>(),
        cuts in prop::collection::vec(1usize..600, 1..5),
        max in 0usize..2048,
    ) {
        // Half the cases start with a valid header, so the payload path sees garbage too.
        let mut data = Vec::new();
        if framed_prefix {
            data.extend_from_slice(&encode_header(bytes.len() / 2).unwrap());
        }
        data.extend_from_slice(&bytes);
        let mut read = source(data, cuts, false);
        let mut d = Decoder::new(max);
        let bound = max + HEADER_LEN + 64 * 1024;
        for _ in 0..64 {
            let mut out = vec![0u8; 1024];
            match d.read_message(&mut out, &mut read) {
                Ok(n) => prop_assert!(n <= max && n <= out.len()),
                Err(e) => {
                    prop_assert!(
                        matches!(
                            e.kind(),
                            ErrorKind::Corrupt | ErrorKind::PeerGone | ErrorKind::MessageTooLarge
                        ),
                        "{}", e
                    );
                    if e.kind() == ErrorKind::PeerGone {
                        break;
                    }
                }
            }
            prop_assert!(d.allocated() <= bound, "{} > {}", d.allocated(), bound);
        }
    }

    #[test]
    fn lengths_above_the_cap_are_refused_from_the_header(len in 1usize..=u32::MAX as usize, max in 0usize..1_000_000) {
        prop_assume!(len > max);
        let mut read = source(encode_header(len).unwrap().to_vec(), vec![HEADER_LEN], false);
        let mut d = Decoder::new(max);
        let before = d.allocated();
        let err = d.read_message(&mut [0u8; 8], &mut read).unwrap_err();
        prop_assert_eq!(err.kind(), ErrorKind::Corrupt);
        let expected = format!("{len}-byte message, above this channel's cap of {max} bytes");
        prop_assert!(err.to_string().contains(&expected), "{}", err);
        prop_assert_eq!(d.allocated(), before);
    }
}

#[test]
fn headers_above_the_frame_limit_cannot_be_encoded() {
    let err = encode_header(u32::MAX as usize + 1).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MessageTooLarge);
    assert!(encode_header(u32::MAX as usize).is_ok());
}
