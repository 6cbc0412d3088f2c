//! The VARS‑S block (vars-spec §3.5): a static convolutional dictionary applied through the 2‑D
//! real FFT, which **replaces the whole transformer block** (no pre-LayerNorm, BatchNorms, an
//! extra global filter `K2`).
//!
//! # Computation (official HEAD, vars-spec §3.5)
//!
//! For tokens `x: (B, N, C)`, `N = S²`:
//! 1. `z = v(x)`, one `S×S` map per channel;
//! 2. analysis `b_{c,i} = F⁻¹(K_{c,i} ⊙ F(z_c))`, `i = 1…I` (`I = 5` atoms per channel);
//! 3. `A ← T_λ(b)`, then `T` times `A ← T_{λ/L_c}(A − (F⁻¹(G_c ⊙ F(A)) − b)/L_c)` with the
//!    per-frequency Gram `G_c(f)[i,i′] = K_{c,i}(f)·conj(K_{c,i′}(f))`, recomputed every pass with
//!    gradients into `K`;
//! 4. synthesis `r_c = F⁻¹(Σ_i conj(K_{c,i}) ⊙ F(A_{c,i}))`, global filter
//!    `r′_c = F⁻¹(K2_c ⊙ F(r_c))`;
//! 5. `x ← x + DropPath(proj(BN₁(r′)))`, `x ← x + DropPath(MLP(BN₂(x)))`, both BatchNorms
//!    BatchNorm1d over the tokens (statistics over `(B, N)`).
//!
//! `F`/`F⁻¹` are `torch.fft.rfftn`/`irfftn(norm="ortho")` over the grid with the exact
//! semantics of vars-spec §3.6: the inverse takes an arbitrary half spectrum and ignores the
//! imaginary parts of the DC and (even `S`) Nyquist columns after the first-axis inverse, i.e.
//! `y(n) = S⁻¹·Re Σ_k c_{k2}·Y(k)·ω^{k·n}` with `c = 1` at those columns and 2 elsewhere.
//!
//! # How it is computed
//!
//! - **Transforms as one GEMM each.** Both transforms are real linear maps on the flattened grid,
//!   so they are products with two constant real matrices built once in f64 from the closed forms
//!   above: `F` is `(2P × N)` and `F⁻¹` is `(N × 2P)`, `P = S·(S//2+1)`, rows/columns ordered
//!   (frequency, re/im). Every transform of the block (all channels, atoms and samples at once)
//!   is one batched matrix product over the channels. Their backward computes only the data
//!   gradient (a [`CustomOp`]), since the matrices are constants.
//! - **Channel-major layout.** Inside the block a spatial tensor is `(C, N, I·B)` and a spectrum
//!   `(C, P, 2·I, B)` with the 2·I axis ordered (re/im, atom). In that layout every spectral
//!   operation is one batched real matrix product over `(c, f)` with no copy: a complex
//!   coefficient `a` acts on `(re, im)` as the real block `[[ar, −ai], [ai, ar]]`.
//! - **The Gram without forming it.** `Σ_{i′} G[i,i′]·X_{i′} = K_i·(Σ_{i′} conj(K_{i′})·X_{i′})`
//!   exactly, so the literal per-frequency Gram is applied as the synthesis mix followed by the
//!   analysis mix *in the spectral domain* (40 instead of 100 multiply-adds per frequency,
//!   gradients into `K` through both factors). [`GramMode::Composed`] instead puts `F⁻¹`/`F`
//!   between the two (analysis∘synthesis, the exact `DᵀD`; vars-spec §3.5 "Subtleties", §7).
//! - `1/L_c` is folded into the analysis factor of the step, and `b/L_c` is computed once.
//!
//! # Step constants (vars-spec §3.5, §7)
//!
//! `L` is a frozen parameter (no gradient). [`StepRule::BugExact`] (reference) is
//! `max_f λ_max(Re G_c(f))`, evaluated in closed form on the host in f64 as the top eigenvalue
//! of `[[aᵀa, aᵀb], [bᵀa, bᵀb]]` with `a = Re k_c(f)`, `b = Im k_c(f)`; [`StepRule::Exact`] is
//! `max_f Σ_i |K_{c,i}(f)|²`. It is set at construction (rate 1) and updated by
//! [`VarsSBlock::update_step_constants`] (`L ← (1−rate)·L + rate·rule(K)`, rate 0.1 every 100
//! iterations in the reference's training loop).
//!
//! # State-dict names (vars-spec §4.8)
//!
//! In the reference's order: `kernel` (C, I, 1, S, S//2+1, 2) trainable, `L` (C) frozen,
//! `kernel_norm` () frozen (dead, 1.0), `kernel2` (C, 1, 1, S, S//2+1, 2) trainable, `v.*`,
//! `proj.*`, `norm1.bn.*`, `norm2.bn.*`, `mlp.*`.

