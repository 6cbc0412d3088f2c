//! Batched matmul on a real GPU against `vars_cpu::Cpu`, on both engines (cuBLAS and the tiled
//! NVRTC kernel, chosen with `CudaStorage::matmul_with`), f32 and f64, over contiguous,
//! transposed, narrowed, broadcast and permuted views, zero and unit sizes, grid-limit sizes, and
//! random shapes (proptest).
//!
//! Tolerance: with `s = Σ_l |a_il·b_lj|` (computed on the host from the inputs as stored),
//! `|gpu − cpu| ≤ tol · max(1, k/64) · s`, `tol = 1e-5` for f32 and `1e-12` for f64 — a bound on
//! the summation-order difference between two f32/f64 dot products of length k.
//!
//! `VARS_REQUIRE_GPU=1` also requires cuBLAS to load.

use proptest::prelude::*;
use vars_core::{Backend, DType, HostData, Layout, Shape};
use vars_cpu::{Cpu, CpuDevice};
use vars_cuda::CudaDevice;

fn require_gpu() -> bool {
    std::env::var("VARS_REQUIRE_GPU").is_ok_and(|v| v == "1")
}

use super::device;

/// `(name, cublas)` of every engine to test: the kernel always, cuBLAS when it loads.
fn engines(dev: &CudaDevice) -> Vec<(&'static str, bool)> {
    let mut v = vec![("kernel", false)];
    match dev.blas() {
        Ok(_) => v.push(("cublas", true)),
        Err(e) if require_gpu() => panic!("VARS_REQUIRE_GPU=1 but cuBLAS does not load: {e}"),
        Err(e) => {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| eprintln!("SKIPPED the cuBLAS path of gpu_matmul: {e}"));
        }
    }
    v
}

/// A view of logical shape `dims` into a fresh buffer: storage holds the dims in the order
/// `perm` (storage dim `q` is logical dim `perm[q]`), each padded by `pad[d]`, the view starts at
/// `start[d] ≤ pad[d]`; `bcast[d]` makes dim `d` a stride-0 broadcast. Size-1 dims get stride
/// `junk` when it is `Some`.
#[derive(Debug, Clone)]
struct View {
    dims: Vec<usize>,
    perm: Vec<usize>,
    pad: Vec<usize>,
    start: Vec<usize>,
    bcast: Vec<bool>,
    junk: Option<usize>,
}

impl View {
    fn new(dims: &[usize]) -> View {
        let r = dims.len();
        View {
            dims: dims.to_vec(),
            perm: (0..r).collect(),
            pad: vec![0; r],
            start: vec![0; r],
            bcast: vec![false; r],
            junk: None,
        }
    }

    /// The matrix stored transposed.
    fn t(mut self) -> View {
        let r = self.dims.len();
        self.perm.swap(r - 2, r - 1);
        self
    }

    fn perm(mut self, perm: &[usize]) -> View {
        self.perm = perm.to_vec();
        self
    }

    fn bcast(mut self, d: usize) -> View {
        self.bcast[d] = true;
        self
    }

    fn narrow(mut self, pad: &[usize], start: &[usize]) -> View {
        self.pad = pad.to_vec();
        self.start = start.to_vec();
        self
    }

