//! # vars-cpu
//!
//! The CPU compute backend of vars: [`Cpu`] implements [`vars_core::Backend`] on host memory with
//! rayon for parallelism and, for GEMM, the `gemm` crate (default feature `gemm-crate`) or
//! `matrixmultiply`.
//!
//! Every op takes its operands as `(storage, layout)` views (any strides, offsets and stride-0
//! broadcasts), validates them (a view that runs past its buffer is an error, never a panic),
//! takes a contiguous fast path when it can, and returns a fresh contiguous buffer.
//!
//! | module | contents |
//! | --- | --- |
//! | [`storage`] | [`CpuStorage`] and the live-buffer counters [`live_bytes`] / [`live_buffers`] |
//! | `strided` | view validation, joint strided iteration, the parallel fill driver |
//! | `copy` | `full`, `random`, `to_host`, `copy_strided`, `copy_into`, `cast` |
//! | `unary` / [`special`] | elementwise unary ops; full-precision `erf`/`erfc`/GELU |
//! | `binary` | elementwise binary ops and `where_cond` |
//! | `reduce` | sum/max/min/argmax/argmin (deterministic, see its docs) |
//! | `matmul` / [`gemm`] | batched matmul over strided views; the single GEMM seam |
//! | `index` | `index_select` / `index_add` |
//! | `rows` | fused softmax / log-softmax and layer-norm normalisation along the last dim, with backwards |
//! | `sparse_coding` | the fused sparse-coding loop (`vars_core::sparse::unrolled_ista`) and its exact backward |
//!
//! Parallelism: elementwise ops split outputs into chunks above 16k elements; reductions split
//! by output element only (bit-identical results for any thread count); matmul splits batches
//! and row blocks and calls single-threaded GEMMs. Small tensors stay on the calling thread.

mod binary;
mod copy;
pub mod gemm;
mod index;
mod matmul;
pub mod ndarray_interop;
mod reduce;
mod rows;
mod scalar;
mod sparse_coding;
pub mod special;
pub mod storage;
mod strided;
mod unary;
mod window;

pub use gemm::{gemm_f32, gemm_f64, GemmKernel, DEFAULT_KERNEL};
pub use ndarray_interop::{from_ndarray, to_ndarray};
pub use storage::{live_buffers, live_bytes, CpuStorage};

use vars_core::sparse::{IstaForward, IstaGrads, UnrolledIsta};
use vars_core::{
    Backend, BinaryOp, DType, Distribution, HostData, Layout, ReduceOp, Result, UnaryOp, Window2d,
};

/// The CPU backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu;

/// The only CPU device: host memory.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CpuDevice;

impl Backend for Cpu {
    type Device = CpuDevice;
    type Storage = CpuStorage;

