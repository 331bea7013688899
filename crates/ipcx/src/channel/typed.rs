//! Typed messages (feature `serde`): any `Serialize`/`Deserialize` value over any channel,
//! encoded with [`postcard`].

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Receiver, Sender};
use crate::error::{Error, ErrorKind, Result};

/// Sends values of type `T` over a [`Sender`], each as one message encoded with
/// [`postcard`] (compact, varint-based, no field names; both sides must agree on `T`).
///
/// # Examples
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("ipcx-doc-typed-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// use std::time::Duration;
/// use ipcx::channel::{self, TypedReceiver, TypedSender};
///
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct Job { id: u32, name: String }
///
/// let addr = format!("unix:{}/jobs.sock", dir.display()).parse()?;
/// let mut rx = TypedReceiver::<Job, _>::new(channel::receiver(&addr)?);
/// let mut tx = TypedSender::new(channel::sender_timeout(&addr, Duration::from_secs(1))?);
/// tx.send(&Job { id: 7, name: "build".into() })?;
/// assert_eq!(rx.recv_timeout(Duration::from_secs(1))?, Job { id: 7, name: "build".into() });
/// # drop(rx); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TypedSender<T, S = Box<dyn Sender + Send>> {
    inner: S,
    buf: Vec<u8>,
    _type: PhantomData<fn(&T)>,
}

impl<T: Serialize, S: Sender> TypedSender<T, S> {
    /// Wraps a sender.
    pub fn new(inner: S) -> TypedSender<T, S> {
        TypedSender {
            inner,
            buf: Vec::new(),
            _type: PhantomData,
        }
    }

    /// The sender underneath.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the sender.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Encodes and sends `value`, waiting as long as the channel is full.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] if `value` cannot be encoded (a type postcard cannot
    /// represent, such as a map with keys of unknown length); the inner sender's errors,
    /// such as [`ErrorKind::MessageTooLarge`] when the encoding exceeds its limit.
    pub fn send(&mut self, value: &T) -> Result<()> {
        self.encode(value)?;
        self.inner.send(&self.buf)
    }

    /// Encodes and sends `value` only if the channel has room now.
    pub fn try_send(&mut self, value: &T) -> Result<()> {
        self.encode(value)?;
        self.inner.try_send(&self.buf)
    }

    /// Encodes and sends `value`, waiting at most `timeout` for room.
    pub fn send_timeout(&mut self, value: &T, timeout: Duration) -> Result<()> {
        self.encode(value)?;
        self.inner.send_timeout(&self.buf, timeout)
    }

    fn encode(&mut self, value: &T) -> Result<()> {
        self.buf.clear();
        let buf = std::mem::take(&mut self.buf);
        self.buf = postcard::to_extend(value, buf).map_err(|e| {
            Error::new("encode", ErrorKind::InvalidInput).with_hint(format!(
                "cannot encode a {} with postcard: {e}",
                std::any::type_name::<T>()
            ))
        })?;
        Ok(())
    }
}

impl<T, S: fmt::Debug> fmt::Debug for TypedSender<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedSender")
            .field("type", &std::any::type_name::<T>())
            .field("inner", &self.inner)
            .finish()
    }
}

/// Receives values of type `T` from a [`Receiver`]: each message is decoded with
/// [`postcard`], and one that does not decode as a whole `T` is
/// [`ErrorKind::Corrupt`].
///
/// It receives into a buffer of the channel's [`max_message`](Receiver::max_message)
/// bytes, allocated on first use; give byte-stream channels a `max` option that fits
/// the values rather than the 16 MiB default.
pub struct TypedReceiver<T, R = Box<dyn Receiver + Send>> {
    inner: R,
    buf: Vec<u8>,
    _type: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned, R: Receiver> TypedReceiver<T, R> {
    /// Wraps a receiver.
    pub fn new(inner: R) -> TypedReceiver<T, R> {
        TypedReceiver {
            inner,
            buf: Vec::new(),
            _type: PhantomData,
        }
    }

    /// The receiver underneath.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Unwraps the receiver.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Receives and decodes one value, waiting as long as it takes.
    ///
    /// # Errors
    /// [`ErrorKind::Corrupt`] if the message is not one whole `T`; the inner receiver's
    /// errors.
    pub fn recv(&mut self) -> Result<T> {
        self.grow();
        let n = self.inner.recv(&mut self.buf)?;
        self.decode(n)
    }

    /// Receives and decodes one value if one is waiting now.
    pub fn try_recv(&mut self) -> Result<T> {
        self.grow();
        let n = self.inner.try_recv(&mut self.buf)?;
        self.decode(n)
    }

    /// Receives and decodes one value, waiting at most `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T> {
        self.grow();
        let n = self.inner.recv_timeout(&mut self.buf, timeout)?;
        self.decode(n)
    }

    fn grow(&mut self) {
        let max = self.inner.max_message();
        if self.buf.len() < max {
            self.buf = vec![0; max];
        }
    }

    fn decode(&self, n: usize) -> Result<T> {
        let corrupt = |why: String| {
            Error::new("decode", ErrorKind::Corrupt).with_hint(format!(
                "a {n}-byte message is not a {}: {why}",
                std::any::type_name::<T>()
            ))
        };
        let (value, rest) =
            postcard::take_from_bytes::<T>(&self.buf[..n]).map_err(|e| corrupt(e.to_string()))?;
        if !rest.is_empty() {
            return Err(corrupt(format!("{} bytes are left over", rest.len())));
        }
        Ok(value)
    }
}

impl<T, R: fmt::Debug> fmt::Debug for TypedReceiver<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedReceiver")
            .field("type", &std::any::type_name::<T>())
            .field("inner", &self.inner)
            .finish()
    }
}
