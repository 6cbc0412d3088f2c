//! Batched matmul against an f64 triple loop.
//!
//! Tolerance: a dot product of length `k` errs by at most `k·u·Σ|a_il·b_lj|` in any summation
//! order (blocked, FMA, pairwise), so each element is checked as
//! `|got − want| ≤ rtol·Σ_l |a_il·b_lj|` with `rtol = 1e-12` (f64) or `1e-5` (f32; ≥ `k·u` for
//! `k ≤ 160`, and `k ≤ 129` here).

use super::util::*;
use crate::{Backend, Result, Tensor};

/// Checks `a.matmul(b)` where `a`/`b` hold the row-major values `av`/`bv` of shapes `ad`/`bd`.
fn check<B: Backend>(
    what: &str,
    a: &Tensor<B>,
    av: &[f64],
    b: &Tensor<B>,
    bv: &[f64],
) -> Result<()> {
    assert_eq!(a.to_vec_f64()?, av, "{what}: lhs view values (test bug)");
    let (dims, want, bound) = reference_matmul(av, a.dims(), bv, b.dims());
    let y = a.matmul(b)?;
    assert_eq!(
        y.dims(),
        dims.as_slice(),
        "{what}: output shape for {:?} x {:?}",
        a.dims(),
        b.dims()
    );
    assert_eq!(y.dtype(), a.dtype());
    assert!(y.is_contiguous());
    let got = y.to_vec_f64()?;
    let rtol = tolerance(a.dtype()).0;
    for i in 0..got.len() {
        let allowed = rtol * bound[i] + 1e-300;
        assert!(
            (got[i] - want[i]).abs() <= allowed,
            "{what}: {:?} x {:?} ({}): element {i} {:?}: got {:e}, expected {:e} (allowed error {allowed:e})",
            a.dims(),
            b.dims(),
            a.dtype(),
            unravel(i, &dims),
            got[i],
            want[i]
        );
    }
    Ok(())
}

/// Plain 2-D products, from 1×1 to sizes that are not multiples of any block size.
pub fn matmul_2d<B: Backend>(dev: &B::Device) -> Result<()> {
    for dt in FLOAT_DTYPES {
        for (s, (m, k, n)) in [
            (1, 1, 1),
            (2, 3, 4),
            (5, 7, 3),
            (1, 9, 1),
            (8, 1, 6),
            (17, 33, 9),
            (64, 64, 64),
            (67, 129, 33),
        ]
        .into_iter()
        .enumerate()
        {
            let (a, av) = random_tensor::<B>(&[m, k], dt, 10 + s as u64, -1.0, 1.0, dev)?;
            let (b, bv) = random_tensor::<B>(&[k, n], dt, 20 + s as u64, -1.0, 1.0, dev)?;
            check("2-D", &a, &av, &b, &bv)?;
        }
    }
    Ok(())
}

/// Equal batch dims, rank 3 and 4.
pub fn matmul_batched<B: Backend>(dev: &B::Device) -> Result<()> {
    for dt in FLOAT_DTYPES {
        for (s, (ad, bd)) in [
            (vec![3, 4, 5], vec![3, 5, 2]),
            (vec![2, 3, 4, 5], vec![2, 3, 5, 6]),
            (vec![1, 6, 7], vec![1, 7, 3]),
        ]
        .into_iter()
        .enumerate()
        {
            let (a, av) = random_tensor::<B>(&ad, dt, 30 + s as u64, -1.0, 1.0, dev)?;
            let (b, bv) = random_tensor::<B>(&bd, dt, 40 + s as u64, -1.0, 1.0, dev)?;
            check("batched", &a, &av, &b, &bv)?;
        }
    }
    Ok(())
}

/// Batch dims broadcast like elementwise ops (size-1 and missing leading dims, either side).
pub fn matmul_broadcast_batch<B: Backend>(dev: &B::Device) -> Result<()> {
    let cases: [(&[usize], &[usize]); 5] = [
        (&[2, 1, 3, 4], &[5, 4, 2]),
        (&[3, 4], &[2, 4, 5]),
        (&[2, 3, 4], &[4, 5]),
        (&[1, 3, 4], &[2, 4, 5]),
        (&[2, 1, 3, 4], &[1, 3, 4, 2]),
    ];
    for dt in FLOAT_DTYPES {
        for (s, (ad, bd)) in cases.iter().enumerate() {
            let (a, av) = random_tensor::<B>(ad, dt, 50 + s as u64, -1.0, 1.0, dev)?;
            let (b, bv) = random_tensor::<B>(bd, dt, 60 + s as u64, -1.0, 1.0, dev)?;
            check("broadcast batch", &a, &av, &b, &bv)?;
            check(
                "broadcast batch, swapped roles",
                &b.t()?,
                &reference_t(&bv, bd),
                &a.t()?,
                &reference_t(&av, ad),
            )?;
        }
    }
    Ok(())
}

