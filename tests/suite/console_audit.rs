//! The console's compliance pages: the audit log table with the API's filters and cursor
//! paging, a record's detail, verifying the chain (a tampered row is found), exports equal to
//! the API's, and what a support person, a forged form and another tenant do not get.

use serde_json::Value;
use simvault::domain::Role;

use crate::audit::{KI, PUK, exec, setup};
use crate::console_sessions::{Browser, csrf_of, sign_in};
use crate::helpers::{Api, Store, TestApp, audit_export, both_stores, chain_records, iccid};

/// The record positions a page links to (`/console/audit/{seq}`), in order.
fn seqs(html: &str) -> Vec<i64> {
    let mut out: Vec<i64> = Vec::new();
    for part in html.split("href=\"/console/audit/").skip(1) {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(n) = digits.parse()
            && part[digits.len()..].starts_with('"')
            && out.last() != Some(&n)
        {
            out.push(n);
        }
    }
    out
}

/// The positions `GET /v1/audit/events?{query}` answers, newest first.
async fn api_seqs(auditor: &Api, query: &str) -> Vec<i64> {
    let page = auditor.get(&format!("/v1/audit/events?{query}")).await;
    assert_eq!(page.status, 200, "{:?}", page.body);
    page.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["seq"].as_i64().unwrap())
        .collect()
}

/// The href of the page's "Next" link, unescaped.
fn next_link(html: &str) -> Option<String> {
    html.split("<a href=\"")
        .skip(1)
        .find(|h| h.contains("rel=\"next\""))
        .map(|h| {
            h.split('"')
                .next()
                .unwrap()
                .replace("&#38;", "&")
                .replace("&amp;", "&")
        })
}

/// The acme chain after a provisioner's card-key read, a support person's refused PUK read
/// and their PUK read with a reason (through the API), and an auditor signed in to the
/// console.
async fn scene(store: Store) -> (TestApp, Api, Browser) {
    let (app, prov, auditor) = setup(store).await;
    let support = app.jwt_client("acme", &[Role::Support]);
    let secrets = |q: &str| format!("/v1/sims/{}/secrets?{q}", iccid(1));
    assert_eq!(prov.get(&secrets("fields=ki")).await.status, 200);
    assert_eq!(support.get(&secrets("fields=puk1")).await.status, 403);
    assert_eq!(
        support
            .get(&secrets("fields=puk1&reason=TICKET-9"))
            .await
            .status,
        200
    );
    let carol = sign_in(&app, "acme", &[Role::Auditor], "carol").await;
    (app, auditor, carol)
}

