//! The restricted `.pth` reader (`vars_vit::io::pth`): the official fixture checkpoint against
//! its safetensors twin, a matrix of hand-built checkpoints (a tiny pickle writer and zip writer
//! below build them) for every structure the reader supports, and damaged or hostile files that
//! must be rejected with a clear error and never panic.

use std::path::PathBuf;
use vars_core::{DType, HostData, Tensor};
use vars_cpu::{Cpu, CpuDevice};
use vars_vit::io::pth::{
    self, convert_pth, load_pth, load_pth_bytes, FeatureNorm, PthCheckpoint, PthOptions,
    UnknownGlobals,
};
use vars_vit::io::StateDict;
use vars_vit::VitError;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/official")
        .join(name)
}

fn load(bytes: &[u8]) -> vars_vit::Result<PthCheckpoint<Cpu>> {
    load_pth_bytes::<Cpu>(bytes, &CpuDevice, &PthOptions::default())
}

fn load_opts(bytes: &[u8], opts: &PthOptions) -> vars_vit::Result<PthCheckpoint<Cpu>> {
    load_pth_bytes::<Cpu>(bytes, &CpuDevice, opts)
}

fn host(t: &Tensor<Cpu>) -> HostData {
    t.to_host().unwrap()
}

fn f32s(t: &Tensor<Cpu>) -> Vec<f32> {
    match host(t) {
        HostData::F32(v) => v,
        other => panic!("expected F32, got {:?}", other.dtype()),
    }
}

fn i64s(t: &Tensor<Cpu>) -> Vec<i64> {
    match host(t) {
        HostData::I64(v) => v,
        other => panic!("expected I64, got {:?}", other.dtype()),
    }
}

// ------------------------------------------------------------------------------------------
// A tiny pickle writer (protocol 2 opcodes, as torch.save emits them) and a stored-zip writer.
// ------------------------------------------------------------------------------------------

#[derive(Default)]
struct Pickle {
    b: Vec<u8>,
    memo: u32,
}

impl Pickle {
    fn new() -> Self {
        let mut p = Pickle::default();
        p.b.extend_from_slice(&[0x80, 2]);
        p
    }
    fn op(&mut self, o: u8) -> &mut Self {
        self.b.push(o);
        self
    }
    fn mark(&mut self) -> &mut Self {
        self.op(b'(')
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.b.push(b'X');
        self.b.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.b.extend_from_slice(s.as_bytes());
        self
    }
    fn int(&mut self, i: i64) -> &mut Self {
        if (0..256).contains(&i) {
            self.b.extend_from_slice(&[b'K', i as u8]);
        } else if (0..65536).contains(&i) {
            self.b.push(b'M');
            self.b.extend_from_slice(&(i as u16).to_le_bytes());
        } else if i32::try_from(i).is_ok() {
            self.b.push(b'J');
            self.b.extend_from_slice(&(i as i32).to_le_bytes());
        } else {
            self.b.extend_from_slice(&[0x8a, 8]);
            self.b.extend_from_slice(&i.to_le_bytes());
        }
        self
    }
    fn float(&mut self, f: f64) -> &mut Self {
        self.b.push(b'G');
        self.b.extend_from_slice(&f.to_be_bytes());
        self
    }
    fn boolean(&mut self, v: bool) -> &mut Self {
        self.op(if v { 0x88 } else { 0x89 })
    }
    fn none(&mut self) -> &mut Self {
        self.op(b'N')
    }
    fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.b.push(b'c');
        self.b
            .extend_from_slice(format!("{module}\n{name}\n").as_bytes());
        self
    }
    /// BINPUT of the top of the stack; returns its memo index.
    fn put(&mut self) -> u8 {
        let i = self.memo as u8;
        self.memo += 1;
        self.b.extend_from_slice(&[b'q', i]);
        i
    }
    fn get(&mut self, i: u8) -> &mut Self {
        self.b.extend_from_slice(&[b'h', i]);
        self
    }
    fn tuple(&mut self) -> &mut Self {
        self.op(b't')
    }
    fn stop(&mut self) -> Vec<u8> {
        self.b.push(b'.');
        std::mem::take(&mut self.b)
    }
    fn ordered_dict_new(&mut self) -> &mut Self {
        self.global("collections", "OrderedDict").op(b')').op(b'R')
    }
    /// A persistent storage id, then BINPERSID.
    fn storage(&mut self, class: &str, key: &str, location: &str, numel: i64) -> &mut Self {
        self.mark()
            .str("storage")
            .global("torch", class)
            .str(key)
            .str(location)
            .int(numel)
            .tuple()
            .op(b'Q')
    }
    /// `_rebuild_tensor_v2(<storage on the stack>, offset, size, stride, False, OrderedDict())`:
    /// call as `p.tensor_begin(); <push storage>; p.tensor_end(...)`.
    fn tensor_begin(&mut self) -> &mut Self {
        self.global("torch._utils", "_rebuild_tensor_v2").mark()
    }
    fn tensor_end(&mut self, offset: i64, size: &[i64], stride: &[i64]) -> &mut Self {
        self.int(offset).mark();
        for &s in size {
            self.int(s);
        }
        self.tuple().mark();
        for &s in stride {
            self.int(s);
        }
        self.tuple()
            .boolean(false)
            .ordered_dict_new()
            .tuple()
            .op(b'R')
    }
    #[allow(clippy::too_many_arguments)]
    fn tensor(
        &mut self,
        class: &str,
        key: &str,
        location: &str,
        numel: i64,
        offset: i64,
        size: &[i64],
        stride: &[i64],
    ) -> &mut Self {
        self.tensor_begin()
            .storage(class, key, location, numel)
            .tensor_end(offset, size, stride)
    }
    /// A contiguous F32 tensor over a whole storage.
    fn f32_tensor(&mut self, key: &str, size: &[i64]) -> &mut Self {
        let numel: i64 = size.iter().product();
        let stride = contiguous(size);
        self.tensor("FloatStorage", key, "cpu", numel, 0, size, &stride)
    }
}

