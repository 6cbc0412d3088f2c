//! Gather/scatter, joins and dtype conversion.

use super::util::*;
use crate::{Backend, DType, Result, Tensor};

fn idx<B: Backend>(v: &[i64], dev: &B::Device) -> Result<Tensor<B>> {
    Tensor::from_vec(v.to_vec(), [v.len()], dev)
}

/// Reference `index_select` along `dim`.
fn reference_select(vals: &[f64], dims: &[usize], dim: usize, ids: &[i64]) -> Vec<f64> {
    let mut od = dims.to_vec();
    od[dim] = ids.len();
    (0..od.iter().product())
        .map(|f| {
            let mut i = unravel(f, &od);
            i[dim] = ids[i[dim]] as usize;
            vals[ravel(&i, dims)]
        })
        .collect()
}

/// `index_select` along every dim, with duplicate and empty index lists, on strided sources, in
/// every dtype.
pub fn index_select<B: Backend>(dev: &B::Device) -> Result<()> {
    for dt in ALL_DTYPES {
        let dims = [4, 5, 6];
        let (x, xv) = random_tensor::<B>(&dims, dt, 1, -9.0, 9.0, dev)?;
        let p = x.permute(&[2, 0, 1])?; // [6, 4, 5]
        let pv = reference_permute(&xv, &dims, &[2, 0, 1]);
        let n = x.narrow(1, 1, 3)?; // [4, 3, 6]
        let nv = reference_narrow(&xv, &dims, 1, 1, 3);
        for (what, t, td, tv) in [
            ("contiguous", &x, vec![4, 5, 6], &xv),
            ("permuted", &p, vec![6, 4, 5], &pv),
            ("narrowed", &n, vec![4, 3, 6], &nv),
        ] {
            for dim in 0..3 {
                let size = td[dim] as i64;
                for ids in [vec![size - 1, 0, size - 1, 1], vec![2 % size], vec![]] {
                    let y = t.index_select(dim, &idx::<B>(&ids, dev)?)?;
                    let mut od = td.clone();
                    od[dim] = ids.len();
                    assert_eq!(y.dtype(), dt);
                    assert_tensor_eq(
                        &format!("index_select {what} ({dt}) dim {dim} {ids:?}"),
                        &y,
                        &od,
                        &reference_select(tv, &td, dim, &ids),
                    )?;
                }
            }
        }
        // Strided index tensor (every other element of a longer list).
        let long = idx::<B>(&[3, 9, 0, 9, 2, 9], dev)?;
        let strided = long.reshape([3, 2])?.t()?.narrow(0, 0, 1)?.squeeze(0)?; // [3, 0, 2]
        assert_tensor_eq(
            "index_select with strided indices",
            &x.index_select(0, &strided)?,
            &[3, 5, 6],
            &reference_select(&xv, &dims, 0, &[3, 0, 2]),
        )?;
    }
    Ok(())
}

/// `index_add_into` (the adjoint of `index_select`): duplicates accumulate, untouched slices
/// stay zero; on strided sources.
pub fn index_add_into<B: Backend>(dev: &B::Device) -> Result<()> {
    for dt in ALL_DTYPES {
        let (src, sv) = random_tensor::<B>(&[4, 3], dt, 2, -9.0, 9.0, dev)?;
        let ids = [2i64, 0, 2, 2];
        let y = src.index_add_into(0, &idx::<B>(&ids, dev)?, 5)?;
        let mut want = vec![0.0; 15];
        for (k, &i) in ids.iter().enumerate() {
            for j in 0..3 {
                want[i as usize * 3 + j] += sv[k * 3 + j];
            }
        }
        let (rtol, atol) = tolerance(dt);
        assert_eq!(y.dtype(), dt);
        assert_tensor(
            &format!("index_add_into dim 0 ({dt})"),
            &y,
            &[5, 3],
            &want,
            rtol,
            atol * 10.0,
        )?;
        // Along dim 1 of a transposed source: src.t() is [3, 4]; indices pick columns.
        let st = src.t()?;
        let stv = reference_permute(&sv, &[4, 3], &[1, 0]);
        let ids = [1i64, 1, 0, 1];
        let y = st.index_add_into(1, &idx::<B>(&ids, dev)?, 2)?;
        let mut want = vec![0.0; 6];
        for r in 0..3 {
            for (k, &i) in ids.iter().enumerate() {
                want[r * 2 + i as usize] += stv[r * 4 + k];
            }
        }
        assert_tensor(
            &format!("index_add_into dim 1 of transposed ({dt})"),
            &y,
            &[3, 2],
            &want,
            rtol,
            atol * 10.0,
        )?;
    }
    Ok(())
}

