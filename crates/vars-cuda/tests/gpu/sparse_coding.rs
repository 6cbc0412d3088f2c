//! The CUDA sparse-coding kernels (`src/sparse_coding.rs`, `src/kernels/sparse_coding.cu`)
//! against the CPU backend's fused kernel (`vars_cpu::Cpu`'s `Backend::unrolled_ista_forward` /
//! `unrolled_ista_backward`), on both CUDA paths (fused in shared memory, tiled in global memory),
//! for every shrink and initial guess, f32 and f64, contiguous, strided and broadcast views.
//!
//! Every test skips with a printed reason when no CUDA device can be opened, unless
//! `VARS_REQUIRE_GPU=1` (then a missing device is a failure).
//!
//! Tolerances, relative to the largest reference magnitude of each compared tensor (over the
//! compared entries): f64 1e-10; f32 1e-4, and 1e-3 for ∂λ and ∂L (sums over every code and step,
//! accumulated in f64 from f32 terms that already differ at rounding level). The two backends
//! differ only in the summation order of the matrix products and of the scalar reductions.
//!
//! Masking: the GELU shrink jumps at `z = 0` (`sign(z)·gelu(|z| − t)` goes from `−gelu(−t)` to
//! `gelu(−t)`) and the soft threshold's derivative jumps at `|z| = t`. A pre-shrink value within
//! rounding of such a point may land on different sides on the two backends, and the difference
//! then spreads to the whole entry through `G`. So batch entries whose reference pre-shrink values
//! (recomputed on the host from the CPU's saved iterates) come within `δ·max(1, max|z|)` of a jump
//! (δ = 1e-8 for f64; 1e-6 for f32, about ten times the rounding-level difference of the two
//! backends' f32 pre-shrink values at these sizes) are left out of the comparison, entry by
//! entry; every case compares at least one entry, and the small-problem test at least 90% of
//! them. The CPU reference is deterministic, so which entries are compared does not depend on
//! the machine (at the time of writing: all entries of the small problems, 1 to 11 of 12 of the
//! larger f32 ones).

use vars_core::nn::Shrink;
use vars_core::sparse::{IstaForward, IstaGrads, IstaInit, UnrolledIsta};
use vars_core::{Backend, DType, HostData, Layout, Shape};
use vars_cpu::{Cpu, CpuStorage};
use vars_cuda::{CudaDevice, CudaStorage};

/// The shared device of the GPU test binary, by value.
fn device() -> Option<CudaDevice> {
    super::device().cloned()
}

const SHRINKS: [Shrink; 3] = [Shrink::Gelu, Shrink::SoftThreshold, Shrink::Identity];
const INITS: [IstaInit; 2] = [IstaInit::Shrink, IstaInit::Zero];

fn shape(dims: &[usize]) -> Shape {
    Shape::new(dims.to_vec())
}

/// One operand: a physical buffer (f64 on the host) and the view of it the op receives.
#[derive(Clone)]
struct Operand {
    phys: Vec<f64>,
    layout: Layout,
}

impl Operand {
    /// The view's elements in logical (row-major) order.
    fn logical(&self) -> Vec<f64> {
        self.layout.strided_index().map(|i| self.phys[i]).collect()
    }

    /// Rounds the buffer to f32 when the problem is f32 (so host-side checks see what the
    /// backends see).
    fn round(mut self, dtype: DType) -> Self {
        if dtype == DType::F32 {
            self.phys.iter_mut().for_each(|x| *x = *x as f32 as f64);
        }
        self
    }

    fn cpu(&self, dtype: DType) -> CpuStorage {
        match dtype {
            DType::F32 => CpuStorage::from_vec_f32(self.phys.iter().map(|&x| x as f32).collect()),
            _ => CpuStorage::from_vec_f64(self.phys.clone()),
        }
    }

    fn gpu(&self, dev: &CudaDevice, dtype: DType) -> CudaStorage {
        let data = match dtype {
            DType::F32 => HostData::F32(self.phys.iter().map(|&x| x as f32).collect()),
            _ => HostData::F64(self.phys.clone()),
        };
        dev.from_host(&data).unwrap()
    }
}