fn contiguous(size: &[i64]) -> Vec<i64> {
    let mut stride = vec![1i64; size.len()];
    for d in (0..size.len().saturating_sub(1)).rev() {
        stride[d] = stride[d + 1] * size[d + 1];
    }
    stride
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A zip of entries `(name, bytes, method)`, stored, data 64-byte aligned through a padding
/// extra field in the local header as torch.save does.
fn zip(entries: &[(String, Vec<u8>, u16)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data, method) in entries {
        let off = out.len() as u32;
        let crc = crc32(data);
        let base = out.len() + 30 + name.len() + 4;
        let pad = (64 - base % 64) % 64;
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&[20, 0, 0, 0]);
        out.extend_from_slice(&method.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&((4 + pad) as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&0x4246u16.to_le_bytes());
        out.extend_from_slice(&(pad as u16).to_le_bytes());
        out.extend(std::iter::repeat_n(0u8, pad));
        out.extend_from_slice(data);

        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&[20, 0, 20, 0, 0, 0]);
        central.extend_from_slice(&method.to_le_bytes());
        central.extend_from_slice(&[0; 4]);
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&(data.len() as u32).to_le_bytes());
        central.extend_from_slice(&(data.len() as u32).to_le_bytes());
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 8]);
        central.extend_from_slice(&[0; 4]);
        central.extend_from_slice(&off.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_off = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    let n = entries.len() as u16;
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_off.to_le_bytes());
    out.extend_from_slice(&[0; 2]);
    out
}

/// A torch.save-style archive: `archive/data.pkl`, `archive/data/<key>`, byteorder, version.
fn checkpoint(pickle: &[u8], storages: &[(&str, Vec<u8>)], byteorder: &str) -> Vec<u8> {
    let mut e = vec![
        ("archive/data.pkl".to_string(), pickle.to_vec(), 0),
        (
            "archive/byteorder".to_string(),
            byteorder.as_bytes().to_vec(),
            0,
        ),
    ];
    for (k, b) in storages {
        e.push((format!("archive/data/{k}"), b.clone(), 0));
    }
    e.push(("archive/version".to_string(), b"3\n".to_vec(), 0));
    zip(&e)
}

fn le_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// `{name: tensor}` for one contiguous F32 storage per entry.
fn plain_state_dict(p: &mut Pickle, entries: &[(&str, &str, &[i64])]) {
    p.op(b'}');
    p.put();
    p.mark();
    for (name, key, size) in entries {
        p.str(name);
        p.f32_tensor(key, size);
    }
    p.op(b'u');
}

// ------------------------------------------------------------------------------------------
// The official fixture
// ------------------------------------------------------------------------------------------

#[test]
fn official_pth_equals_its_safetensors_twin() {
    let ckpt = load_pth::<Cpu>(fixture("model_vars_d.pth"), &CpuDevice).unwrap();
    assert_eq!(ckpt.state_dicts.len(), 1);
    assert_eq!(ckpt.state_dicts[0].0, "", "a plain top-level state dict");
    let sd = ckpt.state_dict().unwrap();
    let twin =
        StateDict::<Cpu>::load_filtered(fixture("model_vars_d.safetensors"), &CpuDevice, |k| {
            k.starts_with("param.")
        })
        .unwrap()
        .strip_prefix("param.");
    assert_eq!(sd.len(), 117);
    assert_eq!(twin.len(), 117);
    // Same keys, in the official state-dict order (the .pth keeps insertion order).
    let keys: Vec<&str> = sd.keys().collect();
    assert_eq!(keys[0], "patch_embed.proj.0.weight");
    assert_eq!(keys[116], "head.bias");
    let mut n_i64 = 0;
    for (k, t) in sd.iter() {
        let r = twin
            .get(k)
            .unwrap_or_else(|| panic!("`{k}` missing from the twin"));
        assert_eq!(t.dims(), r.dims(), "{k}: shape");
        assert_eq!(t.dtype(), r.dtype(), "{k}: dtype");
        if t.dtype() == DType::I64 {
            n_i64 += 1;
            assert_eq!(t.dims(), &[] as &[usize], "{k}");
        }
        // Bit-exact.
        match (host(t), host(r)) {
            (HostData::F32(a), HostData::F32(b)) => {
                let a: Vec<u32> = a.iter().map(|x| x.to_bits()).collect();
                let b: Vec<u32> = b.iter().map(|x| x.to_bits()).collect();
                assert_eq!(a, b, "{k}");
            }
            (a, b) => assert_eq!(a, b, "{k}"),
        }
    }
    assert_eq!(
        n_i64, 10,
        "num_batches_tracked scalars: the stem BN and 3 BNs in each of 3 blocks"
    );
    // VARS-D weights without a stated feature-normalisation mode: a warning, no metadata.
    assert!(
        ckpt.warnings
            .iter()
            .any(|w| w.contains("feature-normalisation")),
        "{:?}",
        ckpt.warnings
    );
    assert!(sd.metadata().is_empty());
    assert_eq!(ckpt.epoch, None);
}

#[test]
fn stating_the_feature_norm_mode_records_it_and_silences_the_warning() {
    let opts = PthOptions {
        feature_norm: Some(FeatureNorm::Off),
        ..PthOptions::default()
    };
    let ckpt = pth::load_pth_with::<Cpu>(fixture("model_vars_d.pth"), &CpuDevice, &opts).unwrap();
    assert!(ckpt.warnings.is_empty(), "{:?}", ckpt.warnings);
    let sd = ckpt.state_dict().unwrap();
    assert_eq!(
        FeatureNorm::from_metadata(sd.metadata()).unwrap(),
        Some(FeatureNorm::Off)
    );
    assert_eq!(ckpt.feature_norm, Some(FeatureNorm::Off));
}

#[test]
fn conversion_writes_safetensors_that_load_back_equal_with_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model_vars_d.safetensors");
    let report = convert_pth::<Cpu>(
        fixture("model_vars_d.pth"),
        &out,
        &CpuDevice,
        Some(FeatureNorm::On),
    )
    .unwrap();
    assert_eq!(report.tensors, 117);
    assert_eq!(report.source, "");
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);

    let back = StateDict::<Cpu>::load(&out, &CpuDevice).unwrap();
    let orig = load_pth::<Cpu>(fixture("model_vars_d.pth"), &CpuDevice)
        .unwrap()
        .into_state_dict()
        .unwrap();
    assert_eq!(back.len(), orig.len());
    for (k, t) in orig.iter() {
        let b = back.get(k).unwrap();
        assert_eq!(b.dims(), t.dims(), "{k}");
        assert_eq!(host(b), host(t), "{k}");
    }
    let meta = back.metadata();
    assert_eq!(
        meta.get("vars.feature_norm").map(String::as_str),
        Some("on")
    );
    assert_eq!(
        meta.get("vars.source_format").map(String::as_str),
        Some("pytorch-zip")
    );
    assert_eq!(
        FeatureNorm::from_metadata(meta).unwrap(),
        Some(FeatureNorm::On)
    );
    assert_eq!(report.metadata, *meta);

    // Without a mode: a warning in the report, and no mode recorded.
    let out2 = dir.path().join("no_mode.safetensors");
    let report = convert_pth::<Cpu>(fixture("model_vars_d.pth"), &out2, &CpuDevice, None).unwrap();
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("feature-normalisation") && w.contains("vars.feature_norm")),
        "{:?}",
        report.warnings
    );
    let back = StateDict::<Cpu>::load(&out2, &CpuDevice).unwrap();
    assert_eq!(FeatureNorm::from_metadata(back.metadata()).unwrap(), None);
}

