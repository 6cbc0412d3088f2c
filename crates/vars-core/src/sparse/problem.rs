//! The sparse-reconstruction problem (spec §1.1, §3.3): what is minimised, in which form, with
//! which shrink.
//!
//! For one signal column `x ∈ Rⁿ` and a dictionary `D ∈ R^{n×m}`
//!
//! ```text
//! E(a) = ½‖x − D a‖² + λ‖a‖₁
//!      = ½ aᵀG a − bᵀa + λ‖a‖₁ + ½‖x‖²,      G = DᵀD,  b = Dᵀx.
//! ```
//!
//! A [`SparseProblem`] holds a *batch* of such problems in the Gram form the layers use:
//! `G: (…, m, m)`, `b: (…, m, k)` (k columns sharing one dictionary, e.g. the `d` channels of a
//! head), codes `a: (…, m, k)`, `λ` broadcasting against the codes. The leading dims `…` (the
//! *problem batch*, e.g. `(B, H)`) broadcast between `G` and `b`. The energy of a batch element is
//! the sum of the energies of its k columns.
//!
//! Forms:
//! - [`SparseProblem::from_dictionary`]: `D` and `x` given; `G`, `b` and `½‖x‖²` are derived, so
//!   the energy and the reconstruction residual are exact.
//! - [`SparseProblem::from_gram`]: `G` and `b` only; the energy is known up to the constant
//!   `½‖x‖²` unless [`SparseProblem::with_signal_norm_sq`] supplies it.
//! - [`SparseProblem::with_learned_weight`]: the official LISTA form (spec §3.3 step 6): the
//!   iteration uses `G_e = W·G·W` (the same `W` on both sides, **not** transposed, as the
//!   reference), while the energy keeps the plain `G`.
//!
//! Shrinks ([`Shrink`], spec §0, §7.1), applied as `S(z; t)` with threshold `t`:
//! - `SoftThreshold`: `T_t(z) = sign(z)·max(|z| − t, 0)`, the proximal operator of `t‖·‖₁`;
//! - `Gelu`: `sign(z)·GELU(|z| − t)`, the official code's shrink (not a proximal operator);
//! - `Identity`: `S(z; t) = z` (λ plays no role: the λ = 0 / self-attention case, spec §1.4).
//!
//! Non-negative codes ([`SparseProblem::with_nonnegative`]) add the constraint `a ≥ 0`; the
//! proximal operator becomes `max(z − t, 0)` (soft threshold) or `max(z, 0)` (identity). The GELU
//! shrink has no non-negative counterpart in the reference and is rejected.

use crate::autodiff::no_grad;
use crate::nn::{shrink, Shrink};
use crate::{Backend, DType, Error, Result, Shape, Tensor};

/// What the energy reported for a problem means (see [`SparseProblem::energy_kind`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnergyKind {
    /// `E(a)` is the objective whose minimiser is the fixed point of the iteration, and a
    /// Lyapunov function of ISTA (step `1/L`, `L ≥ λ_max(G)`) and of the LCA ODE: it never
    /// increases. Holds for the soft-threshold and identity shrinks with a symmetric `G`, no `W`.
    Exact,
    /// The iteration minimises no known energy. The value reported is the plain Lasso energy
    /// `E(a) = ½‖x − Da‖² + λ‖a‖₁` of the *base* problem (plain `G`, no `W`) evaluated at the
    /// iterate: a useful surrogate (it is what spec §7.1 quotes for the reference), but it may
    /// increase from step to step. The fixed-point residual is the convergence measure then.
    Surrogate(Vec<NoEnergy>),
}

/// Why a problem has no energy that its iteration descends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoEnergy {
    /// The GELU shrink is not a proximal operator (spec §7.1 quirk 1).
    GeluShrink,
    /// The iteration uses `W·G·W`, which is not symmetric in general, so `G_e·a − b` is not a
    /// gradient.
    LearnedGram,
    /// The supplied `G` is not symmetric.
    AsymmetricGram,
}

