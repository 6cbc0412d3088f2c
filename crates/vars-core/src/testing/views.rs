//! Layout ops, checked by index arithmetic on [`iota`] tensors (element `i` holds `i`), so every
//! expected value is exact.

use super::util::*;
use crate::{Backend, Result, Tensor};

fn iota_vec(n: usize) -> Vec<f64> {
    (0..n).map(|i| i as f64).collect()
}

/// Reshape of contiguous data is a view with the same row-major values.
pub fn reshape_contiguous<B: Backend>(dev: &B::Device) -> Result<()> {
    let x = iota::<B>(&[24], dev)?;
    for dims in [
        vec![2, 3, 4],
        vec![4, 6],
        vec![1, 24, 1],
        vec![2, 1, 12],
        vec![24],
    ] {
        let r = x.reshape(dims.clone())?;
        assert!(
            shares_storage(&r, &x),
            "reshape {dims:?} of contiguous data copied"
        );
        assert!(r.is_contiguous());
        assert_tensor_eq("reshape", &r, &dims, &iota_vec(24))?;
    }
    // Through a non-trivial shape and back, and rank 0 <-> [1].
    let back = x.reshape([2, 3, 4])?.reshape([6, 4])?.reshape([24])?;
    assert_tensor_eq("reshape chain", &back, &[24], &iota_vec(24))?;
    let s = Tensor::<B>::from_vec(vec![5.0f64], (), dev)?;
    assert_tensor_eq("scalar -> [1, 1]", &s.reshape([1, 1])?, &[1, 1], &[5.0])?;
    assert_tensor_eq(
        "[1, 1] -> scalar",
        &s.reshape([1, 1])?.reshape(())?,
        &[],
        &[5.0],
    )?;
    // A contiguous view with an offset (narrow of the outer dim) reshapes as a view too.
    let n = iota::<B>(&[4, 6], dev)?.narrow(0, 1, 2)?;
    let r = n.reshape([3, 4])?;
    assert_tensor_eq(
        "reshape of offset view",
        &r,
        &[3, 4],
        &(6..18).map(|i| i as f64).collect::<Vec<_>>(),
    )?;
    Ok(())
}

/// Reshape of non-contiguous data reads the view in row-major order.
pub fn reshape_non_contiguous<B: Backend>(dev: &B::Device) -> Result<()> {
    let dims = [2, 3, 4];
    let x = iota::<B>(&dims, dev)?;
    let perm = [2, 0, 1];
    let p = x.permute(&perm)?; // [4, 2, 3]
    let want = reference_permute(&iota_vec(24), &dims, &perm);
    let r = p.reshape([4, 6])?;
    assert_tensor_eq("reshape of permuted", &r, &[4, 6], &want)?;
    assert_tensor_eq("flat reshape of permuted", &p.reshape([24])?, &[24], &want)?;
    let t = iota::<B>(&[5, 6], dev)?.t()?.narrow(0, 1, 4)?; // [4, 5], strided
    let want_t = reference_narrow(
        &reference_permute(&iota_vec(30), &[5, 6], &[1, 0]),
        &[6, 5],
        0,
        1,
        4,
    );
    assert_tensor_eq(
        "reshape of narrowed transpose",
        &t.reshape([2, 10])?,
        &[2, 10],
        &want_t,
    )?;
    // Inserting/removing unit dims of a strided view needs no copy.
    let u = p.reshape([4, 1, 2, 3])?;
    assert!(
        shares_storage(&u, &x),
        "adding a unit dim to a strided view copied"
    );
    assert_tensor_eq("unit dims of permuted", &u, &[4, 1, 2, 3], &want)?;
    Ok(())
}

/// `permute` of 3-D and 4-D tensors: every element where index arithmetic says.
pub fn permute<B: Backend>(dev: &B::Device) -> Result<()> {
    let dims = [2, 3, 4, 5];
    let x = iota::<B>(&dims, dev)?;
    for perm in [
        [0, 1, 2, 3],
        [3, 2, 1, 0],
        [1, 3, 0, 2],
        [2, 0, 3, 1],
        [0, 2, 1, 3],
    ] {
        let p = x.permute(&perm)?;
        assert!(shares_storage(&p, &x), "permute copied");
        let want = reference_permute(&iota_vec(120), &dims, &perm);
        assert_tensor_eq(
            &format!("permute {perm:?}"),
            &p,
            &permuted_dims(&dims, &perm),
            &want,
        )?;
        // Permuting a permuted view composes.
        let pp = p.permute(&[1, 0, 3, 2])?;
        let pd = permuted_dims(&dims, &perm);
        let want2 = reference_permute(&want, &pd, &[1, 0, 3, 2]);
        assert_tensor_eq(
            "permute of permute",
            &pp,
            &permuted_dims(&pd, &[1, 0, 3, 2]),
            &want2,
        )?;
    }
    let y = iota::<B>(&[3, 1, 2], dev)?;
    assert_tensor_eq(
        "permute with unit dim",
        &y.permute(&[2, 1, 0])?,
        &[2, 1, 3],
        &[0.0, 2.0, 4.0, 1.0, 3.0, 5.0],
    )?;
    Ok(())
}