use std::f64::consts::TAU;
use std::sync::Arc;

use crate::config::{GramMode, StepRule, VarsSOptions};
use crate::layers::mlp::Mlp;
use crate::layers::{drop_path, BatchNorm, Init, Linear, Mode};
use crate::params::{visit_child, visit_child_mut, ParamKind, Parameters};
use crate::{Result, VitError};
use vars_core::nn::fft::half_len;
use vars_core::nn::{shrink, shrink_scalar};
use vars_core::{no_grad, Backend, CustomBackward, CustomOp, DType, Tensor};

const MODULE: &str = "VarsSBlock";

/// The VARS‑S block (vars-spec §3.5). See the module docs for the computation and layouts.
#[derive(Debug, Clone)]
pub struct VarsSBlock<B: Backend> {
    /// Analysis spectra `K`, `(C, I, 1, S, S//2+1, 2)`.
    kernel: Tensor<B>,
    /// Step constants `L_c`, `(C)`, frozen.
    l: Tensor<B>,
    /// Dead state of the reference, `()`, 1.0 after init.
    kernel_norm: Tensor<B>,
    /// Global filter `K2`, `(C, 1, 1, S, S//2+1, 2)`.
    kernel2: Tensor<B>,
    /// Value map `C → C`.
    v: Linear<B>,
    /// Output map `C → C`.
    proj: Linear<B>,
    /// BatchNorm1d after the reconstruction (`norm1.bn`).
    norm1: BatchNorm<B>,
    /// BatchNorm1d before the MLP (`norm2.bn`).
    norm2: BatchNorm<B>,
    /// The RVT MLP.
    mlp: Mlp<B>,
    dim: usize,
    grid: usize,
    drop_path: f64,
    options: VarsSOptions,
    /// The transform matrices in the parameters' dtype.
    dft: Dft<B>,
    /// Ablation: the sparse-coding branch contributes zero (`x ← x`, then the MLP), so a model
    /// shows what its attention contributes. Off by default; parameters are unchanged.
    pub ablate_attention: bool,
}

/// The constant real matrices of `F` and `F⁻¹` on the flattened `S×S` grid.
#[derive(Debug, Clone)]
struct Dft<B: Backend> {
    /// `(2P, N)`: row `2f + p` (p = 0 real, 1 imaginary part of frequency `f = k1·Kh + k2`).
    forward: Tensor<B>,
    /// `(N, 2P)`: column `2f + q`, the closed form of `irfftn` (vars-spec §3.6).
    inverse: Tensor<B>,
}

impl<B: Backend> Dft<B> {
    fn new(s: usize, dtype: DType, device: &B::Device) -> Result<Self> {
        let kh = half_len(s);
        let (n, p) = (s * s, s * kh);
        let scale = 1.0 / s as f64;
        // (k1·n1 + k2·n2) mod S, reduced in integers so the angle is exact.
        let angle = |f: usize, t: usize| {
            let (k1, k2) = (f / kh, f % kh);
            let (n1, n2) = (t / s, t % s);
            TAU * ((k1 * n1 + k2 * n2) % s) as f64 / s as f64
        };
        let weight = |f: usize| {
            let k2 = f % kh;
            if k2 == 0 || (s % 2 == 0 && k2 == s / 2) {
                1.0
            } else {
                2.0
            }
        };
        let mut forward = vec![0.0; 2 * p * n];
        for f in 0..p {
            for t in 0..n {
                let a = angle(f, t);
                forward[(2 * f) * n + t] = a.cos() * scale;
                forward[(2 * f + 1) * n + t] = -a.sin() * scale;
            }
        }
        let mut inverse = vec![0.0; n * 2 * p];
        for t in 0..n {
            for f in 0..p {
                let (a, c) = (angle(f, t), weight(f) * scale);
                inverse[t * 2 * p + 2 * f] = c * a.cos();
                inverse[t * 2 * p + 2 * f + 1] = -c * a.sin();
            }
        }
        Ok(Dft {
            forward: host_tensor(forward, &[2 * p, n], dtype, device)?,
            inverse: host_tensor(inverse, &[n, 2 * p], dtype, device)?,
        })
    }
}

/// A float tensor of `dtype` from f64 host values.
fn host_tensor<B: Backend>(
    values: Vec<f64>,
    shape: &[usize],
    dtype: DType,
    device: &B::Device,
) -> Result<Tensor<B>> {
    Ok(match dtype {
        DType::F64 => Tensor::from_vec(values, shape.to_vec(), device)?,
        DType::F32 => Tensor::from_vec(
            values.into_iter().map(|v| v as f32).collect::<Vec<f32>>(),
            shape.to_vec(),
            device,
        )?,
        other => {
            return Err(VitError::config(
                format!("VARS-S parameters of dtype {other:?}"),
                "build the block with a float dtype (f32 or f64)",
            ))
        }
    })
}