/// `cat` along every dim of strided inputs, with a zero-size piece and a single input.
pub fn cat<B: Backend>(dev: &B::Device) -> Result<()> {
    for dt in ALL_DTYPES {
        let (a, av) = random_tensor::<B>(&[2, 3, 4], dt, 3, -9.0, 9.0, dev)?;
        let (b0, b0v) = random_tensor::<B>(&[4, 3, 2], dt, 4, -9.0, 9.0, dev)?;
        let b = b0.transpose(0, 2)?; // [2, 3, 4], strided
        let bv = reference_permute(&b0v, &[4, 3, 2], &[2, 1, 0]);
        let dims = [2, 3, 4];
        for dim in 0..3 {
            // Pieces: a (contiguous), b (transposed view), an empty narrow, c (a narrowed view).
            let len = if dim == 0 { 1 } else { 2 };
            let c = a.narrow(dim, 1, len)?;
            let mut cd = dims.to_vec();
            cd[dim] = len;
            let cv = reference_narrow(&av, &dims, dim, 1, len);
            let e = a.narrow(dim, 0, 0)?;
            let y = Tensor::cat(&[&a, &b, &e, &c], dim)?;
            let d = dims[dim];
            let mut od = dims.to_vec();
            od[dim] = 2 * d + len;
            // Reference: by which piece the index along `dim` falls in.
            let want: Vec<f64> = (0..od.iter().product())
                .map(|f| {
                    let mut i = unravel(f, &od);
                    if i[dim] < d {
                        av[ravel(&i, &dims)]
                    } else if i[dim] < 2 * d {
                        i[dim] -= d;
                        bv[ravel(&i, &dims)]
                    } else {
                        i[dim] -= 2 * d;
                        cv[ravel(&i, &cd)]
                    }
                })
                .collect();
            assert_eq!(y.dtype(), dt);
            assert_tensor_eq(&format!("cat dim {dim} ({dt})"), &y, &od, &want)?;
        }
        assert_tensor_eq(
            &format!("cat of one ({dt})"),
            &Tensor::cat(&[&b], 1)?,
            &[2, 3, 4],
            &bv,
        )?;
    }
    Ok(())
}

/// `stack` along a new first, middle and last dim.
pub fn stack<B: Backend>(dev: &B::Device) -> Result<()> {
    let (a, av) = random_tensor::<B>(&[2, 3], DType::F64, 5, -1.0, 1.0, dev)?;
    let (b0, b0v) = random_tensor::<B>(&[3, 2], DType::F64, 6, -1.0, 1.0, dev)?;
    let b = b0.t()?;
    let bv = reference_permute(&b0v, &[3, 2], &[1, 0]);
    for dim in 0..3 {
        let y = Tensor::stack(&[&a, &b, &a], dim)?;
        let mut od = vec![2, 3];
        od.insert(dim, 3);
        let want: Vec<f64> = (0..18)
            .map(|f| {
                let mut i = unravel(f, &od);
                let which = i.remove(dim);
                let src = if which == 1 { &bv } else { &av };
                src[ravel(&i, &[2, 3])]
            })
            .collect();
        assert_tensor_eq(&format!("stack dim {dim}"), &y, &od, &want)?;
    }
    Ok(())
}

/// `pad_into` (the adjoint of `narrow`) places a strided tensor inside zeros.
pub fn pad_into<B: Backend>(dev: &B::Device) -> Result<()> {
    for dt in ALL_DTYPES {
        let (x0, x0v) = random_tensor::<B>(&[3, 2], dt, 7, -9.0, 9.0, dev)?;
        let x = x0.t()?; // [2, 3], strided
        let xv = reference_permute(&x0v, &[3, 2], &[1, 0]);
        let y = x.pad_into(1, 2, 6)?;
        let mut want = vec![0.0; 12];
        for r in 0..2 {
            for c in 0..3 {
                want[r * 6 + 2 + c] = xv[r * 3 + c];
            }
        }
        assert_eq!(y.dtype(), dt);
        assert_tensor_eq(&format!("pad_into dim 1 ({dt})"), &y, &[2, 6], &want)?;
        let y = x.pad_into(0, 0, 2)?;
        assert_tensor_eq(&format!("pad_into full ({dt})"), &y, &[2, 3], &xv)?;
        let y = x.pad_into(0, 1, 4)?;
        let mut want = vec![0.0; 12];
        want[3..9].copy_from_slice(&xv);
        assert_tensor_eq(&format!("pad_into dim 0 ({dt})"), &y, &[4, 3], &want)?;
    }
    Ok(())
}