/// A batch of sparse-coding problems `min_a ½aᵀGa − bᵀa + λ‖a‖₁ (+ ½‖x‖²)` (module docs).
#[derive(Debug, Clone)]
pub struct SparseProblem<B: Backend> {
    gram: Tensor<B>,
    drive: Tensor<B>,
    lam: Tensor<B>,
    shrink: Shrink,
    nonneg: bool,
    weight: Option<Tensor<B>>,
    dictionary: Option<Tensor<B>>,
    signal: Option<Tensor<B>>,
    /// `‖x‖²` per problem (shape = batch dims), when known.
    signal_norm_sq: Option<Tensor<B>>,
    /// `G` is symmetric by construction (`DᵀD`).
    gram_symmetric_by_construction: bool,
    batch: Vec<usize>,
    atoms: usize,
    columns: usize,
}

fn check_float<B: Backend>(op: &'static str, t: &Tensor<B>, dtype: DType) -> Result<()> {
    if t.dtype() != dtype {
        return Err(Error::DTypeMismatch {
            op,
            lhs: dtype,
            rhs: t.dtype(),
        });
    }
    if !dtype.is_float() {
        return Err(Error::UnsupportedDType {
            op,
            dtype,
            supported: "f32, f64",
        });
    }
    Ok(())
}

impl<B: Backend> SparseProblem<B> {
    /// The problems `E(a) = ½‖x − D a‖² + λ‖a‖₁` for dictionaries `D: (…, n, m)` and signals
    /// `x: (…, n, k)`: `G = DᵀD`, `b = Dᵀx`, `‖x‖²` per problem. `λ` broadcasts against the codes
    /// `(…, m, k)` (a scalar, one value per problem `(…, 1, 1)`, or per entry). Differentiable
    /// in `D`, `x` and `λ`.
    pub fn from_dictionary(
        dictionary: &Tensor<B>,
        signal: &Tensor<B>,
        lam: &Tensor<B>,
        shrink: Shrink,
    ) -> Result<Self> {
        const OP: &str = "SparseProblem::from_dictionary";
        if dictionary.rank() < 2 || signal.rank() < 2 {
            return Err(Error::ShapeMismatch {
                op: OP,
                lhs: dictionary.shape().clone(),
                rhs: signal.shape().clone(),
                hint: " (D is (…, n, m) and x is (…, n, k))".into(),
            });
        }
        let dt = dictionary.t()?;
        let gram = dt.matmul(dictionary)?;
        let drive = dt.matmul(signal)?;
        let r = signal.rank();
        let x_sq = signal.sqr()?.sum(&[r - 2, r - 1], false)?;
        let mut p = Self::from_gram(&gram, &drive, lam, shrink)?;
        p.gram_symmetric_by_construction = true;
        p.dictionary = Some(dictionary.clone());
        p.signal = Some(signal.clone());
        p.signal_norm_sq = Some(x_sq);
        Ok(p)
    }

    /// The plain Lasso `½‖x − Da‖² + λ‖a‖₁` with a scalar `λ` and the soft threshold.
    pub fn lasso(dictionary: &Tensor<B>, signal: &Tensor<B>, lam: f64) -> Result<Self> {
        let lam = Tensor::scalar(lam, dictionary.dtype(), dictionary.device())?;
        Self::from_dictionary(dictionary, signal, &lam, Shrink::SoftThreshold)
    }