/// `W·x` for a constant matrix `W: (m, k)` and `x: (…, k, r)`, whose backward computes only the
/// gradient of `x` (`Wᵀ·g`): the engine's matmul would also form the discarded gradient of `W`,
/// doubling the cost of every transform's backward.
struct ConstMatmul<B: Backend> {
    w: Tensor<B>,
}

impl<B: Backend> CustomOp<B> for ConstMatmul<B> {
    fn name(&self) -> &str {
        "vars_s_transform"
    }

    fn forward(
        &self,
        inputs: &[Tensor<B>],
    ) -> vars_core::Result<(Tensor<B>, Arc<dyn CustomBackward<B>>)> {
        let y = self.w.matmul(&inputs[0])?;
        let wt = self.w.t()?;
        let backward = move |g: &Tensor<B>| -> vars_core::Result<Vec<Option<Tensor<B>>>> {
            Ok(vec![Some(wt.matmul(g)?)])
        };
        Ok((y, Arc::new(backward)))
    }
}

/// One iterate of the block's sparse coding ([`VarsSBlock::iterations`]).
#[derive(Debug, Clone)]
pub struct VarsSIterate<B: Backend> {
    /// The code `A_k`, `(B, I·C, N)`, row `c·I + i`.
    pub code: Tensor<B>,
    /// `r′ = F⁻¹(K2 ⊙ F(synthesis(A_k)))` as tokens `(B, N, C)`: what the block feeds to `BN₁`
    /// and `proj` had it stopped at this iterate.
    pub reconstruction: Tensor<B>,
}

/// The outcome of the sparse coding in the internal layout.
struct Codes<B: Backend> {
    /// The final codes `(C, N, I·B)`.
    codes: Tensor<B>,
    /// `A_0 … A_T` when asked for.
    iterates: Vec<Tensor<B>>,
    spectral: Spectral<B>,
    dft: Dft<B>,
}

/// The per-forward spectral operators, all `(C, P, rows, cols)` real block matrices.
struct Spectral<B: Backend> {
    /// `K`: `(C, P, 2I, 2)`, rows (re/im, atom). The synthesis mix is its transpose.
    analysis: Tensor<B>,
    /// `K2`: `(C, P, 2, 2)`.
    filter: Tensor<B>,
}

/// The real block form `(C, P, 2J, 2)` of multiplying a `(re, im)` pair by each of the `J`
/// complex coefficients of `k: (C, P, J, 2)`: rows `(q, j)`, `[[kr, −ki], [ki, kr]]`.
fn complex_block<B: Backend>(k: &Tensor<B>) -> Result<Tensor<B>> {
    let kr = k.narrow(3, 0, 1)?;
    let ki = k.narrow(3, 1, 1)?;
    let top = Tensor::cat(&[&kr, &ki.neg()?], 3)?;
    let bottom = Tensor::cat(&[&ki, &kr], 3)?;
    Ok(Tensor::cat(&[&top, &bottom], 2)?)
}

impl<B: Backend> VarsSBlock<B> {
    /// Builds a block of width `dim` for an `grid × grid` token grid, initialised as the
    /// reference (vars-spec §3.5): `K` re/im i.i.d. `0.06·N(0,1)`, each `(c, i)` rescaled so that
    /// `(2/S²)·Σ|K|² = 1`; `K2` `0.02·N(0,1)`; `L` by `options.step_rule` at rate 1;
    /// `kernel_norm = 1`; `v`, `proj`, BatchNorms and MLP with PyTorch defaults.
    pub fn new(
        init: &mut Init<'_, B>,
        dim: usize,
        grid: usize,
        mlp_hidden: usize,
        drop_path: f64,
        options: VarsSOptions,
    ) -> Result<Self> {
        validate(dim, grid, mlp_hidden, drop_path, &options)?;
        let (s, kh, atoms) = (grid, half_len(grid), options.atoms);

        let raw = init.normal(&[dim, atoms, 1, s, kh, 2], 0.06)?;
        let kernel = no_grad(|| -> Result<Tensor<B>> {
            let norm = atom_norm(&raw, s)?;
            Ok(raw.div(&norm)?)
        })?;
        let kernel_norm = no_grad(|| -> Result<Tensor<B>> {
            Ok(atom_norm(&kernel, s)?
                .mean_all()?
                .reshape(Vec::<usize>::new())?)
        })?;
        let v = Linear::new(init, dim, dim, true)?;
        let proj = Linear::new(init, dim, dim, true)?;
        let kernel2 = init.normal(&[dim, 1, 1, s, kh, 2], 0.02)?;
        let norm1 = BatchNorm::new(init, dim)?;
        let norm2 = BatchNorm::new(init, dim)?;
        let mlp = Mlp::new(init, dim, mlp_hidden)?;
        let l = Self::step_constants_from_kernel(&kernel, options.step_rule)?;
        let dft = Dft::new(s, init.dtype, init.device)?;
        Ok(VarsSBlock {
            kernel,
            l,
            kernel_norm,
            kernel2,
            v,
            proj,
            norm1,
            norm2,
            mlp,
            dim,
            grid,
            drop_path,
            options,
            dft,
            ablate_attention: false,
        })
    }

