//! The user-facing [`Tensor`]: an immutable, reference-counted view (storage + [`Layout`]) with a
//! run-time shape and dtype, on any [`Backend`].
//!
//! Tensors are cheap to clone (an `Arc`). View ops (reshape of contiguous data, permute, narrow,
//! broadcast) share the storage; compute ops allocate one fresh contiguous buffer. On an
//! [`crate::Autodiff`] backend each op also records the node its backward needs (see
//! [`crate::autodiff`]); on a plain backend no graph code runs at all.

mod creation;
mod elementwise;
mod index;
mod matmul;
mod reduce;
mod view;
mod window;

pub use window::Window2d;

use crate::autodiff::{self, Node, Op};
use crate::{Backend, DType, Element, Error, HostData, Layout, Result, Shape};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Process-unique identity of a tensor (used as the key of [`crate::GradStore`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(u64);

impl TensorId {
    pub(crate) fn fresh() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        TensorId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// An n-dimensional array on backend `B`.
pub struct Tensor<B: Backend>(Arc<TensorImpl<B>>);

pub(crate) struct TensorImpl<B: Backend> {
    id: TensorId,
    storage: Arc<B::Storage>,
    layout: Layout,
    dtype: DType,
    device: B::Device,
    /// `Some` when this tensor takes part in a backward graph (a leaf variable or an op output).
    node: Option<Arc<Node<B>>>,
}

impl<B: Backend> Clone for Tensor<B> {
    fn clone(&self) -> Self {
        Tensor(self.0.clone())
    }
}

impl<B: Backend> fmt::Debug for Tensor<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Tensor<{}>{{ shape: {}, dtype: {}, tracked: {} }}",
            B::name(),
            self.shape(),
            self.dtype(),
            self.is_tracked()
        )
    }
}

impl<B: Backend> Tensor<B> {
    // ---- construction helpers used by every op ----------------------------------------------

    pub(crate) fn build(
        storage: Arc<B::Storage>,
        layout: Layout,
        node: Option<Arc<Node<B>>>,
    ) -> Self {
        Self::build_with_id(TensorId::fresh(), storage, layout, node)
    }

    pub(crate) fn build_with_id(
        id: TensorId,
        storage: Arc<B::Storage>,
        layout: Layout,
        node: Option<Arc<Node<B>>>,
    ) -> Self {
        let dtype = B::storage_dtype(&storage);
        let device = B::storage_device(&storage);
        Tensor(Arc::new(TensorImpl {
            id,
            storage,
            layout,
            dtype,
            device,
            node,
        }))
    }

    /// An untracked tensor owning a fresh contiguous buffer.
    pub fn from_storage(storage: B::Storage, shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        let len = B::storage_len(&storage);
        if len != shape.elem_count() {
            return Err(Error::ElementCount {
                op: "from_storage",
                expected: shape.elem_count(),
                shape,
                got: len,
            });
        }
        Ok(Self::build(
            Arc::new(storage),
            Layout::contiguous(shape),
            None,
        ))
    }

    /// The output of a compute op: a fresh contiguous buffer plus, when any input is tracked, a
    /// graph node whose saved state is built lazily by `op` (so untracked code saves nothing).
    pub(crate) fn from_op(
        storage: B::Storage,
        shape: Shape,
        inputs: &[&Tensor<B>],
        op: impl FnOnce() -> Op<B>,
    ) -> Self {
        let node = autodiff::node_for(&shape, &B::storage_dtype(&storage), inputs, op);
        Self::build(Arc::new(storage), Layout::contiguous(shape), node)
    }

    /// Like [`Self::from_op`], for ops whose backward needs their own output: `op` receives an
    /// untracked handle to it (sharing the buffer), so the node never owns itself.
    pub(crate) fn from_op_with_output(
        storage: B::Storage,
        shape: Shape,
        inputs: &[&Tensor<B>],
        op: impl FnOnce(Tensor<B>) -> Op<B>,
    ) -> Self {
        let storage = Arc::new(storage);
        let layout = Layout::contiguous(shape);
        let dtype = B::storage_dtype(&storage);
        let node = autodiff::node_for(layout.shape(), &dtype, inputs, || {
            op(Self::build(storage.clone(), layout.clone(), None))
        });
        Self::build(storage, layout, node)
    }

    /// Re-attaches an untracked result computed by composing other ops under
    /// [`crate::no_grad`] to the graph as one node with its own backward; `op` receives an
    /// untracked handle to the result.
    pub(crate) fn attach(self, inputs: &[&Tensor<B>], op: impl FnOnce(Tensor<B>) -> Op<B>) -> Self {
        match autodiff::node_for(self.shape(), &self.dtype(), inputs, || op(self.clone())) {
            None => self,
            node => Self::build(self.0.storage.clone(), self.layout().clone(), node),
        }
    }

