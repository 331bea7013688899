//! ipcx's ring, two ways.
//!
//! - [`ChannelPort`]: the `ring-busy`, `ring` and `ring-blocking` rows exactly as
//!   `ipcx bench` builds them (`crates/ipcx-cli/src/bench/rows.rs`): two named rings
//!   through the channel layer (`ring:/NAME?capacity=..&wait=..` addresses, boxed
//!   `Sender`/`Receiver`), copying `send` and `recv` into a buffer of the receiver's
//!   maximum message size, and the bench's capacity rule.
//! - [`LoanPort`]: `ring-busy-loan`, the ring's own zero-copy API (`RingSender::loan` and
//!   `commit`, `RingReceiver::recv_ref`), busy waiting: the same shape as the iceoryx2
//!   rows, which loan their samples and read them in place.

use ipcx::addr::Address;
use ipcx::channel::{self, Receiver, Sender};
use ipcx::ring::{RingOptions, RingReceiver, RingSender, Wait};
use std::process::Stdio;

use crate::measure::{Port, QUIT};
use crate::peer::{self, SETUP_WAIT};
use crate::{Fallible, Setup};

/// The bench's rule for a ring's capacity: room for two of the largest messages (so one
/// can be copied in while the other is copied out) and at least 64 KiB (so a sender
/// reads the receiver's counter only every few hundred small messages). Here the largest
/// message is the ping: there is no throughput test.
fn room(max: usize) -> usize {
    (2 * (max.max(1) + 16)).next_power_of_two().max(64 << 10)
}

/// A POSIX shared memory name for one direction of a row, unique to this run.
fn shm_name(row: &str, side: &str) -> String {
    format!("/ipcx-peers-{}-{row}-{side}", std::process::id())
}

/// A link over the channel layer, as the bench's `ChannelPort`.
pub struct ChannelPort {
    tx: Box<dyn Sender + Send>,
    rx: Box<dyn Receiver + Send>,
    buf: Vec<u8>,
}

impl ChannelPort {
    fn new(tx: Box<dyn Sender + Send>, rx: Box<dyn Receiver + Send>) -> ChannelPort {
        // The bench gives message transports a buffer of the receiver's maximum.
        let buf = vec![0u8; rx.max_message().max(1)];
        ChannelPort { tx, rx, buf }
    }

    /// This side of a `ring:` row (`wait`: busy, adaptive or blocking): creates the
    /// ring it receives on, starts the peer (which creates the other), and opens it.
    pub fn connect(row: &'static str, wait: Wait, setup: &Setup) -> Fallible<ChannelPort> {
        let (a, b) = (shm_name(row, "a"), shm_name(row, "b"));
        peer::track_shm(&a);
        peer::track_shm(&b);
        let cap = room(setup.ping);
        let a = format!("ring:{a}?capacity={cap}&wait={wait}");
        let b: Address = format!("ring:{b}?capacity={cap}&wait={wait}").parse()?;
        let rx = channel::receiver(&b)?;
        let reach = rx.address().unwrap_or(b);
        let stdout = peer::spawn(&setup.spec(row, &[a, reach.to_string()]), Stdio::null())?;
        let a: Address = peer::read_ready(stdout)?.parse()?;
        let tx = channel::sender_timeout(&a, SETUP_WAIT)?;
        Ok(ChannelPort::new(tx, rx))
    }

    /// The peer's side: `args` are the address to receive on (created here) and the
    /// address to send to.
    pub fn peer(args: &[String]) -> Fallible<ChannelPort> {
        let [recv, send] = args else {
            return Err("a ring row's peer takes two addresses".into());
        };
        let recv: Address = recv.parse()?;
        let send: Address = send.parse()?;
        let rx = channel::receiver(&recv)?;
        peer::say_ready(&rx.address().unwrap_or(recv).to_string())?;
        let tx = channel::sender_timeout(&send, SETUP_WAIT)?;
        Ok(ChannelPort::new(tx, rx))
    }
}

impl Port for ChannelPort {
    fn send(&mut self, msg: &[u8]) -> Fallible<()> {
        Ok(self.tx.send(msg)?)
    }

    fn recv<R>(&mut self, look: impl FnOnce(&[u8]) -> R) -> Fallible<R> {
        let n = self.rx.recv(&mut self.buf)?;
        Ok(look(&self.buf[..n]))
    }

    fn echo(&mut self) -> Fallible<bool> {
        let n = self.rx.recv(&mut self.buf)?;
        if self.buf[..n].first() == Some(&QUIT) {
            return Ok(false);
        }
        self.tx.send(&self.buf[..n])?;
        Ok(true)
    }
}

/// A link of two rings driven through their zero-copy API.
pub struct LoanPort {
    tx: RingSender,
    rx: RingReceiver,
}

impl LoanPort {
    /// This side of `ring-busy-loan`: as [`ChannelPort::connect`], with the ring's own
    /// API and busy waiting.
    pub fn connect(row: &'static str, setup: &Setup) -> Fallible<LoanPort> {
        let (a, b) = (shm_name(row, "a"), shm_name(row, "b"));
        peer::track_shm(&a);
        peer::track_shm(&b);
        let cap = room(setup.ping);
        let opts = RingOptions::new()
            .capacity(cap)
            .wait(Wait::Busy)
            .open_wait(SETUP_WAIT);
        let rx = opts.create_named(&b)?.receiver()?;
        let args = [a.clone(), b, cap.to_string()];
        let stdout = peer::spawn(&setup.spec(row, &args), Stdio::null())?;
        peer::read_ready(stdout)?;
        let tx = opts.open_named(&a)?.sender()?;
        Ok(LoanPort { tx, rx })
    }

    /// The peer's side: `args` are the name of the ring to create and receive on, the
    /// name of the ring to send on, and the capacity.
    pub fn peer(args: &[String]) -> Fallible<LoanPort> {
        let [recv, send, cap] = args else {
            return Err("ring-busy-loan's peer takes two names and a capacity".into());
        };
        let opts = RingOptions::new()
            .capacity(cap.parse()?)
            .wait(Wait::Busy)
            .open_wait(SETUP_WAIT);
        let rx = opts.create_named(recv)?.receiver()?;
        peer::say_ready("")?;
        let tx = opts.open_named(send)?.sender()?;
        Ok(LoanPort { tx, rx })
    }
}

impl Port for LoanPort {
    fn send(&mut self, msg: &[u8]) -> Fallible<()> {
        let mut loan = self.tx.loan(msg.len())?;
        loan.copy_from_slice(msg);
        loan.commit();
        Ok(())
    }

    fn recv<R>(&mut self, look: impl FnOnce(&[u8]) -> R) -> Fallible<R> {
        let view = self.rx.recv_ref()?;
        Ok(look(&view))
    }

    fn echo(&mut self) -> Fallible<bool> {
        let view = self.rx.recv_ref()?;
        if view.first() == Some(&QUIT) {
            return Ok(false);
        }
        // Answer straight from the view into the loan, then release the view: the
        // iceoryx2 peer does the same with its sample.
        let mut loan = self.tx.loan(view.len())?;
        loan.copy_from_slice(&view);
        loan.commit();
        drop(view);
        Ok(true)
    }
}
