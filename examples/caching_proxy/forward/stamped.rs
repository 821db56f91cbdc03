//! A connector whose connections remember when they were opened.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http::uri::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use tower::Service;

/// When an origin connection was opened (a [`Connected`] extra).
#[derive(Clone, Copy, Debug)]
pub(super) struct OpenedAt(pub(super) Instant);

/// A connector whose connections record when they were opened, so that a failure can be
/// told to be on a reused connection.
#[derive(Clone, Debug)]
pub(super) struct Stamped<C>(pub(super) C);

impl<C> Service<Uri> for Stamped<C>
where
    C: Service<Uri>,
    C::Future: Send + 'static,
{
    type Response = StampedIo<C::Response>;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, C::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), C::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move {
            let io = connecting.await?;
            Ok(StampedIo {
                io,
                opened: Instant::now(),
            })
        })
    }
}

/// A connection opened by [`Stamped`].
#[derive(Debug)]
pub(super) struct StampedIo<T> {
    io: T,
    opened: Instant,
}

impl<T: Connection> Connection for StampedIo<T> {
    /// What the pool keeps of the connection: the inner connection's flags, and when it was
    /// opened. Not the inner connection's extras (hyper-util's `HttpInfo`, its addresses): the
    /// client puts every extra in every response's extensions, an allocation per response
    /// that the proxy drops unread.
    fn connected(&self) -> Connected {
        let inner = self.io.connected();
        let connected = Connected::new().proxy(inner.is_proxied());
        let connected = if inner.is_negotiated_h2() {
            connected.negotiated_h2()
        } else {
            connected
        };
        connected.extra(OpenedAt(self.opened))
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for StampedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for StampedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}