#[test]
fn feature_norm_parsing() {
    assert_eq!("on".parse::<FeatureNorm>().unwrap(), FeatureNorm::On);
    assert_eq!("OFF".parse::<FeatureNorm>().unwrap(), FeatureNorm::Off);
    assert!("maybe".parse::<FeatureNorm>().is_err());
    let mut meta = std::collections::BTreeMap::new();
    meta.insert("vars.feature_norm".to_string(), "sideways".to_string());
    assert!(FeatureNorm::from_metadata(&meta).is_err());
    assert!(pth::has_vars_dynamic_attention([
        "b.attn.rand_matrix",
        "b.attn.learned_k"
    ]));
    assert!(!pth::has_vars_dynamic_attention([
        "b.attn.rand_matrix",
        "c.attn.learned_k"
    ]));
}

// ------------------------------------------------------------------------------------------
// Hand-built checkpoints
// ------------------------------------------------------------------------------------------

#[test]
fn plain_state_dict_round_trip() {
    let mut p = Pickle::new();
    plain_state_dict(&mut p, &[("w", "0", &[2, 3]), ("b", "1", &[3])]);
    let pkl = p.stop();
    let w: Vec<f32> = (0..6).map(|i| i as f32 * 0.5).collect();
    let b = vec![-1.0f32, 0.0, 1.0];
    let bytes = checkpoint(&pkl, &[("0", le_f32(&w)), ("1", le_f32(&b))], "little");
    let ckpt = load(&bytes).unwrap();
    let sd = ckpt.state_dict().unwrap();
    assert_eq!(sd.keys().collect::<Vec<_>>(), ["w", "b"]);
    assert_eq!(sd.get("w").unwrap().dims(), &[2, 3]);
    assert_eq!(f32s(sd.get("w").unwrap()), w);
    assert_eq!(f32s(sd.get("b").unwrap()), b);
    assert!(ckpt.warnings.is_empty(), "{:?}", ckpt.warnings);
}

/// `{"model": …, "optimizer": …, "lr_scheduler": …, "epoch": …, "model_ema": …, "scaler": …,
/// "args": argparse.Namespace(…)}`, as the official (DeiT-style) training script saves.
#[test]
fn training_script_checkpoint_with_args_namespace() {
    let mut p = Pickle::new();
    p.op(b'}');
    p.put();
    p.mark();
    // model
    p.str("model");
    plain_state_dict(
        &mut p,
        &[("head.weight", "0", &[2, 2]), ("head.bias", "1", &[2])],
    );
    // optimizer: {"state": {0: {"step": 3, "exp_avg": tensor}}, "param_groups": [{...}]}
    p.str("optimizer").op(b'}').mark();
    p.str("state").op(b'}').mark();
    p.int(0).op(b'}').mark();
    p.str("step").int(3).str("exp_avg").f32_tensor("2", &[2, 2]);
    p.op(b'u');
    p.op(b'u');
    p.str("param_groups").op(b']').mark();
    p.op(b'}').mark();
    p.str("lr")
        .float(5e-4)
        .str("betas")
        .float(0.9)
        .float(0.999)
        .op(0x86);
    p.str("params").op(b']').mark().int(0).int(1).op(b'e');
    p.op(b'u');
    p.op(b'e');
    p.op(b'u');
    // lr_scheduler, epoch, model_ema, scaler
    p.str("lr_scheduler")
        .op(b'}')
        .mark()
        .str("t_initial")
        .int(300)
        .op(b'u');
    p.str("epoch").int(299);
    p.str("model_ema");
    plain_state_dict(
        &mut p,
        &[("head.weight", "3", &[2, 2]), ("head.bias", "4", &[2])],
    );
    p.str("scaler")
        .op(b'}')
        .mark()
        .str("scale")
        .float(65536.0)
        .op(b'u');
    // args: argparse.Namespace via NEWOBJ + BUILD, as pickle protocol 2 writes it.
    p.str("args")
        .global("argparse", "Namespace")
        .op(b')')
        .op(0x81);
    p.put();
    p.op(b'}').mark();
    p.str("model").str("rvt_tiny_vars_d");
    p.str("lr").float(0.0005);
    p.str("batch_size").int(128);
    p.str("use_mask").boolean(false);
    p.str("drop_path").none();
    p.str("input_size").int(224);
    p.str("repeated_aug").boolean(true);
    p.str("betas").none();
    p.str("device")
        .global("torch", "device")
        .str("cuda")
        .int(0)
        .op(0x86)
        .op(b'R');
    p.op(b'u').op(b'b');
    p.op(b'u');
    let pkl = p.stop();

    let st: Vec<(String, Vec<u8>)> = (0..5)
        .map(|k| {
            let n = if k % 3 == 1 { 2 } else { 4 };
            let v: Vec<f32> = (0..n).map(|i| (10 * k + i) as f32).collect();
            (k.to_string(), le_f32(&v))
        })
        .collect();
    let st: Vec<(&str, Vec<u8>)> = st.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let bytes = checkpoint(&pkl, &st, "little");
    let ckpt = load(&bytes).unwrap();

    let sources: Vec<&str> = ckpt.state_dicts.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(sources, ["model", "model_ema"]);
    let model = ckpt.state_dict().unwrap();
    assert_eq!(
        f32s(model.get("head.weight").unwrap()),
        [0.0, 1.0, 2.0, 3.0]
    );
    assert_eq!(f32s(model.get("head.bias").unwrap()), [10.0, 11.0]);
    let ema = ckpt.get("model_ema").unwrap();
    assert_eq!(
        f32s(ema.get("head.weight").unwrap()),
        [30.0, 31.0, 32.0, 33.0]
    );

    assert_eq!(ckpt.epoch, Some(299));
    let a = &ckpt.args;
    assert_eq!(a["model"], "rvt_tiny_vars_d");
    assert_eq!(a["lr"], "0.0005");
    assert_eq!(a["batch_size"], "128");
    assert_eq!(a["use_mask"], "False");
    assert_eq!(a["drop_path"], "None");
    assert_eq!(a["device"], "device('cuda:0')");
    assert_eq!(a.len(), 9);
    // The optimizer is summarised, never materialised.
    assert!(
        ckpt.info["optimizer"].contains("'state'"),
        "{:?}",
        ckpt.info
    );
    assert!(ckpt.info["optimizer"].contains("tensor(dtype=float32, size=[2, 2]"));
    assert_eq!(ckpt.info["epoch"], "299");
    assert_eq!(ckpt.info["scaler"], "{'scale': 65536.0}");
    assert!(!ckpt.info.contains_key("model"));

    // `only` picks one state dict and reads nothing else.
    let opts = PthOptions {
        only: Some("model_ema".into()),
        ..PthOptions::default()
    };
    let ckpt = load_opts(&bytes, &opts).unwrap();
    assert_eq!(ckpt.state_dicts.len(), 1);
    assert_eq!(ckpt.state_dicts[0].0, "model_ema");
    assert!(ckpt.info["model"].contains("not loaded"));
    let opts = PthOptions {
        only: Some("nope".into()),
        ..PthOptions::default()
    };
    let err = load_opts(&bytes, &opts).unwrap_err();
    assert!(
        err.to_string().contains("no state dict under `nope`"),
        "{err}"
    );
}

