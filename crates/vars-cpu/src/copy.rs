//! Buffer creation and copies: `full`, `random`, `to_host`, `copy_strided`, `copy_into`, `cast`.
//!
//! Gathers use the strided walk of [`crate::strided`] (whole runs are `memcpy`ed when the view's
//! inner stride is 1). `random` evaluates the counter-based generator of [`vars_core::rng`] at
//! each element index, so the output is independent of the thread count and identical on every
//! backend. Casts follow Rust's `as`: float → int truncates toward zero and saturates (NaN → 0).

use vars_core::{rng, DType, Distribution, Error, HostData, Layout, Result};

use crate::storage::{Buf, CpuStorage};
use crate::strided::{check_same_shape, check_view, gather, map1, par_fill, Walk};

pub(crate) fn full(len: usize, dtype: DType, value: f64) -> Result<CpuStorage> {
    Ok(match dtype {
        DType::F32 => CpuStorage::from_vec_f32(vec![value as f32; len]),
        DType::F64 => CpuStorage::from_vec_f64(vec![value; len]),
        DType::I64 => CpuStorage::from_vec_i64(vec![value as i64; len]),
        other => return Err(unsupported("full", other, "f32, f64, i64")),
    })
}

pub(crate) fn random(
    len: usize,
    dtype: DType,
    dist: Distribution,
    seed: u64,
) -> Result<CpuStorage> {
    fn draw<T: Copy + Send + Sync + Default>(
        len: usize,
        dist: Distribution,
        seed: u64,
        conv: impl Fn(f64) -> T + Sync,
    ) -> Vec<T> {
        let mut out = vec![T::default(); len];
        par_fill(&mut out, |start, chunk| {
            for (j, o) in chunk.iter_mut().enumerate() {
                *o = conv(rng::sample(dist, seed, (start + j) as u64));
            }
        });
        out
    }
    Ok(match dtype {
        DType::F32 => CpuStorage::from_vec_f32(draw(len, dist, seed, |v| v as f32)),
        DType::F64 => CpuStorage::from_vec_f64(draw(len, dist, seed, |v| v)),
        other => return Err(unsupported("random", other, "f32, f64")),
    })
}

pub(crate) fn unsupported(op: &'static str, dtype: DType, supported: &'static str) -> Error {
    Error::UnsupportedDType {
        op,
        dtype,
        supported,
    }
}

pub(crate) fn to_host(s: &CpuStorage, l: &Layout) -> Result<HostData> {
    check_view("to_host", s.len(), l)?;
    Ok(match s.buf() {
        Buf::F32(v) => HostData::F32(gather(v, l)),
        Buf::F64(v) => HostData::F64(gather(v, l)),
        Buf::I64(v) => HostData::I64(gather(v, l)),
    })
}

pub(crate) fn copy_strided(s: &CpuStorage, l: &Layout) -> Result<CpuStorage> {
    check_view("copy_strided", s.len(), l)?;
    Ok(match s.buf() {
        Buf::F32(v) => CpuStorage::from_vec_f32(gather(v, l)),
        Buf::F64(v) => CpuStorage::from_vec_f64(gather(v, l)),
        Buf::I64(v) => CpuStorage::from_vec_i64(gather(v, l)),
    })
}

pub(crate) fn copy_into(
    src: &CpuStorage,
    sl: &Layout,
    dst: &mut CpuStorage,
    dl: &Layout,
) -> Result<()> {
    const OP: &str = "copy_into";
    if src.dtype() != dst.dtype() {
        return Err(Error::DTypeMismatch {
            op: OP,
            lhs: src.dtype(),
            rhs: dst.dtype(),
        });
    }
    check_view(OP, src.len(), sl)?;
    check_view(OP, dst.len(), dl)?;
    check_same_shape(OP, &[sl, dl])?;
    match (src.buf(), dst.buf_mut()) {
        (Buf::F32(s), Buf::F32(d)) => write_view(s, sl, d, dl),
        (Buf::F64(s), Buf::F64(d)) => write_view(s, sl, d, dl),
        (Buf::I64(s), Buf::I64(d)) => write_view(s, sl, d, dl),
        _ => {
            return Err(Error::DTypeMismatch {
                op: OP,
                lhs: src.dtype(),
                rhs: dst.dtype(),
            })
        }
    }
    Ok(())
}

/// `dst[view dl] = src[view sl]`. Parallel when the destination view is contiguous; serial
/// otherwise (a strided destination may even overlap itself, e.g. stride 0: last write wins).
fn write_view<T: Copy + Send + Sync>(src: &[T], sl: &Layout, dst: &mut [T], dl: &Layout) {
    if let Some(dr) = dl.contiguous_range() {
        let dst = &mut dst[dr];
        if let Some(sr) = sl.contiguous_range() {
            dst.copy_from_slice(&src[sr]);
            return;
        }
        let walk = Walk::of([sl]);
        let [ss] = walk.inner_strides();
        par_fill(dst, |start, chunk| {
            walk.runs(start..start + chunk.len(), [sl.offset()], |o, len, [ps]| {
                let d = &mut chunk[o..o + len];
                if ss == 1 {
                    d.copy_from_slice(&src[ps..ps + len]);
                } else {
                    for (j, x) in d.iter_mut().enumerate() {
                        *x = src[ps + j * ss];
                    }
                }
            });
        });
        return;
    }
    let walk = Walk::of([sl, dl]);
    let [ss, ds] = walk.inner_strides();
    walk.runs(
        0..walk.len(),
        [sl.offset(), dl.offset()],
        |_, len, [ps, pd]| {
            if ss == 1 && ds == 1 {
                dst[pd..pd + len].copy_from_slice(&src[ps..ps + len]);
            } else {
                for j in 0..len {
                    dst[pd + j * ds] = src[ps + j * ss];
                }
            }
        },
    );
}

pub(crate) fn cast(s: &CpuStorage, l: &Layout, dtype: DType) -> Result<CpuStorage> {
    check_view("cast", s.len(), l)?;
    Ok(match (s.buf(), dtype) {
        (Buf::F32(v), DType::F32) => CpuStorage::from_vec_f32(gather(v, l)),
        (Buf::F32(v), DType::F64) => CpuStorage::from_vec_f64(map1(v, l, |x| x as f64)),
        (Buf::F32(v), DType::I64) => CpuStorage::from_vec_i64(map1(v, l, |x| x as i64)),
        (Buf::F64(v), DType::F32) => CpuStorage::from_vec_f32(map1(v, l, |x| x as f32)),
        (Buf::F64(v), DType::F64) => CpuStorage::from_vec_f64(gather(v, l)),
        (Buf::F64(v), DType::I64) => CpuStorage::from_vec_i64(map1(v, l, |x| x as i64)),
        (Buf::I64(v), DType::F32) => CpuStorage::from_vec_f32(map1(v, l, |x| x as f32)),
        (Buf::I64(v), DType::F64) => CpuStorage::from_vec_f64(map1(v, l, |x| x as f64)),
        (Buf::I64(v), DType::I64) => CpuStorage::from_vec_i64(gather(v, l)),
        (_, other) => return Err(unsupported("cast", other, "f32, f64, i64")),
    })
}