/// `to_dtype` round trips f32 ↔ f64 ↔ i64: exact where representable, float → int truncates
/// toward zero (like Rust's `as` and `torch.Tensor.to`), on strided views; same dtype is free.
pub fn to_dtype_round_trips<B: Backend>(dev: &B::Device) -> Result<()> {
    // f64 -> f32 rounds to nearest; f32 -> f64 is exact.
    let v = [1.0 / 3.0, -2.5, 1e10, 1e-3, 0.0, -7.0];
    let x = Tensor::<B>::from_vec(v.to_vec(), [2, 3], dev)?;
    let f = x.to_dtype(DType::F32)?;
    assert_eq!(f.dtype(), DType::F32);
    let f_want: Vec<f32> = v.iter().map(|&a| a as f32).collect();
    assert_eq!(f.to_vec::<f32>()?, f_want, "f64 -> f32");
    let back = f.to_dtype(DType::F64)?;
    assert_eq!(
        back.to_vec::<f64>()?,
        f_want.iter().map(|&a| a as f64).collect::<Vec<_>>(),
        "f32 -> f64"
    );
    // f32-representable values survive f64 -> f32 -> f64 bit-exactly.
    let exact = Tensor::<B>::from_vec(
        f_want.iter().map(|&a| a as f64).collect::<Vec<_>>(),
        [6],
        dev,
    )?;
    assert_bits_eq(
        "f64 -> f32 -> f64",
        &exact
            .to_dtype(DType::F32)?
            .to_dtype(DType::F64)?
            .to_vec::<f64>()?,
        &exact.to_vec::<f64>()?,
    );
    // Float -> i64 truncates toward zero.
    let t = Tensor::<B>::from_vec(vec![2.7f64, -2.7, 3.0, -0.5, 1e15, 0.0], [6], dev)?;
    assert_eq!(
        t.to_dtype(DType::I64)?.to_vec::<i64>()?,
        vec![2, -2, 3, 0, 1_000_000_000_000_000, 0]
    );
    let t32 = Tensor::<B>::from_vec(vec![2.7f32, -2.7, 3.0, -0.5, 16777216.0], [5], dev)?;
    assert_eq!(
        t32.to_dtype(DType::I64)?.to_vec::<i64>()?,
        vec![2, -2, 3, 0, 16_777_216]
    );
    // i64 -> floats: exact up to 2^53 (f64) / 2^24 (f32).
    let i = Tensor::<B>::from_vec(vec![-3i64, 0, 1 << 53, 1 << 24, 123_456], [5], dev)?;
    assert_eq!(
        i.to_dtype(DType::F64)?.to_vec::<f64>()?,
        vec![-3.0, 0.0, 9007199254740992.0, 16777216.0, 123456.0]
    );
    assert_eq!(
        i.to_dtype(DType::F32)?.to_vec::<f32>()?,
        vec![-3.0, 0.0, 9007199254740992.0, 16777216.0, 123456.0]
    );
    assert_eq!(
        i.to_dtype(DType::F64)?
            .to_dtype(DType::I64)?
            .to_vec::<i64>()?,
        i.to_vec::<i64>()?
    );
    assert_eq!(
        i.to_dtype(DType::F32)?
            .to_dtype(DType::F64)?
            .to_dtype(DType::I64)?
            .to_vec::<i64>()?,
        i.to_vec::<i64>()?
    );
    // Strided source.
    let s = x.t()?.to_dtype(DType::F32)?;
    assert!(s.is_contiguous());
    let want: Vec<f32> = reference_permute(&v, &[2, 3], &[1, 0])
        .iter()
        .map(|&a| a as f32)
        .collect();
    assert_eq!(s.dims(), &[3, 2]);
    assert_eq!(s.to_vec::<f32>()?, want, "to_dtype of a transposed view");
    let sb = Tensor::<B>::from_vec(vec![5i64], [1], dev)?
        .broadcast_as([2, 2])?
        .to_dtype(DType::F64)?;
    assert_eq!(
        sb.to_vec::<f64>()?,
        vec![5.0; 4],
        "to_dtype of a broadcast view"
    );
    // Same dtype: no copy.
    assert!(shares_storage(&x.to_dtype(DType::F64)?, &x));
    Ok(())
}
