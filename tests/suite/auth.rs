//! Authentication: mutual TLS and bearer JWTs, and what an attacker does NOT get.

use serde_json::json;
use simvault::auth::jwt::MintClaims;
use simvault::clock::{Clock, SystemClock};
use simvault::domain::Role;
use simvault::pki::{self, KeyPaths};

use crate::helpers::tenant_id;
use crate::helpers::{Api, Store, TestApp, both_stores, sim_body};

async fn seeded(store: Store) -> (TestApp, Api) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    prov.create_sim(sim_body(1)).await;
    (app, prov)
}

fn api(app: &TestApp, client: reqwest::Client, token: Option<String>) -> Api {
    Api {
        app_base: app.base.clone(),
        client,
        token,
    }
}

async fn no_credential_is_401(store: Store) {
    let (app, _) = seeded(store).await;
    let a = api(&app, app.anonymous(), None).get("/v1/sims").await;
    assert_eq!(a.status, 401);
    assert_eq!(a.body["type"], "https://simvault.dev/problems/unauthorized");
    assert_eq!(a.headers["www-authenticate"], "Bearer");
    assert!(a.body.get("items").is_none());
}
both_stores!(no_credential, no_credential_is_401);

async fn registered_certificate_authenticates(store: Store) {
    let (_app, prov) = seeded(store).await;
    let a = prov.get("/v1/sims").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["total"], 1);
}
both_stores!(mtls_ok, registered_certificate_authenticates);

async fn unregistered_certificate_is_401(store: Store) {
    let (app, _) = seeded(store).await;
    let (cert, key) = app.issue_cert("acme", "stranger");
    let a = api(&app, app.with_identity(&cert, &key), None)
        .get("/v1/sims")
        .await;
    assert_eq!(a.status, 401);
    assert!(a.body.get("items").is_none());
}
both_stores!(mtls_unregistered, unregistered_certificate_is_401);

/// A certificate from another CA with the very same identity (SAN URI and CN) as a registered
/// one is refused at the handshake: identity is only trusted through the verified chain.
async fn look_alike_certificate_from_another_ca_is_refused(store: Store) {
    let (app, _) = seeded(store).await;
    let other = tempfile::tempdir().unwrap();
    let other_keys = KeyPaths::new(other.path());
    pki::init_keys(&other_keys).unwrap();
    let (cert, key) = pki::issue_client_cert(
        &other_keys,
        &pki::client_identity(&tenant_id("acme"), "prov"),
        "prov",
        30,
    )
    .unwrap();
    let res = app
        .with_identity(&cert, &key)
        .get(app.url("/v1/sims"))
        .send()
        .await;
    match res {
        Err(_) => {}
        Ok(r) => panic!("a look-alike certificate got an answer: {}", r.status()),
    }
}
both_stores!(
    mtls_unknown_ca,
    look_alike_certificate_from_another_ca_is_refused
);

async fn certificate_and_token_together_are_refused(store: Store) {
    let (app, prov) = seeded(store).await;
    let token = app.token("acme", &[Role::Support], "alice");
    let a = api(&app, prov.client.clone(), Some(token))
        .get("/v1/sims")
        .await;
    assert_eq!(a.status, 401);
}
both_stores!(mtls_and_jwt, certificate_and_token_together_are_refused);

async fn valid_token_authenticates(store: Store) {
    let (app, _) = seeded(store).await;
    let a = app
        .jwt_client("acme", &[Role::Support])
        .get("/v1/sims")
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["total"], 1);
}
both_stores!(jwt_ok, valid_token_authenticates);

fn claims<'a>(app: &'a TestApp, tenant: &'a str) -> MintClaims<'a> {
    let now = SystemClock.now_secs();
    MintClaims {
        iss: &app.config.jwt.issuer,
        aud: &app.config.jwt.audience,
        sub: "mallory",
        tenant,
        roles: vec!["support"],
        iat: now,
        nbf: now,
        exp: now + 300,
        jti: "t1".into(),
    }
}

async fn assert_token_refused(app: &TestApp, token: String, why: &str) {
    let a = api(app, app.anonymous(), Some(token)).get("/v1/sims").await;
    assert_eq!(a.status, 401, "{why}: {:?}", a.body);
    assert!(a.body.get("items").is_none(), "{why}");
    // The client is never told why.
    assert_eq!(
        a.body["detail"],
        "Present a registered client certificate or a valid bearer token."
    );
}

