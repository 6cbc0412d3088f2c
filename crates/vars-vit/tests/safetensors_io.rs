//! Checkpoint I/O on the CPU backend: safetensors round trips, the vendored official fixture,
//! strict and non-strict loading into a model, corrupt files and failing saves.

#![cfg(feature = "cpu")]

use std::path::{Path, PathBuf};
use vars_core::{Autodiff, Backend, DType, HostData, Tensor};
use vars_cpu::{Cpu, CpuDevice};
use vars_vit::io::StateDict;
use vars_vit::{visit_child, visit_child_mut, ParamKind, Parameters, VitError};

const DEV: CpuDevice = CpuDevice;

fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/official/model_vars_d.safetensors")
}

fn f32t(v: Vec<f32>, shape: &[usize]) -> Tensor<Cpu> {
    Tensor::from_vec(v, shape, &DEV).unwrap()
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A safetensors file assembled by hand: length prefix, header, data.
fn raw_file(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    out
}

/// Writes `bytes` to a file, loads it, and returns the error message (which must name the file).
fn load_error(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.safetensors");
    std::fs::write(&path, bytes).unwrap();
    let err = StateDict::<Cpu>::load(&path, &DEV).expect_err("corrupt file must not load");
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(
        msg.contains(&path.display().to_string()),
        "message must name the file: {msg}"
    );
    msg
}

fn assert_same(a: &Tensor<Cpu>, b: &Tensor<Cpu>) {
    assert_eq!(a.dims(), b.dims());
    assert_eq!(a.dtype(), b.dtype());
    assert_eq!(a.to_host().unwrap(), b.to_host().unwrap());
}

// ---- round trips ------------------------------------------------------------------------------

#[test]
fn round_trip_all_dtypes_views_and_scalars() {
    let permuted = f32t((0..24).map(|i| i as f32 * 0.5 - 3.0).collect(), &[2, 3, 4])
        .permute(&[2, 0, 1])
        .unwrap();
    assert!(!permuted.is_contiguous());
    let narrowed = Tensor::<Cpu>::from_vec((0..20).map(|i| i as f64).collect(), [4, 5], &DEV)
        .unwrap()
        .narrow(1, 1, 3)
        .unwrap();
    assert!(!narrowed.is_contiguous());

    let mut sd = StateDict::<Cpu>::new();
    sd.insert(
        "w.f32",
        f32t(
            vec![1.5, -2.25, 3.0, f32::MIN_POSITIVE, 1e30, -0.0],
            &[2, 3],
        ),
    );
    sd.insert(
        "w.f64",
        Tensor::from_vec(vec![std::f64::consts::PI, -1e-300, 7.0], 3, &DEV).unwrap(),
    );
    sd.insert(
        "steps",
        Tensor::from_vec(vec![i64::MIN, -1, 0, i64::MAX], 4, &DEV).unwrap(),
    );
    sd.insert("permuted", permuted.clone());
    sd.insert("narrowed", narrowed.clone());
    sd.insert("scalar.f64", Tensor::scalar(2.5, DType::F64, &DEV).unwrap());
    sd.insert(
        "num_batches_tracked",
        Tensor::from_vec(vec![42i64], (), &DEV).unwrap(),
    );
    sd.insert("empty", Tensor::zeros([0, 3], DType::F32, &DEV).unwrap());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rt.safetensors");
    sd.save(&path).unwrap();
    let back = StateDict::<Cpu>::load(&path, &DEV).unwrap();

    assert_eq!(back.len(), sd.len());
    for (k, t) in sd.iter() {
        let b = back.get(k).unwrap_or_else(|| panic!("missing {k}"));
        assert_same(t, b);
        assert!(b.is_contiguous());
    }
    assert_eq!(back.get("permuted").unwrap().dims(), &[4, 2, 3]);
    assert_eq!(back.get("num_batches_tracked").unwrap().rank(), 0);
    assert_eq!(
        back.get("num_batches_tracked")
            .unwrap()
            .to_scalar::<i64>()
            .unwrap(),
        42
    );
    assert_eq!(back.get("scalar.f64").unwrap().rank(), 0);
    assert!(back.metadata().is_empty());
    // Only the target is left in the directory.
    assert_eq!(dir_entries(dir.path()), vec!["rt.safetensors"]);
}

#[test]
fn save_order_is_aligned_and_otherwise_preserved() {
    let mut sd = StateDict::<Cpu>::new();
    sd.insert("z", f32t(vec![1.0], &[1]));
    sd.insert("a", Tensor::from_vec(vec![1i64, 2], 2, &DEV).unwrap());
    sd.insert("m", f32t(vec![1.0, 2.0, 3.0], &[3]));
    sd.insert("b", Tensor::from_vec(vec![1.0f64], 1, &DEV).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.safetensors");
    sd.save(&path).unwrap();
    let back = StateDict::<Cpu>::load(&path, &DEV).unwrap();
    // 8-byte elements first, then 4-byte ones, each group in insertion order.
    assert_eq!(back.keys().collect::<Vec<_>>(), ["a", "b", "z", "m"]);

    // Independently: header length is a multiple of 8 and every tensor is aligned to its size.
    let bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!(n % 8, 0);
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    for (k, v) in header.as_object().unwrap() {
        let begin = v["data_offsets"][0].as_u64().unwrap() as usize;
        let size = if v["dtype"] == "F32" { 4 } else { 8 };
        assert_eq!((8 + n + begin) % size, 0, "{k} misaligned");
    }
}

#[test]
fn metadata_round_trip() {
    let mut sd = StateDict::<Cpu>::new();
    sd.insert("x", f32t(vec![1.0, 2.0], &[2]));
    sd.metadata_mut().insert("format".into(), "pt".into());
    sd.metadata_mut()
        .insert("note".into(), "λ = 0.3, \"quoted\" ✓".into());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    sd.save(&path).unwrap();

    let raw = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(raw[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&raw[8..8 + n]).unwrap();
    assert_eq!(header["__metadata__"]["format"], "pt");

    let back = StateDict::<Cpu>::load(&path, &DEV).unwrap();
    assert_eq!(back.metadata(), sd.metadata());
    assert_eq!(back.len(), 1);
}

#[test]
fn saving_over_an_existing_file_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.safetensors");
    std::fs::write(&path, b"an older, longer file that is not even safetensors").unwrap();
    let mut sd = StateDict::<Cpu>::new();
    sd.insert("x", f32t(vec![4.0], &[1]));
    sd.save(&path).unwrap();
    let back = StateDict::<Cpu>::load(&path, &DEV).unwrap();
    assert_same(back.get("x").unwrap(), sd.get("x").unwrap());
    assert_eq!(dir_entries(dir.path()), vec!["c.safetensors"]);
}

#[test]
fn empty_state_dict_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.safetensors");
    StateDict::<Cpu>::new().save(&path).unwrap();
    assert!(StateDict::<Cpu>::load(&path, &DEV).unwrap().is_empty());
}

#[test]
fn half_precision_widens_to_f32_and_other_dtypes_are_named() {
    // F16: 1.0, -2.0, 0.5; BF16: 1.0, -3.0.
    let header = br#"{"h":{"dtype":"F16","shape":[3],"data_offsets":[0,6]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[6,10]}}"#;
    let data = [0x00, 0x3C, 0x00, 0xC0, 0x00, 0x38, 0x80, 0x3F, 0x40, 0xC0];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("half.safetensors");
    std::fs::write(&path, raw_file(header, &data)).unwrap();
    let sd = StateDict::<Cpu>::load(&path, &DEV).unwrap();
    assert_eq!(
        sd.get("h").unwrap().to_vec::<f32>().unwrap(),
        [1.0, -2.0, 0.5]
    );
    assert_eq!(sd.get("b").unwrap().to_vec::<f32>().unwrap(), [1.0, -3.0]);

    let header = br#"{"ids":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}}"#;
    std::fs::write(&path, raw_file(header, &[0; 8])).unwrap();
    let msg = StateDict::<Cpu>::load(&path, &DEV).unwrap_err().to_string();
    assert!(msg.contains("`ids`") && msg.contains("I32"), "{msg}");
    // Filtered out, the unsupported tensor is not decoded and the load succeeds.
    let sd = StateDict::<Cpu>::load_filtered(&path, &DEV, |k| k != "ids").unwrap();
    assert!(sd.is_empty());
}

// ---- the official fixture ---------------------------------------------------------------------

#[test]
fn reads_the_official_fixture() {
    let path = fixture_path();
    let sd = StateDict::<Cpu>::load(&path, &DEV).unwrap();
    // 117 param.* + 82 grad.* + 5 act.* + input, labels, logits, logits_train.
    assert_eq!(sd.len(), 208);
    assert!(sd.metadata().is_empty());

    let w = sd.get("param.patch_embed.proj.0.weight").unwrap();
    assert_eq!(w.dims(), &[32, 3, 7, 7]);
    assert_eq!(w.dtype(), DType::F32);

    // Decode the same tensor independently from the raw bytes.
    let raw = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(raw[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&raw[8..8 + n]).unwrap();
    let entry = &header["param.patch_embed.proj.0.weight"];
    assert_eq!(entry["dtype"], "F32");
    let begin = 8 + n + entry["data_offsets"][0].as_u64().unwrap() as usize;
    let end = 8 + n + entry["data_offsets"][1].as_u64().unwrap() as usize;
    assert_eq!(end - begin, 32 * 3 * 7 * 7 * 4);
    let expected: Vec<f32> = raw[begin..end]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let got = w.to_vec::<f32>().unwrap();
    assert_eq!(got, expected);
    assert_eq!(
        got[..4],
        [0.042_498_194, -0.036_404_263, -0.015_989_427, 0.038_712_9]
    );

    let nbt = sd
        .get("param.patch_embed.proj.1.num_batches_tracked")
        .unwrap();
    assert_eq!(nbt.dtype(), DType::I64);
    assert_eq!(nbt.rank(), 0);
    assert_eq!(nbt.to_scalar::<i64>().unwrap(), 0);

    let params = sd.strip_prefix("param.");
    assert_eq!(params.len(), 117);
    assert!(params.keys().all(|k| !k.starts_with("param.")));
    assert_eq!(params.get("head.weight").unwrap().dims(), &[10, 64]);
    assert_eq!(
        params
            .get("transformers.1.blocks.0.attn.rand_matrix")
            .unwrap()
            .dims(),
        &[4, 16, 32]
    );

    // Loading only the parameters decodes 117 tensors and agrees with the full load.
    let only = StateDict::<Cpu>::load_filtered(&path, &DEV, |k| k.starts_with("param.")).unwrap();
    assert_eq!(only.len(), 117);
    assert_same(
        only.get("param.head.bias").unwrap(),
        sd.get("param.head.bias").unwrap(),
    );
}

/// A model shaped like the fixture's state dict (every tensor zeroed) loads it strictly, and the
/// unstripped fixture fails with a hint to strip `param.`.
#[test]
fn official_fixture_loads_strictly_into_a_model_with_its_names() {
    struct Named(Vec<(String, Tensor<Cpu>)>);
    impl Parameters<Cpu> for Named {
        fn visit(&self, f: &mut dyn FnMut(&str, &Tensor<Cpu>, ParamKind)) {
            self.0
                .iter()
                .for_each(|(k, t)| f(k, t, ParamKind::Trainable));
        }
        fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<Cpu>)) {
            self.0.iter_mut().for_each(|(k, t)| f(k, t));
        }
    }
    let sd = StateDict::<Cpu>::load(fixture_path(), &DEV).unwrap();
    let params = sd.strip_prefix("param.");
    let mut model = Named(
        params
            .iter()
            .map(|(k, t)| (k.to_string(), t.zeros_like().unwrap()))
            .collect(),
    );

    let err = sd.load_into(&mut model, true).unwrap_err().to_string();
    assert!(err.contains("117 missing"), "{err}");
    assert!(err.contains("strip_prefix(\"param.\")"), "{err}");

    let report = params.load_into(&mut model, true).unwrap();
    assert_eq!(report.loaded.len(), 117);
    assert!(report.is_complete());
    for (k, t) in &model.0 {
        assert_same(t, params.get(k).unwrap());
    }
}

