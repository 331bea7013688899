//! The mailbox rows: request/reply between two processes' mailboxes (`mailbox`), and
//! the same through the mailbox TCP server over loopback (`mailbox-tcp`).
//!
//! The bench's pings and batch ends are requests ([`Mailbox::request`] or
//! [`RemoteMailbox::request`]) whose replies the peer sends with [`Envelope::reply`];
//! batch data are one-way messages. So a round trip is what an application pays for one
//! request and its reply.

use std::time::Duration;

use ipcx::mailbox::{Envelope, Mailbox, MailboxOptions, RemoteMailbox, TcpServeOptions};

use super::Fallible;
use super::port::{ACK, Carries, PING, Port};

/// How long a request waits for its reply before the row fails.
const REPLY_WAIT: Duration = Duration::from_secs(60);

/// Where the bench's requests go.
enum Client {
    Local { own: Mailbox, to: String },
    Remote(RemoteMailbox),
}

/// The bench's side: requests and one-way messages to the peer's mailbox.
pub struct ClientPort {
    client: Client,
    reply: Option<Vec<u8>>,
}

impl ClientPort {
    /// A port to the peer's mailbox `target` (`NAME` or `NAME@HOST:PORT`), from a
    /// mailbox of the bench's own, `own_name`, for a local target.
    pub fn connect(target: &str, own_name: &str, timeout: Duration) -> Fallible<ClientPort> {
        let client = if target.contains('@') {
            Client::Remote(RemoteMailbox::connect_timeout(target, timeout)?)
        } else {
            Client::Local {
                own: MailboxOptions::new().bind(own_name)?,
                to: target.to_string(),
            }
        };
        Ok(ClientPort {
            client,
            reply: None,
        })
    }
}

impl Port for ClientPort {
    fn send(&mut self, msg: &[u8]) -> Fallible<()> {
        let request = matches!(msg.first(), Some(&PING) | Some(&ACK));
        match (&self.client, request) {
            (Client::Local { own, to }, true) => {
                self.reply = Some(own.request(to, msg, REPLY_WAIT)?);
            }
            (Client::Local { own, to }, false) => own.send(to, msg)?,
            (Client::Remote(r), true) => self.reply = Some(r.request(msg, REPLY_WAIT)?),
            (Client::Remote(r), false) => r.send(msg)?,
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Fallible<usize> {
        let reply = self
            .reply
            .take()
            .ok_or("protocol error: a receive with no request answered")?;
        let n = reply.len();
        buf.get_mut(..n)
            .ok_or("the reply is larger than the receive buffer")?
            .copy_from_slice(&reply);
        Ok(n)
    }

    fn carries(&self) -> Carries {
        let max = match &self.client {
            Client::Local { .. } => ipcx::mailbox::DEFAULT_MAX_PAYLOAD,
            Client::Remote(r) => r.max_payload(),
        };
        Carries::Bytes { max }
    }

    fn recv_buffer(&self, largest: usize) -> usize {
        largest.max(1)
    }

    fn max_batch(&self) -> usize {
        // One-way messages beyond the receiver's queued-bytes bound (256 MiB) would be
        // dropped: keep a batch of the largest messages well inside it.
        64
    }
}

/// The peer's side: a bound mailbox, answering each request with the next `send`.
pub struct ServerPort {
    mailbox: Mailbox,
    pending: Option<Envelope>,
    /// The TCP front for `mailbox-tcp`, served from a thread of the peer.
    server: Option<(
        std::sync::Arc<ipcx::mailbox::TcpServer>,
        std::thread::JoinHandle<ipcx::Result<()>>,
    )>,
}

impl ServerPort {
    /// Binds `name` (and with `tcp`, serves it on an ephemeral loopback port); returns
    /// the port and the target the bench should use.
    pub fn bind(name: &str, tcp: bool) -> Fallible<(ServerPort, String)> {
        let mailbox = Mailbox::bind(name)?;
        let (server, target) = if tcp {
            let server = std::sync::Arc::new(TcpServeOptions::new().bind("127.0.0.1:0")?);
            let target = format!("{name}@{}", server.local_addr()?);
            let run = server.clone();
            let thread = std::thread::Builder::new()
                .name("ipcx-bench-tcp".into())
                .spawn(move || run.run())?;
            (Some((server, thread)), target)
        } else {
            (None, name.to_string())
        };
        Ok((
            ServerPort {
                mailbox,
                pending: None,
                server,
            },
            target,
        ))
    }
}

impl Drop for ServerPort {
    fn drop(&mut self) {
        // Stop the server and wait for it, so that its mailbox is removed with it.
        if let Some((server, thread)) = self.server.take() {
            server.shutdown();
            let _ = thread.join();
        }
    }
}

impl Port for ServerPort {
    fn send(&mut self, msg: &[u8]) -> Fallible<()> {
        let env = self
            .pending
            .take()
            .ok_or("protocol error: an answer with no request to answer")?;
        Ok(env.reply(msg)?)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Fallible<usize> {
        let env = self.mailbox.recv()?;
        let n = env.payload().len();
        buf.get_mut(..n)
            .ok_or("the message is larger than the receive buffer")?
            .copy_from_slice(env.payload());
        if env.expects_reply() {
            self.pending = Some(env);
        }
        Ok(n)
    }

    fn carries(&self) -> Carries {
        Carries::Bytes {
            max: ipcx::mailbox::DEFAULT_MAX_PAYLOAD,
        }
    }

    fn recv_buffer(&self, largest: usize) -> usize {
        largest.max(1)
    }
}