/// `model.state_dict()` is an `OrderedDict` with a `_metadata` attribute, which pickle sets
/// with BUILD after the items.
#[test]
fn ordered_dict_with_metadata() {
    let mut p = Pickle::new();
    p.ordered_dict_new();
    p.put();
    p.mark();
    p.str("layer.weight").f32_tensor("0", &[2]);
    p.str("layer.bias").f32_tensor("1", &[1]);
    p.op(b'u');
    // state: {"_metadata": OrderedDict([("", {"version": 1}), ("layer", {"version": 1})])}
    p.op(b'}').mark().str("_metadata").ordered_dict_new().mark();
    p.str("").op(b'}').mark().str("version").int(1).op(b'u');
    p.str("layer")
        .op(b'}')
        .mark()
        .str("version")
        .int(1)
        .op(b'u');
    p.op(b'u').op(b'u');
    p.op(b'b');
    let pkl = p.stop();
    let bytes = checkpoint(
        &pkl,
        &[("0", le_f32(&[1.0, 2.0])), ("1", le_f32(&[3.0]))],
        "little",
    );
    let ckpt = load(&bytes).unwrap();
    let sd = ckpt.state_dict().unwrap();
    assert_eq!(
        sd.keys().collect::<Vec<_>>(),
        ["layer.weight", "layer.bias"]
    );
    assert_eq!(f32s(sd.get("layer.bias").unwrap()), [3.0]);
    assert!(ckpt.warnings.is_empty(), "{:?}", ckpt.warnings);
}

/// Views sharing one storage: offsets, a transpose, a non-contiguous slice, a stride-0
/// broadcast, the storage named again by key and reused through the memo, plus `cuda:0`.
#[test]
fn tensors_sharing_a_storage_with_offsets_and_strides() {
    let data: Vec<f32> = (0..12).map(|i| i as f32).collect();
    let mut p = Pickle::new();
    p.op(b'}');
    p.put();
    p.mark();
    // a = storage.view(3, 4)
    p.str("a")
        .tensor_begin()
        .storage("FloatStorage", "0", "cuda:0", 12);
    let storage_memo = p.put();
    p.tensor_end(0, &[3, 4], &[4, 1]);
    // t = a.T: size (4, 3), stride (1, 4)
    p.str("t")
        .tensor_begin()
        .get(storage_memo)
        .tensor_end(0, &[4, 3], &[1, 4]);
    // s = a[1:, 1::2]: offset 5, size (2, 2), stride (4, 2)
    p.str("s")
        .tensor("FloatStorage", "0", "cuda:0", 12, 5, &[2, 2], &[4, 2]);
    // e = storage[2] expanded to (2, 3): stride (0, 0)
    p.str("e")
        .tensor("FloatStorage", "0", "cuda:0", 12, 2, &[2, 3], &[0, 0]);
    // z: an empty view, and a scalar at offset 11
    p.str("z")
        .tensor("FloatStorage", "0", "cuda:0", 12, 12, &[0, 4], &[4, 1]);
    p.str("x")
        .tensor("FloatStorage", "0", "cuda:0", 12, 11, &[], &[]);
    p.op(b'u');
    let pkl = p.stop();
    let bytes = checkpoint(&pkl, &[("0", le_f32(&data))], "little");
    let ckpt = load(&bytes).unwrap();
    let sd = ckpt.state_dict().unwrap();
    assert_eq!(f32s(sd.get("a").unwrap()), data);
    assert_eq!(
        f32s(sd.get("t").unwrap()),
        [0.0, 4.0, 8.0, 1.0, 5.0, 9.0, 2.0, 6.0, 10.0, 3.0, 7.0, 11.0]
    );
    assert_eq!(sd.get("t").unwrap().dims(), &[4, 3]);
    assert_eq!(f32s(sd.get("s").unwrap()), [5.0, 7.0, 9.0, 11.0]);
    assert_eq!(f32s(sd.get("e").unwrap()), [2.0; 6]);
    assert_eq!(sd.get("z").unwrap().dims(), &[0, 4]);
    assert_eq!(sd.get("x").unwrap().dims(), &[] as &[usize]);
    assert_eq!(f32s(sd.get("x").unwrap()), [11.0]);
}

#[test]
fn storage_dtypes() {
    let half: Vec<u8> = [1.0f32, -2.5, 65504.0, 5.960_464_5e-8]
        .iter()
        .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
        .collect();
    let bf16: Vec<u8> = [1.0f32, -3.0, 3.389_531_4e38]
        .iter()
        .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
        .collect();
    let long: Vec<u8> = [-1i64, 1 << 40]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let int: Vec<u8> = [-7i32, 9].iter().flat_map(|x| x.to_le_bytes()).collect();
    let double: Vec<u8> = [0.1f64, -1e300]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let boolean = vec![0u8, 1, 1, 0];
    let float = le_f32(&[1.5, -0.25]);

    let mut p = Pickle::new();
    p.op(b'}');
    p.put();
    p.mark();
    p.str("h")
        .tensor("HalfStorage", "h", "cpu", 4, 0, &[4], &[1]);
    p.str("bf")
        .tensor("BFloat16Storage", "bf", "cpu", 3, 0, &[3], &[1]);
    p.str("f")
        .tensor("FloatStorage", "f", "cpu", 2, 0, &[2], &[1]);
    p.str("l")
        .tensor("LongStorage", "l", "cpu", 2, 0, &[2], &[1]);
    p.str("i")
        .tensor("IntStorage", "i", "cpu", 2, 0, &[2], &[1]);
    p.str("d")
        .tensor("DoubleStorage", "d", "cpu", 2, 0, &[2], &[1]);
    p.str("m")
        .tensor("BoolStorage", "m", "cpu", 4, 0, &[2, 2], &[2, 1]);
    p.str("n").tensor("LongStorage", "l", "cpu", 2, 1, &[], &[]);
    p.op(b'u');
    let pkl = p.stop();
    let bytes = checkpoint(
        &pkl,
        &[
            ("h", half),
            ("bf", bf16),
            ("f", float),
            ("l", long),
            ("i", int),
            ("d", double),
            ("m", boolean),
        ],
        "little",
    );
    let sd = load(&bytes).unwrap().into_state_dict().unwrap();
    assert_eq!(
        f32s(sd.get("h").unwrap()),
        [1.0, -2.5, 65504.0, 5.960_464_5e-8]
    );
    assert_eq!(f32s(sd.get("bf").unwrap()), [1.0, -3.0, 3.389_531_4e38]);
    assert_eq!(f32s(sd.get("f").unwrap()), [1.5, -0.25]);
    assert_eq!(i64s(sd.get("l").unwrap()), [-1, 1 << 40]);
    assert_eq!(i64s(sd.get("i").unwrap()), [-7, 9]);
    assert_eq!(host(sd.get("d").unwrap()), HostData::F64(vec![0.1, -1e300]));
    assert_eq!(i64s(sd.get("m").unwrap()), [0, 1, 1, 0]);
    assert_eq!(sd.get("m").unwrap().dims(), &[2, 2]);
    assert_eq!(i64s(sd.get("n").unwrap()), [1 << 40]);
    assert_eq!(sd.get("n").unwrap().dtype(), DType::I64);
}