    fn build(&self, seed: u64) -> (Vec<f64>, Layout) {
        let r = self.dims.len();
        let phys: Vec<usize> = (0..r)
            .map(|d| {
                if self.bcast[d] {
                    1
                } else {
                    self.dims[d] + self.pad[d]
                }
            })
            .collect();
        let mut strides = vec![0; r];
        let mut s = 1;
        for q in (0..r).rev() {
            let d = self.perm[q];
            strides[d] = s;
            s *= phys[d];
        }
        let mut offset = 0;
        for d in 0..r {
            if self.bcast[d] {
                strides[d] = 0;
            } else {
                offset += self.start[d].min(self.pad[d]) * strides[d];
            }
            if self.dims[d] == 1 {
                if let Some(j) = self.junk {
                    strides[d] = j;
                }
            }
        }
        let layout = Layout::from_parts(Shape::new(self.dims.clone()), strides, offset);
        let data: Vec<f64> = (0..s.max(1))
            .map(|i| {
                let h = (i as u64 + 1)
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    .wrapping_add(seed.wrapping_mul(0xBF58_476D_1CE4_E5B9));
                let h = (h ^ (h >> 31)).wrapping_mul(0x94D0_49BB_1331_11EB);
                ((h >> 40) % 2001) as f64 / 1000.0 - 1.0
            })
            .collect();
        assert!(layout.storage_extent() <= data.len());
        (data, layout)
    }
}

fn host(v: &[f64], dtype: DType) -> HostData {
    match dtype {
        DType::F32 => HostData::F32(v.iter().map(|&x| x as f32).collect()),
        DType::F64 => HostData::F64(v.to_vec()),
        other => panic!("no host data for {other:?}"),
    }
}

fn out_dims(la: &Layout, lb: &Layout) -> Vec<usize> {
    let r = la.rank();
    let mut d = la.dims()[..r - 1].to_vec();
    d.push(lb.dims()[r - 1]);
    d
}

/// `Σ_l |a_il·b_lj|` per output element (inputs as stored in `dtype`).
fn scales(a: &[f64], la: &Layout, b: &[f64], lb: &Layout, dtype: DType) -> Vec<f64> {
    let q = |x: f64| {
        if dtype == DType::F32 {
            x as f32 as f64
        } else {
            x
        }
    };
    let r = la.rank();
    let (m, k, n) = (la.dims()[r - 2], la.dims()[r - 1], lb.dims()[r - 1]);
    let batch: usize = la.dims()[..r - 2].iter().product();
    let ia: Vec<usize> = la.strided_index().collect();
    let ib: Vec<usize> = lb.strided_index().collect();
    let mut out = vec![0.0; batch * m * n];
    for z in 0..batch {
        for i in 0..m {
            for j in 0..n {
                out[(z * m + i) * n + j] = (0..k)
                    .map(|l| (q(a[ia[(z * m + i) * k + l]]) * q(b[ib[(z * k + l) * n + j]])).abs())
                    .sum();
            }
        }
    }
    out
}

/// Runs `a × b` on the CPU and on every engine in f32 and f64, and compares.
fn check(dev: &CudaDevice, a: &View, b: &View) {
    let (ha, la) = a.build(1);
    let (hb, lb) = b.build(2);
    let od = out_dims(&la, &lb);
    let ol = Layout::contiguous(Shape::new(od.clone()));
    let k = la.dims()[la.rank() - 1];
    for dtype in [DType::F32, DType::F64] {
        let tol = if dtype == DType::F32 { 1e-5 } else { 1e-12 } * (k as f64 / 64.0).max(1.0);
        let (ca, cb) = (
            Cpu::from_host(&CpuDevice, host(&ha, dtype)).unwrap(),
            Cpu::from_host(&CpuDevice, host(&hb, dtype)).unwrap(),
        );
        let want = Cpu::matmul(&ca, &la, &cb, &lb).unwrap();
        let want = Cpu::to_host(&want, &ol).unwrap().to_f64_vec();
        let s = scales(&ha, &la, &hb, &lb, dtype);
        let ga = dev.from_host(&host(&ha, dtype)).unwrap();
        let gb = dev.from_host(&host(&hb, dtype)).unwrap();
        for (engine, cublas) in engines(dev) {
            let what = format!("{dtype:?} {engine}: {la:?} × {lb:?}");
            let got = ga
                .matmul_with(&la, &gb, &lb, cublas)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(got.dtype(), dtype, "{what}");
            assert_eq!(got.len(), want.len(), "{what}");
            let got = got.to_host(&ol).unwrap().to_f64_vec();
            for (i, ((g, w), s)) in got.iter().zip(&want).zip(&s).enumerate() {
                assert!(
                    (g - w).abs() <= tol * s.max(1e-30) || g == w,
                    "{what} → {od:?}: [{i}] got {g}, want {w} (scale {s})"
                );
            }
        }
    }
}

