//! The response future of [`Cache`](crate::Cache).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::Response;
use pin_project_lite::pin_project;

use crate::body::ResponseBody;
use crate::metrics::ByteCount;
use crate::status::{Forward, StatusHeaders};

/// The boxed future of a request that goes through the store.
pub(crate) type CachedFuture<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, E>> + Send>>;

pin_project! {
    /// Response future of [`Cache`](crate::Cache).
    ///
    /// Requests the cache does not handle (unsafe methods, requests it cannot key) poll the
    /// inner future directly, with no allocation; cacheable requests run through the store.
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        kind: Kind<F, B, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E> {
        Forward {
            #[pin]
            future: F,
            status: Arc<StatusHeaders>,
            forward: Forward,
            counted: ByteCount,
        },
        Cached {
            future: CachedFuture<B, E>,
        },
        Ready {
            response: Option<Response<ResponseBody<B>>>,
        },
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    pub(crate) fn forward(
        future: F,
        status: Arc<StatusHeaders>,
        forward: Forward,
        counted: ByteCount,
    ) -> Self {
        Self {
            kind: Kind::Forward {
                future,
                status,
                forward,
                counted,
            },
        }
    }

    /// A response the cache had at hand when called: no allocation, no inner call.
    pub(crate) fn ready(response: Response<ResponseBody<B>>) -> Self {
        Self {
            kind: Kind::Ready {
                response: Some(response),
            },
        }
    }

    pub(crate) fn cached(future: CachedFuture<B, E>) -> Self {
        Self {
            kind: Kind::Cached { future },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Forward {
                future,
                status,
                forward,
                counted,
            } => {
                let response = ready!(future.poll(cx))?;
                let (mut parts, body) = response.into_parts();
                status.forwarded_parts(&mut parts, *forward, None);
                let body = ResponseBody::pass(body).counted(std::mem::take(counted));
                Poll::Ready(Ok(Response::from_parts(parts, body)))
            }
            KindProj::Cached { future } => future.as_mut().poll(cx),
            KindProj::Ready { response } => Poll::Ready(Ok(response
                .take()
                .expect("ResponseFuture polled after completion"))),
        }
    }
}

impl<F, B, E> fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
