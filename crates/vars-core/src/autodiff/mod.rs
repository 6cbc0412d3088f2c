//! Reverse-mode automatic differentiation as a decorator backend.
//!
//! [`Autodiff<B>`] is a [`Backend`] that stores data exactly like `B` (same device, same storage,
//! every op delegated) but sets [`Backend::TRACKS_GRADIENTS`]. Tensors of that backend record, per
//! op, a [`Node`] holding only the state its backward needs (e.g. `exp` keeps its output, `add`
//! keeps nothing). So `Tensor<Cpu>` runs inference with zero graph overhead, `Tensor<Autodiff<Cpu>>`
//! trains, and any future backend (CUDA) gets gradients for free.
//!
//! Why the graph lives in the tensor layer rather than inside the backend's storage: view ops
//! (reshape, permute, narrow, broadcast) never reach the backend, yet gradients must flow through
//! them. The decorator only switches recording on; [`crate::Tensor`] does the recording.
//!
//! - Leaves: [`crate::Tensor::requires_grad`] marks a tensor (parameter *or* input: adversarial
//!   attacks need input gradients) as a variable.
//! - [`crate::Tensor::backward`] returns a [`GradStore`] of leaf gradients and frees the graph it
//!   walked (saved tensors are dropped as each node is processed, like PyTorch's
//!   `retain_graph=False`).
//! - [`no_grad`] / [`NoGradGuard`] suspend recording; [`crate::Tensor::detach`] cuts a tensor out.
//! - [`CustomOp`]: user-defined forward + backward, e.g. a fused kernel.

mod backward;
mod custom;
pub(crate) mod op;

pub use backward::GradStore;
pub use custom::{CustomBackward, CustomOp};
pub(crate) use op::Op;

use crate::{Backend, BinaryOp, DType, Distribution, HostData, Layout, ReduceOp, Result, UnaryOp};
use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The autodiff decorator: `Tensor<Autodiff<B>>` records a backward graph, `Tensor<B>` does not.
pub struct Autodiff<B>(PhantomData<B>);

impl<B> Clone for Autodiff<B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B> Copy for Autodiff<B> {}
impl<B> Default for Autodiff<B> {
    fn default() -> Self {
        Autodiff(PhantomData)
    }
}
impl<B: Backend> std::fmt::Debug for Autodiff<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Autodiff<{}>", B::name())
    }
}

impl<B: Backend> Backend for Autodiff<B> {
    type Device = B::Device;
    type Storage = B::Storage;
    const TRACKS_GRADIENTS: bool = true;

