//! Convolution and max pooling at RVT-Ti's shapes (224 px, batch 8, f32): `vars_core::nn::conv2d`
//! and `max_pool2d` on `Tensor<Cpu>` (forward), and `conv2d` forward + backward on
//! `Tensor<Autodiff<Cpu>>`, each against a `baseline-direct` entry: straightforward direct loops
//! written here (rayon over output planes, unit-stride inner loops over the valid output range),
//! measured in the same run so `cargo xtask bench conv` prints ratios.
//!
//! RVT-Ti (spec §4, §5): stem conv 3→32 7×7/s2/p2 (224 → 111), max-pool 3×3/s2/p1 (→ 56), conv
//! 32→192 4×4/s4 (→ 14); stage 0 (C = 192, 14×14, 10 blocks) and stage 1 (C = 384, 7×7, 2 blocks)
//! each with a conv FFN (1×1 C→4C, depthwise 3×3 p1 on 4C, 1×1 4C→C); the pooling conv
//! 192→384 3×3/s2/p1 groups 192 between them. Every conv has a bias, as in the model.
//!
//! Throughput is in elements = floating-point operations (2 per multiply-add, forward only for the
//! `fwd` groups, forward + both backward products (3×) for the `fwdbwd` groups), so criterion's
//! "Gelem/s" reads as GFLOP/s. For max pooling it is output elements.
//!
//! `cargo xtask bench conv [--quick]`, or
//! `cargo bench -p vars-benches --bench conv -- --warm-up-time 1 --measurement-time 3`.
//! `VARS_BENCH_BATCH=2` runs at batch 2 instead of 8. `VARS_BENCH_CLOCK=cpu` measures the
//! process's CPU time (all threads, user + system, page faults included) instead of wall time:
//! on a machine shared with other jobs it is far steadier, and with `RAYON_NUM_THREADS=1` it
//! compares kernels without the scheduler in the numbers (`docs/conv-performance.md`).

use std::cell::Cell;
use std::hint::black_box;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput};
use rayon::prelude::*;
use vars_benches::random_f32;
use vars_core::nn::{conv2d, max_pool2d};
use vars_core::{Autodiff, Tensor, Window2d};
use vars_cpu::{Cpu, CpuDevice};

type Ad = Autodiff<Cpu>;

#[derive(Clone, Copy)]
struct Conv {
    name: &'static str,
    c: usize,
    hw: usize,
    o: usize,
    k: usize,
    stride: usize,
    pad: usize,
    groups: usize,
    /// Also bench forward + backward on `Autodiff<Cpu>`.
    backward: bool,
}

impl Conv {
    const fn new(name: &'static str, c: usize, hw: usize, o: usize, k: usize) -> Self {
        Conv {
            name,
            c,
            hw,
            o,
            k,
            stride: 1,
            pad: 0,
            groups: 1,
            backward: true,
        }
    }
    const fn sp(mut self, stride: usize, pad: usize) -> Self {
        self.stride = stride;
        self.pad = pad;
        self
    }
    const fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
    const fn fwd_only(mut self) -> Self {
        self.backward = false;
        self
    }
    fn geo(&self) -> Geo {
        let ho = (self.hw + 2 * self.pad - self.k) / self.stride + 1;
        Geo {
            c: self.c,
            h: self.hw,
            w: self.hw,
            o: self.o,
            cg: self.c / self.groups,
            k: self.k,
            s: self.stride,
            p: self.pad,
            ho,
            wo: ho,
        }
    }
    fn window(&self) -> Window2d {
        Window2d::square(self.k, self.stride, self.pad)
    }
}

const CONVS: &[Conv] = &[
    Conv::new("stem0 3-32 k7s2p2 224", 3, 224, 32, 7).sp(2, 2),
    Conv::new("stem3 32-192 k4s4 56", 32, 56, 192, 4).sp(4, 0),
    Conv::new("s0 fc1 192-768 1x1 14", 192, 14, 768, 1),
    Conv::new("s0 dw 768 k3p1 14", 768, 14, 768, 3)
        .sp(1, 1)
        .groups(768),
    Conv::new("s0 fc2 768-192 1x1 14", 768, 14, 192, 1),
    Conv::new("pool 192-384 k3s2p1 g192 14", 192, 14, 384, 3)
        .sp(2, 1)
        .groups(192),
    Conv::new("s1 fc1 384-1536 1x1 7", 384, 7, 1536, 1).fwd_only(),
    Conv::new("s1 dw 1536 k3p1 7", 1536, 7, 1536, 3)
        .sp(1, 1)
        .groups(1536)
        .fwd_only(),
    Conv::new("s1 fc2 1536-384 1x1 7", 1536, 7, 384, 1).fwd_only(),
];

