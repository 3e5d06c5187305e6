//! The client's TCP connections: writes that never raise SIGPIPE, and the
//! frames of one scheduler round sent in one system call.
//!
//! Writing to a connection the server has closed raises SIGPIPE, and a Perl
//! program usually keeps its default action, which ends the process. Our
//! writes go out with `send`/`sendmsg` and MSG_NOSIGNAL instead of
//! `write`/`writev`: they fail with EPIPE, on any thread, with no signal
//! mask to set and restore around each run of the runtime. Apple's systems,
//! whose send(2) documents no MSG_NOSIGNAL, get the same from the socket
//! option SO_NOSIGPIPE, set when the connection is made.
//!
//! hyper writes a request's HEADERS from the connection's task and its DATA
//! from another task, and h2 flushes after each: two sends, two packets and
//! two wake-ups of the server per call. So writes are gathered here, and
//! the first flush with bytes waiting lets the runtime's other ready tasks
//! run before it sends: what they write in that round leaves in the same
//! send.

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

/// Bytes gathered before they are sent without waiting for a flush; a
/// write larger than this goes out directly.
const GATHER_LIMIT: usize = 64 << 10;

/// The flags of every send: no SIGPIPE where the system has the flag; on
/// Apple's systems the socket carries SO_NOSIGPIPE instead (`Socket::new`).
#[cfg(not(target_vendor = "apple"))]
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(target_vendor = "apple")]
const SEND_FLAGS: libc::c_int = 0;

/// Makes writes on `tcp` fail with EPIPE instead of raising SIGPIPE.
#[cfg(target_vendor = "apple")]
fn no_sigpipe(tcp: &TcpStream) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a live socket; the option's value is a c_int of that size.
    let rc = unsafe {
        libc::setsockopt(
            tcp.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NOSIGPIPE,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A client connection: writes that raise no SIGPIPE, gathered until a
/// flush.
pub struct Socket {
    tcp: TcpStream,
    /// Written and not sent yet; `out[..sent]` has gone already.
    out: Vec<u8>,
    sent: usize,
    /// A flush found bytes waiting and let the other tasks run first.
    deferred: bool,
}

/// Runs `write` when `tcp` is writable, until it does not block.
fn poll_send(
    tcp: &TcpStream,
    cx: &mut Context<'_>,
    mut write: impl FnMut() -> isize,
) -> Poll<io::Result<usize>> {
    loop {
        ready!(tcp.poll_write_ready(cx))?;
        let sent = tcp.try_io(Interest::WRITABLE, || loop {
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

/// Sends `bufs` in one `sendmsg`, as far as the socket takes them.
fn poll_send_vectored(
    tcp: &TcpStream,
    cx: &mut Context<'_>,
    bufs: &[IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    let fd = tcp.as_raw_fd();
    // At most IOV_MAX (1024 on Linux) slices go in one call.
    let count = bufs.len().min(1024);
    poll_send(tcp, cx, || {
        // SAFETY: msghdr is plain data; zeroed is "no name, no control".
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        // IoSlice is ABI-compatible with iovec on Unix (std guarantees it).
        msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = count as _;
        // SAFETY: a live socket; the iovecs point at readable slices.
        unsafe { libc::sendmsg(fd, &msg, SEND_FLAGS) }
    })
}

impl Socket {
    pub fn new(tcp: TcpStream) -> io::Result<Socket> {
        #[cfg(target_vendor = "apple")]
        no_sigpipe(&tcp)?;
        Ok(Socket {
            tcp,
            out: Vec::new(),
            sent: 0,
            deferred: false,
        })
    }

    /// Sends everything gathered.
    fn poll_send_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.out.len() {
            let rest = [IoSlice::new(&self.out[self.sent..])];
            let n = ready!(poll_send_vectored(&self.tcp, cx, &rest))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.out.clear();
        self.sent = 0;
        self.deferred = false;
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if this.out.len() - this.sent + total > GATHER_LIMIT {
            ready!(this.poll_send_out(cx))?;
            if total > GATHER_LIMIT {
                return poll_send_vectored(&this.tcp, cx, bufs);
            }
        }
        for b in bufs {
            this.out.extend_from_slice(b);
        }
        Poll::Ready(Ok(total))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.sent == this.out.len() {
            return Poll::Ready(Ok(()));
        }
        if !this.deferred {
            // Back of the run queue: the tasks ready now write first.
            this.deferred = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        this.poll_send_out(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_out(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

/// tonic's own plain-TCP connector, set up as tonic sets it up, handing out
/// `Socket` streams. Its errors are the inner connector's, so a failed
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
    type Response = TokioIo<Socket>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move {
            let tcp = connecting.await?.into_inner();
            Ok(TokioIo::new(Socket::new(tcp)?))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// Runs `test` on a current-thread runtime with both ends of a fresh
    /// loopback connection (ours first).
    fn on_a_connection<F: Future<Output = ()>>(test: impl FnOnce(TcpStream, TcpStream) -> F) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let client = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let (server, _) = listener.accept().await.unwrap();
            test(client, server).await
        });
    }

    /// Writes wait for the second flush (the first lets other tasks run),
    /// then leave together; large and blocked writes keep their order.
    #[test]
    fn writes_are_gathered_until_a_flush() {
        on_a_connection(|client, server| async move {
            let mut stream = Socket::new(client).unwrap();

            stream.write_all(b"HEADERS").await.unwrap();
            stream.write_all(b"DATA").await.unwrap();
            let mut buf = [0u8; 64];
            let nothing = server.try_read(&mut buf);
            assert!(
                matches!(&nothing, Err(e) if e.kind() == io::ErrorKind::WouldBlock),
                "sent before the flush: {nothing:?}"
            );
            let waker = std::task::Waker::noop();
            let mut cx = Context::from_waker(waker);
            assert!(Pin::new(&mut stream).poll_flush(&mut cx).is_pending());
            assert!(Pin::new(&mut stream).poll_flush(&mut cx).is_ready());
            server.readable().await.unwrap();
            let n = server.try_read(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"HEADERSDATA");

            // 8 MB in writes of every size, far more than the socket holds
            // while nobody reads: it arrives whole and in order.
            let reader = tokio::spawn(async move {
                let mut server = server;
                let mut got = Vec::new();
                tokio::io::AsyncReadExt::read_to_end(&mut server, &mut got)
                    .await
                    .unwrap();
                got
            });
            let mut sent = Vec::new();
            let mut size = 1;
            while sent.len() < 8 << 20 {
                let chunk: Vec<u8> = (0..size).map(|i| (sent.len() + i) as u8).collect();
                stream.write_all(&chunk).await.unwrap();
                sent.extend_from_slice(&chunk);
                if size % 3 == 0 {
                    stream.flush().await.unwrap();
                }
                size = size * 7 % (3 * GATHER_LIMIT) + 1;
            }
            stream.shutdown().await.unwrap();
            drop(stream);
            let got = reader.await.unwrap();
            assert_eq!(got.len(), sent.len());
            assert!(got == sent, "the bytes arrived changed or out of order");
        });
    }

    /// With SIGPIPE's default action (a Perl program's), writing on after
    /// the peer closed fails with an error instead of killing the process.
    #[test]
    fn write_to_a_closed_peer_fails_without_a_signal() {
        // SAFETY: restores the default action, as a Perl program has it.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        on_a_connection(|client, server| async move {
            drop(server);
            let mut stream = Socket::new(client).unwrap();
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
