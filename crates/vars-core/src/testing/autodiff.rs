//! Autodiff on `Autodiff<B>`: finite-difference checks of every differentiable op (contiguous,
//! permuted, narrowed and broadcast variables), composite chains, and the graph semantics
//! (accumulation, `no_grad`, `detach`, freed graphs, tie and zero conventions).
//!
//! Bodies take the inner backend `B`. Gradient checks: f64, `eps = 1e-6`, `tol = 1e-6` relative
//! (see [`check_gradients`]: the finite-difference error is ~1e-10 here, so 1e-6 only fails on
//! a real mistake).

use super::check_gradients;
use super::elementwise::unary_cases;
use super::util::*;
use crate::{is_grad_enabled, no_grad, Autodiff, Backend, DType, NoGradGuard, Result, Tensor};

type T<B> = Tensor<Autodiff<B>>;

const EPS: f64 = 1e-6;
const TOL: f64 = 1e-6;

/// Runs [`check_gradients`] and panics with `name` on a mismatch.
#[track_caller]
fn gc<B: Backend>(name: &str, f: impl Fn(&[T<B>]) -> Result<T<B>>, inputs: &[Tensor<B>]) {
    if let Err(e) = check_gradients(f, inputs, EPS, TOL) {
        panic!("gradient check `{name}` failed: {e}");
    }
}

/// An f64 input with values in `[lo, hi)`.
fn input<B: Backend>(
    dims: &[usize],
    seed: u64,
    lo: f64,
    hi: f64,
    dev: &B::Device,
) -> Result<Tensor<B>> {
    Ok(random_tensor::<B>(dims, DType::F64, seed, lo, hi, dev)?.0)
}

/// An f64 input with `lo ≤ |x| < hi`.
fn input_away<B: Backend>(
    dims: &[usize],
    seed: u64,
    lo: f64,
    hi: f64,
    dev: &B::Device,
) -> Result<Tensor<B>> {
    tensor::<B>(
        &away_from_zero_vec(dims.iter().product(), seed, lo, hi),
        dims.to_vec(),
        DType::F64,
        dev,
    )
}

/// `Σ w ⊙ y` with fixed pseudo-random weights in [−1, 1): a scalar whose gradient w.r.t. `y` is
/// non-uniform, so transposition or misplacement errors show.
fn wsum<B: Backend>(y: &T<B>, seed: u64) -> Result<T<B>> {
    let w = tensor::<Autodiff<B>>(
        &uniform_vec(y.elem_count(), 1000 + seed, -1.0, 1.0),
        y.dims().to_vec(),
        DType::F64,
        y.device(),
    )?;
    y.mul(&w)?.sum_all()
}

fn leaf<B: Backend>(data: &[f64], dims: &[usize], dev: &B::Device) -> Result<T<B>> {
    tensor::<Autodiff<B>>(data, dims.to_vec(), DType::F64, dev)?.requires_grad()
}

fn grad_of<B: Backend>(g: &crate::GradStore<Autodiff<B>>, v: &T<B>) -> Vec<f64> {
    g.get(v)
        .expect("missing gradient")
        .to_vec::<f64>()
        .expect("gradient to_vec")
}

fn domain(lo: f64, symmetric: bool) -> f64 {
    // Keep FD steps (±eps) inside the domain of log/sqrt/powf.
    if !symmetric && lo == 0.0 {
        0.05
    } else {
        lo
    }
}

/// Every differentiable unary op on a contiguous variable.
pub fn grad_unary<B: Backend>(dev: &B::Device) -> Result<()> {
    for (k, c) in unary_cases::<Autodiff<B>>().into_iter().enumerate() {
        let lo = domain(c.lo, c.symmetric);
        let x = if c.symmetric {
            input_away::<B>(&[3, 4], k as u64, lo, c.hi, dev)?
        } else {
            input::<B>(&[3, 4], k as u64, lo, c.hi, dev)?
        };
        let op = c.op;
        gc(c.name, |v| wsum(&op(&v[0])?, 1), &[x]);
    }
    Ok(())
}

