//! The two MLP forms of RVT (vars-spec §4.4), hidden width `ratio·C`.
//!
//! - **Convolutional FFN** (every width but 768): tokens → `(B, C, S, S)`, `fc1` 1×1 conv → `bn1`
//!   → GELU → `dwconv` depthwise 3×3 → `bn2` → GELU → `fc2` 1×1 conv → `bn3` → tokens.
//!   `8C² + 63C` parameters at ratio 4.
//! - **Linear FFN** (`C = 768`, RVT‑B): `fc1` → GELU → `fc2`. `8C² + 5C` parameters.
//!
//! Dropout is 0 in every reference configuration and is omitted.

use super::{BatchNorm, Conv2d, Init, Linear, Mode};
use crate::params::{visit_child, visit_child_mut, ParamKind, Parameters};
use crate::{Result, VitError};
use vars_core::{Backend, Tensor, Window2d};

/// The convolutional FFN with BatchNorms (names `fc1, bn1, dwconv, bn2, fc2, bn3`).
#[derive(Debug, Clone)]
pub struct ConvFfn<B: Backend> {
    /// 1×1 conv `C → hidden`.
    pub fc1: Conv2d<B>,
    /// BatchNorm2d(hidden).
    pub bn1: BatchNorm<B>,
    /// Depthwise 3×3, padding 1.
    pub dwconv: Conv2d<B>,
    /// BatchNorm2d(hidden).
    pub bn2: BatchNorm<B>,
    /// 1×1 conv `hidden → C`.
    pub fc2: Conv2d<B>,
    /// BatchNorm2d(C).
    pub bn3: BatchNorm<B>,
}

/// The RVT MLP; which form is fixed at construction by the width.
#[derive(Debug, Clone)]
pub enum Mlp<B: Backend> {
    /// The convolutional FFN.
    Conv(Box<ConvFfn<B>>),
    /// The linear FFN of RVT‑B (names `fc1, fc2`).
    Linear {
        /// `C → hidden`.
        fc1: Linear<B>,
        /// `hidden → C`.
        fc2: Linear<B>,
    },
}

impl<B: Backend> Mlp<B> {
    /// The reference's choice: linear when `width == 768`, convolutional otherwise.
    pub fn new(init: &mut Init<'_, B>, width: usize, hidden: usize) -> Result<Self> {
        if width == 768 {
            return Ok(Mlp::Linear {
                fc1: Linear::new(init, width, hidden, true)?,
                fc2: Linear::new(init, hidden, width, true)?,
            });
        }
        Ok(Mlp::Conv(Box::new(ConvFfn {
            fc1: Conv2d::new(init, width, hidden, Window2d::square(1, 1, 0), 1)?,
            bn1: BatchNorm::new(init, hidden)?,
            dwconv: Conv2d::new(init, hidden, hidden, Window2d::square(3, 1, 1), hidden)?,
            bn2: BatchNorm::new(init, hidden)?,
            fc2: Conv2d::new(init, hidden, width, Window2d::square(1, 1, 0), 1)?,
            bn3: BatchNorm::new(init, width)?,
        })))
    }

    /// The linear FFN (`fc1` → GELU → `fc2`) at any width: timm's ViT/DeiT MLP.
    pub fn linear(init: &mut Init<'_, B>, width: usize, hidden: usize) -> Result<Self> {
        Ok(Mlp::Linear {
            fc1: Linear::new(init, width, hidden, true)?,
            fc2: Linear::new(init, hidden, width, true)?,
        })
    }

    /// Tokens `(B, N, C)` with `N = S²` → `(B, N, C)`.
    pub fn forward(&self, x: &Tensor<B>, mode: Mode) -> Result<Tensor<B>> {
        match self {
            Mlp::Linear { fc1, fc2 } => Ok(fc2.forward(&fc1.forward(x)?.gelu()?)?),
            Mlp::Conv(ffn) => {
                let ConvFfn {
                    fc1,
                    bn1,
                    dwconv,
                    bn2,
                    fc2,
                    bn3,
                } = &**ffn;
                let (b, n, c) = (x.dims()[0], x.dims()[1], x.dims()[2]);
                let s = grid_side(n, "Mlp")?;
                let map = x.transpose(1, 2)?.reshape([b, c, s, s])?;
                let h = bn1.forward(&fc1.forward(&map)?, mode)?.gelu()?;
                let h = bn2.forward(&dwconv.forward(&h)?, mode)?.gelu()?;
                let y = bn3.forward(&fc2.forward(&h)?, mode)?;
                Ok(y.reshape([b, c, n])?.transpose(1, 2)?)
            }
        }
    }
}

/// `√n` when `n` is a perfect square (the token grid side), else an input error.
pub fn grid_side(n: usize, module: &'static str) -> Result<usize> {
    let s = (n as f64).sqrt().round() as usize;
    if s * s != n {
        return Err(VitError::Input {
            module,
            problem: format!("{n} tokens do not form a square grid"),
        });
    }
    Ok(s)
}

impl<B: Backend> Parameters<B> for Mlp<B> {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor<B>, ParamKind)) {
        match self {
            Mlp::Linear { fc1, fc2 } => {
                visit_child("fc1", fc1, f);
                visit_child("fc2", fc2, f);
            }
            Mlp::Conv(ffn) => {
                let ConvFfn {
                    fc1,
                    bn1,
                    dwconv,
                    bn2,
                    fc2,
                    bn3,
                } = &**ffn;
                visit_child("fc1", fc1, f);
                visit_child("bn1", bn1, f);
                visit_child("dwconv", dwconv, f);
                visit_child("bn2", bn2, f);
                visit_child("fc2", fc2, f);
                visit_child("bn3", bn3, f);
            }
        }
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<B>)) {
        match self {
            Mlp::Linear { fc1, fc2 } => {
                visit_child_mut("fc1", fc1, f);
                visit_child_mut("fc2", fc2, f);
            }
            Mlp::Conv(ffn) => {
                let ConvFfn {
                    fc1,
                    bn1,
                    dwconv,
                    bn2,
                    fc2,
                    bn3,
                } = &mut **ffn;
                visit_child_mut("fc1", fc1, f);
                visit_child_mut("bn1", bn1, f);
                visit_child_mut("dwconv", dwconv, f);
                visit_child_mut("bn2", bn2, f);
                visit_child_mut("fc2", fc2, f);
                visit_child_mut("bn3", bn3, f);
            }
        }
    }
}
