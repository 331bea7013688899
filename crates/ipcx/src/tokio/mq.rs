//! POSIX message queues on tokio.

use super::{Direction, io_op, wrapper};
use crate::error::Result;
use crate::mq::posix::MessageQueue;

wrapper! {
    /// A POSIX [`MessageQueue`] on tokio: async `send` with a priority and `recv` of the
    /// most urgent message.
    ///
    /// Linux lets a queue descriptor be watched with epoll: readable while a message is
    /// queued, writable while there is room. This wrapper waits for readiness in
    /// tokio's reactor and then makes one attempt that never waits (`mq_timedsend` /
    /// `mq_timedreceive` with a deadline that has passed: the queue's `try_` forms). The owner semantics of the wrapped queue do
    /// not change: a queue this process created is unlinked when the wrapper (or what
    /// [`into_inner`](AsyncMessageQueue::into_inner) returned) is dropped.
    ///
    /// Several tasks may `recv` (or `send`) on one queue at once, and other processes
    /// may too: each message goes to exactly one receiver.
    ///
    /// # Examples
    ///
    /// ```
    /// use ipcx::mq::posix::MqOptions;
    /// use ipcx::tokio::AsyncMessageQueue;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_io().build()?.block_on(async {
    /// let name = format!("/ipcx-doc-async-mq-{}", std::process::id());
    /// let queue = MqOptions::new().capacity(4).max_msg_size(64).create(&name)?;
    /// let queue = AsyncMessageQueue::new(queue)?;
    /// queue.send(b"routine", 1).await?;
    /// queue.send(b"urgent", 9).await?;
    /// let mut buf = vec![0u8; queue.get_ref().max_msg_size()];
    /// let (len, prio) = queue.recv(&mut buf).await?;
    /// assert_eq!((&buf[..len], prio), (&b"urgent"[..], 9));
    /// # Ok::<(), ipcx::Error>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # References
    /// - [mq_overview(7)](https://man7.org/linux/man-pages/man7/mq_overview.7.html)
    pub struct AsyncMessageQueue(MessageQueue), label = |q: &MessageQueue| q.name().to_string();
}

impl AsyncMessageQueue {
    /// Sends `msg` with priority `prio` (0 to
    /// [`MQ_PRIO_MAX`](crate::mq::posix::MQ_PRIO_MAX)` - 1`, higher received first),
    /// waiting while the queue is full.
    ///
    /// # Errors
    /// As [`MessageQueue::send`]: [`MessageTooLarge`](crate::ErrorKind::MessageTooLarge)
    /// above the queue's message size and [`InvalidInput`](crate::ErrorKind::InvalidInput)
    /// for a priority out of range or a receive-only handle, both before any system call.
    ///
    /// # Cancellation safety
    ///
    /// Cancellation-safe: the message is queued whole within the poll that completes the
    /// future, or not at all; a future dropped while the queue was full sent nothing.
    #[doc(alias = "mq_send")]
    pub async fn send(&self, msg: &[u8], prio: u32) -> Result<()> {
        let queue = self.get_ref();
        io_op(&self.reg, Direction::Write, "mq_send", queue, |q| {
            q.try_send(msg, prio)
        })
        .await
    }

    /// Receives the oldest message of the highest priority into `buf`, waiting while the
    /// queue is empty; returns its length and priority.
    ///
    /// # Errors
    /// As [`MessageQueue::recv`]: [`MessageTooLarge`](crate::ErrorKind::MessageTooLarge)
    /// if `buf` is shorter than the queue's
    /// [`max_msg_size`](MessageQueue::max_msg_size), before any system call;
    /// [`InvalidInput`](crate::ErrorKind::InvalidInput) on a send-only handle.
    ///
    /// # Cancellation safety
    ///
    /// Cancellation-safe: a message is taken from the queue only within the poll that
    /// completes the future, so a future dropped before completing (by
    /// `tokio::time::timeout`, or another branch of `tokio::select!` winning) has taken
    /// none, and the next `recv` gets every message in order.
    #[doc(alias = "mq_receive")]
    pub async fn recv(&self, buf: &mut [u8]) -> Result<(usize, u32)> {
        let queue = self.get_ref();
        io_op(&self.reg, Direction::Read, "mq_receive", queue, |q| {
            q.try_recv(buf)
        })
        .await
    }
}
