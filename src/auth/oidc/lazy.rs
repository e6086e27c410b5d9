//! The provider's client as the server holds it: discovered at start when the provider
//! answers, and otherwise at the first sign-in that needs it (then at each one until
//! discovery succeeds), so that a provider down at start does not stop the service.

use std::time::Duration;

use super::{OidcClient, OidcError, OidcSettings, http_client};
use crate::clock::SharedClock;

/// How long one request to the provider may take.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// The client of the configured provider, discovered once.
pub struct LazyOidcClient {
    settings: OidcSettings,
    http: reqwest::Client,
    clock: SharedClock,
    client: tokio::sync::OnceCell<OidcClient>,
}

impl std::fmt::Debug for LazyOidcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyOidcClient")
            .field("issuer", &self.settings.issuer)
            .field("discovered", &self.client.initialized())
            .finish_non_exhaustive()
    }
}

impl LazyOidcClient {
    pub fn new(settings: OidcSettings, clock: SharedClock) -> Result<Self, OidcError> {
        Ok(Self {
            settings,
            http: http_client(PROVIDER_TIMEOUT)?,
            clock,
            client: tokio::sync::OnceCell::new(),
        })
    }

    /// The discovered client, discovering it now if that has not succeeded yet.
    pub async fn get(&self) -> Result<&OidcClient, OidcError> {
        self.client
            .get_or_try_init(|| {
                OidcClient::discover(&self.settings, self.http.clone(), self.clock.clone())
            })
            .await
    }
}
