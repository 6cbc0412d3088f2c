//! Parity against fixtures of the official PyTorch code (see `vars_vit::parity`).
//!
//! ```text
//! cargo run --release -p vars-vit --bin parity -- DIR [--only NAME] [--forward-tol X] [--grad-tol X]
//! ```
//!
//! `DIR` holds `manifest.json` and `<name>.safetensors` per fixture (e.g. `fixtures/official`).
//! Prints, per tensor, the max absolute and relative error; exits 1 when any fixture fails, 2 on
//! a usage or input error.

use std::path::PathBuf;
use std::process::ExitCode;
use vars_cpu::{Cpu, CpuDevice};
use vars_vit::parity::{check_folder, Tolerances};

fn usage() -> ExitCode {
    eprintln!(
        "usage: parity DIR [--only NAME] [--forward-tol X] [--grad-tol X] [--f64]\n\
         DIR: a fixture folder in the official format (manifest.json + NAME.safetensors),\n\
         e.g. fixtures/official\n\
         --f64: compute in float64 (shows the float32 reference's own rounding)"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut dir: Option<PathBuf> = None;
    let mut only = None;
    let mut tol = Tolerances::default();
    while let Some(a) = args.next() {
        let mut number = |what: &str| -> Option<f64> {
            let v = args.next().and_then(|v| v.parse::<f64>().ok());
            if v.is_none() {
                eprintln!("{what} needs a number");
            }
            v
        };
        match a.as_str() {
            "--only" => only = args.next(),
            "--forward-tol" => match number("--forward-tol") {
                Some(v) => tol.forward = v,
                None => return usage(),
            },
            "--grad-tol" => match number("--grad-tol") {
                Some(v) => tol.grad = v,
                None => return usage(),
            },
            "--f64" => tol.compute = vars_core::DType::F64,
            "-h" | "--help" => return usage(),
            _ if dir.is_none() && !a.starts_with('-') => dir = Some(PathBuf::from(a)),
            _ => {
                eprintln!("unexpected argument `{a}`");
                return usage();
            }
        }
    }
    let Some(dir) = dir else {
        return usage();
    };
    match check_folder::<Cpu>(&dir, only.as_deref(), tol, &CpuDevice) {
        Ok(reports) => {
            let mut failed = Vec::new();
            for r in &reports {
                println!("{}", r.render());
                if !r.passed() {
                    failed.push(r.name.clone());
                }
            }
            if failed.is_empty() {
                println!("all {} fixtures passed", reports.len());
                ExitCode::SUCCESS
            } else {
                println!("FAILED: {}", failed.join(", "));
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
