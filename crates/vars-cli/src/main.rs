//! `vars`: the project's command line. Each subcommand lives in its own module under
//! `commands/`; add a new one by writing `commands/<name>.rs` with an `Args` struct (clap derive)
//! and a `run(args) -> Result<(), String>`, then listing it in [`commands::Command`].
//!
//! - `vars train`: train any model of the project with progress bars, JSONL metrics, plots and
//!   resumable checkpoints;
//! - `vars eval`: clean and corrupted accuracy of trained weights;
//! - `vars info`: layers, parameter counts, MACs and FLOPs per image;
//! - `vars demo`: self-attention vs VARS-D vs no attention under Gaussian noise, < 5 min on 2 cores;
//! - `vars parity DIR`: the official-fixture parity check;
//! - `vars convert IN.pth OUT.safetensors`: official checkpoints to safetensors;
//! - `vars corrupt --corruption NAME --severity S IN OUT`: one corrupted image (PNG/JPEG);
//! - `vars make-c IN OUT`: a corrupted copy of a data set (ImageNet-C layout or IDX files).
//!
//! `train`, `eval`, `demo` and `parity` take `--device cpu|cuda|cuda:N` (`device.rs`; CUDA with
//! the `cuda` feature): their bodies are generic over the backend and dispatched once.

mod commands;
mod data;
mod device;
mod evaluation;
mod interrupt;
mod macs;
mod models;
mod plot;
mod progress;
mod stats;

use clap::Parser;

/// VARS: vision transformers with sparse-reconstruction attention (ICML 2022), in Rust.
#[derive(Parser, Debug)]
#[command(
    name = "vars",
    version,
    propagate_version = true,
    after_help = "Start with `vars demo` (about 3 minutes on 2 idle cores with a release build).\n\
                  Every subcommand has its own --help."
)]
struct Cli {
    #[command(subcommand)]
    command: commands::Command,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match commands::run(cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("error: {}", f.message);
            }
            std::process::ExitCode::from(f.code)
        }
    }
}
