//! Per request: a body that must keep making progress (else `408`), and a lingering close for
//! a body left unread, so that the client reads the answer instead of a reset.

use std::convert::Infallible;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, Version, header};
use bytes::Bytes;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use super::{Activity, InFlight, LINGER_BYTES, Limits, MIN_BODY_PROGRESS};

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
    } else if let Some(left) = left
        && http1
    {
        // Tell the client this connection ends with this answer, and hold it open (the body
        // unread but for a bounded amount) while the answer goes out: closing a socket with
        // unread data sends a reset that can destroy the answer in transit. (HTTP/2 ends the
        // stream with RST_STREAM after the answer; the connection stays.)
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        tokio::spawn(linger(left, limits.linger));
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
