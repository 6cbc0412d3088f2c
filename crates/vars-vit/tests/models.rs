//! The RVT models: exact parameter counts (vars-spec §5, trainable / frozen for all 15
//! model × attention pairs), input-size validation (§4.2), variant compatibility (RVT* is
//! self-attention only), and train/eval behaviour.

use vars_core::{DType, Tensor};
use vars_cpu::{Cpu, CpuDevice};
use vars_vit::config::{AttentionKind, ModelConfig};
use vars_vit::layers::{Init, Mode};
use vars_vit::model::{PatchEmbed, PoolingTransformer};
use vars_vit::{count_parameters, VitError};

fn build(cfg: &ModelConfig) -> vars_vit::Result<PoolingTransformer<Cpu>> {
    PoolingTransformer::new(cfg, &mut Init::new(&CpuDevice, DType::F32, 7))
}

/// (model, [(trainable, frozen)] in the order self-att, perf, vars_d, vars_sd, vars_s).
const COUNTS: [(&str, [(usize, usize); 5]); 3] = [
    (
        "rvt_tiny",
        [
            (8_646_376, 0),
            (8_646_376, 172_032),
            (8_029_312, 172_116),
            (9_004_672, 172_116),
            (10_152_424, 2_700),
        ],
    ),
    (
        "rvt_small",
        [
            (22_148_392, 0),
            (22_148_392, 589_824),
            (20_570_944, 589_896),
            (22_967_104, 589_896),
            (24_793_384, 4_620),
        ],
    ),
    (
        "rvt_base",
        [
            (86_223_784, 0),
            (86_223_784, 1_179_648),
            (79_333_312, 1_179_792),
            (83_535_808, 1_179_792),
            (84_435_880, 9_228),
        ],
    ),
];

#[test]
fn parameter_counts_match_the_reference_exactly() {
    for (model, counts) in COUNTS {
        for (kind, (trainable, frozen)) in AttentionKind::ALL.iter().zip(counts) {
            let cfg = ModelConfig::preset(model, *kind).unwrap();
            let m = build(&cfg).unwrap();
            let c = count_parameters(&m);
            assert_eq!(
                (c.trainable, c.frozen),
                (trainable, frozen),
                "{model} {kind}: trainable/frozen"
            );
        }
    }
}

#[test]
fn rvt_plus_adds_the_mask_and_rejects_other_blocks() {
    let plain =
        count_parameters(&build(&ModelConfig::rvt_tiny(AttentionKind::SelfAttention)).unwrap());
    let plus = count_parameters(&build(&ModelConfig::rvt_tiny_plus()).unwrap());
    // 10 masked blocks of 6 heads × 196 × 196.
    assert_eq!(plus.trainable - plain.trainable, 10 * 6 * 196 * 196);
    for kind in [
        AttentionKind::Performer,
        AttentionKind::VarsD,
        AttentionKind::VarsSd,
        AttentionKind::VarsS,
    ] {
        let err = ModelConfig::preset("rvt_tiny_plus", kind).unwrap_err();
        assert!(
            matches!(err, VitError::Config { .. }) && err.to_string().contains("self-att"),
            "{kind}: {err}"
        );
    }
}

#[test]
fn input_sizes_are_validated_as_the_reference_allows() {
    // Two-stage models with grid-dependent blocks need a multiple of 32.
    for kind in [AttentionKind::VarsSd, AttentionKind::VarsS] {
        let err = ModelConfig::rvt_tiny(kind)
            .with_image_size(112)
            .validate()
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("112") && msg.contains("multiple of 32"),
            "{msg}"
        );
        ModelConfig::rvt_tiny(kind)
            .with_image_size(96)
            .validate()
            .unwrap();
        // Single-stage: multiples of 16.
        ModelConfig::rvt_small(kind)
            .with_image_size(112)
            .validate()
            .unwrap();
    }
    // Grid-independent blocks run at 112; 28 leaves an empty grid for everyone.
    ModelConfig::rvt_tiny(AttentionKind::VarsD)
        .with_image_size(112)
        .validate()
        .unwrap();
    let err = ModelConfig::rvt_tiny(AttentionKind::SelfAttention)
        .with_image_size(12)
        .validate()
        .unwrap_err();
    assert!(err.to_string().contains("empty token grid"), "{err}");
}