    /// The problems in Gram form: `G: (…, m, m)`, `b: (…, m, k)`; `λ` broadcasts against the
    /// codes. The energy omits the constant `½‖x‖²` (see [`Self::with_signal_norm_sq`]).
    pub fn from_gram(
        gram: &Tensor<B>,
        drive: &Tensor<B>,
        lam: &Tensor<B>,
        shrink: Shrink,
    ) -> Result<Self> {
        const OP: &str = "SparseProblem::from_gram";
        let dtype = gram.dtype();
        check_float(OP, gram, dtype)?;
        check_float(OP, drive, dtype)?;
        check_float(OP, lam, dtype)?;
        let gd = gram.dims();
        if gram.rank() < 2 || gd[gd.len() - 1] != gd[gd.len() - 2] {
            return Err(Error::invalid(OP, gram.shape(), "G must be (…, m, m)"));
        }
        let m = gd[gd.len() - 1];
        let bd = drive.dims();
        if drive.rank() < 2 || bd[bd.len() - 2] != m {
            return Err(Error::ShapeMismatch {
                op: OP,
                lhs: gram.shape().clone(),
                rhs: drive.shape().clone(),
                hint: " (b must be (…, m, k) for G of shape (…, m, m))".into(),
            });
        }
        let k = bd[bd.len() - 1];
        let batch = Shape::new(&gd[..gd.len() - 2])
            .broadcast_with(OP, &Shape::new(&bd[..bd.len() - 2]))?
            .dims()
            .to_vec();
        let mut code = batch.clone();
        code.extend([m, k]);
        if !lam.shape().broadcasts_to(&Shape::new(code.clone())) {
            return Err(Error::ShapeMismatch {
                op: OP,
                lhs: lam.shape().clone(),
                rhs: Shape::new(code),
                hint: " (λ must broadcast to the code shape (…, m, k))".into(),
            });
        }
        Ok(SparseProblem {
            gram: gram.clone(),
            drive: drive.clone(),
            lam: lam.clone(),
            shrink,
            nonneg: false,
            weight: None,
            dictionary: None,
            signal: None,
            signal_norm_sq: None,
            gram_symmetric_by_construction: false,
            batch,
            atoms: m,
            columns: k,
        })
    }

    /// The official learned (LISTA) form, spec §3.3 step 6: the iteration uses
    /// `G_e = W·G·W` with `W: (m, m)` (or broadcasting `(…, m, m)`), the same matrix on both
    /// sides, untransposed. The energy and the Gershgorin step constant keep the plain `G`, as
    /// the reference computes `L` from `G`.
    pub fn with_learned_weight(mut self, weight: &Tensor<B>) -> Result<Self> {
        const OP: &str = "SparseProblem::with_learned_weight";
        check_float(OP, weight, self.gram.dtype())?;
        let d = weight.dims();
        if weight.rank() < 2 || d[d.len() - 1] != self.atoms || d[d.len() - 2] != self.atoms {
            return Err(Error::invalid(
                OP,
                weight.shape(),
                format!("W must be ({m}, {m})", m = self.atoms),
            ));
        }
        self.weight = Some(weight.clone());
        Ok(self)
    }

    /// Constrains the codes to `a ≥ 0` (prox `max(z − t, 0)`, or `max(z, 0)` for the identity
    /// shrink). Errors for the GELU shrink, which has no non-negative form in the reference.
    pub fn with_nonnegative(mut self, nonneg: bool) -> Result<Self> {
        if nonneg && self.shrink == Shrink::Gelu {
            return Err(Error::invalid(
                "SparseProblem::with_nonnegative",
                self.lam.shape(),
                "non-negative codes are defined for the soft-threshold and identity shrinks only",
            ));
        }
        self.nonneg = nonneg;
        Ok(self)
    }

    /// Supplies `‖x‖²` per problem (shape = the batch dims, or broadcasting to them) for a
    /// problem given in Gram form, so that the energy and the residual `‖x − Da‖` are absolute.
    pub fn with_signal_norm_sq(mut self, norm_sq: &Tensor<B>) -> Result<Self> {
        check_float(
            "SparseProblem::with_signal_norm_sq",
            norm_sq,
            self.gram.dtype(),
        )?;
        self.signal_norm_sq = Some(norm_sq.clone());
        Ok(self)
    }

