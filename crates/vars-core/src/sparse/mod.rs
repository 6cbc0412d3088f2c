//! Sparse coding and attractor dynamics (spec §1–§2): what VARS computes in place of
//! self-attention, as a research module.
//!
//! # What VARS computes
//!
//! For each head, a signal `X ∈ R^{N×d}` (the values; each column a map over the N tokens) is
//! reconstructed from a dictionary `D ∈ R^{N×m}` of spatial templates through a **sparse code**
//! (spec §1.1):
//!
//! ```text
//! A* = argmin_A ½‖X − D A‖² + λ‖A‖₁,        output  X̂ = D A*
//! ```
//!
//! The code is the fixed point of an **attractor network**, the LCA (spec §1.2):
//! `τ u̇ = Dᵀx − u − (DᵀD − I)·S(u; λ)`, whose energy `E` never increases. The layers run its
//! discretisation, **unrolled ISTA** (spec §1.3): with `G = DᵀD`, `b = DᵀX`, `L ≥ λ_max(G)`,
//!
//! ```text
//! A₀ = S(b; λ),   then T times   A ← S(A − (G A − b)/L; λ/L)
//! ```
//!
//! With λ = 0, one step and a kernel feature dictionary `D = φ(Q)` (spec §2), `X̂ = φ(Q)φ(Q)ᵀV`:
//! (unnormalised) kernel self-attention is the special case (spec §1.4). The official code adds
//! the GELU shrink `sign(z)·GELU(|z| − t)`, the learned form `W·G·W`, learned scales on λ and L,
//! and the Gershgorin step `L = 1 + max_i Σ_j |G_ij|` (spec §3.3, §7.1).
//!
//! # Map of the module
//!
//! | file | concept |
//! |---|---|
//! | [`problem`] | [`SparseProblem`]: `E(a)` for batched dictionaries, from `D, x` or the Gram form `G, b`, the learned `W·G·W`; shrinks, non-negative codes, energy, KKT, residuals |
//! | [`solvers`] | [`solve`]: ISTA (fixed steps via [`unrolled_ista`], or to a tolerance), FISTA (optionally with restart); [`SolverConfig`], [`Solution`] |
//! | [`lca`] | the LCA ODE with explicit Euler and RK4 |
//! | [`step_size`] | `L`: Gershgorin + 1 (official), power iteration, exact (Jacobi, f64) |
//! | [`diagnostics`] | per-step code, energy, sparsity, residual, KKT, fixed-point residual; off by default and free when off |
//! | [`implicit`] | implicit differentiation at the fixed point (an option, not parity) |
//! | [`features`] | positive random features `φ(x) = m^{−1/2} exp(ωᵀx − ‖x‖²/2)` (spec §2) |
//! | [`fused`] | the unrolled-ISTA op shared with the attention layers (fused kernels, exact backward) |
//! | [`linalg`] | small dense f64 linear algebra on the host (Jacobi eigenvalues, LU solve) |
//!
//! # Energy: what is reported
//!
//! `E` is a Lyapunov function of the iteration only for the soft-threshold (or identity) shrink
//! with a symmetric `G`. For the GELU shrink or `W·G·W` — official HEAD — no energy is known:
//! the diagnostics report the *plain Lasso energy as a surrogate*, tagged
//! [`EnergyKind::Surrogate`] with the reasons, plus the fixed-point residual
//! `max|a − S(a − (G_e a − b)/L; λ/L)|` as the convergence measure (spec §7.1 measures the
//! surrogate rising after step 2).
//!
//! # Example
//!
//! ```ignore
//! use vars_core::sparse::{solve, Diagnostics, SolverConfig, SparseProblem, Stop};
//! let problem = SparseProblem::lasso(&d, &x, 0.1)?;            // D (…, n, m), x (…, n, k)
//! let cfg = SolverConfig::fista(Stop::Tolerance { tol: 1e-8, max_steps: 1000 })
//!     .with_diagnostics(Diagnostics::all());
//! let sol = solve(&problem, &cfg)?;
//! for r in &sol.trace.unwrap().records { println!("{} {:?}", r.step, r.total_energy()); }
//! ```
//!
//! `docs/sparse-coding.md` has the longer tour; `cargo run --release -p vars-cpu --example
//! attractor` shows the solvers at work.

#[warn(missing_docs)]
pub mod diagnostics;
#[warn(missing_docs)]
pub mod features;
pub mod fused;
#[warn(missing_docs)]
pub mod implicit;
#[warn(missing_docs)]
pub mod lca;
#[warn(missing_docs)]
pub mod linalg;
#[warn(missing_docs)]
pub mod problem;
#[warn(missing_docs)]
pub mod solvers;
#[warn(missing_docs)]
pub mod step_size;

pub use diagnostics::{Diagnostics, Sparsity, StepRecord, Trace};
pub use features::{positive_features, PositiveRandomFeatures};
pub use fused::{
    unrolled_ista, unrolled_ista_composite, unrolled_ista_pre_shrink, IstaForward, IstaGrads,
    IstaInit, UnrolledIsta,
};
pub use implicit::{adjoint_solve_for, AdjointSolve, ImplicitConfig};
pub use lca::{Integrator, LcaConfig, LcaInit};
pub use problem::{EnergyKind, NoEnergy, SparseProblem};
pub use solvers::{solve, GradMode, Method, Solution, SolverConfig, Stop};
pub use step_size::{
    exact_lambda_max, exact_spectral_norm, gershgorin_bound, official_step_constant,
    power_iteration, StepSize,
};
