//! Pipes and FIFOs as tokio byte streams.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{Direction, poll_op, wrapper};
use crate::pipe::{PipeReader, PipeWriter};

wrapper! {
    /// The read end of a pipe or FIFO, as a tokio [`AsyncRead`].
    ///
    /// Reads return what is in the pipe as soon as anything is, and `Ok(0)` bytes read at
    /// end of file: every writer has closed its end. (A FIFO that no writer has opened
    /// yet is not at end of file: reads wait for a writer.) A packet-mode pipe returns one
    /// packet per read and, as [`PipeReader::try_read`] does, refuses buffers smaller than
    /// [`PIPE_BUF`](crate::pipe::PIPE_BUF).
    ///
    /// # Cancellation safety
    ///
    /// Each `poll_read` either copies bytes out of the pipe and returns them, or copies
    /// nothing, so tokio's `AsyncReadExt::read` is cancellation-safe: dropping its future
    /// never loses data. (`read_exact` and `read_to_end` keep what they read so far in
    /// their own buffers, as everywhere in tokio.)
    ///
    /// # Examples
    ///
    /// A child process writes to its stdout, which is the pipe:
    ///
    /// ```
    /// use std::process::{Command, Stdio};
    /// use ipcx::tokio::AsyncPipeReader;
    /// use tokio::io::AsyncReadExt;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_io().build()?.block_on(async {
    /// let (reader, writer) = ipcx::pipe::pipe()?;
    /// let mut child = Command::new("echo").arg("hello").stdout(Stdio::from(writer)).spawn()?;
    /// let mut reader = AsyncPipeReader::new(reader)?;
    /// let mut out = String::new();
    /// reader.read_to_string(&mut out).await?; // end of file once `echo` exits
    /// assert_eq!(out, "hello\n");
    /// child.wait()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # References
    /// - [pipe(7)](https://man7.org/linux/man-pages/man7/pipe.7.html)
    pub struct AsyncPipeReader(PipeReader), label = |r: &PipeReader| r.to_string();
}

wrapper! {
    /// The write end of a pipe or FIFO, as a tokio [`AsyncWrite`].
    ///
    /// Writes put what fits into the pipe as soon as there is room. When every reader has
    /// closed its end, writes fail with an [`io::Error`] of kind
    /// [`BrokenPipe`](io::ErrorKind::BrokenPipe) (inside it an
    /// [`ipcx::Error`](crate::Error) of kind [`PeerGone`](crate::ErrorKind::PeerGone));
    /// `SIGPIPE` is never raised, even in a program that restored its default action.
    /// In a packet-mode pipe each write of at most [`PIPE_BUF`](crate::pipe::PIPE_BUF)
    /// bytes is one packet, and larger writes are refused.
    ///
    /// `poll_flush` has nothing to do (a pipe has no user-space buffer) and
    /// `poll_shutdown` does not close the pipe: drop the writer (or its
    /// [`into_inner`](AsyncPipeWriter::into_inner)) to give the reader end of file.
    ///
    /// # Cancellation safety
    ///
    /// Each `poll_write` either writes bytes and returns how many, or writes nothing, so
    /// tokio's `AsyncWriteExt::write` is cancellation-safe. `write_all` is not: when its
    /// future is dropped, part of the buffer may have been written.
    ///
    /// # References
    /// - [pipe(7)](https://man7.org/linux/man-pages/man7/pipe.7.html)
    pub struct AsyncPipeWriter(PipeWriter), label = |w: &PipeWriter| w.to_string();
}

impl AsyncRead for AsyncPipeReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let reg = &self.reg;
        let unfilled = buf.initialize_unfilled();
        let read = poll_op(reg, cx, Direction::Read, "read", reg.get_ref(), |r| {
            r.try_read(unfilled)
        });
        match read {
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e.into())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for AsyncPipeWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let reg = &self.reg;
        poll_op(reg, cx, Direction::Write, "write", reg.get_ref(), |w| {
            w.try_write(buf)
        })
        .map_err(io::Error::from)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
