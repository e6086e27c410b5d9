//! `/v1/audit`: verifying the tenant's audit chain (auditors).

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiResult;
use super::extract::Caller;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/audit/verify", get(verify))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyView {
    /// Whether the whole chain, and its recorded end, are intact.
    pub ok: bool,
    /// Records checked before the first break (all of them when `ok`).
    pub checked: i64,
    pub head_hash: Option<String>,
    /// The first sequence number at which the chain is broken.
    pub first_bad_seq: Option<i64>,
}

/// Check the tenant's hash chain (auditor).
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit",
    responses(
        (status = 200, description = "The verdict", body = VerifyView),
        (status = 403, description = "Not an auditor", body = super::openapi::Problem),
    ))]
async fn verify(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> ApiResult<axum::Json<VerifyView>> {
    let v = state.services.verify_audit(&principal).await?;
    Ok(axum::Json(VerifyView {
        ok: v.ok,
        checked: v.checked,
        head_hash: v.head_hash,
        first_bad_seq: v.first_bad_seq,
    }))
}
