//! The kernel registry: every CUDA C module of this crate, its source and its entry points, plus
//! the naming scheme and the [`StridedLayout`] argument that the Rust launchers and the `.cu` files
//! share.
//!
//! Sources live in `src/kernels/*.cu` and are embedded with `include_str!`; each module is one
//! NVRTC translation unit made of `common.cuh` (the shared prelude) followed by the module file.
//! Kernels are `extern "C" __global__` (unmangled names), generated from C++ templates by macros.
//! The entry-point lists below are built from the same naming functions the launchers use, and
//! `tests/nvrtc_compile.rs` checks them against the `.entry` directives of the compiled PTX in
//! both directions, so the registry cannot drift from the sources.

use crate::error::{CudaError, Result};
use vars_core::{BinaryOp, DType, Layout, UnaryOp};

/// One CUDA C module: compiled by NVRTC as one unit, loaded as one `CUmodule`.
#[derive(Debug, Clone, Copy)]
pub struct KernelSource {
    /// Module name, also the NVRTC program name and the cache file prefix.
    pub name: &'static str,
    /// The `.cu` file under `src/kernels/`.
    pub file: &'static str,
    /// The complete translation unit: the prelude then the module file.
    pub source: &'static str,
    /// Every `extern "C" __global__` function the module defines.
    pub entry_points: fn() -> Vec<String>,
}

impl KernelSource {
    pub fn entry_points(&self) -> Vec<String> {
        (self.entry_points)()
    }

    /// Whether the module exports `function`.
    pub fn has_entry(&self, function: &str) -> bool {
        self.entry_points().iter().any(|e| e == function)
    }
}

macro_rules! module_source {
    ($file:literal) => {
        concat!(
            include_str!("kernels/common.cuh"),
            "\n",
            include_str!(concat!("kernels/", $file))
        )
    };
}

/// The shared prelude (`StridedLayout`, index helpers), for reference; already part of every
/// [`KernelSource::source`].
pub const PRELUDE: &str = include_str!("kernels/common.cuh");

/// `fill_<t>`: [`fill_kernel`].
pub static FILL: KernelSource = KernelSource {
    name: "fill",
    file: "fill.cu",
    source: module_source!("fill.cu"),
    entry_points: fill_entries,
};

/// `copy_strided_<t>`, `copy_into_<t>`, `cast_<from>_<to>`.
pub static COPY: KernelSource = KernelSource {
    name: "copy",
    file: "copy.cu",
    source: module_source!("copy.cu"),
    entry_points: copy_entries,
};

/// `unary_<op>_<t>[_strided]` for every [`UnaryOp`], f32 and f64.
pub static UNARY: KernelSource = KernelSource {
    name: "unary",
    file: "unary.cu",
    source: module_source!("unary.cu"),
    entry_points: unary_entries,
};

/// `binary_<op>_<t>[_strided]` for every [`BinaryOp`], f32, f64 and i64.
pub static BINARY: KernelSource = KernelSource {
    name: "binary",
    file: "binary.cu",
    source: module_source!("binary.cu"),
    entry_points: binary_entries,
};

/// `rand_uniform_<t>`, `rand_normal_<t>`, `rand_bits_i64`: the generator of `vars_core::rng`.
pub static RNG: KernelSource = KernelSource {
    name: "rng",
    file: "rng.cu",
    source: module_source!("rng.cu"),
    entry_points: rng_entries,
};

/// `reduce_<op>_<t>`: sum/max/min/argmax/argmin, one thread block per output element
/// (deterministic); see `reduce.rs`.
pub static REDUCE: KernelSource = KernelSource {
    name: "reduce",
    file: "reduce.cu",
    source: module_source!("reduce.cu"),
    entry_points: crate::reduce::entries,
};

/// `where_cond`, `index_select`, `index_add`; see `index.rs`.
pub static INDEX: KernelSource = KernelSource {
    name: "index",
    file: "index.cu",
    source: module_source!("index.cu"),
    entry_points: crate::index::entries,
};