    /// Moves the block to a `new × new` grid (a project extension; the reference is
    /// resolution-locked): each spectrum `K` (and `K2`) is turned into its spatial filter
    /// `h = F⁻¹K`, resized bicubically, rescaled by `S'/S` so the circular convolution it
    /// defines keeps its response (`analysis = conv(z, S⁻¹·F⁻¹K)`), and transformed back;
    /// the transform matrices are rebuilt and `L_c` is recomputed by the step rule (rate 1).
    /// The new tensors are plain (untracked) values.
    pub fn resize_grid(&mut self, new: usize) -> Result<()> {
        if new == 0 {
            return Err(VitError::config(
                "resizing a VARS-S block to a 0×0 grid",
                "use a positive grid side",
            ));
        }
        let old = self.grid;
        if new == old {
            return Ok(());
        }
        let resize = |k: &Tensor<B>| -> Result<Tensor<B>> {
            no_grad(|| {
                let h = vars_core::nn::irfft2(&k.detach(), old)?;
                let h = crate::layers::resize::resize_grid(&h, new)?
                    .mul_scalar(new as f64 / old as f64)?;
                Ok(vars_core::nn::rfft2(&h)?.contiguous()?)
            })
        };
        self.kernel = resize(&self.kernel)?;
        self.kernel2 = resize(&self.kernel2)?;
        self.l = Self::step_constants_from_kernel(&self.kernel, self.options.step_rule)?;
        self.dft = Dft::new(new, self.kernel.dtype(), self.kernel.device())?;
        self.grid = new;
        Ok(())
    }

    /// Width `C`.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Grid side `S` (the block runs on exactly `S²` tokens).
    pub fn grid(&self) -> usize {
        self.grid
    }

    /// The block's settings.
    pub fn options(&self) -> &VarsSOptions {
        &self.options
    }

    /// The analysis spectra `K`, `(C, I, 1, S, S//2+1, 2)`.
    pub fn kernel(&self) -> &Tensor<B> {
        &self.kernel
    }

    /// The global filter `K2`, `(C, 1, 1, S, S//2+1, 2)`.
    pub fn kernel2(&self) -> &Tensor<B> {
        &self.kernel2
    }

    /// The current step constants `L`, `(C)`.
    pub fn step_constants(&self) -> &Tensor<B> {
        &self.l
    }

    /// The step-constant rule of vars-spec §3.5 applied to a kernel `(C, I, 1, S, S//2+1, 2)`,
    /// returning `(C)` in the kernel's dtype, without gradient. Evaluated on the host in f64:
    /// - [`StepRule::BugExact`]: `max_f λ_max(Re G_c(f))`, the top eigenvalue of
    ///   `[[aᵀa, aᵀb], [bᵀa, bᵀb]]`, `a = Re k_c(f)`, `b = Im k_c(f)`:
    ///   `(aa+bb)/2 + √(((aa−bb)/2)² + ab²)`;
    /// - [`StepRule::Exact`]: `max_f Σ_i |K_{c,i}(f)|²`.
    pub fn step_constants_from_kernel(kernel: &Tensor<B>, rule: StepRule) -> Result<Tensor<B>> {
        let d = kernel.dims();
        if d.len() != 6 || d[2] != 1 || d[5] != 2 || d.contains(&0) {
            return Err(VitError::Input {
                module: MODULE,
                problem: format!(
                    "expected a kernel (C, I, 1, S, S//2+1, 2) with non-zero sizes, got {}",
                    kernel.shape()
                ),
            });
        }
        let (c, atoms, p) = (d[0], d[1], d[3] * d[4]);
        let host = kernel.detach().to_vec_f64()?;
        let mut out = Vec::with_capacity(c);
        for ci in 0..c {
            let mut best = f64::NEG_INFINITY;
            for f in 0..p {
                let (mut aa, mut bb, mut ab) = (0.0, 0.0, 0.0);
                for i in 0..atoms {
                    let at = ((ci * atoms + i) * p + f) * 2;
                    let (a, b) = (host[at], host[at + 1]);
                    aa += a * a;
                    bb += b * b;
                    ab += a * b;
                }
                let value = match rule {
                    StepRule::BugExact => {
                        let half = 0.5 * (aa - bb);
                        0.5 * (aa + bb) + (half * half + ab * ab).sqrt()
                    }
                    StepRule::Exact => aa + bb,
                };
                best = best.max(value);
            }
            out.push(best);
        }
        host_tensor(out, &[c], kernel.dtype(), kernel.device())
    }

