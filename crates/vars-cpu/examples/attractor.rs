//! The attractor at work: recovering a planted sparse code from a noisy signal over a random
//! dictionary with ISTA, FISTA (plain and with restart) and the LCA ODE (Euler, RK4), printing
//! the energy gap and the sparsity per step, then the layers' official 5-step GELU iteration on
//! the same problem, and writing a figure.
//!
//! `cargo run --release -p vars-cpu --example attractor [-- OUT.png]`
//!
//! The figure (default `target/attractor.png`): left, `log10(E(a_k) − E*)` against the step for
//! each solver (clipped to [−12, 2]); right, the planted code (grey stems) and the code FISTA-R recovers (green dots),
//! atom by atom.
//!
//! Everything goes through `vars_core::sparse` on the CPU backend in f64; `E*` is the minimum
//! found by FISTA with restart run to a fixed-point residual of 1e-12.

use std::error::Error;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::time::Instant;

use vars_core::nn::Shrink;
use vars_core::rng;
use vars_core::sparse::{
    exact_lambda_max, official_step_constant, power_iteration, solve, Diagnostics, EnergyKind,
    IstaInit, LcaConfig, SolverConfig, SparseProblem, StepSize, Stop,
};
use vars_core::Tensor;
use vars_cpu::{Cpu, CpuDevice};

/// Signal length, atoms, planted non-zeros, noise level, sparsity weight, steps per solver.
const N: usize = 64;
const M: usize = 128;
const PLANTED: usize = 8;
const NOISE: f64 = 0.02;
const LAM: f64 = 0.05;
const STEPS: usize = 300;
const SEED: u64 = 2022;

const NAMES: [&str; 5] = ["ISTA", "FISTA", "FISTA-R", "LCA-EULER", "LCA-RK4"];
const COLORS: [[u8; 3]; 5] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
];

