//! Connection and request limits: what a client may hold open, for how long, and how a
//! request body that stalls or overruns is answered.
//!
//! hyper 1 gives us an HTTP/1 header read timeout (which, from hyper 1.5 on, also spans the
//! idle wait for the next request) and HTTP/2 keep-alive pings, and nothing else of this:
//! no HTTP/2 idle timeout, no connection caps, no body read timeout (hyperium/hyper#1628,
//! #2864, #3666: "a body adapter, outside hyper"). So this module owns:
//! - [`ConnectionLimiter`]: connections at once, in all and per client address, refused at
//!   accept before any TLS work;
//! - [`Activity`] and [`Watched`]: per connection, whether a request is in flight, and when
//!   the first byte of the next HTTP/1 request head arrived, so that the accept loop can close
//!   an idle connection (both protocols) and one whose headers dribble in (HTTP/1);
//! - [`handle`]: per request, a body that must keep making progress (else `408`), and a
//!   lingering close for a body left unread (a `403`, `413` or `429` answered before the
//!   upload ended), so that the client reads the answer instead of a reset.
//!
//! Must never: buffer a request body, or read more of an unread body than the linger bounds.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future as _;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, Version, header};
use bytes::Bytes;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// Limits on clients (defaults as in API.md, "Connection limits"; each a setting).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From TCP accept to a completed TLS handshake.
    pub handshake: Duration,
    /// From the first byte of an HTTP/1 request head to its end.
    pub header_read: Duration,
    /// A connection with no request in flight (HTTP/1 keep-alive, or HTTP/2 with no stream)
    /// is closed after this.
    pub idle: Duration,
    /// A request body must make progress (at least [`MIN_BODY_PROGRESS`] bytes, or its end)
    /// within each period this long, or it is cut with `408`.
    pub body_progress: Duration,
    /// HTTP/2 keep-alive: a ping after this much silence; no answer within as long again
    /// closes the connection.
    pub h2_keepalive: Duration,
    /// Connections at once, in all.
    pub max_connections: usize,
    /// Connections at once from one client address.
    pub max_connections_per_addr: usize,
    /// Large request bodies (bulk import, link provisioning) at once per principal.
    pub large_bodies_per_principal: usize,
    /// How long a body left unread after its answer is lingered on (and at most
    /// [`LINGER_BYTES`] of it discarded) before the connection is closed.
    pub linger: Duration,
    /// How long shutdown waits for in-flight requests.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            handshake: Duration::from_secs(10),
            header_read: Duration::from_secs(10),
            idle: Duration::from_secs(30),
            body_progress: Duration::from_secs(20),
            h2_keepalive: Duration::from_secs(20),
            max_connections: 4096,
            max_connections_per_addr: 256,
            large_bodies_per_principal: 2,
            linger: Duration::from_secs(5),
            drain: Duration::from_secs(30),
        }
    }
}

impl Limits {
    /// How long a connection told to close gracefully (idle) may take to finish closing.
    pub fn close_grace(&self) -> Duration {
        self.idle.min(Duration::from_secs(5))
    }

    /// How often a connection's deadlines are looked at: a tenth of the header time, between
    /// 50 ms and 1 s, so a deadline is enforced at most that late.
    pub fn watch_tick(&self) -> Duration {
        (self.header_read / 10).clamp(Duration::from_millis(50), Duration::from_secs(1))
    }
}

/// The least a request body must deliver per `body_progress` period (unless it ends): a
/// trickle of a byte every few seconds is no progress.
pub const MIN_BODY_PROGRESS: u64 = 1024;

/// The most of an unread body discarded while lingering (then the rest is left unread).
pub const LINGER_BYTES: u64 = 8 * 1024 * 1024;

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The server holds `max_connections` already.
    Total,
    /// This client address holds `max_connections_per_addr` already.
    PerAddress,
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Total => "total",
            Refused::PerAddress => "per_address",
        }
    }
}

