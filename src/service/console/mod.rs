//! The web console's sessions: server-side rows shared by every replica, started by a console
//! link ([`links`]) or, later, the identity provider ([`Console::start_session`]), looked up
//! on every request with their idle and absolute limits, and ended on sign-out. Also the
//! console's CSRF tokens and what a person's roles let them open.
//!
//! A session's cookie carries a random 256-bit token; the row holds only its SHA-256, and a
//! MAC (row integrity, [`Purpose::ConsoleSession`]) over every column that decides whether it
//! holds and as whom. A row whose MAC fails is refused and reported, never obeyed; an ended,
//! expired or idle session is refused at once (nothing is cached).
//!
//! Must never: store, log or record a token; believe a row before its MAC is checked; compare
//! a token or CSRF value in variable time.

pub mod links;
pub mod oidc;
mod support;
mod tokens;

use std::collections::BTreeSet;
use std::time::Duration;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Core, ServiceError, ServiceResult};
use crate::audit::AuditRecord;
use crate::domain::audit::AuditOutcome;
use crate::domain::console::StoredSession;
use crate::domain::{AuthMethod, Origin, Principal, Role, TenantId, Timestamp};
use crate::policy::{Action, Context, Resource};
use crate::store::{Tx, console as repo, tenants};
use crate::vault::integrity::{RowParts, opt_int};
use crate::vault::{IntegrityKey, Purpose};
pub use support::SimActions;
pub use tokens::{BindingToken, SessionToken, TicketToken};

/// Session limits and the address people reach the service at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSettings {
    /// A session unused this long is refused (`SIMVAULT_CONSOLE_IDLE_SECS`, default 900).
    pub idle: Duration,
    /// A session is refused this long after it started, used or not
    /// (`SIMVAULT_CONSOLE_MAX_SECS`, default 28800).
    pub max: Duration,
    /// `SIMVAULT_PUBLIC_URL` without a trailing slash (default `https://localhost:8443`):
    /// console links point here, and a POST from another origin is refused.
    pub public_url: String,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(900),
            max: Duration::from_secs(28_800),
            public_url: crate::config::DEFAULT_PUBLIC_URL.into(),
        }
    }
}

super::capability! {
    /// Console sign-in and sessions.
    pub struct Console {
        core: Core,
        settings: ConsoleSettings,
        /// Where an unknown console link is recorded, as a refused credential.
        refusals: super::Refusals,
    }
}

/// Who a session is for: a person already proven (by a console link, or an ID token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub tenant: TenantId,
    pub subject: String,
    pub roles: BTreeSet<Role>,
}

/// How a person proved who they are, for the record of their sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignIn {
    ConsoleLink,
    OpenIdConnect,
}

impl SignIn {
    fn describe(self) -> &'static str {
        match self {
            SignIn::ConsoleLink => "signed in to the console with a console link",
            SignIn::OpenIdConnect => "signed in to the console through the identity provider",
        }
    }
}

/// A live console session (its row checked, within its limits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub person: Person,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub expires_at: Timestamp,
}

impl Session {
    /// The principal a console request acts as: the person, by the console, through this
    /// session (its id is the credential recorded; never the token).
    pub fn principal(&self, origin: Origin) -> Principal {
        Principal {
            tenant: self.person.tenant.clone(),
            roles: self.person.roles.clone(),
            subject: self.person.subject.clone(),
            auth_method: AuthMethod::Console,
            credential_id: Some(format!("console-session:{}", self.id)),
            origin,
        }
    }
}

/// The console sections a person's roles open (the policy decides; nothing is recorded).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Abilities {
    pub sims: bool,
    pub audit: bool,
    pub tasks: bool,
    pub groups: bool,
    pub keys: bool,
    pub webhooks: bool,
}

/// How often a session's `last_seen_at` is moved at most: each move is a write.
const TOUCH_EVERY: Duration = Duration::from_secs(5);

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// SHA-256 of a token's text: what rows are found by.
pub(super) fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The MAC of a stored session over every column that decides it.
fn session_parts(s: &StoredSession) -> RowParts {
    RowParts::default()
        .text(&s.id)
        .bytes(&s.token_hash)
        .text(&s.tenant_id)
        .text(&s.subject)
        .text(&s.roles)
        .int(s.created_at)
        .int(s.last_seen_at)
        .int(s.expires_at)
        .bytes(&opt_int(s.ended_at))
}