fn b64(v: &serde_json::Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

async fn bad_tokens_are_401(store: Store) {
    let (app, _) = seeded(store).await;
    let now = SystemClock.now_secs();

    // Expired beyond the 60 s skew.
    let mut c = claims(&app, "acme");
    c.exp = now - 61;
    c.nbf = now - 600;
    assert_token_refused(&app, app.sign(&c), "expired").await;

    // Not yet valid beyond the skew.
    let mut c = claims(&app, "acme");
    c.nbf = now + 120;
    c.exp = now + 600;
    assert_token_refused(&app, app.sign(&c), "nbf in the future").await;

    // Wrong audience, wrong issuer.
    let mut c = claims(&app, "acme");
    c.aud = "someone-else";
    assert_token_refused(&app, app.sign(&c), "wrong audience").await;
    let mut c = claims(&app, "acme");
    c.iss = "https://evil.example";
    assert_token_refused(&app, app.sign(&c), "wrong issuer").await;

    // Forged: signed with another Ed25519 key.
    let other = tempfile::tempdir().unwrap();
    let other_keys = KeyPaths::new(other.path());
    pki::init_keys(&other_keys).unwrap();
    let forged = simvault::auth::jwt::mint_eddsa(
        &std::fs::read(other_keys.jwt_private()).unwrap(),
        &claims(&app, "acme"),
    )
    .unwrap();
    assert_token_refused(&app, forged, "forged signature").await;

    // alg: none, with and without a signature part.
    let body = serde_json::to_value(claims(&app, "acme")).unwrap();
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&body)
    );
    assert_token_refused(&app, none.clone(), "alg none").await;
    assert_token_refused(
        &app,
        none.trim_end_matches('.').to_owned(),
        "alg none, two parts",
    )
    .await;

    // Algorithm confusion: HS256 keyed with the (public) verification key.
    let public = std::fs::read(app.keys.jwt_public()).unwrap();
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(&app, "acme"),
        &jsonwebtoken::EncodingKey::from_secret(&public),
    )
    .unwrap();
    assert_token_refused(&app, hs, "HS256 with the public key").await;

    // Tampered payload: roles raised after signing.
    let good = app.sign(&claims(&app, "acme"));
    let parts: Vec<&str> = good.split('.').collect();
    let mut raised = body.clone();
    raised["roles"] = json!(["admin"]);
    let tampered = format!("{}.{}.{}", parts[0], b64(&raised), parts[2]);
    assert_token_refused(&app, tampered, "tampered claims").await;

    // Unknown tenant, missing roles claim, garbage.
    assert_token_refused(&app, app.sign(&claims(&app, "nosuch")), "unknown tenant").await;
    let mut no_roles = body.clone();
    no_roles.as_object_mut().unwrap().remove("roles");
    let key =
        jsonwebtoken::EncodingKey::from_ed_pem(&std::fs::read(app.keys.jwt_private()).unwrap())
            .unwrap();
    let t = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
        &no_roles,
        &key,
    )
    .unwrap();
    assert_token_refused(&app, t, "no roles claim").await;
    assert_token_refused(&app, "not-a-token".into(), "garbage").await;

    // A non-bearer scheme.
    let a = Api::send(
        app.anonymous()
            .get(app.url("/v1/sims"))
            .header("authorization", "Basic YWxpY2U6cGFzcw=="),
    )
    .await;
    assert_eq!(a.status, 401);
}
both_stores!(jwt_refusals, bad_tokens_are_401);

async fn token_within_skew_is_accepted(store: Store) {
    let (app, _) = seeded(store).await;
    let now = SystemClock.now_secs();
    let mut c = claims(&app, "acme");
    c.exp = now - 30;
    c.nbf = now - 600;
    let a = api(&app, app.anonymous(), Some(app.sign(&c)))
        .get("/v1/sims")
        .await;
    assert_eq!(a.status, 200);
}
both_stores!(jwt_skew, token_within_skew_is_accepted);

/// Identity providers name claims differently: the claim paths are configuration.
async fn configurable_claims_and_jwks(store: Store) {
    let keys_dir = tempfile::tempdir().unwrap();
    // A JWKS holding the deployment's Ed25519 public key under kid "k1".
    let app = TestApp::spawn_with(store, |config| {
        config.jwt.claims.tenant = "org.id".into();
        config.jwt.claims.roles = "realm_access.roles".into();
        let pem = std::fs::read_to_string(KeyPaths::new(&config.data_dir).jwt_public()).unwrap();
        let der = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            pem.lines().filter(|l| !l.starts_with("-----")).collect::<String>(),
        )
        .unwrap();
        let x = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &der[der.len() - 32..]);
        let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1", "alg": "EdDSA", "use": "sig"}]});
        let path = keys_dir.path().join("jwks.json");
        std::fs::write(&path, serde_json::to_vec(&jwks).unwrap()).unwrap();
        config.jwt.keys = path;
    })
    .await;
    app.tenant("acme").await;
    let now = SystemClock.now_secs();
    let claims = json!({
        "iss": app.config.jwt.issuer, "aud": [app.config.jwt.audience, "other"], "sub": "alice",
        "org": {"id": "acme"}, "realm_access": {"roles": ["offline_access", "support"]},
        "iat": now, "exp": now + 300,
    });
    let key =
        jsonwebtoken::EncodingKey::from_ed_pem(&std::fs::read(app.keys.jwt_private()).unwrap())
            .unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some("k1".into());
    let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    let a = api(&app, app.anonymous(), Some(token))
        .get("/v1/sims")
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);

    // Unknown kid: refused.
    header.kid = Some("k2".into());
    let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    assert_token_refused(&app, token, "unknown kid").await;
    // No kid with a JWKS: refused.
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
        &claims,
        &key,
    )
    .unwrap();
    assert_token_refused(&app, token, "no kid").await;
}
both_stores!(jwt_jwks_and_claim_paths, configurable_claims_and_jwks);

async fn token_with_no_known_role_is_403(store: Store) {
    let (app, _) = seeded(store).await;
    let mut c = claims(&app, "acme");
    c.roles = vec!["offline_access"];
    let a = api(&app, app.anonymous(), Some(app.sign(&c)))
        .get("/v1/sims")
        .await;
    assert_eq!(a.status, 403);
}
both_stores!(jwt_no_roles, token_with_no_known_role_is_403);

async fn handshake_timeout_closes_silent_connections(store: Store) {
    use tokio::io::AsyncReadExt;
    let app = TestApp::spawn_with(store, |c| {
        c.limits.handshake = std::time::Duration::from_millis(300)
    })
    .await;
    let mut tcp = tokio::net::TcpStream::connect(app.app.local_addr())
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    // The server hangs up on a client that never starts the handshake.
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), tcp.read(&mut buf))
        .await
        .expect("server kept a silent connection open")
        .unwrap_or(0);
    assert_eq!(n, 0);
}
both_stores!(
    handshake_timeout,
    handshake_timeout_closes_silent_connections
);
