//! The request log: one line per request, with method, path, status, `X-Cache`, time taken
//! and client. A request the client abandoned before its answer was ready (it closed the
//! connection) is logged too, with status 499 as nginx does. Lines are written to stdout by a
//! thread of their own ([`LogWriter`]), not by the request.

use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http::{Method, Request, Response};

/// The log line of one request in progress; written by [`RequestLog::finish`], or with
/// status 499 when dropped unfinished.
#[derive(Debug)]
pub(crate) struct RequestLog {
    method: Method,
    path: String,
    peer: SocketAddr,
    started: Instant,
    finished: bool,
}

/// The status logged for a request whose client went away first (nginx's convention).
const CLIENT_CLOSED: u16 = 499;

impl RequestLog {
    /// Starts the line for `req`, or `None` when the log level hides it (nothing is gathered
    /// then).
    pub(crate) fn start<B>(req: &Request<B>, peer: SocketAddr) -> Option<Self> {
        if !tracing::enabled!(tracing::Level::INFO) {
            return None;
        }
        let uri = req.uri();
        // A forward proxy's absolute-form targets and CONNECT's host:port are logged whole.
        let path = if uri.scheme().is_some() || req.method() == Method::CONNECT {
            uri.to_string()
        } else {
            uri.path_and_query()
                .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned())
        };
        Some(Self {
            method: req.method().clone(),
            path,
            peer,
            started: Instant::now(),
            finished: false,
        })
    }

    /// Writes the line for `response`.
    pub(crate) fn finish<B>(mut self, response: &Response<B>) {
        self.finished = true;
        let cache = response
            .headers()
            .get("x-cache")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        self.write(response.status().as_u16(), cache);
    }

    fn write(&self, status: u16, cache: &str) {
        let elapsed_ms = self.started.elapsed().as_millis() as u64;
        if let Some(out) = DIRECT.get() {
            // The line `tracing`'s formatter would write, made here: a fifth of the cost.
            let mut line = Vec::with_capacity(96 + self.path.len());
            timestamp(&mut line, SystemTime::now());
            let _ = writeln!(
                line,
                "  INFO caching_proxy::log: method={} path={} status={status} cache={cache} \
                 elapsed_ms={elapsed_ms} peer={}",
                self.method, self.path, self.peer
            );
            out.send(line);
            return;
        }
        tracing::info!(
            method = %self.method,
            path = %self.path,
            status,
            cache = %cache,
            elapsed_ms,
            peer = %self.peer,
        );
    }
}

impl Drop for RequestLog {
    fn drop(&mut self) {
        if !self.finished {
            self.write(CLIENT_CLOSED, "-");
        }
    }
}

/// Where log lines go: a thread that writes them to stdout, so that a request's line costs a
/// copy into a channel rather than a `write` system call. Lines are written in order and in
/// batches (one `write` for all the lines that arrived meanwhile). The channel is bounded: when
/// stdout cannot keep up, logging waits rather than dropping lines or growing without bound.
#[derive(Clone, Debug)]
pub(crate) struct LogWriter {
    lines: SyncSender<Vec<u8>>,
}

/// Dropping it writes out every line sent so far (waiting a second at most).
#[derive(Debug)]
pub(crate) struct LogFlush {
    lines: SyncSender<Vec<u8>>,
    flushed: Receiver<()>,
}

/// Where request lines go without `tracing`'s formatter, once [`LogWriter::direct`] is set.
static DIRECT: OnceLock<LogWriter> = OnceLock::new();

/// Writes `at` as RFC 3339 UTC with microseconds, as `tracing`'s formatter does
/// (`2026-11-27T10:55:34.456395Z`).
fn timestamp(out: &mut Vec<u8>, at: SystemTime) {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_micros()
    );
}

/// The proleptic Gregorian date of `days` since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Lines held in the channel at most (about 200 bytes each).
const QUEUED_LINES: usize = 16 * 1024;

impl LogWriter {
    /// Request lines go straight to this writer, formatted by [`RequestLog`] itself.
    pub(crate) fn direct(&self) {
        let _ = DIRECT.set(self.clone());
    }

    /// Queues one line; waits when the queue is full.
    fn send(&self, line: Vec<u8>) {
        let _ = self.lines.send(line);
    }

    /// Starts the thread writing to stdout.
    pub(crate) fn stdout() -> (Self, LogFlush) {
        let (lines, queue) = std::sync::mpsc::sync_channel::<Vec<u8>>(QUEUED_LINES);
        let (flush_done, flushed) = std::sync::mpsc::channel();
        let _ = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_lines(&queue, &flush_done));
        let flush = LogFlush {
            lines: lines.clone(),
            flushed,
        };
        (Self { lines }, flush)
    }
}

/// Writes what arrives on `queue` to stdout. The thread polls: it drains the queue, writes
/// the batch with one `write`, then sleeps [`WRITE_INTERVAL`], so that a request's line never
/// wakes it (a blocked receiver would cost a futex wake and a context switch per line). An
/// empty line is [`LogFlush`] asking to be told once everything before it is written.
fn write_lines(queue: &Receiver<Vec<u8>>, flush_done: &std::sync::mpsc::Sender<()>) {
    // Not `stdout().lock()`: held here for good, it would block every `println!` elsewhere.
    let mut out = BufWriter::with_capacity(64 * 1024, std::io::stdout());
    loop {
        loop {
            match queue.try_recv() {
                Ok(line) if line.is_empty() => {
                    let _ = out.flush();
                    let _ = flush_done.send(());
                }
                Ok(line) => {
                    let _ = out.write_all(&line);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    let _ = out.flush();
                    return;
                }
            }
        }
        let _ = out.flush();
        std::thread::sleep(WRITE_INTERVAL);
    }
}

/// How often the writer thread looks for lines: the most a line waits before it is written.
const WRITE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);

impl Drop for LogFlush {
    fn drop(&mut self) {
        if self.lines.send(Vec::new()).is_ok() {
            let _ = self.flushed.recv_timeout(std::time::Duration::from_secs(1));
        }
    }
}

/// One event's bytes, sent as one line when the event is formatted.
#[derive(Debug)]
pub(crate) struct LineBuf {
    buf: Vec<u8>,
    lines: SyncSender<Vec<u8>>,
}

impl Write for LineBuf {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineBuf {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            let _ = self.lines.send(std::mem::take(&mut self.buf));
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LineBuf;

    fn make_writer(&'a self) -> LineBuf {
        LineBuf {
            buf: Vec::new(),
            lines: self.lines.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_as_tracing_writes_them() {
        let mut out = Vec::new();
        let at = UNIX_EPOCH + Duration::from_micros(1_795_776_934_456_395);
        timestamp(&mut out, at);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2026-11-27T10:55:34.456395Z"
        );
        let mut leap = Vec::new();
        timestamp(&mut leap, UNIX_EPOCH + Duration::from_secs(951_782_400));
        assert_eq!(
            String::from_utf8(leap).unwrap(),
            "2000-02-29T00:00:00.000000Z"
        );
    }
}
