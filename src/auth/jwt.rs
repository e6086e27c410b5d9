//! Bearer JWT verification: one configured asymmetric algorithm, keys from a PEM file or a
//! JWKS file (chosen by `kid`), and `exp`, `nbf`, `iss`, `aud` checked against an injected clock,
//! and a lifetime (from `iat`, else `nbf`, to `exp`) no longer than the configured maximum.
//!
//! Must never: accept `alg: none` or any algorithm other than the configured one (so an RSA
//! public key can never be used as an HMAC secret), log or return a token, or say to the
//! client why a token was refused.

use std::collections::HashMap;
use std::path::Path;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

/// Clock skew tolerated on `exp` and `nbf`.
pub const MAX_LEEWAY_SECS: i64 = 60;

/// The longest token lifetime accepted unless configured otherwise
/// (`SIMVAULT_JWT_MAX_LIFETIME_SECS`): a stolen token is worth at most a day.
pub const DEFAULT_MAX_LIFETIME_SECS: i64 = 24 * 3600;

/// Algorithms a deployment may configure: asymmetric only.
pub fn parse_algorithm(s: &str) -> Result<Algorithm, String> {
    let alg = match s {
        "EdDSA" => Algorithm::EdDSA,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        other => {
            return Err(format!(
                "unsupported JWT algorithm {other:?}: use EdDSA, ES256, ES384, RS256/384/512 or PS256/384/512"
            ));
        }
    };
    Ok(alg)
}

enum Keys {
    /// One key from a PEM file: the token's `kid`, if any, is not consulted.
    Single(DecodingKey),
    /// A JWKS: the token must name its key by `kid`.
    Set(HashMap<String, DecodingKey>),
}

/// Which claims carry what, since identity providers name them differently.
#[derive(Debug, Clone)]
pub struct ClaimNames {
    /// Dotted path to the tenant claim (a string), e.g. `tenant` or `org.id`.
    pub tenant: String,
    /// Dotted path to the roles claim: an array of strings, or a space/comma separated string,
    /// e.g. `roles` or `realm_access.roles`.
    pub roles: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self {
            tenant: "tenant".into(),
            roles: "roles".into(),
        }
    }
}

/// Verified claims, before tenant and roles are checked against the deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub subject: String,
    pub tenant: String,
    pub roles: Vec<String>,
    pub token_id: Option<String>,
}

/// Why a token was refused (for the debug log only).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("malformed token or header")]
    Malformed,
    #[error("algorithm {0:?} is not the configured one")]
    WrongAlgorithm(String),
    #[error("no verification key for this token")]
    UnknownKey,
    #[error("signature or standard claims invalid: {0}")]
    Invalid(String),
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    /// Issued for longer than the deployment accepts (or with no start to measure from).
    #[error("token lifetime exceeds the maximum")]
    TooLong,
    #[error("claim {0} missing or malformed")]
    Claim(&'static str),
}

pub struct JwtVerifier {
    algorithm: Algorithm,
    keys: Keys,
    validation: Validation,
    claims: ClaimNames,
    max_lifetime_secs: i64,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithm", &self.algorithm)
            .field("claims", &self.claims)
            .field("max_lifetime_secs", &self.max_lifetime_secs)
            .finish_non_exhaustive()
    }
}

fn pem_key(alg: Algorithm, pem: &[u8]) -> jsonwebtoken::errors::Result<DecodingKey> {
    match alg {
        Algorithm::EdDSA => DecodingKey::from_ed_pem(pem),
        Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem),
        _ => DecodingKey::from_rsa_pem(pem),
    }
}