fn batch() -> usize {
    std::env::var("VARS_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

// ---- direct-loop baseline ------------------------------------------------------------------------

/// Geometry of a square-kernel, dilation-1 convolution on one image.
#[derive(Clone, Copy)]
struct Geo {
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    cg: usize,
    k: usize,
    s: usize,
    p: usize,
    ho: usize,
    wo: usize,
}

impl Geo {
    /// Output columns `ox` whose tap `j` lands inside the image: `0 ≤ ox·s + j − p < w`.
    fn ox_range(&self, j: usize) -> (usize, usize) {
        let lo = self.p.saturating_sub(j).div_ceil(self.s);
        let hi = if self.w + self.p > j {
            ((self.w + self.p - j - 1) / self.s + 1).min(self.wo)
        } else {
            0
        };
        (lo, hi.max(lo))
    }
    fn src_y(&self, oy: usize, i: usize) -> Option<usize> {
        (oy * self.s + i)
            .checked_sub(self.p)
            .filter(|&y| y < self.h)
    }
    fn og(&self) -> usize {
        self.o / (self.c / self.cg)
    }
    fn flops(&self, n: usize) -> u64 {
        2 * (n * self.o * self.cg * self.k * self.k * self.ho * self.wo) as u64
    }
}

/// `out[oy, ox] += wv · x[oy·s + i − p, ox·s + j − p]` over the valid outputs of tap `(i, j)`.
#[inline]
fn tap(g: &Geo, xp: &[f32], out: &mut [f32], wv: f32, i: usize, j: usize) {
    let (lo, hi) = g.ox_range(j);
    for oy in 0..g.ho {
        let Some(y) = g.src_y(oy, i) else { continue };
        let row = &xp[y * g.w..(y + 1) * g.w];
        let dst = &mut out[oy * g.wo..(oy + 1) * g.wo];
        if g.s == 1 {
            let src = &row[lo + j - g.p..hi + j - g.p];
            for (d, &v) in dst[lo..hi].iter_mut().zip(src) {
                *d += wv * v;
            }
        } else {
            for ox in lo..hi {
                dst[ox] += wv * row[ox * g.s + j - g.p];
            }
        }
    }
}

fn direct_fwd(g: &Geo, n: usize, x: &[f32], wt: &[f32], bias: &[f32]) -> Vec<f32> {
    let (plane, kk) = (g.ho * g.wo, g.k * g.k);
    let mut out = vec![0f32; n * g.o * plane];
    out.par_chunks_mut(plane)
        .enumerate()
        .for_each(|(idx, dst)| {
            let (ni, oi) = (idx / g.o, idx % g.o);
            dst.fill(bias[oi]);
            let grp = oi / g.og();
            for ci in 0..g.cg {
                let cin = grp * g.cg + ci;
                let xp = &x[(ni * g.c + cin) * g.h * g.w..][..g.h * g.w];
                for i in 0..g.k {
                    for j in 0..g.k {
                        let wv = wt[(oi * g.cg + ci) * kk + i * g.k + j];
                        tap(g, xp, dst, wv, i, j);
                    }
                }
            }
        });
    out
}

/// Gradients `(dx, dw, db)` of the direct convolution for output gradient `dy`.
fn direct_bwd(
    g: &Geo,
    n: usize,
    x: &[f32],
    wt: &[f32],
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (plane, kk, og) = (g.ho * g.wo, g.k * g.k, g.og());
    // dx: one input plane per task, scattering every output of its group.
    let mut dx = vec![0f32; n * g.c * g.h * g.w];
    dx.par_chunks_mut(g.h * g.w)
        .enumerate()
        .for_each(|(idx, dxp)| {
            let (ni, cin) = (idx / g.c, idx % g.c);
            let (grp, ci) = (cin / g.cg, cin % g.cg);
            for oi in grp * og..(grp + 1) * og {
                let dyp = &dy[(ni * g.o + oi) * plane..][..plane];
                for i in 0..g.k {
                    for j in 0..g.k {
                        let wv = wt[(oi * g.cg + ci) * kk + i * g.k + j];
                        let (lo, hi) = g.ox_range(j);
                        for oy in 0..g.ho {
                            let Some(y) = g.src_y(oy, i) else { continue };
                            let row = &mut dxp[y * g.w..(y + 1) * g.w];
                            let src = &dyp[oy * g.wo..(oy + 1) * g.wo];
                            for ox in lo..hi {
                                row[ox * g.s + j - g.p] += wv * src[ox];
                            }
                        }
                    }
                }
            }
        });
    // dw, db: one output channel per task.
    let mut dw = vec![0f32; g.o * g.cg * kk];
    let mut db = vec![0f32; g.o];
    dw.par_chunks_mut(g.cg * kk)
        .zip(db.par_iter_mut())
        .enumerate()
        .for_each(|(oi, (dwo, dbo))| {
            let grp = oi / og;
            for ni in 0..n {
                let dyp = &dy[(ni * g.o + oi) * plane..][..plane];
                *dbo += dyp.iter().sum::<f32>();
                for ci in 0..g.cg {
                    let xp = &x[(ni * g.c + grp * g.cg + ci) * g.h * g.w..][..g.h * g.w];
                    for i in 0..g.k {
                        for j in 0..g.k {
                            let (lo, hi) = g.ox_range(j);
                            let mut acc = 0f32;
                            for oy in 0..g.ho {
                                let Some(y) = g.src_y(oy, i) else { continue };
                                let row = &xp[y * g.w..(y + 1) * g.w];
                                let src = &dyp[oy * g.wo..(oy + 1) * g.wo];
                                for ox in lo..hi {
                                    acc += src[ox] * row[ox * g.s + j - g.p];
                                }
                            }
                            dwo[ci * kk + i * g.k + j] += acc;
                        }
                    }
                }
            }
        });
    (dx, dw, db)
}

/// Direct 3×3/s2/p1-style max pooling of `(n·c)` planes (padding never wins; `f32::max`, so
/// unlike `max_pool2d` a NaN does not propagate: fine for the bench's finite data).
fn direct_max_pool(g: &Geo, planes: usize, x: &[f32]) -> Vec<f32> {
    let plane = g.ho * g.wo;
    let mut out = vec![0f32; planes * plane];
    out.par_chunks_mut(plane)
        .enumerate()
        .for_each(|(idx, dst)| {
            let xp = &x[idx * g.h * g.w..][..g.h * g.w];
            dst.fill(f32::NEG_INFINITY);
            for i in 0..g.k {
                for j in 0..g.k {
                    let (lo, hi) = g.ox_range(j);
                    for oy in 0..g.ho {
                        let Some(y) = g.src_y(oy, i) else { continue };
                        let row = &xp[y * g.w..(y + 1) * g.w];
                        for ox in lo..hi {
                            let d = &mut dst[oy * g.wo + ox];
                            *d = d.max(row[ox * g.s + j - g.p]);
                        }
                    }
                }
            }
        });
    out
}

// ---- benches -------------------------------------------------------------------------------------

#[track_caller]
fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1.0);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * scale,
            "{what}: element {i}: {g} vs {w}"
        );
    }
}

