//! `/v1/admin/keys` and `/v1/tasks`: key rotation and background task progress.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::Caller;
use crate::domain::{KeyVersion, Task, format_timestamp};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/keys", get(key_status))
        .route("/v1/admin/keys/rotate", post(rotate))
        .route("/v1/tasks/{id}", get(get_task))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskView {
    pub id: uuid::Uuid,
    #[serde(rename = "type")]
    #[schema(example = "key_rotation")]
    pub kind: String,
    /// pending, running, completed, failed or cancelled.
    pub status: String,
    pub total_items: i64,
    pub completed_items: i64,
    pub failed_items: i64,
    /// Items still pending when the task was cancelled (never done).
    pub cancelled_items: i64,
    /// total − completed − failed − cancelled.
    pub pending_items: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Task> for TaskView {
    fn from(t: Task) -> Self {
        TaskView {
            pending_items: t.pending_items(),
            id: t.id.into(),
            kind: t.kind.as_str().to_owned(),
            status: t.status.as_str().to_owned(),
            total_items: t.total_items,
            completed_items: t.completed_items,
            failed_items: t.failed_items,
            cancelled_items: t.cancelled_items,
            created_at: format_timestamp(t.created_at),
            updated_at: format_timestamp(t.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyVersionView {
    pub version: i64,
    /// active, retiring (being replaced) or retired (nothing uses it).
    pub state: String,
    /// Data keys ever wrapped under this version.
    pub wrapped_deks: i64,
    /// Data keys wrapped under it now.
    pub deks_in_use: i64,
    pub created_at: String,
    pub retired_at: Option<String>,
}

impl From<KeyVersion> for KeyVersionView {
    fn from(k: KeyVersion) -> Self {
        KeyVersionView {
            version: k.version,
            state: k.state.as_str().to_owned(),
            wrapped_deks: k.wrapped_deks,
            deks_in_use: k.deks_in_use,
            created_at: format_timestamp(k.created_at),
            retired_at: k.retired_at.map(format_timestamp),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyStatusView {
    pub versions: Vec<KeyVersionView>,
    /// The active version has wrapped enough keys that it should be rotated.
    pub rotation_due: bool,
}

/// Tenant key versions and re-wrap progress (admin).
#[utoipa::path(get, path = "/v1/admin/keys", tag = "keys",
    responses((status = 200, description = "Key versions", body = KeyStatusView)))]
async fn key_status(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> ApiResult<axum::Json<KeyStatusView>> {
    let status = state.services.admin().key_status(&principal).await?;
    Ok(axum::Json(KeyStatusView {
        versions: status
            .versions
            .into_iter()
            .map(KeyVersionView::from)
            .collect(),
        rotation_due: status.rotation_due,
    }))
}

/// Start a tenant key rotation: a new key version, and a background task re-wrapping every
/// SIM key under it (admin).
#[utoipa::path(post, path = "/v1/admin/keys/rotate", tag = "keys",
    responses(
        (status = 202, description = "Rotation queued", body = TaskView),
        (status = 403, description = "Not allowed", body = super::openapi::Problem),
    ))]
async fn rotate(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> ApiResult<impl IntoResponse> {
    let task = state.services.tasks().rotate_tenant_key(&principal).await?;
    let location = format!("/v1/tasks/{}", task.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        axum::Json(TaskView::from(task)),
    ))
}

/// A background task's progress.
#[utoipa::path(get, path = "/v1/tasks/{id}", tag = "tasks",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "The task", body = TaskView),
        (status = 404, description = "No such task in your tenant", body = super::openapi::Problem),
    ))]
pub(crate) async fn get_task(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<TaskView>> {
    let id = crate::domain::TaskId::parse(&id).map_err(|_| ApiError::NotFound)?;
    Ok(axum::Json(
        state
            .services
            .tasks()
            .get_task(&principal, id)
            .await?
            .into(),
    ))
}