#[test]
fn contiguous_and_transposed() {
    let Some(dev) = device() else { return };
    let (a, b) = (View::new(&[3, 17, 33]), View::new(&[3, 33, 9]));
    check(dev, &a, &b);
    check(dev, &a.clone().t(), &b);
    check(dev, &a, &b.clone().t());
    check(dev, &a.t(), &b.t());
    check(dev, &View::new(&[5, 7]), &View::new(&[7, 3]).t());
}

#[test]
fn several_tiles() {
    let Some(dev) = device() else { return };
    let (a, b) = (View::new(&[2, 130, 200]), View::new(&[2, 200, 70]));
    check(dev, &a, &b);
    check(dev, &a.t(), &b.t());
    check(dev, &View::new(&[256, 512]), &View::new(&[512, 192]));
}

#[test]
fn narrowed_views() {
    let Some(dev) = device() else { return };
    let a = View::new(&[3, 21, 13]).narrow(&[1, 2, 3], &[1, 1, 2]);
    let b = View::new(&[3, 13, 66]).narrow(&[2, 1, 5], &[2, 0, 4]);
    check(dev, &a, &b);
    check(dev, &a.t(), &b.t());
}

#[test]
fn broadcast_batches() {
    let Some(dev) = device() else { return };
    // One operand broadcast over the batch (stride 0), then the other, then both over
    // different dims (not mergeable: looped), then both everywhere.
    check(
        dev,
        &View::new(&[4, 9, 5]).bcast(0),
        &View::new(&[4, 5, 11]),
    );
    check(
        dev,
        &View::new(&[4, 9, 5]),
        &View::new(&[4, 5, 11]).bcast(0).t(),
    );
    check(
        dev,
        &View::new(&[2, 3, 9, 5]).bcast(1),
        &View::new(&[2, 3, 5, 11]).bcast(0),
    );
    check(
        dev,
        &View::new(&[2, 3, 9, 5]).bcast(0).bcast(1),
        &View::new(&[2, 3, 5, 11]).bcast(0).bcast(1),
    );
}

#[test]
fn permuted_batch_dims() {
    let Some(dev) = device() else { return };
    // (B, H, T, D) from (B, T, H, D) storage, times its transpose: attention scores.
    let q = View::new(&[2, 3, 10, 8]).perm(&[0, 2, 1, 3]);
    let kt = View::new(&[2, 3, 8, 10]).perm(&[0, 3, 1, 2]);
    check(dev, &q, &kt);
    check(
        dev,
        &View::new(&[2, 3, 4, 5]).perm(&[1, 0, 2, 3]),
        &View::new(&[2, 3, 5, 6]),
    );
    // Nine unmergeable batch dims: the kernel copies (its StridedLayout holds 8).
    let mut dims = vec![2; 9];
    dims.extend([3, 4]);
    let mut perm: Vec<usize> = (0..9).rev().collect();
    perm.extend([9, 10]);
    let mut bd = vec![2; 9];
    bd.extend([4, 2]);
    check(dev, &View::new(&dims).perm(&perm), &View::new(&bd));
}

