//! TCP connections whose writes never raise SIGPIPE.
//!
//! Writing to a connection the server has closed raises SIGPIPE, and a Perl
//! program usually keeps its default action, which ends the process. Our
//! writes go out with `send`/`sendmsg` and MSG_NOSIGNAL instead of
//! `write`/`writev`: they fail with EPIPE, on any thread, with no signal
//! mask to set and restore around each run of the runtime.

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::Uri;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A TCP stream that writes with MSG_NOSIGNAL.
pub struct NoSigPipe(TcpStream);

impl NoSigPipe {
    pub fn new(tcp: TcpStream) -> NoSigPipe {
        NoSigPipe(tcp)
    }

    /// Runs `write` when the socket is writable, until it does not block.
    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        mut write: impl FnMut() -> isize,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            let sent = self.0.try_io(Interest::WRITABLE, || loop {
                let n = write();
                if n >= 0 {
                    return Ok(n as usize);
                }
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            });
            match sent {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                done => return Poll::Ready(done),
            }
        }
    }
}

impl AsyncRead for NoSigPipe {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for NoSigPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let fd = self.0.as_raw_fd();
        self.poll_send(cx, || {
            // SAFETY: a live socket and a readable buffer of this length.
            unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) }
        })
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let fd = self.0.as_raw_fd();
        // At most IOV_MAX (1024 on Linux) slices go in one call.
        let count = bufs.len().min(1024);
        self.poll_send(cx, || {
            // SAFETY: msghdr is plain data; zeroed is "no name, no control".
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            // IoSlice is ABI-compatible with iovec on Unix (std guarantees it).
            msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
            msg.msg_iovlen = count as _;
            // SAFETY: a live socket; the iovecs point at readable slices.
            unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) }
        })
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// tonic's own plain-TCP connector, set up as tonic sets it up, handing out
/// `NoSigPipe` streams. Its errors are the inner connector's, so a failed
/// connect reads as before ("tcp connect error: Connection refused ...").
#[derive(Clone)]
pub struct PlainConnector(HttpConnector);

impl PlainConnector {
    pub fn new(connect_timeout: Duration) -> PlainConnector {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        PlainConnector(http)
    }
}

impl tower_service::Service<Uri> for PlainConnector {
    type Response = TokioIo<NoSigPipe>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move {
            let tcp = connecting.await?.into_inner();
            Ok(TokioIo::new(NoSigPipe(tcp)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// With SIGPIPE's default action (a Perl program's), writing on after
    /// the peer closed fails with an error instead of killing the process.
    #[test]
    fn write_to_a_closed_peer_fails_without_a_signal() {
        // SAFETY: restores the default action, as a Perl program has it.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let client = TcpStream::connect(addr).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            drop(server);
            let mut stream = NoSigPipe::new(client);
            let chunk = [0u8; 4096];
            let mut failed = None;
            for _ in 0..1000 {
                let slices = [IoSlice::new(&chunk), IoSlice::new(&chunk)];
                if let Err(e) = stream.write_vectored(&slices).await {
                    failed = Some(e);
                    break;
                }
                if let Err(e) = stream.write_all(&chunk).await {
                    failed = Some(e);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let e = failed.expect("writes to a closed peer kept succeeding");
            assert!(
                matches!(
                    e.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ),
                "{e}"
            );
        });
        // SAFETY: back to what the test harness had set.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    }
}