    /// The same problem with every tensor cut from the autodiff graph.
    pub fn detached(&self) -> Self {
        let d = |t: &Option<Tensor<B>>| t.as_ref().map(Tensor::detach);
        SparseProblem {
            gram: self.gram.detach(),
            drive: self.drive.detach(),
            lam: self.lam.detach(),
            weight: d(&self.weight),
            dictionary: d(&self.dictionary),
            signal: d(&self.signal),
            signal_norm_sq: d(&self.signal_norm_sq),
            ..self.clone()
        }
    }

    // ---- accessors -------------------------------------------------------------------------

    /// `G = DᵀD` (or the Gram given), `(…, m, m)`: the Gram of the energy.
    pub fn gram(&self) -> &Tensor<B> {
        &self.gram
    }
    /// `b = Dᵀx`, `(…, m, k)`: the feed-forward drive.
    pub fn drive(&self) -> &Tensor<B> {
        &self.drive
    }
    /// `λ`, broadcasting against the codes.
    pub fn lam(&self) -> &Tensor<B> {
        &self.lam
    }
    /// The shrink `S` of the iteration.
    pub fn shrink_kind(&self) -> Shrink {
        self.shrink
    }
    /// Whether codes are constrained to `a ≥ 0`.
    pub fn is_nonnegative(&self) -> bool {
        self.nonneg
    }
    /// `W` of the learned form, if any.
    pub fn weight(&self) -> Option<&Tensor<B>> {
        self.weight.as_ref()
    }
    /// `D: (…, n, m)`, when the problem was built from it.
    pub fn dictionary(&self) -> Option<&Tensor<B>> {
        self.dictionary.as_ref()
    }
    /// `x: (…, n, k)`, when the problem was built from it.
    pub fn signal(&self) -> Option<&Tensor<B>> {
        self.signal.as_ref()
    }
    /// `‖x‖²` per problem, when known.
    pub fn signal_norm_sq(&self) -> Option<&Tensor<B>> {
        self.signal_norm_sq.as_ref()
    }
    /// The element type of every tensor of the problem.
    pub fn dtype(&self) -> DType {
        self.gram.dtype()
    }
    /// The device of the problem's tensors.
    pub fn device(&self) -> &B::Device {
        self.gram.device()
    }
    /// The problem-batch dims `…` (broadcast of `G`'s and `b`'s leading dims).
    pub fn batch_dims(&self) -> &[usize] {
        &self.batch
    }
    /// Number of problems in the batch (product of [`Self::batch_dims`]).
    pub fn batch_len(&self) -> usize {
        self.batch.iter().product()
    }
    /// `m`, the number of atoms.
    pub fn atoms(&self) -> usize {
        self.atoms
    }
    /// `k`, the number of code columns sharing each dictionary.
    pub fn columns(&self) -> usize {
        self.columns
    }
    /// The shape of a code, `(…, m, k)`.
    pub fn code_dims(&self) -> Vec<usize> {
        let mut d = self.batch.clone();
        d.extend([self.atoms, self.columns]);
        d
    }
    /// The shape of a per-problem step constant, `(…, 1, 1)`.
    pub fn scalar_dims(&self) -> Vec<usize> {
        let mut d = self.batch.clone();
        d.extend([1, 1]);
        d
    }

    // ---- the operator --------------------------------------------------------------------

    /// The Gram the iteration applies: `G`, or `W·G·W` for the learned form (differentiable).
    pub fn iteration_gram(&self) -> Result<Tensor<B>> {
        match &self.weight {
            None => Ok(self.gram.clone()),
            Some(w) => w.matmul(&self.gram)?.matmul(w),
        }
    }

    /// `S(z; t)`: the problem's shrink with threshold `t` (broadcasting), including the
    /// non-negativity constraint. Differentiable in `z` and `t`.
    pub fn apply_shrink(&self, z: &Tensor<B>, t: &Tensor<B>) -> Result<Tensor<B>> {
        if !self.nonneg {
            return shrink(z, t, self.shrink);
        }
        match self.shrink {
            Shrink::SoftThreshold => z.sub(t)?.relu(),
            Shrink::Identity => z.relu(),
            Shrink::Gelu => unreachable!("rejected by with_nonnegative"),
        }
    }

