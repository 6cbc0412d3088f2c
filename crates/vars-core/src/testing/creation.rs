//! Creation: constants, host data, ranges, and the seeded random draws.

use super::util::*;
use crate::{rng, Backend, DType, Distribution, HostData, Result, Tensor};

/// `zeros`/`ones`/`full`/`scalar`/`*_like` in every dtype, including rank 0 and empty shapes.
pub fn full_zeros_ones<B: Backend>(dev: &B::Device) -> Result<()> {
    for dt in ALL_DTYPES {
        let z = Tensor::<B>::zeros([2, 3], dt, dev)?;
        assert_eq!(z.dtype(), dt);
        assert_eq!(z.device(), dev);
        assert!(z.is_contiguous());
        assert_tensor_eq("zeros", &z, &[2, 3], &[0.0; 6])?;
        assert_tensor_eq("ones", &Tensor::<B>::ones([4], dt, dev)?, &[4], &[1.0; 4])?;
        assert_tensor_eq(
            "full",
            &Tensor::<B>::full([3, 1, 2], 7.0, dt, dev)?,
            &[3, 1, 2],
            &[7.0; 6],
        )?;
        if dt.is_float() {
            assert_tensor_eq(
                "full(-2.5)",
                &Tensor::<B>::full([2], -2.5, dt, dev)?,
                &[2],
                &[-2.5; 2],
            )?;
        }
        let s = Tensor::<B>::scalar(3.0, dt, dev)?;
        assert_eq!(s.rank(), 0);
        assert_eq!(s.elem_count(), 1);
        assert_eq!(s.to_vec_f64()?, vec![3.0]);
        let like = Tensor::<B>::full([2, 2], 5.0, dt, dev)?;
        assert_tensor_eq("zeros_like", &like.zeros_like()?, &[2, 2], &[0.0; 4])?;
        assert_tensor_eq("ones_like", &like.ones_like()?, &[2, 2], &[1.0; 4])?;
        assert_tensor_eq("full_like", &like.full_like(-1.0)?, &[2, 2], &[-1.0; 4])?;
        assert_eq!(like.full_like(-1.0)?.dtype(), dt);
        // Empty tensors are legal and have no elements.
        let e = Tensor::<B>::zeros([0, 3], dt, dev)?;
        assert_eq!(e.elem_count(), 0);
        assert!(e.to_vec_f64()?.is_empty());
    }
    Ok(())
}

/// `from_vec`/`from_slice`/`from_host` → `to_vec`/`to_host`/`to_scalar` are bit-exact in every
/// dtype, special values included.
pub fn from_vec_roundtrip<B: Backend>(dev: &B::Device) -> Result<()> {
    let f64s = vec![
        0.0,
        -0.0,
        1.5,
        -1e-300,
        f64::MAX,
        f64::MIN_POSITIVE,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1.0 / 3.0,
    ];
    let t = Tensor::<B>::from_vec(f64s.clone(), [3, 3], dev)?;
    assert_eq!(t.dtype(), DType::F64);
    assert_eq!(t.dims(), &[3, 3]);
    assert_bits_eq("f64 round trip", &t.to_vec::<f64>()?, &f64s);
    assert_eq!(t.to_host()?, HostData::F64(f64s.clone()));

    let f32s: Vec<f32> = vec![
        0.0,
        -0.0,
        1.5,
        f32::MAX,
        f32::MIN_POSITIVE,
        -1e-40,
        f32::INFINITY,
        1.0 / 3.0,
    ];
    let t = Tensor::<B>::from_slice(&f32s, [2, 4], dev)?;
    assert_eq!(t.dtype(), DType::F32);
    let back = t.to_vec::<f32>()?;
    assert!(
        back.iter()
            .zip(&f32s)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "f32 round trip: {back:?}"
    );

    let i64s = vec![0i64, -1, i64::MAX, i64::MIN, 1 << 53, (1 << 53) + 1];
    let t = Tensor::<B>::from_host(HostData::I64(i64s.clone()), [6], dev)?;
    assert_eq!(t.dtype(), DType::I64);
    assert_eq!(t.to_vec::<i64>()?, i64s);

    let nan = Tensor::<B>::from_vec(vec![f64::NAN], (), dev)?;
    assert!(nan.to_scalar::<f64>()?.is_nan());
    assert_eq!(
        Tensor::<B>::from_vec(vec![4i64], [1, 1], dev)?.to_scalar::<i64>()?,
        4
    );
    Ok(())
}