fn seal(key: &IntegrityKey, s: &mut StoredSession) {
    s.mac = key
        .mac_row(Purpose::ConsoleSession, &session_parts(s))
        .to_vec();
}

/// The person a checked row names (its tenant and roles parsed).
pub(super) fn person_of(tenant: &str, subject: &str, roles: &str) -> ServiceResult<Person> {
    Ok(Person {
        tenant: TenantId::parse(tenant)
            .map_err(|e| ServiceError::internal(format!("a console row's tenant: {e}")))?,
        subject: subject.to_owned(),
        roles: Role::parse_list(roles)
            .map_err(|e| ServiceError::internal(format!("a console row's roles: {e}")))?,
    })
}

/// A record of the console's own doings (sign-in, sign-out, links) on `person`'s tenant
/// chain.
#[allow(clippy::too_many_arguments)]
pub(super) fn record(
    person: &Person,
    auth_method: AuthMethod,
    credential: Option<String>,
    origin: &Origin,
    action: &str,
    outcome: AuditOutcome,
    reason: String,
    now: Timestamp,
) -> AuditRecord {
    AuditRecord {
        id: uuid::Uuid::new_v4().to_string(),
        occurred_at: now,
        tenant: person.tenant.as_str().to_owned(),
        subject: person.subject.clone(),
        roles: person.roles.iter().map(|r| r.as_str().to_owned()).collect(),
        auth_method: auth_method.as_str().to_owned(),
        credential,
        client_addr: origin.client_addr.clone(),
        request_id: origin.request_id.clone(),
        action: action.to_owned(),
        sim_id: None,
        iccid: None,
        fields: Vec::new(),
        outcome: outcome.as_str().to_owned(),
        reason: Some(reason),
        policy_ids: Vec::new(),
        remaining_attempts: None,
    }
}

impl Console {
    /// The settings in force.
    pub fn settings(&self) -> &ConsoleSettings {
        &self.settings
    }

    /// Starts a session for `person`, already proven by `via`, and records the sign-in on
    /// their tenant's chain (fail closed: no record, no session). The token is for the
    /// cookie only.
    pub async fn start_session(
        &self,
        person: Person,
        origin: &Origin,
        via: SignIn,
    ) -> ServiceResult<(SessionToken, Session)> {
        if !tenants::exists(&self.core.db, &person.tenant).await? {
            return Err(ServiceError::NotFound);
        }
        let mut tx = self.core.db.begin().await?;
        let started = self.start_in(&mut tx, person, origin, via).await?;
        tx.commit().await?;
        Ok(started)
    }

    /// [`Console::start_session`] inside `tx`.
    pub(super) async fn start_in(
        &self,
        tx: &mut Tx,
        person: Person,
        origin: &Origin,
        via: SignIn,
    ) -> ServiceResult<(SessionToken, Session)> {
        if person.roles.is_empty() {
            return Err(ServiceError::Forbidden);
        }
        let key = self.core.row_key()?;
        let now = self.core.clock.now();
        let token = SessionToken::new()?;
        let mut row = StoredSession {
            id: uuid::Uuid::new_v4().to_string(),
            token_hash: token_hash(token.expose()),
            tenant_id: person.tenant.as_str().to_owned(),
            subject: person.subject.clone(),
            roles: Role::join(&person.roles),
            created_at: now,
            last_seen_at: now,
            expires_at: now.saturating_add(micros(self.settings.max)),
            ended_at: None,
            mac: Vec::new(),
        };
        seal(&key, &mut row);
        repo::insert_session(tx, &row).await?;
        let session = Session {
            id: row.id,
            person,
            created_at: now,
            last_seen_at: now,
            expires_at: row.expires_at,
        };
        let credential = Some(format!("console-session:{}", session.id));
        crate::audit::writer::append(
            tx,
            record(
                &session.person,
                AuthMethod::Console,
                credential,
                origin,
                "console.signin",
                AuditOutcome::Allowed,
                via.describe().to_owned(),
                now,
            ),
        )
        .await?;
        Ok((token, session))
    }

