//! Refused credentials, recorded without amplification: on the platform chain at most once
//! per client address, reason and certificate per window, each record carrying the count of
//! refusals it stands for; and refused requests limited per client address, so that forged
//! credentials at any rate cannot drive writes (or the latency every other request pays
//! for them).
//!
//! The first refusal of a window is recorded at once (and, fail closed, answered `503` if it
//! cannot be); later ones are counted in memory and recorded when the window closes (the
//! [`worker`]), with the next record if the worker has not got to it, and at shutdown: a
//! counted refusal is not lost on a clean stop.
//!
//! Must never: record a token or its claims, write for each refusal, or grow without bound.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::ServiceResult;
use super::audit::{Stranger, refusal_record};

super::capability! {
    /// The record of refused authentications: tallied, then written a window at a time.
    pub struct Refusals {
        core: super::Core,
        ledger: Arc<RefusalLedger>,
    }
}

/// How refusals are aggregated and limited.
#[derive(Debug, Clone, Copy)]
pub struct RefusalSettings {
    /// One record per client address, reason and certificate per this long.
    pub window: Duration,
    /// Refused requests a client address gets answered `401` per window; beyond, `429`.
    pub per_address: u32,
}

impl Default for RefusalSettings {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(10),
            per_address: 20,
        }
    }
}

/// How a refused request is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `401`.
    Unauthorized,
    /// `429`: this address has had too many refusals this window.
    Limited { retry_after_secs: u64 },
}

/// Most (address, reason, certificate) windows and addresses tracked; beyond, refusals are
/// pooled under one shared key (still counted and recorded, and limited together).
const MAX_KEYS: usize = 65_536;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    /// The client's address; for IPv6 its /64 (one holder has all of it). `None`: pooled.
    source: Option<IpAddr>,
    auth_method: String,
    reason: &'static str,
    credential: Option<String>,
}

#[derive(Debug)]
struct Window {
    start: Instant,
    /// Refusals counted and not yet recorded.
    pending: u64,
    /// The latest refusal's details, for the record.
    latest: Stranger,
}

#[derive(Debug)]
struct Budget {
    start: Instant,
    used: u32,
}

#[derive(Debug, Default)]
struct State {
    windows: HashMap<Key, Window>,
    budgets: HashMap<Option<IpAddr>, Budget>,
}

