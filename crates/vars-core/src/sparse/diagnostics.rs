//! Per-step introspection of the solvers, returned as data.
//!
//! [`Diagnostics`] says what to record; it is **off by default**, and a solver given
//! `Diagnostics::off()` runs no extra op and no host transfer for it (the recorder is `None` and
//! every hook is a branch on it). When on, each recorded step costs a few reductions and one
//! small transfer per quantity, and a recorded code keeps its tensor alive.
//!
//! Recorded per step ([`StepRecord`]), all from the code `a_k` after step `k` (step 0 is the
//! initial guess):
//! - the code itself (a detached handle, optional);
//! - the energy `E(a_k)` per problem, whose meaning is given once per trace by
//!   [`Trace::energy_kind`]: exact for the soft-threshold / identity shrinks with a symmetric
//!   `G`; for the GELU shrink or `W·G·W` the plain Lasso energy as a *surrogate* (it may rise),
//!   see [`EnergyKind`];
//! - sparsity: exact zeros and entries with `|a| < ε`;
//! - the reconstruction residual `‖x − D a_k‖` per problem (when `x` or `‖x‖²` is known);
//! - the Lasso KKT violation (only when the iteration *is* proximal gradient on the Lasso, else
//!   `None`);
//! - the fixed-point residual `max |a − S(a − (G_e a − b)/L; λ/L)|`, defined for every shrink
//!   and form: the convergence measure of the surrogate cases.

use super::problem::{EnergyKind, SparseProblem};
use crate::autodiff::no_grad;
use crate::{Backend, Result, Tensor};

/// What to record at each step. `Default` is [`Diagnostics::off`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Diagnostics {
    /// Keep a (detached) handle to every recorded code.
    pub code: bool,
    /// `E(a_k)` per problem.
    pub energy: bool,
    /// Count exact zeros and entries with `|a| < ε` for this `ε`.
    pub sparsity_eps: Option<f64>,
    /// `‖x − D a_k‖` per problem.
    pub residual_norm: bool,
    /// The Lasso KKT violation (recorded only for [`EnergyKind::Exact`] problems).
    pub kkt: bool,
    /// `max |a − F(a)|` over the batch.
    pub fixed_point_residual: bool,
    /// Record every `every`-th step (and always step 0 and the last); 0 is read as 1.
    pub every: usize,
}

impl Diagnostics {
    /// Nothing recorded, nothing computed (the default).
    pub fn off() -> Self {
        Diagnostics::default()
    }

    /// Everything except the codes, every step, with `ε = 1e-3` for the sparsity count.
    pub fn all() -> Self {
        Diagnostics {
            code: false,
            energy: true,
            sparsity_eps: Some(1e-3),
            residual_norm: true,
            kkt: true,
            fixed_point_residual: true,
            every: 1,
        }
    }

    /// Only the energy, every step.
    pub fn energy_only() -> Self {
        Diagnostics {
            energy: true,
            every: 1,
            ..Diagnostics::default()
        }
    }

    /// The same selection, also keeping the codes.
    pub fn with_codes(self) -> Self {
        Diagnostics { code: true, ..self }
    }

    /// Whether anything is recorded.
    pub fn is_on(&self) -> bool {
        self.code
            || self.energy
            || self.sparsity_eps.is_some()
            || self.residual_norm
            || self.kkt
            || self.fixed_point_residual
    }
}

/// Sparsity counts of one code (over the whole batch).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sparsity {
    /// Number of code entries.
    pub total: usize,
    /// Entries that are exactly 0.
    pub exact_zeros: usize,
    /// Entries with `|a| < eps` (the GELU shrink leaks small values, so this is the meaningful
    /// count for it; spec §7.1).
    pub below_eps: usize,
    /// The `ε` of `below_eps`.
    pub eps: f64,
}

impl Sparsity {
    /// Fraction of exact zeros.
    pub fn zero_fraction(&self) -> f64 {
        self.exact_zeros as f64 / self.total.max(1) as f64
    }
    /// Fraction of entries below `eps` in magnitude.
    pub fn small_fraction(&self) -> f64 {
        self.below_eps as f64 / self.total.max(1) as f64
    }
}

/// The quantities recorded after one step (fields are `None` when not requested or undefined).
#[derive(Debug, Clone)]
pub struct StepRecord<B: Backend> {
    /// Step index; 0 is the initial guess.
    pub step: usize,
    /// LCA only: the time `t = step·dt`, in the units of `τ`.
    pub time: Option<f64>,
    /// The code `a_k` (a detached handle), when [`Diagnostics::code`] is on.
    pub code: Option<Tensor<B>>,
    /// Per problem (flattened batch); see [`Trace::energy_kind`] for what it means.
    pub energy: Option<Vec<f64>>,
    /// Exact zeros and `|a| < ε` over the whole batch.
    pub sparsity: Option<Sparsity>,
    /// `‖x − D a‖` per problem.
    pub residual_norm: Option<Vec<f64>>,
    /// Largest Lasso KKT violation over the batch; `None` when the iteration is not proximal
    /// gradient on the Lasso (GELU, `W·G·W`, asymmetric `G`).
    pub kkt_violation: Option<f64>,
    /// `max |a − F(a)|` over the batch.
    pub fixed_point_residual: Option<f64>,
}

