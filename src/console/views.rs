//! What every console page shares: the layout's header ([`Chrome`]: who is signed in, the
//! navigation their roles open, the sign-out form with its CSRF token), rendering a template
//! into an answer, and the error pages.
//!
//! Conventions for pages: a template under `templates/console/` extends `layout.html`, sets
//! `{% block title %}` and fills `{% block content %}`; its struct has a `chrome:
//! Option<Chrome>` field (`None` only on pages for people not signed in). Every form that
//! changes anything is a POST carrying `<input type="hidden" name="csrf" value="{{ c.csrf }}">`
//! and is read with [`super::session::Posted`]. No inline script, style or `on…=` handler:
//! behaviour goes in `assets/console/console.js`, looks in `console.css`. Every control has
//! a visible `<label>`.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::session::Signed;
use crate::service::ServiceError;
use crate::service::console::Abilities;

/// The layout's header for a signed-in person. Its `Debug` leaves the CSRF token out.
#[derive(Clone)]
pub struct Chrome {
    pub subject: String,
    pub tenant: String,
    pub roles: String,
    pub csrf: String,
    pub nav: Abilities,
    /// The nav entry of this page: `search`, `audit`, `tasks`, `admin` (or "").
    pub current: &'static str,
}

impl std::fmt::Debug for Chrome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chrome")
            .field("subject", &self.subject)
            .field("tenant", &self.tenant)
            .field("roles", &self.roles)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl Chrome {
    pub(super) fn new(user: &Signed, current: &'static str) -> Self {
        Chrome {
            subject: user.principal.subject.clone(),
            tenant: user.principal.tenant.to_string(),
            roles: crate::domain::Role::join(&user.principal.roles),
            csrf: user.csrf.clone(),
            nav: user.abilities,
            current,
        }
    }

    /// Whether any administration page is open to this person.
    pub fn admin(&self) -> bool {
        self.nav.keys || self.nav.webhooks || self.nav.groups
    }
}

/// Renders `page` with `status`; a template that fails to render is an opaque 500.
pub fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a console page did not render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be shown.",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    chrome: Option<Chrome>,
    heading: &'a str,
    message: &'a str,
}

/// An error page: its status, what went wrong and what to do, in the person's layout.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub heading: &'static str,
    pub message: String,
    pub chrome: Option<Chrome>,
    /// A stored row that failed its check, for the request's end to report.
    integrity: Option<crate::domain::integrity::IntegrityFailure>,
}

impl PageError {
    fn new(
        status: StatusCode,
        heading: &'static str,
        message: impl Into<String>,
        user: Option<&Signed>,
    ) -> Self {
        PageError {
            status,
            heading,
            message: message.into(),
            chrome: user.map(|u| u.chrome("")),
            integrity: None,
        }
    }

    pub fn not_found(user: Option<&Signed>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is nothing here. Check the address, or search again.",
            user,
        )
    }

    pub fn forbidden(user: Option<&Signed>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Your roles do not allow this page. Ask an administrator if you need it.",
            user,
        )
    }

    pub fn csrf(user: Option<&Signed>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Form refused",
            "This form did not come from your current console page (it may be from an older \
             session or another site). Nothing was changed: reload the page and try again.",
            user,
        )
    }

    pub fn bad_request(user: Option<&Signed>, message: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Check the form", message, user)
    }

    /// The page for a use case's error (the cause of an internal one is logged, not shown).
    pub fn from_service(e: ServiceError, user: Option<&Signed>) -> Self {
        match e {
            ServiceError::NotFound => Self::not_found(user),
            ServiceError::Forbidden => Self::forbidden(user),
            ServiceError::Validation(v) => {
                let message = v
                    .errors()
                    .iter()
                    .map(|e| e.detail.clone())
                    .collect::<Vec<_>>()
                    .join(" ");
                Self::bad_request(user, &message)
            }
            ServiceError::RateLimited { retry_after_secs } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts",
                format!("Wait {retry_after_secs} seconds, then try again."),
                user,
            ),
            ServiceError::Unavailable(cause) => {
                tracing::warn!(cause = %cause, "console request answered 503");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Unavailable",
                    "The service cannot answer right now. Nothing was changed: try again in a minute.",
                    user,
                )
            }
            ServiceError::Integrity(failure) => {
                let mut page = Self::internal(user);
                page.integrity = Some(failure);
                page
            }
            other => {
                tracing::error!(error = %crate::telemetry::Causes(&other), "console request failed");
                Self::internal(user)
            }
        }
    }

    fn internal(user: Option<&Signed>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "The request failed; it has been logged. Try again, or tell an administrator.",
            user,
        )
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let mut res = render(
            self.status,
            &ErrorPage {
                chrome: self.chrome,
                heading: self.heading,
                message: &self.message,
            },
        );
        if let Some(failure) = self.integrity {
            res.extensions_mut().insert(failure);
        }
        res
    }
}

/// A timestamp as people read it (UTC, to the second).
pub fn when(ts: crate::domain::Timestamp) -> String {
    crate::domain::format_timestamp(ts)
        .replace('T', " ")
        .replace('Z', " UTC")
}

#[cfg(test)]
mod tests {
    use super::Chrome;

    #[test]
    fn a_chrome_debug_print_leaves_the_csrf_token_out() {
        let chrome = Chrome {
            subject: "alice".into(),
            tenant: "acme".into(),
            roles: "support".into(),
            csrf: "c3JmLXRva2VuLXZhbHVl".into(),
            nav: Default::default(),
            current: "search",
        };
        let printed = format!("{chrome:?}");
        assert!(printed.contains("alice"), "{printed}");
        assert!(!printed.contains("c3JmLXRva2VuLXZhbHVl"), "{printed}");
    }
}
