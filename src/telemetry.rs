//! Logging (tracing, text or JSON), the Prometheus metrics recorder, and the tenant scoping
//! of metrics: request series carry the `tenant` of the authenticated caller (empty when
//! there is none), and a tenant's scraper is shown only the series labelled with its tenant.
//! Everything else (unauthenticated requests, integrity failures, any process-wide series) is
//! platform-wide and shown only to a platform identity.
//!
//! Must never: show one tenant's series to another tenant's principal.

use std::cell::RefCell;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Installs the global log subscriber. `filter` is an env-filter directive such as `info` or
/// `simvault=debug`; `json` selects JSON lines. Logs go to standard error: standard output
/// carries commands' results (tokens, exports), which a log line must never corrupt.
pub fn init_logging(filter: &str, json: bool) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

/// The process-wide Prometheus recorder (the `metrics` facade is global by design), installed
/// on first use.
pub fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            const BUCKETS: &[f64] = &[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ];
            PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .ok()?
                .install_recorder()
                .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
                .ok()
        })
        .clone()
}

tokio::task_local! {
    /// The tenant of the request being served, once the policy has seen its principal.
    static REQUEST_TENANT: RefCell<Option<String>>;
}

/// The tenant a request was served for, carried on its response to the metrics recorder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTenant(pub String);

/// Notes the tenant of the principal a request acts for (called where every decision is
/// made). Outside a request (a background worker) it does nothing.
pub fn note_tenant(tenant: &crate::domain::TenantId) {
    let _ = REQUEST_TENANT.try_with(|t| {
        let mut t = t.borrow_mut();
        if t.is_none() {
            *t = Some(tenant.to_string());
        }
    });
}

/// Middleware: runs the request in a scope where [`note_tenant`] can record its tenant, and
/// puts that tenant on the response as [`RequestTenant`].
pub async fn tenant_scope(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let (mut res, tenant) = REQUEST_TENANT
        .scope(RefCell::new(None), async {
            let res = next.run(req).await;
            (res, REQUEST_TENANT.with(|t| t.borrow_mut().take()))
        })
        .await;
    if let Some(tenant) = tenant {
        res.extensions_mut().insert(RequestTenant(tenant));
    }
    res
}

/// Who a metrics scrape is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsScope {
    /// A principal of the platform tenant: every series.
    Platform,
    /// Only series labelled with this tenant.
    Tenant(String),
}

/// `text` (Prometheus text format) reduced to what `scope` may see: for a tenant, only the
/// samples whose `tenant` label is that tenant, with the `# HELP`/`# TYPE` lines of the
/// metrics that still have one.
pub fn scoped(text: &str, scope: &MetricsScope) -> String {
    let MetricsScope::Tenant(tenant) = scope else {
        return text.to_owned();
    };
    let label = format!("tenant=\"{}\"", escape_label(tenant));
    let mut out = String::with_capacity(text.len() / 2);
    let mut comments: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            comments.push(line);
            continue;
        }
        if line.trim().is_empty() || !sample_has_label(line, &label) {
            continue;
        }
        for c in comments.drain(..) {
            out.push_str(c);
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Whether a sample line's label set (between its first `{` and the `}` before the value)
/// holds `label` as a whole label, not inside another label's value.
fn sample_has_label(line: &str, label: &str) -> bool {
    let Some(open) = line.find('{') else {
        return false;
    };
    let Some(close) = line.rfind('}') else {
        return false;
    };
    let labels = &line[open + 1..close];
    let mut rest = labels;
    // Label values are escaped (`\"`), so a `"` not after `\` ends a value: split on those.
    loop {
        let trimmed = rest.trim_start_matches(',');
        if trimmed.starts_with(label)
            && matches!(trimmed.as_bytes().get(label.len()), None | Some(b','))
        {
            return true;
        }
        let Some(eq) = trimmed.find("=\"") else {
            return false;
        };
        let mut end = None;
        let bytes = trimmed.as_bytes();
        let mut i = eq + 2;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'"' => {
                    end = Some(i);
                    break;
                }
                _ => i += 1,
            }
        }
        let Some(end) = end else { return false };
        rest = &trimmed[end + 1..];
    }
}

/// A label value as the exporter writes it.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// An error and its causes on one line, for the log: `error: cause: cause's cause`.
pub struct Causes<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Causes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP simvault_http_requests_total requests\n\
        # TYPE simvault_http_requests_total counter\n\
        simvault_http_requests_total{method=\"GET\",route=\"/v1/sims\",status=\"200\",tenant=\"acme\"} 3\n\
        simvault_http_requests_total{method=\"GET\",route=\"/v1/sims\",status=\"200\",tenant=\"acme-2\"} 5\n\
        simvault_http_requests_total{method=\"GET\",route=\"/x\",status=\"401\",tenant=\"\"} 9\n\
        simvault_http_requests_total{method=\"GET\",route=\"/a,tenant=\\\"acme\\\"\",status=\"404\",tenant=\"globex\"} 1\n\
        # HELP simvault_integrity_failures_total failures\n\
        # TYPE simvault_integrity_failures_total counter\n\
        simvault_integrity_failures_total{row=\"sim\"} 2\n\
        process_open_fds 12\n";

    #[test]
    fn a_tenant_sees_only_its_own_series() {
        let acme = scoped(TEXT, &MetricsScope::Tenant("acme".into()));
        assert_eq!(
            acme,
            "# HELP simvault_http_requests_total requests\n\
             # TYPE simvault_http_requests_total counter\n\
             simvault_http_requests_total{method=\"GET\",route=\"/v1/sims\",status=\"200\",tenant=\"acme\"} 3\n"
        );
        assert!(!acme.contains("integrity") && !acme.contains("process_"));
        let none = scoped(TEXT, &MetricsScope::Tenant("initech".into()));
        assert_eq!(none, "");
    }

    #[test]
    fn the_platform_sees_everything() {
        assert_eq!(scoped(TEXT, &MetricsScope::Platform), TEXT);
    }

    #[test]
    fn a_label_inside_another_value_does_not_count() {
        let line = "m{route=\"/a,tenant=\\\"acme\\\"\",tenant=\"globex\"} 1";
        assert!(!sample_has_label(line, "tenant=\"acme\""));
        assert!(sample_has_label(line, "tenant=\"globex\""));
    }

    #[tokio::test]
    async fn the_tenant_noted_in_a_request_is_the_first_one() {
        let seen = REQUEST_TENANT
            .scope(RefCell::new(None), async {
                note_tenant(&crate::domain::TenantId::parse("acme").unwrap());
                note_tenant(&crate::domain::TenantId::parse("globex").unwrap());
                REQUEST_TENANT.with(|t| t.borrow().clone())
            })
            .await;
        assert_eq!(seen.as_deref(), Some("acme"));
        note_tenant(&crate::domain::TenantId::parse("outside").unwrap());
    }
}
