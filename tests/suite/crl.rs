//! Client CRLs: reloaded on SIGHUP (through the function the signal handler calls), keeping the
//! old ones when the new files are invalid; an expired CRL is reported by `/readyz`.

use std::path::PathBuf;

use simvault::clock::{Clock as _, SystemClock};
use simvault::domain::Role;
use simvault::pki::{self, KeyPaths};
use time::Duration;

use crate::helpers::{Store, TestApp, both_stores};

/// A server whose client CRL file (revoking nothing yet) is at the returned path.
async fn with_crl(store: Store) -> (TestApp, PathBuf) {
    let mut crl_path = PathBuf::new();
    let app = TestApp::spawn_with(store, |c| {
        let keys = KeyPaths::new(&c.data_dir);
        crl_path = c.data_dir.join("clients.crl");
        let crl =
            pki::issue_crl(&keys, &[], SystemClock.now_datetime() + Duration::days(7)).unwrap();
        std::fs::write(&crl_path, crl).unwrap();
        c.tls.client_crls = vec![crl_path.clone()];
    })
    .await;
    app.tenant("acme").await;
    (app, crl_path)
}

async fn status(client: &reqwest::Client, url: &str) -> Option<u16> {
    client
        .get(url)
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

async fn a_certificate_revoked_in_a_new_crl_is_refused_after_reload(store: Store) {
    let (app, crl_path) = with_crl(store).await;
    let (cert, key) = app
        .registered_cert("acme", &[Role::Provisioner], "prov")
        .await;
    let url = format!("{}/v1/sims", app.base);
    assert_eq!(
        status(&app.with_identity(&cert, &key), &url).await,
        Some(200)
    );

    // A file that is not a CRL: refused, and the CRLs in force stay.
    std::fs::write(&crl_path, "not a CRL").unwrap();
    assert!(app.app.reload_tls().is_err());
    assert_eq!(
        status(&app.with_identity(&cert, &key), &url).await,
        Some(200)
    );

    let crl = pki::issue_crl(
        &app.keys,
        &[&cert],
        SystemClock.now_datetime() + Duration::days(7),
    )
    .unwrap();
    std::fs::write(&crl_path, crl).unwrap();
    app.app.reload_tls().unwrap();
    // A new connection with the revoked certificate fails its handshake: no answer at all.
    assert_eq!(status(&app.with_identity(&cert, &key), &url).await, None);
    // Another certificate of the same CA is still accepted.
    let other = app.mtls_client("acme", &[Role::Provisioner], "other").await;
    assert_eq!(status(&other, &url).await, Some(200));
}
both_stores!(
    crl_reload,
    a_certificate_revoked_in_a_new_crl_is_refused_after_reload
);

async fn an_expired_crl_makes_the_server_not_ready(store: Store) {
    let (app, crl_path) = with_crl(store).await;
    let anonymous = app.anonymous();
    let readyz = format!("{}/readyz", app.base);
    assert_eq!(status(&anonymous, &readyz).await, Some(200));
    let expired = pki::issue_crl(
        &app.keys,
        &[],
        SystemClock.now_datetime() - Duration::days(1),
    )
    .unwrap();
    std::fs::write(&crl_path, expired).unwrap();
    app.app.reload_tls().unwrap();
    let res = anonymous.get(&readyz).send().await.unwrap();
    assert_eq!(res.status(), 503);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["crl"], "expired", "{body}");
}
both_stores!(crl_expiry, an_expired_crl_makes_the_server_not_ready);
