//! The OpenAPI document served at `/openapi.json`.

use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

mod errors;
pub use errors::PROBLEM_JSON;

/// An RFC 7807 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    #[schema(example = "https://simvault.dev/problems/validation-error")]
    pub r#type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The request path.
    pub instance: String,
    /// Quote this when reporting a problem.
    pub request_id: String,
    /// Validation errors, each with a JSON `pointer` into the body or a query `parameter`.
    #[schema(value_type = Option<Vec<Object>>)]
    pub errors: Option<Vec<serde_json::Value>>,
}

/// The format of a streamed export: JSON Lines or CSV.
#[derive(ToSchema)]
#[allow(dead_code)] // describes the `format` parameter; the handlers parse it
#[schema(rename_all = "lowercase")]
pub enum ExportFormat {
    Ndjson,
    Csv,
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme("mtls", SecurityScheme::MutualTls { description: Some("A client certificate issued by the configured client CA whose identity is registered.".into()), deprecated: None, extensions: None });
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "simvault",
        description = "Hardened SIM credential vault. Authenticate with a registered TLS client \
            certificate (mTLS) or `Authorization: Bearer <JWT>`. Errors are RFC 7807 problem \
            documents. Every response carries `X-Request-Id`."
    ),
    paths(
        super::sims::create_sim,
        super::sims::list_sims,
        super::sims::export::export_sims,
        super::sims::get_sim,
        super::sims::update_sim,
        super::sims::delete_sim,
        super::secrets::reveal,
        super::secrets::write,
        super::pins::reset_pin,
        super::auc::auth_vectors,
        super::lifecycle::change_state,
        super::lifecycle::history,
        super::lifecycle::esim_view,
        super::lifecycle::refresh,
        super::pins::unblock_pin,
        super::admin::key_status,
        super::admin::rotate,
        super::admin::get_task,
        super::audit::verify,
        super::audit::events,
        super::audit::export,
        super::plans::create_plan,
        super::plans::list_plans,
        super::plans::get_plan,
        super::groups::create_group,
        super::groups::list_groups,
        super::groups::get_group,
        super::groups::update_group,
        super::groups::delete_group,
        super::devices::create_device,
        super::devices::list_devices,
        super::devices::get_device,
        super::devices::update_device,
        super::devices::delete_device,
        super::bulk::import,
        super::bulk::provision_links,
        super::bulk::task_items,
        super::bulk::list_links,
        super::bulk::get_link,
        super::bulk_changes::bulk_state,
        super::bulk_changes::bulk_patch,
        super::tasks::list_tasks,
        super::tasks::cancel_task,
        super::webhooks::create,
        super::webhooks::list,
        super::webhooks::delete,
        super::webhooks::deliveries,
        super::ops::healthz,
        super::ops::readyz,
        super::ops::metrics,
        super::ops::openapi,
    ),
    components(schemas(Problem, ExportFormat)),
    modifiers(&Security),
    security(("mtls" = []), ("bearer" = [])),
)]
pub struct ApiDoc;

/// The whole document: the native API and every profile, each operation with every error
/// answer the layers in front of its handler can give.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    for profile in super::profiles::documents() {
        doc.merge(profile);
    }
    errors::complete(&mut doc);
    doc
}
