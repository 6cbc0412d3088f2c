//! The row kernels (fused softmax / log-softmax, layer-norm normalisation, their backwards)
//! against the CPU backend's, on random shapes and strided views (proptest), f32 and f64.
//!
//! Both backends compute each row in f64 and round once, but their reduction orders differ, so
//! results agree to a few ulps of the output dtype: tolerance 1e-12 (f64) / 2e-6 (f32) relative
//! to max(1, |value|).

use proptest::prelude::*;
use vars_core::{Backend, DType, HostData, Layout};
use vars_cpu::{Cpu, CpuDevice};
use vars_cuda::Cuda;

fn data(n: usize, seed: u64, dtype: DType) -> HostData {
    // A small deterministic generator (values in (-4, 4)), no dependence on vars-core's RNG.
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let v: Vec<f64> = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 8.0 - 4.0
        })
        .collect();
    match dtype {
        DType::F32 => HostData::F32(v.iter().map(|&x| x as f32).collect()),
        _ => HostData::F64(v),
    }
}

fn close(what: &str, got: &[f64], want: &[f64], dtype: DType) -> Result<(), TestCaseError> {
    let tol = if dtype == DType::F32 { 2e-6 } else { 1e-12 };
    prop_assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        prop_assert!(
            (g - w).abs() <= tol * w.abs().max(1.0),
            "{}[{}]: cuda {} vs cpu {}",
            what,
            i,
            g,
            w
        );
    }
    Ok(())
}

/// A view of `dims` (rank 3) over a buffer laid out in the permuted order `perm`, so the view
/// is strided unless `perm` is the identity.
fn view(dims: [usize; 3], perm: [usize; 3]) -> (Layout, usize) {
    let stored: Vec<usize> = perm.iter().map(|&p| dims[p]).collect();
    let base = Layout::contiguous(stored);
    let mut inverse = [0; 3];
    for (i, &p) in perm.iter().enumerate() {
        inverse[p] = i;
    }
    (base.permute(&inverse).unwrap(), dims.iter().product())
}

fn host(h: HostData) -> Vec<f64> {
    h.to_f64_vec()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn rows_match_the_cpu(
        a in 1usize..5, b in 1usize..6, n in 1usize..300,
        perm_i in 0usize..6, f64_dtype in any::<bool>(), seed in any::<u64>(),
    ) {
        let Some(dev) = super::device() else { return Ok(()) };
        let perms = [[0, 1, 2], [1, 0, 2], [0, 2, 1], [2, 1, 0], [1, 2, 0], [2, 0, 1]];
        let dtype = if f64_dtype { DType::F64 } else { DType::F32 };
        let (layout, count) = view([a, b, n], perms[perm_i]);
        let flat = Layout::contiguous(vec![a, b, n]);
        let stats = Layout::contiguous(vec![a, b, 1]);
        let x = data(count, seed, dtype);
        let g = data(count, seed ^ 0x9e37, dtype);
        let (xc, xg) = (Cpu::from_host(&CpuDevice, x.clone()).unwrap(), Cuda::from_host(dev, x).unwrap());
        let (gc, gg) = (Cpu::from_host(&CpuDevice, g.clone()).unwrap(), Cuda::from_host(dev, g).unwrap());
        for log in [false, true] {
            let yc = Cpu::softmax_last_dim(&xc, &layout, log).unwrap().unwrap();
            let yg = Cuda::softmax_last_dim(&xg, &layout, log).unwrap().unwrap();
            let (yc_h, yg_h) = (host(Cpu::to_host(&yc, &flat).unwrap()), host(Cuda::to_host(&yg, &flat).unwrap()));
            close(&format!("softmax log={log}"), &yg_h, &yc_h, dtype)?;
            // Backward with the gradient read through the same strided view.
            let dc = Cpu::softmax_last_dim_backward(&yc, &flat, &gc, &layout, log).unwrap().unwrap();
            let dg = Cuda::softmax_last_dim_backward(&yg, &flat, &gg, &layout, log).unwrap().unwrap();
            close(
                &format!("softmax backward log={log}"),
                &host(Cuda::to_host(&dg, &flat).unwrap()),
                &host(Cpu::to_host(&dc, &flat).unwrap()),
                dtype,
            )?;
        }
        let (hc, rc) = Cpu::layer_norm_last_dim(&xc, &layout, 1e-5).unwrap().unwrap();
        let (hg, rg) = Cuda::layer_norm_last_dim(&xg, &layout, 1e-5).unwrap().unwrap();
        close("layer_norm x̂", &host(Cuda::to_host(&hg, &flat).unwrap()), &host(Cpu::to_host(&hc, &flat).unwrap()), dtype)?;
        close("layer_norm rstd", &host(Cuda::to_host(&rg, &stats).unwrap()), &host(Cpu::to_host(&rc, &stats).unwrap()), dtype)?;
        let dc = Cpu::layer_norm_last_dim_backward(&hc, &flat, &rc, &stats, &gc, &layout).unwrap().unwrap();
        let dg = Cuda::layer_norm_last_dim_backward(&hg, &flat, &rg, &stats, &gg, &layout).unwrap().unwrap();
        close("layer_norm backward", &host(Cuda::to_host(&dg, &flat).unwrap()), &host(Cpu::to_host(&dc, &flat).unwrap()), dtype)?;
    }
}

/// Rows with NaN or all -inf behave like the composite on the CPU (NaN rows stay NaN).
#[test]
fn special_rows_match_the_cpu() {
    let Some(dev) = super::device() else { return };
    let v = vec![
        1.0,
        f64::NAN,
        2.0,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
        0.0,
        f64::NEG_INFINITY,
        3.0,
    ];
    let layout = Layout::contiguous(vec![3, 3]);
    let xc = Cpu::from_host(&CpuDevice, HostData::F64(v.clone())).unwrap();
    let xg = Cuda::from_host(dev, HostData::F64(v)).unwrap();
    for log in [false, true] {
        let c = host(
            Cpu::to_host(
                &Cpu::softmax_last_dim(&xc, &layout, log).unwrap().unwrap(),
                &layout,
            )
            .unwrap(),
        );
        let g = host(
            Cuda::to_host(
                &Cuda::softmax_last_dim(&xg, &layout, log).unwrap().unwrap(),
                &layout,
            )
            .unwrap(),
        );
        for (a, b) in g.iter().zip(&c) {
            assert!(
                (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() < 1e-12,
                "log={log}: {g:?} vs {c:?}"
            );
        }
    }
}