/// `arange` and `eye` in every dtype.
pub fn arange_eye<B: Backend>(dev: &B::Device) -> Result<()> {
    for dt in ALL_DTYPES {
        let a = Tensor::<B>::arange(5, dt, dev)?;
        assert_eq!(a.dtype(), dt);
        assert_tensor_eq("arange", &a, &[5], &[0.0, 1.0, 2.0, 3.0, 4.0])?;
        assert_eq!(Tensor::<B>::arange(0, dt, dev)?.elem_count(), 0);
        let e = Tensor::<B>::eye(3, dt, dev)?;
        assert_eq!(e.dtype(), dt);
        assert_tensor_eq(
            "eye",
            &e,
            &[3, 3],
            &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        )?;
    }
    Ok(())
}

/// The random draws follow [`crate::rng`] exactly: element `i` is a pure function of
/// `(seed, i)`, the same on every backend and thread count.
pub fn random_matches_rng<B: Backend>(dev: &B::Device) -> Result<()> {
    let n = 1000;
    let a = Tensor::<B>::randn([n], DType::F64, 42, dev)?.to_vec::<f64>()?;
    let b = Tensor::<B>::randn([n], DType::F64, 42, dev)?.to_vec::<f64>()?;
    assert_bits_eq("randn twice with one seed", &a, &b);
    let other = Tensor::<B>::randn([n], DType::F64, 43, dev)?.to_vec::<f64>()?;
    assert!(
        a.iter().zip(&other).filter(|(x, y)| x == y).count() < 3,
        "seeds 42 and 43 give the same draw"
    );
    // The documented generator (standard normal: mean 0 + std 1 · z is exact). Box–Muller goes
    // through ln, sqrt and cos, whose last-bit rounding differs between libm and a GPU's math
    // library (CUDA's libdevice: ≤ 1–2 ulp each), so backends agree to a few ulp, not bits.
    let want: Vec<f64> = (0..n as u64).map(|i| rng::normal(42, i)).collect();
    assert_ulps_close("randn vs rng::normal", &a, &want, 8);
    // Counter-based: the shape does not matter, a shorter draw is a prefix.
    let shaped = Tensor::<B>::randn([10, 100], DType::F64, 42, dev)?.to_vec::<f64>()?;
    assert_bits_eq("randn [10, 100] vs [1000]", &shaped, &a);
    let short = Tensor::<B>::randn([7], DType::F64, 42, dev)?.to_vec::<f64>()?;
    assert_bits_eq("randn prefix", &short, &a[..7]);
    // f32: this backend's f64 sample rounded once (so within 1 f32 ulp of rng::normal's).
    let a32 = Tensor::<B>::randn([n], DType::F32, 42, dev)?.to_vec::<f32>()?;
    assert!(
        a32.iter()
            .zip(&a)
            .all(|(x, w)| x.to_bits() == (*w as f32).to_bits()),
        "randn f32 is not the backend's f64 sample rounded to f32"
    );
    // Uniform [0, 1): exactly rng::uniform.
    let u = Tensor::<B>::rand_uniform([n], 0.0, 1.0, DType::F64, 7, dev)?.to_vec::<f64>()?;
    let want_u: Vec<f64> = (0..n as u64).map(|i| rng::uniform(7, i)).collect();
    assert_bits_eq("rand_uniform vs rng::uniform", &u, &want_u);
    // General parameters: `low + (high − low)·u` and `mean + std·z`; a backend may fuse the
    // multiply-add (one rounding instead of two), so allow 4 ulp (rtol 1e-15).
    for dist in [
        Distribution::Uniform {
            low: -2.0,
            high: 3.0,
        },
        Distribution::Normal {
            mean: 2.0,
            std: 0.5,
        },
    ] {
        let got = Tensor::<B>::random([n], dist, DType::F64, 9, dev)?.to_vec::<f64>()?;
        let want: Vec<f64> = (0..n as u64).map(|i| rng::sample(dist, 9, i)).collect();
        assert_close(&format!("random {dist:?}"), &got, &want, 1e-15, 1e-15);
    }
    Ok(())
}

