//! `simvault policy check`.

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate DIR (default: $SIMVAULT_POLICY_DIR, else ./policies).
    Check { dir: Option<PathBuf> },
}

pub(super) fn run(command: PolicyCommand) -> anyhow::Result<()> {
    let PolicyCommand::Check { dir } = command;
    let dir = dir
        .or_else(|| crate::config::env("SIMVAULT_POLICY_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("policies"));
    let policy = crate::policy::Policy::load_dir(&dir)?;
    println!("{}: {policy:?}, valid", dir.display());
    Ok(())
}