    /// One step of the fixed-point map `F(a) = S(a − (G_e·a − b)/L; λ/L)` (ISTA / proximal
    /// gradient, spec §1.3), with `t = λ/L` precomputed by the caller.
    pub fn ista_map(
        &self,
        g_e: &Tensor<B>,
        l: &Tensor<B>,
        t: &Tensor<B>,
        a: &Tensor<B>,
    ) -> Result<Tensor<B>> {
        let grad = g_e.matmul(a)?.sub(&self.drive)?;
        self.apply_shrink(&a.sub(&grad.div(l)?)?, t)
    }

    // ---- energy and optimality -------------------------------------------------------------

    /// What [`Self::energy`] measures for this problem's iteration: [`EnergyKind::Exact`] for the
    /// soft-threshold / identity shrinks with a symmetric `G` and no `W`, otherwise
    /// [`EnergyKind::Surrogate`] with the reasons. A `G` given in Gram form is checked for
    /// symmetry on the host (`|G − Gᵀ| ≤ 1e-6·max|G|` in f64, 1e-4 in f32): one transfer.
    pub fn energy_kind(&self) -> Result<EnergyKind> {
        let mut why = Vec::new();
        if self.shrink == Shrink::Gelu {
            why.push(NoEnergy::GeluShrink);
        }
        if self.weight.is_some() {
            why.push(NoEnergy::LearnedGram);
        }
        if !self.gram_is_symmetric()? {
            why.push(NoEnergy::AsymmetricGram);
        }
        Ok(if why.is_empty() {
            EnergyKind::Exact
        } else {
            EnergyKind::Surrogate(why)
        })
    }

    /// Whether the plain `G` is symmetric (by construction, or checked on the host).
    pub fn gram_is_symmetric(&self) -> Result<bool> {
        if self.gram_symmetric_by_construction {
            return Ok(true);
        }
        no_grad(|| {
            let g = self.gram.detach();
            let r = g.rank();
            let all: Vec<usize> = (0..r).collect();
            let scale = g.abs()?.max(&all, false)?.to_vec_f64()?[0];
            let asym = g.sub(&g.t()?)?.abs()?.max(&all, false)?.to_vec_f64()?[0];
            let rel = if self.dtype() == DType::F32 {
                1e-4
            } else {
                1e-6
            };
            Ok(asym <= rel * scale)
        })
    }

    /// Whether the iteration is the proximal gradient method of the Lasso energy, so that the
    /// Lasso KKT conditions characterise its fixed points (the [`EnergyKind::Exact`] case).
    pub fn is_lasso(&self) -> Result<bool> {
        Ok(self.energy_kind()? == EnergyKind::Exact)
    }

    /// The energy per problem (shape = batch dims), differentiable:
    ///
    /// `E(a) = ½ Σ_cols aᵀG a − Σ b⊙a + λ‖a‖₁ + ½‖x‖²`
    ///
    /// with the plain `G` (no `W`), the `λ` term omitted for the identity shrink, and `½‖x‖²`
    /// included only when known (see [`Self::energy_includes_signal`]). For a non-negative
    /// problem the indicator of `a ≥ 0` is not added (the solvers' codes satisfy it). For the
    /// GELU shrink or the learned form this is the surrogate described by [`EnergyKind`].
    pub fn energy(&self, a: &Tensor<B>) -> Result<Tensor<B>> {
        let r = a.rank();
        let axes = [r - 2, r - 1];
        let ga = self.gram.matmul(a)?;
        let mut e = a
            .mul(&ga.mul_scalar(0.5)?.sub(&self.drive)?)?
            .sum(&axes, false)?;
        if self.shrink != Shrink::Identity {
            let l1 = a.abs()?.mul(&self.lam)?.sum(&axes, false)?;
            e = e.add(&l1)?;
        }
        if let Some(x_sq) = &self.signal_norm_sq {
            e = e.add(&x_sq.mul_scalar(0.5)?)?;
        }
        Ok(e)
    }