/// Sample moments of large draws, in both float dtypes.
///
/// Tolerances are 6 standard errors of the estimator for `N = 200 000` i.i.d. samples, so a
/// correct generator fails with probability < 1e-8 (and seeds are fixed, so the outcome is
/// deterministic anyway), while a wrong scale/shift/shape (e.g. Box–Muller without the √2, a
/// variance of 1.05, uniform on the wrong interval) is far outside:
/// - mean: SE = σ/√N (normal: 0.0022; uniform on [−2, 3): 1.44/√N = 0.0032);
/// - variance: SE = √((μ₄ − σ⁴)/N) (normal: σ²·√(2/N) = 0.0032; uniform: (b−a)²·√(1/80 − 1/144)/√N = 0.0042);
/// - normal, P(|z| < 1) = 0.682689: SE = √(p(1−p)/N) = 0.0010;
/// - normal, kurtosis 3: SE ≈ √(24/N) = 0.011.
pub fn random_moments<B: Backend>(dev: &B::Device) -> Result<()> {
    let n = 200_000;
    let nf = n as f64;
    for dt in FLOAT_DTYPES {
        let z = Tensor::<B>::randn([n], dt, 1234, dev)?.to_vec_f64()?;
        let mean = z.iter().sum::<f64>() / nf;
        let var = z.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / nf;
        let kurt = z.iter().map(|x| (x - mean).powi(4)).sum::<f64>() / nf / (var * var);
        let within = z.iter().filter(|x| x.abs() < 1.0).count() as f64 / nf;
        assert!(
            mean.abs() < 6.0 * (1.0 / nf).sqrt(),
            "{dt} randn mean {mean}"
        );
        assert!(
            (var - 1.0).abs() < 6.0 * (2.0 / nf).sqrt(),
            "{dt} randn variance {var}"
        );
        assert!(
            (kurt - 3.0).abs() < 6.0 * (24.0 / nf).sqrt(),
            "{dt} randn kurtosis {kurt}"
        );
        let p = 0.682_689_492_137_086;
        assert!(
            (within - p).abs() < 6.0 * (p * (1.0 - p) / nf).sqrt(),
            "{dt} randn P(|z|<1) = {within}"
        );

        let (lo, hi) = (-2.0, 3.0);
        let u = Tensor::<B>::rand_uniform([n], lo, hi, dt, 99, dev)?.to_vec_f64()?;
        let mean = u.iter().sum::<f64>() / nf;
        let var = u.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / nf;
        let w: f64 = hi - lo;
        assert!(
            (mean - 0.5).abs() < 6.0 * (w * w / 12.0 / nf).sqrt(),
            "{dt} uniform mean {mean}"
        );
        let se_var = w * w * (1.0 / 80.0 - 1.0 / 144.0f64).sqrt() / nf.sqrt();
        assert!(
            (var - w * w / 12.0).abs() < 6.0 * se_var,
            "{dt} uniform variance {var}"
        );
        // [low, high): f64 never reaches `high`; f32 rounding may land on it.
        let (min, max) = u
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        assert!(
            min >= lo && (max < hi || (dt == DType::F32 && max <= hi)),
            "{dt} uniform range [{min}, {max}]"
        );
        // Roughly uniform: each of 10 bins holds 10% ± 6 SE (SE = √(0.09/N) = 0.00067).
        let mut bins = [0usize; 10];
        for &x in &u {
            bins[(((x - lo) / w * 10.0) as usize).min(9)] += 1;
        }
        for (i, &c) in bins.iter().enumerate() {
            let frac = c as f64 / nf;
            assert!(
                (frac - 0.1).abs() < 6.0 * (0.09 / nf).sqrt(),
                "{dt} uniform bin {i} holds {frac}"
            );
        }
    }
    Ok(())
}