#[test]
fn views_cublas_cannot_address() {
    let Some(dev) = device() else { return };
    // rhs (k, n) broadcast along n (column stride 0); lhs a row broadcast to m rows.
    check(dev, &View::new(&[6, 4]), &View::new(&[4, 5]).bcast(1));
    check(dev, &View::new(&[6, 4]).bcast(0), &View::new(&[4, 5]));
    // A step-2 slice of the last dim (strides (10, 2)).
    let (ha, _) = View::new(&[4, 10]).build(3);
    let la = Layout::from_parts(Shape::new(vec![4, 5]), vec![10, 2], 0);
    let (hb, lb) = View::new(&[5, 3]).build(4);
    let ol = Layout::contiguous(Shape::new(vec![4, 3]));
    let want = {
        let ca = Cpu::from_host(&CpuDevice, HostData::F64(ha.clone())).unwrap();
        let cb = Cpu::from_host(&CpuDevice, HostData::F64(hb.clone())).unwrap();
        let w = Cpu::matmul(&ca, &la, &cb, &lb).unwrap();
        Cpu::to_host(&w, &ol).unwrap().to_f64_vec()
    };
    let ga = dev.from_host(&HostData::F64(ha)).unwrap();
    let gb = dev.from_host(&HostData::F64(hb)).unwrap();
    for (engine, cublas) in engines(dev) {
        let got = ga.matmul_with(&la, &gb, &lb, cublas).unwrap();
        let got = got.to_host(&ol).unwrap().to_f64_vec();
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-12 * w.abs().max(1.0),
                "{engine}: {g} vs {w}"
            );
        }
    }
}

#[test]
fn zero_and_unit_sizes() {
    let Some(dev) = device() else { return };
    // k = 0: zeros (written, not left uninitialised).
    for (engine, cublas) in engines(dev) {
        for dtype in [DType::F32, DType::F64] {
            let a = dev.from_host(&host(&[], dtype)).unwrap();
            let la = Layout::contiguous(vec![2, 3, 0]);
            let lb = Layout::contiguous(vec![2, 0, 4]);
            let out = a.matmul_with(&la, &a, &lb, cublas).unwrap();
            let v = out
                .to_host(&Layout::contiguous(vec![2, 3, 4]))
                .unwrap()
                .to_f64_vec();
            assert_eq!(v, vec![0.0; 24], "{engine} {dtype:?}");
            // Empty outputs: m = 0, n = 0, batch = 0.
            let x = dev.from_host(&host(&[1.0; 24], dtype)).unwrap();
            for (da, db) in [
                (vec![2, 0, 3], vec![2, 3, 4]),
                (vec![2, 3, 3], vec![2, 3, 0]),
                (vec![0, 3, 3], vec![0, 3, 4]),
            ] {
                let out = x
                    .matmul_with(&Layout::contiguous(da), &x, &Layout::contiguous(db), cublas)
                    .unwrap();
                assert_eq!((out.len(), out.dtype()), (0, dtype), "{engine}");
            }
        }
    }
    // Size-1 m, n, k, with junk strides on the size-1 dims.
    for junk in [None, Some(0), Some(1), Some(7)] {
        for (a, b) in [
            (vec![1, 1], vec![1, 1]),
            (vec![1, 4], vec![4, 1]),
            (vec![3, 1], vec![1, 5]),
            (vec![1, 4], vec![4, 5]),
            (vec![3, 4], vec![4, 1]),
            (vec![2, 1, 4], vec![2, 4, 1]),
        ] {
            let mut va = View::new(&a);
            let mut vb = View::new(&b);
            va.junk = junk;
            vb.junk = junk;
            check(dev, &va, &vb);
            check(dev, &va.t(), &vb.t());
        }
    }
}

#[test]
fn grid_limits() {
    let Some(dev) = device() else { return };
    // More batch entries than grid z (65535), more row tiles than grid y (65535 · 64 rows).
    check(
        dev,
        &View::new(&[70_000, 2, 3]),
        &View::new(&[70_000, 3, 2]),
    );
    check(dev, &View::new(&[4_200_000, 2]), &View::new(&[2, 1]));
}