/// Every differentiable unary op on transposed, narrowed+permuted and broadcast views of the
/// variables.
pub fn grad_unary_views<B: Backend>(dev: &B::Device) -> Result<()> {
    for (k, c) in unary_cases::<Autodiff<B>>().into_iter().enumerate() {
        let lo = domain(c.lo, c.symmetric);
        let mk = |dims: &[usize], seed: u64| {
            if c.symmetric {
                input_away::<B>(dims, seed, lo, c.hi, dev)
            } else {
                input::<B>(dims, seed, lo, c.hi, dev)
            }
        };
        let x = mk(&[4, 3], 100 + k as u64)?;
        let r = mk(&[1, 3], 200 + k as u64)?;
        let op = c.op;
        gc(
            &format!("{} on views", c.name),
            |v| {
                let a = wsum(&op(&v[0].t()?)?, 1)?;
                let b = wsum(&op(&v[0].narrow(0, 1, 2)?.permute(&[1, 0])?)?, 2)?;
                let d = wsum(&op(&v[1].broadcast_as([2, 4, 3])?)?, 3)?;
                a.add(&b)?.add(&d)
            },
            &[x, r],
        );
    }
    Ok(())
}

/// Every differentiable binary op with broadcasting in both directions, scalars, transposed
/// operands and a variable used on both sides.
pub fn grad_binary_broadcast<B: Backend>(dev: &B::Device) -> Result<()> {
    type Bin<B> = fn(&T<B>, &T<B>) -> Result<T<B>>;
    let ops: Vec<(&str, Bin<B>)> = vec![
        ("add", |a, b| a.add(b)),
        ("sub", |a, b| a.sub(b)),
        ("mul", |a, b| a.mul(b)),
        ("div", |a, b| a.div(b)),
        ("maximum", |a, b| a.maximum(b)),
        ("minimum", |a, b| a.minimum(b)),
    ];
    let shapes: [(&[usize], &[usize]); 5] = [
        (&[3, 4], &[3, 4]),
        (&[3, 1], &[1, 4]),
        (&[4], &[2, 3, 4]),
        (&[2, 3], &[]),
        (&[2, 1, 3], &[4, 1]),
    ];
    for (name, op) in ops {
        for (s, (ld, rd)) in shapes.iter().enumerate() {
            let a = input::<B>(ld, 10 + s as u64, -2.0, 2.0, dev)?;
            let b = input_away::<B>(rd, 20 + s as u64, 0.3, 2.0, dev)?;
            gc(
                &format!("{name} {ld:?} x {rd:?}"),
                |v| wsum(&op(&v[0], &v[1])?, 4),
                &[a.clone(), b.clone()],
            );
            gc(
                &format!("{name} {rd:?} x {ld:?}"),
                |v| wsum(&op(&v[1], &v[0])?, 5),
                &[a, b],
            );
        }
        // Transposed lhs against a broadcast row; a variable on both sides (x ∘ xᵀ).
        let x = input_away::<B>(&[3, 3], 30, 0.3, 2.0, dev)?;
        let r = input_away::<B>(&[3], 31, 0.3, 2.0, dev)?;
        gc(
            &format!("{name} transposed"),
            |v| wsum(&op(&v[0].t()?, &v[1])?, 6),
            &[x.clone(), r],
        );
        gc(
            &format!("{name} x with its transpose"),
            |v| wsum(&op(&v[0], &v[0].t()?)?, 7),
            &[x],
        );
    }
    Ok(())
}

/// `where_cond`: gradients reach only the selected branch (with broadcast branches); a leaky
/// ReLU written with a mask computed from the variable itself.
pub fn grad_where_cond<B: Backend>(dev: &B::Device) -> Result<()> {
    let t = input::<B>(&[3, 4], 40, -2.0, 2.0, dev)?;
    let f = input::<B>(&[4], 41, -2.0, 2.0, dev)?;
    gc(
        "where_cond",
        |v| {
            let c = tensor::<Autodiff<B>>(&[1.0, 0.0, 1.0], [3, 1], DType::F64, v[0].device())?;
            wsum(&Tensor::where_cond(&c, &v[0], &v[1])?, 8)
        },
        &[t, f],
    );
    let x = input_away::<B>(&[2, 5], 42, 0.1, 2.0, dev)?;
    gc(
        "leaky relu via where_cond",
        |v| {
            let zero = Tensor::zeros((), DType::F64, v[0].device())?;
            wsum(
                &Tensor::where_cond(&v[0].gt(&zero)?, &v[0], &v[0].mul_scalar(0.1)?)?,
                9,
            )
        },
        &[x],
    );
    Ok(())
}