#[test]
fn big_endian_archives_are_swapped() {
    let mut p = Pickle::new();
    p.op(b'}');
    p.put();
    p.mark();
    p.str("f")
        .tensor("FloatStorage", "0", "cpu", 2, 0, &[2], &[1]);
    p.str("l").tensor("LongStorage", "1", "cpu", 1, 0, &[], &[]);
    p.op(b'u');
    let pkl = p.stop();
    let f: Vec<u8> = [1.5f32, -2.0]
        .iter()
        .flat_map(|x| x.to_be_bytes())
        .collect();
    let l = 258i64.to_be_bytes().to_vec();
    let bytes = checkpoint(&pkl, &[("0", f), ("1", l)], "big");
    let sd = load(&bytes).unwrap().into_state_dict().unwrap();
    assert_eq!(f32s(sd.get("f").unwrap()), [1.5, -2.0]);
    assert_eq!(i64s(sd.get("l").unwrap()), [258]);
}

/// Parameters (`_rebuild_parameter`), protocol-4 opcodes (FRAME, SHORT_BINUNICODE, MEMOIZE,
/// STACK_GLOBAL), non-tensor entries (skipped with a warning) and a DDP `module.` prefix.
#[test]
fn parameters_protocol4_and_warnings() {
    let mut p = Pickle::new();
    p.b[1] = 4;
    p.b.push(0x95);
    p.b.extend_from_slice(&0u64.to_le_bytes()); // FRAME (length not enforced)
    p.op(b'}').op(0x94); // MEMOIZE
    p.mark();
    // module.w = Parameter(tensor)
    p.b.extend_from_slice(&[0x8c, 8]);
    p.b.extend_from_slice(b"module.w");
    p.b.extend_from_slice(&[0x8c, 12]);
    p.b.extend_from_slice(b"torch._utils");
    p.b.extend_from_slice(&[0x8c, 18]);
    p.b.extend_from_slice(b"_rebuild_parameter");
    p.op(0x93).op(0x94);
    p.tensor("FloatStorage", "0", "cpu", 2, 0, &[2], &[1]);
    p.boolean(true).ordered_dict_new().op(0x87).op(b'R');
    p.str("module.note").str("not a tensor");
    p.op(b'u');
    let pkl = p.stop();
    let bytes = checkpoint(&pkl, &[("0", le_f32(&[4.0, 5.0]))], "little");
    let ckpt = load(&bytes).unwrap();
    let sd = ckpt.state_dict().unwrap();
    assert_eq!(f32s(sd.get("module.w").unwrap()), [4.0, 5.0]);
    assert_eq!(sd.len(), 1);
    let w = ckpt.warnings.join("\n");
    assert!(
        w.contains("skipped 1 entry") && w.contains("'module.note'"),
        "{w}"
    );
    assert!(w.contains("strip_prefix(\"module.\")"), "{w}");
}

/// Metadata that is recursive or exponentially shared is rendered in bounded time and size.
#[test]
fn recursive_and_exponentially_shared_metadata_is_bounded() {
    let mut p = Pickle::new();
    p.op(b'}');
    p.put();
    p.mark();
    p.str("model");
    plain_state_dict(&mut p, &[("w", "0", &[1])]);
    // l = []; l.append(l)
    p.str("loop").op(b']');
    let l = p.put();
    p.get(l).op(b'a');
    // x0 = []; x_{i+1} = [x_i, x_i], 60 levels (2^60 leaves if expanded naively)
    p.str("bomb").op(b']');
    for _ in 0..60 {
        let i = p.put();
        p.get(i).op(0x86);
    }
    // args = Namespace(); args.me = args
    p.str("args")
        .global("argparse", "Namespace")
        .op(b')')
        .op(0x81);
    let ns = p.put();
    p.op(b'}')
        .mark()
        .str("me")
        .get(ns)
        .str("lr")
        .float(0.1)
        .op(b'u')
        .op(b'b');
    p.op(b'u');
    let pkl = p.stop();
    let bytes = checkpoint(&pkl, &[("0", le_f32(&[1.0]))], "little");
    let start = std::time::Instant::now();
    let ckpt = load(&bytes).unwrap();
    assert!(start.elapsed().as_secs() < 5);
    assert!(ckpt.info["loop"].len() <= 4200, "{}", ckpt.info["loop"]);
    assert!(ckpt.info["bomb"].len() <= 4200);
    assert_eq!(ckpt.args["lr"], "0.1");
    assert!(ckpt.args["me"].starts_with("argparse.Namespace(me=argparse.Namespace(me="));
    assert!(ckpt.args["me"].len() <= 4200);
}

/// One memoized 100k-item tuple passed to 100k calls would copy 10^10 values: refused early.
#[test]
fn quadratic_copy_bombs_are_refused() {
    let mut p = Pickle::new();
    p.global("torch", "Size");
    let size = p.put();
    p.mark();
    for _ in 0..100_000 {
        p.none();
    }
    p.tuple();
    let big = p.put();
    p.op(b'0');
    for _ in 0..100_000 {
        p.get(size).get(big).op(0x85).op(b'R').op(b'0');
    }
    p.op(b'}');
    let pkl = p.stop();
    let start = std::time::Instant::now();
    let err = load(&checkpoint(&pkl, &[], "little")).unwrap_err();
    assert!(start.elapsed().as_secs() < 5);
    assert!(matches!(err, VitError::PthUnsupported { .. }), "{err}");
    assert!(err.to_string().contains("decompression bomb"), "{err}");
}