fn bench_conv<M: Measurement>(c: &mut Criterion<M>) {
    let n = batch();
    let dev = CpuDevice;
    for case in CONVS {
        let g = case.geo();
        let xs = random_f32(n * g.c * g.h * g.w, 1);
        let bound = 1.0 / ((g.cg * g.k * g.k) as f32).sqrt();
        let ws: Vec<f32> = random_f32(g.o * g.cg * g.k * g.k, 2)
            .iter()
            .map(|v| v * bound)
            .collect();
        let bs: Vec<f32> = random_f32(g.o, 3).iter().map(|v| v * bound).collect();
        let x = Tensor::<Cpu>::from_slice(&xs, [n, g.c, g.h, g.w], &dev).unwrap();
        let w = Tensor::<Cpu>::from_slice(&ws, [g.o, g.cg, g.k, g.k], &dev).unwrap();
        let b = Tensor::<Cpu>::from_slice(&bs, [g.o], &dev).unwrap();
        let run = || conv2d(&x, &w, Some(&b), case.window(), case.groups).unwrap();

        // Each check against the direct loops runs once, and only when its group is selected.
        let mut group = c.benchmark_group(format!("conv-fwd/{}", case.name));
        group.sample_size(20);
        group.throughput(Throughput::Elements(g.flops(n)));
        group.bench_function("baseline-direct", |bench| {
            bench.iter(|| black_box(direct_fwd(&g, n, &xs, &ws, &bs)))
        });
        let checked = Cell::new(false);
        group.bench_function("conv2d Cpu", |bench| {
            if !checked.replace(true) {
                let want = direct_fwd(&g, n, &xs, &ws, &bs);
                assert_close(&run().to_vec::<f32>().unwrap(), &want, case.name);
            }
            bench.iter(|| black_box(run()))
        });
        group.finish();

        if !case.backward {
            continue;
        }
        let dys = random_f32(n * g.o * g.ho * g.wo, 4);
        let xa = Tensor::<Ad>::from_inner(&x).requires_grad().unwrap();
        let wa = Tensor::<Ad>::from_inner(&w).requires_grad().unwrap();
        let ba = Tensor::<Ad>::from_inner(&b).requires_grad().unwrap();
        let dy = Tensor::<Ad>::from_slice(&dys, [n, g.o, g.ho, g.wo], &dev).unwrap();
        let run_ad = || {
            let y = conv2d(&xa, &wa, Some(&ba), case.window(), case.groups).unwrap();
            y.backward_with(&dy).unwrap()
        };

        let mut group = c.benchmark_group(format!("conv-fwdbwd/{}", case.name));
        group.sample_size(10);
        group.throughput(Throughput::Elements(3 * g.flops(n)));
        group.bench_function("baseline-direct", |bench| {
            bench.iter(|| {
                black_box(direct_fwd(&g, n, &xs, &ws, &bs));
                black_box(direct_bwd(&g, n, &xs, &ws, &dys))
            })
        });
        let checked = Cell::new(false);
        group.bench_function("conv2d Autodiff<Cpu>", |bench| {
            if !checked.replace(true) {
                let grads = run_ad();
                let get = |t: &Tensor<Ad>| grads.get(t).unwrap().to_vec::<f32>().unwrap();
                let (dx, dw, db) = direct_bwd(&g, n, &xs, &ws, &dys);
                assert_close(&get(&xa), &dx, "dx");
                assert_close(&get(&wa), &dw, "dw");
                assert_close(&get(&ba), &db, "db");
            }
            bench.iter(|| black_box(run_ad()))
        });
        group.finish();
    }
}

