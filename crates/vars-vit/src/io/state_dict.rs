//! [`StateDict`]: an ordered map from official state-dict names to tensors, and loading it into a
//! model, strictly or not.
//!
//! Strict loading (the default for real checkpoints) is all-or-nothing: every name the model
//! visits must be present with the model's shape and dtype, and every key of the dictionary must
//! be used; otherwise nothing is assigned and the error lists **every** missing, unexpected and
//! mismatched key. Non-strict loading assigns what matches and returns the same [`LoadReport`],
//! as PyTorch's `load_state_dict(strict=False)` does (which, unlike PyTorch, also skips
//! shape/dtype mismatches instead of raising).

use crate::{Parameters, Result, VitError};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use vars_core::{Backend, DType, Shape, Tensor};

/// Name → tensor, in insertion order (file data order after a load, visit order after
/// [`StateDict::from_model`]), plus the free-form string metadata of a safetensors header
/// (`__metadata__`).
///
/// Tensors are reference-counted views, so building sub-dictionaries, prefixing keys and loading
/// into a model never copy data.
#[derive(Clone)]
pub struct StateDict<B: Backend> {
    entries: Vec<(String, Tensor<B>)>,
    index: HashMap<String, usize>,
    metadata: BTreeMap<String, String>,
}

impl<B: Backend> fmt::Debug for StateDict<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateDict")
            .field("tensors", &DebugEntries(&self.entries))
            .field("metadata", &self.metadata)
            .finish()
    }
}

struct DebugEntries<'a, B: Backend>(&'a [(String, Tensor<B>)]);

impl<B: Backend> fmt::Debug for DebugEntries<'_, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, t)| (k, t)))
            .finish()
    }
}