    fn name() -> &'static str {
        B::name()
    }
    fn storage_device(s: &Self::Storage) -> Self::Device {
        B::storage_device(s)
    }
    fn storage_dtype(s: &Self::Storage) -> DType {
        B::storage_dtype(s)
    }
    fn storage_len(s: &Self::Storage) -> usize {
        B::storage_len(s)
    }
    fn full(d: &Self::Device, len: usize, dtype: DType, value: f64) -> Result<Self::Storage> {
        B::full(d, len, dtype, value)
    }
    fn from_host(d: &Self::Device, data: HostData) -> Result<Self::Storage> {
        B::from_host(d, data)
    }
    fn to_host(s: &Self::Storage, l: &Layout) -> Result<HostData> {
        B::to_host(s, l)
    }
    fn synchronize(d: &Self::Device) -> Result<()> {
        B::synchronize(d)
    }
    fn random(
        d: &Self::Device,
        len: usize,
        dtype: DType,
        dist: Distribution,
        seed: u64,
    ) -> Result<Self::Storage> {
        B::random(d, len, dtype, dist, seed)
    }
    fn copy_strided(s: &Self::Storage, l: &Layout) -> Result<Self::Storage> {
        B::copy_strided(s, l)
    }
    fn copy_into(
        src: &Self::Storage,
        sl: &Layout,
        dst: &mut Self::Storage,
        dl: &Layout,
    ) -> Result<()> {
        B::copy_into(src, sl, dst, dl)
    }
    fn cast(s: &Self::Storage, l: &Layout, dtype: DType) -> Result<Self::Storage> {
        B::cast(s, l, dtype)
    }
    fn unary(op: UnaryOp, s: &Self::Storage, l: &Layout) -> Result<Self::Storage> {
        B::unary(op, s, l)
    }
    fn binary(
        op: BinaryOp,
        a: &Self::Storage,
        al: &Layout,
        b: &Self::Storage,
        bl: &Layout,
    ) -> Result<Self::Storage> {
        B::binary(op, a, al, b, bl)
    }
    fn where_cond(
        c: &Self::Storage,
        cl: &Layout,
        t: &Self::Storage,
        tl: &Layout,
        f: &Self::Storage,
        fl: &Layout,
    ) -> Result<Self::Storage> {
        B::where_cond(c, cl, t, tl, f, fl)
    }
    fn reduce(
        op: ReduceOp,
        s: &Self::Storage,
        l: &Layout,
        axes: &[usize],
    ) -> Result<Self::Storage> {
        B::reduce(op, s, l, axes)
    }
    fn matmul(
        a: &Self::Storage,
        al: &Layout,
        b: &Self::Storage,
        bl: &Layout,
    ) -> Result<Self::Storage> {
        B::matmul(a, al, b, bl)
    }
    fn index_select(
        s: &Self::Storage,
        l: &Layout,
        dim: usize,
        i: &Self::Storage,
        il: &Layout,
    ) -> Result<Self::Storage> {
        B::index_select(s, l, dim, i, il)
    }
    fn index_add(
        s: &Self::Storage,
        l: &Layout,
        dim: usize,
        i: &Self::Storage,
        il: &Layout,
        size: usize,
    ) -> Result<Self::Storage> {
        B::index_add(s, l, dim, i, il, size)
    }
    fn unfold2d(
        s: &Self::Storage,
        l: &Layout,
        w: crate::Window2d,
        pad: f64,
    ) -> Result<Self::Storage> {
        B::unfold2d(s, l, w, pad)
    }
    fn fold2d(
        s: &Self::Storage,
        l: &Layout,
        w: crate::Window2d,
        hw: (usize, usize),
    ) -> Result<Self::Storage> {
        B::fold2d(s, l, w, hw)
    }
    fn softmax_last_dim(x: &Self::Storage, l: &Layout, log: bool) -> Result<Option<Self::Storage>> {
        B::softmax_last_dim(x, l, log)
    }
    fn softmax_last_dim_backward(
        y: &Self::Storage,
        yl: &Layout,
        g: &Self::Storage,
        gl: &Layout,
        log: bool,
    ) -> Result<Option<Self::Storage>> {
        B::softmax_last_dim_backward(y, yl, g, gl, log)
    }
    fn layer_norm_last_dim(
        x: &Self::Storage,
        l: &Layout,
        eps: f64,
    ) -> Result<Option<(Self::Storage, Self::Storage)>> {
        B::layer_norm_last_dim(x, l, eps)
    }
    fn layer_norm_last_dim_backward(
        xhat: &Self::Storage,
        xl: &Layout,
        rstd: &Self::Storage,
        rl: &Layout,
        g: &Self::Storage,
        gl: &Layout,
    ) -> Result<Option<Self::Storage>> {
        B::layer_norm_last_dim_backward(xhat, xl, rstd, rl, g, gl)
    }
    fn unrolled_ista_forward(
        cfg: &crate::sparse::UnrolledIsta,
        g: &Self::Storage,
        gl: &Layout,
        b: &Self::Storage,
        bl: &Layout,
        lam: &Self::Storage,
        laml: &Layout,
        l: &Self::Storage,
        ll: &Layout,
        save: bool,
    ) -> Result<Option<crate::sparse::IstaForward<Self::Storage>>> {
        B::unrolled_ista_forward(cfg, g, gl, b, bl, lam, laml, l, ll, save)
    }
    fn unrolled_ista_backward(
        cfg: &crate::sparse::UnrolledIsta,
        g: &Self::Storage,
        gl: &Layout,
        b: &Self::Storage,
        bl: &Layout,
        lam: &Self::Storage,
        laml: &Layout,
        l: &Self::Storage,
        ll: &Layout,
        saved: Option<&Self::Storage>,
        grad: &Self::Storage,
        grad_layout: &Layout,
    ) -> Result<Option<crate::sparse::IstaGrads<Self::Storage>>> {
        B::unrolled_ista_backward(
            cfg,
            g,
            gl,
            b,
            bl,
            lam,
            laml,
            l,
            ll,
            saved,
            grad,
            grad_layout,
        )
    }
}

impl<B: Backend> crate::Tensor<Autodiff<B>> {
    /// The same data as a tensor of the inner backend (shares the storage; no graph).
    pub fn inner(&self) -> crate::Tensor<B> {
        crate::Tensor::build(self.storage_arc(), self.layout().clone(), None)
    }

