//! The address grammar (crates/ipcx/src/addr.rs).
//!
//! The input is any string. Properties:
//!
//! - parsing never panics; a refusal is `InvalidInput` or `InvalidName` and its message
//!   names the address operation (reliability item 14: bad names fail before any system
//!   call, which a parser that makes none trivially satisfies);
//! - a parsed address displays in a canonical form that parses back to an equal address,
//!   and displaying that gives the same string again (a fixed point);
//! - the accessors agree with the transport: a path-based transport has a path, a POSIX
//!   name-based one a name, `tcp`/`udp` a host and port, `sysv-mq` a key.
#![no_main]

use ipcx::ErrorKind;
use ipcx::addr::{Address, Transport};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let a = match s.parse::<Address>() {
        Ok(a) => a,
        Err(e) => {
            assert!(
                matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::InvalidName),
                "{s:?}: {e} is {:?}",
                e.kind()
            );
            return;
        }
    };
    let shown = a.to_string();
    let b = match shown.parse::<Address>() {
        Ok(b) => b,
        Err(e) => panic!("{s:?} parsed, but its display {shown:?} does not: {e}"),
    };
    assert_eq!(
        a, b,
        "{s:?} displays as {shown:?}, which parses to another address"
    );
    assert_eq!(b.to_string(), shown, "display is not canonical for {s:?}");
    assert_eq!(Address::parse(&shown).ok().as_ref(), Some(&a));
    assert!(
        shown.starts_with(a.transport().scheme()),
        "{shown:?} does not start with {}",
        a.transport().scheme()
    );

    match a.transport() {
        Transport::Fifo | Transport::Unix | Transport::UnixDgram | Transport::UnixSeqpacket => {
            assert!(a.path().is_some(), "{shown:?} has no path")
        }
        Transport::Tcp | Transport::Udp => {
            assert!(a.host_port().is_some(), "{shown:?} has no host and port")
        }
        Transport::Mq | Transport::Shm | Transport::Ring => {
            assert!(a.name().is_some(), "{shown:?} has no name")
        }
        Transport::SysvMq => assert!(a.key().is_some(), "{shown:?} has no key"),
        Transport::Mailbox => assert!(a.mailbox().is_some(), "{shown:?} has no mailbox name"),
        _ => {}
    }
    // Every option the address carries is one its transport accepts.
    if let Some(opts) = shown.split_once('?').map(|(_, o)| o) {
        for opt in opts.split('&') {
            let key = opt.split_once('=').map_or(opt, |(k, _)| k);
            assert!(
                a.transport().options().contains(&key),
                "{shown:?} carries option {key:?}, which {} does not accept",
                a.transport()
            );
        }
    }
});
