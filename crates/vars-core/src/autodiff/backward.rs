//! Leaf variables, the backward pass and the gradient store.

use super::{leaf_node, no_grad, NodeKind};
use crate::{Backend, Error, Result, Tensor, TensorId};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Gradients of the leaf variables reached by one backward pass, keyed by tensor id.
pub struct GradStore<B: Backend> {
    grads: HashMap<TensorId, Tensor<B>>,
}

impl<B: Backend> GradStore<B> {
    /// The gradient of `var`, if the loss depends on it.
    pub fn get(&self, var: &Tensor<B>) -> Option<&Tensor<B>> {
        self.grads.get(&var.id())
    }
    pub fn remove(&mut self, var: &Tensor<B>) -> Option<Tensor<B>> {
        self.grads.remove(&var.id())
    }
    pub fn len(&self) -> usize {
        self.grads.len()
    }
    pub fn is_empty(&self) -> bool {
        self.grads.is_empty()
    }
}

impl<B: Backend> Tensor<B> {
    /// This tensor as a leaf variable: gradients of a later [`Tensor::backward`] are reported for
    /// it. Shares the storage. Errors on a backend without autodiff or a non-float dtype.
    pub fn requires_grad(&self) -> Result<Self> {
        if !B::TRACKS_GRADIENTS {
            return Err(Error::Autodiff(format!(
                "backend `{}` does not record gradients; use Autodiff<{}> for training",
                B::name(),
                B::name()
            )));
        }
        self.require_float("requires_grad")?;
        let id = TensorId::fresh();
        let storage = self.storage_arc();
        let node = leaf_node(id, self.shape().clone(), self.dtype());
        Ok(Tensor::build_with_id(
            id,
            storage,
            self.layout().clone(),
            Some(node),
        ))
    }

    /// Backpropagates from a scalar (one-element) tensor, seeding its gradient with 1.
    pub fn backward(&self) -> Result<GradStore<B>> {
        if self.elem_count() != 1 {
            return Err(Error::Autodiff(format!(
                "backward() needs a one-element tensor, got shape {}; use backward_with(grad)",
                self.shape()
            )));
        }
        let seed = self.ones_like()?;
        self.backward_with(&seed)
    }

    /// Backpropagates an explicit output gradient `grad` (same shape as `self`). The graph walked
    /// is freed: a second backward through it reports an error.
    pub fn backward_with(&self, grad: &Tensor<B>) -> Result<GradStore<B>> {
        if grad.shape() != self.shape() {
            return Err(Error::shape_mismatch(
                "backward",
                self.shape(),
                grad.shape(),
            ));
        }
        if grad.dtype() != self.dtype() {
            return Err(Error::DTypeMismatch {
                op: "backward",
                lhs: self.dtype(),
                rhs: grad.dtype(),
            });
        }
        let root = self.node().cloned().ok_or_else(|| {
            Error::Autodiff("the tensor is not part of a graph (no input requires grad)".into())
        })?;
        no_grad(|| run_backward(root, grad.detach()))
    }
}

fn run_backward<B: Backend>(root: Arc<super::Node<B>>, seed: Tensor<B>) -> Result<GradStore<B>> {
    // Iterative DFS post-order: a node comes after every node that consumes it when reversed.
    let mut order: Vec<Arc<super::Node<B>>> = Vec::new();
    let mut visited: HashSet<u64> = HashSet::new();
    let mut stack: Vec<(Arc<super::Node<B>>, bool)> = vec![(root.clone(), false)];
    while let Some((node, expanded)) = stack.pop() {
        if expanded {
            order.push(node);
            continue;
        }
        if !visited.insert(node.id) {
            continue;
        }
        stack.push((node.clone(), true));
        if let NodeKind::Op { inputs, .. } = &node.kind {
            for input in lock(inputs)?.iter().flatten() {
                if !visited.contains(&input.id) {
                    stack.push((input.clone(), false));
                }
            }
        }
    }

    let mut pending: HashMap<u64, Tensor<B>> = HashMap::new();
    pending.insert(root.id, seed);
    let mut store = GradStore {
        grads: HashMap::new(),
    };
    for node in order.iter().rev() {
        let grad = pending.remove(&node.id);
        match &node.kind {
            NodeKind::Leaf(id) => {
                if let Some(g) = grad {
                    store.grads.insert(*id, g);
                }
            }
            NodeKind::Op { op, inputs } => {
                // Take the saved state and the edges: the graph is freed as it is walked.
                let op = lock(op)?.take();
                let inputs = std::mem::take(&mut *lock(inputs)?);
                let (op, grad) = match (op, grad) {
                    (Some(op), Some(grad)) => (op, grad),
                    (None, Some(_)) => {
                        return Err(Error::Autodiff(
                            "the graph was already freed by an earlier backward()".into(),
                        ))
                    }
                    (_, None) => continue,
                };
                let context =
                    |e: Error| Error::Autodiff(format!("in the backward of `{}`: {e}", op.name()));
                let grads = op.backward(&grad, inputs.len()).map_err(context)?;
                for (input, g) in inputs.iter().zip(grads) {
                    let (Some(input), Some(g)) = (input, g) else {
                        continue;
                    };
                    if g.shape() != &input.shape || g.dtype() != input.dtype {
                        return Err(Error::Autodiff(format!(
                            "the backward of `{}` returned a {} gradient of shape {} for an input of \
                             {} {}",
                            op.name(),
                            g.dtype(),
                            g.shape(),
                            input.dtype,
                            input.shape
                        )));
                    }
                    let acc = match pending.remove(&input.id) {
                        Some(prev) => prev.add(&g)?,
                        None => g,
                    };
                    pending.insert(input.id, acc);
                }
            }
        }
    }
    Ok(store)
}

fn lock<T>(m: &std::sync::Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>> {
    m.lock()
        .map_err(|_| Error::Autodiff("graph lock poisoned by a panic in another thread".into()))
}

impl<B: Backend> std::fmt::Debug for GradStore<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.grads.iter()).finish()
    }
}
