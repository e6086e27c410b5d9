//! `/openapi.json` is the API's contract: every operation documents the errors it can answer,
//! with the content type it answers them in, every `$ref` resolves, and what the server
//! actually answers is documented for the operation that answered it.

use reqwest::Method;
use serde_json::Value;
use simvault::domain::Role;

use crate::helpers::{Answer, Api, Store, TestApp, both_stores, sim_body};

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch"];

/// Every operation of the document: (method, path, operation).
fn operations(doc: &Value) -> Vec<(&str, &str, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if let Some(op) = item.get(*m) {
                out.push((*m, path.as_str(), op));
            }
        }
    }
    out
}

fn secured(doc: &Value, op: &Value) -> bool {
    let reqs = op.get("security").unwrap_or(&doc["security"]);
    match reqs.as_array() {
        None => false,
        Some(reqs) => {
            !reqs.is_empty()
                && !reqs
                    .iter()
                    .any(|r| r.as_object().is_some_and(|o| o.is_empty()))
        }
    }
}

fn json_body(op: &Value) -> bool {
    op["requestBody"]["content"]
        .as_object()
        .is_some_and(|c| c.keys().any(|k| k.contains("json")))
}

/// The error content type of `path`: the carrier profile's own JSON, or problem documents.
fn error_type(path: &str) -> &'static str {
    if path.starts_with("/v2/") {
        "application/json"
    } else {
        "application/problem+json"
    }
}

fn collect_refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// What is wrong with `doc` as a contract, one line per problem.
fn contract_problems(doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for (method, path, op) in operations(doc) {
        let name = format!("{} {path}", method.to_uppercase());
        let responses = op["responses"].as_object().expect("responses");
        let errors: Vec<(&String, &Value)> = responses
            .iter()
            .filter(|(s, _)| s.parse::<u16>().is_ok_and(|s| s >= 400))
            .collect();
        let secured = secured(doc, op);
        if secured {
            if errors.is_empty() {
                problems.push(format!("{name}: no documented error status"));
            }
            for status in ["401", "403", "429", "500", "503"] {
                if !responses.contains_key(status) {
                    problems.push(format!("{name}: authenticated but no {status}"));
                }
            }
        }
        if json_body(op) {
            for status in ["400", "413", "415"] {
                if !responses.contains_key(status) {
                    problems.push(format!("{name}: reads a JSON body but no {status}"));
                }
            }
        }
        for (status, response) in errors {
            let content = response["content"].as_object();
            let declared: Vec<&String> = content.map(|c| c.keys().collect()).unwrap_or_default();
            if secured && !declared.iter().any(|k| *k == error_type(path)) {
                problems.push(format!(
                    "{name}: {status} declared as {declared:?}, answered as {}",
                    error_type(path)
                ));
            }
        }
    }
    let mut refs = Vec::new();
    collect_refs(doc, &mut refs);
    for r in refs {
        let pointer = r.strip_prefix('#').unwrap_or(r);
        if doc.pointer(pointer).is_none() {
            problems.push(format!("dangling $ref {r}"));
        }
    }
    problems
}

/// The response of `method path` for `status` in `doc`, if it documents `content_type`.
fn documents(doc: &Value, method: &str, path: &str, status: u16, content_type: &str) -> bool {
    let base = content_type.split(';').next().unwrap_or("").trim();
    doc["paths"][path][method]["responses"][status.to_string()]["content"]
        .as_object()
        .is_some_and(|c| c.contains_key(base))
}

async fn document_is_a_contract(store: Store) {
    let app = TestApp::spawn(store).await;
    let anon = Api {
        app_base: app.base.clone(),
        client: app.anonymous(),
        token: None,
    };
    let doc = anon.get("/openapi.json").await;
    assert_eq!(doc.status, 200);
    let doc = doc.body;
    let problems = contract_problems(&doc);
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // Security per operation: open operations say so, auth-vectors is mTLS only.
    for path in ["/healthz", "/readyz", "/openapi.json"] {
        assert_eq!(
            doc["paths"][path]["get"]["security"],
            serde_json::json!([{}]),
            "{path}"
        );
    }
    assert_eq!(
        doc["paths"]["/v1/sims/{sim}/auth-vectors"]["post"]["security"],
        serde_json::json!([{"mtls": []}])
    );
    // Request bodies carry the validation's rules.
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["StateBody"]["required"],
        serde_json::json!(["state"])
    );
    assert_eq!(
        schemas["CreateSimBody"]["properties"]["iccid"]["pattern"],
        "^89[0-9]{16,20}$"
    );
    let reset = &schemas["ResetPinBody"];
    assert_eq!(reset["properties"]["new_pin"]["pattern"], "^[0-9]{4,8}$");
    let pin_types = doc.pointer("/components/schemas/PinTypeDoc/enum").cloned();
    assert_eq!(pin_types, Some(serde_json::json!(["pin1", "pin2"])));

    // The checker itself finds what it is for.
    let mut broken = doc.clone();
    broken["paths"]["/v1/sims"]["post"]["responses"]
        .as_object_mut()
        .unwrap()
        .remove("413");
    broken["paths"]["/v1/sims"]["get"]["responses"]["401"]["content"] =
        serde_json::json!({"application/json": {}});
    broken["paths"]["/v1/plans"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] =
        serde_json::json!({"$ref": "#/components/schemas/Nothing"});
    let found = contract_problems(&broken);
    assert_eq!(found.len(), 3, "{found:?}");
}
both_stores!(document, document_is_a_contract);

