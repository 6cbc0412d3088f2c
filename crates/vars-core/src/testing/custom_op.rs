//! The custom-op API: user-written forward/backward pairs get the same gradients as finite
//! differences and as the equivalent composite of built-in ops; malformed backwards error.

use super::check_gradients;
use super::util::*;
use crate::{Autodiff, Backend, CustomBackward, CustomOp, DType, Error, Result, Tensor};
use std::sync::Arc;

type T<B> = Tensor<Autodiff<B>>;

/// `y = x³` with the hand-written backward `3x²·g`.
pub struct Cube;

impl<B: Backend> CustomOp<B> for Cube {
    fn name(&self) -> &str {
        "cube"
    }
    fn forward(&self, inputs: &[Tensor<B>]) -> Result<(Tensor<B>, Arc<dyn CustomBackward<B>>)> {
        let x = inputs[0].clone();
        let y = x.sqr()?.mul(&x)?;
        let backward = move |g: &Tensor<B>| -> Result<Vec<Option<Tensor<B>>>> {
            Ok(vec![Some(g.mul(&x.sqr()?.mul_scalar(3.0)?)?)])
        };
        Ok((y, Arc::new(backward)))
    }
}

/// `y = a·exp(b)` (two inputs): `∂a = g·exp(b)`, `∂b = g·a·exp(b)`.
pub struct MulExp;

impl<B: Backend> CustomOp<B> for MulExp {
    fn name(&self) -> &str {
        "mul_exp"
    }
    fn forward(&self, inputs: &[Tensor<B>]) -> Result<(Tensor<B>, Arc<dyn CustomBackward<B>>)> {
        let (a, e) = (inputs[0].clone(), inputs[1].exp()?);
        let y = a.mul(&e)?;
        let backward = move |g: &Tensor<B>| -> Result<Vec<Option<Tensor<B>>>> {
            let ga = g.mul(&e)?;
            let gb = ga.mul(&a)?;
            Ok(vec![Some(ga), Some(gb)])
        };
        Ok((y, Arc::new(backward)))
    }
}

/// `y = a + b` whose backward declares no gradient for `b`.
struct AddNoGradRhs;

impl<B: Backend> CustomOp<B> for AddNoGradRhs {
    fn name(&self) -> &str {
        "add_no_grad_rhs"
    }
    fn forward(&self, inputs: &[Tensor<B>]) -> Result<(Tensor<B>, Arc<dyn CustomBackward<B>>)> {
        let backward =
            |g: &Tensor<B>| -> Result<Vec<Option<Tensor<B>>>> { Ok(vec![Some(g.clone()), None]) };
        Ok((inputs[0].add(&inputs[1])?, Arc::new(backward)))
    }
}

/// A two-input op whose backward returns one gradient.
struct WrongCount;

impl<B: Backend> CustomOp<B> for WrongCount {
    fn name(&self) -> &str {
        "wrong_count"
    }
    fn forward(&self, inputs: &[Tensor<B>]) -> Result<(Tensor<B>, Arc<dyn CustomBackward<B>>)> {
        let backward =
            |g: &Tensor<B>| -> Result<Vec<Option<Tensor<B>>>> { Ok(vec![Some(g.clone())]) };
        Ok((inputs[0].mul(&inputs[1])?, Arc::new(backward)))
    }
}

/// A forward that fails.
struct Failing;

impl<B: Backend> CustomOp<B> for Failing {
    fn name(&self) -> &str {
        "failing_op"
    }
    fn forward(&self, inputs: &[Tensor<B>]) -> Result<(Tensor<B>, Arc<dyn CustomBackward<B>>)> {
        Err(Error::InvalidArgument {
            op: "failing_op_forward",
            shape: inputs[0].shape().clone(),
            msg: "always fails".into(),
        })
    }
}

fn wsum<B: Backend>(y: &T<B>, seed: u64) -> Result<T<B>> {
    let w = tensor::<Autodiff<B>>(
        &uniform_vec(y.elem_count(), 2000 + seed, -1.0, 1.0),
        y.dims().to_vec(),
        DType::F64,
        y.device(),
    )?;
    y.mul(&w)?.sum_all()
}

