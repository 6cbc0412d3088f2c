//! The one seam through which every GEMM call of the CPU backend goes.
//!
//! `c = a · b` for one `m×k` by `k×n` product with arbitrary non-negative element strides on all
//! three matrices (transposed operands are just swapped strides, so no copies are needed). Every
//! call here is **single-threaded**: the callers ([`crate::matmul`]) parallelise over batches and
//! row blocks with rayon themselves, and a threaded GEMM inside a rayon loop would oversubscribe.
//!
//! Kernels:
//! - [`GemmKernel::MatrixMultiply`]: the `matrixmultiply` crate (BLIS-style packing, runtime
//!   AVX2/FMA/AVX-512 detection, no threading feature), always available;
//! - `GemmKernel::Gemm`: the `gemm` crate in `Parallelism::None` mode, behind the `gemm-crate`
//!   cargo feature (on by default; `gemm-crate-avx512` additionally enables its AVX-512
//!   kernels);
//! - [`GemmKernel::Direct`]: plain loops without packing, for the one- and two-row products of
//!   grouped/depthwise convolutions (e.g. thousands of `1×9·9×196`). See `direct` for its
//!   summation orders.
//!
//! [`DEFAULT_KERNEL`] is what the backend uses for all but those products; it was picked by the
//! `gemm` criterion bench at the model's shapes (numbers and reasoning in `docs/gemm-choice.md`).
//! [`pick_kernel`] makes the per-product choice (`docs/conv-performance.md`).

use vars_core::{Error, Result, Shape};

use crate::scalar::Float;

/// A GEMM implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmKernel {
    /// The `matrixmultiply` crate.
    MatrixMultiply,
    /// The `gemm` crate, single-threaded (feature `gemm-crate`).
    #[cfg(feature = "gemm-crate")]
    Gemm,
    /// Direct loops without packing (small one- or two-row products; see [`pick_kernel`]).
    Direct,
}

impl GemmKernel {
    /// Every kernel compiled into this build.
    pub const ALL: &'static [GemmKernel] = &[
        GemmKernel::MatrixMultiply,
        #[cfg(feature = "gemm-crate")]
        GemmKernel::Gemm,
        GemmKernel::Direct,
    ];

    pub fn name(self) -> &'static str {
        match self {
            GemmKernel::MatrixMultiply => "matrixmultiply",
            #[cfg(feature = "gemm-crate")]
            GemmKernel::Gemm => "gemm",
            GemmKernel::Direct => "direct",
        }
    }
}

/// The kernel the backend's matmul uses: the `gemm` crate when compiled in (the default; it won
/// at every model shape measured), else `matrixmultiply`. See `docs/gemm-choice.md`.
#[cfg(feature = "gemm-crate")]
pub const DEFAULT_KERNEL: GemmKernel = GemmKernel::Gemm;
/// The kernel the backend's matmul uses (`matrixmultiply`: the `gemm-crate` feature is off).
#[cfg(not(feature = "gemm-crate"))]
pub const DEFAULT_KERNEL: GemmKernel = GemmKernel::MatrixMultiply;

/// [`pick_kernel`] takes [`GemmKernel::Direct`] for one-row products with at most this many
/// columns…
pub const DIRECT_ONE_ROW_MAX_N: usize = 64;
/// …and for two-row products, in both cases with at most this many multiply-adds and a
/// row-major right operand.
pub const DIRECT_MAX_MACS: usize = 1 << 16;

/// The kernel for one `m×k` by `k×n` product whose right operand has column stride `csb`:
/// [`GemmKernel::Direct`] for small products with a row-major right operand (`csb = 1`) and two
/// rows, or one row of at most [`DIRECT_ONE_ROW_MAX_N`] columns — a grouped conv's `2×9 · 9×49`
/// per group, a depthwise conv's `1×9 · 9×49` per channel — where it measured 1.4–3× faster
/// than the `gemm` crate over a batch of them; [`DEFAULT_KERNEL`] for everything else (the
/// `gemm` crate's one-row path streams long rows faster, e.g. 2.5× at `1×9 · 9×196`; see
/// `docs/conv-performance.md`).
///
/// Depends only on the arguments; [`crate::matmul`] calls it once per batched product with the
/// full `m`, so splitting rows across threads never switches kernels.
pub fn pick_kernel(m: usize, k: usize, n: usize, csb: usize) -> GemmKernel {
    let macs = m.saturating_mul(k).saturating_mul(n);
    let small = csb == 1 && macs <= DIRECT_MAX_MACS;
    if small && (m == 2 || m == 1 && n <= DIRECT_ONE_ROW_MAX_N) {
        GemmKernel::Direct
    } else {
        DEFAULT_KERNEL
    }
}

