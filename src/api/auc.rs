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
use crate::domain::{ValidationErrors, kdf};
use crate::service::auc::{Derive, Resync};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/sims/{sim}/auth-vectors", post(auth_vectors))
}

/// A resynchronisation (documentation; `auth_vectors` parses it).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub struct ResyncDoc {
    /// The RAND the card refused: 32 hex digits.
    #[schema(pattern = r"^[0-9a-fA-F]{32}$")]
    rand: String,
    /// The card's AUTS: 28 hex digits.
    #[schema(pattern = r"^[0-9a-fA-F]{28}$")]
    auts: String,
}

/// The request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthVectorsBody {
    /// 1–32 (default 1).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 32, example = 4)]
    pub count: Option<Value>,
    /// After a synchronisation failure: `{rand, auts}` (32 and 28 hex digits).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<ResyncDoc>)]
    pub resync: Option<Value>,
    /// 5G: the serving network name (`5G:mnc093.mcc208.3gppnetwork.org`): adds XRES* and KAUSF.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = r"^5G:[!-~]{1,252}$", example = "5G:mnc093.mcc208.3gppnetwork.org")]
    pub serving_network_name: Option<Value>,
    /// 4G: the PLMN id as MCC ‖ MNC digits (`20893`, `208034`): adds KASME.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]{5,6}$", example = "20893")]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xres_star: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kausf: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kasme: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct VectorsView {
    pub vectors: Vec<VectorView>,
}

fn hex_bytes<const N: usize>(v: Option<&Value>, at: &str, errs: &mut ValidationErrors) -> [u8; N] {
    let parsed = v
        .and_then(Value::as_str)
        .and_then(crate::domain::validation::hex_array::<N>);
    if parsed.is_none() {
        errs.pointer(at, format!("must be {} hexadecimal digits", 2 * N));
    }
    parsed.unwrap_or([0; N])
}

/// Authentication vectors (role `auc`, mTLS only). Each RAND is fresh from a CSPRNG; each
/// vector a new SQN. `resync` verifies the card's AUTS first (`400 resync-failed` if it does
/// not verify). A blocked or retired SIM gets none (`409`). `Cache-Control: no-store`.
#[utoipa::path(post, path = "/v1/sims/{sim}/auth-vectors", tag = "auc", request_body = AuthVectorsBody,
    security(("mtls" = [])),
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
    let mut derive = Derive::default();
    match &body.serving_network_name {
        None | Some(Value::Null) => {}
        Some(Value::String(n)) if kdf::valid_serving_network_name(n) => {
            derive.serving_network_name = Some(n.clone());
        }
        Some(_) => errs.pointer(
            "/serving_network_name",
            "must be a serving network name such as 5G:mnc093.mcc208.3gppnetwork.org",
        ),
    }
    match &body.plmn_id {
        None | Some(Value::Null) => {}
        Some(v) => match v.as_str().and_then(kdf::plmn_id) {
            Some(p) => derive.plmn_id = Some(p),
            None => errs.pointer(
                "/plmn_id",
                "must be MCC and MNC as 5 or 6 digits, e.g. 20893",
            ),
        },
    }
    if !errs.is_empty() {
        return Err(ApiError::Validation(errs));
    }
    let vectors = state
        .services
        .auc()
        .auth_vectors(&principal, &key, count, resync, &derive)
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
                xres_star: v.xres_star.map(hex::encode),
                kausf: v.kausf.as_ref().map(|k| hex::encode(**k)),
                kasme: v.kasme.as_ref().map(|k| hex::encode(**k)),
            })
            .collect(),
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], axum::Json(view)).into_response())
}