/// How the four operands and the output gradient are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Views {
    /// All contiguous.
    Contiguous,
    /// G shared by the first batch dim (stride 0) and transposed, b transposed, λ one scalar
    /// broadcast everywhere, the gradient a narrowed (offset, padded-row) view.
    Broadcast,
    /// Batch dims permuted (G, λ), a narrowed batch dim with an offset (b), L broadcast over
    /// the last batch dim, the gradient permuted.
    Permuted,
}

const VIEWS: [Views; 3] = [Views::Contiguous, Views::Broadcast, Views::Permuted];

fn normal(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    (0..n as u64)
        .map(|i| scale * vars_core::rng::normal(seed, i))
        .collect()
}

fn uniform(n: usize, seed: u64, low: f64, high: f64) -> Vec<f64> {
    (0..n as u64)
        .map(|i| low + (high - low) * vars_core::rng::uniform(seed, i))
        .collect()
}

/// A random problem: batch dims `bd` (rank 2 here, so that every view kind applies; a rank-0
/// batch is covered by [`Problem::plain`]), `m` atoms, `d` columns.
struct Problem {
    batch: Vec<usize>,
    m: usize,
    d: usize,
    g: Operand,
    b: Operand,
    lam: Operand,
    l: Operand,
    grad: Operand,
}

impl Problem {
    fn new(batch: [usize; 2], m: usize, d: usize, views: Views, dtype: DType, seed: u64) -> Self {
        let [p, q] = batch;
        let full = |r: usize, c: usize| shape(&[p, q, r, c]);
        // G = I + noise (not symmetric), like W·G·W.
        let noisy_eye = |count: usize, seed: u64| {
            let mut v = normal(count * m * m, seed, 0.3 / (m as f64).sqrt());
            for e in 0..count {
                for i in 0..m {
                    v[e * m * m + i * m + i] += 1.0;
                }
            }
            v
        };
        let (g, b, lam, grad) = match views {
            Views::Contiguous => (
                Operand {
                    phys: noisy_eye(p * q, seed),
                    layout: Layout::contiguous(full(m, m)),
                },
                Operand {
                    phys: normal(p * q * m * d, seed + 1, 1.0),
                    layout: Layout::contiguous(full(m, d)),
                },
                Operand {
                    phys: uniform(p * q, seed + 2, 0.1, 0.4),
                    layout: Layout::contiguous(full(1, 1)),
                },
                Operand {
                    phys: normal(p * q * m * d, seed + 4, 1.0),
                    layout: Layout::contiguous(full(m, d)),
                },
            ),
            Views::Broadcast => (
                Operand {
                    phys: noisy_eye(q, seed),
                    layout: Layout::contiguous(shape(&[1, q, m, m]))
                        .broadcast_as(&full(m, m))
                        .unwrap()
                        .permute(&[0, 1, 3, 2])
                        .unwrap(),
                },
                Operand {
                    phys: normal(p * q * d * m, seed + 1, 1.0),
                    layout: Layout::contiguous(shape(&[p, q, d, m]))
                        .permute(&[0, 1, 3, 2])
                        .unwrap(),
                },
                Operand {
                    phys: uniform(1, seed + 2, 0.1, 0.4),
                    layout: Layout::contiguous(shape(&[1, 1, 1, 1]))
                        .broadcast_as(&full(1, 1))
                        .unwrap(),
                },
                Operand {
                    phys: normal(p * q * m * (d + 3), seed + 4, 1.0),
                    layout: Layout::contiguous(shape(&[p, q, m, d + 3]))
                        .narrow(3, 1, d)
                        .unwrap(),
                },
            ),
            Views::Permuted => (
                Operand {
                    phys: noisy_eye(q * p, seed),
                    layout: Layout::contiguous(shape(&[q, p, m, m]))
                        .permute(&[1, 0, 2, 3])
                        .unwrap(),
                },
                Operand {
                    phys: normal((p + 1) * q * m * d, seed + 1, 1.0),
                    layout: Layout::contiguous(shape(&[p + 1, q, m, d]))
                        .narrow(0, 1, p)
                        .unwrap(),
                },
                Operand {
                    phys: uniform(q * p, seed + 2, 0.1, 0.4),
                    layout: Layout::contiguous(shape(&[q, p, 1, 1]))
                        .permute(&[1, 0, 2, 3])
                        .unwrap(),
                },
                Operand {
                    phys: normal(p * q * d * m, seed + 4, 1.0),
                    layout: Layout::contiguous(shape(&[p, q, d, m]))
                        .permute(&[0, 1, 3, 2])
                        .unwrap(),
                },
            ),
        };
        let g = g.round(dtype);
        // L ≥ the largest Gershgorin bound 1 + max_i Σ_j |G_ij| of any entry (so every entry's
        // loop is stable), times a random factor in [1, 1.5].
        let gl = g.logical();
        let gersh = gl
            .chunks(m * m)
            .flat_map(|e| {
                e.chunks(m)
                    .map(|row| row.iter().map(|x| x.abs()).sum::<f64>())
            })
            .fold(0.0f64, f64::max)
            + 1.0;
        let l = match views {
            Views::Permuted => Operand {
                phys: uniform(p, seed + 3, gersh, 1.5 * gersh),
                layout: Layout::contiguous(shape(&[p, 1, 1, 1]))
                    .broadcast_as(&full(1, 1))
                    .unwrap(),
            },
            _ => Operand {
                phys: uniform(p * q, seed + 3, gersh, 1.5 * gersh),
                layout: Layout::contiguous(full(1, 1)),
            },
        };
        Problem {
            batch: vec![p, q],
            m,
            d,
            g,
            b: b.round(dtype),
            lam: lam.round(dtype),
            l: l.round(dtype),
            grad: grad.round(dtype),
        }
    }