/// `c[m×n] = a[m×k] · b[k×n]` in f32 (single-threaded; `c` is overwritten, never read).
///
/// Strides are in elements: element `(i, j)` of `a` is `a[i·rsa + j·csa]`, and so on. Errors
/// (instead of panicking) when a matrix does not fit its slice, when a stride does not fit
/// `isize`, or when `c`'s strides would make two of its elements alias.
pub fn gemm_f32(
    kernel: GemmKernel,
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    c: &mut [f32],
    rsc: usize,
    csc: usize,
) -> Result<()> {
    let s = Strides::check(
        m,
        k,
        n,
        [a.len(), b.len(), c.len()],
        [rsa, csa, rsb, csb, rsc, csc],
    )?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        zero_view(c, m, n, rsc, csc);
        return Ok(());
    }
    match kernel {
        GemmKernel::Direct => direct(m, k, n, a, rsa, csa, b, rsb, csb, c, rsc, csc),
        // SAFETY: `Strides::check` proved that every element the product reads or writes lies
        // inside the slices and that the elements of `c` do not alias; `a`/`b` are shared
        // borrows and `c` an exclusive one, so the operands cannot overlap each other.
        GemmKernel::MatrixMultiply => unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                1.0,
                a.as_ptr(),
                s.0[0],
                s.0[1],
                b.as_ptr(),
                s.0[2],
                s.0[3],
                0.0,
                c.as_mut_ptr(),
                s.0[4],
                s.0[5],
            )
        },
        // SAFETY: as above; `read_dst = false` means `c` is only written.
        #[cfg(feature = "gemm-crate")]
        GemmKernel::Gemm => unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                s.0[5],
                s.0[4],
                false,
                a.as_ptr(),
                s.0[1],
                s.0[0],
                b.as_ptr(),
                s.0[3],
                s.0[2],
                0.0f32,
                1.0f32,
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        },
    }
    Ok(())
}

/// `c[m×n] = a[m×k] · b[k×n]` in f64; see [`gemm_f32`].
pub fn gemm_f64(
    kernel: GemmKernel,
    m: usize,
    k: usize,
    n: usize,
    a: &[f64],
    rsa: usize,
    csa: usize,
    b: &[f64],
    rsb: usize,
    csb: usize,
    c: &mut [f64],
    rsc: usize,
    csc: usize,
) -> Result<()> {
    let s = Strides::check(
        m,
        k,
        n,
        [a.len(), b.len(), c.len()],
        [rsa, csa, rsb, csb, rsc, csc],
    )?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        zero_view(c, m, n, rsc, csc);
        return Ok(());
    }
    match kernel {
        GemmKernel::Direct => direct(m, k, n, a, rsa, csa, b, rsb, csb, c, rsc, csc),
        // SAFETY: see `gemm_f32`.
        GemmKernel::MatrixMultiply => unsafe {
            matrixmultiply::dgemm(
                m,
                k,
                n,
                1.0,
                a.as_ptr(),
                s.0[0],
                s.0[1],
                b.as_ptr(),
                s.0[2],
                s.0[3],
                0.0,
                c.as_mut_ptr(),
                s.0[4],
                s.0[5],
            )
        },
        // SAFETY: see `gemm_f32`.
        #[cfg(feature = "gemm-crate")]
        GemmKernel::Gemm => unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                s.0[5],
                s.0[4],
                false,
                a.as_ptr(),
                s.0[1],
                s.0[0],
                b.as_ptr(),
                s.0[3],
                s.0[2],
                0.0f64,
                1.0f64,
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        },
    }
    Ok(())
}

