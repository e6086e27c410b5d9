//! The webhook sender: an HTTP client whose resolver drops every address the target rule
//! forbids, and the signed `POST` of one attempt.
//!
//! Must never: connect to an address the target rule forbids, follow a redirect, use a proxy
//! named by the environment, or put a URL query, a body or a secret in an error text.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::domain::webhook_target::address_allowed;

/// The value of the `Simvault-Signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of
/// "<t>.<body>" under the secret>`.
pub fn signature(secret: &[u8], unix_seconds: i64, body: &str) -> String {
    // HMAC accepts keys of any length: this cannot fail.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!(
        "t={unix_seconds},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// One attempt of a delivery, ready to sign and send.
#[derive(Debug)]
pub struct Attempt<'a> {
    /// The target, already checked against the target rule.
    pub url: url::Url,
    pub event_id: &'a str,
    /// 1 for the first attempt.
    pub number: i64,
    /// Signed together with the body.
    pub unix_seconds: i64,
    pub body: String,
}

/// Sends webhook attempts: the address-checking resolver, no redirects (a redirect could point
/// anywhere), no proxy from the environment, a timeout per attempt.
#[derive(Debug, Clone)]
pub struct WebhookSender {
    client: reqwest::Client,
}

impl WebhookSender {
    /// `allow_insecure` lets loopback and private targets through (tests, labs).
    pub fn new(allow_insecure: bool, timeout: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(SafeResolver { allow_insecure }))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .user_agent(concat!("simvault-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client })
    }

    /// One HTTP attempt signed with `secret`: the status code, or why there was none. Error
    /// texts name no secret.
    pub async fn send(&self, secret: &[u8], attempt: Attempt<'_>) -> Result<i64, String> {
        let response = self
            .client
            .post(attempt.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                "Simvault-Signature",
                signature(secret, attempt.unix_seconds, &attempt.body),
            )
            .header("Simvault-Event-Id", attempt.event_id)
            .header("Simvault-Delivery-Attempt", attempt.number.to_string())
            .body(attempt.body)
            .send()
            .await
            .map_err(describe_send_error)?;
        Ok(i64::from(response.status().as_u16()))
    }
}

/// A transport failure, in words that carry no URL query or body.
fn describe_send_error(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer within the timeout".into()
    } else if e.is_connect() {
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&e);
        while let Some(s) = source {
            if s.to_string().contains("not allowed") {
                return "target refused: the host resolves only to private, loopback or reserved addresses".into();
            }
            source = s.source();
        }
        "could not connect".into()
    } else {
        "the request failed".into()
    }
}

/// Resolves webhook hosts and drops every address the target rule forbids, so a name that
/// resolves (or is re-pointed) to a private or loopback address is never connected to. The
/// connection uses exactly the addresses returned here.
#[derive(Debug, Clone, Copy)]
pub struct SafeResolver {
    pub allow_insecure: bool,
}

impl reqwest::dns::Resolve for SafeResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_insecure = self.allow_insecure;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| address_allowed(a.ip(), allow_insecure))
                .collect();
            if allowed.is_empty() {
                return Err("the host's addresses are not allowed as webhook targets".into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::dns::Resolve;

    #[test]
    fn signature_is_hmac_sha256_of_time_and_body() {
        // HMAC-SHA256(key "key", message "1700000000.{}"), computed with Python's hmac module.
        assert_eq!(
            signature(b"key", 1_700_000_000, "{}"),
            "t=1700000000,v1=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
    }

    #[tokio::test]
    async fn resolver_drops_loopback_unless_insecure_is_allowed() {
        let strict = SafeResolver {
            allow_insecure: false,
        };
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        assert!(strict.resolve(name).await.is_err());
        let lab = SafeResolver {
            allow_insecure: true,
        };
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let addrs: Vec<SocketAddr> = lab.resolve(name).await.unwrap().collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }
}