/// Errors provoked from a handful of operations are answered with a status and content type
/// that the document declares for that operation.
async fn answered_errors_are_documented(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let anon = Api {
        app_base: app.base.clone(),
        client: app.anonymous(),
        token: None,
    };
    let doc = anon.get("/openapi.json").await.body;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let op = app.jwt_client("acme", &[Role::Operator]);
    let sim = prov.create_sim(sim_body(1)).await;
    let id = sim["id"].as_str().unwrap();
    let missing = uuid::Uuid::new_v4();
    let support = app.jwt_client("acme", &[Role::Support]);
    let no_pin = serde_json::json!({"pin_type": "pin1", "current_pin": "1234", "new_pin": "4321"});

    let huge = "x".repeat(1024 * 1024 + 10);
    let cases: Vec<(&str, &str, u16, Answer)> = vec![
        ("get", "/v1/sims", 401, anon.get("/v1/sims").await),
        ("get", "/v2/sim_cards", 401, anon.get("/v2/sim_cards").await),
        (
            "get",
            "/v1/sims/{sim}",
            404,
            op.get(&format!("/v1/sims/{missing}")).await,
        ),
        (
            "patch",
            "/v1/sims/{sim}/state",
            400,
            op.patch(&format!("/v1/sims/{id}/state"), &serde_json::json!({}))
                .await,
        ),
        (
            "post",
            "/v1/sims",
            413,
            Api::send(
                prov.request(Method::POST, "/v1/sims")
                    .header("content-type", "application/json")
                    .body(format!("{{\"iccid\": \"{huge}\"}}")),
            )
            .await,
        ),
        (
            "post",
            "/v1/sims",
            415,
            Api::send(
                prov.request(Method::POST, "/v1/sims")
                    .header("content-type", "text/plain")
                    .body("{}"),
            )
            .await,
        ),
        // A SIM created without secrets has no PIN to check against (found by the scanner:
        // the document did not declare this 409).
        (
            "post",
            "/v1/sims/{sim}/reset-pin",
            409,
            support
                .post(&format!("/v1/sims/{id}/reset-pin"), &no_pin)
                .await,
        ),
        (
            "get",
            "/v1/sims/{sim}/secrets",
            403,
            op.get(&format!("/v1/sims/{id}/secrets?fields=ki")).await,
        ),
    ];
    for (method, path, status, answer) in cases {
        assert_eq!(answer.status, status, "{method} {path}: {:?}", answer.body);
        assert!(
            documents(&doc, method, path, answer.status, answer.content_type()),
            "{method} {path} answered {} as {} which the document does not declare",
            answer.status,
            answer.content_type()
        );
    }
}
both_stores!(answers, answered_errors_are_documented);

/// Every operation the document says needs a credential answers `401` to a request with
/// none (neither a client certificate nor a token): what the scanner's "accepts requests
/// without authentication" check cannot test, since it cannot take the TLS client
/// certificate away.
async fn secured_operations_refuse_strangers(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let anon = Api {
        app_base: app.base.clone(),
        client: app.anonymous(),
        token: None,
    };
    let doc = anon.get("/openapi.json").await.body;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let sim = prov.create_sim(sim_body(1)).await;
    let iccid = sim["iccid"].as_str().unwrap();
    let id = sim["id"].as_str().unwrap();
    let mut checked = 0;
    let mut open = Vec::new();
    for (method, path, op) in operations(&doc) {
        if !secured(&doc, op) {
            open.push(format!("{method} {path}"));
            continue;
        }
        let concrete = path
            .replace("{iccid}", iccid)
            .replace("{sim}", id)
            .replace("{sim_id}", id)
            .replace("{id}", id)
            .replace("{task_id}", id);
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let mut rb = anon.request(method.clone(), &concrete);
        if json_body(op) {
            rb = rb.json(&serde_json::json!({}));
        }
        let answer = Api::send(rb).await;
        assert_eq!(answer.status, 401, "{method} {path}: {:?}", answer.body);
        assert_eq!(answer.content_type(), error_type(path), "{method} {path}");
        checked += 1;
    }
    assert!(checked > 60, "{checked}");
    open.sort();
    assert_eq!(open, ["get /healthz", "get /openapi.json", "get /readyz"]);
}
both_stores!(strangers, secured_operations_refuse_strangers);

/// The audit filters' limit is 256 characters, as documented (`maxLength`), not 256 bytes:
/// found by the scanner, which sent a schema-valid filter of multi-byte characters.
async fn audit_filters_count_characters(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let auditor = app.jwt_client("acme", &[Role::Auditor]);
    let events = |action: String| {
        Api::send(
            auditor
                .request(Method::GET, "/v1/audit/events")
                .query(&[("action", action)]),
        )
    };
    let answer = events("é".repeat(256)).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let answer = events("é".repeat(257)).await;
    assert_eq!(answer.status, 400, "{:?}", answer.body);
    assert_eq!(answer.body["errors"][0]["parameter"], "action");
}
both_stores!(audit_filters, audit_filters_count_characters);