/// Row-major values of the last-two-dims transpose.
fn reference_t(v: &[f64], dims: &[usize]) -> Vec<f64> {
    let r = dims.len();
    let mut perm: Vec<usize> = (0..r).collect();
    perm.swap(r - 2, r - 1);
    reference_permute(v, dims, &perm)
}

/// Transposed operands via `.t()` views (passed to the backend as strides), narrowed operands,
/// and permuted batch dims.
pub fn matmul_transposed_views<B: Backend>(dev: &B::Device) -> Result<()> {
    for dt in FLOAT_DTYPES {
        let (m, k, n) = (13, 21, 7);
        let (at, atv) = random_tensor::<B>(&[k, m], dt, 70, -1.0, 1.0, dev)?; // a = at.t()
        let (bt, btv) = random_tensor::<B>(&[n, k], dt, 71, -1.0, 1.0, dev)?; // b = bt.t()
        let (a, av) = random_tensor::<B>(&[m, k], dt, 72, -1.0, 1.0, dev)?;
        let (b, bv) = random_tensor::<B>(&[k, n], dt, 73, -1.0, 1.0, dev)?;
        let a_t = reference_t(&atv, &[k, m]);
        let b_t = reference_t(&btv, &[n, k]);
        check("lhs transposed", &at.t()?, &a_t, &b, &bv)?;
        check("rhs transposed", &a, &av, &bt.t()?, &b_t)?;
        check("both transposed", &at.t()?, &a_t, &bt.t()?, &b_t)?;
        check("a · aᵀ", &a, &av, &a.t()?, &reference_t(&av, &[m, k]))?;
        // Narrowed operands (row and column offsets, non-unit row stride).
        let an = a.narrow(1, 3, 10)?.narrow(0, 2, 9)?;
        let anv = reference_narrow(&reference_narrow(&av, &[m, k], 1, 3, 10), &[m, 10], 0, 2, 9);
        let bn = b.narrow(0, 5, 10)?.narrow(1, 1, 5)?;
        let bnv = reference_narrow(&reference_narrow(&bv, &[k, n], 0, 5, 10), &[10, n], 1, 1, 5);
        check("narrowed", &an, &anv, &bn, &bnv)?;
        check(
            "narrowed transposed",
            &bn.t()?,
            &reference_t(&bnv, &[10, 5]),
            &an.t()?,
            &reference_t(&anv, &[9, 10]),
        )?;
        // Batched with transposes and a permuted batch dim: [k, B, m] -> [B, m, k].
        let (p, pv) = random_tensor::<B>(&[k, 3, m], dt, 74, -1.0, 1.0, dev)?;
        let pa = p.permute(&[1, 2, 0])?;
        let pav = reference_permute(&pv, &[k, 3, m], &[1, 2, 0]);
        let (q, qv) = random_tensor::<B>(&[3, n, k], dt, 75, -1.0, 1.0, dev)?;
        check(
            "batched permuted x transposed",
            &pa,
            &pav,
            &q.t()?,
            &reference_t(&qv, &[3, n, k]),
        )?;
        // A stride-0 (broadcast) operand that is not a batch dim: every row the same.
        let (row, rv) = random_tensor::<B>(&[1, k], dt, 76, -1.0, 1.0, dev)?;
        let rows = row.broadcast_as([m, k])?;
        let rowsv: Vec<f64> = (0..m).flat_map(|_| rv.iter().copied()).collect();
        check("broadcast rows", &rows, &rowsv, &b, &bv)?;
    }
    Ok(())
}

/// Degenerate sizes: inner dim 0 gives zeros, empty outer dims give empty results; exact
/// small-integer products.
pub fn matmul_degenerate<B: Backend>(dev: &B::Device) -> Result<()> {
    for dt in FLOAT_DTYPES {
        let a = Tensor::<B>::zeros([2, 0], dt, dev)?;
        let b = Tensor::<B>::zeros([0, 3], dt, dev)?;
        assert_tensor_eq("k = 0", &a.matmul(&b)?, &[2, 3], &[0.0; 6])?;
        let c = Tensor::<B>::ones([0, 4], dt, dev)?;
        let d = Tensor::<B>::ones([4, 5], dt, dev)?;
        let y = c.matmul(&d)?;
        assert_eq!(y.dims(), &[0, 5]);
        assert_eq!(y.elem_count(), 0);
        // Exact small-integer products.
        let e = tensor::<B>(&[1.0, 2.0, 3.0, 4.0], [2, 2], dt, dev)?;
        assert_tensor_eq(
            "integer-valued",
            &e.matmul(&e)?,
            &[2, 2],
            &[7.0, 10.0, 15.0, 22.0],
        )?;
        let id = Tensor::<B>::eye(2, dt, dev)?;
        assert_tensor_eq("identity", &e.matmul(&id)?, &[2, 2], &[1.0, 2.0, 3.0, 4.0])?;
    }
    Ok(())
}