/// A record to write: who, why, and how many refusals it stands for.
type Due = (Stranger, &'static str, u64);

/// The in-memory tally of refusals (per replica).
#[derive(Debug)]
pub struct RefusalLedger {
    settings: RefusalSettings,
    state: Mutex<State>,
}

impl RefusalLedger {
    pub fn new(settings: RefusalSettings) -> Self {
        Self {
            settings,
            state: Mutex::new(State::default()),
        }
    }

    /// Counts one refusal at `now`: how to answer it, and the record to write at once, if
    /// it opens a window (or a closed window's count is still waiting).
    fn note(&self, who: Stranger, reason: &'static str, now: Instant) -> (Refused, Option<Due>) {
        let source = who.client_addr.as_deref().and_then(source_of);
        let Ok(mut state) = self.state.lock() else {
            // A poisoned tally still refuses, and records each refusal (fail closed).
            return (Refused::Unauthorized, Some((who, reason, 1)));
        };
        let state = &mut *state;
        let window = self.settings.window;
        let tracked = |len: usize, present: bool| present || len < MAX_KEYS;

        let budget_key = if tracked(state.budgets.len(), state.budgets.contains_key(&source)) {
            source
        } else {
            None
        };
        let budget = state.budgets.entry(budget_key).or_insert(Budget {
            start: now,
            used: 0,
        });
        if now.duration_since(budget.start) >= window {
            *budget = Budget {
                start: now,
                used: 0,
            };
        }
        budget.used = budget.used.saturating_add(1);
        let answer = if budget.used > self.settings.per_address {
            let left = window.saturating_sub(now.duration_since(budget.start));
            Refused::Limited {
                retry_after_secs: left.as_secs().max(1),
            }
        } else {
            Refused::Unauthorized
        };

        let mut key = Key {
            source,
            auth_method: who.auth_method.clone(),
            reason,
            credential: who.credential.clone(),
        };
        if !tracked(state.windows.len(), state.windows.contains_key(&key)) {
            key.source = None;
            key.credential = None;
        }
        let due = match state.windows.get_mut(&key) {
            Some(w) if now.duration_since(w.start) < window => {
                w.pending += 1;
                w.latest = who;
                None
            }
            // Closed, its count not yet recorded: it goes with this refusal's record.
            Some(w) => {
                let count = w.pending + 1;
                *w = Window {
                    start: now,
                    pending: 0,
                    latest: who.clone(),
                };
                Some((who, reason, count))
            }
            None => {
                state.windows.insert(
                    key,
                    Window {
                        start: now,
                        pending: 0,
                        latest: who.clone(),
                    },
                );
                Some((who, reason, 1))
            }
        };
        (answer, due)
    }

    /// Takes the counts to record at `now`: of every closed window (or every window, at
    /// shutdown). A window whose count is taken starts again, so that a steady stream of
    /// refusals makes one record per window; a closed window with nothing counted is dropped.
    fn take_due(&self, now: Instant, all: bool) -> Vec<Due> {
        let Ok(mut state) = self.state.lock() else {
            return Vec::new();
        };
        let window = self.settings.window;
        let mut due = Vec::new();
        state.windows.retain(|key, w| {
            let closed = now.duration_since(w.start) >= window;
            if w.pending > 0 && (closed || all) {
                due.push((w.latest.clone(), key.reason, w.pending));
                w.start = now;
                w.pending = 0;
                return true;
            }
            !closed
        });
        state
            .budgets
            .retain(|_, b| now.duration_since(b.start) < window);
        due
    }

    /// Puts back counts whose record could not be written, to go with a later one.
    fn restore(&self, due: Vec<Due>) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        for (who, reason, count) in due {
            let key = Key {
                source: who.client_addr.as_deref().and_then(source_of),
                auth_method: who.auth_method.clone(),
                reason,
                credential: who.credential.clone(),
            };
            let room = state.windows.len() < MAX_KEYS;
            match state.windows.get_mut(&key) {
                Some(w) => w.pending += count,
                None if room => {
                    state.windows.insert(
                        key,
                        Window {
                            start: Instant::now(),
                            pending: count,
                            latest: who,
                        },
                    );
                }
                None => {
                    tracing::error!(
                        count,
                        reason,
                        "refused authentications could not be recorded"
                    );
                }
            }
        }
    }
}

/// The address refusals are tallied under: the IP (no port: every connection has its own),
/// an IPv6 address's /64.
fn source_of(client_addr: &str) -> Option<IpAddr> {
    let ip = client_addr
        .parse::<SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| client_addr.parse::<IpAddr>())
        .ok()?;
    Some(match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    })
}

impl Refusals {
    /// Counts a refused authentication and says how to answer it; the platform chain gets a
    /// record when this opens a window (returning once it is durable: fail closed).
    pub async fn audit_refused_authentication(
        &self,
        who: Stranger,
        reason: &'static str,
    ) -> ServiceResult<Refused> {
        let (answer, due) = self.ledger.note(who, reason, Instant::now());
        if let Some(due) = due {
            self.record_refusals(vec![due]).await?;
        }
        Ok(answer)
    }

    /// Writes the records of `due` (together: one group commit); the counts of any that
    /// could not be written are kept for a later record.
    async fn record_refusals(&self, due: Vec<Due>) -> ServiceResult<()> {
        let now = self.core.clock.now();
        let outcomes = futures_util::future::join_all(due.iter().map(|(who, reason, count)| {
            self.core
                .commit_record(refusal_record(who.clone(), reason, *count, now))
        }))
        .await;
        let mut failed = Vec::new();
        let mut outcome = Ok(());
        for (due, result) in due.into_iter().zip(outcomes) {
            if let Err(e) = result {
                failed.push(due);
                outcome = Err(e);
            }
        }
        self.ledger.restore(failed);
        outcome
    }
}

