//! Batched matmul `(…, m, k) × (…, k, n) → (…, m, n)` on strided views.
//!
//! Operands are never copied: each batch entry is one call into the [`crate::gemm`] seam with the
//! views' own row/column strides (a transposed operand is a swapped pair of strides; a broadcast
//! batch dim is stride 0, so the same matrix is simply read again). The kernel is picked once per
//! batched product ([`crate::gemm::pick_kernel`]: the `Direct` loops for the small two-row and
//! narrow one-row products of grouped/depthwise convolutions, else the default GEMM).
//!
//! Parallelism is ours, not the GEMM's: below [`PAR_FLOPS`] everything runs on the calling
//! thread; above, rayon splits the output over batch entries (at least [`MIN_TASK_FLOPS`] of them
//! per task, so thousands of tiny products do not become thousands of tasks) and, when there are
//! fewer batch entries than 2 tasks per thread, over balanced blocks of rows of `m` (at least 16
//! rows each). Each task makes single-threaded GEMM calls on disjoint, contiguous blocks of the
//! output. Splitting rows does not change any element's `k`-summation order in either kernel
//! family, so results do not depend on the thread count (the tests check this bit for bit).

use rayon::prelude::*;
use vars_core::{DType, Error, Layout, Result};

use crate::copy::unsupported;
use crate::gemm::{gemm_f32, gemm_f64, pick_kernel, GemmKernel};
use crate::storage::{Buf, CpuStorage};
use crate::strided::{check_view, offsets};
use crate::window::output_buffer;

/// Products with fewer floating-point operations than this run on the calling thread.
pub(crate) const PAR_FLOPS: usize = 1 << 21;
/// Smallest row block handed to one task.
const MIN_ROWS: usize = 16;
/// Batch entries are grouped so that one task does at least this many floating-point operations.
const MIN_TASK_FLOPS: usize = 1 << 16;
/// Target number of tasks per rayon thread.
const TASKS_PER_THREAD: usize = 2;

pub(crate) fn matmul(
    lhs: &CpuStorage,
    ll: &Layout,
    rhs: &CpuStorage,
    rl: &Layout,
) -> Result<CpuStorage> {
    const OP: &str = "matmul";
    check_view(OP, lhs.len(), ll)?;
    check_view(OP, rhs.len(), rl)?;
    let rank = ll.rank();
    let mismatch = |hint: &str| Error::ShapeMismatch {
        op: OP,
        lhs: ll.shape().clone(),
        rhs: rl.shape().clone(),
        hint: hint.to_string(),
    };
    if rank < 2 || rl.rank() != rank {
        return Err(mismatch(" (both operands need the same rank ≥ 2)"));
    }
    if ll.dims()[..rank - 2] != rl.dims()[..rank - 2] {
        return Err(mismatch(" (batch dims differ)"));
    }
    if ll.dims()[rank - 1] != rl.dims()[rank - 2] {
        return Err(mismatch(" (inner dims differ)"));
    }
    Ok(match (lhs.buf(), rhs.buf()) {
        (Buf::F32(a), Buf::F32(b)) => CpuStorage::from_vec_f32(batched(a, ll, b, rl, gemm_f32)?),
        (Buf::F64(a), Buf::F64(b)) => CpuStorage::from_vec_f64(batched(a, ll, b, rl, gemm_f64)?),
        (Buf::I64(_), Buf::I64(_)) => return Err(unsupported(OP, DType::I64, "f32, f64")),
        _ => {
            return Err(Error::DTypeMismatch {
                op: OP,
                lhs: lhs.dtype(),
                rhs: rhs.dtype(),
            })
        }
    })
}

type GemmFn<T> = fn(
    GemmKernel,
    usize,
    usize,
    usize,
    &[T],
    usize,
    usize,
    &[T],
    usize,
    usize,
    &mut [T],
    usize,
    usize,
) -> Result<()>;

fn batched<T: Copy + Default + Send + Sync>(
    a: &[T],
    la: &Layout,
    b: &[T],
    lb: &Layout,
    gemm: GemmFn<T>,
) -> Result<Vec<T>> {
    let r = la.rank();
    let (m, k, n) = (la.dims()[r - 2], la.dims()[r - 1], lb.dims()[r - 1]);
    let (rsa, csa) = (la.strides()[r - 2], la.strides()[r - 1]);
    let (rsb, csb) = (lb.strides()[r - 2], lb.strides()[r - 1]);
    let batch_dims = &la.dims()[..r - 2];
    let batch: usize = batch_dims.iter().product();
    let mut out = output_buffer(batch * m * n);
    if out.is_empty() || k == 0 {
        return Ok(out);
    }
    let off_a = offsets(batch_dims, &la.strides()[..r - 2], la.offset());
    let off_b = offsets(batch_dims, &lb.strides()[..r - 2], lb.offset());
    let kernel = pick_kernel(m, k, n, csb);
    let call = |bi: usize, r0: usize, c: &mut [T]| {
        let rows = c.len() / n;
        gemm(
            kernel,
            rows,
            k,
            n,
            &a[off_a[bi] + r0 * rsa..],
            rsa,
            csa,
            &b[off_b[bi]..],
            rsb,
            csb,
            c,
            n,
            1,
        )
    };
    let threads = rayon::current_num_threads();
    let flops = batch
        .saturating_mul(m)
        .saturating_mul(n)
        .saturating_mul(k)
        .saturating_mul(2);
    if threads == 1 || flops < PAR_FLOPS {
        for (bi, c) in out.chunks_mut(m * n).enumerate() {
            call(bi, 0, c)?;
        }
        return Ok(out);
    }
    // Balanced row blocks (no rounding to the kernel's tile height: a lopsided last block
    // costs more than a ragged tile edge; measured at 196 rows on 2 threads).
    let tasks_per_batch = (TASKS_PER_THREAD * threads).div_ceil(batch);
    let rows = if tasks_per_batch <= 1 {
        m
    } else {
        m.div_ceil(tasks_per_batch).max(MIN_ROWS).min(m)
    };
    let per_entry = (2 * m * n * k).max(1);
    out.par_chunks_mut(m * n)
        .enumerate()
        .with_min_len(MIN_TASK_FLOPS.div_ceil(per_entry))
        .try_for_each(|(bi, cb)| {
            if rows == m {
                return call(bi, 0, cb);
            }
            cb.par_chunks_mut(rows * n)
                .enumerate()
                .try_for_each(|(ri, c)| call(bi, ri * rows, c))
        })?;
    Ok(out)
}
