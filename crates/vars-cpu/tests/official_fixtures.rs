//! Parity of the NN ops with the official VARS code (spec §4.1, §4.3) on the vendored model
//! fixtures (`fixtures/official/model_*.safetensors`, produced by `bfshi/VARS@651eb51` on CPU in
//! float32; see `fixtures/official/README.official.md`):
//!
//! - **stem**: `patch_embed.proj` = conv 7×7/s2/p2 → BatchNorm2d (eval, eps 1e-5) → max-pool
//!   3×3/s2/p1 → conv 4×4/s4, built from `param.patch_embed.proj.{0,1,3}.*` and applied to
//!   `input`, must reproduce `act.stem`;
//! - **pooling conv**: `pools.0.conv` (3×3/s2/p1, groups = C, bias) applied to the last stage-0
//!   block's output `act.stage0.block{last}`, reshaped from tokens (B, N, C) to (B, C, S, S) with
//!   token `n = row·S + col`, must reproduce `act.pool0`.
//!
//! **Metric**: `max_i |got_i − want_i| / max_i |want_i|`, the max-abs error relative to the
//! reference's scale, which is the metric of the fixture README ("expected max abs error ≲ 1e-4 ×
//! scale, scale = max |reference| over the tensor"). An elementwise relative error would be
//! ill-conditioned: convolution outputs that cancel to near zero carry the absolute rounding of
//! their O(scale) summands, so their relative error is unbounded for a correct implementation.
//! Both float32 (as the reference ran) and float64 (the exact computation on the same float32
//! parameters) are checked against 1e-4; the float64 error measures the reference's own float32
//! rounding (the README reports ≤ 1.5e-6 × scale for its float64 re-evaluation).

use std::collections::BTreeMap;
use std::path::PathBuf;

use safetensors::{Dtype, SafeTensors};
use vars_core::nn::{batch_norm, conv2d, max_pool2d, BatchNormStats};
use vars_core::{DType, Result, Tensor, Window2d};
use vars_cpu::{Cpu, CpuDevice};

type T = Tensor<Cpu>;

/// Tolerance of the fixture README for forward activations (× the reference's max |value|).
const TOL: f64 = 1e-4;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/official")
}

/// One fixture file: its tensors by name, as (shape, f32 values).
struct Fixture {
    name: String,
    tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

impl Fixture {
    fn load(path: &std::path::Path) -> Self {
        let bytes = std::fs::read(path).unwrap_or_else(|e| {
            panic!(
                "cannot read the official fixture {}: {e} (the vendored fixtures live in fixtures/official/ at the repository root)",
                path.display()
            )
        });
        let st = SafeTensors::deserialize(&bytes)
            .unwrap_or_else(|e| panic!("{} is not a valid safetensors file: {e}", path.display()));
        let mut tensors = BTreeMap::new();
        for (name, view) in st.iter() {
            // I64 entries (`num_batches_tracked`, `labels`) are not needed here.
            if view.dtype() != Dtype::F32 {
                continue;
            }
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            tensors.insert(name.to_string(), (view.shape().to_vec(), values));
        }
        Fixture {
            name: path.file_stem().unwrap().to_string_lossy().into_owned(),
            tensors,
        }
    }

    fn raw(&self, key: &str) -> &(Vec<usize>, Vec<f32>) {
        self.tensors
            .get(key)
            .unwrap_or_else(|| panic!("{}: missing tensor `{key}`", self.name))
    }

    /// The tensor `key` on the CPU in `dtype` (converted from the stored float32).
    fn get(&self, key: &str, dtype: DType) -> Result<T> {
        let (shape, values) = self.raw(key);
        Tensor::from_vec(values.clone(), shape.clone(), &CpuDevice)?.to_dtype(dtype)
    }
}

/// The model fixtures, sorted; panics naming the folder when there are none.
fn model_fixtures() -> Vec<PathBuf> {
    let dir = fixture_dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "cannot read the official fixture folder {}: {e}",
            dir.display()
        )
    });
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("model_") && name.ends_with(".safetensors")
        })
        .collect();
    paths.sort();
    assert!(
        !paths.is_empty(),
        "no model_*.safetensors fixtures found in {}",
        dir.display()
    );
    paths
}

