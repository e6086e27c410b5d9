//! Tells the test suite whether a PostgreSQL store is configured: with
//! `SIMVAULT_TEST_DATABASE_URL` set (not empty) when the tests are built, `cfg(simvault_pg)` is
//! on and the PostgreSQL variants of the store tests run; without it they are reported as
//! ignored, with that reason.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(simvault_pg)");
    println!("cargo::rerun-if-env-changed=SIMVAULT_TEST_DATABASE_URL");
    if std::env::var_os("SIMVAULT_TEST_DATABASE_URL").is_some_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=simvault_pg");
    }
}