impl<B: Backend> Default for StateDict<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: Backend> StateDict<B> {
    pub fn new() -> Self {
        StateDict {
            entries: Vec::new(),
            index: HashMap::new(),
            metadata: BTreeMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    pub fn get(&self, key: &str) -> Option<&Tensor<B>> {
        self.index.get(key).map(|&i| &self.entries[i].1)
    }

    /// Inserts `tensor` under `key`. A new key goes last; an existing key keeps its position and
    /// the previous tensor is returned.
    pub fn insert(&mut self, key: impl Into<String>, tensor: Tensor<B>) -> Option<Tensor<B>> {
        let key = key.into();
        match self.index.get(&key) {
            Some(&i) => Some(std::mem::replace(&mut self.entries[i].1, tensor)),
            None => {
                self.index.insert(key.clone(), self.entries.len());
                self.entries.push((key, tensor));
                None
            }
        }
    }

    /// Removes `key` (O(n): the positions of later keys shift down).
    pub fn remove(&mut self, key: &str) -> Option<Tensor<B>> {
        let i = self.index.remove(key)?;
        let (_, t) = self.entries.remove(i);
        for (_, pos) in self.index.iter_mut() {
            if *pos > i {
                *pos -= 1;
            }
        }
        Some(t)
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// `(key, tensor)` pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor<B>)> + '_ {
        self.entries.iter().map(|(k, t)| (k.as_str(), t))
    }

    /// The string metadata (`__metadata__` in a safetensors header), sorted by key.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Mutable metadata; what is here when [`StateDict::save`] runs is written to the file.
    pub fn metadata_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.metadata
    }

    /// The entries whose key starts with `prefix`, with the prefix removed, in order (metadata
    /// kept). `strip_prefix("param.")` turns an official fixture into a model state dict.
    pub fn strip_prefix(&self, prefix: &str) -> Self {
        let mut out = StateDict::new();
        for (k, t) in &self.entries {
            if let Some(rest) = k.strip_prefix(prefix) {
                out.insert(rest, t.clone());
            }
        }
        out.metadata = self.metadata.clone();
        out
    }

    /// Every key with `prefix` prepended (the inverse of [`StateDict::strip_prefix`]).
    pub fn with_prefix(&self, prefix: &str) -> Self {
        let mut out = StateDict::new();
        for (k, t) in &self.entries {
            out.insert(format!("{prefix}{k}"), t.clone());
        }
        out.metadata = self.metadata.clone();
        out
    }

    /// Every floating-point tensor converted to `dtype` (a float type); integer tensors such as
    /// `num_batches_tracked` are kept. Use it to load an F32 checkpoint into an F64 model.
    pub fn to_float_dtype(&self, dtype: DType) -> Result<Self> {
        if !dtype.is_float() {
            return Err(vars_core::Error::UnsupportedDType {
                op: "StateDict::to_float_dtype",
                dtype,
                supported: "f32, f64",
            }
            .into());
        }
        let mut out = StateDict::new();
        for (k, t) in &self.entries {
            let t = if t.dtype().is_float() && t.dtype() != dtype {
                t.to_dtype(dtype)?
            } else {
                t.clone()
            };
            out.insert(k.clone(), t);
        }
        out.metadata = self.metadata.clone();
        Ok(out)
    }

    /// The model's tensors under their state-dict names, in visit order, detached from any
    /// backward graph (the storage is shared, not copied). Errors if a name is visited twice.
    pub fn from_model(model: &(impl Parameters<B> + ?Sized)) -> Result<Self> {
        let mut out = StateDict::new();
        let mut duplicate = None;
        model.visit(&mut |name, t, _| {
            if out.insert(name, t.detach()).is_some() && duplicate.is_none() {
                duplicate = Some(name.to_string());
            }
        });
        match duplicate {
            Some(name) => Err(VitError::DuplicateName(name)),
            None => Ok(out),
        }
    }

    /// Assigns this dictionary's tensors to the model's tensors of the same name.
    ///
    /// Every name the model visits is checked: present here (else *missing*), with the model's
    /// shape and dtype (else *mismatched*); keys here that the model does not visit are
    /// *unexpected*.
    ///
    /// - `strict = true`: any problem fails with [`VitError::StateDictMismatch`] listing all of
    ///   them, sorted, and the model is left untouched.
    /// - `strict = false`: the matching tensors are assigned and the report lists the rest.
    ///
    /// An assigned tensor shares this dictionary's storage (tensors are immutable). It is moved
    /// to the model tensor's device when that differs, and becomes a leaf variable
    /// ([`Tensor::requires_grad`]) when the tensor it replaces was tracked, so loading into a
    /// model set up for training keeps it trainable while frozen tensors stay frozen.
    pub fn load_into(
        &self,
        model: &mut (impl Parameters<B> + ?Sized),
        strict: bool,
    ) -> Result<LoadReport> {
        struct Slot<D> {
            shape: Shape,
            dtype: DType,
            device: D,
            tracked: bool,
        }
        let mut slots: Vec<(String, Slot<B::Device>)> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut duplicate = None;
        model.visit(&mut |name, t, _| {
            if !seen.insert(name.to_string()) && duplicate.is_none() {
                duplicate = Some(name.to_string());
            }
            slots.push((
                name.to_string(),
                Slot {
                    shape: t.shape().clone(),
                    dtype: t.dtype(),
                    device: t.device().clone(),
                    tracked: t.is_tracked(),
                },
            ));
        });
        if let Some(name) = duplicate {
            return Err(VitError::DuplicateName(name));
        }

        let mut report = LoadReport::default();
        let mut ready: HashMap<&str, Tensor<B>> = HashMap::new();
        for (name, slot) in &slots {
            let Some(src) = self.get(name) else {
                report.missing.push(name.clone());
                continue;
            };
            if src.shape() != &slot.shape || src.dtype() != slot.dtype {
                report.mismatched.push(Mismatch {
                    key: name.clone(),
                    expected_shape: slot.shape.clone(),
                    expected_dtype: slot.dtype,
                    found_shape: src.shape().clone(),
                    found_dtype: src.dtype(),
                });
                continue;
            }
            report.loaded.push(name.clone());
            ready.insert(name.as_str(), src.clone());
        }
        report.unexpected = self
            .keys()
            .filter(|k| !seen.contains(*k))
            .map(str::to_string)
            .collect();
        report.missing.sort();
        report.unexpected.sort();
        report.mismatched.sort_by(|a, b| a.key.cmp(&b.key));

        if strict && !report.is_complete() {
            return Err(VitError::StateDictMismatch(report));
        }

        // Prepare every replacement before touching the model, so an error (a failed device
        // transfer) leaves it unchanged.
        for (name, slot) in &slots {
            let Some(t) = ready.get_mut(name.as_str()) else {
                continue;
            };
            if t.device() != &slot.device {
                *t = Tensor::from_host(t.to_host()?, t.shape().clone(), &slot.device)?;
            }
            if slot.tracked && t.dtype().is_float() {
                *t = t.requires_grad()?;
            }
        }
        model.visit_mut(&mut |name, t| {
            if let Some(new) = ready.get(name) {
                *t = new.clone();
            }
        });
        Ok(report)
    }
}

impl<B: Backend> IntoIterator for StateDict<B> {
    type Item = (String, Tensor<B>);
    type IntoIter = std::vec::IntoIter<(String, Tensor<B>)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

/// A key present on both sides whose shape or dtype disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub key: String,
    /// What the model holds.
    pub expected_shape: Shape,
    pub expected_dtype: DType,
    /// What the state dict holds.
    pub found_shape: Shape,
    pub found_dtype: DType,
}

/// The outcome of [`StateDict::load_into`]. `missing`, `unexpected` and `mismatched` are sorted
/// by key; `loaded` is in the model's visit order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Keys assigned to the model.
    pub loaded: Vec<String>,
    /// Keys the model has and the state dict lacks.
    pub missing: Vec<String>,
    /// Keys the state dict has and the model lacks.
    pub unexpected: Vec<String>,
    /// Keys on both sides with a different shape or dtype (not assigned).
    pub mismatched: Vec<Mismatch>,
}

impl LoadReport {
    /// Whether every key lined up (what strict mode requires).
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mismatched.is_empty()
    }

    /// The prefix that, stripped from unexpected keys, turns the most missing keys into present
    /// ones (e.g. `param.` for an official fixture loaded without [`StateDict::strip_prefix`]),
    /// with that count.
    fn prefix_hint(&self) -> Option<(&str, usize)> {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for m in &self.missing {
            for u in &self.unexpected {
                if u.len() > m.len() && u.ends_with(m.as_str()) {
                    *counts.entry(&u[..u.len() - m.len()]).or_default() += 1;
                }
            }
        }
        counts
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0)))
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "state dict does not match the model: {} missing, {} unexpected, {} mismatched \
             ({} matching)",
            self.missing.len(),
            self.unexpected.len(),
            self.mismatched.len(),
            self.loaded.len()
        )?;
        if !self.missing.is_empty() {
            write!(f, "\n  missing keys: {}", self.missing.join(", "))?;
        }
        if !self.unexpected.is_empty() {
            write!(f, "\n  unexpected keys: {}", self.unexpected.join(", "))?;
        }
        for m in &self.mismatched {
            write!(
                f,
                "\n  mismatched `{}`: model has {} {}, state dict has {} {}",
                m.key, m.expected_dtype, m.expected_shape, m.found_dtype, m.found_shape
            )?;
        }
        if let Some((prefix, n)) = self.prefix_hint() {
            write!(
                f,
                "\n  hint: {n} of the missing keys are present with the prefix `{prefix}`; \
                 use StateDict::strip_prefix(\"{prefix}\")"
            )?;
        }
        Ok(())
    }
}