fn small(kind: AttentionKind) -> ModelConfig {
    let mut cfg = ModelConfig::rvt_tiny(kind)
        .with_image_size(64)
        .with_classes(5);
    cfg.base_dims = vec![8, 8];
    cfg.depth = vec![1, 1];
    cfg.heads = vec![2, 4];
    cfg
}

#[test]
fn forward_shapes_batch_one_and_bad_inputs() {
    for kind in AttentionKind::ALL {
        let cfg = small(kind);
        let m = build(&cfg).unwrap();
        // Batch 1 works (the reference's squeeze breaks there).
        let x = Tensor::<Cpu>::randn([1, 3, 64, 64], DType::F32, 1, &CpuDevice).unwrap();
        let y = m.forward(&x, Mode::Eval).unwrap();
        assert_eq!(y.dims(), [1, 5], "{kind}");
        // Wrong channels, non-square, NaN: errors naming the problem.
        let bad = Tensor::<Cpu>::zeros([1, 1, 64, 64], DType::F32, &CpuDevice).unwrap();
        assert!(m
            .forward(&bad, Mode::Eval)
            .unwrap_err()
            .to_string()
            .contains("(B, 3, H, W)"));
        let bad = Tensor::<Cpu>::zeros([1, 3, 64, 32], DType::F32, &CpuDevice).unwrap();
        assert!(m
            .forward(&bad, Mode::Eval)
            .unwrap_err()
            .to_string()
            .contains("square"));
        let mut v = vec![0.0f32; 3 * 64 * 64];
        v[100] = f32::NAN;
        let bad = Tensor::<Cpu>::from_vec(v, [1, 3, 64, 64], &CpuDevice).unwrap();
        assert!(m
            .forward(&bad, Mode::Eval)
            .unwrap_err()
            .to_string()
            .contains("NaN"));
        // Another resolution: fine for grid-independent blocks, an error for the locked ones.
        let x96 = Tensor::<Cpu>::randn([1, 3, 96, 96], DType::F32, 1, &CpuDevice).unwrap();
        let r = m.forward(&x96, Mode::Eval);
        if kind.is_resolution_locked() {
            assert!(r.unwrap_err().to_string().contains("resolution"), "{kind}");
        } else {
            assert_eq!(r.unwrap().dims(), [1, 5], "{kind}");
        }
    }
}

#[test]
fn train_mode_updates_running_statistics_and_eval_is_deterministic() {
    for kind in AttentionKind::ALL {
        let mut cfg = small(kind);
        cfg.drop_path_rate = 0.5;
        let m = build(&cfg).unwrap();
        let x = Tensor::<Cpu>::randn([2, 3, 64, 64], DType::F32, 3, &CpuDevice).unwrap();
        let e1 = m.forward(&x, Mode::Eval).unwrap().to_vec::<f32>().unwrap();
        let e2 = m.forward(&x, Mode::Eval).unwrap().to_vec::<f32>().unwrap();
        assert_eq!(e1, e2, "{kind}: eval must be deterministic");
        let PatchEmbed::Rvt(stem) = &m.patch_embed else {
            unreachable!("small() uses the RVT stem")
        };
        let before = stem.bn1.running_stats();
        let t = m
            .forward(&x, Mode::Train { seed: 1 })
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        let after = stem.bn1.running_stats();
        assert_ne!(t, e1, "{kind}: train mode uses batch statistics");
        assert_eq!(after.2.to_vec::<i64>().unwrap(), vec![1]);
        assert_ne!(
            before.0.to_vec::<f32>().unwrap(),
            after.0.to_vec::<f32>().unwrap()
        );
        // Same seed, same draws (stochastic depth is seeded).
        let m2 = build(&cfg).unwrap();
        let t2 = m2
            .forward(&x, Mode::Train { seed: 1 })
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        assert_eq!(t, t2, "{kind}");
    }
}

#[test]
fn small_image_models_have_at_least_a_7x7_grid() {
    for (side, grid) in [(28, 7), (32, 8)] {
        for kind in AttentionKind::ALL {
            let cfg = ModelConfig::small_image(kind, side, 1, 10);
            assert_eq!(cfg.grids(), vec![grid]);
            let m = build(&cfg).unwrap();
            let x = Tensor::<Cpu>::randn([2, 1, side, side], DType::F32, 4, &CpuDevice).unwrap();
            let (logits, acts) = m.forward_recorded(&x, Mode::Eval).unwrap();
            assert_eq!(logits.dims(), [2, 10]);
            // The first block sees grid² tokens.
            let block0 = &acts
                .iter()
                .find(|(n, _)| n == "act.stage0.block0")
                .unwrap()
                .1;
            assert_eq!(block0.dims(), [2, grid * grid, 64], "{kind} at {side} px");
        }
    }
}

