//! Introspection: the traced iterations are what the forward computes (the last iteration's
//! reconstruction is the layer's pre-projection output), the logits are unchanged, and every
//! block is traced with the right number of iterations.

use vars_core::{DType, Tensor};
use vars_cpu::{Cpu, CpuDevice};
use vars_vit::attention::Attention;
use vars_vit::block::Block;
use vars_vit::config::{AttentionKind, ModelConfig};
use vars_vit::layers::{Init, Mode};
use vars_vit::model::PoolingTransformer;

fn small(kind: AttentionKind) -> ModelConfig {
    let mut cfg = ModelConfig::rvt_tiny(kind)
        .with_image_size(64)
        .with_classes(4);
    cfg.base_dims = vec![8, 8];
    cfg.depth = vec![2, 1];
    cfg.heads = vec![2, 4];
    cfg
}

fn max_diff(a: &Tensor<Cpu>, b: &Tensor<Cpu>) -> f64 {
    let (a, b) = (a.to_vec_f64().unwrap(), b.to_vec_f64().unwrap());
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn traces_match_the_forward() {
    for kind in [
        AttentionKind::SelfAttention,
        AttentionKind::Performer,
        AttentionKind::VarsD,
        AttentionKind::VarsSd,
    ] {
        let cfg = small(kind);
        let model = PoolingTransformer::<Cpu>::new(&cfg, &mut Init::new(&CpuDevice, DType::F64, 2))
            .unwrap();
        let x = Tensor::<Cpu>::randn([2, 3, 64, 64], DType::F64, 5, &CpuDevice).unwrap();
        let logits = model.forward(&x, Mode::Eval).unwrap();
        let (traced_logits, traces) = model.introspect(&x, Mode::Eval).unwrap();
        assert_eq!(max_diff(&logits, &traced_logits), 0.0, "{kind}");
        assert_eq!(traces.len(), 3, "{kind}");
        let (_, acts) = model.forward_recorded(&x, Mode::Eval).unwrap();
        // Block 0 of stage 0: its input is the stem output in token layout.
        let stem = &acts[0].1;
        let (b, c, n) = (
            stem.dims()[0],
            stem.dims()[1],
            stem.dims()[2] * stem.dims()[3],
        );
        let tokens = stem.reshape([b, c, n]).unwrap().transpose(1, 2).unwrap();
        let Block::PreNorm(block) = &model.transformers[0].blocks[0] else {
            unreachable!()
        };
        let normed = block.norm1.forward(&tokens).unwrap();
        let trace = &traces[0];
        assert_eq!(trace.name, "transformers.0.blocks.0");
        assert_eq!(trace.kind, kind);
        let last = trace.iterations.last().unwrap();
        let layer_out = block.attn.forward(&normed).unwrap();
        let proj = match &block.attn {
            Attention::Softmax(a) => &a.proj,
            Attention::Performer(a) => &a.proj,
            Attention::Vars(a) => &a.proj,
        };
        let from_trace = proj.forward(&last.reconstruction).unwrap();
        let d = max_diff(&from_trace, &layer_out);
        assert!(d < 1e-10, "{kind}: last reconstruction differs by {d}");
        match kind {
            AttentionKind::VarsD | AttentionKind::VarsSd => {
                assert_eq!(trace.iterations.len(), cfg.vars.steps + 1, "{kind}");
                assert!(trace.step_size.is_some() && trace.dictionary.is_some());
                let sp = trace.iterations[0].sparsity.unwrap();
                assert!(sp.total > 0);
                assert!(trace.iterations.iter().all(|it| it.energy.is_some()));
                // The codes of the traced solve are the forward's codes.
                let Attention::Vars(a) = &block.attn else {
                    unreachable!()
                };
                let (dict, v) = a.dictionary(&normed).unwrap();
                let code = a.codes(&dict, &v).unwrap();
                let d = max_diff(&code, &last.code);
                assert!(d < 1e-10, "{kind}: codes differ by {d}");
            }
            _ => {
                assert_eq!(trace.iterations.len(), 1);
                let attn = trace.attention.as_ref().unwrap();
                // Rows of a softmax / normalised kernel sum to one.
                let sums = attn.sum(&[3], false).unwrap().to_vec_f64().unwrap();
                assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-12), "{kind}");
            }
        }
    }
}

#[test]
fn vars_s_traces_match_the_block() {
    let cfg = small(AttentionKind::VarsS);
    let model =
        PoolingTransformer::<Cpu>::new(&cfg, &mut Init::new(&CpuDevice, DType::F64, 2)).unwrap();
    let x = Tensor::<Cpu>::randn([2, 3, 64, 64], DType::F64, 5, &CpuDevice)
        .unwrap()
        .mul_scalar(30.0)
        .unwrap();
    let (logits, traces) = model.introspect(&x, Mode::Eval).unwrap();
    assert_eq!(
        max_diff(&logits, &model.forward(&x, Mode::Eval).unwrap()),
        0.0
    );
    let (_, acts) = model.forward_recorded(&x, Mode::Eval).unwrap();
    let stem = &acts[0].1;
    let (b, c, n) = (
        stem.dims()[0],
        stem.dims()[1],
        stem.dims()[2] * stem.dims()[3],
    );
    let tokens = stem.reshape([b, c, n]).unwrap().transpose(1, 2).unwrap();
    let Block::VarsS(block) = &model.transformers[0].blocks[0] else {
        unreachable!()
    };
    let trace = &traces[0];
    assert_eq!(trace.iterations.len(), cfg.vars_s.steps + 1);
    let last = trace.iterations.last().unwrap();
    assert!(max_diff(&last.code, &block.codes(&tokens).unwrap()) < 1e-12);
    assert_eq!(last.reconstruction.dims(), [b, n, c]);
    assert!(last.sparsity.unwrap().total == last.code.elem_count());
}