    /// Rank-2 operands (a single entry, no batch dims), contiguous.
    fn plain(m: usize, d: usize, dtype: DType, seed: u64) -> Self {
        let mut p = Problem::new([1, 1], m, d, Views::Contiguous, dtype, seed);
        p.batch = vec![];
        for (op, dims) in [
            (&mut p.g, [m, m]),
            (&mut p.b, [m, d]),
            (&mut p.lam, [1, 1]),
            (&mut p.l, [1, 1]),
            (&mut p.grad, [m, d]),
        ] {
            op.layout = Layout::contiguous(shape(&dims));
        }
        p
    }

    fn entries(&self) -> usize {
        self.batch.iter().product()
    }
}

/// A problem on one backend: storages and layouts.
struct On<S> {
    g: S,
    b: S,
    lam: S,
    l: S,
    grad: S,
}

fn on_cpu(p: &Problem, dtype: DType) -> On<CpuStorage> {
    On {
        g: p.g.cpu(dtype),
        b: p.b.cpu(dtype),
        lam: p.lam.cpu(dtype),
        l: p.l.cpu(dtype),
        grad: p.grad.cpu(dtype),
    }
}

fn on_gpu(dev: &CudaDevice, p: &Problem, dtype: DType) -> On<CudaStorage> {
    On {
        g: p.g.gpu(dev, dtype),
        b: p.b.gpu(dev, dtype),
        lam: p.lam.gpu(dev, dtype),
        l: p.l.gpu(dev, dtype),
        grad: p.grad.gpu(dev, dtype),
    }
}

/// The CUDA forward of `p` (uploaded as `gp`) on the path `fused` (see
/// `CudaStorage::unrolled_ista_forward_with`).
fn cuda_forward(
    p: &Problem,
    gp: &On<CudaStorage>,
    fused: Option<bool>,
    cfg: &UnrolledIsta,
    save: bool,
) -> Result<IstaForward<CudaStorage>, vars_cuda::CudaError> {
    CudaStorage::unrolled_ista_forward_with(
        fused,
        cfg,
        &gp.g,
        &p.g.layout,
        &gp.b,
        &p.b.layout,
        &gp.lam,
        &p.lam.layout,
        &gp.l,
        &p.l.layout,
        save,
    )
}

/// The CUDA backward of `p` for its output gradient `p.grad`, on the path `fused`.
fn cuda_backward(
    p: &Problem,
    gp: &On<CudaStorage>,
    fused: Option<bool>,
    cfg: &UnrolledIsta,
    saved: Option<&CudaStorage>,
) -> Result<IstaGrads<CudaStorage>, vars_cuda::CudaError> {
    CudaStorage::unrolled_ista_backward_with(
        fused,
        cfg,
        &gp.g,
        &p.g.layout,
        &gp.b,
        &p.b.layout,
        &gp.lam,
        &p.lam.layout,
        &gp.l,
        &p.l.layout,
        saved,
        &gp.grad,
        &p.grad.layout,
    )
}