/// Checkpoints written by CPython's own pickler (protocols 2 and 4) through stand-ins of the
/// torch globals (`tests/data/pth/make_fixtures.py`): a real `argparse.Namespace`, real
/// `OrderedDict`s with `_metadata`, sets, frozensets and bytes as Python encodes them, an
/// `nn.Parameter`, shared storages and `cuda:0` locations.
#[test]
fn checkpoints_written_by_cpython_pickle() {
    for proto in [2, 4] {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/data/pth/training_ckpt_p{proto}.pth"));
        let ckpt = load_pth::<Cpu>(&path, &CpuDevice).unwrap();
        assert!(ckpt.warnings.is_empty(), "p{proto}: {:?}", ckpt.warnings);
        let sources: Vec<&str> = ckpt.state_dicts.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(sources, ["model", "model_ema"], "p{proto}");
        let sd = ckpt.state_dict().unwrap();
        assert_eq!(sd.len(), 9, "p{proto}");
        let w: Vec<f32> = (0..12).map(|i| i as f32).collect();
        assert_eq!(f32s(sd.get("blocks.0.attn.qkv.weight").unwrap()), w);
        assert_eq!(
            f32s(sd.get("blocks.0.attn.proj.weight").unwrap()),
            [0.0, 4.0, 8.0, 1.0, 5.0, 9.0, 2.0, 6.0, 10.0, 3.0, 7.0, 11.0]
        );
        assert_eq!(
            f32s(sd.get("blocks.0.attn.slice").unwrap()),
            [5.0, 7.0, 9.0, 11.0]
        );
        assert_eq!(
            f32s(sd.get("blocks.0.norm1.weight").unwrap()),
            [1.0, -2.5, 65504.0]
        );
        assert_eq!(f32s(sd.get("blocks.0.norm1.bias").unwrap()), [1.0, -3.0]);
        let nbt = sd.get("blocks.0.bn.num_batches_tracked").unwrap();
        assert_eq!(nbt.dims(), &[] as &[usize]);
        assert_eq!(i64s(nbt), [1 << 40]);
        assert_eq!(i64s(sd.get("blocks.0.mask").unwrap()), [1, 0, 1, 1]);
        assert_eq!(
            host(sd.get("head.double").unwrap()),
            HostData::F64(vec![0.1, -2.0])
        );
        assert_eq!(f32s(sd.get("head.bias").unwrap()), [7.0, 8.0]);
        let ema = ckpt.get("model_ema").unwrap();
        assert_eq!(
            f32s(ema.get("blocks.0.attn.qkv.weight").unwrap())[..3],
            [0.0, -1.0, -2.0]
        );

        assert_eq!(ckpt.epoch, Some(299));
        let a = &ckpt.args;
        assert_eq!(a.len(), 19, "p{proto}: {a:?}");
        assert_eq!(a["model"], "rvt_tiny_vars_d");
        assert_eq!(a["lr"], "0.0005");
        assert_eq!(a["opt_eps"], "1e-8");
        assert_eq!(a["batch_size"], "128");
        assert_eq!(a["use_mask"], "False");
        assert_eq!(a["repeated_aug"], "True");
        assert_eq!(a["betas"], "None");
        assert_eq!(a["aa"], "rand-m9-mstd0.5-inc1");
        let info = &ckpt.info;
        assert_eq!(info["max_accuracy"], "72.5");
        assert_eq!(
            info["scaler"],
            "{'scale': 65536.0, 'growth_factor': 2.0, '_growth_tracker': 17}"
        );
        let sched = &info["lr_scheduler"];
        assert!(sched.contains("'milestones': {"), "p{proto}: {sched}");
        assert!(
            sched.contains("'frozen': frozenset({7})"),
            "p{proto}: {sched}"
        );
        assert!(sched.contains("'blob': b'\\x00\\xff'"), "p{proto}: {sched}");
        assert!(
            info["optimizer"].contains("'betas': (0.9, 0.999)"),
            "p{proto}: {}",
            info["optimizer"]
        );
    }
}

// ------------------------------------------------------------------------------------------
// Rejections
// ------------------------------------------------------------------------------------------

/// The entries of a (trusted) stored zip, from its central directory.
fn entries_of(z: &[u8]) -> Vec<(String, Vec<u8>, u16)> {
    let u16_at = |at: usize| u16::from_le_bytes([z[at], z[at + 1]]) as usize;
    let u32_at = |at: usize| u32::from_le_bytes([z[at], z[at + 1], z[at + 2], z[at + 3]]) as usize;
    let eocd = z.len() - 22;
    let n = u16_at(eocd + 10);
    let mut at = u32_at(eocd + 16);
    let mut out = Vec::new();
    for _ in 0..n {
        let size = u32_at(at + 24);
        let name_len = u16_at(at + 28);
        let skip = name_len + u16_at(at + 30) + u16_at(at + 32);
        let local = u32_at(at + 42);
        let name = String::from_utf8(z[at + 46..at + 46 + name_len].to_vec()).unwrap();
        let start = local + 30 + u16_at(local + 26) + u16_at(local + 28);
        out.push((name, z[start..start + size].to_vec(), 0));
        at += 46 + skip;
    }
    out
}

fn official_bytes() -> Vec<u8> {
    std::fs::read(fixture("model_vars_d.pth")).unwrap()
}

#[test]
fn truncated_archives_are_rejected() {
    let full = official_bytes();
    for cut in [full.len() - 1, full.len() - 30, full.len() / 2, 100, 4] {
        let err = load(&full[..cut]).unwrap_err();
        assert!(
            matches!(err, VitError::PthCorrupt { .. }),
            "cut at {cut}: {err}"
        );
        let msg = err.to_string();
        assert!(msg.contains("truncated"), "cut at {cut}: {msg}");
    }
    let err = load(&[]).unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
}

#[test]
fn corrupted_bytes_fail_the_crc_check() {
    let mut b = official_bytes();
    // A byte inside the data of storage `0` (which starts after the 13 KB data.pkl).
    b[20_000] ^= 0x40;
    let err = load(&b).unwrap_err();
    assert!(matches!(err, VitError::PthCorrupt { .. }), "{err}");
    assert!(err.to_string().contains("CRC-32"), "{err}");
    // A byte of data.pkl: also caught by the CRC, before the pickle is run.
    let mut b = official_bytes();
    b[200] ^= 0x01;
    let err = load(&b).unwrap_err();
    assert!(err.to_string().contains("CRC-32"), "{err}");
}

