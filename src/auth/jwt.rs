//! Bearer JWT verification: one configured asymmetric algorithm, keys from a PEM file or a
//! JWKS file (chosen by `kid`), and `exp`, `nbf`, `iss`, `aud` checked against an injected clock.
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
    #[error("claim {0} missing or malformed")]
    Claim(&'static str),
}

pub struct JwtVerifier {
    algorithm: Algorithm,
    keys: Keys,
    validation: Validation,
    claims: ClaimNames,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithm", &self.algorithm)
            .field("claims", &self.claims)
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
        })
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
        if now >= exp + MAX_LEEWAY_SECS {
            return Err(TokenError::Expired);
        }
        match &claims.get("nbf") {
            None | Some(Value::Null) => {}
            Some(v) => {
                let nbf = v.as_i64().ok_or(TokenError::Claim("nbf"))?;
                if now + MAX_LEEWAY_SECS < nbf {
                    return Err(TokenError::NotYetValid);
                }
            }
        }
        let subject = claims["sub"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or(TokenError::Claim("sub"))?
            .to_owned();
        let tenant = lookup(&claims, &self.claims.tenant)
            .and_then(Value::as_str)
            .ok_or(TokenError::Claim("tenant"))?
            .to_owned();
        let roles = match lookup(&claims, &self.claims.roles) {
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
        let token_id = claims.get("jti").and_then(Value::as_str).map(str::to_owned);
        Ok(VerifiedToken {
            subject,
            tenant,
            roles,
            token_id,
        })
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
