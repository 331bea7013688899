//! eventfds, signals and process exits on tokio.

use super::{Direction, io_op, wrapper};
use crate::error::Result;
use crate::eventfd::EventFd;
use crate::process::{ExitStatus, Pidfd};
use crate::signal::{SignalFd, SignalInfo, SignalPipe, SignalSet};

wrapper! {
    /// An [`EventFd`] on tokio: async `read` of the counter and `write` to it.
    ///
    /// # Examples
    ///
    /// ```
    /// use ipcx::eventfd::EventFd;
    /// use ipcx::tokio::AsyncEventFd;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_io().build()?.block_on(async {
    /// let events = AsyncEventFd::new(EventFd::new(0)?)?;
    /// events.write(3).await?;
    /// assert_eq!(events.read().await?, 3);
    /// # Ok::<(), ipcx::Error>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub struct AsyncEventFd(EventFd), label = |e: &EventFd| e.to_string();
}

impl AsyncEventFd {
    /// Reads and resets the counter (in semaphore mode, takes 1), waiting while it is 0.
    ///
    /// # Cancellation safety
    ///
    /// Cancellation-safe: the counter is read within the poll that completes the future,
    /// or not at all.
    pub async fn read(&self) -> Result<u64> {
        let object = self.get_ref().to_string();
        io_op(&self.reg, Direction::Read, "read", &object, |e| {
            e.try_read()
        })
        .await
    }

    /// Adds `n` to the counter, waiting while it would pass its maximum.
    ///
    /// # Errors
    /// As [`EventFd::write`]: `u64::MAX` is refused before any system call.
    ///
    /// # Cancellation safety
    ///
    /// Cancellation-safe: `n` is added whole within the poll that completes the future,
    /// or not at all.
    pub async fn write(&self, n: u64) -> Result<()> {
        let object = self.get_ref().to_string();
        io_op(&self.reg, Direction::Write, "write", &object, |e| {
            e.try_write(n)
        })
        .await
    }
}

wrapper! {
    /// A [`SignalFd`] on tokio: an async stream of the signals it was made for.
    ///
    /// The signals must be blocked in *every* thread, the runtime's worker threads
    /// included: block them with [`SignalMask`](crate::signal::SignalMask) in `main`
    /// before the runtime starts its threads (they inherit the mask), or a worker that
    /// does not block a signal takes it instead (see [`crate::signal`]).
    pub struct AsyncSignalFd(SignalFd), label = |s: &SignalFd| s.to_string();
}

impl AsyncSignalFd {
    /// Receives the next pending signal, waiting until one arrives.
    ///
    /// # Cancellation safety
    ///
    /// Cancellation-safe: a signal is dequeued only within the poll that completes the
    /// future.
    pub async fn recv(&self) -> Result<SignalInfo> {
        let object = self.get_ref().to_string();
        io_op(&self.reg, Direction::Read, "read", &object, |s| {
            s.try_read()
        })
        .await
    }
}

wrapper! {
    /// A [`SignalPipe`] on tokio: handler-style signals (`SIGTERM`, `SIGCHLD`, …) as an
    /// async stream of the sets that arrived.
    pub struct AsyncSignalPipe(SignalPipe), label = |_: &SignalPipe| "signal pipe".to_string();
}

impl AsyncSignalPipe {
    /// Waits until at least one of the registered signals arrived and returns which did
    /// since the last call.
    ///
    /// # Cancellation safety
    ///
    /// Cancellation-safe: the arrivals are taken only within the poll that completes the
    /// future.
    pub async fn recv(&self) -> Result<SignalSet> {
        io_op(&self.reg, Direction::Read, "read", &"signal pipe", |p| {
            p.try_read()
        })
        .await
    }
}

wrapper! {
    /// A [`Pidfd`] on tokio: await a process's exit, and a child's exit status.
    pub struct AsyncPidfd(Pidfd), label = |p: &Pidfd| p.to_string();
}

impl AsyncPidfd {
    /// Waits until the process has exited.
    ///
    /// # Cancellation safety
    ///
    /// Cancellation-safe: it only observes.
    pub async fn exited(&self) -> Result<()> {
        let object = self.get_ref().to_string();
        io_op(&self.reg, Direction::Read, "wait exit", &object, |p| {
            p.try_wait_exit()
        })
        .await
    }

    /// Waits until the child has exited and returns how it ended, without reaping it
    /// (as [`Pidfd::exit_status`]).
    ///
    /// # Errors
    /// As [`Pidfd::exit_status`]: only a parent can learn a process's exit status.
    ///
    /// # Cancellation safety
    ///
    /// Cancellation-safe: it only observes.
    pub async fn exit_status(&self) -> Result<ExitStatus> {
        let object = self.get_ref().to_string();
        io_op(&self.reg, Direction::Read, "waitid", &object, |p| {
            p.try_exit_status()
        })
        .await
    }
}