    /// The session `token` opens, if it holds: `None` for an unknown, ended, expired or idle
    /// session, and for a row whose MAC fails (reported). Moves `last_seen_at` every few
    /// seconds of use.
    pub async fn session(&self, token: &SessionToken) -> ServiceResult<Option<Session>> {
        let Some(row) = repo::find_session(&self.core.db, &token_hash(token.expose())).await?
        else {
            return Ok(None);
        };
        let key = self.core.row_key()?;
        if key
            .check_row(
                Purpose::ConsoleSession,
                &row.id,
                &session_parts(&row),
                Some(&row.mac),
            )
            .is_err()
        {
            self.core
                .integrity_failure(Purpose::ConsoleSession, &row.id)
                .await;
            return Ok(None);
        }
        let now = self.core.clock.now();
        let idle_since = now.saturating_sub(row.last_seen_at);
        if row.ended_at.is_some()
            || now >= row.expires_at
            || idle_since > micros(self.settings.idle)
        {
            return Ok(None);
        }
        let person = person_of(&row.tenant_id, &row.subject, &row.roles)?;
        let mut session = Session {
            id: row.id.clone(),
            person,
            created_at: row.created_at,
            last_seen_at: row.last_seen_at,
            expires_at: row.expires_at,
        };
        let every = micros(TOUCH_EVERY.min(self.settings.idle / 4));
        if idle_since >= every {
            let read = row.last_seen_at;
            let mut moved = row;
            moved.last_seen_at = now;
            seal(&key, &mut moved);
            let mut tx = self.core.db.begin().await?;
            // Lost to a concurrent touch or sign-out: theirs stands.
            if repo::update_session(&mut tx, &moved.id, read, now, None, &moved.mac).await? {
                session.last_seen_at = now;
            }
            tx.commit().await?;
        }
        Ok(Some(session))
    }

    /// Ends the session `token` opens (sign-out), recording it; an unknown or ended session
    /// is left alone.
    pub async fn end_session(&self, token: &SessionToken, origin: &Origin) -> ServiceResult<()> {
        let key = self.core.row_key()?;
        let hash = token_hash(token.expose());
        // A touch may move the row between our read and our write: read it again then.
        for _ in 0..3 {
            let Some(row) = repo::find_session(&self.core.db, &hash).await? else {
                return Ok(());
            };
            if key
                .check_row(
                    Purpose::ConsoleSession,
                    &row.id,
                    &session_parts(&row),
                    Some(&row.mac),
                )
                .is_err()
            {
                return Err(self
                    .core
                    .integrity_failure(Purpose::ConsoleSession, &row.id)
                    .await);
            }
            if row.ended_at.is_some() {
                return Ok(());
            }
            let now = self.core.clock.now();
            let person = person_of(&row.tenant_id, &row.subject, &row.roles)?;
            let read = row.last_seen_at;
            let mut ended = row;
            ended.ended_at = Some(now);
            seal(&key, &mut ended);
            let mut tx = self.core.db.begin().await?;
            if repo::update_session(&mut tx, &ended.id, read, read, Some(now), &ended.mac).await? {
                crate::audit::writer::append(
                    &mut tx,
                    record(
                        &person,
                        AuthMethod::Console,
                        Some(format!("console-session:{}", ended.id)),
                        origin,
                        "console.signout",
                        AuditOutcome::Completed,
                        "signed out of the console".into(),
                        now,
                    ),
                )
                .await?;
                tx.commit().await?;
                return Ok(());
            }
        }
        Err(ServiceError::Unavailable(
            "the session kept changing while it was ended".into(),
        ))
    }

    /// The CSRF token of the session `token` opens: bound to that token (a hash of it and
    /// the session id under its own label), so another session's, or a forged one, differs.
    pub fn csrf_token(&self, token: &SessionToken, session: &Session) -> String {
        tokens::csrf(token, &session.id)
    }

    /// Whether `given` is the CSRF token of this session (constant time).
    pub fn csrf_matches(&self, token: &SessionToken, session: &Session, given: &str) -> bool {
        let expected = tokens::csrf(token, &session.id);
        expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
    }

    /// What `principal`'s roles let them open in the console, as the policy decides (a
    /// question only: nothing is recorded).
    pub fn abilities(&self, principal: &Principal) -> Abilities {
        let may = |action| {
            matches!(
                self.core.decide(
                    principal,
                    action,
                    &Resource::of_tenant(&principal.tenant),
                    &Context::default()
                ),
                Ok(Ok(_))
            )
        };
        Abilities {
            sims: may(Action::ListSims),
            audit: may(Action::ReadAudit),
            tasks: may(Action::ListTasks),
            groups: may(Action::ReadGroup),
            keys: may(Action::ReadKeys),
            webhooks: may(Action::ManageWebhooks),
        }
    }
}
