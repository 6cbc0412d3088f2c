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
//!   kernels).
//!
//! [`DEFAULT_KERNEL`] is what the backend uses; it was picked by the `gemm` criterion bench at the
//! model's shapes (numbers and reasoning in `docs/gemm-choice.md`).

use vars_core::{Error, Result, Shape};

/// A GEMM implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmKernel {
    /// The `matrixmultiply` crate.
    MatrixMultiply,
    /// The `gemm` crate, single-threaded (feature `gemm-crate`).
    #[cfg(feature = "gemm-crate")]
    Gemm,
}

impl GemmKernel {
    /// Every kernel compiled into this build.
    pub const ALL: &'static [GemmKernel] = &[
        GemmKernel::MatrixMultiply,
        #[cfg(feature = "gemm-crate")]
        GemmKernel::Gemm,
    ];

    pub fn name(self) -> &'static str {
        match self {
            GemmKernel::MatrixMultiply => "matrixmultiply",
            #[cfg(feature = "gemm-crate")]
            GemmKernel::Gemm => "gemm",
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
