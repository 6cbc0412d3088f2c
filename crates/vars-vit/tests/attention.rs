//! Properties of the VARS attention layers (vars-spec §1.4, §8): the self-attention reduction,
//! the Gershgorin bound, and the implicit-gradient option against unrolling to convergence.

use vars_core::nn::Shrink;
use vars_core::sparse::fused::IstaInit;
use vars_core::sparse::implicit::ImplicitConfig;
use vars_core::sparse::step_size::exact_lambda_max;
use vars_core::{Autodiff, DType, Tensor};
use vars_cpu::{Cpu, CpuDevice};
use vars_vit::attention::VarsAttention;
use vars_vit::config::{CodeGradient, VarsOptions};
use vars_vit::layers::Init;

type Ad = Autodiff<Cpu>;

fn tokens<B: vars_core::Backend>(dev: &B::Device, b: usize, n: usize, c: usize) -> Tensor<B> {
    Tensor::randn([b, n, c], DType::F64, 11, dev).unwrap()
}

/// §8 item 1: with λ = 0, the identity shrink and T = 0 the code is exactly `DᵀV` and the layer
/// is `proj(D·DᵀV)`, unnormalised kernel attention with keys tied to queries.
#[test]
fn zero_steps_no_sparsity_is_kernel_attention() {
    let opts = VarsOptions {
        lam: 0.0,
        steps: 0,
        shrink: Shrink::Identity,
        lista: false,
        ..VarsOptions::official()
    };
    let mut init = Init::<Cpu>::new(&CpuDevice, DType::F64, 3);
    let attn = VarsAttention::new(&mut init, 16, 2, None, opts).unwrap();
    let x = tokens::<Cpu>(&CpuDevice, 2, 9, 16);
    let (d, v) = attn.dictionary(&x).unwrap();
    let a = attn.codes(&d, &v).unwrap();
    let expected = d.transpose(2, 3).unwrap().matmul(&v).unwrap();
    let diff = a
        .sub(&expected)
        .unwrap()
        .abs()
        .unwrap()
        .to_vec::<f64>()
        .unwrap()
        .into_iter()
        .fold(0.0f64, f64::max);
    assert!(diff < 1e-12, "code differs from DᵀV by {diff}");
    // Atoms have unit norm over the tokens.
    let norms = d.norm_l2(&[2], false).unwrap().to_vec::<f64>().unwrap();
    assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-12));
}

/// §8 item 2: the step constant bounds the largest eigenvalue of `G` (with the +1 margin).
#[test]
fn gershgorin_step_constant_bounds_the_spectrum() {
    let mut init = Init::<Cpu>::new(&CpuDevice, DType::F64, 5);
    for static_atoms in [None, Some(9)] {
        let attn =
            VarsAttention::new(&mut init, 16, 2, static_atoms, VarsOptions::official()).unwrap();
        let x = tokens::<Cpu>(&CpuDevice, 3, 9, 16);
        let (d, v) = attn.dictionary(&x).unwrap();
        let p = attn.problem(&d, &v).unwrap();
        let lmax = exact_lambda_max(&p.gram).unwrap();
        let l = p.step.to_vec::<f64>().unwrap();
        for (e, l) in lmax.iter().zip(&l) {
            assert!(*l >= e + 1.0 - 1e-9, "L = {l} < λ_max + 1 = {}", e + 1.0);
        }
    }
}

/// The implicit option: gradients at the fixed point equal those of unrolling the same
/// (converging) iteration for many steps.
#[test]
fn implicit_gradients_match_long_unrolling() {
    let base = VarsOptions {
        shrink: Shrink::SoftThreshold,
        lista: false,
        lam: 0.2,
        init: IstaInit::Zero,
        ..VarsOptions::official()
    };
    let implicit = VarsOptions {
        gradient: CodeGradient::Implicit {
            config: ImplicitConfig::default().with_tol(1e-10),
            max_steps: 20_000,
        },
        ..base
    };
    let unrolled = VarsOptions {
        steps: 30_000,
        ..base
    };
    let grads = |opts: VarsOptions| {
        let mut init = Init::<Ad>::new(&CpuDevice, DType::F64, 9);
        let attn = VarsAttention::new(&mut init, 8, 1, None, opts).unwrap();
        let x = tokens::<Ad>(&CpuDevice, 1, 36, 8).requires_grad().unwrap();
        let (d, v) = attn.dictionary(&x).unwrap();
        let (d, v) = (d.detach(), v.detach().requires_grad().unwrap());
        let a = attn.codes(&d, &v).unwrap();
        let w = Tensor::<Ad>::randn(a.dims().to_vec(), DType::F64, 4, &CpuDevice).unwrap();
        let g = a.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
        (
            a.to_vec::<f64>().unwrap(),
            g.get(&v).unwrap().to_vec::<f64>().unwrap(),
        )
    };
    let (a1, g1) = grads(implicit);
    let (a2, g2) = grads(unrolled);
    let max = |x: &[f64], y: &[f64]| {
        x.iter()
            .zip(y)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max)
    };
    // The forward stops at a residual of 1e-10 per step; with a contraction factor near
    // 1 − 2e-3 that leaves the code ~5e-8 from the fixed point.
    assert!(max(&a1, &a2) < 1e-6, "codes differ by {}", max(&a1, &a2));
    let scale = g2.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let rel = max(&g1, &g2) / scale;
    assert!(
        rel < 1e-4,
        "gradients differ by {rel:e} of max|g| = {scale}"
    );
}