/// Open connections, in all and per client address. A hand-made counter: neither hyper nor
/// tower counts connections before the TLS handshake, which is where refusing is cheap.
#[derive(Debug)]
pub struct ConnectionLimiter {
    max_total: usize,
    max_per_addr: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_addr: HashMap<IpAddr, usize>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct ConnectionPermit {
    limiter: Arc<ConnectionLimiter>,
    addr: IpAddr,
}

impl ConnectionLimiter {
    pub fn new(max_total: usize, max_per_addr: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_addr,
            open: Mutex::new(Open::default()),
        })
    }

    /// A place for a connection from `addr` (IPv4-mapped IPv6 counts as the IPv4 address).
    pub fn admit(self: &Arc<Self>, addr: IpAddr) -> Result<ConnectionPermit, Refused> {
        let addr = addr.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.total >= self.max_total {
            return Err(Refused::Total);
        }
        let from_addr = open.per_addr.get(&addr).copied().unwrap_or(0);
        if from_addr >= self.max_per_addr {
            return Err(Refused::PerAddress);
        }
        open.total += 1;
        open.per_addr.insert(addr, from_addr + 1);
        Ok(ConnectionPermit {
            limiter: self.clone(),
            addr,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut open = self
            .limiter
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_addr.get_mut(&self.addr) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.per_addr.remove(&self.addr);
            }
        }
    }
}

/// What one connection is doing, for its idle and header deadlines. Times are milliseconds
/// since the connection started; a head time of 0 means "no request head begun" (a begun
/// one is stored plus one).
#[derive(Debug)]
pub struct Activity {
    started: Instant,
    h2: AtomicBool,
    seen_bytes: AtomicBool,
    in_flight: AtomicUsize,
    idle_since: AtomicU64,
    head_since: AtomicU64,
}

/// What the accept loop should do with a connection now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Nothing yet: look again at this instant.
    Until(Instant),
    /// No request in flight for the idle time: close it gracefully (GOAWAY on HTTP/2).
    Idle,
    /// An HTTP/1 request head has been arriving for longer than the header time: cut it.
    SlowHeaders,
}

impl Activity {
    /// A connection just made; `h2` when ALPN chose HTTP/2.
    pub fn new(h2: bool) -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            h2: AtomicBool::new(h2),
            seen_bytes: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, ms: u64) -> Instant {
        self.started + Duration::from_millis(ms)
    }

    /// A request reached the application; it is in flight until the guard (carried by its
    /// response body) is dropped.
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.head_since.store(0, Ordering::SeqCst);
        InFlight(self.clone())
    }

    /// Bytes arrived from the client. With nothing in flight on HTTP/1, they begin the next
    /// request head. (HTTP/2 sends frames at any time; its streams are counted instead.)
    fn bytes_read(&self, first: &[u8]) {
        if !self.seen_bytes.swap(true, Ordering::SeqCst) && first.starts_with(b"PRI * HTTP/2.0") {
            // A client speaking HTTP/2 without ALPN starts with the connection preface.
            self.h2.store(true, Ordering::SeqCst);
        }
        if self.h2.load(Ordering::SeqCst) || self.in_flight.load(Ordering::SeqCst) > 0 {
            return;
        }
        // Stored plus one, so that 0 can mean "none".
        let now = self.now_ms().saturating_add(1);
        // The first byte of a head sets its start; the watchdog sees it at its next tick.
        let _ = self
            .head_since
            .compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// What to do now under `limits`.
    pub fn check(&self, limits: &Limits) -> Check {
        let now = self.now_ms();
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            // Busy: nothing can expire before the request ends; look again a while later.
            return Check::Until(self.at(now) + limits.idle.min(limits.header_read));
        }
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let head = self.head_since.load(Ordering::SeqCst);
        let mut next = self
            .idle_since
            .load(Ordering::SeqCst)
            .saturating_add(ms(limits.idle));
        if head != 0 {
            let head_deadline = (head - 1).saturating_add(ms(limits.header_read));
            if now >= head_deadline {
                return Check::SlowHeaders;
            }
            // A request head is on its way: the idle wait is over, its own deadline counts.
            next = head_deadline;
        } else if now >= next {
            return Check::Idle;
        }
        Check::Until(self.at(next.max(now)))
    }
}

