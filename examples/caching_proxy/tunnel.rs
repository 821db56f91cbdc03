//! `CONNECT` tunnels of the forward proxy (RFC 9110 §9.3.6): once the target accepted a TCP
//! connection, the client gets `200` and bytes are relayed both ways, unread and uncached.
//! Tunnels are bounded in number and closed after a time without traffic.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::Authority;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::front::text_response;

/// How long a tunnel may go without a byte in either direction.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Opens tunnels, at most a fixed number at once.
#[derive(Debug)]
pub(crate) struct Tunnels {
    /// One permit per open tunnel.
    slots: Arc<Semaphore>,
    /// Bound on connecting to the target.
    connect_timeout: Duration,
}

impl Tunnels {
    /// At most `max` tunnels at once; connecting to a target may take `connect_timeout`.
    pub(crate) fn new(max: usize, connect_timeout: Duration) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max)),
            connect_timeout,
        }
    }

    /// Answers the `CONNECT` request `req` for `target`: `200` and a relay once the
    /// connection is upgraded, or `502`/`503`/`504` with a reason.
    pub(crate) async fn open<B>(
        &self,
        req: &mut Request<B>,
        target: Authority,
    ) -> Response<Full<Bytes>> {
        let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() else {
            return text_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "service unavailable: too many open tunnels",
            );
        };
        let connecting = TcpStream::connect(target.as_str());
        let upstream = match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(Ok(upstream)) => upstream,
            Ok(Err(err)) => {
                tracing::warn!(%target, error = %err, "cannot open a tunnel");
                return text_response(
                    StatusCode::BAD_GATEWAY,
                    "bad gateway: cannot connect to the tunnel's target",
                );
            }
            Err(_elapsed) => {
                return text_response(
                    StatusCode::GATEWAY_TIMEOUT,
                    "gateway timeout: the tunnel's target did not accept the connection in time",
                );
            }
        };
        let _ = upstream.set_nodelay(true);
        let upgrade = hyper::upgrade::on(req);
        tokio::spawn(async move {
            let _permit = permit;
            match upgrade.await {
                Ok(client) => relay(TokioIo::new(client), upstream, &target).await,
                Err(err) => tracing::debug!(%target, error = %err, "tunnel not upgraded"),
            }
        });
        Response::new(Full::default())
    }
}

/// Copies bytes both ways until both sides are done or nothing moved for [`IDLE_TIMEOUT`].
async fn relay<C>(client: C, upstream: TcpStream, target: &Authority)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let started = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let mut client = Watched::new(client, started, Arc::clone(&last));
    let mut upstream = Watched::new(upstream, started, Arc::clone(&last));
    let idle = async {
        loop {
            let quiet_since = Duration::from_millis(last.load(Ordering::Relaxed));
            let deadline = started + quiet_since + IDLE_TIMEOUT;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    };
    tokio::select! {
        result = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
            if let Err(err) = result {
                tracing::debug!(%target, error = %err, "tunnel closed");
            }
        }
        () = idle => tracing::debug!(%target, "tunnel idle; closed"),
    }
}

pin_project_lite::pin_project! {
    /// A stream that records when bytes last moved through it.
    struct Watched<T> {
        #[pin]
        io: T,
        started: Instant,
        last: Arc<AtomicU64>,
    }
}

impl<T> Watched<T> {
    fn new(io: T, started: Instant, last: Arc<AtomicU64>) -> Self {
        Self { io, started, last }
    }
}

/// Notes in `last` that bytes moved now (milliseconds since `started`).
fn touch(started: Instant, last: &AtomicU64) {
    let now = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    last.store(now, Ordering::Relaxed);
}

impl<T: AsyncRead> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let result = this.io.poll_read(cx, buf);
        if buf.filled().len() > before {
            touch(*this.started, this.last);
        }
        result
    }
}

impl<T: AsyncWrite> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}