#[track_caller]
fn gc<B: Backend>(name: &str, f: impl Fn(&[T<B>]) -> Result<T<B>>, inputs: &[Tensor<B>]) {
    if let Err(e) = check_gradients(f, inputs, 1e-6, 1e-6) {
        panic!("gradient check `{name}` failed: {e}");
    }
}

/// Gradients of `f(inputs)` for every input (zeros where none is reported).
fn grads<B: Backend>(
    f: impl Fn(&[T<B>]) -> Result<T<B>>,
    inputs: &[Tensor<B>],
) -> Result<Vec<Vec<f64>>> {
    let vars = inputs
        .iter()
        .map(|x| T::<B>::from_inner(x).requires_grad())
        .collect::<Result<Vec<_>>>()?;
    let g = f(&vars)?.backward()?;
    vars.iter()
        .map(|v| match g.get(v) {
            Some(t) => t.to_vec::<f64>(),
            None => Ok(vec![0.0; v.elem_count()]),
        })
        .collect()
}

/// `cube` agrees with finite differences and with the composite `x·x·x`, on contiguous and
/// transposed inputs.
pub fn cube_matches_fd_and_composite<B: Backend>(dev: &B::Device) -> Result<()> {
    let x = random_tensor::<B>(&[3, 4], DType::F64, 1, -2.0, 2.0, dev)?.0;
    let custom = |v: &[T<B>]| wsum(&Tensor::apply_custom(&Cube, &[&v[0]])?, 1);
    let composite = |v: &[T<B>]| wsum(&v[0].mul(&v[0])?.mul(&v[0])?, 1);
    gc("cube", custom, std::slice::from_ref(&x));
    let (gc_, gb) = (
        grads(custom, std::slice::from_ref(&x))?,
        grads(composite, std::slice::from_ref(&x))?,
    );
    assert_close("cube vs composite gradient", &gc_[0], &gb[0], 1e-13, 1e-13);
    let var = T::<B>::from_inner(&x).requires_grad()?;
    let y = Tensor::apply_custom(&Cube, &[&var])?;
    assert!(y.is_tracked());
    assert_close(
        "cube forward",
        &y.to_vec::<f64>()?,
        &var.powf(3.0)?.to_vec::<f64>()?,
        1e-13,
        1e-13,
    );
    let on_view = |v: &[T<B>]| wsum(&Tensor::apply_custom(&Cube, &[&v[0].t()?])?, 2);
    gc(
        "cube of a transposed view",
        on_view,
        std::slice::from_ref(&x),
    );
    Ok(())
}

/// A two-input op, also with a broadcast (stride-0) input whose gradient must be reduced.
pub fn two_input_op<B: Backend>(dev: &B::Device) -> Result<()> {
    let a = random_tensor::<B>(&[2, 3], DType::F64, 2, -2.0, 2.0, dev)?.0;
    let b = random_tensor::<B>(&[2, 3], DType::F64, 3, -1.0, 1.0, dev)?.0;
    let custom = |v: &[T<B>]| wsum(&Tensor::apply_custom(&MulExp, &[&v[0], &v[1]])?, 3);
    let composite = |v: &[T<B>]| wsum(&v[0].mul(&v[1].exp()?)?, 3);
    gc("mul_exp", custom, &[a.clone(), b.clone()]);
    let (g1, g2) = (
        grads(custom, &[a.clone(), b.clone()])?,
        grads(composite, &[a.clone(), b])?,
    );
    assert_close("mul_exp vs composite: a", &g1[0], &g2[0], 1e-13, 1e-13);
    assert_close("mul_exp vs composite: b", &g1[1], &g2[1], 1e-13, 1e-13);
    let row = random_tensor::<B>(&[3], DType::F64, 4, -1.0, 1.0, dev)?.0;
    gc(
        "mul_exp with a broadcast input",
        |v| {
            wsum(
                &Tensor::apply_custom(&MulExp, &[&v[0], &v[1].broadcast_as([2, 3])?])?,
                4,
            )
        },
        &[a, row],
    );
    Ok(())
}

