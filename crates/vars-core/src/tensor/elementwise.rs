//! Elementwise ops: unary functions, scalar arithmetic, broadcasting binary ops, comparisons and
//! `where_cond`. Binary ops broadcast with stride-0 views, so the backend sees equal shapes.

use super::Tensor;
use crate::autodiff::Op;
use crate::{Backend, BinaryOp, Result, UnaryOp};

macro_rules! unary_methods {
    ($($(#[$doc:meta])* $name:ident => $op:expr;)*) => {
        $( $(#[$doc])* pub fn $name(&self) -> Result<Self> { self.unary($op) } )*
    };
}

macro_rules! binary_methods {
    ($($(#[$doc:meta])* $name:ident => $op:ident;)*) => {
        $( $(#[$doc])* pub fn $name(&self, rhs: &Self) -> Result<Self> { self.binary(rhs, BinaryOp::$op) } )*
    };
}

impl<B: Backend> Tensor<B> {
    /// Applies an elementwise [`UnaryOp`].
    pub fn unary(&self, op: UnaryOp) -> Result<Self> {
        let storage = B::unary(op, self.storage(), self.layout())?;
        let shape = self.shape().clone();
        // The saved tensors share storage with the input/output but carry no graph node, so a
        // node never keeps itself alive.
        let x = || self.detach();
        Ok(Self::from_op_with_output(
            storage,
            shape,
            &[self],
            |out| match op {
                UnaryOp::Neg => Op::Neg,
                UnaryOp::Exp => Op::Exp { out },
                UnaryOp::Log => Op::Log { x: x() },
                UnaryOp::Sqrt => Op::Sqrt { out },
                UnaryOp::Sqr => Op::Sqr { x: x() },
                UnaryOp::Abs => Op::Abs { x: x() },
                UnaryOp::Relu => Op::Relu { x: x() },
                UnaryOp::Gelu => Op::Gelu { x: x() },
                UnaryOp::Erf => Op::Erf { x: x() },
                UnaryOp::Sigmoid => Op::Sigmoid { out },
                UnaryOp::Tanh => Op::Tanh { out },
                UnaryOp::Recip => Op::Recip { out },
                UnaryOp::Powf(e) => Op::Powf {
                    x: x(),
                    exponent: e,
                },
                UnaryOp::Affine { mul, .. } => Op::Scale { factor: mul },
                UnaryOp::ClampMin(c) => Op::ClampMin { x: x(), bound: c },
                UnaryOp::ClampMax(c) => Op::ClampMax { x: x(), bound: c },
                // Piecewise-constant functions: zero gradient almost everywhere.
                UnaryOp::Sign | UnaryOp::Step | UnaryOp::GeluDerivative => Op::ZeroGrad,
            },
        ))
    }

    unary_methods! {
        neg => UnaryOp::Neg;
        exp => UnaryOp::Exp;
        /// Natural logarithm.
        log => UnaryOp::Log;
        sqrt => UnaryOp::Sqrt;
        sqr => UnaryOp::Sqr;
        abs => UnaryOp::Abs;
        /// `sign(0) = 0`; its gradient is 0 everywhere (PyTorch's convention).
        sign => UnaryOp::Sign;
        relu => UnaryOp::Relu;
        /// Exact GELU, `x·Φ(x)` with the error function (not the tanh approximation).
        gelu => UnaryOp::Gelu;
        erf => UnaryOp::Erf;
        sigmoid => UnaryOp::Sigmoid;
        tanh => UnaryOp::Tanh;
        /// `1/x`.
        recip => UnaryOp::Recip;
    }

    /// `x^e` for a scalar exponent.
    pub fn powf(&self, e: f64) -> Result<Self> {
        self.unary(UnaryOp::Powf(e))
    }
    /// `x·mul + add`.
    pub fn affine(&self, mul: f64, add: f64) -> Result<Self> {
        self.unary(UnaryOp::Affine { mul, add })
    }
    pub fn add_scalar(&self, c: f64) -> Result<Self> {
        self.affine(1.0, c)
    }
    pub fn mul_scalar(&self, c: f64) -> Result<Self> {
        self.affine(c, 0.0)
    }
    /// `max(x, lo)`; the gradient passes where `x ≥ lo` (PyTorch's `clamp_min`).
    pub fn clamp_min(&self, lo: f64) -> Result<Self> {
        self.unary(UnaryOp::ClampMin(lo))
    }
    /// `min(x, hi)`; the gradient passes where `x ≤ hi`.
    pub fn clamp_max(&self, hi: f64) -> Result<Self> {
        self.unary(UnaryOp::ClampMax(hi))
    }
    pub fn clamp(&self, lo: f64, hi: f64) -> Result<Self> {
        self.clamp_min(lo)?.clamp_max(hi)
    }

    /// Applies a broadcasting [`BinaryOp`]. Comparisons return 1/0 in the input dtype and are
    /// never tracked.
    pub fn binary(&self, rhs: &Self, op: BinaryOp) -> Result<Self> {
        self.same_dtype_device(op.name(), rhs)?;
        let shape = self.shape().broadcast_with(op.name(), rhs.shape())?;
        let lhs = self.broadcast_as(shape.clone())?;
        let rhs = rhs.broadcast_as(shape.clone())?;
        let storage = B::binary(op, lhs.storage(), lhs.layout(), rhs.storage(), rhs.layout())?;
        if op.is_comparison() {
            return Self::from_storage(storage, shape);
        }
        Ok(Self::from_op(storage, shape, &[&lhs, &rhs], || match op {
            BinaryOp::Add => Op::Add,
            BinaryOp::Sub => Op::Sub,
            BinaryOp::Mul => Op::Mul {
                lhs: lhs.detach(),
                rhs: rhs.detach(),
            },
            BinaryOp::Div => Op::Div {
                lhs: lhs.detach(),
                rhs: rhs.detach(),
            },
            BinaryOp::Maximum | BinaryOp::Minimum => Op::Select {
                lhs: lhs.detach(),
                rhs: rhs.detach(),
                maximum: op == BinaryOp::Maximum,
            },
            BinaryOp::SoftThreshold | BinaryOp::GeluShrink => Op::Shrink {
                z: lhs.detach(),
                t: rhs.detach(),
                gelu: op == BinaryOp::GeluShrink,
            },
            _ => unreachable!("comparisons return above"),
        }))
    }

    binary_methods! {
        add => Add;
        sub => Sub;
        mul => Mul;
        div => Div;
        maximum => Maximum;
        minimum => Minimum;
        eq => Eq;
        ne => Ne;
        lt => Lt;
        le => Le;
        gt => Gt;
        ge => Ge;
    }

    /// `cond ≠ 0 ? on_true : on_false`, broadcasting all three.
    pub fn where_cond(cond: &Self, on_true: &Self, on_false: &Self) -> Result<Self> {
        on_true.same_dtype_device("where_cond", on_false)?;
        let shape = cond
            .shape()
            .broadcast_with("where_cond", on_true.shape())?
            .broadcast_with("where_cond", on_false.shape())?;
        let c = cond.detach().broadcast_as(shape.clone())?;
        let t = on_true.broadcast_as(shape.clone())?;
        let f = on_false.broadcast_as(shape.clone())?;
        let storage = B::where_cond(
            c.storage(),
            c.layout(),
            t.storage(),
            t.layout(),
            f.storage(),
            f.layout(),
        )?;
        Ok(Self::from_op(storage, shape, &[&t, &f], || Op::Where {
            cond: c,
        }))
    }
}
