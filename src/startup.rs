//! Building the application: open the store, load keys, bind the listener (port 0 allowed, so
//! tests start real servers), and serve until told to stop.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::api::{self, AppState};
use crate::auth::{Authenticator, JwtVerifier};
use crate::clock::{Clock, SharedClock, SystemClock};
use crate::config::Config;
use crate::policy::{Policy, PolicyHandle};
use crate::service::Services;
use crate::store::{Db, keys};
use crate::vault::Keyring;

/// Opens the configured store and brings its schema up to date.
pub async fn open_store(config: &Config) -> anyhow::Result<Db> {
    if config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating {}", config.data_dir.display()))?;
    }
    if config.data_dir.is_dir() {
        crate::store::files::private_dir(&config.data_dir)
            .with_context(|| format!("making {} private (0700)", config.data_dir.display()))?;
    }
    let db = Db::open(config.database_url.as_deref(), &config.sqlite_path())
        .await
        .context("opening the database")?;
    db.migrate().await.context("migrating the database")?;
    Ok(db)
}

/// Loads the root key and proves it is the one this database's keys were wrapped under
/// (recording the proof on first start). A wrong key or passphrase refuses to start, having
/// changed nothing.
pub async fn open_vault(
    config: &Config,
    db: &Db,
    clock: &dyn Clock,
) -> anyhow::Result<Arc<Keyring>> {
    let root = crate::vault::root::load(&config.root_key).context("loading the root key")?;
    let keyring = Keyring::new(root);
    let mismatch = || {
        anyhow::anyhow!(
            "the root key does not match this database (wrong key file, SIMVAULT_ROOT_KEY or passphrase); refusing to start"
        )
    };
    if keys::root_check(db).await?.is_none() {
        let blob = keyring.make_root_check()?;
        let mut tx = db.begin().await?;
        keys::insert_root_check(&mut tx, keyring.format(), &blob, clock.now()).await?;
        tx.commit().await?;
    }
    // Ours, or one another replica stored first: either way it must open with this key.
    let (format, blob) = keys::root_check(db).await?.ok_or_else(mismatch)?;
    if keyring.open_root_check(format, &blob).is_ok() {
        crate::service::integrity::adopt(db, &keyring, clock.now()).await?;
        return Ok(Arc::new(keyring));
    }
    // A root-key rotation that switched the database but died before renaming its new key
    // file into place: finish it.
    if let crate::vault::RootKeySource::File(path) = &config.root_key {
        let next = crate::vault::root::next_path(path);
        if next.exists() {
            let key = crate::vault::root::read_file(&next, || {
                crate::vault::root::passphrase("Root key passphrase: ")
            })?;
            let candidate = Keyring::new(Arc::new(crate::vault::root::LocalRootKey::new(key)));
            if candidate.open_root_check(format, &blob).is_ok() {
                std::fs::rename(&next, path)
                    .context("finishing an interrupted root-key rotation")?;
                tracing::warn!(path = %path.display(), "finished an interrupted root-key rotation");
                crate::service::integrity::adopt(db, &candidate, clock.now()).await?;
                return Ok(Arc::new(candidate));
            }
        }
    }
    Err(mismatch())
}

/// The configured policy set: `SIMVAULT_POLICY_DIR`, else the built-in one.
pub fn load_policy(config: &Config) -> anyhow::Result<Policy> {
    match &config.policy_dir {
        Some(dir) => Policy::load_dir(dir),
        None => Policy::builtin(),
    }
    .context("loading the policies")
}

/// The use cases over an open store and vault (see [`Services::new`]).
pub fn services(
    config: &Config,
    db: Db,
    clock: SharedClock,
    keyring: Arc<Keyring>,
) -> anyhow::Result<Services> {
    Services::new(config, db, clock, keyring)
}

/// The identity provider's client for console sign-in, when one is configured, discovered
/// now if the provider answers. A provider down at start does not stop the service: discovery
/// is tried again at the first sign-in through it (which fails until the provider answers),
/// while console links and the API work as ever.
async fn oidc_client(
    config: &Config,
    clock: SharedClock,
) -> anyhow::Result<Option<Arc<crate::auth::oidc::LazyOidcClient>>> {
    let Some(settings) = &config.oidc else {
        return Ok(None);
    };
    let client = crate::auth::oidc::LazyOidcClient::new(settings.clone(), clock)
        .context("setting up OpenID Connect sign-in")?;
    match client.get().await {
        Ok(_) => tracing::info!(issuer = %settings.issuer, "OpenID provider discovered"),
        Err(e) => tracing::warn!(
            issuer = %settings.issuer,
            reason = %e,
            "OpenID provider not reachable at start: discovery is tried again at the first console sign-in"
        ),
    }
    Ok(Some(Arc::new(client)))
}

/// A running server.
pub struct Application {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    stop_workers: watch::Sender<bool>,
    workers: JoinHandle<()>,
    db: Db,
    policy: PolicyHandle,
    tls: Arc<crate::server::tls::ServerTls>,
    config: Config,
    signals: Option<Signals>,
}

impl Application {
    /// Builds the server from configuration, with the system clock, obeying process signals
    /// (see [`Application::run_until_signalled`]).
    pub async fn build(config: &Config) -> anyhow::Result<Application> {
        let signals = Signals::register()?;
        let db = open_store(config).await?;
        let mut app = Self::build_with(config, db, Arc::new(SystemClock)).await?;
        app.signals = Some(signals);
        Ok(app)
    }