    /// `L_c ← (1 − rate)·L_c + rate·rule(K)` without gradient (vars-spec §3.5); rate 1 replaces
    /// `L` outright (that is what construction does), the reference's training loop uses 0.1.
    pub fn update_step_constants(&mut self, rate: f64) -> Result<()> {
        if !(rate.is_finite() && (0.0..=1.0).contains(&rate)) {
            return Err(VitError::config(
                format!("VARS-S step-constant update rate {rate}"),
                "use a rate in [0, 1] (0.1 in the reference's training loop, 1 to reset)",
            ));
        }
        let fresh = Self::step_constants_from_kernel(&self.kernel, self.options.step_rule)?;
        self.l = if rate == 1.0 {
            fresh
        } else {
            no_grad(|| -> Result<Tensor<B>> {
                Ok(self
                    .l
                    .detach()
                    .mul_scalar(1.0 - rate)?
                    .add(&fresh.mul_scalar(rate)?)?)
            })?
        };
        Ok(())
    }

    /// Tokens `x: (B, N, C)` with `N = grid²` → `(B, N, C)` (vars-spec §3.5 steps 1–9).
    /// `stream` seeds this block's two DropPath draws (`2·stream`, `2·stream + 1`) in train mode.
    pub fn forward(&self, x: &Tensor<B>, mode: Mode, stream: u64) -> Result<Tensor<B>> {
        if self.ablate_attention {
            self.check_tokens(x)?;
            let y = self
                .norm2
                .forward(&x.transpose(1, 2)?, mode)?
                .transpose(1, 2)?;
            let m = self.mlp.forward(&y, mode)?;
            return Ok(x.add(&drop_path(&m, self.drop_path, mode, 2 * stream + 1)?)?);
        }
        let state = self.code_internal(x, false)?;
        let r = self.reconstruct_internal(&state.codes, &state.spectral, &state.dft)?;
        // BN₁ over (B, C, N), then proj over the tokens (B, N, C).
        let r = self.norm1.forward(&r.permute(&[2, 0, 1])?, mode)?;
        let h = self.proj.forward(&r.transpose(1, 2)?)?;
        let x = x.add(&drop_path(&h, self.drop_path, mode, 2 * stream)?)?;
        let y = self
            .norm2
            .forward(&x.transpose(1, 2)?, mode)?
            .transpose(1, 2)?;
        let m = self.mlp.forward(&y, mode)?;
        Ok(x.add(&drop_path(&m, self.drop_path, mode, 2 * stream + 1)?)?)
    }

    /// The final sparse codes `A` for tokens `x: (B, N, C)`, as `(B, I·C, N)` with row `c·I + i`
    /// (the reference's layout), e.g. for attention-map visualisation. They do not depend on the
    /// mode: nothing before them is stochastic or normalised.
    pub fn codes(&self, x: &Tensor<B>) -> Result<Tensor<B>> {
        let state = self.code_internal(x, false)?;
        self.codes_to_external(&state.codes, x.dims()[0])
    }

    /// Every iterate of the sparse coding for tokens `x: (B, N, C)`: `T + 1` entries, the initial
    /// guess `A_0 = T_λ(b)` first and the forward's final code last, each with the
    /// reconstruction it gives (for introspection; record no gradient by running it under
    /// [`no_grad`]).
    pub fn iterations(&self, x: &Tensor<B>) -> Result<Vec<VarsSIterate<B>>> {
        let bsz = x.dims().first().copied().unwrap_or(0);
        let state = self.code_internal(x, true)?;
        state
            .iterates
            .iter()
            .map(|a| {
                let r = self.reconstruct_internal(a, &state.spectral, &state.dft)?;
                Ok(VarsSIterate {
                    code: self.codes_to_external(a, bsz)?,
                    reconstruction: r.permute(&[2, 1, 0])?,
                })
            })
            .collect()
    }

    /// The values `z = v(x)` the block codes, as per-channel maps `(B, C, N)`: with
    /// [`VarsSBlock::analysis`] and [`VarsSBlock::synthesis`] they give the sparse-coding
    /// problem of each channel (e.g. its energy `½‖z − synthesis(A)‖² + λ‖A‖₁`).
    pub fn values(&self, x: &Tensor<B>) -> Result<Tensor<B>> {
        self.check_tokens(x)?;
        Ok(self.v.forward(x)?.transpose(1, 2)?)
    }