/// [`GemmKernel::Direct`]: `c = a · b` by plain loops (single-threaded, no packing, no
/// allocation). The caller has validated the strides (`Strides::check`) and handled `m`, `n` or
/// `k` = 0. Three forms, chosen from the strides alone (never from `m`, so a row block computes
/// exactly what the whole product computes for those rows):
///
/// - **rows** (`b`'s rows contiguous, `csb = 1`, and `csc = 1`): each row of `c` is built as
///   `a[i,0]·b[0,:]`, then `+ a[i,p]·b[p,:]` for `p = 1, 2, …` in order, four `p` per pass over
///   the row (vectorised along `n`);
/// - **dot** (`a`'s rows and `b`'s columns contiguous, `csa = rsb = 1`): each element is a dot
///   product with 8 lane accumulators (lane = `p mod 8`) combined as
///   `((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7))`, then the `k mod 8` tail added in order;
/// - **generic** (anything else): each element summed over `p` in order, as in the rows form.
///
/// No fused multiply-adds: every product is rounded, then added.
pub(crate) fn direct<T: Float>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    rsa: usize,
    csa: usize,
    b: &[T],
    rsb: usize,
    csb: usize,
    c: &mut [T],
    rsc: usize,
    csc: usize,
) {
    debug_assert!(m > 0 && k > 0 && n > 0);
    if csb == 1 && csc == 1 {
        for i in 0..m {
            let at = |p: usize| a[i * rsa + p * csa];
            let brow = |p: usize| &b[p * rsb..p * rsb + n];
            let crow = &mut c[i * rsc..i * rsc + n];
            let a0 = at(0);
            for (cv, &bv) in crow.iter_mut().zip(brow(0)) {
                *cv = a0 * bv;
            }
            let mut p = 1;
            while p + 4 <= k {
                let (a0, a1, a2, a3) = (at(p), at(p + 1), at(p + 2), at(p + 3));
                let (b0, b1, b2, b3) = (brow(p), brow(p + 1), brow(p + 2), brow(p + 3));
                for j in 0..n {
                    crow[j] = (((crow[j] + a0 * b0[j]) + a1 * b1[j]) + a2 * b2[j]) + a3 * b3[j];
                }
                p += 4;
            }
            while p < k {
                let ap = at(p);
                for (cv, &bv) in crow.iter_mut().zip(brow(p)) {
                    *cv = *cv + ap * bv;
                }
                p += 1;
            }
        }
    } else if csa == 1 && rsb == 1 {
        for i in 0..m {
            let arow = &a[i * rsa..i * rsa + k];
            for j in 0..n {
                c[i * rsc + j * csc] = dot(arow, &b[j * csb..j * csb + k]);
            }
        }
    } else {
        for i in 0..m {
            for j in 0..n {
                let mut s = a[i * rsa] * b[j * csb];
                for p in 1..k {
                    s = s + a[i * rsa + p * csa] * b[p * rsb + j * csb];
                }
                c[i * rsc + j * csc] = s;
            }
        }
    }
}

/// `Σ x[p]·y[p]` with 8 lane accumulators (see [`direct`]).
#[inline]
fn dot<T: Float>(x: &[T], y: &[T]) -> T {
    let mut lanes = [T::ZERO; 8];
    let (xc, yc) = (x.chunks_exact(8), y.chunks_exact(8));
    let (xt, yt) = (xc.remainder(), yc.remainder());
    for (xs, ys) in xc.zip(yc) {
        for l in 0..8 {
            lanes[l] = lanes[l] + xs[l] * ys[l];
        }
    }
    let mut s = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
        + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    for (&xv, &yv) in xt.iter().zip(yt) {
        s = s + xv * yv;
    }
    s
}

fn zero_view<T: Default + Copy>(c: &mut [T], m: usize, n: usize, rsc: usize, csc: usize) {
    for i in 0..m {
        for j in 0..n {
            c[i * rsc + j * csc] = T::default();
        }
    }
}

/// Validated strides as `isize`: `[rsa, csa, rsb, csb, rsc, csc]`.
struct Strides([isize; 6]);

impl Strides {
    fn check(m: usize, k: usize, n: usize, lens: [usize; 3], s: [usize; 6]) -> Result<Strides> {
        let err = |msg: String| Error::InvalidArgument {
            op: "gemm",
            shape: Shape::new(vec![m, k, n]),
            msg,
        };
        let mats = [
            ("a", m, k, s[0], s[1]),
            ("b", k, n, s[2], s[3]),
            ("c", m, n, s[4], s[5]),
        ];
        for ((name, rows, cols, rs, cs), len) in mats.into_iter().zip(lens) {
            if rows == 0 || cols == 0 {
                continue;
            }
            let last = (rows - 1)
                .checked_mul(rs)
                .and_then(|r| (cols - 1).checked_mul(cs).and_then(|c| r.checked_add(c)));
            match last {
                Some(last) if last < len => {}
                _ => {
                    return Err(err(format!(
                    "{name} ({rows}×{cols}, strides {rs}, {cs}) does not fit its buffer of {len}"
                )))
                }
            }
        }
        // c must not alias itself: one of its two axes must step over the whole other axis.
        let (rsc, csc) = (s[4], s[5]);
        let distinct = m <= 1 && (n <= 1 || csc > 0)
            || n <= 1 && (m <= 1 || rsc > 0)
            || (csc > 0 && n.checked_mul(csc).is_some_and(|w| rsc >= w))
            || (rsc > 0 && m.checked_mul(rsc).is_some_and(|h| csc >= h));
        if !distinct {
            return Err(err(format!(
                "c strides ({rsc}, {csc}) make its elements alias"
            )));
        }
        let mut out = [0isize; 6];
        for (o, &v) in out.iter_mut().zip(&s) {
            *o = isize::try_from(v).map_err(|_| err(format!("stride {v} exceeds isize::MAX")))?;
        }
        Ok(Strides(out))
    }
}