    /// Builds the server on an open store with a given clock (tests).
    pub async fn build_with(
        config: &Config,
        db: Db,
        clock: SharedClock,
    ) -> anyhow::Result<Application> {
        let tls = crate::server::tls::ServerTls::load(&config.tls)?;
        let jwt = if config.jwt.keys.exists() {
            Some(
                JwtVerifier::load(
                    &config.jwt.keys,
                    config.jwt.algorithm,
                    &config.jwt.issuer,
                    &config.jwt.audience,
                    config.jwt.claims.clone(),
                )?
                .with_max_lifetime(config.jwt.max_lifetime),
            )
        } else {
            tracing::warn!(path = %config.jwt.keys.display(), "no JWT verification keys: bearer tokens will be refused");
            None
        };
        let keyring = open_vault(config, &db, clock.as_ref()).await?;
        let services = Arc::new(services(config, db.clone(), clock.clone(), keyring)?);
        let oidc = oidc_client(config, clock.clone()).await?;
        let auth = Arc::new(Authenticator::new(
            db.clone(),
            jwt,
            clock,
            services.integrity_key()?,
            config.identity_cache,
        ));
        let state = AppState {
            services: services.clone(),
            auth: auth.clone(),
            metrics: crate::telemetry::metrics_handle(),
            large_bodies: api::large_body::LargeBodies::new(
                config.limits.large_bodies_per_principal,
            ),
            tls: tls.clone(),
            oidc,
        };
        let app = api::router(state);
        let listener = TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let addr = listener.local_addr()?;
        let (stop_workers, workers_stop) = watch::channel(false);
        let workers = tokio::spawn({
            let tasks = crate::service::tasks::worker(
                services.tasks().clone(),
                config.tasks,
                workers_stop.clone(),
            );
            let checkpoints = crate::service::audit::checkpoint_worker(
                services.audit().clone(),
                config.audit.checkpoint_interval,
                workers_stop.clone(),
            );
            let sync = crate::service::sync::worker(
                services.lifecycle().clone(),
                config.sync,
                workers_stop.clone(),
            );
            let webhooks =
                crate::service::webhooks::worker(services.webhooks().clone(), workers_stop.clone());
            let refusals =
                crate::service::refusals::worker(services.refusals().clone(), workers_stop.clone());
            async move {
                tokio::join!(tasks, checkpoints, sync, webhooks, refusals);
            }
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(crate::server::serve(
            listener,
            tls.clone(),
            app,
            auth,
            config.limits,
            async move {
                let _ = stopped.await;
            },
        ));
        tracing::info!(%addr, "simvault listening (HTTPS)");
        Ok(Application {
            addr,
            stop: Some(stop),
            task,
            stop_workers,
            workers,
            db,
            policy: services.policy_handle(),
            tls,
            config: config.clone(),
            signals: None,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until SIGTERM or Ctrl-C, then drains in-flight requests and closes the store.
    /// SIGHUP reloads the policies and the TLS files (an invalid set is refused and the old one
    /// kept).
    pub async fn run_until_signalled(mut self) -> anyhow::Result<()> {
        let mut signals = match self.signals.take() {
            Some(s) => s,
            None => Signals::register()?,
        };
        loop {
            match signals.next().await {
                Signal::Stop => break,
                Signal::Reload => {
                    if let Err(e) = self.reload_policies() {
                        tracing::error!(error = %format!("{e:#}"), "policy reload refused; the previous policies stay in force");
                    }
                    if let Err(e) = self.reload_tls() {
                        tracing::error!(error = %format!("{e:#}"), "TLS reload refused; the previous certificates and CRLs stay in force");
                    }
                }
            }
        }
        tracing::info!("shutdown signal received");
        self.stop().await;
        Ok(())
    }

    /// Loads the configured policies again and puts them in force if they are valid.
    pub fn reload_policies(&self) -> anyhow::Result<()> {
        let policy = load_policy(&self.config)?;
        self.policy.replace(policy);
        tracing::info!("policies reloaded");
        Ok(())
    }

    /// Loads the server certificate, client CA and CRLs again and puts them in force for new
    /// connections if they are valid (a certificate revoked in a new CRL is refused from then on).
    pub fn reload_tls(&self) -> anyhow::Result<()> {
        self.tls.reload()?;
        if self
            .tls
            .crl_expired(crate::clock::Clock::now_secs(&SystemClock))
        {
            tracing::warn!("a client CRL is past its nextUpdate: publish a fresh one");
        }
        tracing::info!("TLS certificates and CRLs reloaded");
        Ok(())
    }

    /// Stops accepting, drains, and closes the store.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
        let _ = self.stop_workers.send(true);
        let _ = (&mut self.workers).await;
        self.db.close().await;
    }
}

/// What a signal asks of the server.
enum Signal {
    Stop,
    Reload,
}

/// The process signals a server obeys (SIGTERM and Ctrl-C stop, SIGHUP reloads policies),
/// registered before the server announces itself so that none is missed.
pub struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn register() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                hup: signal(SignalKind::hangup())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => Signal::Stop,
                _ = self.term.recv() => Signal::Stop,
                _ = self.hup.recv() => Signal::Reload,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Stop
        }
    }
}