/// `transpose(d0, d1)` and `t()` (last two dims).
pub fn transpose_and_t<B: Backend>(dev: &B::Device) -> Result<()> {
    let dims = [2, 3, 4];
    let x = iota::<B>(&dims, dev)?;
    let v = iota_vec(24);
    assert_tensor_eq(
        "t",
        &x.t()?,
        &[2, 4, 3],
        &reference_permute(&v, &dims, &[0, 2, 1]),
    )?;
    assert_tensor_eq(
        "transpose(0, 2)",
        &x.transpose(0, 2)?,
        &[4, 3, 2],
        &reference_permute(&v, &dims, &[2, 1, 0]),
    )?;
    assert_tensor_eq("transpose(1, 1)", &x.transpose(1, 1)?, &dims, &v)?;
    assert_tensor_eq("t().t()", &x.t()?.t()?, &dims, &v)?;
    let m = iota::<B>(&[2, 3], dev)?;
    assert_tensor_eq(
        "matrix t",
        &m.t()?,
        &[3, 2],
        &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0],
    )?;
    Ok(())
}

/// `narrow` with offsets on every dim, chained, on permuted views, and of length 0.
pub fn narrow<B: Backend>(dev: &B::Device) -> Result<()> {
    let dims = [4, 5, 6];
    let x = iota::<B>(&dims, dev)?;
    let v = iota_vec(120);
    for (dim, start, len) in [
        (0, 1, 2),
        (1, 2, 3),
        (2, 3, 3),
        (2, 0, 6),
        (0, 3, 1),
        (1, 4, 1),
    ] {
        let n = x.narrow(dim, start, len)?;
        assert!(shares_storage(&n, &x), "narrow copied");
        let mut d = dims.to_vec();
        d[dim] = len;
        assert_tensor_eq(
            &format!("narrow({dim}, {start}, {len})"),
            &n,
            &d,
            &reference_narrow(&v, &dims, dim, start, len),
        )?;
    }
    // Chained on every dim.
    let n = x
        .narrow(0, 1, 3)?
        .narrow(1, 1, 3)?
        .narrow(2, 2, 3)?
        .narrow(0, 1, 2)?;
    let mut want = reference_narrow(&v, &dims, 0, 1, 3);
    want = reference_narrow(&want, &[3, 5, 6], 1, 1, 3);
    want = reference_narrow(&want, &[3, 3, 6], 2, 2, 3);
    want = reference_narrow(&want, &[3, 3, 3], 0, 1, 2);
    assert_tensor_eq("chained narrow", &n, &[2, 3, 3], &want)?;
    // On a permuted view.
    let p = x.permute(&[2, 0, 1])?.narrow(0, 2, 3)?.narrow(2, 1, 2)?;
    let pv = reference_permute(&v, &dims, &[2, 0, 1]);
    let want = reference_narrow(
        &reference_narrow(&pv, &[6, 4, 5], 0, 2, 3),
        &[3, 4, 5],
        2,
        1,
        2,
    );
    assert_tensor_eq("narrow of permuted", &p, &[3, 4, 2], &want)?;
    // Empty ranges, including one that starts at the end.
    assert_eq!(x.narrow(1, 2, 0)?.elem_count(), 0);
    assert!(x.narrow(2, 6, 0)?.to_vec_f64()?.is_empty());
    Ok(())
}