fn main() -> Result<(), Box<dyn Error>> {
    let out = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../target/attractor.png"
            ))
        });
    let dev = CpuDevice;
    let t0 = Instant::now();

    // ---- a planted sparse code -----------------------------------------------------------------
    let mut d: Vec<f64> = (0..(N * M) as u64).map(|i| rng::normal(SEED, i)).collect();
    for j in 0..M {
        let norm = (0..N).map(|i| d[i * M + j].powi(2)).sum::<f64>().sqrt();
        (0..N).for_each(|i| d[i * M + j] /= norm);
    }
    let mut truth = vec![0.0; M];
    let mut placed = 0u64;
    while truth.iter().filter(|v| **v != 0.0).count() < PLANTED {
        let j = (rng::bits(SEED + 1, placed) % M as u64) as usize;
        let u = rng::uniform(SEED + 2, placed);
        truth[j] = if u < 0.5 { -(1.0 + 2.0 * u) } else { 2.0 * u };
        placed += 1;
    }
    let x: Vec<f64> = (0..N)
        .map(|i| {
            (0..M).map(|j| d[i * M + j] * truth[j]).sum::<f64>()
                + NOISE * rng::normal(SEED + 3, i as u64)
        })
        .collect();
    let dict = Tensor::<Cpu>::from_vec(d, [N, M], &dev)?;
    let signal = Tensor::<Cpu>::from_vec(x, [N, 1], &dev)?;
    let problem = SparseProblem::lasso(&dict, &signal, LAM)?;

    let gersh = official_step_constant(problem.gram())?.to_vec_f64()?[0];
    let power = power_iteration(problem.gram(), 50)?.to_vec_f64()?[0];
    let exact = exact_lambda_max(problem.gram())?[0];
    println!(
        "dictionary {N}×{M} (unit Gaussian atoms), {PLANTED} planted atoms, noise σ = {NOISE}, λ = {LAM}"
    );
    println!(
        "step constant L: Gershgorin + 1 (official) = {gersh:.3}, power iteration (50 its) = \
         {power:.4}, exact λ_max (Jacobi) = {exact:.4}; the solvers use the power estimate + 1%"
    );

    // ---- the minimum, then each solver's trajectory ------------------------------------------
    let star = solve(
        &problem,
        &SolverConfig::fista_restart(Stop::Tolerance {
            tol: 1e-12,
            max_steps: 100_000,
        }),
    )?;
    let e_star = problem.energy(&star.code)?.to_vec_f64()?[0];
    println!(
        "E* = {e_star:.10} (FISTA-R, {} steps to a residual of 1e-12)\n",
        star.steps
    );

    let step = StepSize::PowerIteration {
        iters: 50,
        margin: 0.01,
    };
    let diag = Diagnostics {
        sparsity_eps: Some(1e-3),
        ..Diagnostics::all()
    };
    let stop = Stop::Steps(STEPS);
    let configs = [
        SolverConfig::ista(stop).with_init(IstaInit::Zero),
        SolverConfig::fista(stop).with_init(IstaInit::Zero),
        SolverConfig::fista_restart(stop).with_init(IstaInit::Zero),
        SolverConfig::lca(LcaConfig::euler(), stop),
        SolverConfig::lca(LcaConfig::rk4(), stop),
    ];
    let mut gaps: Vec<Vec<f64>> = Vec::new();
    let mut nonzeros: Vec<Vec<usize>> = Vec::new();
    let mut finals = Vec::new();
    for cfg in configs {
        let cfg = cfg.with_step(step.clone()).with_diagnostics(diag);
        let sol = solve(&problem, &cfg)?;
        let trace = sol.trace.expect("diagnostics are on");
        assert_eq!(trace.energy_kind, EnergyKind::Exact);
        gaps.push(
            trace
                .records
                .iter()
                .map(|r| r.total_energy().unwrap() - e_star)
                .collect(),
        );
        nonzeros.push(
            trace
                .records
                .iter()
                .map(|r| {
                    let s = r.sparsity.unwrap();
                    s.total - s.exact_zeros
                })
                .collect(),
        );
        finals.push((sol.code.to_vec_f64()?, trace.last().unwrap().clone()));
    }

    println!("energy gap E(a_k) − E* and non-zero atoms per step (LCA: one step = dt = τ/L)");
    print!("{:>5} |", "step");
    for name in NAMES {
        print!(" {name:>16}");
    }
    println!();
    for k in [0, 1, 2, 3, 5, 10, 20, 30, 50, 75, 100, 150, 200, 250, 300] {
        print!("{k:>5} |");
        for s in 0..NAMES.len() {
            print!(" {:>10.3e} ({:>3})", gaps[s][k].max(0.0), nonzeros[s][k]);
        }
        println!();
    }

    println!("\nafter {STEPS} steps:");
    for (s, (code, last)) in finals.iter().enumerate() {
        let support: Vec<usize> = (0..M).filter(|&j| code[j] != 0.0).collect();
        let hits = support.iter().filter(|&&j| truth[j] != 0.0).count();
        let err = (0..M)
            .map(|j| (code[j] - truth[j]).powi(2))
            .sum::<f64>()
            .sqrt()
            / truth.iter().map(|v| v * v).sum::<f64>().sqrt();
        println!(
            "  {:<9} support {:>3} atoms, {hits}/{PLANTED} planted found; ‖a − a_true‖/‖a_true‖ = \
             {err:.3}; ‖x − Da‖ = {:.4}; KKT violation {:.1e}; fixed-point residual {:.1e}",
            NAMES[s],
            support.len(),
            last.residual_norm.as_ref().unwrap()[0],
            last.kkt_violation.unwrap(),
            last.fixed_point_residual.unwrap(),
        );
    }

    // ---- what the layer runs: official HEAD on the same problem ------------------------------
    let gelu =
        SparseProblem::from_gram(problem.gram(), problem.drive(), problem.lam(), Shrink::Gelu)?
            .with_signal_norm_sq(&signal.sqr()?.sum_all()?)?;
    let official = solve(
        &gelu,
        &SolverConfig::official(5).with_diagnostics(Diagnostics::all()),
    )?;
    let trace = official.trace.unwrap();
    println!(
        "\nofficial layer iteration (GELU shrink, a₀ = S(b; λ), T = 5, Gershgorin L = {gersh:.2}); \
         energy kind {:?}:",
        trace.energy_kind
    );
    for r in &trace.records {
        let sp = r.sparsity.unwrap();
        println!(
            "  step {}: surrogate E − E* = {:>9.3e}, fixed-point residual {:.2e}, exact zeros {:>3}, |a| < 1e-3: {:>3}",
            r.step,
            r.total_energy().unwrap() - e_star,
            r.fixed_point_residual.unwrap(),
            sp.exact_zeros,
            sp.below_eps,
        );
    }

    // ---- the figure -----------------------------------------------------------------------------
    let recovered = &finals[2].0;
    let mut img = Canvas::new(980, 480);
    plot_energy(&mut img, &gaps);
    plot_codes(&mut img, &truth, recovered);
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    img.write_png(&out)?;
    println!(
        "\nwrote {} ({} ms in all)",
        std::fs::canonicalize(&out)?.display(),
        t0.elapsed().as_millis()
    );
    Ok(())
}