fn cpu_vec(s: &CpuStorage) -> Vec<f64> {
    match (s.as_f64(), s.as_f32()) {
        (Some(v), _) => v.to_vec(),
        (_, Some(v)) => v.iter().map(|&x| x as f64).collect(),
        _ => panic!("not a float buffer"),
    }
}

fn gpu_vec(s: &CudaStorage) -> Vec<f64> {
    s.to_host(&Layout::contiguous(shape(&[s.len()])))
        .unwrap()
        .to_f64_vec()
}

/// The CPU reference: forward (output, saved) and backward.
fn cpu_reference(
    p: &Problem,
    cfg: &UnrolledIsta,
    dtype: DType,
) -> (IstaForward<CpuStorage>, IstaGrads<CpuStorage>) {
    let c = on_cpu(p, dtype);
    let f = Cpu::unrolled_ista_forward(
        cfg,
        &c.g,
        &p.g.layout,
        &c.b,
        &p.b.layout,
        &c.lam,
        &p.lam.layout,
        &c.l,
        &p.l.layout,
        true,
    )
    .unwrap()
    .expect("the CPU backend has a fused kernel");
    let g = Cpu::unrolled_ista_backward(
        cfg,
        &c.g,
        &p.g.layout,
        &c.b,
        &p.b.layout,
        &c.lam,
        &p.lam.layout,
        &c.l,
        &p.l.layout,
        f.saved.as_ref(),
        &c.grad,
        &p.grad.layout,
    )
    .unwrap()
    .expect("the CPU backend has a fused backward");
    (f, g)
}

/// Which entries to compare: those whose pre-shrink values stay clear of the shrink's jumps
/// (see the module docs), from the CPU's saved iterates.
fn stable_entries(p: &Problem, cfg: &UnrolledIsta, saved: &[f64], delta: f64) -> Vec<bool> {
    let (m, d, steps) = (p.m, p.d, cfg.steps);
    let n = m * d;
    let entries = p.entries();
    if cfg.shrink == Shrink::Identity {
        return vec![true; entries];
    }
    let (g, b, lam, l) = (p.g.logical(), p.b.logical(), p.lam.logical(), p.l.logical());
    let blocks = steps + usize::from(cfg.init == IstaInit::Shrink);
    let s_len = (steps + 2 * blocks) * n;
    assert_eq!(
        saved.len(),
        entries * s_len,
        "CPU saved-state layout changed"
    );
    (0..entries)
        .map(|e| {
            let (ge, be) = (&g[e * m * m..][..m * m], &b[e * n..][..n]);
            let sv = &saved[e * s_len..][..s_len];
            // (values, threshold) pairs: the initial guess, then every step.
            let mut sets: Vec<(Vec<f64>, f64)> = Vec::new();
            if cfg.init == IstaInit::Shrink {
                sets.push((be.to_vec(), lam[e]));
            }
            for k in 0..steps {
                let a = |r: usize, j: usize| sv[r * steps * d + k * d + j];
                let z: Vec<f64> = (0..n)
                    .map(|idx| {
                        let (r, j) = (idx / d, idx % d);
                        let ga: f64 = (0..m).map(|q| ge[r * m + q] * a(q, j)).sum();
                        a(r, j) - (ga - be[idx]) / l[e]
                    })
                    .collect();
                sets.push((z, lam[e] / l[e]));
            }
            sets.iter().all(|(z, t)| {
                let scale = z.iter().fold(1.0f64, |acc, x| acc.max(x.abs()));
                let tol = delta * scale;
                z.iter().all(|&x| match cfg.shrink {
                    Shrink::Gelu => x.abs() > tol,
                    _ => (x.abs() - t).abs() > tol,
                })
            })
        })
        .collect()
}

