//! Black-box tests of the real HTTPS server, and the storage contract suite, each run on
//! SQLite and (when `SIMVAULT_TEST_DATABASE_URL` is set) on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod auc;
mod audit;
mod auth;
mod bulk;
mod cli;
mod crl;
mod errors;
mod findings;
mod hsm;
mod identities;
mod integrity;
mod lifecycle;
mod limits;
mod listing;
mod ops;
mod pins;
mod policies;
mod replicas;
mod schema_parity;
mod sims;
mod store_audit;
mod store_contract;
mod store_keys;
mod store_tasks;
mod store_webhooks;
mod tenancy;
mod upstream;
mod vault;
mod webhooks;
