//! The peer process: `ipcx bench-child SPEC`, started by `ipcx bench` for each row. It
//! pins itself, sets up its side of the link, answers until told to quit, and exits 0;
//! on any error it says what on stderr (which the bench shows in the row) and exits 1.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

use ipcx::addr::Address;
use ipcx::channel;
use ipcx::eventfd::EventFd;
use rustix::process::Signal;

use super::Fallible;
use super::direct::{FdPort, MqPort};
use super::machine;
use super::port::{ChannelPort, EventfdPort, Port, serve};
use super::rows::{PeerLink, PeerSpec, SETUP_WAIT, dup_stdio, say_ready};
use super::shm::{self, CachelinePort, FLOOR_SIZE, FutexPort, RingLayout, RingPort};

/// Runs the peer described by the JSON `spec`.
pub fn main(spec: &str) -> ExitCode {
    let spec: PeerSpec = match serde_json::from_str(spec) {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!(
                "ipcx bench-child: bad instructions ({e}); this subcommand is started by \
                 `ipcx bench`, not by hand"
            );
            return ExitCode::from(2);
        }
    };
    match run(&spec) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run(spec: &PeerSpec) -> Fallible<()> {
    // Die with the bench: a peer blocked on a queue would otherwise wait for ever.
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
    if rustix::process::getppid().map(|p| p.as_raw_nonzero().get() as u32) != Some(spec.parent) {
        return Err("the bench exited before its peer started".into());
    }
    if let Some(cpu) = spec.cpu {
        machine::pin_current_thread(cpu)?;
    }
    shm::yield_when_spinning(spec.single_cpu);
    let mut port = open(spec)?;
    let mut buf = vec![0u8; port.recv_buffer(spec.largest).max(1)];
    serve(&mut *port, &mut buf)
}

/// Sets up the peer's side of the link.
fn open(spec: &PeerSpec) -> Fallible<Box<dyn Port>> {
    Ok(match &spec.link {
        PeerLink::Channel { recv, send } => {
            let recv: Address = recv.parse()?;
            let send: Address = send.parse()?;
            let rx = channel::receiver(&recv)?;
            say_ready(&rx.address().unwrap_or(recv))?;
            let tx = channel::sender_timeout(&send, SETUP_WAIT)?;
            let lossy = send.transport() == ipcx::addr::Transport::Udp;
            Box::new(ChannelPort::new(tx, rx, lossy))
        }
        PeerLink::Pipe => {
            let pipe: Address = "pipe:".parse()?;
            let rx = channel::receiver(&pipe)?;
            let tx = channel::sender(&pipe)?;
            Box::new(ChannelPort::new(tx, rx, false))
        }
        PeerLink::Ring { max_out, max_back } => {
            let layout = RingLayout {
                max_out: *max_out,
                max_back: *max_back,
            };
            let region = shm::adopt(stdin()?, layout.size())?;
            Box::new(RingPort::peer_side(region, layout))
        }
        PeerLink::Cacheline => Box::new(CachelinePort::new(shm::adopt(stdin()?, FLOOR_SIZE)?)),
        PeerLink::Futex => Box::new(FutexPort::new(shm::adopt(stdin()?, FLOOR_SIZE)?)),
        PeerLink::Eventfd => {
            let from_bench = EventFd::try_from(stdin()?)?;
            let to_bench = EventFd::try_from(stdout()?)?;
            Box::new(EventfdPort::new(to_bench, from_bench))
        }
        PeerLink::LibcPipe { size } => Box::new(FdPort::pipe(stdin()?, stdout()?, *size)),
        PeerLink::LibcUnix { path, size } => {
            // The bench's pings come on the first connection, replies go on the second.
            let connect = || {
                UnixStream::connect(path)
                    .map(OwnedFd::from)
                    .map_err(|e| format!("connect to {}: {e}", path.display()))
            };
            let (pings, replies) = (connect()?, connect()?);
            Box::new(FdPort::sockets(pings, replies, *size))
        }
        PeerLink::LibcMq { recv, send, size } => Box::new(MqPort::open(send, recv, *size)?),
        PeerLink::Mailbox { name, tcp } => {
            let (port, target) = super::mailbox::ServerPort::bind(name, *tcp)?;
            let mut out = std::io::stdout().lock();
            std::io::Write::write_all(&mut out, format!("ready {target}\n").as_bytes())?;
            std::io::Write::flush(&mut out)?;
            Box::new(port)
        }
    })
}

fn stdin() -> Fallible<OwnedFd> {
    dup_stdio(std::io::stdin(), "stdin")
}

fn stdout() -> Fallible<OwnedFd> {
    dup_stdio(std::io::stdout(), "stdout")
}