    fn name() -> &'static str {
        "cpu"
    }

    fn storage_device(_storage: &CpuStorage) -> CpuDevice {
        CpuDevice
    }

    fn storage_dtype(storage: &CpuStorage) -> DType {
        storage.dtype()
    }

    fn storage_len(storage: &CpuStorage) -> usize {
        storage.len()
    }

    fn full(_device: &CpuDevice, len: usize, dtype: DType, value: f64) -> Result<CpuStorage> {
        copy::full(len, dtype, value)
    }

    fn from_host(_device: &CpuDevice, data: HostData) -> Result<CpuStorage> {
        Ok(CpuStorage::from_host(data))
    }

    fn to_host(storage: &CpuStorage, layout: &Layout) -> Result<HostData> {
        copy::to_host(storage, layout)
    }

    fn synchronize(_device: &CpuDevice) -> Result<()> {
        Ok(())
    }

    fn random(
        _device: &CpuDevice,
        len: usize,
        dtype: DType,
        dist: Distribution,
        seed: u64,
    ) -> Result<CpuStorage> {
        copy::random(len, dtype, dist, seed)
    }

    fn copy_strided(storage: &CpuStorage, layout: &Layout) -> Result<CpuStorage> {
        copy::copy_strided(storage, layout)
    }

    fn copy_into(
        src: &CpuStorage,
        src_layout: &Layout,
        dst: &mut CpuStorage,
        dst_layout: &Layout,
    ) -> Result<()> {
        copy::copy_into(src, src_layout, dst, dst_layout)
    }

    fn cast(storage: &CpuStorage, layout: &Layout, dtype: DType) -> Result<CpuStorage> {
        copy::cast(storage, layout, dtype)
    }

    fn unary(op: UnaryOp, storage: &CpuStorage, layout: &Layout) -> Result<CpuStorage> {
        unary::unary(op, storage, layout)
    }

    fn binary(
        op: BinaryOp,
        lhs: &CpuStorage,
        lhs_layout: &Layout,
        rhs: &CpuStorage,
        rhs_layout: &Layout,
    ) -> Result<CpuStorage> {
        binary::binary(op, lhs, lhs_layout, rhs, rhs_layout)
    }

    fn where_cond(
        cond: &CpuStorage,
        cond_layout: &Layout,
        on_true: &CpuStorage,
        true_layout: &Layout,
        on_false: &CpuStorage,
        false_layout: &Layout,
    ) -> Result<CpuStorage> {
        binary::where_cond(
            cond,
            cond_layout,
            on_true,
            true_layout,
            on_false,
            false_layout,
        )
    }

    fn reduce(
        op: ReduceOp,
        storage: &CpuStorage,
        layout: &Layout,
        axes: &[usize],
    ) -> Result<CpuStorage> {
        reduce::reduce(op, storage, layout, axes)
    }

    fn matmul(
        lhs: &CpuStorage,
        lhs_layout: &Layout,
        rhs: &CpuStorage,
        rhs_layout: &Layout,
    ) -> Result<CpuStorage> {
        matmul::matmul(lhs, lhs_layout, rhs, rhs_layout)
    }

    fn index_select(
        storage: &CpuStorage,
        layout: &Layout,
        dim: usize,
        indices: &CpuStorage,
        indices_layout: &Layout,
    ) -> Result<CpuStorage> {
        index::index_select(storage, layout, dim, indices, indices_layout)
    }

    fn index_add(
        src: &CpuStorage,
        src_layout: &Layout,
        dim: usize,
        indices: &CpuStorage,
        indices_layout: &Layout,
        dim_size: usize,
    ) -> Result<CpuStorage> {
        index::index_add(src, src_layout, dim, indices, indices_layout, dim_size)
    }

    fn unfold2d(
        storage: &CpuStorage,
        layout: &Layout,
        window: Window2d,
        pad_value: f64,
    ) -> Result<CpuStorage> {
        window::unfold2d(storage, layout, window, pad_value)
    }

    fn fold2d(
        storage: &CpuStorage,
        layout: &Layout,
        window: Window2d,
        output_hw: (usize, usize),
    ) -> Result<CpuStorage> {
        window::fold2d(storage, layout, window, output_hw)
    }

    fn softmax_last_dim(x: &CpuStorage, layout: &Layout, log: bool) -> Result<Option<CpuStorage>> {
        rows::softmax_last_dim(x, layout, log).map(Some)
    }

    fn softmax_last_dim_backward(
        y: &CpuStorage,
        y_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
        log: bool,
    ) -> Result<Option<CpuStorage>> {
        rows::softmax_last_dim_backward(y, y_layout, grad, grad_layout, log).map(Some)
    }

    fn layer_norm_last_dim(
        x: &CpuStorage,
        layout: &Layout,
        eps: f64,
    ) -> Result<Option<(CpuStorage, CpuStorage)>> {
        rows::layer_norm_last_dim(x, layout, eps).map(Some)
    }

    fn layer_norm_last_dim_backward(
        xhat: &CpuStorage,
        xhat_layout: &Layout,
        rstd: &CpuStorage,
        rstd_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
    ) -> Result<Option<CpuStorage>> {
        rows::layer_norm_last_dim_backward(xhat, xhat_layout, rstd, rstd_layout, grad, grad_layout)
            .map(Some)
    }

    fn unrolled_ista_forward(
        cfg: &UnrolledIsta,
        g: &CpuStorage,
        g_layout: &Layout,
        b: &CpuStorage,
        b_layout: &Layout,
        lam: &CpuStorage,
        lam_layout: &Layout,
        l: &CpuStorage,
        l_layout: &Layout,
        save_for_backward: bool,
    ) -> Result<Option<IstaForward<CpuStorage>>> {
        sparse_coding::forward(
            cfg,
            (g, g_layout),
            (b, b_layout),
            (lam, lam_layout),
            (l, l_layout),
            save_for_backward,
        )
        .map(Some)
    }

    fn unrolled_ista_backward(
        cfg: &UnrolledIsta,
        g: &CpuStorage,
        g_layout: &Layout,
        b: &CpuStorage,
        b_layout: &Layout,
        lam: &CpuStorage,
        lam_layout: &Layout,
        l: &CpuStorage,
        l_layout: &Layout,
        saved: Option<&CpuStorage>,
        grad: &CpuStorage,
        grad_layout: &Layout,
    ) -> Result<Option<IstaGrads<CpuStorage>>> {
        sparse_coding::backward(
            cfg,
            (g, g_layout),
            (b, b_layout),
            (lam, lam_layout),
            (l, l_layout),
            saved,
            (grad, grad_layout),
        )
        .map(Some)
    }
}