/// `got` ≈ `want` on the kept entries (`per_entry` elements each), relative to the largest
/// reference magnitude over those entries.
fn compare(
    what: &str,
    got: &[f64],
    want: &[f64],
    per_entry: usize,
    keep: &[bool],
    tol: f64,
) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!(
            "{what}: {} elements, want {}",
            got.len(),
            want.len()
        ));
    }
    if per_entry == 0 {
        return Ok(());
    }
    let kept = |i: usize| keep[i / per_entry];
    let scale = (0..want.len())
        .filter(|&i| kept(i))
        .fold(1e-300f64, |acc, i| acc.max(want[i].abs()));
    for i in (0..want.len()).filter(|&i| kept(i)) {
        let (g, w) = (got[i], want[i]);
        let ok = (g - w).abs() <= tol * scale || (g.is_nan() && w.is_nan());
        if !ok {
            return Err(format!(
                "{what}[{i}] (entry {}): got {g}, want {w} (|diff| {:.3e} > {tol:e}·{scale:.3e})",
                i / per_entry,
                (g - w).abs()
            ));
        }
    }
    Ok(())
}

fn tolerances(dtype: DType) -> (f64, f64, f64) {
    // (elementwise tensors, ∂λ/∂L, masking δ)
    match dtype {
        DType::F32 => (1e-4, 1e-3, 1e-6),
        _ => (1e-10, 1e-10, 1e-8),
    }
}

/// Runs one case on one CUDA path (`fused`: `Some(true)` fused, `Some(false)` tiled, `None`
/// automatic) and compares everything with the CPU. Returns the number of compared entries.
fn check_case(
    dev: &CudaDevice,
    p: &Problem,
    cfg: &UnrolledIsta,
    dtype: DType,
    fused: Option<bool>,
) -> Result<usize, String> {
    let label = format!(
        "{cfg:?} {dtype} batch {:?} m {} d {} fused {fused:?}",
        p.batch, p.m, p.d
    );
    let (cf, cg) = cpu_reference(p, cfg, dtype);
    let c_saved = cpu_vec(cf.saved.as_ref().unwrap());
    let (tol, tol_scalar, delta) = tolerances(dtype);
    let keep = stable_entries(p, cfg, &c_saved, delta);
    let kept = keep.iter().filter(|&&k| k).count();
    if kept == 0 && !keep.is_empty() {
        return Err(format!(
            "{label}: none of the {} entries is clear of the shrink's jumps",
            keep.len()
        ));
    }

    let gp = on_gpu(dev, p, dtype);
    let err = |e: vars_cuda::CudaError| format!("{label}: {e}");
    let f = cuda_forward(p, &gp, fused, cfg, true).map_err(err)?;
    assert_eq!(f.output.dtype(), dtype);
    let n = p.m * p.d;
    let s_len = c_saved.len() / p.entries().max(1);
    let at = |w: &str| format!("{label}: {w}");
    compare(
        &at("output"),
        &gpu_vec(&f.output),
        &cpu_vec(&cf.output),
        n,
        &keep,
        tol,
    )?;
    let saved = f.saved.as_ref().ok_or_else(|| at("no saved state"))?;
    compare(&at("saved"), &gpu_vec(saved), &c_saved, s_len, &keep, tol)?;

    // Without saving: the same output.
    let f2 = cuda_forward(p, &gp, fused, cfg, false).map_err(err)?;
    if f2.saved.is_some() {
        return Err(at("saved state without save_for_backward"));
    }
    compare(
        &at("output (no save)"),
        &gpu_vec(&f2.output),
        &gpu_vec(&f.output),
        n,
        &keep,
        0.0,
    )?;

    let backward =
        |saved: Option<&CudaStorage>| cuda_backward(p, &gp, fused, cfg, saved).map_err(err);
    for (which, grads) in [
        ("backward", backward(Some(saved))?),
        ("backward (recomputed state)", backward(None)?),
    ] {
        let w = |x: &str| at(&format!("{which} {x}"));
        compare(
            &w("∂G"),
            &gpu_vec(&grads.g),
            &cpu_vec(&cg.g),
            p.m * p.m,
            &keep,
            tol,
        )?;
        compare(&w("∂b"), &gpu_vec(&grads.b), &cpu_vec(&cg.b), n, &keep, tol)?;
        compare(
            &w("∂λ"),
            &gpu_vec(&grads.lam),
            &cpu_vec(&cg.lam),
            1,
            &keep,
            tol_scalar,
        )?;
        compare(
            &w("∂L"),
            &gpu_vec(&grads.l),
            &cpu_vec(&cg.l),
            1,
            &keep,
            tol_scalar,
        )?;
    }
    Ok(kept)
}

