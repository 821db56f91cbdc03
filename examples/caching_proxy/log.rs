//! The request log: one line per request, with method, path, status, `X-Cache`, time taken
//! and client. A request the client abandoned before its answer was ready (it closed the
//! connection) is logged too, with status 499 as nginx does. Lines are written to stdout by a
//! thread of their own ([`LogWriter`]), not by the request.

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Method, Request, StatusCode};

/// The log line of one request in progress; written by [`RequestLog::finish`], or with
/// status 499 when dropped unfinished.
#[derive(Debug)]
pub(crate) struct RequestLog {
    method: Method,
    path: Path,
    peer: LogPeer,
    /// The wall clock, read again for the line's timestamp: the time taken is the
    /// difference, with one clock read fewer than an `Instant` would need (a clock set back
    /// meanwhile logs 0).
    started: SystemTime,
    finished: bool,
}

/// The request target as logged: a copy. A reference to the request's own bytes would keep
/// hyper's read buffer alive until the line is written, after hyper reads on for the
/// connection's next request: it would then read into a new buffer, allocated (and the old one
/// freed) for every request.
#[derive(Debug)]
enum Path {
    /// A target of up to [`INLINE_PATH`] bytes, held in place.
    Inline { len: u8, bytes: [u8; INLINE_PATH] },
    /// A longer one, a forward proxy's absolute-form target, or CONNECT's host:port.
    Whole(String),
}

/// The longest target a log line holds without an allocation.
const INLINE_PATH: usize = 96;

impl Path {
    fn new(target: &str) -> Self {
        let mut bytes = [0; INLINE_PATH];
        match (bytes.get_mut(..target.len()), u8::try_from(target.len())) {
            (Some(place), Ok(len)) => {
                place.copy_from_slice(target.as_bytes());
                Self::Inline { len, bytes }
            }
            _ => Self::Whole(target.to_owned()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Whole(text) => text.as_bytes(),
        }
    }
}

/// A client's address as its log lines end (` peer=<address>` and the line's end), made once
/// per connection: a line copies it whole.
#[derive(Clone, Debug)]
pub(crate) struct LogPeer(Arc<str>);

impl LogPeer {
    const FIELD: &str = " peer=";

    pub(crate) fn new(address: std::net::SocketAddr) -> Self {
        Self(format!("{}{address}\n", Self::FIELD).into())
    }

    fn address(&self) -> &str {
        self.0
            .get(Self::FIELD.len()..self.0.len() - 1)
            .unwrap_or_default()
    }
}

/// Whether request lines are logged: the level is set once, at start (`RUST_LOG`), and asked
/// of the subscriber at the first request, not at every one.
static INFO_ENABLED: OnceLock<bool> = OnceLock::new();

/// The bytes of a line after its timestamp, up to and with `$fields`: the level and target
/// `tracing`'s formatter writes, then the fields, as one literal of a known length.
macro_rules! line_start {
    ($fields:literal) => {
        concat!("  INFO caching_proxy::log: ", $fields).as_bytes()
    };
}

/// The status logged for a request whose client went away first (nginx's convention).
const CLIENT_CLOSED: &str = "499";

/// What the line reports as the cache's outcome: what the cache's `X-Cache` says, or `-` for
/// an answer the cache did not make (a refusal, a tunnel, a client that left first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Hit,
    Miss,
    None,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::None => "-",
        }
    }

    /// Appends the field with the text around it, as a line has it: in each case one copy of
    /// a length known when compiled (no call to `memcpy`).
    fn push_field(self, line: &mut Vec<u8>) {
        match self {
            Self::Hit => line.extend_from_slice(b" cache=HIT elapsed_ms="),
            Self::Miss => line.extend_from_slice(b" cache=MISS elapsed_ms="),
            Self::None => line.extend_from_slice(b" cache=- elapsed_ms="),
        }
    }
}

