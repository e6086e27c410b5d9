//! The task list (`GET /v1/tasks`) and cancelling a task (`POST /v1/tasks/{id}/cancel`).

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};

use super::AppState;
use super::admin::TaskView;
use super::error::{ApiError, ApiResult};
use super::extract::{Caller, QueryPairs};
use crate::domain::ValidationErrors;
use crate::domain::task::{TaskKind, TaskStatus};
use crate::service::tasks::TaskFilter;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tasks", get(list_tasks))
        .route("/v1/tasks/{id}/cancel", post(cancel_task))
}

/// The names of `all`, for a problem's detail.
fn one_of<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> String {
    let names: Vec<&str> = all.iter().map(|v| name(*v)).collect();
    format!("must be one of {}", names.join(", "))
}

/// Your tenant's background tasks, newest first.
#[utoipa::path(get, path = "/v1/tasks", tag = "tasks",
    params(
        ("type" = Option<String>, Query, pattern = r"^(import|provision_links|key_rotation|bulk_state|bulk_patch)$", description = "import, provision_links, key_rotation, bulk_state or bulk_patch"),
        ("status" = Option<String>, Query, pattern = r"^(pending|running|completed|failed|cancelled)$", description = "pending, running, completed, failed or cancelled"),
        ("page" = Option<u32>, Query, minimum = 1, maximum = 1000000, description = "1-based page (at most 1,000,000), default 1"),
        ("page_size" = Option<u32>, Query, minimum = 1, maximum = 250, description = "1–250, default 20"),
    ),
    responses(
        (status = 200, description = "One page of tasks", body = super::PageView<TaskView>),
        (status = 400, description = "An unknown parameter or a bad value", body = super::openapi::Problem),
        (status = 403, description = "Not allowed", body = super::openapi::Problem),
    ))]
async fn list_tasks(
    State(state): State<AppState>,
    Caller(principal): Caller,
    q: QueryPairs,
) -> ApiResult<axum::Json<super::PageView<TaskView>>> {
    let mut errs = ValidationErrors::new();
    q.reject_unknown(&["type", "status", "page", "page_size"], &mut errs);
    let (page, page_size) = q.paging(20, 250, &mut errs);
    let kind = q
        .one("type", &mut errs)
        .and_then(|s| match TaskKind::parse(s) {
            Ok(kind) => Some(kind),
            Err(_) => {
                errs.parameter("type", one_of(TaskKind::ALL, TaskKind::as_str));
                None
            }
        });
    let status = q
        .one("status", &mut errs)
        .and_then(|s| match TaskStatus::parse(s) {
            Ok(status) => Some(status),
            Err(_) => {
                errs.parameter("status", one_of(TaskStatus::ALL, TaskStatus::as_str));
                None
            }
        });
    errs.finish(())?;
    let page = state
        .services
        .tasks()
        .list_tasks(&principal, TaskFilter { kind, status }, page, page_size)
        .await?;
    Ok(axum::Json(super::PageView::of(page)))
}

/// Cancel a task (operator, admin): its pending items are cancelled and never done, items
/// already done stay done. A task that has ended is answered unchanged. A key rotation cannot
/// be cancelled (`409`).
#[utoipa::path(post, path = "/v1/tasks/{id}/cancel", tag = "tasks",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "The task, cancelled (or as it ended)", body = TaskView),
        (status = 403, description = "Not allowed", body = super::openapi::Problem),
        (status = 404, description = "No such task in your tenant", body = super::openapi::Problem),
        (status = 409, description = "A key rotation, which runs to its end", body = super::openapi::Problem),
    ))]
async fn cancel_task(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<TaskView>> {
    let id = crate::domain::TaskId::parse(&id).map_err(|_| ApiError::NotFound)?;
    let task = state.services.tasks().cancel_task(&principal, id).await?;
    Ok(axum::Json(task.into()))
}