both_stores!(
    an_auditor_reads_filters_and_pages_the_log_and_opens_a_record,
    reading
);
async fn reading(store: Store) {
    let (app, auditor, carol) = scene(store).await;
    let all = api_seqs(&auditor, "limit=500").await;
    let home = carol.page(&app, "/console/audit").await;
    assert_eq!(seqs(&home), all, "the table lists what the API lists");
    for label in [
        "<label for=\"actor\">Actor</label>",
        "<label for=\"action\">Action</label>",
        "<label for=\"sim\">SIM</label>",
        "<label for=\"outcome\">Outcome</label>",
        "<label for=\"since\">Since (UTC)</label>",
        "<label for=\"until\">Until (UTC)</label>",
        "<label for=\"format\">Format</label>",
        ">Verify chain</button>",
        ">Export</button>",
    ] {
        assert!(home.contains(label), "{label}");
    }
    assert!(home.contains("secrets.read") && home.contains("sim.create"));
    assert!(home.contains("TICKET-9"));
    assert!(!home.contains(KI) && !home.contains(PUK));

    // Filters narrow the table exactly as they narrow the API's list; empty fields (a form
    // sends every field) are no filter.
    let denied = carol
        .page(
            &app,
            "/console/audit?actor=&action=secrets.read&sim=&outcome=denied&since=&until=",
        )
        .await;
    let want = api_seqs(&auditor, "action=secrets.read&outcome=denied").await;
    assert_eq!(want.len(), 1);
    assert_eq!(seqs(&denied), want);
    assert!(denied.contains("<option value=\"denied\" selected>"));
    let reads = carol.page(&app, "/console/audit?action=secrets.read").await;
    assert_eq!(seqs(&reads).len(), 3);
    assert!(!reads.contains("sim.create"));
    let by_sim = carol
        .page(&app, &format!("/console/audit?sim={}", iccid(1)))
        .await;
    assert_eq!(
        seqs(&by_sim),
        api_seqs(&auditor, &format!("sim={}", iccid(1))).await
    );
    let none = carol
        .page(&app, "/console/audit?since=2000-01-01&until=2000-01-02")
        .await;
    assert!(seqs(&none).is_empty() && none.contains("0 records"));
    // A filter the API would refuse is a readable 400 saying what to do.
    let bad = carol.get(&app, "/console/audit?since=yesterday").await;
    assert_eq!(bad.status(), 400);
    let bad = bad.text().await.unwrap();
    assert!(bad.contains("Since: give a UTC date and time"), "{bad}");
    assert!(seqs(&bad).is_empty());

    // Cursor paging: each page follows the last without overlap, and together they are the
    // whole log.
    let mut seen = Vec::new();
    let mut path = Some("/console/audit?limit=2".to_owned());
    while let Some(p) = path {
        let page = carol.page(&app, &p).await;
        let rows = seqs(&page);
        assert!(!rows.is_empty() && rows.len() <= 2, "{p}: {rows:?}");
        assert!(
            rows.iter().all(|s| !seen.contains(s)),
            "{p} overlaps: {rows:?}"
        );
        seen.extend(rows);
        path = next_link(&page);
        if let Some(n) = &path {
            assert!(n.contains("limit=2") && n.contains("cursor="), "{n}");
        }
    }
    assert_eq!(seen, all);
    // Paging keeps the filters.
    let first = carol
        .page(&app, "/console/audit?action=secrets.read&limit=2")
        .await;
    let next = next_link(&first).expect("a next page");
    assert!(next.contains("action=secrets.read"), "{next}");
    let second = carol.page(&app, &next).await;
    assert_eq!(seqs(&second).len(), 1);
    assert!(second.contains("First page"));
    let damaged = carol.get(&app, "/console/audit?cursor=abc").await;
    assert_eq!(damaged.status(), 400);

    // A record's page: every field, its deciding policies; never a secret value.
    let items = auditor.get("/v1/audit/events?limit=500").await.body["items"].clone();
    let card_read = find(&items, "secrets.read", "allowed", |i| i["reason"].is_null());
    let page = carol
        .page(&app, &format!("/console/audit/{}", card_read["seq"]))
        .await;
    for want in [
        "secrets-read-card-keys-provisioner-mtls",
        "<code>ki</code>",
        "Deciding policies",
        card_read["id"].as_str().unwrap(),
        card_read["request_id"].as_str().unwrap(),
        card_read["actor"]["client_addr"].as_str().unwrap(),
        card_read["actor"]["credential_id"].as_str().unwrap(),
        card_read["hash"].as_str().unwrap(),
        card_read["prev_hash"].as_str().unwrap(),
        card_read["iccid"].as_str().unwrap(),
        "mtls",
    ] {
        assert!(page.contains(want), "record page lacks {want}");
    }
    assert!(!page.contains(KI));
    let with_reason = find(&items, "secrets.read", "allowed", |i| {
        i["reason"] == "TICKET-9"
    });
    let page = carol
        .page(&app, &format!("/console/audit/{}", with_reason["seq"]))
        .await;
    assert!(page.contains("TICKET-9") && page.contains("secrets-read-puk-support-with-reason"));
    assert!(page.contains("<code>puk1</code>") && !page.contains(PUK));
    for missing in [
        "/console/audit/9999",
        "/console/audit/0",
        "/console/audit/x",
    ] {
        assert_eq!(carol.get(&app, missing).await.status(), 404, "{missing}");
    }
}

fn find<'a>(
    items: &'a Value,
    action: &str,
    outcome: &str,
    more: impl Fn(&Value) -> bool,
) -> &'a Value {
    items
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["action"] == action && i["outcome"] == outcome && more(i))
        .unwrap_or_else(|| panic!("no {action} {outcome} record in {items}"))
}

