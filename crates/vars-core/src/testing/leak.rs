//! Memory-leak test: a training loop's live device storage stays flat.

use super::custom_op::Cube;
use super::util::uniform_vec;
use crate::{no_grad, Autodiff, Backend, Error, Result, Tensor};

type T<B> = Tensor<Autodiff<B>>;

/// Training steps after the warm-up.
pub const STEPS: usize = 3000;

/// A named counter of live backend storage (bytes, buffers, ...).
pub type Counter = (&'static str, fn() -> usize);

/// Runs [`STEPS`] forward/backward/SGD steps of a small MLP on `Autodiff<B>` and checks that
/// every counter in `counters` (e.g. `("live_bytes", live_bytes)`: bytes or buffers of live
/// backend storage) reads the same after the warm-up, every 500 steps, and at the end — and
/// returns to its starting value once the model is dropped. The forward pass touches the graph
/// features that could leak (ops saving their output, `attach`ed composites like `norm_l2`,
/// views, `cat`, `index_select`, a custom op, a tensor used twice); the gradients are consumed
/// and the graph is freed by `backward`.
///
/// The counters are process-global, so the suite runs this test with every other suite test
/// locked out (see [`super::SUITE_LOCK`]).
pub fn flat_memory<B: Backend>(dev: &B::Device, counters: &[Counter]) -> Result<()> {
    let read = || counters.iter().map(|(_, f)| f()).collect::<Vec<_>>();
    let describe = |v: &[usize]| {
        counters
            .iter()
            .zip(v)
            .map(|((n, _), c)| format!("{n} = {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let baseline = read();
    let (first_loss, last_loss, warm, end) = {
        let mk = |dims: &[usize], seed: u64, scale: f64| -> Result<T<B>> {
            let n = dims.iter().product();
            Tensor::from_vec(uniform_vec(n, seed, -scale, scale), dims.to_vec(), dev)
        };
        let x = mk(&[8, 4], 1, 1.0)?;
        let target = mk(&[8, 3], 2, 0.5)?;
        let rows = Tensor::<Autodiff<B>>::from_vec(vec![0i64, 2, 2, 5], [4], dev)?;
        let mut params = vec![
            mk(&[4, 8], 3, 0.5)?,
            mk(&[8], 4, 0.1)?,
            mk(&[8, 3], 5, 0.5)?,
            mk(&[3], 6, 0.1)?,
        ];
        let step = |params: &mut Vec<T<B>>| -> Result<f64> {
            let vars = params
                .iter()
                .map(|p| p.requires_grad())
                .collect::<Result<Vec<_>>>()?;
            let h = x.matmul(&vars[0])?.add(&vars[1])?.gelu()?; // [8, 8]
            let h = Tensor::cat(&[&h.narrow(1, 0, 4)?, &h.narrow(1, 4, 4)?.tanh()?], 1)?;
            let y = h
                .matmul(&vars[2])?
                .add(&Tensor::apply_custom(&Cube, &[&vars[3]])?)?; // [8, 3]
            let err = y.sub(&target)?;
            let loss = err
                .sqr()?
                .mean_all()?
                .add(&vars[0].norm_l2(&[0, 1], false)?.mul_scalar(1e-3)?)?
                .add(
                    &err.index_select(0, &rows)?
                        .t()?
                        .max(&[1], false)?
                        .sum_all()?
                        .mul_scalar(1e-3)?,
                )?;
            let grads = loss.backward()?;
            let value = loss.to_scalar::<f64>()?;
            no_grad(|| -> Result<()> {
                for (p, v) in params.iter_mut().zip(&vars) {
                    let g = grads.get(v).ok_or_else(|| {
                        Error::Autodiff("leak test: a parameter got no gradient".into())
                    })?;
                    *p = p.sub(&g.mul_scalar(0.05)?)?;
                }
                Ok(())
            })?;
            Ok(value)
        };
        let first_loss = step(&mut params)?;
        for _ in 0..4 {
            step(&mut params)?;
        }
        let warm = read();
        let mut last_loss = first_loss;
        for i in 1..=STEPS {
            last_loss = step(&mut params)?;
            if i % 500 == 0 {
                let now = read();
                assert_eq!(
                    now,
                    warm,
                    "memory grew after {i} steps: {} (after warm-up: {})",
                    describe(&now),
                    describe(&warm)
                );
            }
        }
        assert!(
            params.iter().all(|p| !p.is_tracked()),
            "updated parameters are tracked"
        );
        (first_loss, last_loss, warm, read())
    };
    assert_eq!(
        end,
        warm,
        "memory at the end: {} (after warm-up: {})",
        describe(&end),
        describe(&warm)
    );
    assert!(
        last_loss < first_loss,
        "the model did not train: loss {first_loss} -> {last_loss}"
    );
    let after = read();
    assert_eq!(
        after,
        baseline,
        "storage not released after dropping the model: {} (before: {})",
        describe(&after),
        describe(&baseline)
    );
    Ok(())
}