#[test]
fn auto_engine() {
    let Some(dev) = device() else { return };
    let (ha, la) = View::new(&[2, 5, 6]).t().build(5);
    let (hb, lb) = View::new(&[2, 6, 3]).build(6);
    let a = dev.from_host(&HostData::F64(ha)).unwrap();
    let b = dev.from_host(&HostData::F64(hb)).unwrap();
    let auto = a.matmul(&la, &b, &lb).unwrap();
    let kernel = a.matmul_with(&la, &b, &lb, false).unwrap();
    let ol = Layout::contiguous(vec![2, 5, 3]);
    let (x, y) = (
        auto.to_host(&ol).unwrap().to_f64_vec(),
        kernel.to_host(&ol).unwrap().to_f64_vec(),
    );
    for (p, q) in x.iter().zip(&y) {
        assert!((p - q).abs() <= 1e-12 * p.abs().max(1.0));
    }
}

#[test]
fn errors_are_values() {
    let Some(dev) = device() else { return };
    let f32s = dev.from_host(&HostData::F32(vec![0.0; 24])).unwrap();
    let f64s = dev.from_host(&HostData::F64(vec![0.0; 24])).unwrap();
    let i64s = dev.from_host(&HostData::I64(vec![0; 24])).unwrap();
    let l = |d: Vec<usize>| Layout::contiguous(d);
    for cublas in [false, true] {
        let e = f32s
            .matmul_with(&l(vec![2, 3]), &f64s, &l(vec![3, 2]), cublas)
            .unwrap_err();
        assert!(
            matches!(
                vars_core::Error::from(e),
                vars_core::Error::DTypeMismatch { .. }
            ),
            "dtype mismatch"
        );
        let e = i64s
            .matmul_with(&l(vec![2, 3]), &i64s, &l(vec![3, 2]), cublas)
            .unwrap_err();
        assert!(matches!(
            vars_core::Error::from(e),
            vars_core::Error::UnsupportedDType {
                dtype: DType::I64,
                ..
            }
        ));
        for (a, b, hint) in [
            (vec![2, 3], vec![4, 2], "inner dims differ"),
            (vec![2, 2, 3], vec![3, 3, 2], "batch dims differ"),
            (vec![6], vec![6], "rank ≥ 2"),
            (vec![2, 3], vec![1, 3, 2], "rank ≥ 2"),
        ] {
            let e = f32s
                .matmul_with(&l(a.clone()), &f32s, &l(b.clone()), cublas)
                .unwrap_err()
                .to_string();
            assert!(e.contains(hint), "{e}");
            assert!(e.contains(&format!("{a:?}")), "{e}");
        }
        // A view reaching past the buffer.
        let e = f32s
            .matmul_with(&l(vec![5, 5]), &f32s, &l(vec![5, 2]), cublas)
            .unwrap_err()
            .to_string();
        assert!(e.contains("but the buffer holds 24"), "{e}");
    }
}

fn arb_view(dims: Vec<usize>) -> impl Strategy<Value = View> {
    let r = dims.len();
    (
        Just(dims),
        proptest::bool::ANY,
        proptest::bool::ANY,
        proptest::collection::vec(0usize..3, r),
        proptest::collection::vec(0usize..3, r),
        proptest::collection::vec(proptest::bool::weighted(0.2), r - 2),
    )
        .prop_map(move |(dims, t, swap_batch, pad, start, bcast)| {
            let mut v = View::new(&dims).narrow(&pad, &start);
            for (d, b) in bcast.into_iter().enumerate() {
                v.bcast[d] = b;
            }
            if swap_batch && r == 4 {
                v.perm.swap(0, 1);
            }
            if t {
                v = v.t();
            }
            v
        })
}

fn arb_pair() -> impl Strategy<Value = (View, View)> {
    (
        proptest::collection::vec(1usize..=3, 0..=2),
        1usize..=70,
        0usize..=70,
        1usize..=70,
    )
        .prop_flat_map(|(batch, m, k, n)| {
            let mut da = batch.clone();
            da.extend([m, k]);
            let mut db = batch;
            db.extend([k, n]);
            (arb_view(da), arb_view(db))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn random_products((a, b) in arb_pair()) {
        if let Some(dev) = device() {
            check(dev, &a, &b);
        }
    }
}