impl JwtVerifier {
    /// Loads verification keys from `path`: a JWKS (JSON) file or a PEM public key.
    pub fn load(
        path: &Path,
        algorithm: Algorithm,
        issuer: &str,
        audience: &str,
        claims: ClaimNames,
    ) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("reading JWT keys {}: {e}", path.display()))?;
        Self::from_bytes(&bytes, algorithm, issuer, audience, claims)
            .map_err(|e| anyhow::anyhow!("JWT keys {}: {e}", path.display()))
    }

    pub fn from_bytes(
        bytes: &[u8],
        algorithm: Algorithm,
        issuer: &str,
        audience: &str,
        claims: ClaimNames,
    ) -> anyhow::Result<Self> {
        let keys = if bytes.trim_ascii_start().starts_with(b"{") {
            let set: JwkSet = serde_json::from_slice(bytes)?;
            let mut keys = HashMap::new();
            for jwk in &set.keys {
                let Some(kid) = &jwk.common.key_id else {
                    continue;
                };
                // A key published for another algorithm is never used for this one.
                if let Some(ka) = jwk.common.key_algorithm
                    && Algorithm::try_from(ka).ok() != Some(algorithm)
                {
                    continue;
                }
                if let Ok(key) = DecodingKey::from_jwk(jwk) {
                    keys.insert(kid.clone(), key);
                }
            }
            if keys.is_empty() {
                anyhow::bail!("the JWKS has no usable key with a kid for {algorithm:?}");
            }
            Keys::Set(keys)
        } else {
            Keys::Single(pem_key(algorithm, bytes)?)
        };
        let mut validation = Validation::new(algorithm);
        // Time claims are checked below against the injected clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        Ok(Self {
            algorithm,
            keys,
            validation,
            claims,
            max_lifetime_secs: DEFAULT_MAX_LIFETIME_SECS,
        })
    }

    /// Refuses tokens whose lifetime exceeds `max`.
    pub fn with_max_lifetime(self, max: std::time::Duration) -> Self {
        Self {
            max_lifetime_secs: i64::try_from(max.as_secs()).unwrap_or(i64::MAX),
            ..self
        }
    }

    /// Verifies `token` at `now` (Unix seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<VerifiedToken, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != self.algorithm {
            return Err(TokenError::WrongAlgorithm(format!("{:?}", header.alg)));
        }
        let key = match &self.keys {
            Keys::Single(k) => k,
            Keys::Set(set) => header
                .kid
                .as_deref()
                .and_then(|kid| set.get(kid))
                .ok_or(TokenError::UnknownKey)?,
        };
        let data =
            jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, key, &self.validation)
                .map_err(|e| TokenError::Invalid(e.kind_name()))?;
        let claims = Value::Object(data.claims);

        let exp = claims["exp"].as_i64().ok_or(TokenError::Claim("exp"))?;
        // Saturating: a signed `exp` near i64::MAX must not overflow (a panic in debug builds).
        if now >= exp.saturating_add(MAX_LEEWAY_SECS) {
            return Err(TokenError::Expired);
        }
        let nbf = time_claim(&claims, "nbf")?;
        if nbf.is_some_and(|nbf| now + MAX_LEEWAY_SECS < nbf) {
            return Err(TokenError::NotYetValid);
        }
        // A token with neither `iat` nor `nbf` has no measurable lifetime: its `exp` could be
        // years away. Refused, since an identity provider that omits both is rare and the
        // alternative is trusting an unbounded credential.
        let start = time_claim(&claims, "iat")?
            .or(nbf)
            .ok_or(TokenError::TooLong)?;
        if exp.saturating_sub(start) > self.max_lifetime_secs {
            return Err(TokenError::TooLong);
        }
        let subject = claims["sub"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or(TokenError::Claim("sub"))?
            .to_owned();
        let (tenant, roles) = tenant_and_roles(&claims, &self.claims)?;
        let token_id = claims.get("jti").and_then(Value::as_str).map(str::to_owned);
        Ok(VerifiedToken {
            subject,
            tenant,
            roles,
            token_id,
        })
    }
}

/// The tenant and the roles that verified claims assert, found through the deployment's claim
/// names: shared by bearer tokens and the console's ID tokens, so both read identity alike. The
/// roles are as the provider wrote them; [`crate::auth::known_roles`] keeps those that mean
/// something here.
pub fn tenant_and_roles(
    claims: &Value,
    names: &ClaimNames,
) -> Result<(String, Vec<String>), TokenError> {
    let tenant = lookup(claims, &names.tenant)
        .and_then(Value::as_str)
        .ok_or(TokenError::Claim("tenant"))?
        .to_owned();
    let roles = match lookup(claims, &names.roles) {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or(TokenError::Claim("roles"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(Value::String(s)) => s
            .split([' ', ','])
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => return Err(TokenError::Claim("roles")),
    };
    Ok((tenant, roles))
}

/// A numeric date claim: `None` when absent (or null), an error when not a number.
fn time_claim(claims: &Value, name: &'static str) -> Result<Option<i64>, TokenError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or(TokenError::Claim(name)),
    }
}

/// Follows a dotted path (`realm_access.roles`) into the claims.
fn lookup<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(claims, |v, part| v.get(part))
}

/// Names jsonwebtoken's error kinds without echoing any part of the token.
trait KindName {
    fn kind_name(&self) -> String;
}

impl KindName for jsonwebtoken::errors::Error {
    fn kind_name(&self) -> String {
        use jsonwebtoken::errors::ErrorKind as K;
        match self.kind() {
            K::InvalidSignature => "invalid signature".into(),
            K::InvalidIssuer => "wrong issuer".into(),
            K::InvalidAudience => "wrong audience".into(),
            K::MissingRequiredClaim(c) => format!("missing claim {c}"),
            K::InvalidAlgorithm => "algorithm mismatch".into(),
            K::InvalidToken => "malformed token".into(),
            _ => "invalid token".into(),
        }
    }
}

/// Claims of a token minted by `simvault token` (development and tests; production tokens
/// come from the company identity provider).
#[derive(Debug, serde::Serialize)]
pub struct MintClaims<'a> {
    pub iss: &'a str,
    pub aud: &'a str,
    pub sub: &'a str,
    pub tenant: &'a str,
    pub roles: Vec<&'a str>,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
}

