//! Console sign-in through the identity provider (OpenID Connect): what is kept between the
//! start of a sign-in and the provider's callback, and the callback's verdict.
//!
//! A sign-in begun is a short-lived row ([`LOGIN_TTL`]) found by the SHA-256 of its state,
//! holding its nonce and PKCE verifier and the hash of a random value the browser that began
//! it holds in a cookie; the row carries a MAC ([`Purpose::ConsoleOidcLogin`]). The callback
//! deletes it whatever happens next (one sign-in is finished at most once), checks its MAC,
//! its age and the browser's cookie, lets the provider's client finish (code exchange, ID
//! token checks), and starts the person's session if their tenant exists and they hold a
//! role. A refusal is recorded on the tenant's chain when the ID token named an existing
//! tenant, and counted as a refused credential (platform chain, aggregated) otherwise.
//!
//! Must never: store the state or the authorization code; tell the browser why a sign-in
//! was refused (the category goes to the debug log and the audit record); believe a row
//! before its MAC is checked; compare the binding in variable time.

use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use subtle::ConstantTimeEq as _;

use super::{BindingToken, Console, Person, Session, SessionToken, SignIn, record, token_hash};
use crate::auth::oidc::{OidcClient, OidcIdentity, PendingLogin};
use crate::domain::audit::AuditOutcome;
use crate::domain::console::StoredOidcLogin;
use crate::domain::{AuthMethod, Origin};
use crate::service::{ServiceError, ServiceResult};
use crate::store::{console_oidc as repo, tenants};
use crate::vault::Purpose;
use crate::vault::integrity::RowParts;

/// How long a sign-in begun may take to come back from the provider.
pub const LOGIN_TTL: Duration = Duration::from_secs(600);

/// Why a sign-in through the provider started no session.
#[derive(Debug, thiserror::Error)]
pub enum OidcSignInError {
    /// Refused, and recorded: the browser is told only that sign-in failed.
    #[error("sign-in through the identity provider refused")]
    Refused,
    /// The service could not decide (store or audit log unavailable): nothing was started.
    #[error(transparent)]
    Service(#[from] ServiceError),
}

fn login_parts(l: &StoredOidcLogin) -> RowParts {
    RowParts::default()
        .text(&l.id)
        .bytes(&l.state_hash)
        .bytes(&l.binding_hash)
        .text(&l.nonce)
        .text(&l.verifier)
        .int(l.created_at)
        .int(l.expires_at)
}

impl Console {
    /// Keeps `pending` server-side until the callback; returns the value of the cookie that
    /// binds it to this browser.
    pub async fn keep_oidc_login(&self, pending: &PendingLogin) -> ServiceResult<BindingToken> {
        let key = self.core.row_key()?;
        let now = self.core.clock.now();
        let binding = BindingToken::new()?;
        let mut row = StoredOidcLogin {
            id: uuid::Uuid::new_v4().to_string(),
            state_hash: token_hash(pending.state().expose_secret()),
            binding_hash: token_hash(binding.expose()),
            nonce: pending.nonce().expose_secret().to_owned(),
            verifier: pending.verifier().expose_secret().to_owned(),
            created_at: now,
            expires_at: now.saturating_add(super::micros(LOGIN_TTL)),
            mac: Vec::new(),
        };
        row.mac = key
            .mac_row(Purpose::ConsoleOidcLogin, &login_parts(&row))
            .to_vec();
        let mut tx = self.core.db.begin().await?;
        repo::insert_login(&mut tx, &row, now).await?;
        tx.commit().await?;
        Ok(binding)
    }