/// The `<dd>` after the `<dt>` named `label`.
fn fact<'a>(html: &'a str, label: &str) -> &'a str {
    let at = html
        .find(&format!("<dt>{label}</dt><dd>"))
        .unwrap_or_else(|| panic!("no {label} in {html}"))
        + label.len()
        + 13;
    html[at..].split("</dd>").next().unwrap()
}

both_stores!(
    verifying_the_chain_matches_the_api_and_finds_a_tampered_record,
    verifying
);
async fn verifying(store: Store) {
    let (app, auditor, carol) = scene(store).await;
    let signer = app.services.audit.audit_signer.clone().unwrap();
    simvault::service::audit::checkpoint_all(&app.test_db.db, &signer, 1)
        .await
        .unwrap();
    let csrf = csrf_of(&carol.page(&app, "/console/audit").await);
    let res = carol
        .post(&app, "/console/audit/verify", &[("csrf", &csrf)])
        .await;
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    let api = auditor.get("/v1/audit/verify").await.body;
    assert_eq!(api["ok"], true);
    assert!(page.contains("The chain is intact"), "{page}");
    assert_eq!(fact(&page, "Result"), "ok");
    assert_eq!(fact(&page, "Records checked"), api["checked"].to_string());
    assert_eq!(
        fact(&page, "Head hash"),
        format!("<code>{}</code>", api["head_hash"].as_str().unwrap())
    );
    assert_eq!(fact(&page, "Signed checkpoints verified"), "1");
    assert_eq!(fact(&page, "First bad sequence number"), "—");

    // Without the session's CSRF token, or with another, nothing is verified: 403.
    let refused = carol.post(&app, "/console/audit/verify", &[]).await;
    assert_eq!(refused.status(), 403);
    let body = refused.text().await.unwrap();
    assert!(body.contains("Form refused") && !body.contains("Records checked"));
    let forged = carol
        .post(&app, "/console/audit/verify", &[("csrf", "forged")])
        .await;
    assert_eq!(forged.status(), 403);
    let other = sign_in(&app, "acme", &[Role::Auditor], "dan").await;
    let theirs = csrf_of(&other.page(&app, "/console/audit").await);
    assert_eq!(
        carol
            .post(&app, "/console/audit/verify", &[("csrf", &theirs)])
            .await
            .status(),
        403
    );

    // A record changed in storage: the page names where the chain breaks, the table and the
    // record's page withhold its content.
    let items = auditor.get("/v1/audit/events?limit=500").await.body["items"].clone();
    let card_read = find(&items, "secrets.read", "allowed", |i| i["reason"].is_null());
    let seq = card_read["seq"].as_i64().unwrap();
    exec(
        &app,
        &format!(
            "UPDATE audit_events SET record = replace(record, 'allowed', 'denied') \
             WHERE tenant_id = 'acme' AND seq = {seq}"
        ),
    )
    .await;
    let page = carol
        .post(&app, "/console/audit/verify", &[("csrf", &csrf)])
        .await
        .text()
        .await
        .unwrap();
    let api = auditor.get("/v1/audit/verify").await.body;
    assert_eq!(api["first_bad_seq"], seq);
    assert!(
        page.contains(&format!("The chain is broken at sequence number {seq}")),
        "{page}"
    );
    assert_eq!(fact(&page, "Result"), "broken");
    assert_eq!(fact(&page, "First bad sequence number"), seq.to_string());
    assert_eq!(fact(&page, "Records checked"), api["checked"].to_string());
    let list = carol.page(&app, "/console/audit").await;
    assert!(list.contains("Altered in storage"));
    assert!(seqs(&list).contains(&seq));
    let record = carol.page(&app, &format!("/console/audit/{seq}")).await;
    assert!(record.contains("altered in storage"));
    assert!(!record.contains("secrets-read-card-keys-provisioner-mtls"));
}

/// A console download: status, headers and body.
async fn download(
    who: &Browser,
    app: &TestApp,
    query: &str,
) -> (reqwest::header::HeaderMap, String) {
    let res = who
        .get(app, &format!("/console/audit/export?{query}"))
        .await;
    assert_eq!(res.status(), 200, "{query}");
    let headers = res.headers().clone();
    (headers, res.text().await.unwrap())
}

