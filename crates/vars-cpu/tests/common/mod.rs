//! Test helpers: deterministic data, the four kinds of views every op is checked on, and an
//! independent reference for "which storage element does logical index i read".
#![allow(dead_code)]

use vars_core::{DType, HostData, Layout, Shape};
use vars_cpu::{Cpu, CpuStorage};

/// Deterministic values in roughly [-2, 2) (SplitMix-style hash of `i` and `seed`).
pub fn data(len: usize, seed: u64) -> Vec<f64> {
    (0..len)
        .map(|i| {
            let u = vars_core::rng::uniform(seed, i as u64);
            // Keep 6 fractional bits so every value is exact in f32 as well as f64.
            ((u * 4.0 - 2.0) * 64.0).round() / 64.0
        })
        .collect()
}

/// Storage of `dtype` holding `values` (converted with `as`).
pub fn storage(values: &[f64], dtype: DType) -> CpuStorage {
    CpuStorage::from_host(match dtype {
        DType::F32 => HostData::F32(values.iter().map(|&v| v as f32).collect()),
        DType::F64 => HostData::F64(values.to_vec()),
        DType::I64 => HostData::I64(values.iter().map(|&v| v as i64).collect()),
        other => panic!("unexpected dtype {other}"),
    })
}

/// The whole buffer of a storage as f64.
pub fn values(s: &CpuStorage) -> Vec<f64> {
    s.clone().into_host().to_f64_vec()
}

/// Storage index of logical element `i`, computed directly from the layout (independent of the
/// backend's iteration code).
pub fn ref_index(l: &Layout, i: usize) -> usize {
    let mut rem = i;
    let mut pos = l.offset();
    for (&d, &s) in l.dims().iter().zip(l.strides()).rev() {
        pos += (rem % d) * s;
        rem /= d;
    }
    pos
}

/// The logical elements of a view, row-major.
pub fn ref_gather(buf: &[f64], l: &Layout) -> Vec<f64> {
    (0..l.elem_count()).map(|i| buf[ref_index(l, i)]).collect()
}

/// A view of logical shape `dims` over its own buffer.
#[derive(Debug, Clone)]
pub struct View {
    pub kind: &'static str,
    pub buf: Vec<f64>,
    pub layout: Layout,
}

impl View {
    pub fn logical(&self) -> Vec<f64> {
        ref_gather(&self.buf, &self.layout)
    }
    pub fn storage(&self, dtype: DType) -> CpuStorage {
        storage(&self.buf, dtype)
    }
}

/// Four views of logical shape `dims` (rank ≥ 1): contiguous, permuted (reversed dims),
/// narrowed with a non-zero offset, and broadcast (dim 0 stride 0).
pub fn views(dims: &[usize], seed: u64) -> Vec<View> {
    let shape = Shape::new(dims.to_vec());
    let n = shape.elem_count();
    let rank = dims.len();
    let mut out = vec![View {
        kind: "contiguous",
        buf: data(n, seed),
        layout: Layout::contiguous(shape.clone()),
    }];
    // Permuted: store the reversed shape contiguously and reverse it back.
    let rev: Vec<usize> = dims.iter().rev().copied().collect();
    let perm: Vec<usize> = (0..rank).rev().collect();
    out.push(View {
        kind: "permuted",
        buf: data(n, seed + 1),
        layout: Layout::contiguous(rev).permute(&perm).unwrap(),
    });
    // Narrowed: a bigger buffer, every dim padded, the view starts inside it.
    let padded: Vec<usize> = dims.iter().map(|&d| d + 2).collect();
    let mut l = Layout::contiguous(padded.clone());
    for (d, &size) in dims.iter().enumerate() {
        l = l.narrow(d, 1, size).unwrap();
    }
    out.push(View {
        kind: "narrowed",
        buf: data(padded.iter().product(), seed + 2),
        layout: l,
    });
    // Broadcast: dim 0 has stride 0.
    let mut small = dims.to_vec();
    small[0] = 1;
    out.push(View {
        kind: "broadcast",
        buf: data(small.iter().product(), seed + 3),
        layout: Layout::contiguous(small).broadcast_as(&shape).unwrap(),
    });
    out
}

/// Asserts `got ≈ want` elementwise with a relative-or-absolute tolerance.
#[track_caller]
pub fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= tol * w.abs().max(1.0);
        assert!(ok, "{what}: element {i}: got {g}, want {w} (tol {tol})");
    }
}

/// The backend type, for `<Cpu as Backend>::op(...)` calls.
pub type B = Cpu;