impl RequestLog {
    /// Starts the line for `req` from the client `peer`, or `None` when the log level hides it
    /// (nothing is gathered then).
    pub(crate) fn start<B>(req: &Request<B>, peer: &LogPeer) -> Option<Self> {
        if !*INFO_ENABLED.get_or_init(|| tracing::enabled!(tracing::Level::INFO)) {
            return None;
        }
        let uri = req.uri();
        // A forward proxy's absolute-form targets and CONNECT's host:port are logged whole.
        let path = match uri.path_and_query() {
            Some(path) if uri.scheme().is_none() && req.method() != Method::CONNECT => {
                Path::new(path.as_str())
            }
            _ => Path::Whole(uri.to_string()),
        };
        Some(Self {
            method: req.method().clone(),
            path,
            peer: peer.clone(),
            started: SystemTime::now(),
            finished: false,
        })
    }

    /// Writes the line for an answer with `status` and the cache's `outcome`. `at_once`: it
    /// was made as the request arrived (a hit, a refusal), so the time it started stands for
    /// the time it was made, well within the line's millisecond, without reading the clock
    /// again.
    pub(crate) fn finish(mut self, status: StatusCode, outcome: Outcome, at_once: bool) {
        self.finished = true;
        let now = if at_once {
            self.started
        } else {
            SystemTime::now()
        };
        self.write(status.as_str(), outcome, now);
    }

    fn write(&self, status: &str, outcome: Outcome, now: SystemTime) {
        // A line made at once (`finish`'s `at_once`) took no time: no clock difference.
        let elapsed_ms = if now == self.started {
            0
        } else {
            now.duration_since(self.started)
                .map_or(0, |elapsed| elapsed.as_millis() as u64)
        };
        if let Some(out) = DIRECT.get() {
            // The line `tracing`'s formatter would write, made here straight into the lines
            // waiting for the writer: no allocation, no `fmt` machinery, no copy of its own.
            let mut line = out.pending.room();
            timestamp(&mut line, now);
            // The commonest methods with the fields around them: one copy of a known length.
            match self.method {
                Method::GET => line.extend_from_slice(line_start!("method=GET path=")),
                Method::HEAD => {
                    line.extend_from_slice(line_start!("method=HEAD path="));
                }
                _ => {
                    line.extend_from_slice(line_start!("method="));
                    line.extend_from_slice(self.method.as_str().as_bytes());
                    line.extend_from_slice(b" path=");
                }
            }
            line.extend_from_slice(self.path.as_bytes());
            line.extend_from_slice(b" status=");
            // A status is three digits: a copy of a known length.
            match <&[u8; 3]>::try_from(status.as_bytes()) {
                Ok(digits) => line.extend_from_slice(digits),
                Err(_) => line.extend_from_slice(status.as_bytes()),
            }
            outcome.push_field(&mut line);
            push_number(&mut line, elapsed_ms);
            line.extend_from_slice(self.peer.0.as_bytes());
            return;
        }
        tracing::info!(
            method = %self.method,
            path = %String::from_utf8_lossy(self.path.as_bytes()),
            status = %status,
            cache = %outcome.as_str(),
            elapsed_ms,
            peer = %self.peer.address(),
        );
    }
}

impl Drop for RequestLog {
    fn drop(&mut self) {
        if !self.finished {
            self.write(CLIENT_CLOSED, Outcome::None, SystemTime::now());
        }
    }
}

thread_local! {
    /// The last second's `YYYY-MM-DDTHH:MM:SS.` and that second.
    static SECOND: RefCell<(u64, [u8; 20])> = const { RefCell::new((u64::MAX, [0; 20])) };
}

/// Where log lines go: a thread that writes them to stdout, so that a request's line costs a
/// copy into a shared buffer rather than a `write` system call. Lines are written in order and
/// in batches (one `write` for all the lines that arrived meanwhile). The buffer is bounded:
/// when stdout cannot keep up, logging waits rather than dropping lines or growing without
/// bound.
#[derive(Clone, Debug)]
pub(crate) struct LogWriter {
    pending: Arc<Pending>,
}

