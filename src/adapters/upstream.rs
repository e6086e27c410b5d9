//! The carrier's connectivity platform (CMP), the source of truth for attach state and usage.
//! A [`Connector`] fetches what upstream knows of one SIM; [`HttpConnector`] is the generic
//! HTTP one of the API contract: `GET {url}/sims/{iccid}` with an optional bearer token,
//! `200` with the fields, `404` for "no data".
//!
//! Must never: follow a redirect, use a proxy named by the environment (the bearer token and
//! the mTLS identity go to the configured host and nowhere else), or buffer an answer larger
//! than [`MAX_ANSWER_BYTES`].

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::domain::usage::DataAmount;
use crate::domain::{Imei, Msisdn, Sim};

/// A field as upstream sent it: missing (leave ours), null (clear ours), or a value.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Update<T> {
    #[default]
    Keep,
    Clear,
    Set(T),
}

impl<T: Clone> Update<T> {
    fn apply(&self, slot: &mut Option<T>) {
        match self {
            Update::Keep => {}
            Update::Clear => *slot = None,
            Update::Set(v) => *slot = Some(v.clone()),
        }
    }
}

/// What upstream knows of one SIM, validated.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UpstreamSim {
    pub is_attached: Option<bool>,
    pub imei: Update<Imei>,
    pub msisdn: Update<Msisdn>,
    pub carrier_status: Update<String>,
    pub esim_profile_state: Update<String>,
    pub consumed_data: Update<DataAmount>,
    pub data_limit: Update<DataAmount>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream did not answer in time")]
    Timeout,
    /// Unreachable, an error status, or an answer that is not what the contract says.
    #[error("upstream failed: {0}")]
    Failed(String),
}

fn field<T>(
    body: &serde_json::Map<String, Value>,
    name: &str,
    parse: impl FnOnce(&Value) -> Result<T, String>,
) -> Result<Update<T>, UpstreamError> {
    match body.get(name) {
        None => Ok(Update::Keep),
        Some(Value::Null) => Ok(Update::Clear),
        Some(v) => parse(v)
            .map(Update::Set)
            .map_err(|e| UpstreamError::Failed(format!("field {name}: {e}"))),
    }
}

fn text(max: usize) -> impl FnOnce(&Value) -> Result<String, String> {
    move |v| match v.as_str() {
        Some(s) if s.chars().count() <= max && !s.chars().any(char::is_control) => Ok(s.to_owned()),
        _ => Err(format!("must be a string of at most {max} characters")),
    }
}

impl UpstreamSim {
    /// Validates an upstream answer: every field as strictly as our own input.
    pub fn parse(body: &Value) -> Result<Self, UpstreamError> {
        let Value::Object(body) = body else {
            return Err(UpstreamError::Failed(
                "the answer is not a JSON object".into(),
            ));
        };
        let is_attached = match body.get("is_attached") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                return Err(UpstreamError::Failed(
                    "field is_attached: must be a boolean".into(),
                ));
            }
        };
        let string = |v: &Value| {
            v.as_str()
                .map(str::to_owned)
                .ok_or("must be a string".to_owned())
        };
        Ok(UpstreamSim {
            is_attached,
            imei: field(body, "imei", |v| {
                Imei::parse(&string(v)?).map_err(|e| e.to_string())
            })?,
            msisdn: field(body, "msisdn", |v| {
                Msisdn::parse(&string(v)?).map_err(|e| e.to_string())
            })?,
            carrier_status: field(body, "carrier_status", text(30))?,
            esim_profile_state: field(body, "esim_profile_state", text(30))?,
            consumed_data: field(body, "consumed_data", |v| {
                DataAmount::parse(v).map_err(str::to_owned)
            })?,
            data_limit: field(body, "data_limit", |v| {
                DataAmount::parse(v).map_err(str::to_owned)
            })?,
        })
    }

    /// Writes what upstream said onto our SIM.
    pub fn apply(&self, sim: &mut Sim) {
        if let Some(a) = self.is_attached {
            sim.is_attached = a;
        }
        self.imei.apply(&mut sim.imei);
        if let Update::Set(imei) = &self.imei
            && sim.first_imei.is_none()
        {
            sim.first_imei = Some(imei.clone());
        }
        self.msisdn.apply(&mut sim.msisdn);
        self.carrier_status.apply(&mut sim.carrier_status);
        self.esim_profile_state.apply(&mut sim.esim_profile_state);
        self.consumed_data.apply(&mut sim.consumed_data);
        self.data_limit.apply(&mut sim.data_limit);
    }
}

