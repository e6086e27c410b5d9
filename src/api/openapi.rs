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

/// The schema of a change body made from `create`'s: the same members, none required, at
/// least one given (the handlers answer `400` to an empty change).
pub fn change_of(
    create: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::{RefOr, schema::Schema};
    match create {
        RefOr::T(Schema::Object(mut object)) => {
            object.required.clear();
            object.min_properties = Some(1);
            RefOr::T(Schema::Object(object))
        }
        other => other,
    }
}

/// `schema` with the members `names` required and not `null` (a body whose creation needs
/// more than its change does).
pub fn requiring(
    schema: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
    names: &[&str],
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{Schema, SchemaType, Type};
    match schema {
        RefOr::T(Schema::Object(mut object)) => {
            object.required = names.iter().map(|n| (*n).to_owned()).collect();
            for name in names {
                if let Some(RefOr::T(Schema::Object(member))) = object.properties.get_mut(*name)
                    && let SchemaType::Array(types) = &member.schema_type
                {
                    let kept: Vec<Type> = types
                        .iter()
                        .filter(|t| **t != Type::Null)
                        .cloned()
                        .collect();
                    member.schema_type = match kept.as_slice() {
                        [one] => SchemaType::Type(one.clone()),
                        _ => SchemaType::Array(kept),
                    };
                }
            }
            RefOr::T(Schema::Object(object))
        }
        other => other,
    }
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
    components(schemas(Problem, ExportFormat, crate::export::schema::SimState, crate::export::schema::SimType, crate::export::schema::Condition)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Iccid, Imsi, LuhnPolicy, Msisdn, SecretField};

    /// The pattern of `pointer` in the document, compiled.
    fn pattern(doc: &serde_json::Value, pointer: &str) -> regex::Regex {
        let p = doc
            .pointer(pointer)
            .and_then(|p| p.as_str())
            .unwrap_or_else(|| panic!("no pattern at {pointer}"));
        regex::Regex::new(p).unwrap()
    }

    /// The document's patterns accept exactly what the parsers accept (on values the
    /// patterns can decide: the check digits are the parsers' alone).
    #[test]
    fn body_patterns_agree_with_the_parsers() {
        let doc = serde_json::to_value(document()).unwrap();
        let props = "/components/schemas/SecretsDoc/properties";
        let cases: [(&str, SecretField, &[&str]); 3] = [
            (
                "pin1",
                SecretField::Pin1,
                &["1234", "12345678", "123", "123456789", "12a4", "", " 1234"],
            ),
            (
                "puk1",
                SecretField::Puk1,
                &["12345678", "1234567", "123456789", "1234567x"],
            ),
            (
                "ki",
                SecretField::Ki,
                &[
                    "000102030405060708090a0b0c0d0e0f",
                    "000102030405060708090A0B0C0D0E0F",
                    "000102030405060708090a0b0c0d0e0",
                    "g00102030405060708090a0b0c0d0e0f",
                ],
            ),
        ];
        for (field, secret, values) in cases {
            let re = pattern(&doc, &format!("{props}/{field}/pattern"));
            for v in values {
                assert_eq!(re.is_match(v), secret.parse(v).is_ok(), "{field} {v:?}");
            }
        }
        let reset = pattern(
            &doc,
            "/components/schemas/ResetPinBody/properties/new_pin/pattern",
        );
        assert!(reset.is_match("1234") && !reset.is_match("123"));

        let sim = "/components/schemas/CreateSimBody/properties";
        let iccid = pattern(&doc, &format!("{sim}/iccid/pattern"));
        for v in [
            "894450123456789012",
            "8944501234567890123456",
            "89445012345678901",
            "89445012345678901234567",
            "9944501234567890123",
            "89445012345678901a",
        ] {
            assert_eq!(
                iccid.is_match(v),
                Iccid::parse(v, LuhnPolicy::Relaxed).is_ok(),
                "iccid {v}"
            );
        }
        let imsi = pattern(&doc, &format!("{sim}/imsi/pattern"));
        for v in [
            "234150",
            "234150123456789",
            "23415",
            "2341501234567890",
            "23415x",
        ] {
            assert_eq!(imsi.is_match(v), Imsi::parse(v).is_ok(), "imsi {v}");
        }
        let msisdn = pattern(&doc, &format!("{sim}/msisdn/pattern"));
        for v in [
            "447123456789",
            "+447123456789",
            "+",
            "",
            "1234567890123456",
            "44 71",
        ] {
            assert_eq!(msisdn.is_match(v), Msisdn::parse(v).is_ok(), "msisdn {v:?}");
        }
        let name = pattern(
            &doc,
            "/components/schemas/GroupBody/properties/name/pattern",
        );
        let (long, too_long) = ("n".repeat(64), "n".repeat(65));
        for v in [
            "fleet a", " fleet", "fleet ", "", "a", "x\u{7}y", &long, &too_long,
        ] {
            let parsed = crate::domain::group::check_name(v).is_ok();
            assert_eq!(name.is_match(v), parsed, "name {v:?}");
        }
        let reason = pattern(
            &doc,
            "/components/schemas/UnblockPinBody/properties/reason/pattern",
        );
        for v in ["TICKET-4711", "a b", " a", "a ", "", "a\nb", "x"] {
            assert_eq!(
                reason.is_match(v),
                crate::domain::validation::reason(v).is_ok_and(|r| r == v),
                "reason {v:?}"
            );
        }
    }

    #[test]
    fn state_and_pin_type_are_enums_and_required() {
        let doc = serde_json::to_value(document()).unwrap();
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["StateBody"]["required"],
            serde_json::json!(["state"])
        );
        let reset = &schemas["ResetPinBody"]["required"];
        for f in ["pin_type", "current_pin", "new_pin"] {
            assert!(reset.as_array().unwrap().iter().any(|r| r == f), "{f}");
        }
        assert_eq!(schemas["GroupChange"]["minProperties"], 1);
        assert!(
            schemas["GroupChange"]
                .get("required")
                .is_none_or(|r| r.as_array().is_some_and(|r| r.is_empty()))
        );
        assert_eq!(
            schemas["GroupBody"]["required"],
            serde_json::json!(["name"])
        );
        let create = &schemas["DeviceSimCreate"];
        assert_eq!(
            create["required"],
            serde_json::json!(["device_id", "iccid"])
        );
        assert_eq!(create["properties"]["device_id"]["type"], "string");
    }
}