// ---- strict / non-strict loading --------------------------------------------------------------

struct Linear<B: Backend> {
    weight: Tensor<B>,
    bias: Tensor<B>,
}

impl<B: Backend> Linear<B> {
    fn zeros(out: usize, inp: usize, dev: &B::Device) -> Self {
        Linear {
            weight: Tensor::zeros([out, inp], DType::F32, dev).unwrap(),
            bias: Tensor::zeros([out], DType::F32, dev).unwrap(),
        }
    }
}

impl<B: Backend> Parameters<B> for Linear<B> {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor<B>, ParamKind)) {
        f("weight", &self.weight, ParamKind::Trainable);
        f("bias", &self.bias, ParamKind::Trainable);
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<B>)) {
        f("weight", &mut self.weight);
        f("bias", &mut self.bias);
    }
}

/// `blocks.{0,1}.{weight,bias}`, `norm.{weight,bias}`, `num_batches_tracked` (I64 scalar).
struct Toy<B: Backend> {
    blocks: Vec<Linear<B>>,
    norm: Linear<B>,
    num_batches_tracked: Tensor<B>,
}

impl<B: Backend> Toy<B> {
    fn zeros(dev: &B::Device) -> Self {
        Toy {
            blocks: vec![Linear::zeros(2, 3, dev), Linear::zeros(2, 2, dev)],
            norm: Linear::zeros(1, 2, dev),
            num_batches_tracked: Tensor::zeros((), DType::I64, dev).unwrap(),
        }
    }
}