/// Dropping it writes out every line made so far.
#[derive(Debug)]
pub(crate) struct LogFlush {
    pending: Arc<Pending>,
}

/// Lines made and not yet written.
#[derive(Debug, Default)]
struct Pending {
    lines: Mutex<Vec<u8>>,
    /// Signalled when the writer took the lines out.
    drained: Condvar,
    /// The batch being written; held while writing, so that batches reach stdout in order.
    batch: Mutex<Vec<u8>>,
}

/// Bytes of lines held at most before logging waits for the writer.
const PENDING_BYTES: usize = 4 * 1024 * 1024;

/// What each of the two line buffers keeps of its capacity from batch to batch: 10 ms of
/// lines at several hundred thousand requests a second (lines of about 150 bytes), so that a
/// steady load writes into the same memory every batch; what a burst took beyond it is given
/// back. Cut to 64 KiB after every batch, the buffers grew again by doubling in every batch
/// of a busy proxy, and glibc served the sizes from 128 KiB up with freshly mapped memory:
/// 0.02 page faults a hit at 110,000 hits a second.
const KEPT_BYTES: usize = 1024 * 1024;

/// How often the writer thread looks for lines: the most a line waits before it is written.
const WRITE_INTERVAL: Duration = Duration::from_millis(10);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Pending {
    /// The lines waiting, to append one to, once fewer than [`PENDING_BYTES`] wait. The line
    /// is made under the lock, which is then held for its making (about 0.5k instructions)
    /// rather than only for a copy of it: threads logging at once take turns that much longer,
    /// and each line saves a buffer of its own and the copy (0.2k instructions of a hit).
    fn room(&self) -> MutexGuard<'_, Vec<u8>> {
        let mut lines = lock(&self.lines);
        while lines.len() >= PENDING_BYTES {
            lines = self
                .drained
                .wait(lines)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        lines
    }

    /// Writes out what is pending, with one `write` (stdout is locked only meanwhile: held
    /// for good, it would block every `println!` elsewhere).
    fn write_out(&self) {
        self.take_batch(|batch| {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(batch);
            let _ = out.flush();
        });
    }

    /// Hands what is pending, if anything, to `write` as one batch, while logging goes on
    /// into the other buffer.
    fn take_batch(&self, write: impl FnOnce(&[u8])) {
        let mut batch = lock(&self.batch);
        {
            let mut lines = lock(&self.lines);
            if lines.is_empty() {
                return;
            }
            std::mem::swap(&mut *lines, &mut *batch);
        }
        self.drained.notify_all();
        write(&batch);
        batch.clear();
        batch.shrink_to(KEPT_BYTES);
    }
}

/// Where request lines go without `tracing`'s formatter, once [`LogWriter::direct`] is set.
static DIRECT: OnceLock<LogWriter> = OnceLock::new();

/// Writes `at` as RFC 3339 UTC with microseconds, as `tracing`'s formatter does
/// (`2026-11-27T10:55:34.456395Z`). The date and time of day are made once a second.
fn timestamp(out: &mut Vec<u8>, at: SystemTime) {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    SECOND.with_borrow_mut(|(second, text)| {
        if *second != secs {
            *second = secs;
            let (days, rem) = (secs / 86_400, secs % 86_400);
            let (year, month, day) = civil_from_days(days);
            let mut cursor = &mut text[..];
            let _ = write!(
                cursor,
                "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.",
                rem / 3600,
                rem % 3600 / 60,
                rem % 60,
            );
        }
        out.extend_from_slice(text);
    });
    // Six digits, two at a time.
    let micros = since.subsec_micros();
    let mut digits = [b'0'; 6];
    for (place, pair) in digits
        .chunks_exact_mut(2)
        .zip([micros / 10_000, micros / 100, micros])
    {
        let pair = (pair % 100) as usize;
        place.copy_from_slice(&DIGIT_PAIRS[2 * pair..2 * pair + 2]);
    }
    out.extend_from_slice(&digits);
    out.push(b'Z');
}