fn all_cfgs(steps: &[usize]) -> Vec<UnrolledIsta> {
    let mut v = Vec::new();
    for &s in steps {
        for shrink in SHRINKS {
            for init in INITS {
                v.push(UnrolledIsta {
                    steps: s,
                    shrink,
                    init,
                });
            }
        }
    }
    v
}

/// Small problems: every shrink × init × T × view kind × dtype × path.
#[test]
fn fused_and_tiled_match_the_cpu_on_small_problems() {
    let Some(dev) = device() else { return };
    let mut failures = Vec::new();
    let (mut cases, mut kept, mut total) = (0, 0, 0);
    for dtype in [DType::F64, DType::F32] {
        for (ci, cfg) in all_cfgs(&[0, 1, 3, 5]).iter().enumerate() {
            for (vi, views) in VIEWS.into_iter().enumerate() {
                let seed = 1000 + 10 * (ci as u64 * 3 + vi as u64);
                let p = Problem::new([2, 3], 7, 5, views, dtype, seed);
                for fused in [Some(true), Some(false)] {
                    cases += 1;
                    total += p.entries();
                    match check_case(&dev, &p, cfg, dtype, fused) {
                        Ok(k) => kept += k,
                        Err(e) => failures.push(format!("{views:?}: {e}")),
                    }
                }
            }
        }
    }
    eprintln!("{cases} cases, {kept} of {total} entries compared");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(kept * 10 >= total * 9, "too many entries masked");
}

