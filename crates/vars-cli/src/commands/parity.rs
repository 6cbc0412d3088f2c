//! `vars parity DIR`: the models against fixtures of the official PyTorch code
//! (`vars_vit::parity`). Same output and exit codes as vars-vit's `parity` binary: 0 when every
//! fixture passes, 1 when one fails, 2 on a usage or input error.

use std::path::PathBuf;

use vars_core::Backend;
use vars_vit::parity::{check_folder, Tolerances};

use super::Failure;
use crate::device::{on_device, parse_device, DeviceSpec};

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  vars parity fixtures/official\n  vars parity fixtures/official --only model_vars_d --f64\n\nPer tensor it prints max|Δ| and max|Δ|/max|ref|; tolerances are relative to max|ref|.\nExit status: 0 all passed, 1 a fixture failed, 2 usage or input error."
)]
pub struct Args {
    /// A fixture folder in the official format (manifest.json + NAME.safetensors), e.g.
    /// fixtures/official.
    dir: PathBuf,
    /// Check only this fixture (e.g. model_vars_d, block_self_att).
    #[arg(long)]
    only: Option<String>,
    /// Relative tolerance of forward outputs and activations.
    #[arg(long, default_value_t = Tolerances::default().forward)]
    forward_tol: f64,
    /// Relative tolerance of gradients.
    #[arg(long, default_value_t = Tolerances::default().grad)]
    grad_tol: f64,
    /// Compute in float64 (shows the float32 reference's own rounding).
    #[arg(long)]
    f64: bool,
    /// Where the models run: cpu, cuda (GPU 0) or cuda:N; CUDA needs a build with `--features
    /// cuda`.
    #[arg(long, default_value = "cpu", value_parser = parse_device, value_name = "cpu|cuda|cuda:N")]
    device: DeviceSpec,
}

fn check<B: Backend>(
    args: &Args,
    tol: Tolerances,
    device: &B::Device,
) -> Result<Vec<vars_vit::parity::FixtureReport>, Failure> {
    check_folder::<B>(&args.dir, args.only.as_deref(), tol, device).map_err(|e| Failure {
        message: e.to_string(),
        code: 2,
    })
}

pub fn run(args: Args) -> Result<(), Failure> {
    let mut tol = Tolerances {
        forward: args.forward_tol,
        grad: args.grad_tol,
        ..Tolerances::default()
    };
    if args.f64 {
        tol.compute = vars_core::DType::F64;
    }
    // an unavailable device is an input error (exit 2), not a failed fixture
    let device = args
        .device
        .open()
        .map_err(|message| Failure { message, code: 2 })?;
    let reports = on_device!(device, |B, dev| check::<B>(&args, tol, &dev))?;
    let mut failed = Vec::new();
    for r in &reports {
        println!("{}", r.render());
        if !r.passed() {
            failed.push(r.name.clone());
        }
    }
    if failed.is_empty() {
        println!("all {} fixtures passed", reports.len());
        Ok(())
    } else {
        println!("FAILED: {}", failed.join(", "));
        Err(Failure {
            message: String::new(),
            code: 1,
        })
    }
}
