//! VARS‑S block (vars-spec §3.5) — being written; see the module-level task.

use crate::config::VarsSOptions;
use crate::layers::{Init, Mode};
use crate::params::{ParamKind, Parameters};
use crate::{Result, VitError};
use vars_core::{Backend, Tensor};

/// The VARS‑S block.
#[derive(Debug, Clone)]
pub struct VarsSBlock<B: Backend> {
    kernel: Tensor<B>,
}

impl<B: Backend> VarsSBlock<B> {
    /// Builds the block.
    pub fn new(
        init: &mut Init<'_, B>,
        _dim: usize,
        _grid: usize,
        _mlp_hidden: usize,
        _drop_path: f64,
        _options: VarsSOptions,
    ) -> Result<Self> {
        Ok(VarsSBlock {
            kernel: init.full(&[1], 0.0)?,
        })
    }
    /// Forward.
    pub fn forward(&self, _x: &Tensor<B>, _mode: Mode, _stream: u64) -> Result<Tensor<B>> {
        Err(VitError::config("VARS-S", "in progress"))
    }
    /// L update.
    pub fn update_step_constants(&mut self, _rate: f64) -> Result<()> {
        Ok(())
    }
}

impl<B: Backend> Parameters<B> for VarsSBlock<B> {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor<B>, ParamKind)) {
        f("kernel", &self.kernel, ParamKind::Trainable);
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<B>)) {
        f("kernel", &mut self.kernel);
    }
}