    /// The same values, cut from the backward graph (shares the storage).
    pub fn detach(&self) -> Self {
        if self.0.node.is_none() {
            return self.clone();
        }
        Self::build(self.0.storage.clone(), self.layout().clone(), None)
    }

    /// A view sharing this tensor's storage under a new layout.
    pub(crate) fn view_with(&self, layout: Layout, op: impl FnOnce() -> Op<B>) -> Self {
        let node = autodiff::node_for(layout.shape(), &self.dtype(), &[self], op);
        Self::build(self.0.storage.clone(), layout, node)
    }

    // ---- accessors -------------------------------------------------------------------------

    pub fn id(&self) -> TensorId {
        self.0.id
    }
    pub fn shape(&self) -> &Shape {
        self.0.layout.shape()
    }
    pub fn dims(&self) -> &[usize] {
        self.0.layout.dims()
    }
    pub fn rank(&self) -> usize {
        self.0.layout.rank()
    }
    pub fn elem_count(&self) -> usize {
        self.0.layout.elem_count()
    }
    pub fn dtype(&self) -> DType {
        self.0.dtype
    }
    pub fn device(&self) -> &B::Device {
        &self.0.device
    }
    pub fn layout(&self) -> &Layout {
        &self.0.layout
    }
    /// The backing buffer (shared with every view of it). For fused kernels and custom ops.
    pub fn storage(&self) -> &B::Storage {
        &self.0.storage
    }
    pub fn is_contiguous(&self) -> bool {
        self.0.layout.is_contiguous()
    }
    /// Size of `dim`, or an error naming `op`.
    pub fn dim(&self, dim: usize) -> Result<usize> {
        self.shape().dim("dim", dim)
    }
    /// Whether this tensor is part of a backward graph.
    pub fn is_tracked(&self) -> bool {
        self.0.node.is_some()
    }
    pub(crate) fn storage_arc(&self) -> Arc<B::Storage> {
        self.0.storage.clone()
    }
    pub(crate) fn node(&self) -> Option<&Arc<Node<B>>> {
        self.0.node.as_ref()
    }

    // ---- host transfer ---------------------------------------------------------------------

    /// Copies the (possibly strided) tensor to a contiguous row-major host buffer.
    pub fn to_host(&self) -> Result<HostData> {
        B::to_host(self.storage(), self.layout())
    }

    /// The elements in row-major order; `T` must match the dtype.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        if T::DTYPE != self.dtype() {
            return Err(Error::DTypeMismatch {
                op: "to_vec",
                lhs: self.dtype(),
                rhs: T::DTYPE,
            });
        }
        let host = self.to_host()?;
        T::from_host(host).ok_or(Error::DTypeMismatch {
            op: "to_vec",
            lhs: self.dtype(),
            rhs: T::DTYPE,
        })
    }

    /// The elements converted to `f64`, whatever the dtype.
    pub fn to_vec_f64(&self) -> Result<Vec<f64>> {
        Ok(self.to_host()?.to_f64_vec())
    }

    /// The single element of a one-element tensor.
    pub fn to_scalar<T: Element>(&self) -> Result<T> {
        if self.elem_count() != 1 {
            return Err(Error::invalid(
                "to_scalar",
                self.shape(),
                "expected exactly one element",
            ));
        }
        Ok(self.to_vec::<T>()?[0])
    }

    /// Waits for queued device work.
    pub fn synchronize(&self) -> Result<()> {
        B::synchronize(self.device())
    }

    // ---- checks shared by the op files ------------------------------------------------------

    pub(crate) fn same_dtype_device(&self, op: &'static str, other: &Self) -> Result<()> {
        if self.dtype() != other.dtype() {
            return Err(Error::DTypeMismatch {
                op,
                lhs: self.dtype(),
                rhs: other.dtype(),
            });
        }
        if self.device() != other.device() {
            return Err(Error::DeviceMismatch {
                op,
                lhs: format!("{:?}", self.device()),
                rhs: format!("{:?}", other.device()),
            });
        }
        Ok(())
    }

    pub(crate) fn require_float(&self, op: &'static str) -> Result<()> {
        if self.dtype().is_float() {
            Ok(())
        } else {
            Err(Error::UnsupportedDType {
                op,
                dtype: self.dtype(),
                supported: "f32, f64",
            })
        }
    }

    /// Checks that `axes` are valid, and returns them sorted and deduplicated.
    pub(crate) fn normalize_axes(&self, op: &'static str, axes: &[usize]) -> Result<Vec<usize>> {
        let mut out = axes.to_vec();
        out.sort_unstable();
        out.dedup();
        if let Some(&bad) = out.iter().find(|&&a| a >= self.rank()) {
            return Err(Error::DimOutOfRange {
                op,
                dim: bad,
                shape: self.shape().clone(),
            });
        }
        Ok(out)
    }
}
