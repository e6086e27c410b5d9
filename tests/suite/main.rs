//! Black-box tests of the real HTTPS server, and the storage contract suite, each run on
//! SQLite and on PostgreSQL (when `SIMVAULT_TEST_DATABASE_URL` was set at build time; without
//! it the PostgreSQL variants are reported as ignored).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// One test binary: its helpers are `pub` for the modules beside them, not for an outside user.
#![allow(unreachable_pub)]

mod helpers;

mod auc;
mod audit;
mod audit_reading;
mod audit_tampering;
mod auth;
mod bulk;
mod bulk_changes;
mod carrier;
mod cli;
mod cli_keys;
mod cli_server;
mod conditions;
mod console;
mod console_audit;
mod console_browser;
mod console_oidc;
mod console_sessions;
mod console_support;
mod crl;
mod devices;
mod errors;
mod export;
mod findings;
mod groups;
mod hsm;
mod identities;
mod integrity;
mod key_rotation;
mod lifecycle;
mod limits;
mod listing;
mod oidc;
mod openapi_contract;
mod ops;
mod pins;
mod policies;
mod profile_carrier;
mod profile_device_platform;
mod profile_iot;
mod profile_telco;
mod profile_telco_webhooks;
mod replicas;
mod schema_parity;
mod sims;
mod store_audit;
mod store_contract;
mod store_corrupt;
mod store_keys;
mod store_status_terms;
mod store_tasks;
mod store_webhooks;
mod task_integrity;
mod tenancy;
mod upstream;
mod vault;
mod vault_at_rest;
mod webhooks;
