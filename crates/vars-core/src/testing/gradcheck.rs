//! The finite-difference gradient checker.

use super::util::unravel;
use crate::{no_grad, Autodiff, Backend, DType, Error, Result, Tensor};

/// Checks the gradients that `backward()` computes for the scalar function `f` against central
/// finite differences, in f64.
///
/// - `inputs` must be f64 tensors (any layout); each becomes a leaf variable of `Autodiff<B>`
///   sharing its storage, and `f` receives them in order (so `f` may take views, reuse an input,
///   or call custom ops on them). `f` must return a one-element f64 tensor.
/// - Numerical derivative of element `j` of input `i`: `(f(x + eps·e_ij) − f(x − eps·e_ij)) /
///   (2·eps)`, evaluated under `no_grad` on contiguous copies of the inputs. Its error is
///   `O(eps²·f''')` truncation plus `O(u·|f|/eps)` rounding: with `eps = 1e-6`, about 1e-10 for
///   O(1) functions.
/// - An element passes when `|analytic − numeric| ≤ tol · max(1, |analytic|, |numeric|)`
///   (relative for large gradients, absolute for small ones). A leaf that `backward()` reports no
///   gradient for counts as a zero gradient.
///
/// On failure the error names the worst element (input, flat and multi-index, both values), the
/// number of failing elements and the worst absolute and relative errors.
pub fn check_gradients<B: Backend>(
    f: impl Fn(&[Tensor<Autodiff<B>>]) -> Result<Tensor<Autodiff<B>>>,
    inputs: &[Tensor<B>],
    eps: f64,
    tol: f64,
) -> Result<()> {
    let fail = |msg: String| Error::Autodiff(format!("check_gradients: {msg}"));
    for (i, x) in inputs.iter().enumerate() {
        if x.dtype() != DType::F64 {
            return Err(fail(format!(
                "input {i} has dtype {}; gradient checks run in f64",
                x.dtype()
            )));
        }
    }

    // Analytic gradients.
    let vars = inputs
        .iter()
        .map(|x| Tensor::<Autodiff<B>>::from_inner(x).requires_grad())
        .collect::<Result<Vec<_>>>()?;
    let out = f(&vars)?;
    if out.elem_count() != 1 || out.dtype() != DType::F64 {
        return Err(fail(format!(
            "f must return a one-element f64 tensor, got shape {} of dtype {}",
            out.shape(),
            out.dtype()
        )));
    }
    let f0 = out.to_vec::<f64>()?[0];
    let grads = out.backward()?;
    let mut analytic = Vec::with_capacity(vars.len());
    for (i, v) in vars.iter().enumerate() {
        match grads.get(v) {
            Some(g) => {
                if g.shape() != v.shape() || g.dtype() != DType::F64 {
                    return Err(fail(format!(
                        "the gradient of input {i} has shape {} and dtype {}, expected shape {} and f64",
                        g.shape(),
                        g.dtype(),
                        v.shape()
                    )));
                }
                analytic.push(g.to_vec::<f64>()?);
            }
            None => analytic.push(vec![0.0; v.elem_count()]),
        }
    }
    drop((vars, grads, out));

    // Numerical gradients.
    let mut values = inputs
        .iter()
        .map(|x| x.to_vec::<f64>())
        .collect::<Result<Vec<_>>>()?;
    let eval = |values: &[Vec<f64>]| -> Result<f64> {
        no_grad(|| {
            let ts = values
                .iter()
                .zip(inputs)
                .map(|(v, x)| {
                    Tensor::<Autodiff<B>>::from_vec(v.clone(), x.shape().clone(), x.device())
                })
                .collect::<Result<Vec<_>>>()?;
            f(&ts)?.to_vec::<f64>().map(|v| v[0])
        })
    };
    let f_check = eval(&values)?;
    if f_check.to_bits() != f0.to_bits() && (f_check - f0).abs() > 1e-12 * f0.abs().max(1.0) {
        return Err(fail(format!(
            "f is not deterministic or depends on the input layout: {f0:e} with the variables, {f_check:e} with contiguous copies"
        )));
    }

    struct Worst {
        input: usize,
        elem: usize,
        analytic: f64,
        numeric: f64,
        err: f64,
    }
    let mut worst: Option<Worst> = None;
    let (mut failures, mut checked, mut max_abs, mut max_rel) = (0usize, 0usize, 0.0f64, 0.0f64);
    for i in 0..values.len() {
        for j in 0..values[i].len() {
            let x0 = values[i][j];
            values[i][j] = x0 + eps;
            let plus = eval(&values)?;
            values[i][j] = x0 - eps;
            let minus = eval(&values)?;
            values[i][j] = x0;
            let numeric = (plus - minus) / (2.0 * eps);
            let a = analytic[i][j];
            let abs = (a - numeric).abs();
            let err = abs / a.abs().max(numeric.abs()).max(1.0);
            let err = if err.is_nan() { f64::INFINITY } else { err };
            checked += 1;
            max_abs = max_abs.max(if abs.is_nan() { f64::INFINITY } else { abs });
            let rel = abs / a.abs().max(numeric.abs());
            if rel.is_finite() {
                max_rel = max_rel.max(rel);
            }
            if err > tol {
                failures += 1;
            }
            if worst.as_ref().is_none_or(|w| err > w.err) {
                worst = Some(Worst {
                    input: i,
                    elem: j,
                    analytic: a,
                    numeric,
                    err,
                });
            }
        }
    }
    match worst {
        Some(w) if failures > 0 => Err(fail(format!(
            "{failures} of {checked} gradient elements are off by more than tol {tol:e} (eps {eps:e}); \
             worst: input {} (shape {}) element {} {:?}: analytic {:e}, numeric {:e}; \
             max abs err {max_abs:e}, max rel err {max_rel:e}",
            w.input,
            inputs[w.input].shape(),
            w.elem,
            unravel(w.elem, inputs[w.input].dims()),
            w.analytic,
            w.numeric,
        ))),
        _ => Ok(()),
    }
}
