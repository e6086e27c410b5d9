//! simvault: a hardened SIM credential vault.
//!
//! Layers, one way only: `api → service → {policy, store, audit, adapters} → domain`. `auth`
//! turns a TLS client certificate or a bearer JWT into a `Principal`; `server` is the TLS
//! accept loop; `startup` wires it all together; `cli` is the command line (`import_file`
//! reads its vendor files).
//! `adapters` speak to the outside systems (the carrier's platform, webhook receivers);
//! `audit` is the audit log's room (records, chain, checkpoints, writer, export); `export` the
//! formats and renderings the HTTP exports and the CLI share.
//!
//! `store` and `vault` are the crate's own: the HTTP layer reaches them only through the use
//! cases (`tests/architecture.rs` holds the line for names the compiler cannot see).
#![forbid(unsafe_code)]

pub mod adapters;
pub mod api;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod domain;
pub mod export;
pub mod import_file;
pub mod pki;
pub mod policy;
pub mod server;
pub mod service;
pub mod startup;
pub mod telemetry;

/// The store, public only with the feature `internals`: the crate's own tests, benches and
/// examples turn it on (through the self dev-dependency in `Cargo.toml`); the release binary
/// is built without it, so nothing outside the crate sees the store.
#[cfg(feature = "internals")]
pub mod store;
// Without `internals` its `pub` items are crate-visible only, by design, and the few that only
// the tests call are unused.
#[cfg(not(feature = "internals"))]
#[allow(unreachable_pub, dead_code)]
pub(crate) mod store;

/// The vault, public only with the feature `internals` (see [`store`]).
#[cfg(feature = "internals")]
pub mod vault;
// Without `internals` its `pub` items are crate-visible only, by design.
#[cfg(not(feature = "internals"))]
#[allow(unreachable_pub)]
pub(crate) mod vault;