// ---- plotting: a tiny RGB canvas with lines, dots and a 3×5 pixel font ---------------------------

struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Self {
        Canvas {
            w,
            h,
            px: vec![255; w * h * 3],
        }
    }

    fn dot(&mut self, x: i64, y: i64, r: i64, c: [u8; 3]) {
        for dy in -r..=r {
            for dx in -r..=r {
                let (px, py) = (x + dx, y + dy);
                if px >= 0 && py >= 0 && (px as usize) < self.w && (py as usize) < self.h {
                    let i = (py as usize * self.w + px as usize) * 3;
                    self.px[i..i + 3].copy_from_slice(&c);
                }
            }
        }
    }

    fn line(&mut self, (x0, y0): (f64, f64), (x1, y1): (f64, f64), r: i64, c: [u8; 3]) {
        let n = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
        for i in 0..=n {
            let t = i as f64 / n as f64;
            self.dot(
                (x0 + t * (x1 - x0)).round() as i64,
                (y0 + t * (y1 - y0)).round() as i64,
                r,
                c,
            );
        }
    }

    /// Text in a 3×5 font scaled by 2, top-left at `(x, y)`.
    fn text(&mut self, x: i64, y: i64, s: &str, c: [u8; 3]) {
        for (k, ch) in s.chars().enumerate() {
            let rows = glyph(ch);
            for (r, bits) in rows.iter().enumerate() {
                for col in 0..3 {
                    if bits & (4 >> col) != 0 {
                        let (px, py) = (x + 8 * k as i64 + 2 * col, y + 2 * r as i64);
                        for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                            self.dot(px + dx, py + dy, 0, c);
                        }
                    }
                }
            }
        }
    }

    fn write_png(&self, path: &std::path::Path) -> Result<(), Box<dyn Error>> {
        let file = BufWriter::new(File::create(path)?);
        let mut encoder = png::Encoder::new(file, self.w as u32, self.h as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&self.px)?;
        writer.finish()?;
        Ok(())
    }
}

fn glyph(c: char) -> [u8; 5] {
    match c.to_ascii_uppercase() {
        'A' => [2, 5, 7, 5, 5],
        'B' => [6, 5, 6, 5, 6],
        'C' => [3, 4, 4, 4, 3],
        'D' => [6, 5, 5, 5, 6],
        'E' => [7, 4, 6, 4, 7],
        'F' => [7, 4, 6, 4, 4],
        'G' => [3, 4, 5, 5, 3],
        'H' => [5, 5, 7, 5, 5],
        'I' => [7, 2, 2, 2, 7],
        'K' => [5, 5, 6, 5, 5],
        'L' => [4, 4, 4, 4, 7],
        'M' => [5, 7, 7, 5, 5],
        'N' => [6, 5, 5, 5, 5],
        'O' => [2, 5, 5, 5, 2],
        'P' => [6, 5, 6, 4, 4],
        'R' => [6, 5, 6, 5, 5],
        'S' => [3, 4, 2, 1, 6],
        'T' => [7, 2, 2, 2, 2],
        'U' => [5, 5, 5, 5, 7],
        'V' => [5, 5, 5, 5, 2],
        'W' => [5, 5, 7, 7, 5],
        'X' => [5, 5, 2, 5, 5],
        'Y' => [5, 5, 2, 2, 2],
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [6, 1, 2, 4, 7],
        '3' => [6, 1, 2, 1, 6],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 6, 1, 6],
        '6' => [3, 4, 7, 5, 7],
        '7' => [7, 1, 2, 2, 2],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 6],
        '-' => [0, 0, 7, 0, 0],
        '+' => [0, 2, 7, 2, 0],
        '*' => [5, 2, 5, 0, 0],
        '.' => [0, 0, 0, 0, 2],
        '(' => [1, 2, 2, 2, 1],
        ')' => [4, 2, 2, 2, 4],
        '=' => [0, 7, 0, 7, 0],
        '/' => [1, 1, 2, 4, 4],
        _ => [0; 5],
    }
}