/// `unfold2d` (im2col) and `fold2d` (col2im); see `window.rs`.
pub static WINDOW: KernelSource = KernelSource {
    name: "window",
    file: "window.cu",
    source: module_source!("window.cu"),
    entry_points: crate::window::entries,
};

/// The tiled batched GEMM used when cuBLAS does not load; see `matmul.rs`.
pub static GEMM: KernelSource = KernelSource {
    name: "gemm",
    file: "gemm.cu",
    source: module_source!("gemm.cu"),
    entry_points: crate::matmul::entries,
};

/// The fused sparse-coding loop (`vars_core::sparse::unrolled_ista`) and its backward; see
/// `sparse_coding.rs`.
pub static SPARSE_CODING: KernelSource = KernelSource {
    name: "sparse_coding",
    file: "sparse_coding.cu",
    source: module_source!("sparse_coding.cu"),
    entry_points: crate::sparse_coding::entries,
};

/// Softmax / log-softmax and the layer-norm normalisation along the last dim, with backwards;
/// see `rows.rs`.
pub static ROWS: KernelSource = KernelSource {
    name: "rows",
    file: "rows.cu",
    source: module_source!("rows.cu"),
    entry_points: crate::rows::entries,
};

/// Every kernel module of the crate.
pub static KERNELS: &[&KernelSource] = &[
    &FILL,
    &COPY,
    &UNARY,
    &BINARY,
    &RNG,
    &REDUCE,
    &INDEX,
    &WINDOW,
    &GEMM,
    &SPARSE_CODING,
    &ROWS,
];

/// Looks a module up by name.
pub fn module(name: &str) -> Option<&'static KernelSource> {
    KERNELS.iter().copied().find(|k| k.name == name)
}

// ---- naming -------------------------------------------------------------------------------------

/// Dtypes with fill/copy/binary kernels.
pub const ALL_DTYPES: [DType; 3] = [DType::F32, DType::F64, DType::I64];
/// Dtypes with unary and random kernels.
pub const FLOAT_DTYPES: [DType; 2] = [DType::F32, DType::F64];

/// One representative of every [`UnaryOp`] variant (parameters are placeholders).
pub const UNARY_OPS: [UnaryOp; 19] = [
    UnaryOp::Neg,
    UnaryOp::Exp,
    UnaryOp::Log,
    UnaryOp::Sqrt,
    UnaryOp::Sqr,
    UnaryOp::Abs,
    UnaryOp::Sign,
    UnaryOp::Relu,
    UnaryOp::Gelu,
    UnaryOp::GeluDerivative,
    UnaryOp::Erf,
    UnaryOp::Sigmoid,
    UnaryOp::Tanh,
    UnaryOp::Recip,
    UnaryOp::Step,
    UnaryOp::Powf(0.0),
    UnaryOp::Affine { mul: 0.0, add: 0.0 },
    UnaryOp::ClampMin(0.0),
    UnaryOp::ClampMax(0.0),
];

/// Every [`BinaryOp`] (the shrinks have f32/f64 kernels only; see [`binary_dtypes`]).
pub const BINARY_OPS: [BinaryOp; 14] = [
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::Maximum,
    BinaryOp::Minimum,
    BinaryOp::Eq,
    BinaryOp::Ne,
    BinaryOp::Lt,
    BinaryOp::Le,
    BinaryOp::Gt,
    BinaryOp::Ge,
    BinaryOp::SoftThreshold,
    BinaryOp::GeluShrink,
];

/// The dtypes `op` has kernels for.
pub fn binary_dtypes(op: BinaryOp) -> &'static [DType] {
    match op {
        BinaryOp::SoftThreshold | BinaryOp::GeluShrink => &FLOAT_DTYPES,
        _ => &ALL_DTYPES,
    }
}

fn strided_suffix(strided: bool) -> &'static str {
    if strided {
        "_strided"
    } else {
        ""
    }
}

/// `fill_<t>(n, out, value)`.
pub fn fill_kernel(dtype: DType) -> String {
    format!("fill_{dtype}")
}

/// `copy_strided_<t>(n, src_layout, src, out)`.
pub fn copy_strided_kernel(dtype: DType) -> String {
    format!("copy_strided_{dtype}")
}

