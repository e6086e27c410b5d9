//! Why a sign-in failed, by category: never a code, a token, a verifier or a secret.

use openidconnect::{ClaimsVerificationError, SignatureVerificationError};

/// Why a sign-in (or discovery) failed: a category, never a code, token or secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    #[error("OIDC settings invalid: {0}")]
    Settings(&'static str),
    #[error("OIDC discovery failed: {0}")]
    Discovery(&'static str),
    #[error("returned state does not match the sign-in")]
    State,
    #[error("code exchange failed: {0}")]
    Exchange(&'static str),
    #[error("ID token refused: {0}")]
    IdToken(IdTokenProblem),
    #[error("ID token claim {0} missing or malformed")]
    Claim(&'static str),
}

/// Which check an ID token failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenProblem {
    #[error("missing from the token response")]
    Missing,
    #[error("malformed")]
    Malformed,
    #[error("algorithm not allowed")]
    Algorithm,
    #[error("no provider key for it")]
    UnknownKey,
    #[error("bad signature")]
    Signature,
    #[error("wrong issuer")]
    Issuer,
    #[error("wrong audience")]
    Audience,
    #[error("expired or issued out of range")]
    Time,
    #[error("nonce does not match the sign-in")]
    Nonce,
    #[error("other")]
    Other,
}

/// Names the failed check without echoing any part of the token.
pub(super) fn problem(e: &ClaimsVerificationError) -> IdTokenProblem {
    use ClaimsVerificationError as C;
    use SignatureVerificationError as S;
    match e {
        C::Expired(_) => IdTokenProblem::Time,
        C::InvalidAudience(_) => IdTokenProblem::Audience,
        C::InvalidIssuer(_) => IdTokenProblem::Issuer,
        C::InvalidNonce(_) => IdTokenProblem::Nonce,
        C::SignatureVerification(S::NoMatchingKey) => IdTokenProblem::UnknownKey,
        C::SignatureVerification(
            S::DisallowedAlg(_) | S::UnsupportedAlg(_) | S::NoSignature | S::InvalidKey(_),
        ) => IdTokenProblem::Algorithm,
        C::SignatureVerification(S::CryptoError(_)) => IdTokenProblem::Signature,
        _ => IdTokenProblem::Other,
    }
}
