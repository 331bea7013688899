//! iceoryx2: two publish-subscribe services over shared memory, one each way, between the
//! two processes (`ipc::Service`, iceoryx2's inter-process service type with its default
//! configuration).
//!
//! Configured as iceoryx2's own publish-subscribe latency benchmark
//! (`benchmarks/publish-subscribe` in its repository) configures its services: payload
//! `[u8]` slices, one publisher and one subscriber per service, no history, a subscriber
//! buffer of one sample, safe overflow; publishers with an initial maximum slice length
//! of the ping's size. Sending uses the recommended zero-copy API: `loan_slice_uninit`,
//! write the payload in place (`write_from_slice`), `send`. Receiving reads the sample in
//! place; the peer answers from the received sample straight into a new loan, then drops
//! the sample.
//!
//! - `iceoryx2-busy` waits by polling `Subscriber::receive` (as iceoryx2's benchmark
//!   does), with the same pause instruction as every other busy wait here.
//! - `iceoryx2-busy-preloan` as `iceoryx2-busy`, but each side loans its next sample
//!   right after sending, while the answer is awaited, as iceoryx2's own benchmark does.
//! - `iceoryx2-event` adds an event service each way, iceoryx2's documented way to block
//!   on publish-subscribe (its `event_based_communication` example pairs them the same
//!   way): after `send` the publisher's side calls `Notifier::notify`; a receiver that
//!   finds no sample sleeps in `Listener::blocking_wait` (iceoryx2's recommended IPC
//!   event: a Unix datagram socket with a shared-memory bitset) and looks again when
//!   woken. No WaitSet (the example's): it would add an epoll around the same listener.
//!
//! iceoryx2 runs with its default configuration (no config file: its log level is set
//! to errors only, since it warns about that). Nodes are created with signal handling disabled, so that a Ctrl-C reaches this
//! program's own handler (iceoryx2's would only set a flag that a busy loop never reads).

use std::fmt::Debug;
use std::mem::MaybeUninit;
use std::process::Stdio;

use iceoryx2::port::listener::Listener;
use iceoryx2::port::notifier::Notifier;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use iceoryx2::sample::Sample;
use iceoryx2::sample_mut_uninit::SampleMutUninit;

use crate::measure::{Port, QUIT, spin};
use crate::peer;
use crate::{Fallible, Setup};

type Ipc = ipc::Service;

/// How an iceoryx2 row sends and waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Poll `receive`; loan, write and send each message when it is sent.
    Busy,
    /// Poll `receive`; loan the next sample right after each send, while the answer is
    /// awaited, as iceoryx2's own benchmark does (`iceoryx2-busy-preloan`).
    Preloan,
    /// Sleep in `Listener::blocking_wait`; notify after each send.
    Event,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Busy => "busy",
            Mode::Preloan => "preloan",
            Mode::Event => "event",
        }
    }

    fn parse(s: &str) -> Fallible<Mode> {
        [Mode::Busy, Mode::Preloan, Mode::Event]
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown iceoryx2 mode `{s}`").into())
    }
}

/// A loaned, not yet written sample.
type Loaned = SampleMutUninit<Ipc, [MaybeUninit<u8>], ()>;

/// One side of an iceoryx2 link. Field order is drop order: the loan and the ports
/// before the node.
pub struct IoxPort {
    /// `Mode::Preloan`: the sample loaned for the next send.
    next: Option<Loaned>,
    preloan: bool,
    publisher: Publisher<Ipc, [u8], ()>,
    subscriber: Subscriber<Ipc, [u8], ()>,
    /// The event ports of `iceoryx2-event`: this side's notifier and listener.
    event: Option<(Notifier<Ipc>, Listener<Ipc>)>,
    _node: Node<Ipc>,
}

fn node() -> Fallible<Node<Ipc>> {
    // Errors only: without a config file iceoryx2 warns that it uses its defaults, which
    // is what this benchmark means to use.
    set_log_level(LogLevel::Error);
    Ok(NodeBuilder::new()
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<Ipc>()?)
}

fn service_name(base: &str, dir: &str) -> Fallible<ServiceName> {
    Ok(ServiceName::new(&format!("{base}/{dir}"))?)
}

/// An error of iceoryx2 as text (some of its error types carry no `Display` detail
/// beyond their variant).
fn iox<E: Debug>(what: &str) -> impl FnOnce(E) -> Box<dyn std::error::Error + Send + Sync> {
    move |e| format!("iceoryx2 {what}: {e:?}").into()
}