/// `max |got − want| / max |want|` (see the module docs).
fn scaled_error(what: &str, got: &T, want: &T) -> Result<f64> {
    assert_eq!(
        got.dims(),
        want.dims(),
        "{what}: shape differs from the fixture"
    );
    let (g, w) = (got.to_vec_f64()?, want.to_vec_f64()?);
    let scale = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(scale > 0.0, "{what}: the reference is all zeros");
    let err = g
        .iter()
        .zip(&w)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f64, f64::max);
    Ok(err / scale)
}

/// The RVT stem in eval mode (spec §4.1).
fn stem(fx: &Fixture, dtype: DType) -> Result<T> {
    let p = |k: &str| fx.get(&format!("param.patch_embed.proj.{k}"), dtype);
    let x = fx.get("input", dtype)?;
    let x = conv2d(
        &x,
        &p("0.weight")?,
        Some(&p("0.bias")?),
        Window2d::square(7, 2, 2),
        1,
    )?;
    let stats = BatchNormStats {
        running_mean: p("1.running_mean")?,
        running_var: p("1.running_var")?,
        num_batches_tracked: 0,
    };
    let (x, _) = batch_norm(
        &x,
        &stats,
        Some(&p("1.weight")?),
        Some(&p("1.bias")?),
        false,
        0.1,
        1e-5,
    )?;
    let x = max_pool2d(&x, Window2d::square(3, 2, 1))?;
    conv2d(
        &x,
        &p("3.weight")?,
        Some(&p("3.bias")?),
        Window2d::square(4, 4, 0),
        1,
    )
}

/// `pools.0.conv` on the last stage-0 block's tokens (spec §4.3).
fn pool0(fx: &Fixture, dtype: DType) -> Result<T> {
    let last = fx
        .tensors
        .keys()
        .filter_map(|k| k.strip_prefix("act.stage0.block")?.parse::<usize>().ok())
        .max()
        .unwrap_or_else(|| panic!("{}: no act.stage0.block* tensor", fx.name));
    let tokens = fx.get(&format!("act.stage0.block{last}"), dtype)?;
    let (b, n, c) = (tokens.dims()[0], tokens.dims()[1], tokens.dims()[2]);
    let s = (n as f64).sqrt().round() as usize;
    assert_eq!(s * s, n, "{}: {n} tokens are not a square grid", fx.name);
    // (B, N, C) → (B, C, N) → (B, C, S, S): channel-major, token n = row·S + col.
    let grid = tokens.transpose(1, 2)?.reshape([b, c, s, s])?;
    let w = fx.get("param.pools.0.conv.weight", dtype)?;
    conv2d(
        &grid,
        &w,
        Some(&fx.get("param.pools.0.conv.bias", dtype)?),
        Window2d::square(3, 2, 1),
        c,
    )
}

#[test]
fn stem_and_pooling_conv_match_official_fixtures() -> Result<()> {
    let mut failures = Vec::new();
    for path in model_fixtures() {
        let fx = Fixture::load(&path);
        for dtype in [DType::F32, DType::F64] {
            let stem_err = scaled_error(
                &format!("{} act.stem", fx.name),
                &stem(&fx, dtype)?,
                &fx.get("act.stem", dtype)?,
            )?;
            let pool_err = scaled_error(
                &format!("{} act.pool0", fx.name),
                &pool0(&fx, dtype)?,
                &fx.get("act.pool0", dtype)?,
            )?;
            eprintln!(
                "{} ({dtype}): act.stem max|err|/max|ref| = {stem_err:.3e}, act.pool0 = {pool_err:.3e}",
                fx.name
            );
            for (what, err) in [("act.stem", stem_err), ("act.pool0", pool_err)] {
                if err.is_nan() || err > TOL {
                    failures.push(format!("{} {what} ({dtype}): {err:e}", fx.name));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "max|err|/max|ref| above {TOL:e}: {failures:?}"
    );
    Ok(())
}

/// The stem's input and output sizes (spec §4.1: 96 → 47 → 24 → 6) and the pooled grid
/// (6 → 3), read from the fixtures themselves.
#[test]
fn fixture_shapes() {
    for path in model_fixtures() {
        let fx = Fixture::load(&path);
        assert_eq!(fx.raw("input").0, [2, 3, 96, 96], "{}", fx.name);
        assert_eq!(fx.raw("act.stem").0, [2, 32, 6, 6], "{}", fx.name);
        assert_eq!(fx.raw("act.pool0").0, [2, 64, 3, 3], "{}", fx.name);
        assert_eq!(
            fx.raw("param.pools.0.conv.weight").0,
            [64, 1, 3, 3],
            "{}",
            fx.name
        );
    }
}
