//! ipc-channel (Servo's): a channel each way between the two processes, set up with its
//! documented bootstrap. This side creates an `IpcOneShotServer` and passes its name to
//! the peer on the command line; the peer creates both channels and sends this side
//! their other ends (its receiver's sender, its sender's receiver) through the server.
//! On Linux every channel is a pair of `SOCK_SEQPACKET` Unix sockets: `recv` blocks in
//! `recvmsg`.
//!
//! - `ipc-channel`: the typed API the crate is built around, `IpcSender<Vec<u8>>` and
//!   `IpcReceiver<Vec<u8>>` (serde, encoded with postcard). `send` takes the value, so
//!   the ping is copied into a new `Vec` per send; `recv` returns a new `Vec`. The peer
//!   sends back the `Vec` it received.
//! - `ipc-channel-bytes`: its raw-bytes API, `IpcBytesSender::send(&[u8])` and
//!   `IpcBytesReceiver::recv() -> Vec<u8>`: no serialization, the crate's fastest path.

use std::process::Stdio;

use ipc_channel::ipc::{
    self, IpcBytesReceiver, IpcBytesSender, IpcOneShotServer, IpcReceiver, IpcSender,
};

use crate::measure::{Port, QUIT};
use crate::peer;
use crate::{Fallible, Setup};

/// What the peer hands over: the sender of the channel it receives on, and the receiver
/// of the channel it sends on.
type Typed = (IpcSender<Vec<u8>>, IpcReceiver<Vec<u8>>);
type Bytes = (IpcBytesSender, IpcBytesReceiver);

/// One side of an `ipc-channel` link, typed.
pub struct TypedPort {
    tx: IpcSender<Vec<u8>>,
    rx: IpcReceiver<Vec<u8>>,
}

/// One side of an `ipc-channel-bytes` link.
pub struct BytesPort {
    tx: IpcBytesSender,
    rx: IpcBytesReceiver,
}

/// Starts the peer with the one-shot server's name and takes what it sends.
fn bootstrap<T>(row: &'static str, setup: &Setup) -> Fallible<T>
where
    T: for<'de> serde::Deserialize<'de> + serde::Serialize,
{
    let (server, name) = IpcOneShotServer::<T>::new()?;
    let stdout = peer::spawn(&setup.spec(row, &[name]), Stdio::null())?;
    peer::read_ready(stdout)?;
    // Blocks until the peer connects: a peer that dies first is the watchdog's.
    let (_, ends) = server.accept()?;
    Ok(ends)
}

fn server_name(args: &[String]) -> Fallible<String> {
    match args {
        [name] => Ok(name.clone()),
        _ => Err("an ipc-channel row's peer takes the one-shot server's name".into()),
    }
}

impl TypedPort {
    /// This side of `ipc-channel`.
    pub fn connect(row: &'static str, setup: &Setup) -> Fallible<TypedPort> {
        let (tx, rx) = bootstrap::<Typed>(row, setup)?;
        Ok(TypedPort { tx, rx })
    }

    /// The peer's side: `args` is the one-shot server's name.
    pub fn peer(args: &[String]) -> Fallible<TypedPort> {
        let name = server_name(args)?;
        let (to_peer, rx) = ipc::channel::<Vec<u8>>()?;
        let (tx, from_peer) = ipc::channel::<Vec<u8>>()?;
        peer::say_ready("")?;
        IpcSender::<Typed>::connect(name)?.send((to_peer, from_peer))?;
        Ok(TypedPort { tx, rx })
    }
}

impl Port for TypedPort {
    fn send(&mut self, msg: &[u8]) -> Fallible<()> {
        Ok(self.tx.send(msg.to_vec())?)
    }

    fn recv<R>(&mut self, look: impl FnOnce(&[u8]) -> R) -> Fallible<R> {
        let msg = self.rx.recv()?;
        Ok(look(&msg))
    }

    fn echo(&mut self) -> Fallible<bool> {
        let msg = self.rx.recv()?;
        if msg.first() == Some(&QUIT) {
            return Ok(false);
        }
        self.tx.send(msg)?;
        Ok(true)
    }
}

impl BytesPort {
    /// This side of `ipc-channel-bytes`.
    pub fn connect(row: &'static str, setup: &Setup) -> Fallible<BytesPort> {
        let (tx, rx) = bootstrap::<Bytes>(row, setup)?;
        Ok(BytesPort { tx, rx })
    }

    /// The peer's side: `args` is the one-shot server's name.
    pub fn peer(args: &[String]) -> Fallible<BytesPort> {
        let name = server_name(args)?;
        let (to_peer, rx) = ipc::bytes_channel()?;
        let (tx, from_peer) = ipc::bytes_channel()?;
        peer::say_ready("")?;
        IpcSender::<Bytes>::connect(name)?.send((to_peer, from_peer))?;
        Ok(BytesPort { tx, rx })
    }
}

impl Port for BytesPort {
    fn send(&mut self, msg: &[u8]) -> Fallible<()> {
        Ok(self.tx.send(msg)?)
    }

    fn recv<R>(&mut self, look: impl FnOnce(&[u8]) -> R) -> Fallible<R> {
        let msg = self.rx.recv()?;
        Ok(look(&msg))
    }

    fn echo(&mut self) -> Fallible<bool> {
        let msg = self.rx.recv()?;
        if msg.first() == Some(&QUIT) {
            return Ok(false);
        }
        self.tx.send(&msg)?;
        Ok(true)
    }
}