/// A backward may decline a gradient (`None`): that input then gets none.
pub fn none_gradient<B: Backend>(dev: &B::Device) -> Result<()> {
    let a = T::<B>::from_vec(vec![1.0f64, 2.0], [2], dev)?.requires_grad()?;
    let b = T::<B>::from_vec(vec![3.0f64, 4.0], [2], dev)?.requires_grad()?;
    let g = Tensor::apply_custom(&AddNoGradRhs, &[&a, &b])?
        .sum_all()?
        .backward()?;
    assert_eq!(
        g.get(&a).expect("gradient of a").to_vec::<f64>()?,
        vec![1.0, 1.0]
    );
    assert!(
        g.get(&b).is_none(),
        "gradient reported for an input the backward declined"
    );
    // Other paths to `b` still contribute.
    let g = Tensor::apply_custom(&AddNoGradRhs, &[&a, &b])?
        .add(&b)?
        .sum_all()?
        .backward()?;
    assert_eq!(
        g.get(&b).expect("gradient of b").to_vec::<f64>()?,
        vec![1.0, 1.0]
    );
    Ok(())
}

/// A backward returning the wrong number of gradients is an error naming the op.
pub fn wrong_gradient_count<B: Backend>(dev: &B::Device) -> Result<()> {
    let a = T::<B>::from_vec(vec![1.0f64, 2.0], [2], dev)?.requires_grad()?;
    let b = T::<B>::from_vec(vec![3.0f64, 4.0], [2], dev)?.requires_grad()?;
    let y = Tensor::apply_custom(&WrongCount, &[&a, &b])?.sum_all()?;
    let e = expect_err(y.backward(), "backward with a wrong gradient count");
    let msg = e.to_string();
    assert!(
        msg.contains("wrong_count") && msg.contains("1 gradients for 2 inputs"),
        "{msg}"
    );
    Ok(())
}

/// An error in a custom forward is reported with the op's name and the inner message.
pub fn forward_error_names_op<B: Backend>(dev: &B::Device) -> Result<()> {
    let a = T::<B>::from_vec(vec![1.0f64, 2.0], [2], dev)?.requires_grad()?;
    let e = expect_err(
        Tensor::apply_custom(&Failing, &[&a]),
        "failing custom forward",
    );
    let msg = e.to_string();
    assert!(
        msg.contains("failing_op") && msg.contains("always fails") && msg.contains("[2]"),
        "{msg}"
    );
    Ok(())
}

/// On a plain backend a custom op is just its forward (untracked).
pub fn plain_backend_forward<B: Backend>(dev: &B::Device) -> Result<()> {
    let x = Tensor::<B>::from_vec(vec![1.0f64, -2.0, 3.0], [3], dev)?;
    let y = Tensor::apply_custom(&Cube, &[&x])?;
    assert!(!y.is_tracked());
    assert_eq!(y.to_vec::<f64>()?, vec![1.0, -8.0, 27.0]);
    let y = Tensor::apply_custom(&MulExp, &[&x, &x.zeros_like()?])?;
    assert_eq!(y.to_vec::<f64>()?, vec![1.0, -2.0, 3.0]);
    Ok(())
}

/// Custom ops composed with built-in ops and with each other, the variable used twice.
pub fn chained_with_builtins<B: Backend>(dev: &B::Device) -> Result<()> {
    let x = random_tensor::<B>(&[2, 3], DType::F64, 5, -1.0, 1.0, dev)?.0;
    gc(
        "cube(exp(x))·x + mul_exp(cube(x), x)",
        |v| {
            let c = Tensor::apply_custom(&Cube, &[&v[0].exp()?])?.mul(&v[0])?;
            let d = Tensor::apply_custom(
                &MulExp,
                &[
                    &Tensor::apply_custom(&Cube, &[&v[0]])?,
                    &v[0].t()?.contiguous()?.t()?,
                ],
            )?;
            wsum(&c.add(&d)?, 5)
        },
        &[x],
    );
    Ok(())
}