    /// Whether [`Self::energy`] includes the constant `½‖x‖²` (else it is relative to it).
    pub fn energy_includes_signal(&self) -> bool {
        self.signal_norm_sq.is_some()
    }

    /// `D·a`, the reconstruction `(…, n, k)` (needs the dictionary).
    pub fn reconstruct(&self, a: &Tensor<B>) -> Result<Tensor<B>> {
        match &self.dictionary {
            Some(d) => d.matmul(a),
            None => Err(Error::invalid(
                "SparseProblem::reconstruct",
                a.shape(),
                "the problem was given in Gram form: no dictionary to reconstruct with",
            )),
        }
    }

    /// `‖x − D a‖` per problem (shape = batch dims), or `None` when neither `x` nor `‖x‖²` is
    /// known. Computed directly from `D` and `x` when given, else as
    /// `√max(‖x‖² − 2bᵀa + aᵀGa, 0)`.
    pub fn residual_norm(&self, a: &Tensor<B>) -> Result<Option<Tensor<B>>> {
        let r = a.rank();
        let axes = [r - 2, r - 1];
        if let (Some(d), Some(x)) = (&self.dictionary, &self.signal) {
            return Ok(Some(x.sub(&d.matmul(a)?)?.norm_l2(&axes, false)?));
        }
        let Some(x_sq) = &self.signal_norm_sq else {
            return Ok(None);
        };
        let ga = self.gram.matmul(a)?;
        let quad = a
            .mul(&ga.sub(&self.drive.mul_scalar(2.0)?)?)?
            .sum(&axes, false)?;
        Ok(Some(x_sq.add(&quad)?.clamp_min(0.0)?.sqrt()?))
    }

    /// The largest violation of the Lasso optimality (KKT) conditions per problem, with
    /// `g = G a − b` (plain `G`):
    ///
    /// - `a_i ≠ 0`: `|g_i + λ·sign(a_i)|` (must be 0);
    /// - `a_i = 0`: `max(|g_i| − λ, 0)`, or `max(−g_i − λ, 0)` for non-negative codes.
    ///
    /// `λ = 0` for the identity shrink. Meaningful when [`Self::is_lasso`]; for the surrogate
    /// cases it measures distance from the *plain* Lasso optimum, not from the iteration's
    /// fixed point (use [`Self::fixed_point_residual`]).
    pub fn kkt_violation(&self, a: &Tensor<B>) -> Result<Tensor<B>> {
        let r = a.rank();
        let g = self.gram.matmul(a)?.sub(&self.drive)?;
        let lam = if self.shrink == Shrink::Identity {
            self.lam.zeros_like()?
        } else {
            self.lam.clone()
        };
        let s = a.sign()?;
        let on = g.add(&lam.mul(&s)?)?.abs()?;
        let off = if self.nonneg {
            g.add(&lam)?.neg()?.relu()?
        } else {
            g.abs()?.sub(&lam)?.relu()?
        };
        let nonzero = a.ne(&a.zeros_like()?)?;
        Tensor::where_cond(&nonzero, &on, &off)?.max(&[r - 2, r - 1], false)
    }

    /// `max |a − F(a)|` per problem, `F(a) = S(a − (G_e a − b)/L; λ/L)`: zero exactly at a fixed
    /// point of the iteration, for every shrink and form (the measure used for stopping and for
    /// the implicit gradient's precondition).
    pub fn fixed_point_residual(
        &self,
        g_e: &Tensor<B>,
        l: &Tensor<B>,
        a: &Tensor<B>,
    ) -> Result<Tensor<B>> {
        let t = self.lam.div(l)?;
        let r = a.rank();
        a.sub(&self.ista_map(g_e, l, &t, a)?)?
            .abs()?
            .max(&[r - 2, r - 1], false)
    }
}