impl<B: Backend> Parameters<B> for Toy<B> {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor<B>, ParamKind)) {
        visit_child("blocks", &self.blocks, f);
        visit_child("norm", &self.norm, f);
        f(
            "num_batches_tracked",
            &self.num_batches_tracked,
            ParamKind::Buffer,
        );
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<B>)) {
        visit_child_mut("blocks", &mut self.blocks, f);
        visit_child_mut("norm", &mut self.norm, f);
        f("num_batches_tracked", &mut self.num_batches_tracked);
    }
}

fn toy_names() -> Vec<String> {
    let toy = Toy::<Cpu>::zeros(&DEV);
    let mut names = Vec::new();
    toy.visit(&mut |n, _, _| names.push(n.to_string()));
    names
}

/// A state dict that lines up with `Toy` except: `blocks.1.bias` and `norm.bias` missing,
/// `extra.weight` and `blocks.2.weight` unexpected, `blocks.0.weight` transposed (shape) and
/// `num_batches_tracked` stored as F32 (dtype).
fn flawed_dict() -> StateDict<Cpu> {
    let mut sd = StateDict::new();
    sd.insert("blocks.0.weight", f32t(vec![1.0; 6], &[3, 2]));
    sd.insert("blocks.0.bias", f32t(vec![0.5, -0.5], &[2]));
    sd.insert("blocks.1.weight", f32t(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]));
    sd.insert("norm.weight", f32t(vec![7.0, 8.0], &[1, 2]));
    sd.insert(
        "num_batches_tracked",
        Tensor::scalar(3.0, DType::F32, &DEV).unwrap(),
    );
    sd.insert("extra.weight", f32t(vec![0.0], &[1]));
    sd.insert("blocks.2.weight", f32t(vec![0.0], &[1]));
    sd
}

