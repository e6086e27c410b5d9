//! OpenID Connect sign-in for the web console: the authorization code flow with PKCE (S256),
//! `state` and `nonce`, against the deployment's identity provider, ending in the tenant, roles
//! and subject of the ID token read through the same claim settings as bearer JWTs.
//!
//! Built on the `openidconnect` crate (4.x): it is the maintained, widely used relying-party
//! library for Rust, does discovery, PKCE, and the ID token checks of OpenID Connect Core
//! §3.1.3.7 (signature by the provider's JWKS, `iss`, `aud`, `exp`, `nonce`, refusing `alg: none`
//! unless told otherwise), and speaks through the reqwest client this crate already uses
//! (rustls; no second TLS stack). What it leaves to us, done here: a constant-time `state`
//! check, asymmetric algorithms only, `iat` bounds, time from the injected clock, choosing the
//! client authentication the provider advertises, and a JWKS fetched again when a token names a
//! key we do not have (key rotation), at most once a minute.
//!
//! Must never: log or return an authorization code, a token, the PKCE verifier, the nonce, the
//! state or the client secret (errors carry a category only; they are logged at debug level);
//! accept an ID token signed with a shared secret (HS*), with `alg: none`, by a key outside the
//! provider's JWKS, from another issuer or for another client; believe a discovery document
//! whose issuer is not exactly the configured one; follow redirects (the HTTP client given to
//! [`OidcClient::discover`] must be built with redirects off, as [`http_client`] builds it).

use std::collections::BTreeSet;
use std::str::FromStr as _;
use std::sync::RwLock;

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreClientAuthMethod, CoreGenderClaim, CoreIdTokenVerifier,
    CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreProviderMetadata,
};
use openidconnect::{
    AdditionalClaims, AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EndpointNotSet, EndpointSet, IdToken, IssuerUrl, JsonWebKeySetUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RequestTokenError, TokenResponse as _, TokenUrl,
};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::auth::jwt::{ClaimNames, tenant_and_roles};

mod error;
mod lazy;
mod pending;

use crate::clock::SharedClock;
use crate::domain::{Role, TenantId};
use error::problem;
pub use error::{IdTokenProblem, OidcError};
pub use lazy::LazyOidcClient;
pub use pending::PendingLogin;

/// Path of the console's callback under the public URL.
pub const CALLBACK_PATH: &str = "/console/callback";

/// The JWKS is fetched again for an unknown `kid` at most this often.
pub const JWKS_REFRESH_SECS: i64 = 60;

/// Clock skew tolerated on `iat` in the future; an ID token issued longer than
/// [`MAX_ID_TOKEN_AGE_SECS`] ago is refused (it comes straight from the token endpoint).
const IAT_LEEWAY_SECS: i64 = 60;
const MAX_ID_TOKEN_AGE_SECS: i64 = 600;

/// The identity provider and this deployment's client there.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// The issuer exactly as the provider's discovery document states it.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: SecretString,
    /// `{SIMVAULT_PUBLIC_URL}/console/callback`, registered at the provider.
    pub redirect_uri: String,
    /// Where the tenant and the roles are in the ID token (the bearer JWT settings).
    pub claims: ClaimNames,
}

/// Whether an issuer or public URL may be used: `https`, or `http` on a loopback host only
/// (a provider run by the tests, or on the same machine).
pub fn acceptable_url(url: &str) -> bool {
    match url::Url::parse(url) {
        Ok(u) if u.scheme() == "https" => u.host().is_some(),
        Ok(u) if u.scheme() == "http" => match u.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        _ => false,
    }
}

/// An HTTP client fit for talking to the provider: rustls, no redirects (a redirect could send
/// the client secret or a code elsewhere), bounded time.
pub fn http_client(timeout: std::time::Duration) -> Result<reqwest::Client, OidcError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .build()
        .map_err(|_| OidcError::Settings("HTTP client"))
}

/// Who signed in: the wiring step makes the console's principal from it (and checks that the
/// tenant exists, as bearer tokens are checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcIdentity {
    pub tenant: TenantId,
    /// Our roles among those the token asserts; others are ignored, as for bearer tokens.
    pub roles: BTreeSet<Role>,
    pub subject: String,
}

/// Claims beyond the standard ones, where the tenant and the roles are found.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct ExtraClaims {
    #[serde(flatten)]
    claims: serde_json::Map<String, Value>,
}

impl AdditionalClaims for ExtraClaims {}

