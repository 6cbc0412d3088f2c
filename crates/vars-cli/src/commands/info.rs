//! `vars info`: a model's layers with their parameter counts (trainable / frozen, as the
//! reference's tables count them) and analytic MACs per image (`crate::macs`; 1 MAC = 2 FLOPs).

use std::collections::BTreeMap;

use serde::Serialize;
use vars_cpu::{Cpu, CpuDevice};
use vars_vit::{count_parameters, ParamKind, Parameters};

use super::train::fmt_int;
use crate::macs::{cost_table, layer_of};
use crate::models::{parse_attention, ModelSpec, MODEL_NAMES};

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
vars info --model rvt_tiny --attention vars_d        # 8,029,312 trainable, ~1.28 GMAC\n  \
vars info --model rvt_small --attention vars_sd --json\n  \
vars info --model small --attention self-att --depth 2 --heads 2\n\n\
MACs count matrix products and convolutions only (vars-spec §5): FFTs, normalisations, softmax\n\
and shrinks are not counted. FLOP = 2·MAC.")]
pub struct Args {
    /// Model: small, rvt_tiny, rvt_small, rvt_base, rvt_*_plus, deit_tiny, deit_small, deit_base.
    #[arg(long, default_value = "rvt_tiny")]
    model: String,
    /// Attention: self-att, perf, vars_d, vars_sd, vars_s.
    #[arg(long, default_value = "vars_d")]
    attention: String,
    /// Input side [default: 28 for small, 224 otherwise].
    #[arg(long)]
    image_size: Option<usize>,
    /// Input channels [default: 1 for small, 3 otherwise].
    #[arg(long)]
    in_chans: Option<usize>,
    /// Output classes [default: 10 for small, 1000 otherwise].
    #[arg(long)]
    classes: Option<usize>,
    /// `--model small`: blocks [default: 4].
    #[arg(long)]
    depth: Option<usize>,
    /// `--model small`: heads [default: 4].
    #[arg(long)]
    heads: Option<usize>,
    /// `--model small`: width per head [default: 16].
    #[arg(long)]
    head_dim: Option<usize>,
    /// The attention-ablated twin (attention output replaced by zero).
    #[arg(long)]
    ablate_attention: bool,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Row {
    layer: String,
    kind: String,
    trainable: usize,
    frozen: usize,
    attention_mac: u64,
    mac: u64,
}

#[derive(Serialize)]
struct Report {
    model: String,
    trainable: usize,
    frozen: usize,
    buffers: usize,
    mac_per_image: u64,
    flop_per_image: u64,
    attention_mac_per_image: u64,
    layers: Vec<Row>,
    note: &'static str,
}

const NOTE: &str = "MAC = multiply-accumulates of matrix products and convolutions per image \
(FFTs, normalisations, softmax, shrinks not counted); FLOP = 2·MAC";

fn g(n: u64) -> String {
    if n == 0 {
        "0".into()
    } else if n >= 1_000_000_000 {
        format!("{:.3} G", n as f64 / 1e9)
    } else if n >= 1_000_000 {
        format!("{:.2} M", n as f64 / 1e6)
    } else {
        format!("{:.1} K", n as f64 / 1e3)
    }
}

pub fn run(args: Args) -> Result<(), String> {
    let small = args.model == "small";
    let kind = parse_attention(&args.attention)?;
    if !small && !args.model.starts_with("rvt_") && !args.model.starts_with("deit_") {
        return Err(format!(
            "unknown model `{}`: use one of {MODEL_NAMES}",
            args.model
        ));
    }
    let mut spec = ModelSpec::new(
        &args.model,
        kind,
        args.image_size.unwrap_or(if small { 28 } else { 224 }),
        args.in_chans.unwrap_or(if small { 1 } else { 3 }),
    );
    spec.classes = args.classes.unwrap_or(if small { 10 } else { 1000 });
    spec.depth = args.depth;
    spec.heads = args.heads;
    spec.head_dim = args.head_dim;
    spec.ablate_attention = args.ablate_attention;
    spec.validate()?;
    let costs = cost_table(&spec)?;
    let net = spec.build::<Cpu>(&CpuDevice, 0)?;
    let counts = count_parameters(&net);
    let mut per_layer: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    net.visit(&mut |name, t, kind| {
        let e = per_layer.entry(layer_of(name)).or_default();
        match kind {
            ParamKind::Trainable => e.0 += t.elem_count(),
            ParamKind::Frozen => e.1 += t.elem_count(),
            ParamKind::Buffer => {}
        }
    });
    let rows: Vec<Row> = costs
        .iter()
        .map(|c| {
            let (t, f) = per_layer.get(&c.name).copied().unwrap_or_default();
            Row {
                layer: c.name.clone(),
                kind: c.kind.clone(),
                trainable: t,
                frozen: f,
                attention_mac: c.attention,
                mac: c.total(),
            }
        })
        .collect();
    let total: u64 = rows.iter().map(|r| r.mac).sum();
    let attn: u64 = rows.iter().map(|r| r.attention_mac).sum();
    let report = Report {
        model: spec.describe(),
        trainable: counts.trainable,
        frozen: counts.frozen,
        buffers: counts.buffers,
        mac_per_image: total,
        flop_per_image: 2 * total,
        attention_mac_per_image: attn,
        layers: rows,
        note: NOTE,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    println!("{}", report.model);
    println!(
        "{:<26} {:<22} {:>12} {:>10} {:>14} {:>12}",
        "layer", "kind", "trainable", "frozen", "attention MAC", "MAC"
    );
    for r in &report.layers {
        println!(
            "{:<26} {:<22} {:>12} {:>10} {:>14} {:>12}",
            r.layer,
            r.kind,
            fmt_int(r.trainable),
            fmt_int(r.frozen),
            g(r.attention_mac),
            g(r.mac)
        );
    }
    println!(
        "{:<26} {:<22} {:>12} {:>10} {:>14} {:>12}",
        "total",
        "",
        fmt_int(report.trainable),
        fmt_int(report.frozen),
        g(attn),
        g(total)
    );
    println!(
        "parameters: {} trainable, {} frozen ({} buffer elements not counted)",
        fmt_int(report.trainable),
        fmt_int(report.frozen),
        fmt_int(report.buffers)
    );
    println!(
        "per image: {} MAC ({:.3} GMAC); FLOP = 2·MAC: {} FLOP ({:.3} GFLOP)",
        fmt_int(total as usize),
        total as f64 / 1e9,
        fmt_int(2 * total as usize),
        2.0 * total as f64 / 1e9
    );
    println!("{NOTE}");
    Ok(())
}