#[test]
fn parameter_names_are_joined_with_dots() {
    assert_eq!(
        toy_names(),
        [
            "blocks.0.weight",
            "blocks.0.bias",
            "blocks.1.weight",
            "blocks.1.bias",
            "norm.weight",
            "norm.bias",
            "num_batches_tracked"
        ]
    );
}

#[test]
fn strict_load_lists_every_problem_and_changes_nothing() {
    let mut toy = Toy::<Cpu>::zeros(&DEV);
    let err = flawed_dict().load_into(&mut toy, true).unwrap_err();
    let VitError::StateDictMismatch(report) = &err else {
        panic!("expected a state-dict mismatch, got {err}");
    };
    assert_eq!(report.missing, ["blocks.1.bias", "norm.bias"]);
    assert_eq!(report.unexpected, ["blocks.2.weight", "extra.weight"]);
    let mismatched: Vec<&str> = report.mismatched.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(mismatched, ["blocks.0.weight", "num_batches_tracked"]);
    assert_eq!(report.mismatched[0].expected_shape.dims(), &[2, 3]);
    assert_eq!(report.mismatched[0].found_shape.dims(), &[3, 2]);
    assert_eq!(report.mismatched[1].expected_dtype, DType::I64);
    assert_eq!(report.mismatched[1].found_dtype, DType::F32);

    let msg = err.to_string();
    for key in [
        "blocks.1.bias",
        "norm.bias",
        "blocks.2.weight",
        "extra.weight",
        "blocks.0.weight",
        "num_batches_tracked",
        "[2, 3]",
        "[3, 2]",
        "i64",
    ] {
        assert!(msg.contains(key), "message lacks {key}: {msg}");
    }
    assert!(
        msg.contains("2 missing, 2 unexpected, 2 mismatched"),
        "{msg}"
    );
    // Sorted within each list.
    assert!(msg.find("blocks.1.bias").unwrap() < msg.find("norm.bias").unwrap());
    assert!(msg.find("blocks.2.weight").unwrap() < msg.find("extra.weight").unwrap());

    // All-or-nothing: nothing was assigned, not even the matching keys.
    assert_eq!(toy.blocks[0].bias.to_vec::<f32>().unwrap(), [0.0, 0.0]);
    assert_eq!(toy.norm.weight.to_vec::<f32>().unwrap(), [0.0, 0.0]);
}