both_stores!(exports_download_what_the_api_exports, exporting);
async fn exporting(store: Store) {
    let (app, auditor, carol) = scene(store).await;
    for (format, ctype) in [("csv", "text/csv"), ("ndjson", "application/x-ndjson")] {
        for filter in [
            "",
            "&action=secrets.read&outcome=denied",
            "&actor=&action=secrets.read&sim=&outcome=&since=&until=",
        ] {
            let query = format!("format={format}{filter}");
            let (h, body) = download(&carol, &app, &query).await;
            let api_query: String = query
                .split('&')
                .filter(|p| !p.ends_with('='))
                .collect::<Vec<_>>()
                .join("&");
            assert_eq!(body, audit_export(&auditor, &api_query).await, "{query}");
            let disposition = h["content-disposition"].to_str().unwrap();
            let name = disposition
                .strip_prefix("attachment; filename=\"audit-acme-")
                .and_then(|n| n.strip_suffix(&format!(".{format}\"")))
                .unwrap_or_else(|| panic!("{disposition}"));
            assert_eq!(name.len(), 10, "a date: {name}");
            assert!(name.starts_with("20") && name.as_bytes()[4] == b'-');
            assert!(h["content-type"].to_str().unwrap().starts_with(ctype));
            // A download is a console answer like any other.
            assert_eq!(h["content-security-policy"], simvault::console::CSP);
            for (header, value) in [
                ("cache-control", "no-store"),
                ("referrer-policy", "no-referrer"),
                ("x-content-type-options", "nosniff"),
                ("x-frame-options", "DENY"),
            ] {
                assert_eq!(h[header], value, "{header}");
            }
            assert!(!body.contains(KI) && !body.contains(PUK));
        }
    }
    let (_, csv) = download(&carol, &app, "format=csv&outcome=denied").await;
    assert_eq!(csv.lines().count(), 2, "header and the one refusal: {csv}");
    // The export form carries the table's filters.
    let page = carol
        .page(&app, "/console/audit?action=secrets.read&outcome=denied")
        .await;
    assert!(page.contains("<input type=\"hidden\" name=\"action\" value=\"secrets.read\">"));
    assert!(page.contains("<input type=\"hidden\" name=\"outcome\" value=\"denied\">"));
    let bad = carol.get(&app, "/console/audit/export?format=xml").await;
    assert_eq!(bad.status(), 400);
    assert!(
        bad.text()
            .await
            .unwrap()
            .contains("Format: choose CSV or NDJSON.")
    );
}

both_stores!(
    a_support_person_gets_no_audit_page_and_no_record,
    support_refused
);
async fn support_refused(store: Store) {
    let (app, _auditor, carol) = scene(store).await;
    let bob = sign_in(&app, "acme", &[Role::Support], "bob").await;
    let csrf = bob.csrf(&app).await;
    let mut answers = Vec::new();
    for path in [
        "/console/audit",
        "/console/audit?action=secrets.read",
        "/console/audit?since=yesterday",
        "/console/audit/1",
        "/console/audit/2",
        "/console/audit/x",
        "/console/audit/export?format=csv",
        "/console/audit/export?format=ndjson",
        "/console/audit/export?format=xml",
    ] {
        answers.push((path, bob.get(&app, path).await));
    }
    answers.push((
        "verify",
        bob.post(&app, "/console/audit/verify", &[("csrf", &csrf)])
            .await,
    ));
    let hashes: Vec<String> = chain_records(&app.test_db.db, "acme")
        .await
        .into_iter()
        .map(|(_, _, r)| r["id"].as_str().unwrap().to_owned())
        .collect();
    for (path, res) in answers {
        assert_eq!(res.status(), 403, "{path}");
        assert!(res.headers().get("content-disposition").is_none(), "{path}");
        let body = res.text().await.unwrap();
        assert!(body.contains("Not allowed"), "{path}");
        for leaked in ["secrets.read", "sim.create", "TICKET-9", "Records checked"] {
            assert!(!body.contains(leaked), "{path} leaked {leaked}");
        }
        assert!(!body.contains(&iccid(1)), "{path} leaked the ICCID");
        assert!(
            hashes.iter().all(|id| !body.contains(id.as_str())),
            "{path}"
        );
    }
    // The refusals are recorded like the API's, as the person through the console.
    let records = chain_records(&app.test_db.db, "acme").await;
    assert!(records.iter().any(|(a, o, r)| a == "audit.read"
        && o == "denied"
        && r["auth_method"] == "console"
        && r["subject"] == "bob"));
    // And the auditor still reads them.
    assert!(
        carol
            .page(&app, "/console/audit")
            .await
            .contains("audit.read")
    );
}