/// `copy_into_<t>(n, src_layout, src, dst_layout, dst)`.
pub fn copy_into_kernel(dtype: DType) -> String {
    format!("copy_into_{dtype}")
}

/// `cast_<from>_<to>(n, src_layout, src, out)`; only for `from != to`.
pub fn cast_kernel(from: DType, to: DType) -> String {
    format!("cast_{from}_{to}")
}

/// `unary_<op>_<t>(n, x, out, p0, p1)` or `unary_<op>_<t>_strided(n, x_layout, x, out, p0, p1)`.
pub fn unary_kernel(op: UnaryOp, dtype: DType, strided: bool) -> String {
    format!("unary_{}_{dtype}{}", op.name(), strided_suffix(strided))
}

/// `binary_<op>_<t>(n, a, b, out)` or
/// `binary_<op>_<t>_strided(n, a_layout, a, b_layout, b, out)`.
pub fn binary_kernel(op: BinaryOp, dtype: DType, strided: bool) -> String {
    format!("binary_{}_{dtype}{}", op.name(), strided_suffix(strided))
}

/// `rand_uniform_<t>(n, out, seed, low, high)` / `rand_normal_<t>(n, out, seed, mean, std)`.
pub fn rand_kernel(dist: vars_core::Distribution, dtype: DType) -> String {
    match dist {
        vars_core::Distribution::Uniform { .. } => format!("rand_uniform_{dtype}"),
        vars_core::Distribution::Normal { .. } => format!("rand_normal_{dtype}"),
    }
}

/// `rand_bits_i64(n, out, seed)`: the raw `vars_core::rng::bits` words.
pub const RAND_BITS_KERNEL: &str = "rand_bits_i64";

fn fill_entries() -> Vec<String> {
    ALL_DTYPES.iter().map(|&d| fill_kernel(d)).collect()
}

fn copy_entries() -> Vec<String> {
    let mut v = Vec::new();
    for d in ALL_DTYPES {
        v.push(copy_strided_kernel(d));
        v.push(copy_into_kernel(d));
    }
    for from in ALL_DTYPES {
        for to in ALL_DTYPES {
            if from != to {
                v.push(cast_kernel(from, to));
            }
        }
    }
    v
}

fn unary_entries() -> Vec<String> {
    let mut v = Vec::new();
    for op in UNARY_OPS {
        for d in FLOAT_DTYPES {
            v.push(unary_kernel(op, d, false));
            v.push(unary_kernel(op, d, true));
        }
    }
    v
}

fn binary_entries() -> Vec<String> {
    let mut v = Vec::new();
    for op in BINARY_OPS {
        for &d in binary_dtypes(op) {
            v.push(binary_kernel(op, d, false));
            v.push(binary_kernel(op, d, true));
        }
    }
    v
}

fn rng_entries() -> Vec<String> {
    let mut v = vec![RAND_BITS_KERNEL.to_string()];
    for d in FLOAT_DTYPES {
        v.push(rand_kernel(
            vars_core::Distribution::Uniform {
                low: 0.0,
                high: 1.0,
            },
            d,
        ));
        v.push(rand_kernel(
            vars_core::Distribution::Normal {
                mean: 0.0,
                std: 1.0,
            },
            d,
        ));
    }
    v
}

/// The scalar parameters `(p0, p1)` a unary kernel receives for `op`.
pub fn unary_params(op: UnaryOp) -> (f64, f64) {
    match op {
        UnaryOp::Powf(p) => (p, 0.0),
        UnaryOp::Affine { mul, add } => (mul, add),
        UnaryOp::ClampMin(c) | UnaryOp::ClampMax(c) => (c, 0.0),
        _ => (0.0, 0.0),
    }
}

// ---- the strided-layout argument ----------------------------------------------------------------