    /// The analysis map alone: per-channel maps `z: (B, C, N)` (grid flattened row-major) →
    /// `b: (B, I·C, N)`, `b_{c,i} = F⁻¹(K_{c,i} ⊙ F(z_c))`, row `c·I + i`.
    pub fn analysis(&self, z: &Tensor<B>) -> Result<Tensor<B>> {
        let bsz = self.check_maps("analysis", z, 1)?;
        let dft = self.dft_for(z.dtype())?;
        let spectral = self.spectral()?;
        let b = self.analysis_internal(&z.permute(&[1, 2, 0])?, &spectral.analysis, &dft)?;
        self.codes_to_external(&b, bsz)
    }

    /// The synthesis map alone, the exact adjoint of [`VarsSBlock::analysis`]: codes
    /// `a: (B, I·C, N)` → `r: (B, C, N)`, `r_c = F⁻¹(Σ_i conj(K_{c,i}) ⊙ F(a_{c,i}))`.
    pub fn synthesis(&self, a: &Tensor<B>) -> Result<Tensor<B>> {
        let bsz = self.check_maps("synthesis", a, self.options.atoms)?;
        let dft = self.dft_for(a.dtype())?;
        let spectral = self.spectral()?;
        let a = self.codes_to_internal(a, bsz)?;
        let r = self.synthesis_internal(&a, &spectral, &dft)?;
        Ok(r.permute(&[2, 0, 1])?)
    }

    /// The Gram operator of the ISTA step (without the `1/L_c`): codes `(B, I·C, N)` →
    /// `(B, I·C, N)`. [`GramMode::Literal`] is the reference's per-frequency
    /// `F⁻¹(Σ_{i′} G_c[i,i′] ⊙ F(a_{c,i′}))`; [`GramMode::Composed`] is analysis∘synthesis.
    pub fn gram(&self, a: &Tensor<B>) -> Result<Tensor<B>> {
        let bsz = self.check_maps("gram", a, self.options.atoms)?;
        let dft = self.dft_for(a.dtype())?;
        let spectral = self.spectral()?;
        let a = self.codes_to_internal(a, bsz)?;
        let g = self.gram_internal(&a, &spectral.analysis, &spectral.analysis, &dft)?;
        self.codes_to_external(&g, bsz)
    }

    // ---- internals ------------------------------------------------------------------------------

    /// Checks the tokens and runs steps 1–5, returning the codes `(C, N, I·B)` and the operators;
    /// with `keep`, also every iterate `A_0 … A_T` (the last one is the returned code).
    fn code_internal(&self, x: &Tensor<B>, keep: bool) -> Result<Codes<B>> {
        self.check_tokens(x)?;
        let c = self.dim;
        let dft = self.dft_for(x.dtype())?;
        let spectral = self.spectral()?;
        // z = v(x) as per-channel maps (C, N, B); the transform reads the strided view directly.
        let z = self.v.forward(x)?.permute(&[2, 1, 0])?;
        let b = self.analysis_internal(&z, &spectral.analysis, &dft)?;

        let lam = self.options.lam;
        let shrink_kind = self.options.shrink;
        let mut a = shrink_scalar(&b, lam, shrink_kind)?;
        let mut iterates = Vec::new();
        if keep {
            iterates.push(a.clone());
        }
        if self.options.steps > 0 {
            // L is frozen: never differentiate through it.
            let inv_l = self.l.detach().recip()?.reshape([c, 1, 1])?;
            let threshold = inv_l.mul_scalar(lam)?;
            let b_scaled = b.mul(&inv_l)?;
            let analysis_scaled = spectral.analysis.mul(&inv_l.reshape([c, 1, 1, 1])?)?;
            for _ in 0..self.options.steps {
                let ga = self.gram_internal(&a, &spectral.analysis, &analysis_scaled, &dft)?;
                a = shrink(&a.sub(&ga)?.add(&b_scaled)?, &threshold, shrink_kind)?;
                if keep {
                    iterates.push(a.clone());
                }
            }
        }
        Ok(Codes {
            codes: a,
            iterates,
            spectral,
            dft,
        })
    }

    /// `(C, N, B)` maps → `(C, N, I·B)` analysis coefficients.
    fn analysis_internal(
        &self,
        z: &Tensor<B>,
        analysis: &Tensor<B>,
        dft: &Dft<B>,
    ) -> Result<Tensor<B>> {
        dft.apply_inverse(&mix(analysis, &dft.apply_forward(z)?, self.grid)?)
    }

