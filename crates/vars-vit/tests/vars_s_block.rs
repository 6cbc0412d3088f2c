//! The VARS‑S block (vars-spec §3.5, §3.6) on the CPU backend:
//!
//! - **parity** with the official fixture `block_vars_s` (`fixtures/official/README.official.md`):
//!   eval forward `output` within 1e‑4 × max|ref|, and every trainable `grad.<name>` plus
//!   `grad.input` for the loss `Σ output ⊙ w`, `w_k = −1 + 2k/(numel − 1)`, within 1e‑3 × max|ref|;
//! - the stored `L` is the bug-exact rule applied to the stored `kernel` (vars-spec §8 item 5);
//! - **adjointness** `⟨analysis(z), A⟩ = ⟨z, synthesis(A)⟩` and **analysis = circular 2‑D
//!   convolution** with `h = S⁻¹·F⁻¹(K)`, in f64 for odd and even `S` (vars-spec §8 items 3–4);
//! - the literal per-frequency Gram against `vars_core::nn::{rfft2, irfft2}` (the DC/Nyquist
//!   semantics of §3.6), and the composed Gram against analysis∘synthesis;
//! - the step-constant rules and their EMA update, bad inputs (errors, not panics), train mode
//!   (BatchNorm running statistics), gradients by finite differences in f64, and the options.

#![cfg(feature = "cpu")]

use vars_core::nn::fft::{complex_conj, complex_mul};
use vars_core::nn::{irfft2, rfft2};
use vars_core::{Autodiff, Backend, DType, Tensor};
use vars_cpu::{Cpu, CpuDevice};
use vars_vit::block::VarsSBlock;
use vars_vit::config::{GramMode, StepRule, VarsSOptions};
use vars_vit::layers::{Init, Mode};
use vars_vit::{ParamKind, Parameters, StateDict, VitError};

type Ad = Autodiff<Cpu>;

const DEV: CpuDevice = CpuDevice;
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/official/block_vars_s.safetensors"
);

/// `max|got − want| / max|want|`.
fn rel_err<B: Backend>(got: &Tensor<B>, want: &Tensor<B>) -> f64 {
    assert_eq!(got.dims(), want.dims(), "shape");
    let (g, w) = (got.to_vec_f64().unwrap(), want.to_vec_f64().unwrap());
    let scale = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let err = g
        .iter()
        .zip(&w)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    err / scale.max(f64::MIN_POSITIVE)
}

fn fixture<B: Backend<Device = CpuDevice>>() -> StateDict<B> {
    StateDict::<B>::load(FIXTURE, &DEV).expect("the vendored fixture block_vars_s loads")
}

/// The fixture's block: dim 192, grid 14, hidden 768, no drop path, reference options.
fn fixture_block<B: Backend<Device = CpuDevice>>(
    sd: &StateDict<B>,
    trainable: bool,
) -> VarsSBlock<B> {
    let mut init = Init::<B>::new(&DEV, DType::F32, 7);
    let mut block = VarsSBlock::new(&mut init, 192, 14, 768, 0.0, VarsSOptions::default()).unwrap();
    if trainable {
        // Trainable tensors become leaf variables; `load_into` keeps tracked slots tracked.
        let mut names = Vec::new();
        block.visit(&mut |name, _, kind| {
            if kind == ParamKind::Trainable {
                names.push(name.to_string());
            }
        });
        block.visit_mut(&mut |name, t| {
            if names.iter().any(|n| n == name) {
                *t = t.requires_grad().unwrap();
            }
        });
    }
    let report = sd
        .strip_prefix("param.")
        .load_into(&mut block, true)
        .expect("strict load of param.*");
    assert_eq!(report.loaded.len(), 39, "every param.* entry is loaded");
    block
}