/// A strided view as the kernels take it (by value): the C struct `StridedLayout` of
/// `kernels/common.cuh`, field for field (144 bytes).
///
/// Built from a [`Layout`] with size-1 dims dropped and adjacent dims merged wherever they are
/// contiguous with each other (including stride-0 broadcast runs), so the kernels' rank limit
/// [`StridedLayout::MAX_RANK`] applies to the *merged* rank, and index arithmetic is minimal.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StridedLayout {
    pub rank: u32,
    pub _pad: u32,
    /// Element offset of logical element 0.
    pub offset: u64,
    pub dims: [u64; StridedLayout::MAX_RANK],
    /// Element strides.
    pub strides: [u64; StridedLayout::MAX_RANK],
}

// SAFETY: `#[repr(C)]` plain-old-data matching the C struct `StridedLayout` in common.cuh.
unsafe impl cudarc::driver::DeviceRepr for StridedLayout {}

impl StridedLayout {
    /// `VARS_MAX_RANK` in `common.cuh`.
    pub const MAX_RANK: usize = 8;

    /// The merged (dim, stride) pairs of a layout: no size-1 dims, no two neighbours that could
    /// be one dim. An empty view gives `[(0, 1)]`.
    pub fn merged_dims(layout: &Layout) -> Vec<(usize, usize)> {
        if layout.elem_count() == 0 {
            return vec![(0, 1)];
        }
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(layout.rank());
        for (&d, &s) in layout.dims().iter().zip(layout.strides()) {
            if d == 1 {
                continue;
            }
            match merged.last_mut() {
                // The previous dim steps exactly over one run of this one: fuse them.
                Some((pd, ps)) if *ps == s * d => {
                    *pd *= d;
                    *ps = s;
                }
                _ => merged.push((d, s)),
            }
        }
        merged
    }

    /// The kernel argument for `layout`; `op` names the caller in errors.
    pub fn new(op: &'static str, layout: &Layout) -> Result<Self> {
        let merged = Self::merged_dims(layout);
        if merged.len() > Self::MAX_RANK {
            return Err(CudaError::Layout {
                op,
                msg: format!(
                    "view of shape {:?} with strides {:?} has {} non-mergeable dims; the CUDA \
                     kernels take at most {} (make it contiguous first)",
                    layout.dims(),
                    layout.strides(),
                    merged.len(),
                    Self::MAX_RANK
                ),
            });
        }
        let mut out = StridedLayout {
            rank: merged.len() as u32,
            _pad: 0,
            offset: layout.offset() as u64,
            dims: [1; Self::MAX_RANK],
            strides: [0; Self::MAX_RANK],
        };
        for (k, (d, s)) in merged.into_iter().enumerate() {
            out.dims[k] = d as u64;
            out.strides[k] = s as u64;
        }
        Ok(out)
    }

    /// The storage index of logical element `i`: the host twin of `vars_strided_index`.
    pub fn index(&self, mut i: u64) -> u64 {
        let mut pos = self.offset;
        for d in (0..self.rank as usize).rev() {
            pos += (i % self.dims[d]) * self.strides[d];
            i /= self.dims[d];
        }
        pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vars_core::Shape;

    #[test]
    fn registry_is_complete_and_unique() {
        assert_eq!(KERNELS.len(), 11);
        let mut all: Vec<String> = KERNELS.iter().flat_map(|k| k.entry_points()).collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "duplicate entry point names");
        assert_eq!(UNARY.entry_points().len(), 19 * 2 * 2);
        assert_eq!(BINARY.entry_points().len(), 12 * 3 * 2 + 2 * 2 * 2);
        for k in KERNELS {
            // `#line 2` on a file's first line keeps NVRTC's line numbers equal to the file's.
            assert!(k.source.starts_with("#line 2 \"common.cuh\"\n"));
            assert!(k.source.contains(&format!("\n#line 2 \"{}\"\n", k.file)));
            assert!(module(k.name).is_some());
            for e in k.entry_points() {
                // Each name is spelled out by a macro whose pieces appear in the source.
                let stem = e.split('_').next().unwrap();
                assert!(k.source.contains(stem), "{e} not plausible in {}", k.file);
            }
        }
        assert!(UNARY.has_entry(&unary_kernel(UnaryOp::GeluDerivative, DType::F64, true)));
        assert!(UNARY.has_entry(&unary_kernel(UnaryOp::ClampMax(3.0), DType::F32, false)));
        assert!(!UNARY.has_entry(&unary_kernel(UnaryOp::Neg, DType::I64, false)));
    }

