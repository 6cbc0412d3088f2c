//! Row kernels along the last dim: the fused softmax / log-softmax and layer-norm normalisation
//! hooks of `vars_core::Backend` (`softmax_last_dim`, `layer_norm_last_dim` and their
//! backwards), used by `vars_core::nn::{softmax, log_softmax, layer_norm}`.
//!
//! Each row is read once into f64, reduced in f64 in index order (deterministic, independent of
//! the thread count: rows are the unit of parallelism) and written rounded once, so f32 results
//! are at least as accurate as the composite of tensor ops they replace. Non-contiguous views are
//! gathered into a contiguous buffer first.

use rayon::prelude::*;
use vars_core::{Error, Layout, Result};

use crate::copy::copy_strided;
use crate::scalar::Float;
use crate::storage::{Buf, CpuStorage};
use crate::strided::{check_same_shape, check_view};

/// Rows per parallel task below which the work stays on the calling thread.
const PAR_ELEMS: usize = 1 << 14;

fn contiguous(op: &'static str, s: &CpuStorage, l: &Layout) -> Result<CpuStorage> {
    check_view(op, s.len(), l)?;
    copy_strided(s, l)
}

fn row_len(op: &'static str, l: &Layout) -> Result<usize> {
    match l.dims().last() {
        Some(&n) if n > 0 => Ok(n),
        _ => Err(Error::InvalidArgument {
            op,
            shape: l.shape().clone(),
            msg: "needs rank >= 1 and a non-empty last dim".into(),
        }),
    }
}

/// Applies `f(input rows…, output row)` to every row, in parallel for large inputs.
fn for_rows<T: Float>(n: usize, out: &mut [T], f: impl Fn(usize, &mut [T]) + Sync) {
    if out.len() < PAR_ELEMS {
        out.chunks_mut(n).enumerate().for_each(|(r, o)| f(r, o));
    } else {
        out.par_chunks_mut(n).enumerate().for_each(|(r, o)| f(r, o));
    }
}

fn softmax_rows<T: Float>(x: &[T], n: usize, log: bool) -> Vec<T> {
    let mut out = vec![T::ZERO; x.len()];
    for_rows(n, &mut out, |r, o| {
        let row = &x[r * n..(r + 1) * n];
        let mut m = f64::NEG_INFINITY;
        for &v in row {
            let v = v.to_f64();
            if v.is_nan() || v > m {
                m = if m.is_nan() { m } else { v };
            }
        }
        let sum: f64 = row.iter().map(|&v| (v.to_f64() - m).exp()).sum();
        if log {
            let ls = sum.ln();
            for (o, &v) in o.iter_mut().zip(row) {
                *o = T::from_f64(v.to_f64() - m - ls);
            }
        } else {
            for (o, &v) in o.iter_mut().zip(row) {
                *o = T::from_f64((v.to_f64() - m).exp() / sum);
            }
        }
    });
    out
}

fn softmax_backward_rows<T: Float>(y: &[T], g: &[T], n: usize, log: bool) -> Vec<T> {
    let mut out = vec![T::ZERO; y.len()];
    for_rows(n, &mut out, |r, o| {
        let (yr, gr) = (&y[r * n..(r + 1) * n], &g[r * n..(r + 1) * n]);
        if log {
            let sg: f64 = gr.iter().map(|v| v.to_f64()).sum();
            for ((o, &yv), &gv) in o.iter_mut().zip(yr).zip(gr) {
                *o = T::from_f64(gv.to_f64() - yv.to_f64().exp() * sg);
            }
        } else {
            let dot: f64 = yr
                .iter()
                .zip(gr)
                .map(|(a, b)| a.to_f64() * b.to_f64())
                .sum();
            for ((o, &yv), &gv) in o.iter_mut().zip(yr).zip(gr) {
                *o = T::from_f64(yv.to_f64() * (gv.to_f64() - dot));
            }
        }
    });
    out
}

fn layer_norm_rows<T: Float>(x: &[T], n: usize, eps: f64) -> (Vec<T>, Vec<T>) {
    let rows = x.len() / n;
    // (mean, sqrt(var + eps)) per row.
    let stat = |r: usize| -> (f64, f64) {
        let row = &x[r * n..(r + 1) * n];
        let mean = row.iter().map(|v| v.to_f64()).sum::<f64>() / n as f64;
        let var = row.iter().map(|v| (v.to_f64() - mean).powi(2)).sum::<f64>() / n as f64;
        (mean, (var + eps).sqrt())
    };
    let stats: Vec<(f64, f64)> = if x.len() < PAR_ELEMS {
        (0..rows).map(stat).collect()
    } else {
        (0..rows).into_par_iter().map(stat).collect()
    };
    let mut out = vec![T::ZERO; x.len()];
    for_rows(n, &mut out, |r, o| {
        let (mean, std) = stats[r];
        for (o, &v) in o.iter_mut().zip(&x[r * n..(r + 1) * n]) {
            *o = T::from_f64((v.to_f64() - mean) / std);
        }
    });
    let rstd = stats.iter().map(|&(_, s)| T::from_f64(1.0 / s)).collect();
    (out, rstd)
}