/// Reductions over axis sets with keepdim on/off, on a permuted variable.
pub fn grad_reductions<B: Backend>(dev: &B::Device) -> Result<()> {
    type Red<B> = fn(&T<B>, &[usize], bool) -> Result<T<B>>;
    let ops: Vec<(&str, Red<B>)> = vec![
        ("sum", |x, a, k| x.sum(a, k)),
        ("mean", |x, a, k| x.mean(a, k)),
        ("max", |x, a, k| x.max(a, k)),
        ("min", |x, a, k| x.min(a, k)),
        ("norm_l1", |x, a, k| x.norm_l1(a, k)),
        ("norm_l2", |x, a, k| x.norm_l2(a, k)),
    ];
    // Distinct values away from 0 (no ties for max/min, no kink for the norms).
    let x = input_away::<B>(&[2, 3, 4], 50, 0.1, 3.0, dev)?;
    for (name, op) in ops {
        for keepdim in [true, false] {
            gc(
                &format!("{name} keepdim {keepdim}"),
                |v| {
                    let p = v[0].permute(&[2, 0, 1])?; // [4, 2, 3]
                    let mut loss = wsum(&op(&p, &[0], keepdim)?, 1)?;
                    for (s, axes) in [&[1usize][..], &[2], &[0, 2], &[0, 1, 2]]
                        .iter()
                        .enumerate()
                    {
                        loss = loss.add(&wsum(&op(&p, axes, keepdim)?, 2 + s as u64)?)?;
                    }
                    Ok(loss)
                },
                std::slice::from_ref(&x),
            );
        }
    }
    gc(
        "sum_all + mean_all",
        |v| v[0].t()?.sum_all()?.add(&v[0].sqr()?.mean_all()?),
        &[x],
    );
    Ok(())
}

/// `matmul`: 2-D, batched, broadcast batch, transposed and narrowed operands.
pub fn grad_matmul<B: Backend>(dev: &B::Device) -> Result<()> {
    let cases: [(&[usize], &[usize]); 4] = [
        (&[3, 4], &[4, 5]),
        (&[2, 3, 4], &[2, 4, 2]),
        (&[2, 1, 2, 3], &[3, 3, 2]),
        (&[3, 4], &[2, 4, 3]),
    ];
    for (s, (ad, bd)) in cases.iter().enumerate() {
        let a = input::<B>(ad, 60 + s as u64, -1.0, 1.0, dev)?;
        let b = input::<B>(bd, 70 + s as u64, -1.0, 1.0, dev)?;
        gc(
            &format!("matmul {ad:?} x {bd:?}"),
            |v| wsum(&v[0].matmul(&v[1])?, 10),
            &[a, b],
        );
    }
    let a = input::<B>(&[4, 3], 80, -1.0, 1.0, dev)?;
    let b = input::<B>(&[5, 4], 81, -1.0, 1.0, dev)?;
    gc(
        "matmul transposed operands",
        |v| wsum(&v[0].t()?.matmul(&v[1].t()?)?, 11),
        &[a.clone(), b.clone()],
    );
    gc(
        "matmul narrowed operands",
        |v| {
            wsum(
                &v[1]
                    .narrow(1, 1, 3)?
                    .matmul(&v[0].narrow(0, 1, 3)?.narrow(1, 1, 2)?)?,
                12,
            )
        },
        &[a.clone(), b],
    );
    gc("matmul a·aᵀ", |v| wsum(&v[0].matmul(&v[0].t()?)?, 13), &[a]);
    Ok(())
}

/// Every view op: gradients route back through reshape (view and copy paths), permute,
/// transpose, t, narrow, chunk, squeeze/unsqueeze, flatten, broadcast_as and contiguous.
pub fn grad_views<B: Backend>(dev: &B::Device) -> Result<()> {
    let x = input::<B>(&[2, 3, 4], 90, -1.0, 1.0, dev)?;
    type V<B> = fn(&T<B>) -> Result<T<B>>;
    let views: Vec<(&str, V<B>)> = vec![
        ("reshape", |x| x.reshape([6, 4])),
        ("reshape of permuted (copy)", |x| {
            x.permute(&[2, 0, 1])?.reshape([8, 3])
        }),
        ("permute", |x| x.permute(&[1, 2, 0])),
        ("transpose", |x| x.transpose(0, 2)),
        ("t", |x| x.t()),
        ("narrow", |x| x.narrow(2, 1, 2)?.narrow(1, 2, 1)),
        ("squeeze/unsqueeze", |x| {
            x.narrow(0, 1, 1)?.squeeze(0)?.unsqueeze(2)
        }),
        ("flatten", |x| x.t()?.flatten(0, 1)),
        ("broadcast_as", |x| {
            x.narrow(1, 0, 1)?.broadcast_as([3, 2, 5, 4])
        }),
        ("contiguous", |x| x.permute(&[2, 1, 0])?.contiguous()),
    ];
    for (name, view) in views {
        gc(
            name,
            |v| wsum(&view(&v[0])?.sqr()?, 14),
            std::slice::from_ref(&x),
        );
    }
    gc(
        "chunk",
        |v| {
            let mut loss = Tensor::zeros((), DType::F64, v[0].device())?;
            for (i, c) in v[0].chunk(3, 2)?.iter().enumerate() {
                loss = loss.add(&wsum(&c.exp()?, 20 + i as u64)?)?;
            }
            Ok(loss)
        },
        std::slice::from_ref(&x),
    );
    // Leaves that are themselves strided views (transposed, broadcast) of their storage.
    gc(
        "transposed leaf",
        |v| wsum(&v[0].sqr()?.matmul(&v[0].t()?)?, 15),
        &[x.narrow(0, 0, 1)?.squeeze(0)?.t()?],
    );
    gc(
        "broadcast leaf",
        |v| wsum(&v[0].exp()?, 16),
        &[x.narrow(1, 1, 1)?.broadcast_as([2, 2, 3, 4])?],
    );
    Ok(())
}