type ConsoleIdToken = IdToken<
    ExtraClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

type Configured =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// The provider's keys, and when they were last fetched (Unix seconds, by the injected clock).
struct Jwks {
    keys: CoreJsonWebKeySet,
    fetched_at: i64,
}

/// A relying party at one provider, made by [`OidcClient::discover`].
pub struct OidcClient {
    client_id: ClientId,
    client_secret: ClientSecret,
    issuer: IssuerUrl,
    auth_url: AuthUrl,
    token_url: TokenUrl,
    jwks_url: JsonWebKeySetUrl,
    redirect: RedirectUrl,
    auth_type: AuthType,
    algorithms: Vec<CoreJwsSigningAlgorithm>,
    claims: ClaimNames,
    http: reqwest::Client,
    clock: SharedClock,
    jwks: RwLock<Jwks>,
}

impl std::fmt::Debug for OidcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcClient")
            .field("issuer", &self.issuer.as_str())
            .field("client_id", &self.client_id.as_str())
            .field("redirect", &self.redirect.as_str())
            .finish_non_exhaustive()
    }
}

/// Algorithms an ID token may be signed with: asymmetric only, so that no key (public or the
/// client secret) is ever used as an HMAC secret.
fn asymmetric(alg: &CoreJwsSigningAlgorithm) -> bool {
    use CoreJwsSigningAlgorithm as A;
    matches!(
        alg,
        A::RsaSsaPkcs1V15Sha256
            | A::RsaSsaPkcs1V15Sha384
            | A::RsaSsaPkcs1V15Sha512
            | A::RsaSsaPssSha256
            | A::RsaSsaPssSha384
            | A::RsaSsaPssSha512
            | A::EcdsaP256Sha256
            | A::EcdsaP384Sha384
            | A::EcdsaP521Sha512
            | A::EdDsa
    )
}

impl OidcClient {
    /// Fetches the provider's discovery document (whose issuer must be exactly
    /// `settings.issuer`) and its JWKS. `http` must not follow redirects ([`http_client`]).
    pub async fn discover(
        settings: &OidcSettings,
        http: reqwest::Client,
        clock: SharedClock,
    ) -> Result<OidcClient, OidcError> {
        let result = Self::discover_inner(settings, http, clock).await;
        if let Err(e) = &result {
            tracing::debug!(reason = %e, "OpenID Connect discovery failed");
        }
        result
    }

    async fn discover_inner(
        settings: &OidcSettings,
        http: reqwest::Client,
        clock: SharedClock,
    ) -> Result<OidcClient, OidcError> {
        if !acceptable_url(&settings.issuer) {
            return Err(OidcError::Settings(
                "issuer must be https (http on loopback only)",
            ));
        }
        if !acceptable_url(&settings.redirect_uri) {
            return Err(OidcError::Settings(
                "public URL must be https (http on loopback only)",
            ));
        }
        let issuer =
            IssuerUrl::new(settings.issuer.clone()).map_err(|_| OidcError::Settings("issuer"))?;
        let redirect = RedirectUrl::new(settings.redirect_uri.clone())
            .map_err(|_| OidcError::Settings("redirect URI"))?;
        let metadata = CoreProviderMetadata::discover_async(issuer.clone(), &http)
            .await
            .map_err(|e| {
                use openidconnect::DiscoveryError as D;
                OidcError::Discovery(match e {
                    D::Validation(_) => "the provider states another issuer",
                    D::Request(_) => "provider unreachable",
                    D::Response(..) => "provider answered with an error",
                    D::Parse(_) => "discovery document or JWKS malformed",
                    _ => "discovery failed",
                })
            })?;
        // A provider on loopback for tests aside, endpoints must be https too.
        for endpoint in [
            metadata.authorization_endpoint().as_str(),
            metadata.jwks_uri().as_str(),
        ] {
            if !acceptable_url(endpoint) {
                return Err(OidcError::Discovery("an endpoint is not https"));
            }
        }
        let token_url = metadata
            .token_endpoint()
            .cloned()
            .ok_or(OidcError::Discovery("no token endpoint"))?;
        if !acceptable_url(token_url.as_str()) {
            return Err(OidcError::Discovery("an endpoint is not https"));
        }
        let algorithms: Vec<_> = metadata
            .id_token_signing_alg_values_supported()
            .iter()
            .filter(|a| asymmetric(a))
            .cloned()
            .collect();
        if algorithms.is_empty() {
            return Err(OidcError::Discovery(
                "the provider signs ID tokens with no asymmetric algorithm",
            ));
        }
        // The discovery default is client_secret_basic (OpenID Connect Discovery §3).
        let auth_type = match metadata.token_endpoint_auth_methods_supported() {
            None => AuthType::BasicAuth,
            Some(methods) if methods.contains(&CoreClientAuthMethod::ClientSecretBasic) => {
                AuthType::BasicAuth
            }
            Some(methods) if methods.contains(&CoreClientAuthMethod::ClientSecretPost) => {
                AuthType::RequestBody
            }
            Some(_) => {
                return Err(OidcError::Discovery(
                    "the provider takes neither client_secret_basic nor client_secret_post",
                ));
            }
        };
        let fetched_at = clock.now_secs();
        Ok(OidcClient {
            client_id: ClientId::new(settings.client_id.clone()),
            client_secret: ClientSecret::new(settings.client_secret.expose_secret().to_owned()),
            issuer,
            auth_url: metadata.authorization_endpoint().clone(),
            token_url,
            jwks_url: metadata.jwks_uri().clone(),
            redirect,
            auth_type,
            algorithms,
            claims: settings.claims.clone(),
            http,
            clock,
            jwks: RwLock::new(Jwks {
                keys: metadata.jwks().clone(),
                fetched_at,
            }),
        })
    }