#[test]
fn non_strict_load_assigns_what_matches_and_reports_the_rest() {
    let mut toy = Toy::<Cpu>::zeros(&DEV);
    let report = flawed_dict().load_into(&mut toy, false).unwrap();
    assert_eq!(
        report.loaded,
        ["blocks.0.bias", "blocks.1.weight", "norm.weight"]
    );
    assert_eq!(report.missing, ["blocks.1.bias", "norm.bias"]);
    assert_eq!(report.unexpected, ["blocks.2.weight", "extra.weight"]);
    assert_eq!(report.mismatched.len(), 2);
    assert!(!report.is_complete());

    assert_eq!(toy.blocks[0].bias.to_vec::<f32>().unwrap(), [0.5, -0.5]);
    assert_eq!(
        toy.blocks[1].weight.to_vec::<f32>().unwrap(),
        [1.0, 2.0, 3.0, 4.0]
    );
    assert_eq!(toy.norm.weight.to_vec::<f32>().unwrap(), [7.0, 8.0]);
    // Mismatched and missing entries keep their old values.
    assert_eq!(toy.blocks[0].weight.dims(), &[2, 3]);
    assert_eq!(toy.blocks[0].weight.to_vec::<f32>().unwrap(), [0.0; 6]);
    assert_eq!(toy.num_batches_tracked.dtype(), DType::I64);
}

