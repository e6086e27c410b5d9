//! Console links: `simvault console-link` issues a single-use, short-lived ticket for a
//! person (recorded on their tenant's chain, by the host's operator); opening the link and
//! pressing "Sign in" redeems it once (one conditional UPDATE: two redemptions give one
//! session) and starts their session. A used, expired or unknown ticket signs nobody in and
//! is recorded too.
//!
//! Must never: store a ticket (only its hash); accept a ticket row whose MAC fails.

use std::time::Duration;

use super::{Console, Person, Session, SessionToken, SignIn, TicketToken, person_of, record};
use crate::domain::audit::AuditOutcome;
use crate::domain::console::StoredTicket;
use crate::domain::{AuthMethod, Origin, Role};
use crate::service::{ServiceError, ServiceResult};
use crate::store::{console as repo, tenants};
use crate::vault::integrity::RowParts;
use crate::vault::{IntegrityKey, Purpose};

/// The longest a console link may be issued for.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// Why a console link signed nobody in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkRefused {
    #[error("this console link has been used already")]
    Used,
    #[error("this console link has expired")]
    Expired,
    #[error("this is not a console link")]
    Unknown,
}

/// A redemption's failure: refused, or the service could not decide.
#[derive(Debug, thiserror::Error)]
pub enum RedeemError {
    #[error(transparent)]
    Refused(LinkRefused),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

fn ticket_parts(t: &StoredTicket) -> RowParts {
    RowParts::default()
        .text(&t.id)
        .bytes(&t.token_hash)
        .text(&t.tenant_id)
        .text(&t.subject)
        .text(&t.roles)
        .int(t.created_at)
        .int(t.expires_at)
}

fn check(key: &IntegrityKey, t: &StoredTicket) -> bool {
    key.check_row(
        Purpose::ConsoleTicket,
        &t.id,
        &ticket_parts(t),
        Some(&t.mac),
    )
    .is_ok()
}

/// Whether `subject` may name a person: 1 to 256 printable characters.
pub(super) fn valid_subject(subject: &str) -> bool {
    (1..=256).contains(&subject.chars().count()) && !subject.chars().any(char::is_control)
}

impl Console {
    /// Issues a console link's ticket for `person`, valid for `ttl`, recorded on their
    /// tenant's chain as done by `actor` on the host (auth method `local`). Returns the
    /// ticket (for the link only) and when it expires.
    pub async fn issue_link(
        &self,
        person: &Person,
        ttl: Duration,
        actor: &str,
    ) -> ServiceResult<(TicketToken, i64)> {
        let mut errs = crate::domain::ValidationErrors::new();
        if !valid_subject(&person.subject) {
            errs.parameter("sub", "the subject must be 1 to 256 printable characters");
        }
        if person.roles.is_empty() {
            errs.parameter("role", "at least one role is required");
        }
        if ttl.is_zero() || ttl > MAX_TTL {
            errs.parameter("ttl", "the lifetime must be 1 to 86400 seconds");
        }
        errs.finish(())?;
        if !tenants::exists(&self.core.db, &person.tenant).await? {
            return Err(ServiceError::NotFound);
        }
        let key = self.core.row_key()?;
        let now = self.core.clock.now();
        let ticket = TicketToken::new()?;
        let mut row = StoredTicket {
            id: uuid::Uuid::new_v4().to_string(),
            token_hash: super::token_hash(ticket.expose()),
            tenant_id: person.tenant.as_str().to_owned(),
            subject: person.subject.clone(),
            roles: Role::join(&person.roles),
            created_at: now,
            expires_at: now.saturating_add(super::micros(ttl)),
            used_at: None,
            mac: Vec::new(),
        };
        row.mac = key
            .mac_row(Purpose::ConsoleTicket, &ticket_parts(&row))
            .to_vec();
        let issuer = Person {
            tenant: person.tenant.clone(),
            subject: actor.to_owned(),
            roles: Default::default(),
        };
        let mut tx = self.core.db.begin().await?;
        repo::insert_ticket(&mut tx, &row).await?;
        crate::audit::writer::append(
            &mut tx,
            record(
                &issuer,
                AuthMethod::Local,
                Some(format!("console-link:{}", row.id)),
                &Origin::default(),
                "console.link",
                AuditOutcome::Completed,
                format!(
                    "console link for {} (roles {}), valid {} s",
                    row.subject,
                    row.roles,
                    ttl.as_secs()
                ),
                now,
            ),
        )
        .await?;
        tx.commit().await?;
        Ok((ticket, row.expires_at))
    }

    /// Redeems `ticket` (once) and starts its person's session, recording the sign-in; a
    /// ticket used before, expired or unknown is refused and recorded (the unknown one on
    /// the platform chain, as refused credentials are).
    pub async fn redeem_link(
        &self,
        ticket: &TicketToken,
        origin: &Origin,
    ) -> Result<(SessionToken, Session), RedeemError> {
        let key = self.core.row_key()?;
        let hash = super::token_hash(ticket.expose());
        let now = self.core.clock.now();
        let mut tx = self.core.db.begin().await.map_err(ServiceError::from)?;
        if let Some(row) = repo::redeem_ticket(&mut tx, &hash, now)
            .await
            .map_err(ServiceError::from)?
        {
            if !check(&key, &row) {
                drop(tx);
                return Err(self
                    .core
                    .integrity_failure(Purpose::ConsoleTicket, &row.id)
                    .await
                    .into());
            }
            let person = person_of(&row.tenant_id, &row.subject, &row.roles)?;
            let started = self
                .start_in(&mut tx, person, origin, SignIn::ConsoleLink)
                .await?;
            tx.commit().await.map_err(ServiceError::from)?;
            return Ok(started);
        }
        let stored = repo::find_ticket(&mut tx, &hash)
            .await
            .map_err(ServiceError::from)?;
        let Some(row) = stored else {
            drop(tx);
            return Err(self.unknown_link(origin).await);
        };
        if !check(&key, &row) {
            drop(tx);
            return Err(self
                .core
                .integrity_failure(Purpose::ConsoleTicket, &row.id)
                .await
                .into());
        }
        let why = if row.used_at.is_some() {
            LinkRefused::Used
        } else {
            LinkRefused::Expired
        };
        let person = person_of(&row.tenant_id, &row.subject, &row.roles)?;
        crate::audit::writer::append(
            &mut tx,
            record(
                &person,
                AuthMethod::Console,
                Some(format!("console-link:{}", row.id)),
                origin,
                "console.signin",
                AuditOutcome::Denied,
                why.to_string(),
                now,
            ),
        )
        .await?;
        tx.commit().await.map_err(ServiceError::from)?;
        Err(RedeemError::Refused(why))
    }

    /// Records an unknown ticket as a refused credential (aggregated per address, as the
    /// API's are) and answers: refused, or rate limited, or unavailable when the record
    /// could not be written.
    async fn unknown_link(&self, origin: &Origin) -> RedeemError {
        let who = crate::service::audit::Stranger {
            subject: None,
            auth_method: AuthMethod::Console.as_str().to_owned(),
            credential: None,
            client_addr: origin.client_addr.clone(),
            request_id: origin.request_id.clone(),
        };
        match self
            .refusals
            .audit_refused_authentication(who, "unknown console link")
            .await
        {
            Ok(crate::service::refusals::Refused::Limited { retry_after_secs }) => {
                RedeemError::Service(ServiceError::RateLimited { retry_after_secs })
            }
            Ok(crate::service::refusals::Refused::Unauthorized) => {
                RedeemError::Refused(LinkRefused::Unknown)
            }
            Err(e) => RedeemError::Service(e),
        }
    }
}