    /// Lifts an inner-backend tensor (shares the storage; untracked until `requires_grad`).
    pub fn from_inner(t: &crate::Tensor<B>) -> Self {
        crate::Tensor::build(t.storage_arc(), t.layout().clone(), None)
    }
}

// ---- graph nodes --------------------------------------------------------------------------------

/// A vertex of the backward graph. It records the shape and dtype of the tensor it belongs to, so
/// the backward pass can check every gradient it routes (built-in and custom ops alike).
pub(crate) struct Node<B: Backend> {
    pub(crate) id: u64,
    pub(crate) shape: crate::Shape,
    pub(crate) dtype: DType,
    pub(crate) kind: NodeKind<B>,
}

pub(crate) enum NodeKind<B: Backend> {
    /// A variable; its gradient is reported under this tensor id.
    Leaf(crate::TensorId),
    /// An op output: the saved state and the edges to its inputs (`None` for inputs that need no
    /// gradient). `backward` takes both, freeing the graph as it goes.
    Op {
        op: Mutex<Option<Op<B>>>,
        inputs: Mutex<Vec<Option<Arc<Node<B>>>>>,
    },
}

impl<B: Backend> NodeKind<B> {
    fn take_inputs(&mut self) -> Vec<Option<Arc<Node<B>>>> {
        match self {
            NodeKind::Op { inputs, .. } => {
                std::mem::take(inputs.get_mut().unwrap_or_else(|e| e.into_inner()))
            }
            NodeKind::Leaf(_) => Vec::new(),
        }
    }
}

impl<B: Backend> Drop for Node<B> {
    /// Frees the chain of inputs iteratively: a graph of 10⁵ ops would otherwise overflow the
    /// stack through recursive `Arc` drops.
    fn drop(&mut self) {
        let mut stack = self.kind.take_inputs();
        while let Some(edge) = stack.pop() {
            if let Some(mut node) = edge.and_then(Arc::into_inner) {
                stack.extend(node.kind.take_inputs());
            }
        }
    }
}

fn next_node_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

pub(crate) fn leaf_node<B: Backend>(
    id: crate::TensorId,
    shape: crate::Shape,
    dtype: DType,
) -> Arc<Node<B>> {
    Arc::new(Node {
        id: next_node_id(),
        shape,
        dtype,
        kind: NodeKind::Leaf(id),
    })
}

/// The graph node for an op output, or `None` (without running `op`) when nothing is tracked.
pub(crate) fn node_for<B: Backend>(
    out_shape: &crate::Shape,
    out_dtype: &DType,
    inputs: &[&crate::Tensor<B>],
    op: impl FnOnce() -> Op<B>,
) -> Option<Arc<Node<B>>> {
    if !B::TRACKS_GRADIENTS || !out_dtype.is_float() || !is_grad_enabled() {
        return None;
    }
    if !inputs.iter().any(|t| t.is_tracked()) {
        return None;
    }
    Some(Arc::new(Node {
        id: next_node_id(),
        shape: out_shape.clone(),
        dtype: *out_dtype,
        kind: NodeKind::Op {
            op: Mutex::new(Some(op())),
            inputs: Mutex::new(inputs.iter().map(|t| t.node().cloned()).collect()),
        },
    }))
}

// ---- grad mode ----------------------------------------------------------------------------------

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether ops on this thread currently record graph nodes.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Suspends graph recording on this thread until dropped (restoring the previous mode).
pub struct NoGradGuard {
    previous: bool,
}

impl NoGradGuard {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        NoGradGuard {
            previous: GRAD_ENABLED.with(|g| g.replace(false)),
        }
    }
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.previous));
    }
}

/// Runs `f` without recording a graph (evaluation, parameter updates, backward passes).
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _guard = NoGradGuard::new();
    f()
}

/// Runs `f` with graph recording switched on, restoring the previous mode afterwards (also on
/// unwinding). Backward passes run under [`no_grad`]; a [`CustomOp`] whose backward differentiates
/// a recomputed composite (e.g. [`crate::sparse::unrolled_ista`] without a fused backward kernel)
/// records that inner graph with this.
pub fn with_grad<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            GRAD_ENABLED.with(|g| g.set(self.0));
        }
    }
    let _restore = Restore(GRAD_ENABLED.with(|g| g.replace(true)));
    f()
}