fn small_block<B: Backend<Device = CpuDevice>>(
    dtype: DType,
    dim: usize,
    grid: usize,
    options: VarsSOptions,
    seed: u64,
) -> VarsSBlock<B> {
    let mut init = Init::<B>::new(&DEV, dtype, seed);
    VarsSBlock::new(&mut init, dim, grid, 4 * dim, 0.0, options).unwrap()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

// ---- official parity --------------------------------------------------------------------------

#[test]
fn fixture_forward_matches_reference() {
    let sd = fixture::<Cpu>();
    let block = fixture_block(&sd, false);
    let out = block
        .forward(sd.get("input").unwrap(), Mode::Eval, 0)
        .unwrap();
    let err = rel_err(&out, sd.get("output").unwrap());
    eprintln!("block_vars_s output: max|Δ|/max|ref| = {err:.3e}");
    assert!(err <= 1e-4, "output relative error {err:.3e} > 1e-4");

    // The perturbed fixture switches about half of the final codes on (README).
    let codes = block.codes(sd.get("input").unwrap()).unwrap();
    assert_eq!(codes.dims(), [2, 5 * 192, 196]);
    let v = codes.to_vec_f64().unwrap();
    let share = v.iter().filter(|x| **x != 0.0).count() as f64 / v.len() as f64;
    eprintln!("share of non-zero final codes: {share:.3}");
    assert!((0.4..0.6).contains(&share), "non-zero share {share}");
}

#[test]
fn fixture_gradients_match_reference() {
    let sd = fixture::<Ad>();
    let block = fixture_block(&sd, true);
    let input = sd.get("input").unwrap().requires_grad().unwrap();
    let out = block.forward(&input, Mode::Eval, 0).unwrap();
    let err = rel_err(&out, sd.get("output").unwrap());
    assert!(err <= 1e-4, "output relative error {err:.3e} > 1e-4");

    let numel = out.elem_count();
    let w: Vec<f32> = (0..numel)
        .map(|k| (-1.0 + 2.0 * k as f64 / (numel - 1) as f64) as f32)
        .collect();
    let w = Tensor::<Ad>::from_vec(w, out.dims().to_vec(), &DEV).unwrap();
    let grads = out.backward_with(&w).unwrap();

    let mut checked = vec![("input".to_string(), input.clone())];
    block.visit(&mut |name, t, kind| {
        if kind == ParamKind::Trainable {
            checked.push((name.to_string(), t.clone()));
        }
    });
    // 22 trainable parameters + the input = the fixture's 23 grad.* entries.
    let expected = sd.keys().filter(|k| k.starts_with("grad.")).count();
    assert_eq!(checked.len(), expected, "one gradient per grad.* entry");
    let mut worst = 0.0f64;
    for (name, t) in &checked {
        let want = sd
            .get(&format!("grad.{name}"))
            .unwrap_or_else(|| panic!("fixture lacks grad.{name}"));
        let got = grads
            .get(t)
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let err = rel_err(got, want);
        eprintln!("grad.{name:<22} max|Δ|/max|ref| = {err:.3e}");
        assert!(err <= 1e-3, "grad.{name}: relative error {err:.3e} > 1e-3");
        worst = worst.max(err);
    }
    eprintln!("worst gradient error {worst:.3e}");
    // Frozen parameters and buffers get no gradient.
    block.visit(&mut |name, t, kind| {
        if kind != ParamKind::Trainable {
            assert!(grads.get(t).is_none(), "{name} must not get a gradient");
        }
    });
}

#[test]
fn fixture_step_constants_are_bug_exact() {
    let sd = fixture::<Cpu>();
    let kernel = sd.get("param.kernel").unwrap();
    let stored = sd.get("param.L").unwrap().to_vec_f64().unwrap();
    let l = VarsSBlock::<Cpu>::step_constants_from_kernel(kernel, StepRule::BugExact)
        .unwrap()
        .to_vec_f64()
        .unwrap();
    let worst = stored
        .iter()
        .zip(&l)
        .map(|(s, l)| ((s - l) / s).abs())
        .fold(0.0f64, f64::max);
    eprintln!("stored L vs bug-exact rule: max relative difference {worst:.2e}");
    assert!(worst < 1e-6, "bug-exact L differs by {worst:.2e}");

    // The fixed rule is larger: 0.56× to 0.99× (spec §3.5) of it.
    let exact = VarsSBlock::<Cpu>::step_constants_from_kernel(kernel, StepRule::Exact)
        .unwrap()
        .to_vec_f64()
        .unwrap();
    for (b, e) in l.iter().zip(&exact) {
        let ratio = b / e;
        assert!(
            (0.5..=1.0 + 1e-12).contains(&ratio),
            "bug/exact ratio {ratio}"
        );
    }

    // A block loaded from the fixture recomputes the same L at rate 1.
    let mut block = fixture_block(&sd, false);
    block.update_step_constants(1.0).unwrap();
    let again = block.step_constants().to_vec_f64().unwrap();
    let worst = stored
        .iter()
        .zip(&again)
        .map(|(s, l)| ((s - l) / s).abs())
        .fold(0.0f64, f64::max);
    assert!(worst < 1e-6);
}

// ---- operator properties (f64) ----------------------------------------------------------------

/// Options with a small λ so that codes are active on unit-scale inputs.
fn active(lam: f64) -> VarsSOptions {
    VarsSOptions {
        lam,
        ..VarsSOptions::default()
    }
}

#[test]
fn analysis_and_synthesis_are_adjoint_odd_and_even_grids() {
    for (grid, seed) in [(5usize, 1u64), (6, 2), (7, 3), (4, 4)] {
        let (c, atoms, bsz) = (3usize, 5usize, 2usize);
        let block = small_block::<Cpu>(DType::F64, c, grid, VarsSOptions::default(), seed);
        let n = grid * grid;
        let z = Tensor::<Cpu>::randn(vec![bsz, c, n], DType::F64, 10 + seed, &DEV).unwrap();
        let a = Tensor::<Cpu>::randn(vec![bsz, atoms * c, n], DType::F64, 20 + seed, &DEV).unwrap();
        let lhs = dot(
            &block.analysis(&z).unwrap().to_vec_f64().unwrap(),
            &a.to_vec_f64().unwrap(),
        );
        let rhs = dot(
            &z.to_vec_f64().unwrap(),
            &block.synthesis(&a).unwrap().to_vec_f64().unwrap(),
        );
        let rel = (lhs - rhs).abs() / lhs.abs().max(rhs.abs());
        eprintln!(
            "S = {grid}: <analysis z, A> = {lhs:.12}, <z, synthesis A> = {rhs:.12}, rel {rel:.1e}"
        );
        assert!(rel < 1e-12, "S = {grid}: adjointness off by {rel:.2e}");
    }
}

#[test]
fn analysis_is_circular_convolution_with_inverse_spectrum() {
    for (grid, seed) in [(5usize, 5u64), (6, 6)] {
        let (c, atoms, bsz) = (2usize, 5usize, 2usize);
        let block = small_block::<Cpu>(DType::F64, c, grid, VarsSOptions::default(), seed);
        let (s, n) = (grid, grid * grid);
        let kh = s / 2 + 1;
        // h_{c,i} = S⁻¹·F⁻¹(K_{c,i}) with the library's irfftn semantics (§3.6).
        let k = block.kernel().reshape([c * atoms, s, kh, 2]).unwrap();
        let h = irfft2(&k, s)
            .unwrap()
            .mul_scalar(1.0 / s as f64)
            .unwrap()
            .to_vec_f64()
            .unwrap();
        // The random kernel has non-zero imaginary parts in the DC column, which irfftn ignores
        // only after the first-axis inverse: the test exercises that semantics.
        let kv = block.kernel().to_vec_f64().unwrap();
        assert!(kv[1].abs() > 0.0);

        let z = Tensor::<Cpu>::randn(vec![bsz, c, n], DType::F64, 30 + seed, &DEV).unwrap();
        let zv = z.to_vec_f64().unwrap();
        let got = block.analysis(&z).unwrap().to_vec_f64().unwrap();
        let mut worst = 0.0f64;
        let mut scale = 0.0f64;
        for b in 0..bsz {
            for ch in 0..c {
                for i in 0..atoms {
                    let hk = &h[(ch * atoms + i) * n..][..n];
                    for n1 in 0..s {
                        for n2 in 0..s {
                            let mut acc = 0.0;
                            for m1 in 0..s {
                                for m2 in 0..s {
                                    let (d1, d2) = ((n1 + s - m1) % s, (n2 + s - m2) % s);
                                    acc += zv[(b * c + ch) * n + m1 * s + m2] * hk[d1 * s + d2];
                                }
                            }
                            let g = got[(b * c * atoms + ch * atoms + i) * n + n1 * s + n2];
                            worst = worst.max((g - acc).abs());
                            scale = scale.max(acc.abs());
                        }
                    }
                }
            }
        }
        eprintln!(
            "S = {grid}: analysis vs circular convolution, max|Δ|/max = {:.1e}",
            worst / scale
        );
        assert!(worst <= 1e-12 * scale, "S = {grid}: {:.2e}", worst / scale);
    }
}

/// The reference's literal operators, written with the library's `rfft2`/`irfft2`.
struct Reference {
    /// `(C, I, S, Kh, 2)`.
    k: Tensor<Cpu>,
    s: usize,
}

impl Reference {
    fn new(block: &VarsSBlock<Cpu>) -> Self {
        let d = block.kernel().dims().to_vec();
        let k = block.kernel().reshape([d[0], d[1], d[3], d[4], 2]).unwrap();
        Reference { k, s: d[3] }
    }

    /// `(B, C, N)` → `(B, C, I, S, S)`: `F⁻¹(K_{c,i} ⊙ F(z_c))`.
    fn analysis(&self, z: &Tensor<Cpu>) -> Tensor<Cpu> {
        let (b, c) = (z.dims()[0], z.dims()[1]);
        let x = rfft2(&z.reshape([b, c, 1, self.s, self.s]).unwrap()).unwrap();
        irfft2(&complex_mul(&self.k, &x).unwrap(), self.s).unwrap()
    }

    /// `(B, C, I, S, S)` → `(B, C, S, S)`: `F⁻¹(Σ_i conj(K_{c,i}) ⊙ F(a_{c,i}))`.
    fn synthesis(&self, a: &Tensor<Cpu>) -> Tensor<Cpu> {
        let x = rfft2(a).unwrap();
        let y = complex_mul(&complex_conj(&self.k).unwrap(), &x).unwrap();
        irfft2(&y.sum(&[2], false).unwrap(), self.s).unwrap()
    }

    /// `(B, C, I, S, S)` → same: `F⁻¹(Σ_{i′} G_c[i,i′] ⊙ F(a_{c,i′}))`, `G = K_i conj(K_{i′})`.
    fn gram(&self, a: &Tensor<Cpu>) -> Tensor<Cpu> {
        let ki = self.k.unsqueeze(2).unwrap(); // (C, I, 1, S, Kh, 2)
        let kj = complex_conj(&self.k).unwrap().unsqueeze(1).unwrap(); // (C, 1, I', …)
        let g = complex_mul(&ki, &kj).unwrap(); // (C, I, I', S, Kh, 2)
        let x = rfft2(a).unwrap().unsqueeze(2).unwrap(); // (B, C, 1, I', S, Kh, 2)
        let y = complex_mul(&g, &x).unwrap().sum(&[3], false).unwrap();
        irfft2(&y, self.s).unwrap()
    }
}

#[test]
fn operators_match_library_fft_composition() {
    for (grid, seed) in [(6usize, 7u64), (7, 8)] {
        let (c, atoms, bsz) = (3usize, 5usize, 2usize);
        let n = grid * grid;
        let literal = small_block::<Cpu>(DType::F64, c, grid, VarsSOptions::default(), seed);
        let reference = Reference::new(&literal);
        let z = Tensor::<Cpu>::randn(vec![bsz, c, n], DType::F64, 40 + seed, &DEV).unwrap();
        let a = Tensor::<Cpu>::randn(vec![bsz, atoms * c, n], DType::F64, 50 + seed, &DEV).unwrap();
        let a5 = a.reshape([bsz, c, atoms, grid, grid]).unwrap();

        let want = reference.analysis(&z).reshape([bsz, atoms * c, n]).unwrap();
        let err = rel_err(&literal.analysis(&z).unwrap(), &want);
        assert!(err < 1e-12, "S = {grid}: analysis {err:.2e}");

        let want = reference.synthesis(&a5).reshape([bsz, c, n]).unwrap();
        let err = rel_err(&literal.synthesis(&a).unwrap(), &want);
        assert!(err < 1e-12, "S = {grid}: synthesis {err:.2e}");

        let want = reference.gram(&a5).reshape([bsz, atoms * c, n]).unwrap();
        let err = rel_err(&literal.gram(&a).unwrap(), &want);
        assert!(err < 1e-12, "S = {grid}: literal Gram {err:.2e}");

        // The composed Gram is analysis∘synthesis and differs from the literal one (§3.5).
        let composed_opts = VarsSOptions {
            gram: GramMode::Composed,
            ..VarsSOptions::default()
        };
        let composed = small_block::<Cpu>(DType::F64, c, grid, composed_opts, seed);
        let ds = composed
            .analysis(
                &composed
                    .synthesis(&a)
                    .unwrap()
                    .reshape([bsz, c, n])
                    .unwrap(),
            )
            .unwrap();
        let err = rel_err(&composed.gram(&a).unwrap(), &ds);
        assert!(err < 1e-12, "S = {grid}: composed Gram {err:.2e}");
        let gap = rel_err(&literal.gram(&a).unwrap(), &ds);
        eprintln!("S = {grid}: literal vs composed Gram, max|Δ|/max = {gap:.3}");
        assert!(
            gap > 0.01,
            "the literal Gram should differ from DᵀD (got {gap:.2e})"
        );
    }
}

/// The tensor `name` of a module.
fn param<B: Backend>(module: &impl Parameters<B>, name: &str) -> Tensor<B> {
    let mut out = None;
    module.visit(&mut |n, t, _| {
        if n == name {
            out = Some(t.clone());
        }
    });
    out.unwrap_or_else(|| panic!("no tensor {name}"))
}

#[test]
fn codes_follow_the_ista_recursion() {
    // A_0 = T_λ(b), then T times A ← T_{λ/L}(A − (G A − b)/L), b = analysis(v(x)) (§3.5).
    let (c, grid, bsz, lam) = (4usize, 5usize, 2usize, 0.2);
    let n = grid * grid;
    let block = small_block::<Cpu>(DType::F64, c, grid, active(lam), 11);
    let x = Tensor::<Cpu>::randn(vec![bsz, n, c], DType::F64, 12, &DEV).unwrap();
    let z = x
        .matmul(&param(&block, "v.weight").t().unwrap())
        .unwrap()
        .add(&param(&block, "v.bias"))
        .unwrap()
        .transpose(1, 2)
        .unwrap();
    assert!(rel_err(&block.values(&x).unwrap(), &z) < 1e-15);
    let bv = block.analysis(&z).unwrap().to_vec_f64().unwrap();
    let l = block.step_constants().to_vec_f64().unwrap();
    let soft = |x: f64, t: f64| x.signum() * (x.abs() - t).max(0.0);
    let row_l = |idx: usize| l[(idx / n) % (5 * c) / 5];
    let mut a: Vec<f64> = bv.iter().map(|&x| soft(x, lam)).collect();
    let mut host = vec![a.clone()];
    for _ in 0..3 {
        let at = Tensor::<Cpu>::from_vec(a.clone(), vec![bsz, 5 * c, n], &DEV).unwrap();
        let ga = block.gram(&at).unwrap().to_vec_f64().unwrap();
        a = (0..a.len())
            .map(|k| {
                let lk = row_l(k);
                soft(a[k] - (ga[k] - bv[k]) / lk, lam / lk)
            })
            .collect();
        host.push(a.clone());
    }
    let as_tensor =
        |v: &[f64]| Tensor::<Cpu>::from_vec(v.to_vec(), vec![bsz, 5 * c, n], &DEV).unwrap();
    let err = rel_err(&block.codes(&x).unwrap(), &as_tensor(&a));
    let active = a.iter().filter(|x| **x != 0.0).count();
    eprintln!(
        "codes vs host ISTA: {err:.1e} ({active}/{} non-zero)",
        a.len()
    );
    assert!(active > 0 && active < a.len());
    assert!(err < 1e-12, "codes differ from the recursion by {err:.2e}");

    // Every iterate, with its reconstruction F⁻¹(K2 ⊙ F(synthesis(A_k))) as tokens.
    let iterations = block.iterations(&x).unwrap();
    assert_eq!(iterations.len(), 4);
    let k2 = param(&block, "kernel2")
        .reshape([c, 1, grid, grid / 2 + 1, 2])
        .unwrap();
    for (k, (it, want)) in iterations.iter().zip(&host).enumerate() {
        let err = rel_err(&it.code, &as_tensor(want));
        assert!(err < 1e-12, "iterate {k}: {err:.2e}");
        let r = block
            .synthesis(&it.code)
            .unwrap()
            .reshape([bsz, c, 1, grid, grid])
            .unwrap();
        let filtered = irfft2(&complex_mul(&k2, &rfft2(&r).unwrap()).unwrap(), grid).unwrap();
        let want = filtered
            .reshape([bsz, c, n])
            .unwrap()
            .transpose(1, 2)
            .unwrap();
        assert!(
            rel_err(&it.reconstruction, &want) < 1e-12,
            "reconstruction {k}"
        );
    }
}

// ---- step constants ---------------------------------------------------------------------------

#[test]
fn step_constants_rules_and_update() {
    let block = small_block::<Cpu>(DType::F64, 3, 6, VarsSOptions::default(), 13);
    let kernel = block.kernel().clone();
    let l0 = block.step_constants().to_vec_f64().unwrap();
    let bug = VarsSBlock::<Cpu>::step_constants_from_kernel(&kernel, StepRule::BugExact).unwrap();
    assert_eq!(
        bug.to_vec_f64().unwrap(),
        l0,
        "construction applies the rule at rate 1"
    );

    // Brute force on the host: λ_max of the real 5×5 Re G by power iteration, and max Σ|K|².
    let kv = kernel.to_vec_f64().unwrap();
    let (c, atoms, p) = (3usize, 5usize, 6 * 4);
    let exact = VarsSBlock::<Cpu>::step_constants_from_kernel(&kernel, StepRule::Exact)
        .unwrap()
        .to_vec_f64()
        .unwrap();
    for ch in 0..c {
        let (mut best_bug, mut best_exact) = (0.0f64, 0.0f64);
        for f in 0..p {
            let at = |i: usize, part: usize| kv[((ch * atoms + i) * p + f) * 2 + part];
            let mut g = [[0.0f64; 5]; 5];
            let mut trace = 0.0;
            for i in 0..atoms {
                for j in 0..atoms {
                    g[i][j] = at(i, 0) * at(j, 0) + at(i, 1) * at(j, 1);
                }
                trace += g[i][i];
            }
            let mut v = [1.0, 0.7, -0.3, 0.2, 0.5];
            let mut lam = 0.0;
            for _ in 0..500 {
                let w: Vec<f64> = (0..5)
                    .map(|i| (0..5).map(|j| g[i][j] * v[j]).sum())
                    .collect();
                let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
                lam = norm;
                for i in 0..5 {
                    v[i] = w[i] / norm;
                }
            }
            best_bug = best_bug.max(lam);
            best_exact = best_exact.max(trace);
        }
        assert!(
            ((best_bug - l0[ch]) / l0[ch]).abs() < 1e-9,
            "bug-exact channel {ch}"
        );
        assert!(
            ((best_exact - exact[ch]) / exact[ch]).abs() < 1e-12,
            "exact channel {ch}"
        );
    }

    // The Exact option initialises with the fixed rule.
    let opts = VarsSOptions {
        step_rule: StepRule::Exact,
        ..VarsSOptions::default()
    };
    let fixed = small_block::<Cpu>(DType::F64, 3, 6, opts, 13);
    assert_eq!(fixed.step_constants().to_vec_f64().unwrap(), exact);

    // EMA update after the kernel moved: L ← 0.9 L + 0.1 rule(K′).
    let mut block = block;
    block.visit_mut(&mut |name, t| {
        if name == "kernel" {
            *t = t.mul_scalar(1.5).unwrap();
        }
    });
    block.update_step_constants(0.1).unwrap();
    let got = block.step_constants().to_vec_f64().unwrap();
    for (g, l) in got.iter().zip(&l0) {
        let want = 0.9 * l + 0.1 * (2.25 * l);
        assert!((g - want).abs() < 1e-12 * want, "{g} vs {want}");
    }
    for bad in [-0.1, 1.5, f64::NAN] {
        assert!(matches!(
            block.update_step_constants(bad),
            Err(VitError::Config { .. })
        ));
    }
}

// ---- errors, modes, options -------------------------------------------------------------------

#[test]
fn bad_inputs_and_configs_are_errors() {
    let block = small_block::<Cpu>(DType::F32, 8, 4, VarsSOptions::default(), 14);
    let cases: Vec<Vec<usize>> = vec![
        vec![2, 15, 8], // not grid² tokens
        vec![2, 25, 8], // another grid
        vec![2, 16, 7], // wrong width
        vec![16, 8],    // rank 2
        vec![0, 16, 8], // empty batch
    ];
    for shape in cases {
        let x = Tensor::<Cpu>::zeros(shape.clone(), DType::F32, &DEV).unwrap();
        let err = block
            .forward(&x, Mode::Eval, 0)
            .expect_err("must be rejected");
        assert!(matches!(err, VitError::Input { .. }), "{shape:?}: {err}");
        assert!(block.codes(&x).is_err());
    }
    let z = Tensor::<Cpu>::zeros(vec![2, 8, 15], DType::F32, &DEV).unwrap();
    assert!(matches!(block.analysis(&z), Err(VitError::Input { .. })));
    assert!(matches!(block.synthesis(&z), Err(VitError::Input { .. })));
    assert!(matches!(block.gram(&z), Err(VitError::Input { .. })));
    let odd = Tensor::<Cpu>::zeros(vec![2, 3, 2, 2, 2], DType::F32, &DEV).unwrap();
    assert!(VarsSBlock::<Cpu>::step_constants_from_kernel(&odd, StepRule::BugExact).is_err());

    let mut init = Init::<Cpu>::new(&DEV, DType::F32, 1);
    let d = VarsSOptions::default();
    for (dim, grid, hidden, dp, opts) in [
        (0usize, 4usize, 8usize, 0.0, d),
        (8, 0, 8, 0.0, d),
        (8, 4, 8, 1.0, d),
        (8, 4, 8, 0.0, VarsSOptions { atoms: 0, ..d }),
        (8, 4, 8, 0.0, VarsSOptions { lam: -1.0, ..d }),
        (8, 4, 8, 0.0, VarsSOptions { lam: f64::NAN, ..d }),
    ] {
        let r = VarsSBlock::new(&mut init, dim, grid, hidden, dp, opts);
        assert!(
            matches!(r, Err(VitError::Config { .. })),
            "{dim} {grid} {dp} {opts:?}"
        );
    }
}

fn running(block: &VarsSBlock<Cpu>, key: &str) -> Vec<f64> {
    param(block, key).to_vec_f64().unwrap()
}

#[test]
fn train_mode_updates_batchnorm_statistics() {
    let sd = fixture::<Cpu>();
    let block = fixture_block(&sd, false);
    let x = sd.get("input").unwrap();
    let before_mean = running(&block, "norm1.bn.running_mean");
    let before_mlp = running(&block, "mlp.bn3.running_var");
    let eval = block.forward(x, Mode::Eval, 0).unwrap();
    assert_eq!(running(&block, "norm1.bn.num_batches_tracked"), [0.0]);
    let train = block.forward(x, Mode::Train { seed: 3 }, 0).unwrap();
    assert_eq!(train.dims(), eval.dims());
    assert!(
        rel_err(&train, &eval) > 1e-3,
        "batch statistics change the output"
    );
    for key in ["norm1.bn", "norm2.bn", "mlp.bn1"] {
        assert_eq!(
            running(&block, &format!("{key}.num_batches_tracked")),
            [1.0]
        );
    }
    assert_ne!(running(&block, "norm1.bn.running_mean"), before_mean);
    assert_ne!(running(&block, "mlp.bn3.running_var"), before_mlp);
    // The running mean moved by 0.1 of the way towards the batch mean of BN₁'s input.
    let after = running(&block, "norm1.bn.running_mean");
    assert!(after.iter().all(|v| v.is_finite()));

    // Stochastic depth: deterministic per seed, different across seeds, identity in eval.
    let mut init = Init::<Cpu>::new(&DEV, DType::F32, 9);
    let dp = VarsSBlock::new(&mut init, 8, 4, 32, 0.5, active(0.05)).unwrap();
    let x = Tensor::<Cpu>::randn(vec![8, 16, 8], DType::F32, 4, &DEV).unwrap();
    let a = dp.clone().forward(&x, Mode::Train { seed: 1 }, 3).unwrap();
    let b = dp.clone().forward(&x, Mode::Train { seed: 1 }, 3).unwrap();
    let c = dp.clone().forward(&x, Mode::Train { seed: 2 }, 3).unwrap();
    assert_eq!(a.to_vec_f64().unwrap(), b.to_vec_f64().unwrap());
    assert_ne!(a.to_vec_f64().unwrap(), c.to_vec_f64().unwrap());
}

#[test]
fn parameters_names_kinds_and_counts() {
    let (c, s) = (16usize, 6usize);
    let block = small_block::<Cpu>(DType::F32, c, s, VarsSOptions::default(), 15);
    let mut names = Vec::new();
    block.visit(&mut |name, t, kind| names.push((name.to_string(), t.dims().to_vec(), kind)));
    let head: Vec<(&str, ParamKind)> = names
        .iter()
        .take(8)
        .map(|(n, _, k)| (n.as_str(), *k))
        .collect();
    assert_eq!(
        head,
        [
            ("kernel", ParamKind::Trainable),
            ("L", ParamKind::Frozen),
            ("kernel_norm", ParamKind::Frozen),
            ("kernel2", ParamKind::Trainable),
            ("v.weight", ParamKind::Trainable),
            ("v.bias", ParamKind::Trainable),
            ("proj.weight", ParamKind::Trainable),
            ("proj.bias", ParamKind::Trainable),
        ]
    );
    assert_eq!(names[0].1, [c, 5, 1, s, 4, 2]);
    assert_eq!(names[3].1, [c, 1, 1, s, 4, 2]);
    assert!(names
        .iter()
        .any(|(n, _, k)| n == "norm1.bn.running_var" && *k == ParamKind::Buffer));
    assert!(names
        .iter()
        .any(|(n, _, _)| n == "norm2.bn.num_batches_tracked"));
    let counts = vars_vit::count_parameters(&block);
    let kh = s / 2 + 1;
    let mlp = 8 * c * c + 63 * c;
    let want = 2 * (c * c + c) + 5 * c * s * kh * 2 + c * s * kh * 2 + 4 * c + mlp;
    assert_eq!(counts.trainable, want, "vars-spec §3.5 parameter formula");
    assert_eq!(counts.frozen, c + 1);

    // Initialisation: unit (2/S²)Σ|K|² per atom, kernel_norm 1, L > 0.
    let k = block.kernel().to_vec_f64().unwrap();
    let per = s * kh * 2;
    for atom in k.chunks(per) {
        let e: f64 = atom.iter().map(|x| x * x).sum::<f64>() * 2.0 / (s * s) as f64;
        assert!((e - 1.0).abs() < 1e-5, "atom energy {e}");
    }
    assert!((running(&block, "kernel_norm")[0] - 1.0).abs() < 1e-5);
    assert!(block
        .step_constants()
        .to_vec_f64()
        .unwrap()
        .iter()
        .all(|l| *l > 0.0));
}

#[test]
fn options_change_the_computation() {
    let (c, grid, bsz) = (4usize, 5usize, 2usize);
    let x = Tensor::<Cpu>::randn(vec![bsz, grid * grid, c], DType::F64, 16, &DEV).unwrap();
    let base = small_block::<Cpu>(DType::F64, c, grid, active(0.1), 17);
    let out = base.forward(&x, Mode::Eval, 0).unwrap();
    for opts in [
        VarsSOptions {
            gram: GramMode::Composed,
            ..active(0.1)
        },
        VarsSOptions {
            step_rule: StepRule::Exact,
            ..active(0.1)
        },
        VarsSOptions {
            shrink: vars_core::nn::Shrink::Gelu,
            ..active(0.1)
        },
        VarsSOptions {
            steps: 0,
            ..active(0.1)
        },
    ] {
        let other = small_block::<Cpu>(DType::F64, c, grid, opts, 17);
        let o = other.forward(&x, Mode::Eval, 0).unwrap();
        assert!(rel_err(&o, &out) > 1e-8, "{opts:?} changes the output");
    }
    // Other atom counts and T = 0 run; with T = 0 the codes are T_λ(b).
    let three = small_block::<Cpu>(
        DType::F64,
        c,
        grid,
        VarsSOptions {
            atoms: 3,
            ..active(0.1)
        },
        18,
    );
    assert_eq!(three.codes(&x).unwrap().dims(), [bsz, 3 * c, grid * grid]);
    assert_eq!(three.forward(&x, Mode::Eval, 0).unwrap().dims(), x.dims());
}

// ---- gradients by finite differences (f64) ----------------------------------------------------

#[test]
fn gradients_match_finite_differences() {
    for (opts, seed) in [
        (active(0.1), 21u64),
        (
            VarsSOptions {
                gram: GramMode::Composed,
                ..active(0.1)
            },
            22,
        ),
    ] {
        let (c, grid, bsz) = (3usize, 5usize, 2usize);
        let n = grid * grid;
        let mut block = small_block::<Ad>(DType::F64, c, grid, opts, seed);
        block.visit_mut(&mut |name, t| {
            if name == "kernel" || name == "kernel2" || name == "v.weight" {
                *t = t.requires_grad().unwrap();
            }
        });
        let x = Tensor::<Ad>::randn(vec![bsz, n, c], DType::F64, seed + 100, &DEV)
            .unwrap()
            .requires_grad()
            .unwrap();
        let w = Tensor::<Ad>::randn(vec![bsz, n, c], DType::F64, seed + 200, &DEV).unwrap();
        let loss = |b: &VarsSBlock<Ad>, x: &Tensor<Ad>| -> f64 {
            let y = b.forward(&x.detach(), Mode::Eval, 0).unwrap();
            vars_core::no_grad(|| y.mul(&w).unwrap().sum_all().unwrap().to_vec_f64().unwrap()[0])
        };
        let y = block.forward(&x, Mode::Eval, 0).unwrap();
        let grads = y.backward_with(&w).unwrap();

        let mut tensors: Vec<(String, Tensor<Ad>)> = vec![("input".into(), x.clone())];
        block.visit(&mut |name, t, _| {
            if ["kernel", "kernel2", "v.weight"].contains(&name) {
                tensors.push((name.to_string(), t.clone()));
            }
        });
        let eps = 1e-6;
        for (name, t) in &tensors {
            let g = grads.get(t).unwrap().to_vec_f64().unwrap();
            let base = t.detach().to_vec_f64().unwrap();
            let scale = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let step = (base.len() / 7).max(1);
            for idx in (0..base.len()).step_by(step).take(8) {
                let eval_at = |delta: f64| {
                    let mut v = base.clone();
                    v[idx] += delta;
                    let moved = Tensor::<Ad>::from_vec(v, t.dims().to_vec(), &DEV).unwrap();
                    let mut b = block.clone();
                    let mut input = x.clone();
                    if name == "input" {
                        input = moved;
                    } else {
                        b.visit_mut(&mut |nm, tt| {
                            if nm == name {
                                *tt = moved.clone();
                            }
                        });
                    }
                    loss(&b, &input)
                };
                let fd = (eval_at(eps) - eval_at(-eps)) / (2.0 * eps);
                let err = (fd - g[idx]).abs() / scale;
                assert!(
                    err < 1e-5,
                    "{opts:?} {name}[{idx}]: autodiff {} vs finite difference {fd} ({err:.1e})",
                    g[idx]
                );
            }
        }
    }
}

// ---- timing (not run by default) --------------------------------------------------------------