/// Each variant of the small-image model learns: a few SGD steps on a fixed batch lower the loss.
#[test]
fn small_image_models_train() {
    use vars_core::nn::{cross_entropy, Target};
    use vars_core::Autodiff;
    use vars_vit::params::{mark_trainable, ParamKind, Parameters};
    type Ad = Autodiff<Cpu>;
    for kind in AttentionKind::ALL {
        let cfg = ModelConfig::small_image(kind, 28, 1, 4);
        let mut m =
            PoolingTransformer::<Ad>::new(&cfg, &mut Init::new(&CpuDevice, DType::F32, 1)).unwrap();
        mark_trainable(&mut m).unwrap();
        let x = Tensor::<Ad>::randn([8, 1, 28, 28], DType::F32, 2, &CpuDevice).unwrap();
        let labels =
            Tensor::<Ad>::from_vec(vec![0i64, 1, 2, 3, 0, 1, 2, 3], [8], &CpuDevice).unwrap();
        let mut losses = Vec::new();
        for step in 0..6 {
            let logits = m.forward(&x, Mode::Train { seed: step }).unwrap();
            let loss = cross_entropy(&logits, Target::Labels(&labels), 0.0).unwrap();
            losses.push(loss.to_vec::<f32>().unwrap()[0]);
            let grads = loss.backward().unwrap();
            let mut updates = Vec::new();
            m.visit(&mut |name, t, kind| {
                if kind == ParamKind::Trainable {
                    if let Some(g) = grads.get(t) {
                        let new = t.detach().sub(&g.mul_scalar(0.05).unwrap()).unwrap();
                        updates.push((name.to_string(), new.requires_grad().unwrap()));
                    }
                }
            });
            m.visit_mut(&mut |name, t| {
                if let Some((_, new)) = updates.iter().find(|(n, _)| n == name) {
                    *t = new.clone();
                }
            });
        }
        assert!(
            losses.last().unwrap() < &(losses[0] * 0.9),
            "{kind}: loss did not go down: {losses:?}"
        );
    }
}

#[test]
fn grid_bound_models_resize_to_another_valid_size() {
    for kind in [AttentionKind::VarsSd, AttentionKind::VarsS] {
        let mut m = build(&small(kind)).unwrap();
        let x96 = Tensor::<Cpu>::randn([1, 3, 96, 96], DType::F32, 1, &CpuDevice).unwrap();
        assert!(m.forward(&x96, Mode::Eval).is_err(), "{kind}");
        m.resize(96).unwrap();
        assert_eq!(
            m.forward(&x96, Mode::Eval).unwrap().dims(),
            [1, 5],
            "{kind}"
        );
        // Sizes the reference cannot build at stay refused.
        assert!(m.resize(112).is_err(), "{kind}");
    }
}

/// The attention-ablated twin: its output ignores every attention parameter, and differs from
/// the full model.
#[test]
fn ablated_attention_ignores_the_attention_branch() {
    use vars_vit::params::Parameters;
    for kind in AttentionKind::ALL {
        let mut cfg = ModelConfig::small_image(kind, 28, 1, 10);
        cfg.depth = vec![2];
        let full = build(&cfg).unwrap();
        cfg.ablate_attention = true;
        let mut ablated = build(&cfg).unwrap();
        let x = Tensor::<Cpu>::randn([2, 1, 28, 28], DType::F32, 4, &CpuDevice).unwrap();
        let before = ablated
            .forward(&x, Mode::Eval)
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        assert_ne!(
            before,
            full.forward(&x, Mode::Eval)
                .unwrap()
                .to_vec::<f32>()
                .unwrap(),
            "{kind}"
        );
        // Scramble the attention's parameters (VARS-S: its value map and spectra).
        ablated.visit_mut(&mut |name, t| {
            if name.contains(".attn.") || name.ends_with(".v.weight") || name.ends_with(".kernel") {
                *t = t.mul_scalar(3.0).unwrap();
            }
        });
        let after = ablated
            .forward(&x, Mode::Eval)
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        assert_eq!(before, after, "{kind}");
    }
}