/// `index_select` (duplicates accumulate), `cat` (a variable used twice) and `stack`.
pub fn grad_index_cat<B: Backend>(dev: &B::Device) -> Result<()> {
    let x = input::<B>(&[3, 4], 95, -1.0, 1.0, dev)?;
    let y = input::<B>(&[4, 3], 96, -1.0, 1.0, dev)?;
    gc(
        "index_select",
        |v| {
            let ids = Tensor::from_vec(vec![2i64, 0, 2, 2], [4], v[0].device())?;
            let a = wsum(&v[0].index_select(0, &ids)?, 30)?;
            let b = wsum(&v[1].t()?.index_select(1, &ids)?.sqr()?, 31)?;
            a.add(&b)
        },
        &[x.clone(), y.clone()],
    );
    gc(
        "cat",
        |v| wsum(&Tensor::cat(&[&v[0], &v[1].t()?, &v[0]], 0)?.sqr()?, 32),
        &[x.clone(), y.clone()],
    );
    gc(
        "cat dim 1",
        |v| {
            wsum(
                &Tensor::cat(&[&v[1].t()?, &v[0].narrow(1, 1, 2)?], 1)?.exp()?,
                33,
            )
        },
        &[x.clone(), y.clone()],
    );
    gc(
        "stack",
        |v| wsum(&Tensor::stack(&[&v[0], &v[1].t()?], 1)?.tanh()?, 34),
        &[x, y],
    );
    Ok(())
}

/// Casts pass gradients between float dtypes (the gradient has the variable's dtype); a cast to
/// i64 cuts the graph.
pub fn grad_to_dtype<B: Backend>(dev: &B::Device) -> Result<()> {
    let wv = round_to(DType::F32, &uniform_vec(6, 7, -1.0, 1.0));
    let x = leaf::<B>(&uniform_vec(6, 8, -1.0, 1.0), &[2, 3], dev)?;
    let w32 = tensor::<Autodiff<B>>(&wv, [2, 3], DType::F32, dev)?;
    let loss = x
        .to_dtype(DType::F32)?
        .mul(&w32)?
        .sum_all()?
        .to_dtype(DType::F64)?;
    let g = loss.backward()?;
    let gx = g.get(&x).expect("f64 -> f32 -> f64 gradient");
    assert_eq!(gx.dtype(), DType::F64);
    // Exactly w: the f32 weights are exact in f64 and the seed is 1.
    assert_eq!(gx.to_vec::<f64>()?, wv, "gradient through casts");
    // An f32 variable through an f64 computation: the gradient comes back as f32.
    let x32 = tensor::<Autodiff<B>>(&[0.5, -1.5], [2], DType::F32, dev)?.requires_grad()?;
    let g = x32.to_dtype(DType::F64)?.sqr()?.sum_all()?.backward()?;
    let g32 = g.get(&x32).expect("f32 -> f64 gradient");
    assert_eq!(g32.dtype(), DType::F32);
    assert_eq!(g32.to_vec::<f32>()?, vec![1.0, -3.0]);
    // f64 -> i64 is not differentiable: the result is untracked.
    assert!(!x.to_dtype(DType::I64)?.is_tracked());
    let xi = x.to_dtype(DType::I64)?.to_dtype(DType::F64)?;
    assert!(!xi.is_tracked());
    Ok(())
}