    /// `(C, N, I·B)` codes → `(C, N, B)` reconstruction.
    fn synthesis_internal(
        &self,
        a: &Tensor<B>,
        spectral: &Spectral<B>,
        dft: &Dft<B>,
    ) -> Result<Tensor<B>> {
        let synth = spectral.analysis.transpose(2, 3)?;
        dft.apply_inverse(&mix(&synth, &dft.apply_forward(a)?, self.grid)?)
    }

    /// Synthesis followed by the global filter: `(C, N, I·B)` codes → `r′` `(C, N, B)`.
    fn reconstruct_internal(
        &self,
        a: &Tensor<B>,
        spectral: &Spectral<B>,
        dft: &Dft<B>,
    ) -> Result<Tensor<B>> {
        let r = self.synthesis_internal(a, spectral, dft)?;
        dft.apply_inverse(&mix(&spectral.filter, &dft.apply_forward(&r)?, self.grid)?)
    }

    /// The Gram operator on `(C, N, I·B)` codes, with `synthesis_from` giving the synthesis
    /// factor (its transpose) and `analysis` the (possibly `1/L`-scaled) analysis factor.
    fn gram_internal(
        &self,
        a: &Tensor<B>,
        synthesis_from: &Tensor<B>,
        analysis: &Tensor<B>,
        dft: &Dft<B>,
    ) -> Result<Tensor<B>> {
        let synth = synthesis_from.transpose(2, 3)?;
        let u = mix(&synth, &dft.apply_forward(a)?, self.grid)?;
        let u = match self.options.gram {
            GramMode::Literal => u,
            GramMode::Composed => dft.apply_forward(&dft.apply_inverse(&u)?)?,
        };
        dft.apply_inverse(&mix(analysis, &u, self.grid)?)
    }

    /// The per-forward spectral block matrices, with gradients into `kernel` and `kernel2`.
    fn spectral(&self) -> Result<Spectral<B>> {
        let (c, atoms, s) = (self.dim, self.options.atoms, self.grid);
        let p = s * half_len(s);
        // (C, I, 1, S, Kh, 2) → (C, S, Kh, I, 1, 2) → (C, P, I, 2), f = k1·Kh + k2.
        let k = self
            .kernel
            .permute(&[0, 3, 4, 1, 2, 5])?
            .reshape([c, p, atoms, 2])?;
        let k2 = self
            .kernel2
            .permute(&[0, 3, 4, 1, 2, 5])?
            .reshape([c, p, 1, 2])?;
        Ok(Spectral {
            analysis: complex_block(&k)?,
            filter: complex_block(&k2)?,
        })
    }

    /// The transform matrices for `dtype` (the cached ones unless the input's dtype differs).
    fn dft_for(&self, dtype: DType) -> Result<Dft<B>> {
        if dtype == self.dft.forward.dtype() {
            Ok(self.dft.clone())
        } else {
            Dft::new(self.grid, dtype, self.dft.forward.device())
        }
    }

    fn check_tokens(&self, x: &Tensor<B>) -> Result<()> {
        let n = self.grid * self.grid;
        if x.rank() != 3 || x.dims()[2] != self.dim {
            return Err(VitError::Input {
                module: MODULE,
                problem: format!("expected tokens (B, {n}, {}), got {}", self.dim, x.shape()),
            });
        }
        if x.dims()[1] != n {
            return Err(VitError::Input {
                module: MODULE,
                problem: format!(
                    "the block is built for a {g}×{g} grid ({n} tokens), the input has {} tokens; \
                     VARS-S is resolution-locked (vars-spec §3.5, §4.2)",
                    x.dims()[1],
                    g = self.grid
                ),
            });
        }
        if x.dims()[0] == 0 {
            return Err(VitError::Input {
                module: MODULE,
                problem: "empty batch".into(),
            });
        }
        Ok(())
    }

    /// Checks `(B, per·C, N)` and returns `B`.
    fn check_maps(&self, what: &str, t: &Tensor<B>, per: usize) -> Result<usize> {
        let (rows, n) = (per * self.dim, self.grid * self.grid);
        if t.rank() != 3 || t.dims()[1] != rows || t.dims()[2] != n || t.dims()[0] == 0 {
            return Err(VitError::Input {
                module: MODULE,
                problem: format!("{what}: expected (B, {rows}, {n}), got {}", t.shape()),
            });
        }
        Ok(t.dims()[0])
    }

    /// `(B, I·C, N)` → `(C, N, I·B)`.
    fn codes_to_internal(&self, a: &Tensor<B>, bsz: usize) -> Result<Tensor<B>> {
        let (c, atoms, n) = (self.dim, self.options.atoms, self.grid * self.grid);
        Ok(a.reshape([bsz, c, atoms, n])?
            .permute(&[1, 3, 2, 0])?
            .reshape([c, n, atoms * bsz])?)
    }

