//! Request bodies allowed to be large (bulk import, link provisioning): how they are admitted
//! and read.
//!
//! A handler of such a route asks the policy from the principal alone first, then takes a
//! [`LargeBodyPermit`] (at most a few large bodies at once per principal), and only then reads
//! the body, as a stream, counting it against the route's limit. Must never: read a byte of a
//! large body before the caller's right to the action is decided, or hold a whole large body
//! as one buffer.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::{Buf, Bytes};
use futures_util::StreamExt;

use super::error::ApiError;
use crate::domain::Principal;

/// What a client over its share of large bodies is told to wait, in seconds.
const RETRY_AFTER_SECS: u64 = 2;

/// Chunks buffered between the body and its parser: the parser's pace bounds the memory.
const CHANNEL_CHUNKS: usize = 4;

/// Large bodies in progress, per principal (per replica: this bounds one process's memory
/// and parsing work, which is what it is for).
#[derive(Debug)]
pub struct LargeBodies {
    per_principal: usize,
    active: Mutex<HashMap<PrincipalKey, usize>>,
}

/// Who a large body is counted against: the same tenant, subject and way of signing in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PrincipalKey {
    tenant: crate::domain::TenantId,
    subject: String,
    auth_method: &'static str,
}

impl PrincipalKey {
    fn of(p: &Principal) -> Self {
        PrincipalKey {
            tenant: p.tenant.clone(),
            subject: p.subject.clone(),
            auth_method: p.auth_method.as_str(),
        }
    }
}

/// One large body admitted; dropping it frees the place.
#[derive(Debug)]
pub struct LargeBodyPermit {
    owner: Arc<LargeBodies>,
    key: PrincipalKey,
}

impl LargeBodies {
    /// At most `per_principal` large bodies at once per principal (at least one).
    pub fn new(per_principal: usize) -> Arc<Self> {
        Arc::new(LargeBodies {
            per_principal: per_principal.max(1),
            active: Mutex::new(HashMap::new()),
        })
    }

    /// A place for one more large body of `principal`'s, or `429` (its body left unread).
    pub fn admit(self: &Arc<Self>, principal: &Principal) -> Result<LargeBodyPermit, ApiError> {
        let key = PrincipalKey::of(principal);
        let mut active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        let count = active.entry(key.clone()).or_insert(0);
        if *count >= self.per_principal {
            tracing::info!(
                subject = %principal.subject,
                tenant = %principal.tenant,
                "too many large request bodies at once: answered 429"
            );
            return Err(ApiError::RateLimited {
                retry_after_secs: RETRY_AFTER_SECS,
            });
        }
        *count += 1;
        Ok(LargeBodyPermit {
            owner: self.clone(),
            key,
        })
    }
}

impl Drop for LargeBodyPermit {
    fn drop(&mut self) {
        let mut active = self
            .owner
            .active
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = active.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                active.remove(&self.key);
            }
        }
    }
}

/// Checks what the headers announce before any of the body is read: JSON (`415`), and a
/// declared length within `limit` (`413` at once rather than after `limit` bytes).
pub fn check_announced(headers: &HeaderMap, limit: usize) -> Result<(), ApiError> {
    if !super::extract::is_json(headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > u64::try_from(limit).unwrap_or(u64::MAX) => Err(ApiError::PayloadTooLarge),
        _ => Ok(()),
    }
}

/// Reads `body` (at most `limit` bytes) into `parse`, which runs on a blocking thread and
/// sees the body as a [`Read`] while it arrives. Only a few chunks are in memory at once. A
/// body over the limit is `413` and one that cannot be read is `400`, whatever `parse` made
/// of the part it saw.
pub async fn parse_streamed<T, F>(body: Body, limit: usize, parse: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut dyn Read) -> T + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(CHANNEL_CHUNKS);
    let parser = tokio::task::spawn_blocking(move || {
        let mut reader = ChannelReader {
            rx,
            chunk: Bytes::new(),
        };
        parse(&mut reader)
    });
    let mut stream = body.into_data_stream();
    let mut read = 0usize;
    let mut failure = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => {
                read = read.saturating_add(chunk.len());
                if read > limit {
                    failure = Some(ApiError::PayloadTooLarge);
                    break;
                }
                if tx.send(chunk).await.is_err() {
                    // The parser has stopped (it found an error): the rest is not needed.
                    break;
                }
            }
            Err(_) => {
                failure = Some(ApiError::Malformed(
                    "the request body could not be read".into(),
                ));
                break;
            }
        }
    }
    drop(tx);
    let parsed = parser
        .await
        .map_err(|e| ApiError::Internal(format!("body parser failed: {e}")))?;
    match failure {
        Some(e) => Err(e),
        None => Ok(parsed),
    }
}

/// A body's chunks, in order, as a blocking [`Read`]; the end of the channel is the end of
/// the body.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    chunk: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(next) => self.chunk = next,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TenantId;

    fn principal(subject: &str) -> Principal {
        Principal::local(TenantId::parse("acme").unwrap(), subject)
    }

    #[test]
    fn large_bodies_are_counted_per_principal_and_freed_on_drop() {
        let bodies = LargeBodies::new(2);
        let a = principal("a");
        let first = bodies.admit(&a).unwrap();
        let _second = bodies.admit(&a).unwrap();
        assert!(matches!(
            bodies.admit(&a),
            Err(ApiError::RateLimited { .. })
        ));
        assert!(
            bodies.admit(&principal("b")).is_ok(),
            "others are not held up"
        );
        drop(first);
        assert!(bodies.admit(&a).is_ok());
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_before_reading() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        headers.insert(header::CONTENT_LENGTH, "1025".parse().unwrap());
        assert!(matches!(
            check_announced(&headers, 1024),
            Err(ApiError::PayloadTooLarge)
        ));
        headers.insert(header::CONTENT_LENGTH, "1024".parse().unwrap());
        assert!(check_announced(&headers, 1024).is_ok());
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(matches!(
            check_announced(&headers, 1024),
            Err(ApiError::UnsupportedMediaType)
        ));
    }

    #[tokio::test]
    async fn a_streamed_body_over_the_limit_is_413() {
        let body = Body::from(vec![b' '; 4096]);
        let got = parse_streamed(body, 1024, |r| {
            let mut sink = Vec::new();
            r.read_to_end(&mut sink).map(|_| sink.len())
        })
        .await;
        assert!(matches!(got, Err(ApiError::PayloadTooLarge)));
        let body = Body::from(vec![b' '; 1000]);
        let got = parse_streamed(body, 1024, |r| {
            let mut sink = Vec::new();
            r.read_to_end(&mut sink).map(|_| sink.len())
        })
        .await;
        assert_eq!(got.unwrap().unwrap(), 1000);
    }
}