/// Softmax composed from exp/sum/div (with and without a detached max shift), and a
/// cross-entropy on it.
pub fn grad_softmax_composite<B: Backend>(dev: &B::Device) -> Result<()> {
    fn softmax<B: Backend>(x: &T<B>, detach_max: bool) -> Result<T<B>> {
        let m = x.max(&[1], true)?;
        let m = if detach_max { m.detach() } else { m };
        let e = x.sub(&m)?.exp()?;
        e.div(&e.sum(&[1], true)?)
    }
    let x = input::<B>(&[3, 5], 100, -3.0, 3.0, dev)?;
    gc(
        "softmax (detached max)",
        |v| wsum(&softmax(&v[0], true)?, 40),
        std::slice::from_ref(&x),
    );
    gc(
        "softmax (tracked max)",
        |v| wsum(&softmax(&v[0], false)?, 41),
        std::slice::from_ref(&x),
    );
    gc(
        "cross-entropy",
        |v| {
            let onehot = tensor::<Autodiff<B>>(
                &[0., 1., 0., 0., 0., 0., 0., 0., 0., 1., 1., 0., 0., 0., 0.],
                [3, 5],
                DType::F64,
                v[0].device(),
            )?;
            softmax(&v[0], true)?
                .log()?
                .mul(&onehot)?
                .sum_all()?
                .neg()?
                .mul_scalar(1.0 / 3.0)
        },
        &[x],
    );
    Ok(())
}

/// A two-layer MLP with a mean-squared-error loss: gradients w.r.t. the parameters *and* the
/// input.
pub fn grad_mlp<B: Backend>(dev: &B::Device) -> Result<()> {
    let x = input::<B>(&[5, 4], 110, -1.0, 1.0, dev)?;
    let w1 = input::<B>(&[4, 6], 111, -0.8, 0.8, dev)?;
    let b1 = input::<B>(&[6], 112, -0.2, 0.2, dev)?;
    let w2 = input::<B>(&[6, 3], 113, -0.8, 0.8, dev)?;
    let b2 = input::<B>(&[3], 114, -0.2, 0.2, dev)?;
    let target = uniform_vec(15, 115, -1.0, 1.0);
    gc(
        "mlp",
        |v| {
            let h = v[0].matmul(&v[1])?.add(&v[2])?.gelu()?;
            let y = h.matmul(&v[3])?.add(&v[4])?.tanh()?;
            let t = tensor::<Autodiff<B>>(&target, [5, 3], DType::F64, v[0].device())?;
            y.sub(&t)?.sqr()?.mean_all()
        },
        &[x, w1, b1, w2, b2],
    );
    Ok(())
}

/// A variable used several times accumulates its gradient.
pub fn grad_accumulation<B: Backend>(dev: &B::Device) -> Result<()> {
    let xv = uniform_vec(9, 120, -1.0, 1.0);
    let x = leaf::<B>(&xv, &[3, 3], dev)?;
    let loss = x.mul(&x)?.add(&x.exp()?)?.add(&x)?.sum_all()?;
    let g = grad_of(&loss.backward()?, &x);
    let want: Vec<f64> = xv.iter().map(|v| 2.0 * v + v.exp() + 1.0).collect();
    // Closed form; only rounding differs (a few ulp).
    assert_close("d/dx Σ(x² + eˣ + x)", &g, &want, 1e-14, 1e-14);
    let x = input::<B>(&[3, 3], 121, -1.0, 1.0, dev)?;
    gc(
        "x·xᵀ",
        |v| wsum(&v[0].matmul(&v[0].t()?)?, 50),
        std::slice::from_ref(&x),
    );
    gc(
        "two branches",
        |v| wsum(&v[0].t()?, 51)?.add(&wsum(&v[0].narrow(0, 1, 2)?.exp()?, 52)?),
        &[x],
    );
    Ok(())
}

