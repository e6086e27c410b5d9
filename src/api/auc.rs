//! `POST /v1/sims/{sim}/auth-vectors` (the `auc` role over mTLS): Milenage authentication
//! vectors; Ki and OPc never leave the vault.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, Caller, present};
use super::sims::SimRef;
use crate::domain::ValidationErrors;
use crate::service::auc::Resync;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/sims/{sim}/auth-vectors", post(auth_vectors))
}

/// The request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthVectorsBody {
    /// 1–32 (default 1).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, example = 4)]
    pub count: Option<Value>,
    /// After a synchronisation failure: `{rand, auts}` (32 and 28 hex digits).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub resync: Option<Value>,
    /// 5G: the serving network name (XRES*, KAUSF). Not available yet.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub serving_network_name: Option<Value>,
    /// 4G: the PLMN id (KASME). Not available yet.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub plmn_id: Option<Value>,
}

#[derive(Serialize, ToSchema)]
pub struct VectorView {
    pub rand: String,
    pub autn: String,
    pub xres: String,
    pub ck: String,
    pub ik: String,
    pub kc: String,
    pub sres: String,
}

#[derive(Serialize, ToSchema)]
pub struct VectorsView {
    pub vectors: Vec<VectorView>,
}

fn hex_bytes<const N: usize>(v: Option<&Value>, at: &str, errs: &mut ValidationErrors) -> [u8; N] {
    let mut out = [0u8; N];
    let ok = v
        .and_then(Value::as_str)
        .is_some_and(|s| s.len() == 2 * N && hex::decode_to_slice(s, &mut out).is_ok());
    if !ok {
        errs.pointer(at, format!("must be {} hexadecimal digits", 2 * N));
    }
    out
}

/// Authentication vectors (role `auc`, mTLS only). Each RAND is fresh from a CSPRNG; each
/// vector a new SQN. `resync` verifies the card's AUTS first (`400 resync-failed` if it does
/// not verify). A blocked or retired SIM gets none (`409`). `Cache-Control: no-store`.
#[utoipa::path(post, path = "/v1/sims/{sim}/auth-vectors", tag = "auc", request_body = AuthVectorsBody,
    params(("sim" = String, Path, description = "UUID or ICCID")),
    responses(
        (status = 200, description = "The vectors", body = VectorsView),
        (status = 400, description = "Invalid input, or resync-failed", body = super::openapi::Problem),
        (status = 403, description = "Not the auc role over mTLS", body = super::openapi::Problem),
        (status = 404, description = "No such SIM in your tenant", body = super::openapi::Problem),
        (status = 409, description = "Blocked or retired SIM, or no Ki/OPc", body = super::openapi::Problem),
    ))]
async fn auth_vectors(
    State(state): State<AppState>,
    Caller(principal): Caller,
    SimRef(key): SimRef,
    ApiJson(body): ApiJson<AuthVectorsBody>,
) -> ApiResult<Response> {
    let mut errs = ValidationErrors::new();
    let count = match &body.count {
        None | Some(Value::Null) => 1,
        Some(v) => match v.as_u64().filter(|n| (1..=32).contains(n)) {
            Some(n) => usize::try_from(n).unwrap_or(1),
            None => {
                errs.pointer("/count", "count must be a whole number from 1 to 32");
                1
            }
        },
    };
    let resync = match &body.resync {
        None | Some(Value::Null) => None,
        Some(Value::Object(r)) => {
            if let Some(extra) = r.keys().find(|k| *k != "rand" && *k != "auts") {
                errs.pointer(
                    format!("/resync/{extra}"),
                    "unknown field; give rand and auts",
                );
            }
            Some(Resync {
                rand: hex_bytes::<16>(r.get("rand"), "/resync/rand", &mut errs),
                auts: hex_bytes::<14>(r.get("auts"), "/resync/auts", &mut errs),
            })
        }
        Some(_) => {
            errs.pointer("/resync", "must be an object {rand, auts}");
            None
        }
    };
    for (name, v) in [
        ("serving_network_name", &body.serving_network_name),
        ("plmn_id", &body.plmn_id),
    ] {
        if v.as_ref().is_some_and(|v| !v.is_null()) {
            errs.pointer(
                format!("/{name}"),
                "4G/5G key derivation (KASME, XRES*, KAUSF) is not available yet",
            );
        }
    }
    if !errs.is_empty() {
        return Err(ApiError::Validation(errs));
    }
    let vectors = state
        .services
        .auth_vectors(&principal, &key, count, resync)
        .await?;
    let view = VectorsView {
        vectors: vectors
            .iter()
            .map(|v| VectorView {
                rand: hex::encode(v.rand),
                autn: hex::encode(v.autn),
                xres: hex::encode(v.xres),
                ck: hex::encode(*v.ck),
                ik: hex::encode(*v.ik),
                kc: hex::encode(*v.kc),
                sres: hex::encode(v.sres),
            })
            .collect(),
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], axum::Json(view)).into_response())
}