    /// `(C, N, I·B)` → `(B, I·C, N)`.
    fn codes_to_external(&self, a: &Tensor<B>, bsz: usize) -> Result<Tensor<B>> {
        let (c, atoms, n) = (self.dim, self.options.atoms, self.grid * self.grid);
        Ok(a.reshape([c, n, atoms, bsz])?
            .permute(&[3, 0, 2, 1])?
            .reshape([bsz, c * atoms, n])?)
    }
}

impl<B: Backend> Dft<B> {
    /// `F` on spatial `(C, N, R)` → spectrum `(C, 2P, R)` (row `2f + p`).
    fn apply_forward(&self, x: &Tensor<B>) -> Result<Tensor<B>> {
        let op = ConstMatmul {
            w: self.forward.clone(),
        };
        Ok(Tensor::apply_custom(&op, &[x])?)
    }

    /// `F⁻¹` on spectrum `(C, 2P, R)` → spatial `(C, N, R)`.
    fn apply_inverse(&self, y: &Tensor<B>) -> Result<Tensor<B>> {
        let op = ConstMatmul {
            w: self.inverse.clone(),
        };
        Ok(Tensor::apply_custom(&op, &[y])?)
    }
}

/// Applies per-`(c, f)` real block matrices `m: (C, P, Jout, Jin)` to a spectrum
/// `x: (C, 2P, (Jin/2)·B)` (which is `(C, P, Jin, B)` in memory) → `(C, 2P, (Jout/2)·B)`.
fn mix<B: Backend>(m: &Tensor<B>, x: &Tensor<B>, grid: usize) -> Result<Tensor<B>> {
    let d = m.dims();
    let (c, p, jout, jin) = (d[0], d[1], d[2], d[3]);
    debug_assert_eq!(p, grid * half_len(grid));
    let per = x.dims()[2] / (jin / 2);
    let y = m.matmul(&x.reshape([c, p, jin, per])?)?;
    Ok(y.reshape([c, 2 * p, (jout / 2) * per])?)
}

/// `√((2/S²)·Σ|K|²)` per `(c, i)` of a kernel `(C, I, 1, S, Kh, 2)`, keeping dims.
fn atom_norm<B: Backend>(k: &Tensor<B>, s: usize) -> Result<Tensor<B>> {
    Ok(k.sqr()?
        .sum(&[2, 3, 4, 5], true)?
        .mul_scalar(2.0 / (s * s) as f64)?
        .sqrt()?)
}

fn validate(
    dim: usize,
    grid: usize,
    mlp_hidden: usize,
    drop_path: f64,
    o: &VarsSOptions,
) -> Result<()> {
    if dim == 0 || grid == 0 || mlp_hidden == 0 {
        return Err(VitError::config(
            format!("VARS-S block with dim {dim}, grid {grid}, MLP hidden {mlp_hidden}"),
            "all sizes must be positive (RVT-Ti stage 0: dim 192, grid 14, hidden 768)",
        ));
    }
    if o.atoms == 0 {
        return Err(VitError::config(
            "VARS-S with 0 atoms per channel",
            "use at least one atom (the reference uses 5)",
        ));
    }
    if !(o.lam.is_finite() && o.lam >= 0.0) {
        return Err(VitError::config(
            format!("VARS-S λ = {}", o.lam),
            "λ must be finite and non-negative (the reference uses 3.5)",
        ));
    }
    if !(0.0..1.0).contains(&drop_path) {
        return Err(VitError::config(
            format!("drop_path = {drop_path}"),
            "use a stochastic-depth rate in [0, 1)",
        ));
    }
    Ok(())
}

impl<B: Backend> Parameters<B> for VarsSBlock<B> {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor<B>, ParamKind)) {
        f("kernel", &self.kernel, ParamKind::Trainable);
        f("L", &self.l, ParamKind::Frozen);
        f("kernel_norm", &self.kernel_norm, ParamKind::Frozen);
        f("kernel2", &self.kernel2, ParamKind::Trainable);
        visit_child("v", &self.v, f);
        visit_child("proj", &self.proj, f);
        visit_child("norm1.bn", &self.norm1, f);
        visit_child("norm2.bn", &self.norm2, f);
        visit_child("mlp", &self.mlp, f);
    }

    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<B>)) {
        f("kernel", &mut self.kernel);
        f("L", &mut self.l);
        f("kernel_norm", &mut self.kernel_norm);
        f("kernel2", &mut self.kernel2);
        visit_child_mut("v", &mut self.v, f);
        visit_child_mut("proj", &mut self.proj, f);
        visit_child_mut("norm1.bn", &mut self.norm1, f);
        visit_child_mut("norm2.bn", &mut self.norm2, f);
        visit_child_mut("mlp", &mut self.mlp, f);
    }
}