pub type Fetch<'a> =
    Pin<Box<dyn Future<Output = Result<Option<UpstreamSim>, UpstreamError>> + Send + 'a>>;

/// A carrier system. `Ok(None)`: it has no data for this SIM.
pub trait Connector: Send + Sync + std::fmt::Debug {
    fn fetch<'a>(&'a self, iccid: &'a str) -> Fetch<'a>;
}

/// How to reach the generic HTTP upstream.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub url: String,
    pub token: Option<SecretString>,
    pub timeout: Duration,
    /// A client certificate and key (one PEM file each) for upstreams that want mTLS.
    pub client_identity: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Extra CA certificate (PEM) to trust for the upstream's server certificate.
    pub ca: Option<std::path::PathBuf>,
}

/// Largest upstream answer read. One SIM's answer is a few hundred bytes; a megabyte leaves
/// room for vendor extras while a broken or hostile upstream cannot make each of the sync
/// worker's concurrent requests hold an unbounded buffer.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// The generic HTTP connector.
#[derive(Debug)]
pub struct HttpConnector {
    client: reqwest::Client,
    base: String,
    token: Option<SecretString>,
}

impl HttpConnector {
    pub fn new(settings: &HttpSettings) -> anyhow::Result<Self> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy();
        if let Some((cert, key)) = &settings.client_identity {
            let mut pem = std::fs::read(cert)?;
            pem.extend(std::fs::read(key)?);
            builder = builder.identity(reqwest::Identity::from_pem(&pem)?);
        }
        if let Some(ca) = &settings.ca {
            builder =
                builder.add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(ca)?)?);
        }
        Ok(Self {
            client: builder.build()?,
            base: settings.url.trim_end_matches('/').to_owned(),
            token: settings.token.clone(),
        })
    }

    async fn get(&self, iccid: &str) -> Result<Option<UpstreamSim>, UpstreamError> {
        let mut req = self.client.get(format!("{}/sims/{iccid}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t.expose_secret());
        }
        let failed = |e: reqwest::Error| {
            if e.is_timeout() {
                UpstreamError::Timeout
            } else {
                // Without the URL: it may carry credentials.
                UpstreamError::Failed(e.without_url().to_string())
            }
        };
        let mut res = req.send().await.map_err(failed)?;
        match res.status() {
            reqwest::StatusCode::NOT_FOUND => return Ok(None),
            s if !s.is_success() => return Err(UpstreamError::Failed(format!("status {s}"))),
            _ => {}
        }
        let too_big = || {
            UpstreamError::Failed(format!(
                "the answer is larger than {MAX_ANSWER_BYTES} bytes"
            ))
        };
        if res
            .content_length()
            .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
        {
            return Err(too_big());
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        let value: Value = serde_json::from_slice(&body)
            .map_err(|_| UpstreamError::Failed("the answer is not JSON".into()))?;
        UpstreamSim::parse(&value).map(Some)
    }
}

impl Connector for HttpConnector {
    fn fetch<'a>(&'a self, iccid: &'a str) -> Fetch<'a> {
        Box::pin(self.get(iccid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_keeps_null_clears_and_bad_values_are_refused() {
        let u = UpstreamSim::parse(&json!({
            "is_attached": true, "msisdn": null, "carrier_status": "ACTIVE",
            "consumed_data": {"amount": 2, "unit": "GB"}
        }))
        .unwrap();
        assert_eq!(u.is_attached, Some(true));
        assert_eq!(u.msisdn, Update::Clear);
        assert_eq!(u.imei, Update::Keep);
        assert_eq!(u.carrier_status, Update::Set("ACTIVE".into()));
        for bad in [
            json!([1]),
            json!({"is_attached": "yes"}),
            json!({"imei": "123"}),
            json!({"msisdn": 447700900123_u64}),
            json!({"carrier_status": "x".repeat(31)}),
            json!({"data_limit": {"amount": 1, "unit": "TB"}}),
        ] {
            assert!(UpstreamSim::parse(&bad).is_err(), "{bad}");
        }
    }
}