fn bench_max_pool<M: Measurement>(c: &mut Criterion<M>) {
    let n = batch();
    let dev = CpuDevice;
    let (ch, hw) = (32, 111);
    let g = Conv::new("", ch, hw, ch, 3).sp(2, 1).geo();
    let xs = random_f32(n * ch * hw * hw, 5);
    let x = Tensor::<Cpu>::from_slice(&xs, [n, ch, hw, hw], &dev).unwrap();
    let win = Window2d::square(3, 2, 1);

    let mut group = c.benchmark_group("conv-maxpool/stem 32 k3s2p1 111");
    group.sample_size(20);
    group.throughput(Throughput::Elements((n * ch * g.ho * g.wo) as u64));
    group.bench_function("baseline-direct", |bench| {
        bench.iter(|| black_box(direct_max_pool(&g, n * ch, &xs)))
    });
    let checked = Cell::new(false);
    group.bench_function("max_pool2d Cpu", |bench| {
        if !checked.replace(true) {
            let want = direct_max_pool(&g, n * ch, &xs);
            let got = max_pool2d(&x, win).unwrap().to_vec::<f32>().unwrap();
            assert_close(&got, &want, "max_pool2d");
        }
        bench.iter(|| black_box(max_pool2d(&x, win).unwrap()))
    });
    group.finish();
}

// ---- clocks --------------------------------------------------------------------------------------

/// Process CPU time (`CLOCK_PROCESS_CPUTIME_ID`: every thread, user + system), in nanoseconds.
struct CpuTime;

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

unsafe extern "C" {
    fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
}

fn process_cpu_ns() -> u64 {
    const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable `struct timespec` (two 64-bit fields on 64-bit Linux).
    let rc = unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Measurement for CpuTime {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        process_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        process_cpu_ns() - start
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

/// Formats CPU nanoseconds like wall time, throughput as elements per CPU second.
struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, typical_ns: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = match typical_ns {
            t if t < 1e3 => (1.0, "ns (cpu)"),
            t if t < 1e6 => (1e-3, "µs (cpu)"),
            t if t < 1e9 => (1e-6, "ms (cpu)"),
            _ => (1e-9, "s (cpu)"),
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }

    fn scale_throughputs(
        &self,
        typical_ns: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let per_iter = match *throughput {
            Throughput::Elements(e) | Throughput::ElementsAndBytes { elements: e, .. } => e,
            Throughput::Bytes(b) | Throughput::BytesDecimal(b) => b,
            Throughput::Bits(b) => b,
        } as f64;
        let rate = per_iter * 1e9 / typical_ns;
        let (div, unit) = match rate {
            r if r < 1e3 => (1.0, " /cpu-s"),
            r if r < 1e6 => (1e3, "K/cpu-s"),
            r if r < 1e9 => (1e6, "M/cpu-s"),
            _ => (1e9, "G/cpu-s"),
        };
        values
            .iter_mut()
            .for_each(|v| *v = per_iter * 1e9 / *v / div);
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn main() {
    if std::env::var("VARS_BENCH_CLOCK").is_ok_and(|v| v == "cpu") {
        let mut c = Criterion::default()
            .with_measurement(CpuTime)
            .configure_from_args();
        bench_conv(&mut c);
        bench_max_pool(&mut c);
        c.final_summary();
    } else {
        let mut c = Criterion::<WallTime>::default().configure_from_args();
        bench_conv(&mut c);
        bench_max_pool(&mut c);
        c.final_summary();
    }
}