    #[test]
    fn unary_ops_list_covers_every_variant() {
        // A new UnaryOp variant breaks this match and reminds to add a kernel.
        for op in UNARY_OPS {
            match op {
                UnaryOp::Neg
                | UnaryOp::Exp
                | UnaryOp::Log
                | UnaryOp::Sqrt
                | UnaryOp::Sqr
                | UnaryOp::Abs
                | UnaryOp::Sign
                | UnaryOp::Relu
                | UnaryOp::Gelu
                | UnaryOp::GeluDerivative
                | UnaryOp::Erf
                | UnaryOp::Sigmoid
                | UnaryOp::Tanh
                | UnaryOp::Recip
                | UnaryOp::Step
                | UnaryOp::Powf(_)
                | UnaryOp::Affine { .. }
                | UnaryOp::ClampMin(_)
                | UnaryOp::ClampMax(_) => {}
            }
        }
        let mut names: Vec<&str> = UNARY_OPS.iter().map(|o| o.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), UNARY_OPS.len());
        assert_eq!(
            unary_params(UnaryOp::Affine { mul: 2.0, add: 3.0 }),
            (2.0, 3.0)
        );
    }

    #[test]
    fn strided_layout_matches_the_c_struct() {
        assert_eq!(std::mem::size_of::<StridedLayout>(), 8 + 8 + 64 + 64);
        assert_eq!(std::mem::align_of::<StridedLayout>(), 8);
        assert!(PRELUDE.contains("#define VARS_MAX_RANK 8"));
    }

    fn check(layout: &Layout) {
        let sl = StridedLayout::new("test", layout).unwrap();
        let expected: Vec<usize> = layout.strided_index().collect();
        let got: Vec<usize> = (0..layout.elem_count() as u64)
            .map(|i| sl.index(i) as usize)
            .collect();
        assert_eq!(got, expected, "{layout:?} -> {sl:?}");
    }

    #[test]
    fn strided_layout_reproduces_layout_indexing() {
        let base = Layout::contiguous(Shape::new(vec![2, 3, 4, 5]));
        check(&base);
        assert_eq!(StridedLayout::new("t", &base).unwrap().rank, 1);
        check(&base.permute(&[0, 2, 1, 3]).unwrap());
        // (3, 2, 4, 5) with strides (20, 60, 5, 1): the trailing two dims fuse.
        let t = base.permute(&[1, 0, 2, 3]).unwrap();
        check(&t);
        assert_eq!(StridedLayout::new("t", &t).unwrap().rank, 3);
        check(&base.permute(&[3, 2, 1, 0]).unwrap());
        check(&base.narrow(2, 1, 2).unwrap());
        check(&base.narrow(0, 1, 1).unwrap().narrow(3, 2, 3).unwrap());
        let row = Layout::contiguous(Shape::new(vec![1, 5]));
        let b = row.broadcast_as(&Shape::new(vec![2, 3, 4, 5])).unwrap();
        check(&b);
        assert_eq!(StridedLayout::new("t", &b).unwrap().rank, 2);
        check(&Layout::contiguous(Shape::new(Vec::<usize>::new())));
        let empty = Layout::contiguous(Shape::new(vec![3, 0, 2]));
        assert_eq!(StridedLayout::new("t", &empty).unwrap().dims[0], 0);
    }

    #[test]
    fn too_many_dims_is_an_error() {
        // 9 dims of size 2, reversed: nothing merges.
        let base = Layout::contiguous(Shape::new(vec![2; 9]));
        let perm: Vec<usize> = (0..9).rev().collect();
        let rev = base.permute(&perm).unwrap();
        let err = StridedLayout::new("unary", &rev).unwrap_err().to_string();
        assert!(err.contains("at most 8"), "{err}");
        // Contiguous high-rank views merge to rank 1 and are fine.
        assert_eq!(StridedLayout::new("t", &base).unwrap().rank, 1);
    }
}