both_stores!(another_tenant_s_records_never_appear, cross_tenant);
async fn cross_tenant(store: Store) {
    let (app, _auditor, carol) = scene(store).await;
    app.tenant("rival").await;
    let theirs_iccid = iccid(77);
    let prov = app
        .mtls_api("rival", &[Role::Provisioner], "rival-prov")
        .await;
    prov.create_sim(serde_json::json!({"iccid": theirs_iccid, "secrets": {"ki": KI}}))
        .await;
    assert_eq!(
        prov.get(&format!("/v1/sims/{theirs_iccid}/secrets?fields=ki"))
            .await
            .status,
        200
    );
    let rival_ids: Vec<String> = chain_records(&app.test_db.db, "rival")
        .await
        .into_iter()
        .map(|(_, _, r)| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!rival_ids.is_empty());
    let mut pages = vec![
        carol.page(&app, "/console/audit").await,
        carol
            .page(&app, &format!("/console/audit?sim={theirs_iccid}"))
            .await,
        carol.page(&app, "/console/audit?actor=rival-prov").await,
        download(&carol, &app, "format=csv").await.1,
        download(&carol, &app, "format=ndjson").await.1,
    ];
    // Positions overlap between chains: each is the person's own tenant's record.
    for seq in 1..=rival_ids.len() {
        let res = carol.get(&app, &format!("/console/audit/{seq}")).await;
        pages.push(res.text().await.unwrap());
    }
    // Filtering by their SIM or their provisioner finds nothing (the page shows what was
    // typed, in the filter field and the export form's copy of it, nothing more).
    for (page, typed) in [
        (&pages[1], &theirs_iccid),
        (&pages[2], &"rival-prov".to_owned()),
    ] {
        assert!(seqs(page).is_empty() && page.contains("0 records"));
        assert_eq!(
            page.matches(typed.as_str()).count(),
            2,
            "only the echo of the form"
        );
    }
    for (n, page) in pages
        .iter()
        .enumerate()
        .filter(|(n, _)| !matches!(n, 1 | 2))
    {
        assert!(!page.contains(&theirs_iccid), "page {n}");
        assert!(!page.contains("rival-prov"), "page {n}");
    }
    for page in &pages {
        assert!(rival_ids.iter().all(|id| !page.contains(id.as_str())));
    }
    // Their auditor sees theirs, not ours.
    let rita = sign_in(&app, "rival", &[Role::Auditor], "rita").await;
    let list = rita.page(&app, "/console/audit").await;
    assert!(list.contains("rival-prov") && !list.contains(&iccid(1)));
    assert!(!list.contains("TICKET-9"));
}

both_stores!(
    audit_pages_have_the_security_headers_and_no_inline_code,
    markup
);
async fn markup(store: Store) {
    let (app, _auditor, carol) = scene(store).await;
    let csrf = carol.csrf(&app).await;
    let mut answers = Vec::new();
    for path in [
        "/console/audit",
        "/console/audit/2",
        "/console/audit?since=bad",
    ] {
        answers.push((path.to_owned(), carol.get(&app, path).await));
    }
    answers.push((
        "verify".into(),
        carol
            .post(&app, "/console/audit/verify", &[("csrf", &csrf)])
            .await,
    ));
    for (name, res) in answers {
        assert_eq!(
            res.headers()["content-security-policy"],
            simvault::console::CSP
        );
        assert_eq!(res.headers()["cache-control"], "no-store", "{name}");
        let body = res.text().await.unwrap();
        crate::console::no_inline_code(&name, &body);
    }
}
