//! Memory of the implicit gradient does not grow with the number of forward steps, while an
//! unrolled composite solver keeps every step alive for its backward. Measured with the CPU
//! backend's live-storage counter (`vars_cpu::live_bytes`) — hence a test binary of its own with
//! a single test, so no other test allocates concurrently.

mod sparse_support;

use sparse_support::*;
use vars_core::sparse::{
    solve, ImplicitConfig, IstaInit, SolverConfig, SparseProblem, StepSize, Stop,
};
use vars_core::{Autodiff, Result, Tensor};
use vars_cpu::{live_bytes, Cpu};

type Ad = Autodiff<Cpu>;

/// `(bytes held after the forward, bytes held after the backward)`, both relative to before the
/// forward, for `steps` forward steps; everything is dropped before returning, and the counter
/// must then be back where it started.
fn held_bytes(d: &Tensor<Cpu>, x: &Tensor<Cpu>, cfg: &SolverConfig<Ad>) -> Result<(usize, usize)> {
    let base = live_bytes();
    let (fwd, bwd) = {
        let dv = Tensor::<Ad>::from_inner(d).requires_grad()?;
        let xv = Tensor::<Ad>::from_inner(x).requires_grad()?;
        let p = SparseProblem::lasso(&dv, &xv, 0.2)?;
        let loss = solve(&p, cfg)?.code.sum_all()?;
        drop(p);
        let fwd = live_bytes() - base;
        let grads = loss.backward()?;
        assert!(grads.get(&dv).is_some() && grads.get(&xv).is_some());
        let bwd = live_bytes() - base;
        (fwd, bwd)
    };
    assert_eq!(live_bytes(), base, "buffers leaked");
    Ok((fwd, bwd))
}

#[test]
fn implicit_gradient_memory_is_independent_of_the_number_of_steps() -> Result<()> {
    let (n, m, k) = (32, 24, 8);
    let (d, x) = random_problem(n, m, k, 17);
    let (d, x) = (t64(&d, &[n, m]), t64(&x, &[n, k]));
    let code_bytes = m * k * 8;
    let (short, long) = (3000, 12000);
    let implicit = |steps| {
        SolverConfig::<Ad>::ista(Stop::Steps(steps))
            .with_init(IstaInit::Zero)
            .with_step(StepSize::Exact)
            .with_implicit(ImplicitConfig::default())
    };
    let (fwd_s, bwd_s) = held_bytes(&d, &x, &implicit(short))?;
    let (fwd_l, bwd_l) = held_bytes(&d, &x, &implicit(long))?;
    assert_eq!(
        (fwd_s, bwd_s),
        (fwd_l, bwd_l),
        "implicit: bytes held after forward/backward differ between {short} and {long} steps"
    );
    // The graph holds a few problem-sized tensors, not one per step.
    assert!(
        fwd_s < 64 * code_bytes.max(m * m * 8),
        "implicit forward holds {fwd_s} bytes"
    );

    // Unrolled through a composite solver (FISTA), the graph keeps several buffers per step.
    let unrolled = |steps| SolverConfig::<Ad>::fista(Stop::Steps(steps)).with_step(StepSize::Exact);
    let (ushort, ulong) = (100, 400);
    let (ufwd_s, _) = held_bytes(&d, &x, &unrolled(ushort))?;
    let (ufwd_l, _) = held_bytes(&d, &x, &unrolled(ulong))?;
    assert!(
        ufwd_l >= ufwd_s + (ulong - ushort) * code_bytes,
        "unrolled: {ufwd_s} bytes at {ushort} steps, {ufwd_l} at {ulong}"
    );
    assert!(ufwd_s > 10 * fwd_s);
    Ok(())
}