/// A request in flight on its connection.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        activity
            .idle_since
            .store(activity.now_ms(), Ordering::SeqCst);
        activity.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A connection's byte stream, reporting what it reads to its [`Activity`].
#[derive(Debug)]
pub struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Watched<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let new = &buf.filled()[before..];
            if !new.is_empty() {
                this.activity.bytes_read(new);
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Why a request body stopped.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("the request body made no progress")]
    Stalled,
    #[error("the request body is no longer available")]
    Gone,
    #[error("reading the request body failed: {0}")]
    Read(#[from] hyper::Error),
}

/// The request body, shared between the application (which reads it through
/// [`ProgressBody`]) and [`handle`] (which takes back what is left once the answer is made).
#[derive(Debug)]
struct BodySlot {
    body: Mutex<Option<Incoming>>,
    stalled: AtomicBool,
}

/// The application's view of the request body: it must make progress.
struct ProgressBody {
    slot: Arc<BodySlot>,
    period: Duration,
    window: Option<(Instant, u64)>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl ProgressBody {
    /// Counts `n` bytes into the current period; `Err` when a period ended with too few.
    fn progress(&mut self, n: u64, now: Instant) -> Result<(), BodyError> {
        let (start, bytes) = self.window.get_or_insert((now, 0));
        *bytes = bytes.saturating_add(n);
        if now.duration_since(*start) >= self.period {
            if *bytes < MIN_BODY_PROGRESS {
                return Err(BodyError::Stalled);
            }
            self.window = Some((now, 0));
            if let Some(timer) = &mut self.timer {
                timer.as_mut().reset(now + self.period);
            }
        }
        Ok(())
    }

    fn stall(&self) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.slot.stalled.store(true, Ordering::SeqCst);
        Poll::Ready(Some(Err(BodyError::Stalled)))
    }
}

impl hyper::body::Body for ProgressBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let polled = {
            let mut slot = this
                .slot
                .body
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match slot.as_mut() {
                None => return Poll::Ready(Some(Err(BodyError::Gone))),
                Some(body) => Pin::new(body).poll_frame(cx),
            }
        };
        let now = Instant::now();
        if this.window.is_none() {
            this.window = Some((now, 0));
        }
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                let n = frame
                    .data_ref()
                    .map(|d| u64::try_from(d.len()).unwrap_or(u64::MAX))
                    .unwrap_or(0);
                match this.progress(n, now) {
                    Ok(()) => Poll::Ready(Some(Ok(frame))),
                    Err(_) => this.stall(),
                }
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = this.window.map(|(start, _)| start + this.period);
                let Some(deadline) = deadline else {
                    return Poll::Pending;
                };
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.as_mut().poll(cx).is_ready() {
                    match this.progress(0, Instant::now()) {
                        Err(_) => return this.stall(),
                        Ok(()) => {
                            // A new period began (and the timer was moved to its end):
                            // register the waker on the moved timer.
                            if let Some(timer) = &mut this.timer {
                                let _ = timer.as_mut().poll(cx);
                            }
                        }
                    }
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.slot
            .body
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_none_or(hyper::body::Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.slot
            .body
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(hyper::body::Body::size_hint)
            .unwrap_or_default()
    }
}