#[test]
fn model_round_trip_through_a_file() {
    let mut src = Toy::<Cpu>::zeros(&DEV);
    let mut k = 0.0f32;
    src.visit_mut(&mut |_, t| {
        if t.dtype() == DType::F32 {
            let n = t.elem_count();
            *t = f32t((0..n).map(|i| k + i as f32).collect(), t.dims());
            k += 10.0;
        } else {
            *t = Tensor::from_vec(vec![17i64], (), &DEV).unwrap();
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("toy.safetensors");
    let sd = StateDict::from_model(&src).unwrap();
    assert_eq!(sd.keys().collect::<Vec<_>>(), toy_names());
    sd.save(&path).unwrap();

    let mut dst = Toy::<Cpu>::zeros(&DEV);
    let report = StateDict::<Cpu>::load(&path, &DEV)
        .unwrap()
        .load_into(&mut dst, true)
        .unwrap();
    assert_eq!(report.loaded, toy_names());
    let (mut a, mut b) = (Vec::new(), Vec::new());
    src.visit(&mut |n, t, _| a.push((n.to_string(), t.to_host().unwrap())));
    dst.visit(&mut |n, t, _| b.push((n.to_string(), t.to_host().unwrap())));
    assert_eq!(a, b);
    assert_eq!(dst.num_batches_tracked.to_scalar::<i64>().unwrap(), 17);
}

#[test]
fn duplicate_names_are_reported() {
    struct Dup(Tensor<Cpu>);
    impl Parameters<Cpu> for Dup {
        fn visit(&self, f: &mut dyn FnMut(&str, &Tensor<Cpu>, ParamKind)) {
            f("w", &self.0, ParamKind::Trainable);
            f("w", &self.0, ParamKind::Trainable);
        }
        fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<Cpu>)) {
            f("w", &mut self.0);
        }
    }
    let mut d = Dup(f32t(vec![1.0], &[1]));
    let err = StateDict::from_model(&d).unwrap_err();
    assert!(
        matches!(err, VitError::DuplicateName(ref n) if n == "w"),
        "{err}"
    );
    let err = StateDict::<Cpu>::new()
        .load_into(&mut d, false)
        .unwrap_err();
    assert!(err.to_string().contains("`w`"), "{err}");
}

/// On an autodiff backend, tensors that were leaf variables stay trainable after a load, frozen
/// (untracked) ones stay frozen, and the loaded values take part in backward.
#[test]
fn load_keeps_leaf_variables_trainable() {
    type A = Autodiff<Cpu>;
    let mut toy = Toy::<A>::zeros(&DEV);
    toy.blocks[0].weight = toy.blocks[0].weight.requires_grad().unwrap();
    let mut sd = StateDict::<A>::new();
    sd.insert(
        "blocks.0.weight",
        Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3], &DEV).unwrap(),
    );
    sd.insert(
        "norm.bias",
        Tensor::from_vec(vec![9.0f32], 1, &DEV).unwrap(),
    );
    let report = sd.load_into(&mut toy, false).unwrap();
    assert_eq!(report.loaded, ["blocks.0.weight", "norm.bias"]);

    let w = &toy.blocks[0].weight;
    assert!(w.is_tracked());
    assert!(!toy.norm.bias.is_tracked());
    assert_eq!(w.to_vec::<f32>().unwrap(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let grads = w.sum_all().unwrap().backward().unwrap();
    assert_eq!(grads.get(w).unwrap().to_vec::<f32>().unwrap(), [1.0; 6]);
}

#[test]
fn float_dtype_conversion_keeps_integer_buffers() {
    let sd = flawed_dict();
    let mut with_int = sd.clone();
    with_int.insert("steps", Tensor::from_vec(vec![5i64], (), &DEV).unwrap());
    let f64s = with_int.to_float_dtype(DType::F64).unwrap();
    assert_eq!(f64s.get("blocks.0.bias").unwrap().dtype(), DType::F64);
    assert_eq!(f64s.get("steps").unwrap().dtype(), DType::I64);
    assert!(with_int.to_float_dtype(DType::I64).is_err());
}

#[test]
fn prefix_helpers_round_trip() {
    let sd = flawed_dict();
    let prefixed = sd.with_prefix("param.");
    assert!(prefixed.keys().all(|k| k.starts_with("param.")));
    let back = prefixed.strip_prefix("param.");
    assert_eq!(
        back.keys().collect::<Vec<_>>(),
        sd.keys().collect::<Vec<_>>()
    );
    let mut mixed = prefixed.clone();
    mixed.insert("grad.x", f32t(vec![1.0], &[1]));
    assert_eq!(mixed.strip_prefix("param.").len(), sd.len());
    let mut removed = sd.clone();
    assert!(removed.remove("blocks.0.bias").is_some());
    assert!(removed.get("blocks.0.bias").is_none());
    assert_eq!(removed.get("norm.weight").unwrap().dims(), &[1, 2]);
    assert_eq!(removed.len(), sd.len() - 1);
}

// ---- corrupt files ----------------------------------------------------------------------------

#[test]
fn empty_file_is_rejected() {
    let msg = load_error(b"");
    assert!(msg.contains("the file is empty"), "{msg}");
    let msg = load_error(b"\x05\x00\x00");
    assert!(
        msg.contains("shorter than the 8-byte header-length prefix"),
        "{msg}"
    );
}

#[test]
fn header_length_larger_than_file_is_rejected() {
    let mut bytes = 1000u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    let msg = load_error(&bytes);
    assert!(
        msg.contains("says 1000 bytes, but only 2 bytes follow"),
        "{msg}"
    );
    assert!(msg.contains("header length larger than the file"), "{msg}");

    let msg = load_error(&u64::MAX.to_le_bytes());
    assert!(msg.contains("above the 100 MB limit"), "{msg}");
}

#[test]
fn header_that_is_not_json_is_rejected() {
    let msg = load_error(&raw_file(b"not json", b""));
    assert!(msg.contains("not valid safetensors JSON"), "{msg}");
    let msg = load_error(&raw_file(b"\xff\xfe\xfd\xfc", b""));
    assert!(msg.contains("not UTF-8"), "{msg}");
    let msg = load_error(&raw_file(
        br#"{"x":{"dtype":"Q7","shape":[1],"data_offsets":[0,1]}}"#,
        &[0],
    ));
    assert!(
        msg.contains("not valid safetensors JSON") && msg.contains("Q7"),
        "{msg}"
    );
}

#[test]
fn offsets_out_of_range_are_rejected() {
    // Declares 400 bytes of data; the file holds 8.
    let msg = load_error(&raw_file(
        br#"{"big":{"dtype":"F32","shape":[100],"data_offsets":[0,400]}}"#,
        &[0; 8],
    ));
    assert!(msg.contains("`big`") && msg.contains("[0, 400)"), "{msg}");
    assert!(
        msg.contains("run past the end") && msg.contains("only 8 bytes"),
        "{msg}"
    );

    // Starts at byte 8 of the data section with nothing before it.
    let msg = load_error(&raw_file(
        br#"{"gap":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#,
        &[0; 16],
    ));
    assert!(
        msg.contains("`gap`") && msg.contains("leaving a gap"),
        "{msg}"
    );
}

#[test]
fn byte_length_inconsistent_with_dtype_and_shape_is_rejected() {
    let msg = load_error(&raw_file(
        br#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
        &[0; 8],
    ));
    assert!(
        msg.contains("`w`") && msg.contains("needs 12 bytes"),
        "{msg}"
    );
    assert!(msg.contains("span 8"), "{msg}");
}

#[test]
fn truncated_and_padded_files_are_rejected() {
    let mut sd = StateDict::<Cpu>::new();
    sd.insert("a", f32t(vec![1.0; 16], &[4, 4]));
    sd.insert("b", f32t(vec![2.0; 8], &[8]));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.safetensors");
    sd.save(&path).unwrap();
    let good = std::fs::read(&path).unwrap();

    let msg = load_error(&good[..good.len() - 10]);
    assert!(msg.contains("`b`") && msg.contains("truncated"), "{msg}");
    assert!(msg.contains(&format!("found {}", good.len() - 10)), "{msg}");

    let mut padded = good.clone();
    padded.extend_from_slice(&[0; 4]);
    let msg = load_error(&padded);
    assert!(msg.contains("4 trailing bytes"), "{msg}");

    // Cut inside the header: the prefix now promises more than the file holds.
    let msg = load_error(&good[..20]);
    assert!(msg.contains("header length larger than the file"), "{msg}");
}

#[test]
fn missing_file_and_directory_are_io_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.safetensors");
    let err = StateDict::<Cpu>::load(&missing, &DEV).unwrap_err();
    assert!(matches!(err, VitError::Io { .. }), "{err}");
    assert!(err.to_string().contains("nope.safetensors"), "{err}");

    let err = StateDict::<Cpu>::load(dir.path(), &DEV).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
}

