//! Reasons for the answers hyper writes by itself.
//!
//! When a request head cannot be parsed, hyper's HTTP/1 server answers on its own, before
//! any service sees the request: `400 Bad Request`, `414 URI Too Long` or `431 Request
//! Header Fields Too Large`, with an empty body, then closes the connection. [`Explained`]
//! wraps a client connection and gives those answers a one-line plain-text reason, as every
//! answer the proxy makes itself has.
//!
//! Such an answer is recognised exactly: a write that is a whole response head consisting
//! of one of those status lines, `connection: close`, `content-length: 0` and `date`, which
//! is all hyper sends. Every answer that went through the service carries `x-cache` or a
//! non-empty body, so none can look like it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The automatic answers hyper writes, and the reason each gets.
const AUTOMATIC: [(&[u8], &str); 3] = [
    (
        b"HTTP/1.1 400 Bad Request\r\n",
        "bad request: the request head is malformed",
    ),
    (
        b"HTTP/1.1 414 URI Too Long\r\n",
        "uri too long: the request target is too long",
    ),
    (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
        "request header fields too large: the request head exceeds --max-header-bytes",
    ),
];

pin_project_lite::pin_project! {
    /// A client connection whose automatic error answers get a reason (see the module docs).
    #[derive(Debug)]
    pub(crate) struct Explained<T> {
        #[pin]
        io: T,
        // A replacement being written, how much of it is out, and the length of the write
        // it stands for.
        replacing: Option<(Vec<u8>, usize, usize)>,
    }
}

impl<T> Explained<T> {
    /// Wraps a client connection.
    pub(crate) fn new(io: T) -> Self {
        Self {
            io,
            replacing: None,
        }
    }
}

/// The answer to write instead of `buf`, when `buf` is one of hyper's automatic answers.
fn replacement(buf: &[u8]) -> Option<Vec<u8>> {
    let (status_line, reason) = AUTOMATIC.iter().find(|(line, _)| buf.starts_with(line))?;
    let rest = &buf[status_line.len()..];
    let rest = rest.strip_prefix(b"connection: close\r\ncontent-length: 0\r\n".as_slice())?;
    let date = rest.strip_prefix(b"date: ".as_slice())?;
    let date = date.strip_suffix(b"\r\n\r\n".as_slice())?;
    if date.len() > 64 || date.contains(&b'\n') {
        return None;
    }
    let body = format!("{reason}\n");
    let mut out = Vec::with_capacity(status_line.len() + 200 + body.len());
    out.extend_from_slice(status_line);
    out.extend_from_slice(b"connection: close\r\ncontent-type: text/plain; charset=utf-8\r\n");
    out.extend_from_slice(b"cache-control: no-store\r\n");
    out.extend_from_slice(format!("content-length: {}\r\ndate: ", body.len()).as_bytes());
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body.as_bytes());
    Some(out)
}

impl<T: AsyncRead> AsyncRead for Explained<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl<T: AsyncWrite> AsyncWrite for Explained<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut this = self.project();
        if this.replacing.is_none() {
            if !buf.starts_with(b"HTTP/1.1 4") {
                return this.io.poll_write(cx, buf);
            }
            match replacement(buf) {
                Some(out) => *this.replacing = Some((out, 0, buf.len())),
                None => return this.io.poll_write(cx, buf),
            }
        }
        // Write the whole replacement before saying the original write is done.
        let (out, written, stands_for) = this.replacing.as_mut().expect("set above");
        while *written < out.len() {
            let n = std::task::ready!(this.io.as_mut().poll_write(cx, &out[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        let stands_for = *stands_for;
        *this.replacing = None;
        Poll::Ready(Ok(stands_for))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // An automatic answer is a head alone: one buffer.
        match bufs.iter().find(|buf| !buf.is_empty()) {
            Some(first) if first.starts_with(b"HTTP/1.1 4") || self.replacing.is_some() => {
                self.poll_write(cx, first)
            }
            _ => self.project().io.poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "date: Fri, 27 Nov 2026 06:38:05 GMT\r\n\r\n";

    #[test]
    fn hypers_431_gets_a_reason() {
        let head = format!(
            "HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n{DATE}"
        );
        let out = String::from_utf8(replacement(head.as_bytes()).unwrap()).unwrap();
        assert!(out.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(out.contains("content-type: text/plain; charset=utf-8\r\n"));
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(body.starts_with("request header fields too large"));
        assert!(body.ends_with('\n') && body.lines().count() == 1);
    }

    #[test]
    fn other_answers_are_left_alone() {
        let forwarded = format!(
            "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\nx-cache: MISS\r\n{DATE}"
        );
        assert!(replacement(forwarded.as_bytes()).is_none());
        let with_body = "HTTP/1.1 400 Bad Request\r\ncontent-length: 3\r\n\r\nabc";
        assert!(replacement(with_body.as_bytes()).is_none());
        let ok = format!("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n{DATE}");
        assert!(replacement(ok.as_bytes()).is_none());
    }
}
