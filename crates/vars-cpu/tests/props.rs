//! Property tests: random permutations, narrowings and broadcasts of random shapes.

mod common;

use common::*;
use proptest::prelude::*;
use vars_core::{Backend, DType, Layout, ReduceOp};

/// A random view: shape (rank 1–4, dims 1–5), a random permutation, an optional narrowing of
/// one dim and an optional broadcast of one dim.
/// `(dims, perm, narrow (dim, padding), broadcast dim, seed)`.
type ViewSpec = (
    Vec<usize>,
    Vec<usize>,
    Option<(usize, usize)>,
    Option<usize>,
    u64,
);

fn view_strategy() -> impl Strategy<Value = ViewSpec> {
    (1usize..=4).prop_flat_map(|rank| {
        (
            proptest::collection::vec(1usize..=5, rank),
            Just((0..rank).collect::<Vec<usize>>()).prop_shuffle(),
            proptest::option::of((0..rank, 0usize..3)),
            proptest::option::of(0..rank),
            any::<u64>(),
        )
    })
}

fn build(
    dims: &[usize],
    perm: &[usize],
    narrow: Option<(usize, usize)>,
    bcast: Option<usize>,
) -> (Layout, usize) {
    let mut stored = dims.to_vec();
    if let Some(d) = bcast {
        stored[d] = 1;
    }
    let mut padded = stored.clone();
    if let Some((d, extra)) = narrow {
        padded[d] += extra;
    }
    let len: usize = padded.iter().product();
    let mut l = Layout::contiguous(padded);
    if let Some((d, extra)) = narrow {
        l = l.narrow(d, extra.min(1), stored[d]).unwrap();
    }
    if bcast.is_some() {
        l = l.broadcast_as(&dims.to_vec().into()).unwrap();
    }
    (l.permute(perm).unwrap(), len)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// copy_strided of any view equals the reference gather, and copying it back through
    /// copy_into the same view of a fresh buffer reproduces every element the view covers.
    #[test]
    fn copy_strided_equals_gather((dims, perm, narrow, bcast, seed) in view_strategy()) {
        let (l, len) = build(&dims, &perm, narrow, bcast);
        let buf = data(len, seed);
        for dtype in [DType::F32, DType::F64, DType::I64] {
            let s = storage(&buf, dtype);
            let want: Vec<f64> = ref_gather(&values(&s), &l);
            let got = B::copy_strided(&s, &l).unwrap();
            prop_assert_eq!(values(&got), want.clone());
            if bcast.is_none() {
                let mut dst = storage(&vec![0.0; len], dtype);
                B::copy_into(&got, &Layout::contiguous(l.dims().to_vec()), &mut dst, &l).unwrap();
                prop_assert_eq!(ref_gather(&values(&dst), &l), want);
            }
        }
    }

    /// Summing over all axes of any view equals the sum of the gathered elements (exact data).
    #[test]
    fn full_sum_equals_gathered_sum((dims, perm, narrow, bcast, seed) in view_strategy()) {
        let (l, len) = build(&dims, &perm, narrow, bcast);
        let buf = data(len, seed);
        let axes: Vec<usize> = (0..dims.len()).collect();
        let s = storage(&buf, DType::F32);
        let got = B::reduce(ReduceOp::Sum, &s, &l, &axes).unwrap();
        let want: f64 = ref_gather(&buf, &l).iter().sum();
        prop_assert_eq!(values(&got), vec![want]);
    }
}
