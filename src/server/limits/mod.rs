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
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

mod body;
mod watchdog;
pub use body::handle;
pub use watchdog::{Activity, Check, InFlight, Watched};

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
}