fn layer_norm_backward_rows<T: Float>(xhat: &[T], rstd: &[T], g: &[T], n: usize) -> Vec<T> {
    let mut out = vec![T::ZERO; xhat.len()];
    for_rows(n, &mut out, |r, o| {
        let (xr, gr) = (&xhat[r * n..(r + 1) * n], &g[r * n..(r + 1) * n]);
        let mg = gr.iter().map(|v| v.to_f64()).sum::<f64>() / n as f64;
        let mgx = xr
            .iter()
            .zip(gr)
            .map(|(a, b)| a.to_f64() * b.to_f64())
            .sum::<f64>()
            / n as f64;
        let rs = rstd[r].to_f64();
        for ((o, &xv), &gv) in o.iter_mut().zip(xr).zip(gr) {
            *o = T::from_f64(rs * (gv.to_f64() - mg - xv.to_f64() * mgx));
        }
    });
    out
}

fn float_only(op: &'static str, s: &CpuStorage) -> Error {
    Error::UnsupportedDType {
        op,
        dtype: s.dtype(),
        supported: "f32, f64",
    }
}

pub(crate) fn softmax_last_dim(s: &CpuStorage, l: &Layout, log: bool) -> Result<CpuStorage> {
    let op = if log { "log_softmax" } else { "softmax" };
    let n = row_len(op, l)?;
    let x = contiguous(op, s, l)?;
    Ok(match x.buf() {
        Buf::F32(v) => CpuStorage::from_vec_f32(softmax_rows(v, n, log)),
        Buf::F64(v) => CpuStorage::from_vec_f64(softmax_rows(v, n, log)),
        Buf::I64(_) => return Err(float_only(op, s)),
    })
}

pub(crate) fn softmax_last_dim_backward(
    y: &CpuStorage,
    yl: &Layout,
    g: &CpuStorage,
    gl: &Layout,
    log: bool,
) -> Result<CpuStorage> {
    let op = if log {
        "log_softmax_backward"
    } else {
        "softmax_backward"
    };
    check_same_shape(op, &[yl, gl])?;
    let n = row_len(op, yl)?;
    let (y, g) = (contiguous(op, y, yl)?, contiguous(op, g, gl)?);
    Ok(match (y.buf(), g.buf()) {
        (Buf::F32(a), Buf::F32(b)) => CpuStorage::from_vec_f32(softmax_backward_rows(a, b, n, log)),
        (Buf::F64(a), Buf::F64(b)) => CpuStorage::from_vec_f64(softmax_backward_rows(a, b, n, log)),
        _ => return Err(float_only(op, &y)),
    })
}

pub(crate) fn layer_norm_last_dim(
    s: &CpuStorage,
    l: &Layout,
    eps: f64,
) -> Result<(CpuStorage, CpuStorage)> {
    let n = row_len("layer_norm", l)?;
    let x = contiguous("layer_norm", s, l)?;
    Ok(match x.buf() {
        Buf::F32(v) => {
            let (y, r) = layer_norm_rows(v, n, eps);
            (CpuStorage::from_vec_f32(y), CpuStorage::from_vec_f32(r))
        }
        Buf::F64(v) => {
            let (y, r) = layer_norm_rows(v, n, eps);
            (CpuStorage::from_vec_f64(y), CpuStorage::from_vec_f64(r))
        }
        Buf::I64(_) => return Err(float_only("layer_norm", s)),
    })
}

pub(crate) fn layer_norm_last_dim_backward(
    xhat: &CpuStorage,
    xl: &Layout,
    rstd: &CpuStorage,
    rl: &Layout,
    g: &CpuStorage,
    gl: &Layout,
) -> Result<CpuStorage> {
    let op = "layer_norm_backward";
    check_same_shape(op, &[xl, gl])?;
    let n = row_len(op, xl)?;
    if rl.elem_count() * n != xl.elem_count() {
        return Err(Error::InvalidArgument {
            op,
            shape: rl.shape().clone(),
            msg: "rstd must hold one value per row of x̂".into(),
        });
    }
    let (x, r, g) = (
        contiguous(op, xhat, xl)?,
        contiguous(op, rstd, rl)?,
        contiguous(op, g, gl)?,
    );
    Ok(match (x.buf(), r.buf(), g.buf()) {
        (Buf::F32(a), Buf::F32(b), Buf::F32(c)) => {
            CpuStorage::from_vec_f32(layer_norm_backward_rows(a, b, c, n))
        }
        (Buf::F64(a), Buf::F64(b), Buf::F64(c)) => {
            CpuStorage::from_vec_f64(layer_norm_backward_rows(a, b, c, n))
        }
        _ => return Err(float_only(op, &x)),
    })
}