/// `chunk` follows `torch.chunk`: pieces of `ceil(size / chunks)`, the last one shorter, and
/// possibly fewer than `chunks` pieces.
pub fn chunk<B: Backend>(dev: &B::Device) -> Result<()> {
    let x = iota::<B>(&[3, 7], dev)?;
    let v = iota_vec(21);
    for (size, chunks, want_sizes) in [
        (7, 3, vec![3, 3, 1]),
        (7, 7, vec![1; 7]),
        (7, 1, vec![7]),
        (7, 10, vec![1; 7]),
    ] {
        let parts = x.chunk(chunks, 1)?;
        let sizes: Vec<usize> = parts.iter().map(|p| p.dims()[1]).collect();
        assert_eq!(sizes, want_sizes, "chunk({chunks}) of size {size}");
        let mut start = 0;
        for p in &parts {
            let len = p.dims()[1];
            assert_tensor_eq(
                "chunk piece",
                p,
                &[3, len],
                &reference_narrow(&v, &[3, 7], 1, start, len),
            )?;
            start += len;
        }
    }
    let y = iota::<B>(&[6, 2], dev)?;
    let sizes: Vec<usize> = y.chunk(4, 0)?.iter().map(|p| p.dims()[0]).collect();
    assert_eq!(
        sizes,
        vec![2, 2, 2],
        "torch.chunk(6 rows, 4) gives 3 pieces of 2"
    );
    Ok(())
}

/// `squeeze`/`unsqueeze` at every position, on contiguous and strided data.
pub fn squeeze_unsqueeze<B: Backend>(dev: &B::Device) -> Result<()> {
    let x = iota::<B>(&[2, 1, 3], dev)?;
    let v = iota_vec(6);
    assert_tensor_eq("squeeze(1)", &x.squeeze(1)?, &[2, 3], &v)?;
    assert_tensor_eq("unsqueeze(0)", &x.unsqueeze(0)?, &[1, 2, 1, 3], &v)?;
    assert_tensor_eq("unsqueeze(3)", &x.unsqueeze(3)?, &[2, 1, 3, 1], &v)?;
    assert_tensor_eq("unsqueeze(2)", &x.unsqueeze(2)?, &[2, 1, 1, 3], &v)?;
    let p = x.permute(&[2, 1, 0])?; // [3, 1, 2]
    let pv = reference_permute(&v, &[2, 1, 3], &[2, 1, 0]);
    let s = p.squeeze(1)?;
    assert!(shares_storage(&s, &x), "squeeze of a strided view copied");
    assert_tensor_eq("squeeze of permuted", &s, &[3, 2], &pv)?;
    assert_tensor_eq(
        "unsqueeze of permuted",
        &s.unsqueeze(1)?.unsqueeze(0)?,
        &[1, 3, 1, 2],
        &pv,
    )?;
    let sc = Tensor::<B>::from_vec(vec![2.0f64], (), dev)?;
    assert_tensor_eq("unsqueeze scalar", &sc.unsqueeze(0)?, &[1], &[2.0])?;
    assert_tensor_eq(
        "squeeze to scalar",
        &sc.unsqueeze(0)?.squeeze(0)?,
        &[],
        &[2.0],
    )?;
    Ok(())
}

/// `flatten(start, end)` on contiguous and permuted data.
pub fn flatten<B: Backend>(dev: &B::Device) -> Result<()> {
    let dims = [2, 3, 4, 5];
    let x = iota::<B>(&dims, dev)?;
    let v = iota_vec(120);
    assert_tensor_eq("flatten(1, 2)", &x.flatten(1, 2)?, &[2, 12, 5], &v)?;
    assert_tensor_eq("flatten(0, 3)", &x.flatten(0, 3)?, &[120], &v)?;
    assert_tensor_eq("flatten(2, 2)", &x.flatten(2, 2)?, &dims, &v)?;
    let p = x.permute(&[3, 1, 0, 2])?;
    let pv = reference_permute(&v, &dims, &[3, 1, 0, 2]);
    assert_tensor_eq("flatten of permuted", &p.flatten(1, 3)?, &[5, 24], &pv)?;
    Ok(())
}

