//! Per connection: whether a request is in flight, and when the first byte of the next HTTP/1
//! request head arrived, so that the accept loop can close an idle connection (both
//! protocols) and one whose headers dribble in (HTTP/1).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::Limits;

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

#[cfg(test)]
mod tests {
    use super::*;

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
