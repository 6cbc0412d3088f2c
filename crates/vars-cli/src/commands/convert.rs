//! `vars convert IN.pth OUT.safetensors`: an official PyTorch checkpoint to safetensors
//! (`vars_vit::io::pth::convert_pth`: restricted pickle reader, nothing in the file executed),
//! recording the feature-normalisation mode VARS-D/SD weights were trained with.

use std::path::PathBuf;

use vars_cpu::{Cpu, CpuDevice};
use vars_vit::io::pth::{convert_pth, FeatureNorm};

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  vars convert rvt_tiny_vars_d.pth rvt_tiny_vars_d.safetensors --feature-norm off\n  vars convert fixtures/official/model_vars_d.pth /tmp/m.safetensors --feature-norm on\n\nThe preferred state dict is written (top level, else model, state_dict, model_state_dict, module,\nmodel_ema, state_dict_ema) under the official tensor names; metadata records the source format,\nthe state dict's key, the epoch and training arguments when present, and vars.feature_norm."
)]
pub struct Args {
    /// The PyTorch checkpoint (zip format, as torch.save writes since 1.6).
    input: PathBuf,
    /// The safetensors file to write (atomically).
    output: PathBuf,
    /// Random-feature normalisation of VARS-D/SD (and Performer) weights: `on` = official HEAD
    /// (2022-07-05), `off` = the 2022-04-19…07-04 code the released RVT-Ti VARS-D/SD weights may
    /// predate. Recorded as `vars.feature_norm`; without it VARS-D/SD weights get a warning.
    #[arg(long, value_name = "on|off")]
    feature_norm: Option<String>,
}

pub fn run(args: Args) -> Result<(), String> {
    let mode = match &args.feature_norm {
        Some(s) => Some(s.parse::<FeatureNorm>().map_err(|e| e.to_string())?),
        None => None,
    };
    if !args.input.is_file() {
        return Err(format!(
            "`{}` is not a file: pass the .pth checkpoint to convert",
            args.input.display()
        ));
    }
    let report = convert_pth::<Cpu>(&args.input, &args.output, &CpuDevice, mode)
        .map_err(|e| e.to_string())?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    let source = if report.source.is_empty() {
        "the top-level state dict".to_string()
    } else {
        format!("state dict `{}`", report.source)
    };
    println!(
        "wrote {} tensors ({source}) to {}",
        report.tensors,
        args.output.display()
    );
    for (k, v) in &report.metadata {
        let v = if v.len() > 120 {
            format!(
                "{}…",
                &v[..v.char_indices().nth(117).map_or(v.len(), |(i, _)| i)]
            )
        } else {
            v.clone()
        };
        println!("  {k} = {v}");
    }
    Ok(())
}
