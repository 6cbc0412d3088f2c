//! Property tests (proptest) of layout and arithmetic invariants on random shapes.
//!
//! Each property runs [`CASES`] cases from a fixed-seed generator (ChaCha, deterministic), so the
//! suite is reproducible and fast; a failure is shrunk to a minimal shape and reported.

use super::util::*;
use crate::{Backend, DType, Result, Tensor};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use std::fmt::Debug;

/// Cases per property (modest, so the suite stays fast at opt-level 2).
pub const CASES: u32 = 32;

type CaseResult = std::result::Result<(), TestCaseError>;

fn tc<T>(r: Result<T>) -> std::result::Result<T, TestCaseError> {
    r.map_err(|e| TestCaseError::fail(e.to_string()))
}

/// Runs `test` on [`CASES`] values of `strategy` with a deterministic generator; panics with the
/// (shrunk) failing input.
fn check<S: Strategy>(name: &str, strategy: S, test: impl Fn(S::Value) -> CaseResult)
where
    S::Value: Debug,
{
    let config = Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    if let Err(e) = runner.run(&strategy, test) {
        panic!("property `{name}` failed: {e}");
    }
}

/// A shape of rank `1..=max_rank` with dims in `1..=max_dim`, and a permutation of its dims.
fn shape_and_perm(
    max_rank: usize,
    max_dim: usize,
) -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    (1..=max_rank).prop_flat_map(move |r| {
        (
            proptest::collection::vec(1..=max_dim, r),
            Just((0..r).collect::<Vec<_>>()).prop_shuffle(),
        )
    })
}

fn inverse(perm: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    inv
}

/// `x.permute(p).permute(p⁻¹)` is `x` (as a view), and so is the same through a contiguous copy.
pub fn permute_inverse_is_identity<B: Backend>(dev: &B::Device) -> Result<()> {
    check("permute inverse", shape_and_perm(5, 4), |(dims, perm)| {
        let x = tc(iota::<B>(&dims, dev))?;
        let n = x.elem_count();
        let want: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let inv = inverse(&perm);
        let y = tc(x.permute(&perm).and_then(|p| p.permute(&inv)))?;
        prop_assert_eq!(y.dims(), x.dims());
        prop_assert!(shares_storage(&x, &y));
        prop_assert_eq!(tc(y.to_vec::<f64>())?, want.clone());
        let z = tc(x
            .permute(&perm)
            .and_then(|p| p.contiguous())
            .and_then(|c| c.permute(&inv)))?;
        prop_assert_eq!(tc(z.to_vec::<f64>())?, want);
        Ok(())
    });
    Ok(())
}

/// Broadcasting `add`/`sub`/`mul` equal explicit loops over the broadcast index (exactly: one
/// rounding each way).
pub fn broadcast_add_matches_loops<B: Backend>(dev: &B::Device) -> Result<()> {
    let strategy = (1usize..=4).prop_flat_map(|r| {
        (
            proptest::collection::vec(1usize..=4, r),
            proptest::collection::vec(any::<bool>(), r),
            proptest::collection::vec(any::<bool>(), r),
            0..=r,
            0..=r,
            any::<u64>(),
        )
    });
    check(
        "broadcast arithmetic",
        strategy,
        |(out, ma, mb, da, db, seed)| {
            let shape_of = |mask: &[bool], drop: usize| -> Vec<usize> {
                out.iter()
                    .zip(mask)
                    .skip(drop)
                    .map(|(&d, &m)| if m { 1 } else { d })
                    .collect()
            };
            let (ad, bd) = (shape_of(&ma, da), shape_of(&mb, db));
            let (a, av) = tc(random_tensor::<B>(&ad, DType::F64, seed, -3.0, 3.0, dev))?;
            let (b, bv) = tc(random_tensor::<B>(
                &bd,
                DType::F64,
                seed ^ 1,
                -3.0,
                3.0,
                dev,
            ))?;
            let want_dims = crate::Shape::new(ad.clone())
                .broadcast_with("test", &crate::Shape::new(bd.clone()))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            type Op = fn(f64, f64) -> f64;
            let ops: [(&str, Op); 3] = [
                ("add", |x, y| x + y),
                ("sub", |x, y| x - y),
                ("mul", |x, y| x * y),
            ];
            for (name, r) in ops {
                let y = tc(match name {
                    "add" => a.add(&b),
                    "sub" => a.sub(&b),
                    _ => a.mul(&b),
                })?;
                prop_assert_eq!(y.dims(), want_dims.dims());
                let want: Vec<f64> = (0..want_dims.elem_count())
                    .map(|f| {
                        let i = unravel(f, want_dims.dims());
                        r(
                            av[broadcast_source_index(&i, &ad)],
                            bv[broadcast_source_index(&i, &bd)],
                        )
                    })
                    .collect();
                prop_assert_eq!(tc(y.to_vec::<f64>())?, want, "{} {:?} x {:?}", name, ad, bd);
            }
            Ok(())
        },
    );
    Ok(())
}