/// "00" to "99", for two digits at a time.
const DIGIT_PAIRS: [u8; 200] = {
    let mut pairs = [0; 200];
    let mut n = 0;
    while n < 100 {
        pairs[2 * n] = b'0' + (n / 10) as u8;
        pairs[2 * n + 1] = b'0' + (n % 10) as u8;
        n += 1;
    }
    pairs
};

/// Appends `n` in decimal.
fn push_number(out: &mut Vec<u8>, mut n: u64) {
    // Most lines: a hit's 0 ms, or a few.
    if n < 10 {
        out.push(b'0' + n as u8);
        return;
    }
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
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

impl LogWriter {
    /// Request lines go straight to this writer, formatted by [`RequestLog`] itself.
    pub(crate) fn direct(&self) {
        let _ = DIRECT.set(self.clone());
    }

    /// Starts the thread writing to stdout. It polls: every [`WRITE_INTERVAL`] it writes what
    /// arrived, so that a request's line never wakes it (a thread blocked on a queue would
    /// cost a futex wake and a context switch per line).
    pub(crate) fn stdout() -> (Self, LogFlush) {
        let pending = Arc::new(Pending::default());
        let writer = Arc::clone(&pending);
        let _ = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(WRITE_INTERVAL);
                    writer.write_out();
                }
            });
        let flush = LogFlush {
            pending: Arc::clone(&pending),
        };
        (Self { pending }, flush)
    }
}

impl Drop for LogFlush {
    fn drop(&mut self) {
        self.pending.write_out();
    }
}

/// One event's bytes, added to the pending lines when the event is formatted.
#[derive(Debug)]
pub(crate) struct LineBuf {
    buf: Vec<u8>,
    pending: Arc<Pending>,
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
            self.pending.room().extend_from_slice(&self.buf);
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LineBuf;

    fn make_writer(&'a self) -> LineBuf {
        LineBuf {
            buf: Vec::new(),
            pending: Arc::clone(&self.pending),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A batch's buffer keeps its room for the batches after it, up to `KEPT_BYTES`, and gives
    // back what a burst took beyond that.
    #[test]
    fn batches_keep_their_room_up_to_a_bound() {
        let pending = Pending::default();
        for (len, kept) in [(300 * 1024, 300 * 1024), (3 * KEPT_BYTES, KEPT_BYTES)] {
            lock(&pending.lines).resize(len, b'x');
            let mut written = 0;
            pending.take_batch(|batch| written = batch.len());
            assert_eq!(written, len);
            let batch = lock(&pending.batch);
            assert!(batch.is_empty());
            assert!(batch.capacity() >= kept, "{} < {kept}", batch.capacity());
            assert!(batch.capacity() < 2 * KEPT_BYTES, "{}", batch.capacity());
        }
        let mut called = false;
        pending.take_batch(|_| called = true);
        assert!(!called, "nothing pending, nothing written");
    }

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
        // The same second again, from the date made once: only the fraction differs.
        let mut again = Vec::new();
        timestamp(
            &mut again,
            UNIX_EPOCH + Duration::from_micros(951_782_400_000_042),
        );
        assert_eq!(
            String::from_utf8(again).unwrap(),
            "2000-02-29T00:00:00.000042Z"
        );
    }

    #[test]
    fn paths_are_copied_whole_in_place_or_not() {
        for len in [0, 1, INLINE_PATH - 1, INLINE_PATH, INLINE_PATH + 1, 300] {
            let target: String = "/a".chars().cycle().take(len).collect();
            let path = Path::new(&target);
            assert_eq!(path.as_bytes(), target.as_bytes());
            assert_eq!(matches!(path, Path::Inline { .. }), len <= INLINE_PATH);
        }
    }

    #[test]
    fn numbers_in_decimal() {
        for n in [0, 7, 9, 10, 99, 499, 1_000, u64::MAX] {
            let mut out = b"x=".to_vec();
            push_number(&mut out, n);
            assert_eq!(out, format!("x={n}").into_bytes());
        }
    }
}
