//! `mailbox:NAME` and `mailbox:NAME@HOST:PORT` channels over [`crate::mailbox`].

use std::fmt;
use std::sync::Arc;

use super::{Receiver, Sender, buffer_too_small, forms, recv_error, send_error, too_large};
use crate::addr::Address;
use crate::error::{Error, ErrorKind, Result};
use crate::mailbox::{Envelope, Mailbox, MailboxOptions, RemoteMailbox};
use crate::wait::Deadline;

/// The default `max` of a mailbox channel: 16 MiB, as on byte streams.
pub const DEFAULT_MAILBOX_MAX: usize = 16 << 20;

/// What an ephemeral sender mailbox may hold of what others send it (nothing is meant
/// for it): anything beyond is dropped.
const SENDER_INBOX: usize = 64 * 1024;

fn max_of(addr: &Address) -> usize {
    addr.options().max.unwrap_or(DEFAULT_MAILBOX_MAX)
}

fn target(addr: &Address) -> &str {
    addr.mailbox()
        .unwrap_or_else(|| unreachable!("mailbox addresses have a target"))
}

/// The receiving side of `mailbox:NAME`: binds the mailbox `NAME` in the private runtime
/// directory (with the address's `mode`, and `max` as its payload cap) and hands out
/// every message sent to it, from any number of senders, in arrival order.
///
/// A request (from [`Mailbox::request`]) is handed out like a one-way message and
/// answered with an empty reply once received, so a requester learns its message was
/// taken. When the mailbox's queued bytes reach their bound, it stops reading its socket
/// and senders wait in the kernel: no message is dropped for want of room.
#[derive(Debug)]
pub struct MailboxReceiver {
    mailbox: Mailbox,
    addr: Address,
    max: usize,
    /// A message that did not fit the caller's buffer, kept for the next receive.
    pending: Option<Envelope>,
}

impl MailboxReceiver {
    /// Binds the mailbox of `addr` (which must be local).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a `NAME@HOST:PORT` address (serve a local mailbox
    /// over TCP with `ipcx mailbox serve` instead); the errors of [`MailboxOptions::bind`].
    pub fn open(addr: &Address) -> Result<MailboxReceiver> {
        let name = target(addr);
        if name.contains('@') {
            return Err(Error::new("open channel", ErrorKind::InvalidInput)
                .with_object(addr)
                .with_hint(
                    "a receiver binds a mailbox on this host: give mailbox:NAME, and reach it \
                     from other hosts through `ipcx mailbox serve --tcp ADDR`",
                ));
        }
        let max = max_of(addr);
        let mut opts = MailboxOptions::new()
            .mode(addr.options().mode.unwrap_or(0o600))
            .max_payload(max);
        opts.hold_when_full = true;
        let mailbox = opts.bind(name).map_err(|e| e.with_object(addr))?;
        Ok(MailboxReceiver {
            mailbox,
            addr: addr.clone(),
            max,
            pending: None,
        })
    }

    /// The mailbox underneath.
    pub fn mailbox(&self) -> &Mailbox {
        &self.mailbox
    }

    fn recv_until(&mut self, buf: &mut [u8], deadline: Deadline) -> Result<usize> {
        let env = match self.pending.take() {
            Some(env) => env,
            None => self
                .mailbox
                .recv_until(deadline)
                .map_err(|e| recv_error(e, &self.addr, deadline))?,
        };
        let len = env.payload().len();
        if len > buf.len() {
            self.pending = Some(env);
            return Err(buffer_too_small(&self.addr, len, buf.len()));
        }
        buf[..len].copy_from_slice(env.payload());
        if env.expects_reply() {
            // An acknowledgement; a requester that gave up has nothing to learn.
            let _ = env.reply_timeout(b"", std::time::Duration::from_millis(100));
        }
        Ok(len)
    }
}

impl Receiver for MailboxReceiver {
    forms!(receiver);

