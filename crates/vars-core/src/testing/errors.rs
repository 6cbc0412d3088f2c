//! Bad shapes, dtypes and dims produce an `Err` — never a panic — whose `Display` names the op
//! and the offending shapes/dtypes.

use super::util::tensor;
use crate::{Autodiff, Backend, DType, Result, Tensor};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`, which must return `Err` (not panic, not `Ok`) with a message containing every one
/// of `needles`.
#[track_caller]
pub fn expect_error<R>(what: &str, f: impl FnOnce() -> Result<R>, needles: &[&str]) {
    match catch_unwind(AssertUnwindSafe(f)) {
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{what}: panicked ({msg}) instead of returning Err");
        }
        Ok(Ok(_)) => panic!("{what}: returned Ok, expected an error"),
        Ok(Err(e)) => {
            let msg = e.to_string();
            for n in needles {
                assert!(
                    msg.contains(n),
                    "{what}: the error message {msg:?} does not mention {n:?}"
                );
            }
        }
    }
}

fn f64s<B: Backend>(dims: &[usize], dev: &B::Device) -> Result<Tensor<B>> {
    Tensor::ones(dims.to_vec(), DType::F64, dev)
}

/// Incompatible shapes in broadcasting binary ops and `where_cond`.
pub fn binary_broadcast_mismatch<B: Backend>(dev: &B::Device) -> Result<()> {
    let a = f64s::<B>(&[2, 3], dev)?;
    let b = f64s::<B>(&[4], dev)?;
    expect_error("add [2,3] + [4]", || a.add(&b), &["add", "[2, 3]", "[4]"]);
    let c = f64s::<B>(&[3, 2], dev)?;
    expect_error(
        "mul [2,3] * [3,2]",
        || a.mul(&c),
        &["mul", "[2, 3]", "[3, 2]"],
    );
    expect_error("lt [2,3] < [4]", || a.lt(&b), &["lt", "[2, 3]", "[4]"]);
    expect_error(
        "maximum [3,2] vs [2,3]",
        || c.maximum(&a),
        &["maximum", "[3, 2]", "[2, 3]"],
    );
    expect_error(
        "where_cond",
        || Tensor::where_cond(&a, &a, &b),
        &["where_cond", "[4]"],
    );
    Ok(())
}

/// Inner-dim, rank and batch mismatches in matmul.
pub fn matmul_mismatch<B: Backend>(dev: &B::Device) -> Result<()> {
    let a = f64s::<B>(&[2, 3], dev)?;
    let b = f64s::<B>(&[4, 5], dev)?;
    expect_error(
        "matmul [2,3]x[4,5]",
        || a.matmul(&b),
        &["matmul", "[2, 3]", "[4, 5]"],
    );
    let v = f64s::<B>(&[3], dev)?;
    expect_error(
        "matmul with a vector",
        || a.matmul(&v),
        &["matmul", "[2, 3]", "[3]"],
    );
    let p = f64s::<B>(&[2, 3, 4], dev)?;
    let q = f64s::<B>(&[3, 4, 5], dev)?;
    expect_error(
        "matmul batch mismatch",
        || p.matmul(&q),
        &["matmul", "[2]", "[3]"],
    );
    Ok(())
}

/// `reshape` to a different element count (also on a strided view).
pub fn reshape_element_count<B: Backend>(dev: &B::Device) -> Result<()> {
    let a = f64s::<B>(&[2, 3], dev)?;
    expect_error(
        "reshape [2,3] -> [4]",
        || a.reshape([4]),
        &["reshape", "[4]", "6"],
    );
    expect_error(
        "reshape of transposed",
        || a.t()?.reshape([7, 1]),
        &["reshape", "[7, 1]", "6"],
    );
    Ok(())
}

/// `narrow` (and its adjoint `pad_into`) out of range.
pub fn narrow_out_of_range<B: Backend>(dev: &B::Device) -> Result<()> {
    let a = f64s::<B>(&[2, 3], dev)?;
    expect_error(
        "narrow past the end",
        || a.narrow(1, 2, 2),
        &["narrow", "[2, 3]", "2..4"],
    );
    expect_error(
        "narrow start past the end",
        || a.narrow(0, 3, 0),
        &["narrow", "[2, 3]"],
    );
    expect_error(
        "narrow bad dim",
        || a.narrow(2, 0, 1),
        &["narrow", "dim 2", "[2, 3]"],
    );
    expect_error(
        "pad_into too small",
        || a.pad_into(1, 2, 4),
        &["pad_into", "[2, 3]", "2..5"],
    );
    expect_error(
        "pad_into bad dim",
        || a.pad_into(5, 0, 4),
        &["pad_into", "[2, 3]"],
    );
    Ok(())
}

/// Invalid permutations.
pub fn permute_invalid<B: Backend>(dev: &B::Device) -> Result<()> {
    let a = f64s::<B>(&[2, 3, 4], dev)?;
    for perm in [&[0usize, 0, 1][..], &[0, 1], &[0, 1, 3], &[0, 1, 2, 3]] {
        expect_error(
            &format!("permute {perm:?}"),
            || a.permute(perm),
            &["permute", "[2, 3, 4]"],
        );
    }
    Ok(())
}

/// Dims out of range for every dim-taking op.
pub fn dim_errors<B: Backend>(dev: &B::Device) -> Result<()> {
    let a = f64s::<B>(&[2, 3], dev)?;
    let s = "[2, 3]";
    expect_error("transpose", || a.transpose(0, 3), &["transpose", s]);
    expect_error("t of rank 1", || f64s::<B>(&[3], dev)?.t(), &["t", "[3]"]);
    expect_error("squeeze non-unit", || a.squeeze(0), &["squeeze", s]);
    expect_error("squeeze bad dim", || a.squeeze(2), &["squeeze", s]);
    expect_error("unsqueeze", || a.unsqueeze(3), &["unsqueeze", s]);
    expect_error("flatten reversed", || a.flatten(1, 0), &["flatten", s]);
    expect_error("flatten past rank", || a.flatten(0, 2), &["flatten", s]);
    expect_error("chunk 0", || a.chunk(0, 0), &["chunk", s]);
    expect_error("chunk bad dim", || a.chunk(2, 2), &["chunk", s]);
    expect_error(
        "broadcast_as",
        || a.broadcast_as([3, 3]),
        &["broadcast_as", s, "[3, 3]"],
    );
    expect_error(
        "broadcast_as to lower rank",
        || a.broadcast_as([3]),
        &["broadcast_as", s],
    );
    expect_error("sum axis", || a.sum(&[2], false), &["sum", s]);
    expect_error("mean axis", || a.mean(&[0, 5], true), &["mean", s]);
    expect_error("max axis", || a.max(&[2], false), &["max", s]);
    expect_error("argmax dim", || a.argmax(2, false), &["argmax", s]);
    expect_error("norm_l2 axis", || a.norm_l2(&[3], false), &["norm_l2", s]);
    let idx = Tensor::<B>::from_vec(vec![0i64], [1], dev)?;
    expect_error(
        "index_select dim",
        || a.index_select(2, &idx),
        &["index_select", s],
    );
    expect_error(
        "index_add_into dim",
        || a.index_add_into(2, &idx, 3),
        &["index_add"],
    );
    Ok(())
}

/// `index_select` with bad index tensors; `index_add_into` with out-of-range indices.
pub fn index_select_errors<B: Backend>(dev: &B::Device) -> Result<()> {
    let a = f64s::<B>(&[4, 3], dev)?;
    let fidx = Tensor::<B>::from_vec(vec![0.0f32, 1.0], [2], dev)?;
    expect_error(
        "f32 indices",
        || a.index_select(0, &fidx),
        &["index_select", "f32"],
    );
    let idx2 = Tensor::<B>::from_vec(vec![0i64, 1], [1, 2], dev)?;
    expect_error(
        "rank-2 indices",
        || a.index_select(0, &idx2),
        &["index_select", "[1, 2]"],
    );
    let oob = Tensor::<B>::from_vec(vec![0i64, 7], [2], dev)?;
    expect_error(
        "index 7 of 4",
        || a.index_select(0, &oob),
        &["index_select", "7"],
    );
    let neg = Tensor::<B>::from_vec(vec![-1i64], [1], dev)?;
    expect_error(
        "negative index",
        || a.index_select(1, &neg),
        &["index_select", "-1"],
    );
    let src = f64s::<B>(&[2, 3], dev)?;
    expect_error(
        "index_add_into out of range",
        || src.index_add_into(0, &oob, 4),
        &["index_add", "7"],
    );
    expect_error(
        "index_add_into f32 indices",
        || src.index_add_into(0, &fidx, 4),
        &["index_add", "f32"],
    );
    Ok(())
}

/// `cat` with mismatched shapes, dtypes, ranks, dims, or nothing to join.
pub fn cat_errors<B: Backend>(dev: &B::Device) -> Result<()> {
    let a = f64s::<B>(&[2, 3], dev)?;
    let b = f64s::<B>(&[2, 4], dev)?;
    expect_error(
        "cat [2,3] + [2,4] along 0",
        || Tensor::cat(&[&a, &b], 0),
        &["cat", "[2, 3]", "[2, 4]"],
    );
    let c = Tensor::<B>::ones([2, 3], DType::F32, dev)?;
    expect_error(
        "cat f64 + f32",
        || Tensor::cat(&[&a, &c], 0),
        &["cat", "f64", "f32"],
    );
    let r = f64s::<B>(&[2, 3, 1], dev)?;
    expect_error(
        "cat rank mismatch",
        || Tensor::cat(&[&a, &r], 0),
        &["cat", "[2, 3]", "[2, 3, 1]"],
    );
    expect_error("cat dim", || Tensor::cat(&[&a, &a], 2), &["cat", "[2, 3]"]);
    expect_error("cat of nothing", || Tensor::<B>::cat(&[], 0), &["cat"]);
    expect_error("stack mismatch", || Tensor::stack(&[&a, &b], 0), &["cat"]);
    Ok(())
}

/// Mixed dtypes in binary ops, matmul and `where_cond`.
pub fn dtype_mismatch<B: Backend>(dev: &B::Device) -> Result<()> {
    let a = Tensor::<B>::ones([2], DType::F32, dev)?;
    let b = Tensor::<B>::ones([2], DType::F64, dev)?;
    expect_error("f32 + f64", || a.add(&b), &["add", "f32", "f64"]);
    expect_error("f64 > f32", || b.gt(&a), &["gt", "f64", "f32"]);
    let i = Tensor::<B>::ones([2], DType::I64, dev)?;
    expect_error("f64 * i64", || b.mul(&i), &["mul", "f64", "i64"]);
    let m32 = Tensor::<B>::ones([2, 2], DType::F32, dev)?;
    let m64 = Tensor::<B>::ones([2, 2], DType::F64, dev)?;
    expect_error(
        "matmul f32 x f64",
        || m32.matmul(&m64),
        &["matmul", "f32", "f64"],
    );
    expect_error(
        "where_cond branches",
        || Tensor::where_cond(&b, &a, &b),
        &["where_cond", "f32", "f64"],
    );
    Ok(())
}

/// `to_vec`/`to_scalar` with the wrong element type or count.
pub fn to_vec_wrong_type<B: Backend>(dev: &B::Device) -> Result<()> {
    let a = Tensor::<B>::ones([2], DType::F64, dev)?;
    expect_error(
        "to_vec::<f32> of f64",
        || a.to_vec::<f32>(),
        &["to_vec", "f64", "f32"],
    );
    expect_error(
        "to_vec::<i64> of f64",
        || a.to_vec::<i64>(),
        &["to_vec", "f64", "i64"],
    );
    expect_error(
        "to_scalar of [2]",
        || a.to_scalar::<f64>(),
        &["to_scalar", "[2]"],
    );
    expect_error(
        "to_scalar wrong type",
        || a.narrow(0, 0, 1)?.to_scalar::<f32>(),
        &["to_vec", "f32"],
    );
    Ok(())
}

/// `backward` on a non-scalar or untracked tensor, `backward_with` a wrongly shaped seed.
pub fn backward_errors<B: Backend>(dev: &B::Device) -> Result<()> {
    let x = tensor::<Autodiff<B>>(&[1.0; 6], [2, 3], DType::F64, dev)?.requires_grad()?;
    let y = x.exp()?;
    expect_error(
        "backward of [2, 3]",
        || y.backward(),
        &["backward", "[2, 3]"],
    );
    let u = Tensor::<Autodiff<B>>::ones([1], DType::F64, dev)?;
    expect_error(
        "backward of untracked",
        || u.backward(),
        &["backward", "not part of a graph"],
    );
    expect_error(
        "backward_with [3]",
        || y.backward_with(&Tensor::ones([3], DType::F64, dev)?),
        &["backward", "[2, 3]", "[3]"],
    );
    expect_error(
        "backward_with an f32 seed",
        || y.backward_with(&Tensor::ones([2, 3], DType::F32, dev)?),
        &["backward", "f32", "f64"],
    );
    Ok(())
}

/// Host data of the wrong length; random integers.
pub fn creation_errors<B: Backend>(dev: &B::Device) -> Result<()> {
    expect_error(
        "from_vec 5 for [2, 3]",
        || Tensor::<B>::from_vec(vec![1.0f64; 5], [2, 3], dev),
        &["[2, 3]", "5", "6"],
    );
    expect_error(
        "randn i64",
        || Tensor::<B>::randn([2], DType::I64, 0, dev),
        &["random", "i64"],
    );
    expect_error(
        "rand_uniform i64",
        || Tensor::<B>::rand_uniform([2], 0.0, 1.0, DType::I64, 0, dev),
        &["random", "i64"],
    );
    Ok(())
}

/// Float-only ops on integer tensors report `UnsupportedDType` naming the op.
pub fn unsupported_dtype<B: Backend>(dev: &B::Device) -> Result<()> {
    let i = Tensor::<B>::ones([2, 2], DType::I64, dev)?;
    expect_error("exp of i64", || i.exp(), &["exp", "i64"]);
    expect_error("log of i64", || i.log(), &["log", "i64"]);
    expect_error("gelu of i64", || i.gelu(), &["gelu", "i64"]);
    expect_error(
        "sigmoid of strided i64",
        || i.t()?.sigmoid(),
        &["sigmoid", "i64"],
    );
    expect_error("powf of i64", || i.powf(2.0), &["powf", "i64"]);
    expect_error("mean of i64", || i.mean(&[0], false), &["mean", "i64"]);
    expect_error(
        "norm_l2 of i64",
        || i.norm_l2(&[0], false),
        &["norm_l2", "i64"],
    );
    Ok(())
}

/// Extremum reductions of empty tensors.
pub fn reduce_errors<B: Backend>(dev: &B::Device) -> Result<()> {
    let e = f64s::<B>(&[0, 3], dev)?;
    expect_error("max of empty", || e.max(&[0], false), &["max", "[0, 3]"]);
    expect_error("min of empty", || e.min(&[0, 1], false), &["min", "[0, 3]"]);
    expect_error(
        "argmax of empty",
        || e.argmax(0, false),
        &["argmax", "[0, 3]"],
    );
    Ok(())
}