/// Records closed windows' counts as they close (checking a few times a window) until
/// `stop` turns true, then every count still waiting.
pub async fn worker(refusals: Refusals, mut stop: watch::Receiver<bool>) {
    let tick = (refusals.ledger.settings.window / 4).max(Duration::from_millis(100));
    loop {
        let stopping = tokio::select! {
            () = tokio::time::sleep(tick) => false,
            _ = stop.changed() => true,
        };
        let stopping = stopping || *stop.borrow();
        let due = refusals.ledger.take_due(Instant::now(), stopping);
        if let Err(e) = refusals.record_refusals(due).await {
            tracing::warn!(error = %crate::telemetry::Causes(&e), "could not record refused authentications; will retry");
        }
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(addr: &str) -> Stranger {
        Stranger {
            auth_method: "jwt".into(),
            client_addr: Some(addr.into()),
            ..Stranger::default()
        }
    }

    fn ledger(per_address: u32) -> RefusalLedger {
        RefusalLedger::new(RefusalSettings {
            window: Duration::from_secs(10),
            per_address,
        })
    }

    #[test]
    fn one_record_per_window_carrying_every_refusal() {
        let l = ledger(3);
        let t0 = Instant::now();
        let (answer, due) = l.note(who("10.0.0.1:1000"), "bad", t0);
        assert_eq!(answer, Refused::Unauthorized);
        assert_eq!(due.map(|d| d.2), Some(1));
        let mut answers = Vec::new();
        for i in 0..9u64 {
            let (answer, due) = l.note(
                who(&format!("10.0.0.1:{}", 2000 + i)),
                "bad",
                t0 + Duration::from_millis(i),
            );
            assert!(due.is_none());
            answers.push(answer);
        }
        assert_eq!(
            answers
                .iter()
                .filter(|a| **a == Refused::Unauthorized)
                .count(),
            2
        );
        assert!(
            matches!(answers[8], Refused::Limited { retry_after_secs } if retry_after_secs <= 10)
        );
        // Still open: nothing due; closed: the nine, once, and the window starts again.
        assert!(l.take_due(t0 + Duration::from_secs(5), false).is_empty());
        let due = l.take_due(t0 + Duration::from_secs(10), false);
        assert_eq!(due.iter().map(|d| d.2).collect::<Vec<_>>(), [9]);
        assert!(l.take_due(t0 + Duration::from_secs(11), false).is_empty());
        // Quiet for a whole window: dropped; the next refusal opens a new one at once.
        assert!(l.take_due(t0 + Duration::from_secs(20), false).is_empty());
        let (answer, due) = l.note(who("10.0.0.1:1"), "bad", t0 + Duration::from_secs(21));
        assert_eq!(answer, Refused::Unauthorized);
        assert_eq!(due.map(|d| d.2), Some(1));
    }

    #[test]
    fn a_waiting_count_goes_with_the_next_record_or_at_shutdown() {
        let l = ledger(100);
        let t0 = Instant::now();
        for _ in 0..5 {
            l.note(who("10.0.0.2:1"), "bad", t0);
        }
        let (_, due) = l.note(who("10.0.0.2:1"), "bad", t0 + Duration::from_secs(10));
        assert_eq!(due.map(|d| d.2), Some(5));
        l.note(who("10.0.0.2:1"), "bad", t0 + Duration::from_secs(11));
        let due = l.take_due(t0 + Duration::from_secs(12), true);
        assert_eq!(due.iter().map(|d| d.2).collect::<Vec<_>>(), [1]);
        l.restore(due);
        let due = l.take_due(t0 + Duration::from_secs(12), true);
        assert_eq!(due.iter().map(|d| d.2).collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn addresses_and_reasons_are_tallied_apart_and_ports_are_not() {
        let l = ledger(1);
        let t0 = Instant::now();
        assert!(l.note(who("10.0.0.3:1"), "bad", t0).1.is_some());
        assert!(l.note(who("10.0.0.3:2"), "bad", t0).1.is_none());
        assert!(l.note(who("10.0.0.3:2"), "other", t0).1.is_some());
        assert!(l.note(who("10.0.0.4:1"), "bad", t0).1.is_some());
        assert_eq!(
            l.note(who("10.0.0.4:1"), "bad", t0).0,
            Refused::Limited {
                retry_after_secs: 10
            }
        );
        // One IPv6 /64 is one source.
        assert!(l.note(who("[2001:db8::1]:1"), "bad", t0).1.is_some());
        assert!(l.note(who("[2001:db8::2]:1"), "bad", t0).1.is_none());
        assert_eq!(
            source_of("[::ffff:10.0.0.5]:9"),
            Some("10.0.0.5".parse().unwrap())
        );
    }
}