    fn max_message(&self) -> usize {
        self.max
    }

    fn address(&self) -> Option<Address> {
        Some(self.addr.clone())
    }
}

/// The sending side of `mailbox:NAME` or `mailbox:NAME@HOST:PORT`: one-way messages to
/// that mailbox.
///
/// **Its own identity.** A local sender binds an ephemeral mailbox of its own,
/// `send-PID-N` in the private runtime directory, removed when the sender is dropped:
/// the receiver sees that name and the sender's kernel credentials in each
/// [`Envelope`], as for any mailbox, and the name is never reused while the sender
/// lives. Nothing is meant to be sent to it; it keeps at most 64 KiB of what is. A
/// sender to `NAME@HOST:PORT` binds nothing: it holds one TCP connection to the server,
/// and the receiving mailbox sees the server's own mailbox (`tcp-PID-N`) as the sender.
///
/// **Peer gone.** Sending to a mailbox that is gone (its socket file removed, or left by
/// a dead process; over TCP, a server that closed the connection) fails with
/// [`ErrorKind::PeerGone`].
pub struct MailboxSender {
    inner: Inner,
    addr: Address,
    max: usize,
}

enum Inner {
    Local { own: Mailbox, to: String },
    Remote(Arc<RemoteMailbox>),
}

impl fmt::Debug for MailboxSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Local { own, .. } => {
                write!(f, "MailboxSender({} from {})", self.addr, own.name())
            }
            Inner::Remote(_) => write!(f, "MailboxSender({})", self.addr),
        }
    }
}

impl MailboxSender {
    /// Opens a sender to `addr`, waiting until `deadline` for its mailbox to be bound (or
    /// its server to answer).
    pub(crate) fn open(addr: &Address, deadline: Deadline) -> Result<MailboxSender> {
        let to = target(addr).to_string();
        let max = max_of(addr);
        if to.contains('@') {
            let remote =
                super::until_receiver(addr, deadline, |d| RemoteMailbox::connect_until(&to, d))?;
            let max = max.min(remote.max_payload());
            return Ok(MailboxSender {
                inner: Inner::Remote(Arc::new(remote)),
                addr: addr.clone(),
                max,
            });
        }
        let dir = crate::runtime::ensure_runtime_dir().map_err(|e| e.with_object(addr))?;
        let path = std::fs::canonicalize(&dir).unwrap_or(dir).join(&to);
        super::until_receiver(addr, deadline, |_| crate::mailbox::probe(&path))?;
        let opts = MailboxOptions::new()
            .max_payload(max)
            .max_queued_bytes(SENDER_INBOX);
        let own = crate::mailbox::bind_ephemeral(&opts, "send").map_err(|e| e.with_object(addr))?;
        Ok(MailboxSender {
            inner: Inner::Local { own, to },
            addr: addr.clone(),
            max,
        })
    }

    fn send_until(&mut self, msg: &[u8], deadline: Deadline) -> Result<()> {
        if msg.len() > self.max {
            return Err(too_large(
                &self.addr,
                msg.len(),
                self.max,
                "the address's max",
            ));
        }
        let sent = match &self.inner {
            Inner::Local { own, to } => own.send_until(to, msg, deadline),
            Inner::Remote(remote) => remote.send_until(msg, deadline),
        };
        sent.map_err(|e| {
            let gone = matches!(e.kind(), ErrorKind::NotFound | ErrorKind::PeerGone)
                || e.errno() == Some(libc::ECONNREFUSED);
            if gone {
                e.with_kind(ErrorKind::PeerGone)
                    .with_object(&self.addr)
                    .with_hint(
                        "the receiving mailbox is gone (or its server closed the connection)",
                    )
            } else {
                send_error(e, &self.addr, deadline)
            }
        })
    }
}

impl Sender for MailboxSender {
    forms!(sender);

    fn max_message(&self) -> usize {
        self.max
    }
}