#[test]
fn corrupted_pickles_are_rejected() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![0x80, 2, 0xff], "not a pickle opcode"),
        (vec![0x80, 2, b'}'], "without a STOP"),
        (
            vec![0x80, 2, b'X', 0xff, 0xff, 0xff, 0x7f, b'a'],
            "ends inside an opcode",
        ),
        (vec![0x80, 2, b'h', 7, b'.'], "memo entry 7"),
        (vec![0x80, 2, b'u', b'.'], "no MARK"),
        (vec![0x80, 2, b'N', b'N', b's', b'.'], "stack is empty"),
        (vec![0x80, 9, b'.'], "protocol 9"),
        (vec![0x80, 2, b'X', 2, 0, 0, 0, 0xc3, 0x28, b'.'], "UTF-8"),
    ];
    for (pkl, want) in cases {
        let err = load(&checkpoint(&pkl, &[], "little")).unwrap_err();
        assert!(matches!(err, VitError::PthCorrupt { .. }), "{want}: {err}");
        assert!(err.to_string().contains(want), "want `{want}`: {err}");
    }
    // Protocol-0 text opcodes are refused as unsupported, not executed.
    let err = load(&checkpoint(b"(dp0\n.", &[], "little")).unwrap_err();
    assert!(matches!(err, VitError::PthUnsupported { .. }), "{err}");
}

#[test]
fn code_execution_globals_are_rejected_by_name() {
    for (module, name) in [
        ("posix", "system"),
        ("os", "system"),
        ("builtins", "eval"),
        ("subprocess", "Popen"),
        ("torch", "load"),
    ] {
        let mut p = Pickle::new();
        p.global(module, name)
            .mark()
            .str("echo pwned")
            .tuple()
            .op(b'R');
        let pkl = p.stop();
        let err = load(&checkpoint(&pkl, &[], "little")).unwrap_err();
        match &err {
            VitError::PthForbiddenGlobal { global, .. } => {
                assert_eq!(global, &format!("{module}.{name}"))
            }
            other => panic!("{module}.{name}: {other}"),
        }
        let msg = err.to_string();
        assert!(msg.contains(&format!("`{module}.{name}`")), "{msg}");
        assert!(msg.contains("nothing from the file was executed"), "{msg}");
    }
    // STACK_GLOBAL (protocol 4) is resolved against the same allowlist.
    let mut p = Pickle::new();
    p.str("os").str("system").op(0x93);
    let err = load(&checkpoint(&p.stop(), &[], "little")).unwrap_err();
    assert!(
        matches!(&err, VitError::PthForbiddenGlobal { global, .. } if global == "os.system"),
        "{err}"
    );
}

/// With `UnknownGlobals::Inert`, an unknown global is kept as an inert record (never called):
/// the weights load and the global is named in a warning.
#[test]
fn inert_mode_never_calls_unknown_globals() {
    let mut p = Pickle::new();
    p.op(b'}');
    p.put();
    p.mark();
    p.str("model");
    plain_state_dict(&mut p, &[("w", "0", &[1])]);
    p.str("hook")
        .global("posix", "system")
        .mark()
        .str("touch /tmp/pwned")
        .tuple()
        .op(b'R');
    p.str("best_acc")
        .global("numpy.core.multiarray", "scalar")
        .mark()
        .none()
        .tuple()
        .op(b'R');
    p.op(b'u');
    let pkl = p.stop();
    let bytes = checkpoint(&pkl, &[("0", le_f32(&[7.0]))], "little");
    assert!(matches!(
        load(&bytes).unwrap_err(),
        VitError::PthForbiddenGlobal { .. }
    ));
    let opts = PthOptions {
        unknown_globals: UnknownGlobals::Inert,
        ..PthOptions::default()
    };
    let ckpt = load_opts(&bytes, &opts).unwrap();
    assert_eq!(f32s(ckpt.state_dict().unwrap().get("w").unwrap()), [7.0]);
    assert!(
        ckpt.warnings[0].contains("`posix.system`"),
        "{:?}",
        ckpt.warnings
    );
    assert!(
        ckpt.info["hook"].starts_with("posix.system("),
        "{:?}",
        ckpt.info
    );
    assert!(!std::path::Path::new("/tmp/pwned").exists());
}

