//! Parity against fixtures of the official PyTorch code (see `vars_vit::parity`).
//!
//! ```text
//! cargo run --release -p vars-vit --bin parity -- DIR [--only NAME] [--forward-tol X] [--grad-tol X]
//!     [--f64] [--device cpu|cuda|cuda:N]
//! ```
//!
//! `DIR` holds `manifest.json` and `<name>.safetensors` per fixture (e.g. `fixtures/official`).
//! Prints, per tensor, the max absolute and relative error; exits 1 when any fixture fails, 2 on
//! a usage or input error (an unavailable device included). `--device cuda` needs the `cuda`
//! feature (`--features cuda`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vars_core::Backend;
use vars_cpu::{Cpu, CpuDevice};
use vars_vit::parity::{check_folder, FixtureReport, Tolerances};

const DEVICE_FORMS: &str = "cpu, cuda (= cuda:0) or cuda:N (N the GPU's index, e.g. cuda:1)";

fn usage() -> ExitCode {
    eprintln!(
        "usage: parity DIR [--only NAME] [--forward-tol X] [--grad-tol X] [--f64] \
         [--device cpu|cuda|cuda:N]\n\
         DIR: a fixture folder in the official format (manifest.json + NAME.safetensors),\n\
         e.g. fixtures/official\n\
         --f64: compute in float64 (shows the float32 reference's own rounding)\n\
         --device: where the models run (default cpu); cuda needs a build with --features cuda"
    );
    ExitCode::from(2)
}

/// `--device`: `None` for the CPU, `Some(N)` for GPU `N`.
fn parse_device(s: &str) -> Result<Option<usize>, String> {
    let t = s.trim().to_ascii_lowercase();
    match t.as_str() {
        "cpu" => Ok(None),
        "cuda" => Ok(Some(0)),
        _ => t
            .strip_prefix("cuda:")
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse().ok())
            .map(Some)
            .ok_or_else(|| format!("--device `{s}` is not a device: use {DEVICE_FORMS}")),
    }
}

fn check<B: Backend>(
    dir: &Path,
    only: Option<&str>,
    tol: Tolerances,
    device: &B::Device,
) -> Result<Vec<FixtureReport>, String> {
    check_folder::<B>(dir, only, tol, device).map_err(|e| e.to_string())
}

/// Runs the check on GPU `ordinal` (or says why it cannot).
#[cfg(feature = "cuda")]
fn check_cuda(
    dir: &Path,
    only: Option<&str>,
    tol: Tolerances,
    ordinal: usize,
) -> Result<Vec<FixtureReport>, String> {
    let device = vars_cuda::CudaDevice::new(ordinal)
        .map_err(|e| format!("--device cuda:{ordinal}: cannot open the CUDA device: {e}"))?;
    check::<vars_cuda::Cuda>(dir, only, tol, &device)
}

#[cfg(not(feature = "cuda"))]
fn check_cuda(
    _dir: &Path,
    _only: Option<&str>,
    _tol: Tolerances,
    _ordinal: usize,
) -> Result<Vec<FixtureReport>, String> {
    Err(
        "this `parity` was built without CUDA support; rebuild with `cargo build --release \
         -p vars-vit --bin parity --features cuda`"
            .into(),
    )
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut dir: Option<PathBuf> = None;
    let mut only = None;
    let mut tol = Tolerances::default();
    let mut device = None;
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
            "--device" => match args.next().as_deref().map(parse_device) {
                Some(Ok(d)) => device = d,
                Some(Err(e)) => {
                    eprintln!("{e}");
                    return usage();
                }
                None => {
                    eprintln!("--device needs a value: {DEVICE_FORMS}");
                    return usage();
                }
            },
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
    let result = match device {
        None => check::<Cpu>(&dir, only.as_deref(), tol, &CpuDevice),
        Some(n) => check_cuda(&dir, only.as_deref(), tol, n),
    };
    match result {
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