// ---- failing saves ----------------------------------------------------------------------------

fn small_dict() -> StateDict<Cpu> {
    let mut sd = StateDict::new();
    sd.insert("x", f32t(vec![1.0, 2.0, 3.0], &[3]));
    sd
}

#[test]
fn save_into_a_missing_directory_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no_such_dir").join("x.safetensors");
    let err = small_dict().save(&path).unwrap_err();
    assert!(matches!(err, VitError::Io { .. }), "{err}");
    assert!(err.to_string().contains("x.safetensors"), "{err}");
    assert!(dir_entries(dir.path()).is_empty());
}

/// The rename over the target fails after the temporary file was completely written and synced
/// (the target is a non-empty directory): the target is untouched and no temporary file is left.
#[test]
fn save_failing_at_the_rename_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("ckpt.safetensors");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep"), b"inside").unwrap();
    let err = small_dict().save(&target).unwrap_err();
    assert!(err.to_string().contains("ckpt.safetensors"), "{err}");
    assert_eq!(dir_entries(dir.path()), vec!["ckpt.safetensors"]);
    assert_eq!(std::fs::read(target.join("keep")).unwrap(), b"inside");
}

/// Saving over an existing checkpoint in a read-only directory fails and leaves it intact. Root
/// (or CAP_DAC_OVERRIDE) ignores directory permissions, so there the check is skipped; the
/// mid-write failure case is covered by a unit test of the atomic writer (`io::atomic`).
#[cfg(unix)]
#[test]
fn save_in_a_read_only_directory_keeps_the_old_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("ro");
    std::fs::create_dir(&sub).unwrap();
    let target = sub.join("ckpt.safetensors");
    let mut old = StateDict::<Cpu>::new();
    old.insert("old", f32t(vec![9.0], &[1]));
    old.save(&target).unwrap();
    let old_bytes = std::fs::read(&target).unwrap();

    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o555)).unwrap();
    let probe = sub.join("probe");
    let privileged = std::fs::write(&probe, b"").is_ok();
    let result = if privileged {
        let _ = std::fs::remove_file(&probe);
        None
    } else {
        Some(small_dict().save(&target))
    };
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o755)).unwrap();

    match result {
        None => eprintln!("skipped: running with privileges that ignore directory permissions"),
        Some(r) => {
            let err = r.unwrap_err();
            assert!(matches!(err, VitError::Io { .. }), "{err}");
            assert_eq!(std::fs::read(&target).unwrap(), old_bytes);
            assert_eq!(dir_entries(&sub), vec!["ckpt.safetensors"]);
        }
    }
}

