//! The error answers every operation can give because of the layers in front of its handler,
//! added to the document in one pass so that no operation can forget them: an operation that
//! needs a credential can be refused it (`401`), denied by policy (`403`), limited (`429`), or
//! answered `503`/`500` when the audit record or the store fails; one that reads a JSON body
//! can be sent a malformed (`400`), oversized (`413`), slow (`408`) or non-JSON (`415`) one.
//!
//! Every error answer is an RFC 7807 `application/problem+json` document, except under the
//! carrier profile (`/v2`), whose errors are its own `application/json` shape.

use utoipa::openapi::header::Header;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{Content, Object, OpenApi, Ref, RefOr, Response, ResponseBuilder, Type};

/// The content type of native error answers.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// What an operation is, as far as the error answers in front of its handler go.
#[derive(Debug, Clone, Copy)]
struct Shape {
    secured: bool,
    json_body: bool,
    has_query: bool,
    has_path_params: bool,
}

/// The statuses the layers in front of a handler of `shape` can answer, with a description.
fn common_statuses(shape: Shape) -> Vec<(u16, &'static str)> {
    let mut out = Vec::new();
    if shape.json_body || shape.has_query {
        out.push((400, "Invalid input: every bad field is named (`errors`)"));
    }
    if shape.secured {
        out.push((401, "No valid credential (certificate or bearer token)"));
        out.push((403, "Your roles do not allow this"));
    }
    if shape.secured && shape.has_path_params {
        out.push((404, "No such resource in your tenant"));
    }
    if shape.json_body {
        out.push((408, "The request body stopped making progress"));
        out.push((413, "The request body is larger than the limit"));
        out.push((415, "The body is not `application/json`"));
    }
    if shape.secured {
        out.push((
            429,
            "Too many refused or rate-limited requests; see `Retry-After`",
        ));
        out.push((500, "Internal error: quote the request id"));
        out.push((
            503,
            "The audit record or the store could not be written: nothing was done",
        ));
    }
    out
}

/// Whether errors under `path` are the carrier profile's own `application/json` shape.
fn carrier_errors(path: &str) -> bool {
    crate::api::profiles::carrier::serves(path)
}

/// The error content of an answer under `path`: its content type and schema.
fn error_content(path: &str) -> (&'static str, Content) {
    if carrier_errors(path) {
        (
            "application/json",
            Content::new(Some(Ref::from_schema_name("CarrierErrors"))),
        )
    } else {
        (
            PROBLEM_JSON,
            Content::new(Some(Ref::from_schema_name("Problem"))),
        )
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
        item.head.as_mut(),
        item.options.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

fn shape_of(op: &Operation, path: &str, global_secured: bool) -> Shape {
    let open = SecurityRequirement::default();
    let secured = match &op.security {
        None => global_secured,
        Some(reqs) => !reqs.is_empty() && !reqs.contains(&open),
    };
    let params: Vec<&ParameterIn> = op
        .parameters
        .iter()
        .flatten()
        .filter_map(|p| match p {
            RefOr::T(p) => Some(&p.parameter_in),
            RefOr::Ref(_) => None,
        })
        .collect();
    let json_body = op.request_body.as_ref().is_some_and(|b| match b {
        RefOr::T(b) => b.content.keys().any(|k| k.contains("json")),
        RefOr::Ref(_) => true,
    });
    Shape {
        secured,
        json_body,
        has_query: params.iter().any(|p| matches!(p, ParameterIn::Query)),
        has_path_params: path.contains('{'),
    }
}

/// Adds the common error answers to every operation of `doc` and makes every error answer's
/// content type the one the server sends.
pub(super) fn complete(doc: &mut OpenApi) {
    let open = SecurityRequirement::default();
    let global_secured = doc
        .security
        .as_ref()
        .is_some_and(|reqs| !reqs.is_empty() && !reqs.contains(&open));
    for (path, item) in doc.paths.paths.iter_mut() {
        for op in operations(item) {
            let shape = shape_of(op, path, global_secured);
            for (status, description) in common_statuses(shape) {
                let key = status.to_string();
                op.responses
                    .responses
                    .entry(key)
                    .or_insert_with(|| RefOr::T(error_response(path, status, description)));
            }
            for (status, response) in op.responses.responses.iter_mut() {
                let is_error = status.parse::<u16>().is_ok_and(|s| s >= 400);
                if let (true, RefOr::T(response)) = (is_error, response) {
                    retype_error(path, status, response);
                }
            }
        }
    }
}

fn error_response(path: &str, status: u16, description: &str) -> Response {
    let (content_type, content) = error_content(path);
    let mut builder = ResponseBuilder::new()
        .description(description)
        .content(content_type, content);
    if status == 429 {
        builder = builder.header("Retry-After", Header::new(Object::with_type(Type::Integer)));
    }
    builder.build()
}

/// An error answer declared by a handler's annotation as `application/json` (utoipa's
/// default) is sent as a problem document: declare it so. One with no content at all gets
/// the error content of its path.
fn retype_error(path: &str, status: &str, response: &mut Response) {
    let (content_type, default) = error_content(path);
    if response.content.is_empty() {
        response
            .content
            .insert(content_type.to_owned(), RefOr::T(default));
    } else if content_type == PROBLEM_JSON
        && response
            .content
            .get("application/json")
            .is_some_and(is_problem)
        && let Some(json) = response.content.shift_remove("application/json")
    {
        response.content.insert(PROBLEM_JSON.to_owned(), json);
    }
    if status == "429" && !response.headers.contains_key("Retry-After") {
        response.headers.insert(
            "Retry-After".to_owned(),
            RefOr::T(Header::new(Object::with_type(Type::Integer))),
        );
    }
}

/// Whether `content` is a problem document (the answer of an `ApiError`).
fn is_problem(content: &RefOr<Content>) -> bool {
    matches!(content, RefOr::T(Content { schema: Some(RefOr::Ref(r)), .. })
        if r.ref_location == "#/components/schemas/Problem")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(secured: bool, json_body: bool, has_query: bool, has_path_params: bool) -> Shape {
        Shape {
            secured,
            json_body,
            has_query,
            has_path_params,
        }
    }

    fn statuses(s: Shape) -> Vec<u16> {
        common_statuses(s).into_iter().map(|(s, _)| s).collect()
    }

    #[test]
    fn an_open_operation_gets_no_authentication_errors() {
        assert!(statuses(shape(false, false, false, false)).is_empty());
    }

    #[test]
    fn an_authenticated_operation_with_a_body_gets_every_layer_error() {
        assert_eq!(
            statuses(shape(true, true, false, true)),
            vec![400, 401, 403, 404, 408, 413, 415, 429, 500, 503]
        );
        assert_eq!(
            statuses(shape(true, false, false, false)),
            vec![401, 403, 429, 500, 503]
        );
    }

    #[test]
    fn carrier_errors_keep_their_own_content_type() {
        assert_eq!(error_content("/v2/sim_cards").0, "application/json");
        assert_eq!(error_content("/v1/sims").0, PROBLEM_JSON);
        assert_eq!(error_content("/iot/v1/sims").0, PROBLEM_JSON);
    }
}