const GREY: [u8; 3] = [120, 120, 120];
const BLACK: [u8; 3] = [30, 30, 30];
const LIGHT: [u8; 3] = [225, 225, 225];

/// Left panel: log10 of the energy gap per step, one curve per solver.
fn plot_energy(img: &mut Canvas, gaps: &[Vec<f64>]) {
    let (x0, x1, y0, y1) = (70.0, 460.0, 40.0, 420.0);
    let (lo, hi) = (-12.0, 2.0);
    let sx = |k: f64| x0 + (x1 - x0) * k / STEPS as f64;
    let sy = |g: f64| {
        let v = g.max(1e-300).log10().clamp(lo, hi);
        y1 - (y1 - y0) * (v - lo) / (hi - lo)
    };
    for e in (lo as i64..=hi as i64).step_by(2) {
        let y = sy(10f64.powi(e as i32));
        img.line((x0, y), (x1, y), 0, LIGHT);
        img.text(x0 as i64 - 30, y as i64 - 4, &format!("{e}"), GREY);
    }
    for k in (0..=STEPS).step_by(100) {
        img.text(sx(k as f64) as i64 - 8, y1 as i64 + 8, &k.to_string(), GREY);
    }
    img.line((x0, y0), (x0, y1), 0, BLACK);
    img.line((x0, y1), (x1, y1), 0, BLACK);
    img.text(x0 as i64, 12, "LOG10 E-E* PER STEP", BLACK);
    img.text(x1 as i64 - 30, y1 as i64 + 24, "STEP", BLACK);
    for (s, g) in gaps.iter().enumerate() {
        for k in 1..g.len() {
            img.line(
                (sx((k - 1) as f64), sy(g[k - 1])),
                (sx(k as f64), sy(g[k])),
                1,
                COLORS[s],
            );
        }
    }
    // The legend, top right, on a white box above the curves.
    let (lx, ly) = (x1 as i64 - 110, y0 as i64 + 8);
    for y in ly - 6..ly + 16 * NAMES.len() as i64 {
        img.line(
            (lx as f64 - 10.0, y as f64),
            (x1 - 4.0, y as f64),
            0,
            [255; 3],
        );
    }
    for (s, name) in NAMES.iter().enumerate() {
        let y = ly + 16 * s as i64;
        img.dot(lx, y + 4, 4, COLORS[s]);
        img.text(lx + 10, y, name, BLACK);
    }
}

/// Right panel: the planted code (grey stems) and the recovered one (green dots) per atom.
fn plot_codes(img: &mut Canvas, truth: &[f64], recovered: &[f64]) {
    let (x0, x1, y0, y1) = (540.0, 950.0, 40.0, 420.0);
    let amp = truth
        .iter()
        .chain(recovered)
        .fold(0.0f64, |a, v| a.max(v.abs()))
        * 1.1;
    let sx = |j: usize| x0 + (x1 - x0) * (j as f64 + 0.5) / M as f64;
    let sy = |v: f64| (y0 + y1) / 2.0 - (y1 - y0) / 2.0 * v / amp;
    img.line((x0, sy(0.0)), (x1, sy(0.0)), 0, BLACK);
    img.line((x0, y0), (x0, y1), 0, BLACK);
    img.text(x0 as i64, 12, "PLANTED (GREY) VS FISTA-R (GREEN)", BLACK);
    img.text(x1 as i64 - 30, y1 as i64 + 24, "ATOM", BLACK);
    for v in [-2.0f64, -1.0, 1.0, 2.0] {
        if v.abs() < amp {
            img.line((x0, sy(v)), (x1, sy(v)), 0, LIGHT);
            img.text(x0 as i64 - 24, sy(v) as i64 - 4, &format!("{v}"), GREY);
        }
    }
    for j in 0..M {
        if truth[j] != 0.0 {
            img.line((sx(j), sy(0.0)), (sx(j), sy(truth[j])), 1, GREY);
        }
        if recovered[j] != 0.0 {
            img.dot(sx(j) as i64, sy(recovered[j]) as i64, 3, COLORS[2]);
        }
    }
}