impl IoxPort {
    /// This side of `iceoryx2-busy`, `iceoryx2-busy-preloan` or `iceoryx2-event`:
    /// creates the services and this side's subscriber (and listener), starts the peer,
    /// which opens them and creates its ports, then creates this side's publisher (and
    /// notifier).
    pub fn connect(row: &'static str, mode: Mode, setup: &Setup) -> Fallible<IoxPort> {
        let event = mode == Mode::Event;
        let node = node()?;
        // Resources left by an earlier run that was killed: iceoryx2's own cleanup of
        // nodes whose process is dead (it never touches a live node's).
        let _ = node.try_cleanup_dead_nodes();
        let base = format!("ipcx-peers/{}/{row}", std::process::id());
        let pubsub = |dir: &str| -> Fallible<_> {
            node.service_builder(&service_name(&base, dir)?)
                .publish_subscribe::<[u8]>()
                .max_publishers(1)
                .max_subscribers(1)
                .history_size(0)
                .subscriber_max_buffer_size(1)
                .enable_safe_overflow(true)
                .create()
                .map_err(iox("create publish-subscribe service"))
        };
        let (a2b, b2a) = (pubsub("a2b")?, pubsub("b2a")?);
        let subscriber = b2a
            .subscriber_builder()
            .create()
            .map_err(iox("create subscriber"))?;
        let events = if event {
            let ev = |dir: &str| -> Fallible<_> {
                node.service_builder(&service_name(&base, &format!("{dir}-event"))?)
                    .event()
                    .max_notifiers(1)
                    .max_listeners(1)
                    .create()
                    .map_err(iox("create event service"))
            };
            let (ev_a2b, ev_b2a) = (ev("a2b")?, ev("b2a")?);
            let listener = ev_b2a
                .listener_builder()
                .create()
                .map_err(iox("create listener"))?;
            Some((ev_a2b, listener))
        } else {
            None
        };
        let args = [
            base.clone(),
            if event { "event" } else { "busy" }.to_string(),
        ];
        let stdout = peer::spawn(&setup.spec(row, &args), Stdio::null())?;
        peer::read_ready(stdout)?;
        let publisher = a2b
            .publisher_builder()
            .initial_max_slice_len(setup.ping)
            .create()
            .map_err(iox("create publisher"))?;
        let event = match events {
            Some((ev_a2b, listener)) => Some((
                ev_a2b
                    .notifier_builder()
                    .create()
                    .map_err(iox("create notifier"))?,
                listener,
            )),
            None => None,
        };
        Ok(IoxPort {
            next: None,
            preloan: mode == Mode::Preloan,
            publisher,
            subscriber,
            event,
            _node: node,
        })
    }

    /// The peer's side: `args` are the services' base name and `busy` or `event`; the
    /// ping's size sizes the publisher.
    pub fn peer(args: &[String], ping: usize) -> Fallible<IoxPort> {
        let [base, mode] = args else {
            return Err("an iceoryx2 row's peer takes a service name and a mode".into());
        };
        let mode = Mode::parse(mode)?;
        let node = node()?;
        let pubsub = |dir: &str| -> Fallible<_> {
            node.service_builder(&service_name(base, dir)?)
                .publish_subscribe::<[u8]>()
                .open()
                .map_err(iox("open publish-subscribe service"))
        };
        let (a2b, b2a) = (pubsub("a2b")?, pubsub("b2a")?);
        let subscriber = a2b
            .subscriber_builder()
            .create()
            .map_err(iox("create subscriber"))?;
        let publisher = b2a
            .publisher_builder()
            .initial_max_slice_len(ping)
            .create()
            .map_err(iox("create publisher"))?;
        let event = if mode == Mode::Event {
            let ev = |dir: &str| -> Fallible<_> {
                node.service_builder(&service_name(base, &format!("{dir}-event"))?)
                    .event()
                    .open()
                    .map_err(iox("open event service"))
            };
            let (ev_a2b, ev_b2a) = (ev("a2b")?, ev("b2a")?);
            let listener = ev_a2b
                .listener_builder()
                .create()
                .map_err(iox("create listener"))?;
            let notifier = ev_b2a
                .notifier_builder()
                .create()
                .map_err(iox("create notifier"))?;
            Some((notifier, listener))
        } else {
            None
        };
        peer::say_ready("")?;
        Ok(IoxPort {
            next: None,
            preloan: mode == Mode::Preloan,
            publisher,
            subscriber,
            event,
            _node: node,
        })
    }

    /// Publishes `msg` through a loan (and notifies, with events). With `Mode::Preloan`
    /// the loan is the one taken after the previous send, and the next is taken now.
    fn publish(&mut self, msg: &[u8]) -> Fallible<()> {
        let sample = match self.next.take() {
            Some(s) if s.payload().len() == msg.len() => s,
            _ => self
                .publisher
                .loan_slice_uninit(msg.len())
                .map_err(iox("loan"))?,
        };
        let delivered = sample.write_from_slice(msg).send().map_err(iox("send"))?;
        if delivered == 0 {
            return Err("iceoryx2 send: no subscriber is connected".into());
        }
        if let Some((notifier, _)) = &self.event {
            notifier.notify().map_err(iox("notify"))?;
        }
        if self.preloan {
            self.next = Some(
                self.publisher
                    .loan_slice_uninit(msg.len())
                    .map_err(iox("loan"))?,
            );
        }
        Ok(())
    }

    /// Waits for the next sample.
    fn take(&self) -> Fallible<Sample<Ipc, [u8], ()>> {
        loop {
            if let Some(sample) = self.subscriber.receive().map_err(iox("receive"))? {
                return Ok(sample);
            }
            match &self.event {
                Some((_, listener)) => {
                    listener
                        .blocking_wait(|_| {})
                        .map_err(iox("listener wait"))?;
                }
                None => spin(),
            }
        }
    }
}

impl Port for IoxPort {
    fn send(&mut self, msg: &[u8]) -> Fallible<()> {
        self.publish(msg)
    }

    fn recv<R>(&mut self, look: impl FnOnce(&[u8]) -> R) -> Fallible<R> {
        // Read in place; the sample goes back to its publisher when dropped.
        let sample = self.take()?;
        Ok(look(sample.payload()))
    }

    fn echo(&mut self) -> Fallible<bool> {
        let sample = self.take()?;
        if sample.payload().first() == Some(&QUIT) {
            return Ok(false);
        }
        // Answer from the sample in place, into the new loan; then drop the sample.
        self.publish(sample.payload())?;
        drop(sample);
        Ok(true)
    }
}