/// Rank-2 operands (no batch dims), odd sizes, m = 1, d = 1.
#[test]
fn unbatched_and_degenerate_sizes_match_the_cpu() {
    let Some(dev) = device() else { return };
    let mut failures = Vec::new();
    for dtype in [DType::F64, DType::F32] {
        for (m, d) in [(1, 1), (1, 4), (5, 1), (33, 3), (3, 33), (17, 40)] {
            for cfg in all_cfgs(&[0, 2]) {
                let p = Problem::plain(m, d, dtype, 77 + m as u64 * 31 + d as u64);
                for fused in [Some(true), Some(false), None] {
                    if let Err(e) = check_case(&dev, &p, &cfg, dtype, fused) {
                        failures.push(e);
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// RVT-Ti VARS-D sizes (m = 64 atoms, d = 32) and a VARS-SD / RVT-S size (m = 128), official
/// configuration (GELU, A0 = shrink(b, λ), T = 5) and the soft threshold, both paths.
#[test]
fn rvt_sizes_match_the_cpu() {
    let Some(dev) = device() else { return };
    let mut failures = Vec::new();
    let cases = [
        ([2, 6], 64, 32, DType::F32),
        ([2, 6], 64, 32, DType::F64),
        ([1, 3], 128, 32, DType::F32),
        ([2, 3], 128, 64, DType::F32),
        ([1, 2], 128, 64, DType::F64),
    ];
    for (batch, m, d, dtype) in cases {
        for shrink in [Shrink::Gelu, Shrink::SoftThreshold] {
            let cfg = UnrolledIsta {
                steps: 5,
                shrink,
                init: IstaInit::Shrink,
            };
            let p = Problem::new(batch, m, d, Views::Broadcast, dtype, 4242 + m as u64);
            let (ff, bf) = dev.unrolled_ista_plan(dtype, m, d).unwrap();
            eprintln!("m {m} d {d} {dtype}: forward fused {ff}, backward fused {bf}");
            let mut paths = vec![Some(false), None];
            if ff && bf {
                paths.push(Some(true));
            }
            for fused in paths {
                match check_case(&dev, &p, &cfg, dtype, fused) {
                    Ok(k) => eprintln!("  {cfg:?} fused {fused:?}: {k} entries compared"),
                    Err(e) => failures.push(e),
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Which path the automatic choice takes for the model sizes (printed for the record); the
/// RVT-Ti VARS-D problem (32 KiB forward, 40 KiB backward in f32) must be fused on any GPU.
#[test]
fn automatic_path_choice_for_model_sizes() {
    let Some(dev) = device() else { return };
    for (name, m, d) in [
        ("RVT-Ti VARS-D", 64, 32),
        ("RVT-Ti VARS-SD", 128, 32),
        ("RVT-S/B VARS-D", 128, 64),
        ("RVT-S/B VARS-SD", 256, 64),
    ] {
        for dtype in [DType::F32, DType::F64] {
            let (f, b) = dev.unrolled_ista_plan(dtype, m, d).unwrap();
            eprintln!("{name} (m {m}, d {d}) {dtype}: forward fused {f}, backward fused {b}");
        }
    }
    assert_eq!(
        dev.unrolled_ista_plan(DType::F32, 64, 32).unwrap(),
        (true, true)
    );
    assert_eq!(
        dev.unrolled_ista_plan(DType::F64, 256, 64).unwrap(),
        (false, false)
    );
    assert!(dev.unrolled_ista_plan(DType::I64, 4, 4).is_err());
    // Forcing the fused path where it does not fit is an error, not a failed launch.
    let p = Problem::plain(256, 64, DType::F64, 5);
    let gp = on_gpu(&dev, &p, DType::F64);
    let cfg = UnrolledIsta::official(1);
    let r = cuda_forward(&p, &gp, Some(true), &cfg, false);
    assert!(r.is_err());
}

/// The saved state has one layout on both paths: a fused forward's state feeds a tiled
/// backward and vice versa.
#[test]
fn saved_state_is_shared_by_both_paths() {
    let Some(dev) = device() else { return };
    let dtype = DType::F64;
    let p = Problem::new([2, 2], 9, 6, Views::Permuted, dtype, 99);
    let gp = on_gpu(&dev, &p, dtype);
    for cfg in all_cfgs(&[3]) {
        let fwd = |fused| cuda_forward(&p, &gp, Some(fused), &cfg, true).unwrap();
        let bwd = |fused, saved: &CudaStorage| {
            cuda_backward(&p, &gp, Some(fused), &cfg, Some(saved)).unwrap()
        };
        let (sf, st) = (fwd(true).saved.unwrap(), fwd(false).saved.unwrap());
        let a = bwd(true, &st);
        let b = bwd(false, &sf);
        let keep = vec![true; p.entries()];
        for (what, x, y, per) in [
            ("∂G", &a.g, &b.g, p.m * p.m),
            ("∂b", &a.b, &b.b, p.m * p.d),
            ("∂λ", &a.lam, &b.lam, 1),
            ("∂L", &a.l, &b.l, 1),
        ] {
            compare(what, &gpu_vec(x), &gpu_vec(y), per, &keep, 1e-10)
                .unwrap_or_else(|e| panic!("{cfg:?}: {e}"));
        }
    }
}

/// Empty batches and empty codes: the CPU's shapes and zeros.
#[test]
fn empty_problems_match_the_cpu() {
    let Some(dev) = device() else { return };
    for (batch, m, d) in [(0, 3, 2), (2, 3, 0), (2, 0, 4)] {
        for dtype in [DType::F32, DType::F64] {
            let cfg = UnrolledIsta::official(2);
            let lay = |r: usize, c: usize| Layout::contiguous(shape(&[batch, r, c]));
            let mk = |len: usize, r: usize, c: usize| Operand {
                phys: vec![0.5; len],
                layout: lay(r, c),
            };
            let p = Problem {
                batch: vec![batch],
                m,
                d,
                g: mk(batch * m * m, m, m),
                b: mk(batch * m * d, m, d),
                lam: mk(batch, 1, 1),
                l: mk(batch, 1, 1),
                grad: mk(batch * m * d, m, d),
            };
            let (cf, cg) = cpu_reference(&p, &cfg, dtype);
            let gp = on_gpu(&dev, &p, dtype);
            for fused in [None, Some(false)] {
                let f = cuda_forward(&p, &gp, fused, &cfg, true).unwrap();
                assert_eq!(f.output.len(), cf.output.len());
                assert_eq!(
                    f.saved.as_ref().map(|s| s.len()),
                    cf.saved.as_ref().map(|s| s.len())
                );
                let gr = cuda_backward(&p, &gp, fused, &cfg, f.saved.as_ref()).unwrap();
                assert_eq!(gpu_vec(&gr.g), cpu_vec(&cg.g));
                assert_eq!(gpu_vec(&gr.b), cpu_vec(&cg.b));
                assert_eq!(gpu_vec(&gr.lam), cpu_vec(&cg.lam));
                assert_eq!(gpu_vec(&gr.l), cpu_vec(&cg.l));
            }
        }
    }
}

/// Bad inputs are errors (never panics or failed launches).
#[test]
fn bad_inputs_are_errors() {
    let Some(dev) = device() else { return };
    let dtype = DType::F64;
    let p = Problem::new([1, 2], 4, 3, Views::Contiguous, dtype, 3);
    let gp = on_gpu(&dev, &p, dtype);
    let cfg = UnrolledIsta::official(2);
    let fwd = |g: &CudaStorage, gl: &Layout, b: &CudaStorage, bl: &Layout| {
        CudaStorage::unrolled_ista_forward_with(
            None,
            &cfg,
            g,
            gl,
            b,
            bl,
            &gp.lam,
            &p.lam.layout,
            &gp.l,
            &p.l.layout,
            true,
        )
    };
    // Shapes: b's m differs from G's.
    let b_bad = Layout::contiguous(shape(&[1, 2, 3, 4]));
    assert!(fwd(&gp.g, &p.g.layout, &gp.b, &b_bad).is_err());
    // A view reaching past its buffer.
    let g_far = Layout::from_parts(shape(&[1, 2, 4, 4]), vec![32, 16, 4, 1], 1);
    assert!(fwd(&gp.g, &g_far, &gp.b, &p.b.layout).is_err());
    // Mixed dtypes; integer dtype.
    let g32 = p.g.gpu(&dev, DType::F32);
    assert!(fwd(&g32, &p.g.layout, &gp.b, &p.b.layout).is_err());
    let gi = dev
        .from_host(&HostData::I64(vec![1; p.g.phys.len()]))
        .unwrap();
    let bi = dev
        .from_host(&HostData::I64(vec![1; p.b.phys.len()]))
        .unwrap();
    assert!(fwd(&gi, &p.g.layout, &bi, &p.b.layout).is_err());
    // Backward: wrong gradient shape, wrong saved length.
    let f = fwd(&gp.g, &p.g.layout, &gp.b, &p.b.layout).unwrap();
    let saved = f.saved.unwrap();
    let bwd = |saved: Option<&CudaStorage>, grad_layout: &Layout| {
        CudaStorage::unrolled_ista_backward_with(
            None,
            &cfg,
            &gp.g,
            &p.g.layout,
            &gp.b,
            &p.b.layout,
            &gp.lam,
            &p.lam.layout,
            &gp.l,
            &p.l.layout,
            saved,
            &gp.grad,
            grad_layout,
        )
    };
    assert!(bwd(Some(&saved), &p.grad.layout).is_ok());
    let grad_bad = Layout::contiguous(shape(&[1, 2, 3, 4]));
    assert!(bwd(Some(&saved), &grad_bad).is_err());
    assert!(bwd(Some(&f.output), &p.grad.layout).is_err());
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]

        /// CUDA == CPU (f64, 1e-10) on random shapes, views, configurations and paths.
        #[test]
        fn cuda_matches_cpu(
            p in 1usize..4,
            q in 1usize..4,
            m in 1usize..12,
            d in 1usize..10,
            steps in 0usize..6,
            shrink in 0usize..3,
            init in 0usize..2,
            views in 0usize..3,
            fused in 0usize..3,
            seed in 0u64..1_000_000,
        ) {
            let Some(dev) = device() else { return Ok(()) };
            let cfg = UnrolledIsta { steps, shrink: SHRINKS[shrink], init: INITS[init] };
            let problem = Problem::new([p, q], m, d, VIEWS[views], DType::F64, seed);
            let fused = [None, Some(true), Some(false)][fused];
            let r = check_case(&dev, &problem, &cfg, DType::F64, fused);
            prop_assert!(r.is_ok(), "{}", r.unwrap_err());
        }
    }
}