/// A response body that keeps its request in flight until it is sent (or dropped).
struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves one request through `app` under `limits`: its body must make progress (a stalled
/// body is answered `408`, whatever the application made of it), and a body the answer left
/// unread is lingered on (HTTP/1) so that the client reads the answer.
pub async fn handle(
    app: Router,
    limits: Limits,
    activity: Arc<Activity>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let in_flight = activity.request_started();
    let version = req.version();
    let path = req.uri().path().to_owned();
    let (parts, incoming) = req.into_parts();
    let slot = Arc::new(BodySlot {
        body: Mutex::new(Some(incoming)),
        stalled: AtomicBool::new(false),
    });
    let body = Body::new(ProgressBody {
        slot: slot.clone(),
        period: limits.body_progress,
        window: None,
        timer: None,
    });
    let mut res = match app.oneshot(Request::from_parts(parts, body)).await {
        Ok(res) => res,
        Err(never) => match never {},
    };
    let left = slot
        .body
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .filter(|b| !hyper::body::Body::is_end_stream(b));
    let http1 = matches!(version, Version::HTTP_10 | Version::HTTP_11);
    if slot.stalled.load(Ordering::SeqCst) {
        tracing::info!(%path, "request body made no progress: answered 408");
        res = stalled_answer(&res, &path);
        if http1 {
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        // The client is not sending: nothing to linger for.
        drop(left);
    } else if let Some(left) = left {
        if http1 {
            // Tell the client this connection ends with this answer, and hold it open (the
            // body unread but for a bounded amount) while the answer goes out: closing a
            // socket with unread data sends a reset that can destroy the answer in transit.
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            tokio::spawn(linger(left, limits.linger));
        }
        // HTTP/2 ends the stream with RST_STREAM after the answer; the connection stays.
    }
    Ok(res.map(|inner| {
        Body::new(TrackedBody {
            inner,
            _in_flight: in_flight,
        })
    }))
}

/// The `408` problem answer, carrying the original answer's request id.
fn stalled_answer(original: &Response<Body>, path: &str) -> Response<Body> {
    use axum::response::IntoResponse as _;
    let err = crate::api::error::ApiError::RequestTimeout;
    let request_id = original
        .headers()
        .get(&crate::api::X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = crate::api::error::render_problem(err.problem(), path, &request_id);
    let mut res = (err.status(), body).into_response();
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert(crate::api::X_REQUEST_ID.clone(), v);
    }
    res
}

/// Holds an unread body for at most `time`, discarding at most [`LINGER_BYTES`] of it, then
/// drops it (which lets hyper close the connection).
async fn linger(mut body: Incoming, time: Duration) {
    let deadline = Instant::now() + time;
    let mut discarded = 0u64;
    while discarded < LINGER_BYTES {
        let frame = tokio::select! {
            frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)) => frame,
            () = tokio::time::sleep_until(deadline) => return,
        };
        match frame {
            Some(Ok(frame)) => {
                let n = frame.data_ref().map(|d| d.len()).unwrap_or(0);
                discarded = discarded.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
            }
            Some(Err(_)) | None => return,
        }
    }
    tokio::time::sleep_until(deadline).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn connections_are_capped_in_all_and_per_address() {
        let limiter = ConnectionLimiter::new(3, 2);
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let first = limiter.admit(a).unwrap();
        let _second = limiter.admit(a).unwrap();
        assert_eq!(limiter.admit(a).unwrap_err(), Refused::PerAddress);
        // The IPv4-mapped form is the same client.
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        assert_eq!(limiter.admit(mapped).unwrap_err(), Refused::PerAddress);
        let _third = limiter.admit(b).unwrap();
        assert_eq!(limiter.admit(b).unwrap_err(), Refused::Total);
        drop(first);
        assert_eq!(limiter.open(), 2);
        assert!(limiter.admit(a).is_ok());
    }

    #[tokio::test]
    async fn an_idle_connection_expires_and_a_busy_one_does_not() {
        let limits = Limits {
            idle: Duration::from_millis(0),
            ..Limits::default()
        };
        let activity = Activity::new(true);
        let busy = activity.request_started();
        assert!(matches!(activity.check(&limits), Check::Until(_)));
        drop(busy);
        assert_eq!(activity.check(&limits), Check::Idle);
    }

    #[tokio::test]
    async fn a_dribbling_http1_head_is_cut_but_http2_frames_are_not_a_head() {
        let limits = Limits {
            header_read: Duration::from_millis(0),
            ..Limits::default()
        };
        let h1 = Activity::new(false);
        h1.bytes_read(b"GET / HT");
        assert_eq!(h1.check(&limits), Check::SlowHeaders);
        let h2 = Activity::new(true);
        h2.bytes_read(b"\0\0\0\x04");
        assert!(matches!(h2.check(&limits), Check::Until(_)));
        let prior_knowledge = Activity::new(false);
        prior_knowledge.bytes_read(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        assert!(matches!(prior_knowledge.check(&limits), Check::Until(_)));
    }
}