/// `y = x³` with a wrong backward (`2x²·g`): the gradient checker must catch it.
struct BadCube;

impl<B: Backend> CustomOp<B> for BadCube {
    fn name(&self) -> &str {
        "bad_cube"
    }
    fn forward(&self, inputs: &[Tensor<B>]) -> Result<(Tensor<B>, Arc<dyn CustomBackward<B>>)> {
        let x = inputs[0].clone();
        let y = x.sqr()?.mul(&x)?;
        let backward = move |g: &Tensor<B>| -> Result<Vec<Option<Tensor<B>>>> {
            Ok(vec![Some(g.mul(&x.sqr()?.mul_scalar(2.0)?)?)])
        };
        Ok((y, Arc::new(backward)))
    }
}

/// Self-test of [`check_gradients`]: a wrong backward fails with a message naming the input and
/// element; a missing dependency (declined gradient) fails too; non-f64 inputs are rejected.
pub fn gradcheck_catches_wrong_backward<B: Backend>(dev: &B::Device) -> Result<()> {
    let x = Tensor::<B>::from_vec(vec![0.5f64, -1.0, 0.25], [3], dev)?;
    let y = Tensor::<B>::from_vec(vec![1.0f64, 2.0], [2], dev)?;
    let e = expect_err(
        check_gradients(
            |v| {
                v[0].sum_all()?
                    .add(&Tensor::apply_custom(&BadCube, &[&v[1]])?.sum_all()?)
            },
            &[y, x.clone()],
            1e-6,
            1e-6,
        ),
        "gradient check of a wrong backward",
    );
    let msg = e.to_string();
    // Error x² relative to max(1, 3x²): 1/3 at x = −1 (input 1, element 1), less elsewhere.
    assert!(
        msg.contains("check_gradients")
            && msg.contains("input 1")
            && msg.contains("element 1")
            && msg.contains("3 of 5"),
        "{msg}"
    );
    let e = expect_err(
        check_gradients(
            |v| Tensor::apply_custom(&AddNoGradRhs, &[&v[0], &v[1]])?.sum_all(),
            &[x.clone(), x.clone()],
            1e-6,
            1e-6,
        ),
        "gradient check of a declined gradient",
    );
    assert!(e.to_string().contains("input 1"), "{e}");
    let x32 = Tensor::<B>::from_vec(vec![1.0f32], [1], dev)?;
    let e = expect_err(
        check_gradients(|v| v[0].sum_all(), &[x32], 1e-6, 1e-6),
        "gradient check in f32",
    );
    assert!(e.to_string().contains("f32"), "{e}");
    Ok(())
}

/// A backward whose gradient has the wrong shape (summed over the input's only dim).
struct WrongShape;

impl<B: Backend> CustomOp<B> for WrongShape {
    fn name(&self) -> &str {
        "wrong_shape"
    }
    fn forward(&self, inputs: &[Tensor<B>]) -> Result<(Tensor<B>, Arc<dyn CustomBackward<B>>)> {
        let backward = |g: &Tensor<B>| -> Result<Vec<Option<Tensor<B>>>> {
            Ok(vec![Some(g.sum(&[0], true)?)])
        };
        Ok((inputs[0].exp()?, Arc::new(backward)))
    }
}

/// A custom backward returning a gradient whose shape differs from its input's is an error naming
/// the op (the engine checks every routed gradient against the shape recorded in the graph).
pub fn wrong_gradient_shape<B: Backend>(dev: &B::Device) -> Result<()> {
    let x = T::<B>::from_vec(vec![1.0f64, 2.0, 3.0], [3], dev)?.requires_grad()?;
    let y = Tensor::apply_custom(&WrongShape, &[&x])?
        .add(&x)?
        .sum_all()?;
    let e = expect_err(
        y.backward(),
        "backward with a wrongly shaped custom gradient",
    );
    let msg = e.to_string();
    assert!(
        msg.contains("wrong_shape") && msg.contains("[3]") && msg.contains("[1]"),
        "{msg}"
    );
    Ok(())
}