/// `sum_all` of any (permuted, possibly empty) tensor equals the host sum of `to_vec`, and
/// summing axis by axis agrees.
pub fn sum_all_matches_host_sum<B: Backend>(dev: &B::Device) -> Result<()> {
    let strategy = (0usize..=4).prop_flat_map(|r| {
        (
            proptest::collection::vec(0usize..=5, r),
            Just((0..r).collect::<Vec<_>>()).prop_shuffle(),
            any::<u64>(),
        )
    });
    check("sum_all", strategy, |(dims, perm, seed)| {
        let (x, _) = tc(random_tensor::<B>(&dims, DType::F64, seed, -2.0, 2.0, dev))?;
        let v = tc(x.permute(&perm))?;
        let host = tc(v.to_vec::<f64>())?;
        let want: f64 = host.iter().sum();
        let abs: f64 = host.iter().map(|x| x.abs()).sum();
        let got = tc(v.sum_all().and_then(|s| s.to_scalar::<f64>()))?;
        // Any summation order: |error| ≤ n·u·Σ|x| (1e-12·Σ|x| covers n ≤ 9000).
        prop_assert!(
            (got - want).abs() <= 1e-12 * abs,
            "sum_all {} vs host {}",
            got,
            want
        );
        let mut s = v.clone();
        while s.rank() > 0 {
            s = tc(s.sum(&[s.rank() - 1], false))?;
        }
        let got2 = tc(s.to_scalar::<f64>())?;
        prop_assert!(
            (got2 - want).abs() <= 1e-12 * abs,
            "axis-by-axis {} vs host {}",
            got2,
            want
        );
        Ok(())
    });
    Ok(())
}

/// `(A·B)·C ≈ A·(B·C)` on small random shapes (with an optional batch dim).
pub fn matmul_associative<B: Backend>(dev: &B::Device) -> Result<()> {
    let strategy = (
        proptest::collection::vec(1usize..=8, 4),
        0usize..=3,
        any::<u64>(),
    );
    check("matmul associativity", strategy, |(mk, batch, seed)| {
        let (m, k, l, n) = (mk[0], mk[1], mk[2], mk[3]);
        let pre: Vec<usize> = if batch > 0 { vec![batch] } else { vec![] };
        let with = |a: usize, b: usize| -> Vec<usize> {
            let mut d = pre.clone();
            d.extend([a, b]);
            d
        };
        let (a, _) = tc(random_tensor::<B>(
            &with(m, k),
            DType::F64,
            seed,
            -1.0,
            1.0,
            dev,
        ))?;
        let (b, _) = tc(random_tensor::<B>(
            &[k, l],
            DType::F64,
            seed ^ 2,
            -1.0,
            1.0,
            dev,
        ))?; // broadcast batch
        let (c, _) = tc(random_tensor::<B>(
            &with(l, n),
            DType::F64,
            seed ^ 3,
            -1.0,
            1.0,
            dev,
        ))?;
        let left = tc(a.matmul(&b).and_then(|ab| ab.matmul(&c)))?;
        let right = tc(b.matmul(&c).and_then(|bc| a.matmul(&bc)))?;
        let want_dims = with(m, n);
        prop_assert_eq!(left.dims(), want_dims.as_slice());
        prop_assert_eq!(right.dims(), left.dims());
        // |entries| ≤ 1, so each result is a sum of k·l products bounded by 1: error ≤ 2(k+l)·u·k·l.
        let tol = 1e-13 * (k * l) as f64;
        let (lv, rv) = (tc(left.to_vec::<f64>())?, tc(right.to_vec::<f64>())?);
        for (i, (x, y)) in lv.iter().zip(&rv).enumerate() {
            prop_assert!((x - y).abs() <= tol, "element {}: {} vs {}", i, x, y);
        }
        Ok(())
    });
    Ok(())
}

/// `cat(chunk(x, c, d), d)` is `x`; so is `cat` of `narrow`s of a permuted view.
pub fn chunk_cat_round_trip<B: Backend>(dev: &B::Device) -> Result<()> {
    let strategy = shape_and_perm(4, 6).prop_flat_map(|(dims, perm)| {
        let r = dims.len();
        (Just(dims), Just(perm), 0..r, 1usize..=5)
    });
    check(
        "chunk/cat round trip",
        strategy,
        |(dims, perm, dim, chunks)| {
            let x = tc(iota::<B>(&dims, dev))?;
            let v = tc(x.permute(&perm))?;
            let want = tc(v.to_vec::<f64>())?;
            let parts = tc(v.chunk(chunks, dim))?;
            prop_assert!(parts.len() <= chunks);
            let refs: Vec<&Tensor<B>> = parts.iter().collect();
            let y = tc(Tensor::cat(&refs, dim))?;
            prop_assert_eq!(y.dims(), v.dims());
            prop_assert_eq!(tc(y.to_vec::<f64>())?, want);
            Ok(())
        },
    );
    Ok(())
}

/// Flattening a permuted view and reshaping back reproduces the view's values.
pub fn reshape_round_trip<B: Backend>(dev: &B::Device) -> Result<()> {
    check(
        "reshape round trip",
        shape_and_perm(4, 5),
        |(dims, perm)| {
            let x = tc(iota::<B>(&dims, dev))?;
            let v = tc(x.permute(&perm))?;
            let n = v.elem_count();
            let want =
                reference_permute(&(0..n).map(|i| i as f64).collect::<Vec<_>>(), &dims, &perm);
            let flat = tc(v.reshape([n]))?;
            prop_assert_eq!(tc(flat.to_vec::<f64>())?, want.clone());
            let back = tc(flat.reshape(v.dims().to_vec()))?;
            prop_assert_eq!(back.dims(), v.dims());
            prop_assert_eq!(tc(back.to_vec::<f64>())?, want);
            Ok(())
        },
    );
    Ok(())
}