/// `broadcast_as` repeats size-1 and missing leading dims with stride 0 (no copy).
pub fn broadcast_as<B: Backend>(dev: &B::Device) -> Result<()> {
    let x = iota::<B>(&[3, 1], dev)?;
    let b = x.broadcast_as([2, 3, 4])?;
    assert!(shares_storage(&b, &x), "broadcast_as copied");
    assert!(b.layout().strides().contains(&0));
    assert_tensor_eq(
        "broadcast [3,1] -> [2,3,4]",
        &b,
        &[2, 3, 4],
        &reference_broadcast(&iota_vec(3), &[3, 1], &[2, 3, 4]),
    )?;
    let s = Tensor::<B>::from_vec(vec![7.0f64], (), dev)?;
    assert_tensor_eq(
        "broadcast scalar",
        &s.broadcast_as([2, 2])?,
        &[2, 2],
        &[7.0; 4],
    )?;
    // Broadcasting a strided view, then viewing the broadcast.
    let t = iota::<B>(&[2, 3], dev)?.t()?.unsqueeze(1)?; // [3, 1, 2]
    let tv = reference_permute(&iota_vec(6), &[2, 3], &[1, 0]);
    let bt = t.broadcast_as([2, 3, 4, 2])?;
    assert_tensor_eq(
        "broadcast of transposed",
        &bt,
        &[2, 3, 4, 2],
        &reference_broadcast(&tv, &[3, 1, 2], &[2, 3, 4, 2]),
    )?;
    let bn = bt.narrow(2, 1, 2)?.permute(&[3, 0, 1, 2])?;
    let want = reference_permute(
        &reference_broadcast(&tv, &[3, 1, 2], &[2, 3, 2, 2]),
        &[2, 3, 2, 2],
        &[3, 0, 1, 2],
    );
    assert_tensor_eq("views of a broadcast", &bn, &[2, 2, 3, 2], &want)?;
    Ok(())
}

/// `contiguous` is free for contiguous offset-0 data and materialises every other view.
pub fn contiguous<B: Backend>(dev: &B::Device) -> Result<()> {
    let x = iota::<B>(&[4, 5], dev)?;
    assert!(
        shares_storage(&x.contiguous()?, &x),
        "contiguous() of contiguous data copied"
    );
    let cases: Vec<(Tensor<B>, Vec<usize>, Vec<f64>)> = vec![
        (
            x.t()?,
            vec![5, 4],
            reference_permute(&iota_vec(20), &[4, 5], &[1, 0]),
        ),
        (
            x.narrow(0, 1, 2)?,
            vec![2, 5],
            (5..15).map(|i| i as f64).collect(),
        ),
        (
            x.narrow(1, 1, 3)?,
            vec![4, 3],
            reference_narrow(&iota_vec(20), &[4, 5], 1, 1, 3),
        ),
        (
            x.narrow(0, 2, 1)?.broadcast_as([3, 1, 5])?,
            vec![3, 1, 5],
            (0..3).flat_map(|_| (10..15).map(|i| i as f64)).collect(),
        ),
    ];
    for (view, dims, want) in cases {
        let c = view.contiguous()?;
        assert!(
            c.is_contiguous() && c.layout().offset() == 0,
            "contiguous() result is strided"
        );
        assert_eq!(
            c.layout().strides(),
            crate::Shape::new(dims.clone())
                .contiguous_strides()
                .as_slice()
        );
        assert_tensor_eq("contiguous", &c, &dims, &want)?;
    }
    Ok(())
}

/// A long chain of views over a 4-D tensor, in every float dtype and i64.
pub fn composed_views<B: Backend>(dev: &B::Device) -> Result<()> {
    let dims = [3, 4, 5, 2];
    let v = iota_vec(120);
    for dt in ALL_DTYPES {
        let x = tensor::<B>(&v, dims.to_vec(), dt, dev)?;
        let y = x
            .permute(&[1, 3, 0, 2])?
            .narrow(0, 1, 3)?
            .narrow(3, 1, 3)?
            .unsqueeze(2)?
            .transpose(0, 4)?;
        // Reference: the same chain on the host.
        let mut w = reference_permute(&v, &dims, &[1, 3, 0, 2]); // [4, 2, 3, 5]
        w = reference_narrow(&w, &[4, 2, 3, 5], 0, 1, 3); // [3, 2, 3, 5]
        w = reference_narrow(&w, &[3, 2, 3, 5], 3, 1, 3); // [3, 2, 3, 3]
                                                          // unsqueeze(2) -> [3, 2, 1, 3, 3]; transpose(0, 4) -> [3, 2, 1, 3, 3]
        w = reference_permute(&w, &[3, 2, 1, 3, 3], &[4, 1, 2, 3, 0]);
        assert_tensor_eq(&format!("composed views ({dt})"), &y, &[3, 2, 1, 3, 3], &w)?;
        assert_tensor_eq(
            &format!("contiguous of composed ({dt})"),
            &y.contiguous()?,
            &[3, 2, 1, 3, 3],
            &w,
        )?;
        assert_eq!(y.dtype(), dt);
    }
    Ok(())
}
