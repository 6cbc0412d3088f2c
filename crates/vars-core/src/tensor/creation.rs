//! Creating tensors: constants, host data, ranges and seeded random draws.

use super::Tensor;
use crate::{Backend, DType, Distribution, Element, Error, HostData, Result, Shape};

impl<B: Backend> Tensor<B> {
    /// A tensor with every element equal to `value` (converted to `dtype`).
    pub fn full(
        shape: impl Into<Shape>,
        value: f64,
        dtype: DType,
        device: &B::Device,
    ) -> Result<Self> {
        let shape = shape.into();
        let storage = B::full(device, shape.elem_count(), dtype, value)?;
        Self::from_storage(storage, shape)
    }

    pub fn zeros(shape: impl Into<Shape>, dtype: DType, device: &B::Device) -> Result<Self> {
        Self::full(shape, 0.0, dtype, device)
    }

    pub fn ones(shape: impl Into<Shape>, dtype: DType, device: &B::Device) -> Result<Self> {
        Self::full(shape, 1.0, dtype, device)
    }

    pub fn zeros_like(&self) -> Result<Self> {
        Self::zeros(self.shape().clone(), self.dtype(), self.device())
    }

    pub fn ones_like(&self) -> Result<Self> {
        Self::ones(self.shape().clone(), self.dtype(), self.device())
    }

    pub fn full_like(&self, value: f64) -> Result<Self> {
        Self::full(self.shape().clone(), value, self.dtype(), self.device())
    }

    /// A scalar (rank-0) tensor.
    pub fn scalar(value: f64, dtype: DType, device: &B::Device) -> Result<Self> {
        Self::full((), value, dtype, device)
    }

    /// A tensor from a host buffer in row-major order.
    pub fn from_host(data: HostData, shape: impl Into<Shape>, device: &B::Device) -> Result<Self> {
        let shape = shape.into();
        if data.len() != shape.elem_count() {
            return Err(Error::ElementCount {
                op: "from_host",
                expected: shape.elem_count(),
                shape,
                got: data.len(),
            });
        }
        let storage = B::from_host(device, data)?;
        Self::from_storage(storage, shape)
    }

    /// A tensor from a `Vec` in row-major order; the dtype follows `T`.
    pub fn from_vec<T: Element>(
        data: Vec<T>,
        shape: impl Into<Shape>,
        device: &B::Device,
    ) -> Result<Self> {
        Self::from_host(T::into_host(data), shape, device)
    }

    pub fn from_slice<T: Element>(
        data: &[T],
        shape: impl Into<Shape>,
        device: &B::Device,
    ) -> Result<Self> {
        Self::from_vec(data.to_vec(), shape, device)
    }

    /// `[0, 1, …, n−1]` in `dtype`.
    pub fn arange(n: usize, dtype: DType, device: &B::Device) -> Result<Self> {
        let data = match dtype {
            DType::F32 => HostData::F32((0..n).map(|i| i as f32).collect()),
            DType::F64 => HostData::F64((0..n).map(|i| i as f64).collect()),
            DType::I64 => HostData::I64((0..n as i64).collect()),
        };
        Self::from_host(data, n, device)
    }

    /// The `n × n` identity matrix.
    pub fn eye(n: usize, dtype: DType, device: &B::Device) -> Result<Self> {
        let mut v = vec![0.0f64; n * n];
        for i in 0..n {
            v[i * n + i] = 1.0;
        }
        Self::from_vec(v, [n, n], device)?.to_dtype(dtype)
    }

    /// Samples from `dist` with the counter-based generator of [`crate::rng`]: element `i` depends
    /// only on `(seed, i)`, so results are identical on every backend and thread count.
    pub fn random(
        shape: impl Into<Shape>,
        dist: Distribution,
        dtype: DType,
        seed: u64,
        device: &B::Device,
    ) -> Result<Self> {
        let shape = shape.into();
        if !dtype.is_float() {
            return Err(Error::UnsupportedDType {
                op: "random",
                dtype,
                supported: "f32, f64",
            });
        }
        let storage = B::random(device, shape.elem_count(), dtype, dist, seed)?;
        Self::from_storage(storage, shape)
    }

    /// Standard normal samples, `N(0, 1)`.
    pub fn randn(
        shape: impl Into<Shape>,
        dtype: DType,
        seed: u64,
        device: &B::Device,
    ) -> Result<Self> {
        Self::random(
            shape,
            Distribution::Normal {
                mean: 0.0,
                std: 1.0,
            },
            dtype,
            seed,
            device,
        )
    }

    /// Uniform samples in `[low, high)`.
    pub fn rand_uniform(
        shape: impl Into<Shape>,
        low: f64,
        high: f64,
        dtype: DType,
        seed: u64,
        device: &B::Device,
    ) -> Result<Self> {
        Self::random(
            shape,
            Distribution::Uniform { low, high },
            dtype,
            seed,
            device,
        )
    }
}
