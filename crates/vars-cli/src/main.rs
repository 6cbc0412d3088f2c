//! `vars`: the project's command line. Each subcommand lives in its own module under
//! `commands/`; add a new one by writing `commands/<name>.rs` with an `Args` struct (clap derive)
//! and a `run(args) -> Result<(), String>`, then listing it in [`commands::Command`].
//!
//! - `vars corrupt --corruption NAME --severity S IN OUT`: one corrupted image (PNG/JPEG);
//! - `vars make-c IN OUT`: a corrupted copy of a data set (ImageNet-C layout or IDX files).

mod commands;

use clap::Parser;

/// VARS: vision transformers with sparse-reconstruction attention (ICML 2022), in Rust.
#[derive(Parser, Debug)]
#[command(name = "vars", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: commands::Command,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match commands::run(cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}