    /// The provider's callback: finishes the sign-in whose state is `state` (its record
    /// deleted whatever happens), begun in the browser holding `binding`, with `code`
    /// through `client`, and starts the person's session, recording it.
    pub async fn finish_oidc_login(
        &self,
        client: &OidcClient,
        code: &str,
        state: &str,
        binding: Option<&BindingToken>,
        origin: &Origin,
    ) -> Result<(SessionToken, Session), OidcSignInError> {
        let pending = self.take(state, binding, origin).await?;
        let identity = match client.finish(code, state, &pending).await {
            Ok(identity) => identity,
            Err(_) => return Err(self.stranger(origin, "identity provider sign-in").await),
        };
        if !tenants::exists(&self.core.db, &identity.tenant)
            .await
            .map_err(ServiceError::from)?
        {
            tracing::debug!("an ID token names an unknown tenant");
            return Err(self
                .stranger(origin, "ID token for an unknown tenant")
                .await);
        }
        // The subject goes into the session, the audit chain and its exports: the same rule as
        // a console link's.
        if !super::links::valid_subject(&identity.subject) {
            return Err(self
                .stranger(origin, "ID token with an unusable subject")
                .await);
        }
        if identity.roles.is_empty() {
            return Err(self
                .refuse_person(&identity, origin, "the ID token grants no console role")
                .await);
        }
        let OidcIdentity {
            tenant,
            roles,
            subject,
        } = identity;
        let person = Person {
            tenant,
            subject,
            roles,
        };
        Ok(self
            .start_session(person, origin, SignIn::OpenIdConnect)
            .await?)
    }

    /// Takes (deletes) the sign-in `state` names and checks it: its MAC, its age, and that
    /// `binding` is the cookie of the browser that began it.
    async fn take(
        &self,
        state: &str,
        binding: Option<&BindingToken>,
        origin: &Origin,
    ) -> Result<PendingLogin, OidcSignInError> {
        let key = self.core.row_key()?;
        let mut tx = self.core.db.begin().await.map_err(ServiceError::from)?;
        let row = repo::take_login(&mut tx, &token_hash(state))
            .await
            .map_err(ServiceError::from)?;
        tx.commit().await.map_err(ServiceError::from)?;
        let Some(row) = row else {
            return Err(self
                .stranger(origin, "unknown or used console sign-in")
                .await);
        };
        if key
            .check_row(
                Purpose::ConsoleOidcLogin,
                &row.id,
                &login_parts(&row),
                Some(&row.mac),
            )
            .is_err()
        {
            self.core
                .integrity_failure(Purpose::ConsoleOidcLogin, &row.id)
                .await;
            return Err(OidcSignInError::Refused);
        }
        if self.core.clock.now() >= row.expires_at {
            return Err(self.stranger(origin, "expired console sign-in").await);
        }
        let bound =
            binding.is_some_and(|b| bool::from(token_hash(b.expose()).ct_eq(&row.binding_hash)));
        if !bound {
            return Err(self
                .stranger(origin, "console sign-in finished in another browser")
                .await);
        }
        Ok(PendingLogin::restore(
            SecretString::from(state.to_owned()),
            SecretString::from(row.nonce.as_str()),
            SecretString::from(row.verifier.as_str()),
        ))
    }

    /// Records a refused sign-in of a person whose tenant exists, on that tenant's chain.
    async fn refuse_person(
        &self,
        who: &OidcIdentity,
        origin: &Origin,
        reason: &str,
    ) -> OidcSignInError {
        let person = Person {
            tenant: who.tenant.clone(),
            subject: who.subject.clone(),
            roles: who.roles.clone(),
        };
        let now = self.core.clock.now();
        let written = async {
            let mut tx = self.core.db.begin().await?;
            crate::audit::writer::append(
                &mut tx,
                record(
                    &person,
                    AuthMethod::Console,
                    None,
                    origin,
                    "console.signin",
                    AuditOutcome::Denied,
                    reason.to_owned(),
                    now,
                ),
            )
            .await?;
            tx.commit().await?;
            Ok::<_, ServiceError>(())
        }
        .await;
        match written {
            Ok(()) => OidcSignInError::Refused,
            Err(e) => OidcSignInError::Service(e),
        }
    }

    /// Counts a refused sign-in with no known tenant as a refused credential (aggregated per
    /// address, as the API's are).
    async fn stranger(&self, origin: &Origin, reason: &'static str) -> OidcSignInError {
        tracing::debug!(
            reason,
            "console sign-in through the identity provider refused"
        );
        let who = crate::service::audit::Stranger {
            subject: None,
            auth_method: AuthMethod::Console.as_str().to_owned(),
            credential: None,
            client_addr: origin.client_addr.clone(),
            request_id: origin.request_id.clone(),
        };
        match self
            .refusals
            .audit_refused_authentication(who, reason)
            .await
        {
            Ok(_) => OidcSignInError::Refused,
            Err(e) => OidcSignInError::Service(e),
        }
    }
}