/// Signs `claims` with the Ed25519 private key (PKCS#8 PEM) in `key_pem`.
pub fn mint_eddsa(key_pem: &[u8], claims: &MintClaims<'_>) -> anyhow::Result<String> {
    let key = jsonwebtoken::EncodingKey::from_ed_pem(key_pem)?;
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::EdDSA),
        claims,
        &key,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    struct Issuer {
        key: jsonwebtoken::EncodingKey,
        verifier: JwtVerifier,
    }

    fn issuer() -> Issuer {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let key = jsonwebtoken::EncodingKey::from_ed_pem(pair.serialize_pem().as_bytes()).unwrap();
        let verifier = JwtVerifier::from_bytes(
            pair.public_key_pem().as_bytes(),
            Algorithm::EdDSA,
            "simvault",
            "simvault",
            ClaimNames::default(),
        )
        .unwrap();
        Issuer { key, verifier }
    }

    impl Issuer {
        fn sign(&self, times: Value) -> String {
            let mut claims = serde_json::json!({
                "iss": "simvault", "aud": "simvault", "sub": "alice",
                "tenant": "acme", "roles": ["support"],
            });
            for (k, v) in times.as_object().unwrap() {
                claims[k] = v.clone();
            }
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(Algorithm::EdDSA),
                &claims,
                &self.key,
            )
            .unwrap()
        }
    }

    #[test]
    fn a_lifetime_up_to_the_default_maximum_is_accepted() {
        let i = issuer();
        let day = DEFAULT_MAX_LIFETIME_SECS;
        for times in [
            serde_json::json!({"iat": NOW, "exp": NOW + 300}),
            serde_json::json!({"iat": NOW - 10, "exp": NOW - 10 + day}),
            serde_json::json!({"nbf": NOW, "exp": NOW + day}),
        ] {
            assert!(
                i.verifier.verify(&i.sign(times.clone()), NOW).is_ok(),
                "{times}"
            );
        }
    }

    #[test]
    fn a_longer_lifetime_is_refused_measured_from_iat_else_nbf() {
        let i = issuer();
        let day = DEFAULT_MAX_LIFETIME_SECS;
        for times in [
            serde_json::json!({"iat": NOW, "exp": NOW + day + 1}),
            serde_json::json!({"iat": NOW, "exp": NOW + 365 * day}),
            serde_json::json!({"nbf": NOW, "exp": NOW + day + 1}),
            // `iat` wins over a later `nbf`: the token existed from its issue.
            serde_json::json!({"iat": NOW - day, "nbf": NOW, "exp": NOW + 60}),
        ] {
            assert_eq!(
                i.verifier.verify(&i.sign(times.clone()), NOW),
                Err(TokenError::TooLong),
                "{times}"
            );
        }
    }

    #[test]
    fn times_at_the_ends_of_the_range_are_refused_without_overflow() {
        let i = issuer();
        for (times, want) in [
            (
                serde_json::json!({"iat": NOW, "exp": i64::MAX}),
                TokenError::TooLong,
            ),
            (
                serde_json::json!({"nbf": NOW, "exp": i64::MAX - 1}),
                TokenError::TooLong,
            ),
            (
                serde_json::json!({"iat": i64::MIN, "exp": NOW + 60}),
                TokenError::TooLong,
            ),
        ] {
            assert_eq!(
                i.verifier.verify(&i.sign(times.clone()), NOW),
                Err(want),
                "{times}"
            );
        }
        // A negative `exp` is refused by the token library's own claim parsing.
        let past = i.sign(serde_json::json!({"iat": NOW, "exp": i64::MIN}));
        assert!(i.verifier.verify(&past, NOW).is_err());
    }

    #[test]
    fn a_token_without_iat_or_nbf_is_refused() {
        let i = issuer();
        let token = i.sign(serde_json::json!({"exp": NOW + 60}));
        assert_eq!(i.verifier.verify(&token, NOW), Err(TokenError::TooLong));
        let token = i.sign(serde_json::json!({"iat": "yesterday", "exp": NOW + 60}));
        assert_eq!(
            i.verifier.verify(&token, NOW),
            Err(TokenError::Claim("iat"))
        );
    }

    #[test]
    fn the_maximum_is_configurable() {
        let Issuer { key, verifier } = issuer();
        let i = Issuer {
            key,
            verifier: verifier.with_max_lifetime(std::time::Duration::from_secs(600)),
        };
        let ok = i.sign(serde_json::json!({"iat": NOW, "exp": NOW + 600}));
        assert!(i.verifier.verify(&ok, NOW).is_ok());
        let long = i.sign(serde_json::json!({"iat": NOW, "exp": NOW + 601}));
        assert_eq!(i.verifier.verify(&long, NOW), Err(TokenError::TooLong));
        // Still valid in time, still refused: the lifetime is what it was issued for.
        assert_eq!(
            i.verifier.verify(&long, NOW + 590),
            Err(TokenError::TooLong)
        );
    }
}