#[test]
fn reserved_metadata_key_cannot_name_a_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.safetensors");
    let mut sd = small_dict();
    sd.insert("__metadata__", f32t(vec![1.0], &[1]));
    let err = sd.save(&path).unwrap_err();
    assert!(err.to_string().contains("reserved"), "{err}");
    assert!(dir_entries(dir.path()).is_empty());
}

#[test]
fn host_data_of_loaded_tensors_is_owned() {
    // The map is gone after load: the tensors survive the file being replaced.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.safetensors");
    small_dict().save(&path).unwrap();
    let sd = StateDict::<Cpu>::load(&path, &DEV).unwrap();
    std::fs::write(&path, b"garbage").unwrap();
    assert_eq!(
        sd.get("x").unwrap().to_host().unwrap(),
        HostData::F32(vec![1.0, 2.0, 3.0])
    );
}

/// Saving is byte-deterministic: the header no longer follows a hash map's order, so the same
/// tensors with the same metadata (inserted in any order) give identical files.
#[test]
fn saves_are_byte_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, meta_order) in [["x", "y", "z"], ["z", "x", "y"]].iter().enumerate() {
        let mut sd = StateDict::<Cpu>::new();
        for (j, k) in ["a", "b", "c"].iter().enumerate() {
            sd.insert(
                *k,
                Tensor::<Cpu>::full([2], j as f64, vars_core::DType::F32, &DEV).unwrap(),
            );
        }
        for k in meta_order {
            sd.metadata_mut().insert(format!("m{k}"), format!("v{k}"));
        }
        let path = dir.path().join(format!("{i}.safetensors"));
        sd.save(&path).unwrap();
        files.push(std::fs::read(&path).unwrap());
    }
    assert_eq!(files[0], files[1]);
}