impl<B: Backend> StepRecord<B> {
    /// The energy summed over the batch.
    pub fn total_energy(&self) -> Option<f64> {
        self.energy.as_ref().map(|e| e.iter().sum())
    }
}

/// The recorded trajectory of one solve.
#[derive(Debug, Clone)]
pub struct Trace<B: Backend> {
    /// What the recorded energies mean (exact energy or a surrogate, and why).
    pub energy_kind: EnergyKind,
    /// Whether the energies include `½‖x‖²` (otherwise they are relative to it).
    pub energy_includes_signal: bool,
    /// One record per recorded step, in order; step 0 is the initial guess.
    pub records: Vec<StepRecord<B>>,
}

impl<B: Backend> Trace<B> {
    /// `(step, total energy)` for every record that has an energy.
    pub fn energies(&self) -> Vec<(usize, f64)> {
        self.records
            .iter()
            .filter_map(|r| r.total_energy().map(|e| (r.step, e)))
            .collect()
    }

    /// The last record.
    pub fn last(&self) -> Option<&StepRecord<B>> {
        self.records.last()
    }
}

/// Records steps into a [`Trace`]; built only when diagnostics are on.
pub(crate) struct Recorder<'a, B: Backend> {
    cfg: Diagnostics,
    problem: &'a SparseProblem<B>,
    g_e: Tensor<B>,
    l: Tensor<B>,
    lasso: bool,
    trace: Trace<B>,
}

impl<'a, B: Backend> Recorder<'a, B> {
    /// `None` when `cfg` records nothing: the solvers then do no diagnostic work at all.
    pub(crate) fn new(
        cfg: &Diagnostics,
        problem: &'a SparseProblem<B>,
        g_e: &Tensor<B>,
        l: &Tensor<B>,
    ) -> Result<Option<Self>> {
        if !cfg.is_on() {
            return Ok(None);
        }
        let energy_kind = problem.energy_kind()?;
        Ok(Some(Recorder {
            cfg: *cfg,
            problem,
            g_e: g_e.detach(),
            l: l.detach(),
            lasso: energy_kind == EnergyKind::Exact,
            trace: Trace {
                energy_kind,
                energy_includes_signal: problem.energy_includes_signal(),
                records: Vec::new(),
            },
        }))
    }

    /// Records step `step` (code `a`) if it is due (`last` forces it).
    pub(crate) fn record(
        &mut self,
        step: usize,
        time: Option<f64>,
        a: &Tensor<B>,
        last: bool,
    ) -> Result<()> {
        let every = self.cfg.every.max(1);
        if !(step == 0 || last || step % every == 0) {
            return Ok(());
        }
        if self.trace.records.last().is_some_and(|r| r.step == step) {
            return Ok(());
        }
        let rec = no_grad(|| -> Result<StepRecord<B>> {
            let a = a.detach();
            let p = self.problem;
            let energy = if self.cfg.energy {
                Some(p.energy(&a)?.to_vec_f64()?)
            } else {
                None
            };
            let sparsity = match self.cfg.sparsity_eps {
                Some(eps) => {
                    let zero = Tensor::scalar(0.0, a.dtype(), a.device())?;
                    let eps_t = Tensor::scalar(eps, a.dtype(), a.device())?;
                    let all: Vec<usize> = (0..a.rank()).collect();
                    let exact = a.eq(&zero)?.sum(&all, false)?.to_vec_f64()?[0];
                    let small = a.abs()?.lt(&eps_t)?.sum(&all, false)?.to_vec_f64()?[0];
                    Some(Sparsity {
                        total: a.elem_count(),
                        exact_zeros: exact.round() as usize,
                        below_eps: small.round() as usize,
                        eps,
                    })
                }
                None => None,
            };
            let residual_norm = if self.cfg.residual_norm {
                p.residual_norm(&a)?.map(|r| r.to_vec_f64()).transpose()?
            } else {
                None
            };
            let kkt_violation = if self.cfg.kkt && self.lasso {
                Some(max_of(&p.kkt_violation(&a)?)?)
            } else {
                None
            };
            let fixed_point_residual = if self.cfg.fixed_point_residual {
                Some(max_of(&p.fixed_point_residual(&self.g_e, &self.l, &a)?)?)
            } else {
                None
            };
            Ok(StepRecord {
                step,
                time,
                code: self.cfg.code.then(|| a.clone()),
                energy,
                sparsity,
                residual_norm,
                kkt_violation,
                fixed_point_residual,
            })
        })?;
        self.trace.records.push(rec);
        Ok(())
    }

    pub(crate) fn finish(self) -> Trace<B> {
        self.trace
    }
}

/// The maximum of a tensor's entries, on the host.
pub(crate) fn max_of<B: Backend>(t: &Tensor<B>) -> Result<f64> {
    Ok(t.to_vec_f64()?
        .into_iter()
        .fold(f64::NEG_INFINITY, f64::max))
}