/// Ops under `no_grad` record nothing; the mode nests and is restored.
pub fn no_grad_records_nothing<B: Backend>(dev: &B::Device) -> Result<()> {
    let x = leaf::<B>(&[1.0, 2.0], &[2], dev)?;
    assert!(x.is_tracked());
    assert!(is_grad_enabled());
    let y = no_grad(|| {
        assert!(!is_grad_enabled());
        let inner = no_grad(|| x.exp());
        assert!(!is_grad_enabled(), "a nested no_grad re-enabled recording");
        let y = x.exp()?.mul(&x)?.sum_all()?;
        assert!(!y.is_tracked() && !inner.as_ref().map(|t| t.is_tracked()).unwrap_or(true));
        assert!(
            !x.reshape([1, 2])?.is_tracked(),
            "views record under no_grad"
        );
        Ok::<_, crate::Error>(y)
    })?;
    assert!(is_grad_enabled(), "no_grad did not restore the mode");
    assert!(!y.is_tracked());
    assert!(
        y.backward().is_err(),
        "backward through a no_grad result succeeded"
    );
    {
        let _guard = NoGradGuard::new();
        assert!(!x.sqr()?.is_tracked());
    }
    assert!(
        x.sqr()?.is_tracked(),
        "NoGradGuard did not restore the mode on drop"
    );
    // A leaf created under no_grad is still a variable.
    let z = no_grad(|| Tensor::<Autodiff<B>>::ones([2], DType::F64, dev)?.requires_grad())?;
    assert!(z.is_tracked());
    Ok(())
}

/// `detach` cuts the graph and shares the storage.
pub fn detach<B: Backend>(dev: &B::Device) -> Result<()> {
    let xv = [1.5, -2.0, 0.5];
    let x = leaf::<B>(&xv, &[3], dev)?;
    let d = x.detach();
    assert!(!d.is_tracked());
    assert!(shares_storage(&d, &x));
    let loss = x.mul(&x.detach())?.sum_all()?;
    assert_eq!(
        grad_of(&loss.backward()?, &x),
        xv.to_vec(),
        "d/dx Σ x·stop(x) = stop(x)"
    );
    let y = x.exp()?;
    assert!(!y.detach().is_tracked() && y.is_tracked());
    assert!(
        y.detach().sum_all()?.backward().is_err(),
        "backward through a detached tensor succeeded"
    );
    Ok(())
}

/// `requires_grad` errors on a backend without autodiff and on integer tensors.
pub fn requires_grad_plain_backend_errors<B: Backend>(dev: &B::Device) -> Result<()> {
    let x = Tensor::<B>::ones([2], DType::F64, dev)?;
    let e = expect_err(
        x.requires_grad(),
        "requires_grad on a plain backend succeeded",
    );
    assert!(e.to_string().contains("does not record gradients"), "{e}");
    let i = Tensor::<Autodiff<B>>::ones([2], DType::I64, dev)?;
    let e = expect_err(i.requires_grad(), "requires_grad on i64 succeeded");
    let msg = e.to_string();
    assert!(
        msg.contains("requires_grad") && msg.contains("i64"),
        "{msg}"
    );
    Ok(())
}

/// A second backward through a freed graph (directly or through a shared subgraph) errors.
pub fn second_backward_errors<B: Backend>(dev: &B::Device) -> Result<()> {
    let x = leaf::<B>(&[1.0, 2.0], &[2], dev)?;
    let loss = x.exp()?.sum_all()?;
    loss.backward()?;
    let e = expect_err(loss.backward(), "second backward succeeded");
    assert!(e.to_string().contains("freed"), "{e}");
    let y = x.exp()?;
    let (l1, l2) = (y.sum_all()?, y.mean_all()?);
    l1.backward()?;
    let e = expect_err(
        l2.backward(),
        "backward through a freed shared subgraph succeeded",
    );
    assert!(e.to_string().contains("freed"), "{e}");
    // A fresh forward pass works again.
    assert_eq!(
        grad_of(&x.sqr()?.sum_all()?.backward()?, &x),
        vec![2.0, 4.0]
    );
    Ok(())
}

/// `maximum`/`minimum` split the gradient in half at ties (PyTorch's rule), also when the tie
/// comes from a broadcast operand.
pub fn maximum_ties_split<B: Backend>(dev: &B::Device) -> Result<()> {
    let a = leaf::<B>(&[1.0, 2.0, 3.0], &[3], dev)?;
    let b = leaf::<B>(&[1.0, 5.0, 0.0], &[3], dev)?;
    let g = a.maximum(&b)?.sum_all()?.backward()?;
    assert_eq!(grad_of(&g, &a), vec![0.5, 0.0, 1.0]);
    assert_eq!(grad_of(&g, &b), vec![0.5, 1.0, 0.0]);
    let g = a.minimum(&b)?.sum_all()?.backward()?;
    assert_eq!(grad_of(&g, &a), vec![0.5, 1.0, 0.0]);
    assert_eq!(grad_of(&g, &b), vec![0.5, 0.0, 1.0]);
    // Broadcast scalar tying with two elements.
    let m = leaf::<B>(&[2.0, 2.0, 1.0, 3.0], &[2, 2], dev)?;
    let s = leaf::<B>(&[2.0], &[], dev)?;
    let g = m.maximum(&s)?.sum_all()?.backward()?;
    assert_eq!(grad_of(&g, &m), vec![0.5, 0.5, 0.0, 1.0]);
    assert_eq!(
        grad_of(&g, &s),
        vec![2.0],
        "0.5 + 0.5 + 1 (from the element it beats)"
    );
    Ok(())
}