#[test]
fn oversized_storages_are_rejected_before_allocation() {
    for numel in [1i64 << 40, 1 << 62, i64::MAX, 3] {
        let mut p = Pickle::new();
        p.op(b'}').mark().str("w");
        p.tensor("FloatStorage", "0", "cpu", numel, 0, &[1], &[1]);
        p.op(b'u');
        let pkl = p.stop();
        let bytes = checkpoint(&pkl, &[("0", le_f32(&[1.0, 2.0]))], "little");
        let err = load(&bytes).unwrap_err();
        assert!(matches!(err, VitError::PthCorrupt { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("declares") && msg.contains("holds only 8 bytes"),
            "{msg}"
        );
    }
    // A missing record.
    let mut p = Pickle::new();
    p.op(b'}').mark().str("w").f32_tensor("9", &[1]).op(b'u');
    let err = load(&checkpoint(&p.stop(), &[], "little")).unwrap_err();
    assert!(err.to_string().contains("no `data/9` record"), "{err}");
    // A view reaching past its storage.
    let mut p = Pickle::new();
    p.op(b'}').mark().str("w");
    p.tensor("FloatStorage", "0", "cpu", 2, 1, &[2], &[1]);
    p.op(b'u');
    let err = load(&checkpoint(
        &p.stop(),
        &[("0", le_f32(&[1.0, 2.0]))],
        "little",
    ))
    .unwrap_err();
    assert!(err.to_string().contains("reaches beyond storage"), "{err}");
    // A huge broadcast view of a tiny storage.
    let mut p = Pickle::new();
    p.op(b'}').mark().str("w");
    p.tensor(
        "FloatStorage",
        "0",
        "cpu",
        1,
        0,
        &[1 << 20, 1 << 20],
        &[0, 0],
    );
    p.op(b'u');
    let err = load(&checkpoint(&p.stop(), &[("0", le_f32(&[1.0]))], "little")).unwrap_err();
    assert!(matches!(err, VitError::PthUnsupported { .. }), "{err}");
    assert!(err.to_string().contains("broadcast view"), "{err}");
}

#[test]
fn legacy_and_foreign_formats_get_a_clear_message() {
    // The legacy format starts with a pickled magic number (protocol 2, LONG1).
    let mut legacy = vec![
        0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8,
    ];
    legacy.extend_from_slice(&[0x50, 0x19, 0x2e]);
    let err = load(&legacy).unwrap_err();
    assert!(matches!(err, VitError::PthUnsupported { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("legacy") && msg.contains("torch.save"),
        "{msg}"
    );

    let mut tar = vec![0u8; 1024];
    tar[257..262].copy_from_slice(b"ustar");
    let msg = load(&[0x80, 4, 0x95, 0, 0, 0, 0, 0, 0, 0, 0, b'N', b'.'])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("bare pickle") && msg.contains("torch.save"),
        "{msg}"
    );

    let msg = load(&tar).unwrap_err().to_string();
    assert!(
        msg.contains("tar archive") && msg.contains("torch.save"),
        "{msg}"
    );

    let st = std::fs::read(fixture("model_vars_d.safetensors")).unwrap();
    let msg = load(&st).unwrap_err().to_string();
    assert!(msg.contains("safetensors file"), "{msg}");

    let msg = load(b"hello, world").unwrap_err().to_string();
    assert!(msg.contains("zip signature"), "{msg}");
}

#[test]
fn compressed_entries_are_rejected() {
    let mut p = Pickle::new();
    p.op(b'}').mark().str("w").f32_tensor("0", &[1]).op(b'u');
    let pkl = p.stop();
    let bytes = zip(&[
        ("archive/data.pkl".into(), pkl, 0),
        ("archive/data/0".into(), le_f32(&[1.0]), 8),
    ]);
    let err = load(&bytes).unwrap_err();
    assert!(matches!(err, VitError::PthUnsupported { .. }), "{err}");
    assert!(err.to_string().contains("deflate-compressed"), "{err}");
}

#[test]
fn archives_that_are_not_checkpoints() {
    let bytes = zip(&[("readme.txt".into(), b"hi".to_vec(), 0)]);
    let msg = load(&bytes).unwrap_err().to_string();
    assert!(msg.contains("no `<name>/data.pkl`"), "{msg}");

    let ts = zip(&[
        ("m/data.pkl".into(), vec![0x80, 2, b'N', b'.'], 0),
        ("m/constants.pkl".into(), vec![0x80, 2, b'N', b'.'], 0),
        ("m/code/__torch__.py".into(), b"".to_vec(), 0),
    ]);
    let msg = load(&ts).unwrap_err().to_string();
    assert!(msg.contains("TorchScript"), "{msg}");

    // A pickle whose top level is not a dict, or a dict without tensors.
    let msg = load(&checkpoint(&[0x80, 2, b'N', b'.'], &[], "little"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no state dict found"), "{msg}");
    let mut p = Pickle::new();
    p.op(b'}').mark().str("epoch").int(3).op(b'u');
    let msg = load(&checkpoint(&p.stop(), &[], "little"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("'epoch'"), "{msg}");
}

#[test]
fn missing_files_are_io_errors() {
    let err = load_pth::<Cpu>("/nonexistent/x.pth", &CpuDevice).unwrap_err();
    assert!(matches!(err, VitError::Io { .. }), "{err}");
}

// ------------------------------------------------------------------------------------------
// Mutation smoke test (a cheap deterministic stand-in for the cargo-fuzz target)
// ------------------------------------------------------------------------------------------

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Flips, truncates and splices bytes of the official `.pth` in hundreds of ways, with and
/// without CRC checking, and mutates its data.pkl inside a re-built (CRC-valid) archive so the
/// pickle machine sees the damage: every load must return, never panic.
#[test]
fn mutated_checkpoints_never_panic() {
    let orig = official_bytes();
    let mut rng = Lcg(0x5eed);
    let no_crc = PthOptions {
        verify_crc: false,
        ..PthOptions::default()
    };
    let dflt = PthOptions::default();
    let mut ok = 0;
    for i in 0..300 {
        let mut b = orig.clone();
        match i % 4 {
            0 => {
                for _ in 0..1 + rng.below(8) {
                    let at = rng.below(b.len());
                    b[at] ^= 1 << rng.below(8);
                }
            }
            1 => b.truncate(rng.below(orig.len())),
            2 => {
                // Overwrite a run with random bytes, near the central directory half the time.
                let at = if rng.below(2) == 0 {
                    orig.len() - 1 - rng.below(8000)
                } else {
                    rng.below(b.len())
                };
                for k in 0..1 + rng.below(16) {
                    if let Some(x) = b.get_mut(at + k) {
                        *x = rng.next() as u8;
                    }
                }
            }
            _ => {
                let at = rng.below(b.len());
                let len = rng.below(64);
                let end = (at + len).min(b.len());
                b.drain(at..end);
            }
        }
        let opts = if i % 2 == 0 { &no_crc } else { &dflt };
        if load_opts(&b, opts).is_ok() {
            ok += 1;
        }
    }
    assert!(ok < 300);

    // Mutate the pickle itself and re-zip the whole archive with valid CRCs.
    let entries = entries_of(&orig);
    let pkl_index = entries
        .iter()
        .position(|(n, _, _)| n.ends_with("/data.pkl"))
        .unwrap();
    let ar = entries[pkl_index].1.clone();
    let archive_entries = |pkl: Vec<u8>| {
        let mut e = entries.clone();
        e[pkl_index].1 = pkl;
        zip(&e)
    };
    assert!(
        load(&archive_entries(ar.clone())).is_ok(),
        "re-zipped original"
    );
    for i in 0..300 {
        let mut pkl = ar.clone();
        match i % 3 {
            0 => {
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(pkl.len());
                    pkl[at] = rng.next() as u8;
                }
            }
            1 => pkl.truncate(rng.below(ar.len())),
            _ => {
                let at = rng.below(pkl.len());
                let end = (at + rng.below(32)).min(pkl.len());
                pkl.drain(at..end);
            }
        }
        let _ = load(&archive_entries(pkl));
    }
}

/// A converted checkpoint's recorded feature-normalisation mode reaches the model configuration.
#[test]
fn converted_feature_norm_mode_configures_the_model() {
    use vars_vit::config::{AttentionKind, ModelConfig};
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/official/model_vars_d.pth");
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("w.safetensors");
    vars_vit::io::pth::convert_pth::<vars_cpu::Cpu>(
        &src,
        &dst,
        &vars_cpu::CpuDevice,
        Some(vars_vit::io::pth::FeatureNorm::Off),
    )
    .unwrap();
    let sd = vars_vit::StateDict::<vars_cpu::Cpu>::load(&dst, &vars_cpu::CpuDevice).unwrap();
    let mut cfg = ModelConfig::rvt_tiny(AttentionKind::VarsD);
    assert!(cfg.vars.feature_norm);
    assert_eq!(
        cfg.apply_checkpoint_metadata(sd.metadata()).unwrap(),
        Some(false)
    );
    assert!(!cfg.vars.feature_norm);
}
