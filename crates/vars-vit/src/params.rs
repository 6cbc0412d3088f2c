//! Named access to a model's tensors, the bridge between models and checkpoints.
//!
//! A model implements [`Parameters`] by visiting each tensor of its PyTorch `state_dict` (trainable
//! parameters, frozen parameters such as Ω, and BatchNorm buffers such as `running_mean` and
//! `num_batches_tracked`) under its **official name**, e.g. `transformers.0.blocks.1.attn.qkv.weight`
//! (vars-spec §4.8). Sub-modules are visited with their attribute name as a prefix joined by `.`
//! ([`visit_child`], [`visit_child_mut`]); a `Vec` of modules (`blocks`, `transformers`, `pools`)
//! prefixes each element with its index, as `nn.ModuleList` does. With names matching 1:1, an
//! official checkpoint loads without a renaming table, and a checkpoint saved here loads in PyTorch.
//!
//! The trait is deliberately shallow: two visitors and nothing else. Everything a checkpoint needs
//! (shape, dtype, device, whether a tensor is a leaf variable) is read off the tensors themselves.

use std::collections::HashSet;
use vars_core::{Autodiff, Backend, Tensor};

/// What a state-dict tensor is, as PyTorch distinguishes it: the optimiser updates only
/// [`ParamKind::Trainable`] tensors; parameter counts (vars-spec §5) report trainable and frozen
/// separately and leave buffers out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamKind {
    /// An `nn.Parameter` with `requires_grad = True`.
    Trainable,
    /// An `nn.Parameter` with `requires_grad = False`: Ω (`rand_matrix`), the unused `attn.L`,
    /// VARS‑S `L` and `kernel_norm`.
    Frozen,
    /// A registered buffer: BatchNorm `running_mean`, `running_var`, `num_batches_tracked`.
    Buffer,
}

/// A module whose state-dict tensors can be enumerated and replaced by name.
///
/// Both visitors must produce the same names in the same order, each name once.
pub trait Parameters<B: Backend> {
    /// Calls `f` with the official state-dict name, the tensor and its [`ParamKind`], for every
    /// tensor.
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor<B>, ParamKind));

    /// Like [`Parameters::visit`], with mutable access so a loader can assign new tensors.
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<B>));
}

/// `prefix.name`, or `name` when the prefix is empty.
pub fn join_name(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Visits `child` with every name prefixed by `prefix.` (for a sub-module field).
pub fn visit_child<B: Backend>(
    prefix: &str,
    child: &(impl Parameters<B> + ?Sized),
    f: &mut dyn FnMut(&str, &Tensor<B>, ParamKind),
) {
    let mut full = String::new();
    child.visit(&mut |name, t, kind| {
        set_joined(&mut full, prefix, name);
        f(&full, t, kind)
    });
}

/// Mutable counterpart of [`visit_child`].
pub fn visit_child_mut<B: Backend>(
    prefix: &str,
    child: &mut (impl Parameters<B> + ?Sized),
    f: &mut dyn FnMut(&str, &mut Tensor<B>),
) {
    let mut full = String::new();
    child.visit_mut(&mut |name, t| {
        set_joined(&mut full, prefix, name);
        f(&full, t)
    });
}

fn set_joined(buf: &mut String, prefix: &str, name: &str) {
    buf.clear();
    buf.push_str(prefix);
    if !prefix.is_empty() {
        buf.push('.');
    }
    buf.push_str(name);
}

/// A list of modules, named `0.…`, `1.…`, … like PyTorch's `nn.ModuleList`.
impl<B: Backend, P: Parameters<B>> Parameters<B> for Vec<P> {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor<B>, ParamKind)) {
        for (i, child) in self.iter().enumerate() {
            visit_child(&i.to_string(), child, f);
        }
    }

    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<B>)) {
        for (i, child) in self.iter_mut().enumerate() {
            visit_child_mut(&i.to_string(), child, f);
        }
    }
}

/// Sums of element counts per [`ParamKind`] over a module's tensors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParamCounts {
    /// Elements of trainable parameters.
    pub trainable: usize,
    /// Elements of frozen parameters.
    pub frozen: usize,
    /// Elements of buffers (not counted by the reference's tables).
    pub buffers: usize,
}

/// Counts a module's parameters as the reference's tables do (vars-spec §5).
pub fn count_parameters<B: Backend>(module: &(impl Parameters<B> + ?Sized)) -> ParamCounts {
    let mut c = ParamCounts::default();
    module.visit(&mut |_, t, kind| {
        let n = t.elem_count();
        match kind {
            ParamKind::Trainable => c.trainable += n,
            ParamKind::Frozen => c.frozen += n,
            ParamKind::Buffer => c.buffers += n,
        }
    });
    c
}

/// Replaces every trainable tensor of `module` by a leaf variable, so a later load keeps it
/// trainable and a backward reports its gradient.
pub fn mark_trainable<B: Backend>(
    module: &mut (impl Parameters<Autodiff<B>> + ?Sized),
) -> crate::Result<()> {
    let mut names = HashSet::new();
    module.visit(&mut |n, _, kind| {
        if kind == ParamKind::Trainable {
            names.insert(n.to_string());
        }
    });
    let mut error = None;
    module.visit_mut(&mut |n, t| {
        if names.contains(n) && error.is_none() {
            match t.requires_grad() {
                Ok(v) => *t = v,
                Err(e) => error = Some(e),
            }
        }
    });
    match error {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