/// `max`/`min` reductions share the gradient equally between tied extrema.
pub fn reduce_max_ties_share<B: Backend>(dev: &B::Device) -> Result<()> {
    let x = leaf::<B>(&[1.0, 3.0, 3.0, 2.0], &[4], dev)?;
    assert_eq!(
        grad_of(&x.max(&[0], false)?.backward()?, &x),
        vec![0.0, 0.5, 0.5, 0.0]
    );
    let y = leaf::<B>(&[1.0, 3.0, 3.0, 2.0, 2.0, 2.0], &[2, 3], dev)?;
    let g = grad_of(&y.max(&[1], false)?.sum_all()?.backward()?, &y);
    assert_close(
        "row max ties",
        &g,
        &[0.0, 0.5, 0.5, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0],
        1e-15,
        0.0,
    );
    let g = grad_of(&y.min(&[0, 1], false)?.backward()?, &y);
    assert_eq!(g, vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    let g = grad_of(
        &y.t()?
            .min(&[0], true)?
            .mul_scalar(6.0)?
            .sum_all()?
            .backward()?,
        &y,
    );
    assert_eq!(
        g,
        vec![6.0, 0.0, 0.0, 2.0, 2.0, 2.0],
        "column-wise min of the transpose"
    );
    Ok(())
}

/// The gradient of `norm_l2` at a zero norm is 0, not NaN.
pub fn norm_l2_zero_gradient<B: Backend>(dev: &B::Device) -> Result<()> {
    let x = leaf::<B>(&[0.0, 0.0, 0.0, 3.0, 4.0, 0.0], &[2, 3], dev)?;
    let n = x.norm_l2(&[1], false)?;
    assert_eq!(n.to_vec::<f64>()?, vec![0.0, 5.0]);
    let g = grad_of(&n.sum_all()?.backward()?, &x);
    assert_close(
        "norm_l2 gradient",
        &g,
        &[0.0, 0.0, 0.0, 0.6, 0.8, 0.0],
        1e-15,
        0.0,
    );
    let z = leaf::<B>(&[0.0; 4], &[4], dev)?;
    let g = grad_of(&z.norm_l2(&[0], false)?.backward()?, &z);
    assert_eq!(g, vec![0.0; 4], "norm_l2 gradient of the zero vector");
    Ok(())
}

/// Derivative conventions at kinks (PyTorch's): relu'(0) = 0, abs'(0) = 0, sign' = 0, clamp
/// passes the gradient at its bounds.
pub fn kink_conventions<B: Backend>(dev: &B::Device) -> Result<()> {
    let x = leaf::<B>(&[-1.0, 0.0, 2.0], &[3], dev)?;
    assert_eq!(
        grad_of(&x.relu()?.sum_all()?.backward()?, &x),
        vec![0.0, 0.0, 1.0],
        "relu"
    );
    assert_eq!(
        grad_of(&x.abs()?.sum_all()?.backward()?, &x),
        vec![-1.0, 0.0, 1.0],
        "abs"
    );
    assert_eq!(
        grad_of(&x.sign()?.sum_all()?.backward()?, &x),
        vec![0.0, 0.0, 0.0],
        "sign"
    );
    assert_eq!(
        grad_of(&x.clamp_min(0.0)?.sum_all()?.backward()?, &x),
        vec![0.0, 1.0, 1.0],
        "clamp_min at bound"
    );
    assert_eq!(
        grad_of(&x.clamp_max(0.0)?.sum_all()?.backward()?, &x),
        vec![1.0, 1.0, 0.0],
        "clamp_max at bound"
    );
    assert_eq!(
        grad_of(&x.clamp(-1.0, 2.0)?.sum_all()?.backward()?, &x),
        vec![1.0, 1.0, 1.0],
        "clamp at both bounds"
    );
    assert_eq!(
        grad_of(&x.clamp(-0.5, 1.0)?.sum_all()?.backward()?, &x),
        vec![0.0, 1.0, 0.0],
        "clamp outside"
    );
    Ok(())
}

/// The gradient store reports only variables the loss depends on; comparisons, argmax,
/// integer results and untracked operands record nothing.
pub fn grad_store_and_untracked<B: Backend>(dev: &B::Device) -> Result<()> {
    let x = leaf::<B>(&[1.0, -2.0], &[2], dev)?;
    let unused = leaf::<B>(&[3.0], &[1], dev)?;
    let c = tensor::<Autodiff<B>>(&[2.0, 2.0], [2], DType::F64, dev)?;
    assert!(!c.is_tracked());
    assert!(
        !c.exp()?.mul(&c)?.is_tracked(),
        "ops on untracked operands recorded a node"
    );
    assert!(
        !x.gt(&c)?.is_tracked(),
        "comparisons are not differentiable"
    );
    assert!(!x.argmax(0, false)?.is_tracked());
    assert!(x.mul(&c)?.is_tracked(), "one tracked operand suffices");
    let mut g = x.mul(&c)?.sum_all()?.backward()?;
    assert_eq!(g.len(), 1);
    assert!(!g.is_empty());
    assert!(
        g.get(&unused).is_none(),
        "gradient reported for an unused variable"
    );
    assert_eq!(grad_of(&g, &x), vec![2.0, 2.0]);
    assert!(g.remove(&x).is_some());
    assert!(g.get(&x).is_none() && g.is_empty());
    // A loss that is itself a variable.
    let s = leaf::<B>(&[4.0], &[], dev)?;
    assert_eq!(grad_of(&s.backward()?, &s), vec![1.0]);
    Ok(())
}

/// `backward_with` seeds an explicit output gradient (and checks its shape).
pub fn backward_with_explicit_grad<B: Backend>(dev: &B::Device) -> Result<()> {
    let x = leaf::<B>(&[1.0, 2.0, 3.0, 4.0], &[2, 2], dev)?;
    let y = x.mul_scalar(3.0)?.t()?;
    let seed = tensor::<Autodiff<B>>(&[1.0, 10.0, 100.0, 1000.0], [2, 2], DType::F64, dev)?;
    let g = grad_of(&y.backward_with(&seed)?, &x);
    assert_eq!(
        g,
        vec![3.0, 300.0, 30.0, 3000.0],
        "gradient of a transposed output"
    );
    let y = x.exp()?;
    let bad = tensor::<Autodiff<B>>(&[1.0; 4], [4], DType::F64, dev)?;
    let e = expect_err(
        y.backward_with(&bad),
        "backward_with a wrongly shaped gradient succeeded",
    );
    assert!(
        e.to_string().contains("[2, 2]") && e.to_string().contains("[4]"),
        "{e}"
    );
    Ok(())
}

/// `from_inner`/`inner` move tensors between `B` and `Autodiff<B>` without copying.
pub fn inner_round_trip<B: Backend>(dev: &B::Device) -> Result<()> {
    let t = Tensor::<B>::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], [2, 2], dev)?.t()?;
    let a = Tensor::<Autodiff<B>>::from_inner(&t);
    assert!(!a.is_tracked());
    assert!(std::ptr::eq(a.storage(), t.storage()));
    assert_eq!(a.to_vec::<f64>()?, t.to_vec::<f64>()?);
    let v = a.requires_grad()?;
    let back = v.exp()?.inner();
    assert_eq!(back.dims(), &[2, 2]);
    assert_close(
        "inner of exp",
        &back.to_vec::<f64>()?,
        &[1f64.exp(), 3f64.exp(), 2f64.exp(), 4f64.exp()],
        1e-15,
        0.0,
    );
    Ok(())
}

/// Dropping a deep graph — here a chain of
/// 100 000 ops, as an unrolled recurrence or an accidentally accumulated running loss would build
/// — must not overflow the stack, before or after `backward`. Runs on a thread with a 2 MiB
/// stack (the test-harness default) so the outcome does not depend on the caller's stack size.
pub fn deep_graph_drop<B: Backend>(dev: &B::Device) -> Result<()> {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn_scoped(s, || -> Result<()> {
                for with_backward in [false, true] {
                    let x = leaf::<B>(&[1.0], &[1], dev)?;
                    let mut y = x.clone();
                    for _ in 0..100_000 {
                        y = y.add_scalar(1e-6)?;
                    }
                    if with_backward {
                        assert_eq!(grad_of(&y.sum_all()?.backward()?, &x), vec![1.0]);
                    }
                    drop(y);
                }
                Ok(())
            })
            .expect("spawn")
            .join()
            .expect("deep_graph_drop thread panicked")
    })
}