    fn client(&self) -> Configured {
        CoreClient::new(
            self.client_id.clone(),
            self.issuer.clone(),
            CoreJsonWebKeySet::new(Vec::new()),
        )
        .set_client_secret(self.client_secret.clone())
        .set_auth_uri(self.auth_url.clone())
        .set_token_uri(self.token_url.clone())
        .set_redirect_uri(self.redirect.clone())
        .set_auth_type(self.auth_type.clone())
    }

    /// Starts a sign-in: the URL to send the browser to, and what to keep until the callback.
    pub fn begin(&self) -> (url::Url, PendingLogin) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = self
            .client()
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge)
            .url();
        let pending = PendingLogin {
            state: SecretString::from(state.into_secret()),
            nonce: SecretString::from(nonce.secret().as_str()),
            verifier: SecretString::from(verifier.into_secret()),
        };
        (url, pending)
    }

    /// Ends a sign-in at the callback: checks `returned_state` against `pending` (in constant
    /// time), exchanges `code` with the PKCE verifier, verifies the ID token and reads the
    /// identity from it.
    pub async fn finish(
        &self,
        code: &str,
        returned_state: &str,
        pending: &PendingLogin,
    ) -> Result<OidcIdentity, OidcError> {
        let result = self.finish_inner(code, returned_state, pending).await;
        if let Err(e) = &result {
            tracing::debug!(reason = %e, "OpenID Connect sign-in refused");
        }
        result
    }

    async fn finish_inner(
        &self,
        code: &str,
        returned_state: &str,
        pending: &PendingLogin,
    ) -> Result<OidcIdentity, OidcError> {
        let expected = Sha256::digest(pending.state.expose_secret().as_bytes());
        let returned = Sha256::digest(returned_state.as_bytes());
        if !bool::from(expected.ct_eq(&returned)) {
            return Err(OidcError::State);
        }
        let response = self
            .client()
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(
                pending.verifier.expose_secret().to_owned(),
            ))
            .request_async(&self.http)
            .await
            .map_err(|e| {
                OidcError::Exchange(match e {
                    RequestTokenError::ServerResponse(_) => "the provider refused the code",
                    RequestTokenError::Request(_) => "provider unreachable",
                    RequestTokenError::Parse(..) => "token response malformed",
                    RequestTokenError::Other(_) => "token request failed",
                })
            })?;
        let id_token = response
            .id_token()
            .ok_or(OidcError::IdToken(IdTokenProblem::Missing))?
            .to_string();
        self.verify_id_token(&id_token, pending).await
    }

    /// Verifies an ID token (the second half of [`Self::finish`]) against the provider's keys,
    /// this client and `pending`'s nonce, and reads the identity from it.
    pub async fn verify_id_token(
        &self,
        id_token: &str,
        pending: &PendingLogin,
    ) -> Result<OidcIdentity, OidcError> {
        let token = ConsoleIdToken::from_str(id_token)
            .map_err(|_| OidcError::IdToken(IdTokenProblem::Malformed))?;
        let nonce = Nonce::new(pending.nonce.expose_secret().to_owned());
        let claims = match self.verified(&token, &nonce) {
            Err(IdTokenProblem::UnknownKey) if self.refresh_due() => {
                self.refresh_jwks().await?;
                self.verified(&token, &nonce)
            }
            other => other,
        }
        .map_err(OidcError::IdToken)?;

        let subject = claims.subject().as_str();
        if subject.is_empty() {
            return Err(OidcError::Claim("sub"));
        }
        let extra = Value::Object(claims.additional_claims().claims.clone());
        let (tenant, roles) = tenant_and_roles(&extra, &self.claims).map_err(|e| match e {
            crate::auth::jwt::TokenError::Claim(name) => OidcError::Claim(name),
            _ => OidcError::Claim("identity"),
        })?;
        let tenant = TenantId::parse(&tenant).map_err(|_| OidcError::Claim("tenant"))?;
        Ok(OidcIdentity {
            tenant,
            roles: crate::auth::known_roles(&roles),
            subject: subject.to_owned(),
        })
    }

    /// The token's claims if it verifies against the keys held now.
    fn verified(
        &self,
        token: &ConsoleIdToken,
        nonce: &Nonce,
    ) -> Result<openidconnect::IdTokenClaims<ExtraClaims, CoreGenderClaim>, IdTokenProblem> {
        let keys = self
            .jwks
            .read()
            .map_err(|_| IdTokenProblem::Other)?
            .keys
            .clone();
        let now = self.clock.now_secs();
        let time = move || {
            chrono::DateTime::from_timestamp(now, 0).unwrap_or(chrono::DateTime::UNIX_EPOCH)
        };
        let verifier = CoreIdTokenVerifier::new_public_client(
            self.client_id.clone(),
            self.issuer.clone(),
            keys,
        )
        .set_allowed_algs(self.algorithms.clone())
        .set_time_fn(time)
        .set_issue_time_verifier_fn(move |iat| {
            let iat = iat.timestamp();
            if iat > now + IAT_LEEWAY_SECS {
                Err("issued in the future".into())
            } else if iat < now - MAX_ID_TOKEN_AGE_SECS {
                Err("issued too long ago".into())
            } else {
                Ok(())
            }
        });
        token
            .claims(&verifier, nonce)
            .cloned()
            .map_err(|e| problem(&e))
    }

    /// Whether the JWKS may be fetched again now (at most every [`JWKS_REFRESH_SECS`]); if so,
    /// the slot is taken, so concurrent sign-ins with an unknown key fetch it once.
    fn refresh_due(&self) -> bool {
        let now = self.clock.now_secs();
        let Ok(mut jwks) = self.jwks.write() else {
            return false;
        };
        if now.saturating_sub(jwks.fetched_at) < JWKS_REFRESH_SECS {
            return false;
        }
        jwks.fetched_at = now;
        true
    }

    async fn refresh_jwks(&self) -> Result<(), OidcError> {
        let keys = CoreJsonWebKeySet::fetch_async(&self.jwks_url, &self.http)
            .await
            .map_err(|_| OidcError::Discovery("JWKS could not be fetched again"))?;
        tracing::debug!("OpenID provider keys fetched again for an unknown key id");
        if let Ok(mut jwks) = self.jwks.write() {
            jwks.keys = keys;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_is_acceptable() {
        for ok in [
            "https://idp.example.com",
            "https://idp.example.com/realms/x",
            "http://127.0.0.1:9000",
            "http://localhost:9000/",
            "http://[::1]:9000",
        ] {
            assert!(acceptable_url(ok), "{ok}");
        }
        for bad in [
            "http://idp.example.com",
            "http://10.0.0.1",
            "ftp://idp.example.com",
            "idp.example.com",
            "",
        ] {
            assert!(!acceptable_url(bad), "{bad}");
        }
    }

    #[test]
    fn only_asymmetric_algorithms_are_allowed() {
        use CoreJwsSigningAlgorithm as A;
        assert!(asymmetric(&A::RsaSsaPkcs1V15Sha256));
        assert!(asymmetric(&A::EcdsaP256Sha256));
        assert!(asymmetric(&A::EdDsa));
        for alg in [A::HmacSha256, A::HmacSha384, A::HmacSha512, A::None] {
            assert!(!asymmetric(&alg), "{alg:?}");
        }
    }

    #[test]
    fn errors_name_a_category_only() {
        let e = OidcError::IdToken(IdTokenProblem::Audience);
        assert_eq!(e.to_string(), "ID token refused: wrong audience");
    }
}
