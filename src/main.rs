//! The `simvault` binary: parses the command line and hands over to the library.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let log = simvault::config::env("SIMVAULT_LOG").unwrap_or_else(|| "info".into());
    let json = simvault::config::env("SIMVAULT_LOG_FORMAT").as_deref() == Some("json");
    simvault::telemetry::init_logging(&log, json);
    match simvault::cli::run(simvault::cli::Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
