//! simvault: a hardened SIM credential vault.
//!
//! Layers, one way only: `api → service → {policy, store} → domain`. `auth` turns a TLS client
//! certificate or a bearer JWT into a `Principal`; `server` is the TLS accept loop; `startup`
//! wires it all together; `cli` is the command line (`import_file` reads its vendor files).
#![forbid(unsafe_code)]

pub mod api;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod import_file;
pub mod pki;
pub mod policy;
pub mod server;
pub mod service;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod upstream;
pub mod vault;
