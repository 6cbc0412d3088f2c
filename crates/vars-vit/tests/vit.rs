//! ViT/DeiT: the self-attention model against a reference written out in plain f64 loops,
//! gradients by finite differences, the bicubic position-embedding resize, and running VARS‑SD
//! and VARS‑S at more than one resolution.

use vars_core::{Autodiff, DType, Tensor};
use vars_cpu::{Cpu, CpuDevice};
use vars_vit::block::Block;
use vars_vit::config::AttentionKind;
use vars_vit::layers::mlp::Mlp;
use vars_vit::layers::resize::{bicubic_matrix, resize_grid};
use vars_vit::layers::{Init, Mode};
use vars_vit::params::{mark_trainable, ParamKind, Parameters};
use vars_vit::vit::{resize_tokens, Pooling, VisionTransformer, VitConfig};
use vars_vit::{count_parameters, VitError};

fn tiny(kind: AttentionKind) -> VitConfig {
    let mut cfg = VitConfig::deit_tiny(kind);
    cfg.image_size = 16;
    cfg.patch_size = 4;
    cfg.embed_dim = 8;
    cfg.heads = 2;
    cfg.depth = 2;
    cfg.num_classes = 3;
    cfg.drop_path_rate = 0.0;
    cfg
}

fn host(t: &Tensor<Cpu>) -> Vec<f64> {
    t.to_vec_f64().unwrap()
}

fn layer_norm(x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
    let c = w.len();
    x.chunks(c)
        .flat_map(|row| {
            let mean = row.iter().sum::<f64>() / c as f64;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / c as f64;
            let inv = 1.0 / (var + 1e-6).sqrt();
            row.iter()
                .enumerate()
                .map(move |(j, v)| (v - mean) * inv * w[j] + b[j])
                .collect::<Vec<_>>()
        })
        .collect()
}

fn linear(x: &[f64], w: &[f64], b: &[f64], out: usize) -> Vec<f64> {
    let inp = w.len() / out;
    x.chunks(inp)
        .flat_map(|row| {
            (0..out)
                .map(|o| b[o] + (0..inp).map(|i| row[i] * w[o * inp + i]).sum::<f64>())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + libm_erf(x / std::f64::consts::SQRT_2))
}

/// `erf(x) = 2/√π ∫₀ˣ e^{−t²} dt` by Simpson's rule with 2000 panels: independent of the
/// engine's erf, and accurate to ~1e-13 for the |x| < 6 a tiny model produces.
fn libm_erf(x: f64) -> f64 {
    let n = 2000;
    let h = x / n as f64;
    let f = |t: f64| (-t * t).exp();
    let mut s = f(0.0) + f(x);
    for i in 1..n {
        s += f(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
    }
    s * h / 3.0 * 2.0 / std::f64::consts::PI.sqrt()
}

/// The ViT forward in plain loops over host vectors (f64).
fn reference_forward(m: &VisionTransformer<Cpu>, x: &Tensor<Cpu>) -> Vec<f64> {
    let cfg = &m.config;
    let (c, h, p) = (cfg.embed_dim, cfg.heads, cfg.patch_size);
    let d = c / h;
    let (bsz, side) = (x.dims()[0], cfg.image_size);
    let g = side / p;
    let xs = host(x);
    let pw = host(&m.patch_embed.weight);
    let pb = host(m.patch_embed.bias.as_ref().unwrap());
    let cls = host(m.cls_token.as_ref().unwrap());
    let pos = host(&m.pos_embed);
    let n = 1 + g * g;
    let mut logits = Vec::new();
    for b in 0..bsz {
        // Patch embedding.
        let mut t = vec![0.0; n * c];
        t[..c].copy_from_slice(&cls);
        for gy in 0..g {
            for gx in 0..g {
                for o in 0..c {
                    let mut acc = pb[o];
                    for ci in 0..3 {
                        for ky in 0..p {
                            for kx in 0..p {
                                let pix =
                                    xs[((b * 3 + ci) * side + gy * p + ky) * side + gx * p + kx];
                                acc += pix * pw[((o * 3 + ci) * p + ky) * p + kx];
                            }
                        }
                    }
                    t[(1 + gy * g + gx) * c + o] = acc;
                }
            }
        }
        for (v, e) in t.iter_mut().zip(&pos) {
            *v += e;
        }
        for block in &m.blocks {
            let Block::PreNorm(blk) = block else {
                unreachable!()
            };
            let vars_vit::attention::Attention::Softmax(attn) = &blk.attn else {
                unreachable!()
            };
            let y = layer_norm(&t, &host(&blk.norm1.weight), &host(&blk.norm1.bias));
            let qkv = linear(
                &y,
                &host(&attn.qkv.weight),
                &host(attn.qkv.bias.as_ref().unwrap()),
                3 * c,
            );
            let mut merged = vec![0.0; n * c];
            for head in 0..h {
                let q = |i: usize, j: usize| qkv[i * 3 * c + head * d + j];
                let k = |i: usize, j: usize| qkv[i * 3 * c + c + head * d + j];
                let v = |i: usize, j: usize| qkv[i * 3 * c + 2 * c + head * d + j];
                for i in 0..n {
                    let logits: Vec<f64> = (0..n)
                        .map(|jt| {
                            (0..d).map(|a| q(i, a) * k(jt, a)).sum::<f64>() / (d as f64).sqrt()
                        })
                        .collect();
                    let mx = logits.iter().cloned().fold(f64::MIN, f64::max);
                    let e: Vec<f64> = logits.iter().map(|l| (l - mx).exp()).collect();
                    let z: f64 = e.iter().sum();
                    for a in 0..d {
                        merged[i * c + head * d + a] =
                            (0..n).map(|jt| e[jt] / z * v(jt, a)).sum::<f64>();
                    }
                }
            }
            let out = linear(
                &merged,
                &host(&attn.proj.weight),
                &host(attn.proj.bias.as_ref().unwrap()),
                c,
            );
            for (v, o) in t.iter_mut().zip(&out) {
                *v += o;
            }
            let Mlp::Linear { fc1, fc2 } = &blk.mlp else {
                unreachable!()
            };
            let y = layer_norm(&t, &host(&blk.norm2.weight), &host(&blk.norm2.bias));
            let hdn = fc1.weight.dims()[0];
            let y = linear(
                &y,
                &host(&fc1.weight),
                &host(fc1.bias.as_ref().unwrap()),
                hdn,
            );
            let y: Vec<f64> = y.into_iter().map(gelu).collect();
            let y = linear(&y, &host(&fc2.weight), &host(fc2.bias.as_ref().unwrap()), c);
            for (v, o) in t.iter_mut().zip(&y) {
                *v += o;
            }
        }
        let y = layer_norm(&t[..c], &host(&m.norm.weight), &host(&m.norm.bias));
        logits.extend(linear(
            &y,
            &host(&m.head.weight),
            &host(m.head.bias.as_ref().unwrap()),
            cfg.num_classes,
        ));
    }
    logits
}

#[test]
fn self_attention_vit_matches_a_plain_reference() {
    let cfg = tiny(AttentionKind::SelfAttention);
    let m = VisionTransformer::<Cpu>::new(&cfg, &mut Init::new(&CpuDevice, DType::F64, 3)).unwrap();
    let x = Tensor::<Cpu>::randn([2, 3, 16, 16], DType::F64, 1, &CpuDevice).unwrap();
    let ours = host(&m.forward(&x, Mode::Eval).unwrap());
    let reference = reference_forward(&m, &x);
    let err = ours
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(err < 1e-10, "max |Δ| = {err}");
}

#[test]
fn timm_names_and_counts() {
    let m = VisionTransformer::<Cpu>::new(
        &VitConfig::deit_tiny(AttentionKind::SelfAttention),
        &mut Init::new(&CpuDevice, DType::F32, 0),
    )
    .unwrap();
    let mut names = Vec::new();
    m.visit(&mut |n, _, _| names.push(n.to_string()));
    for key in [
        "cls_token",
        "pos_embed",
        "patch_embed.proj.weight",
        "blocks.0.norm1.weight",
        "blocks.0.attn.qkv.weight",
        "blocks.11.mlp.fc2.bias",
        "norm.weight",
        "head.bias",
    ] {
        assert!(names.iter().any(|n| n == key), "missing {key}");
    }
    // DeiT-Ti has 5,717,416 parameters (timm).
    assert_eq!(count_parameters(&m).trainable, 5_717_416);
}

/// Gradients of the whole model (self-attention and Performer) by central differences in f64.
#[test]
fn gradients_match_finite_differences() {
    type Ad = Autodiff<Cpu>;
    for kind in [AttentionKind::SelfAttention, AttentionKind::Performer] {
        let cfg = tiny(kind);
        let mut m =
            VisionTransformer::<Ad>::new(&cfg, &mut Init::new(&CpuDevice, DType::F64, 4)).unwrap();
        mark_trainable(&mut m).unwrap();
        let x = Tensor::<Ad>::randn([2, 3, 16, 16], DType::F64, 2, &CpuDevice).unwrap();
        let w = Tensor::<Ad>::randn([2, 3], DType::F64, 9, &CpuDevice).unwrap();
        let loss_of = |m: &VisionTransformer<Ad>| {
            m.forward(&x, Mode::Eval)
                .unwrap()
                .mul(&w)
                .unwrap()
                .sum_all()
                .unwrap()
        };
        let grads = loss_of(&m).backward().unwrap();
        let mut checked = 0;
        for key in [
            "pos_embed",
            "cls_token",
            "blocks.0.attn.qkv.weight",
            "patch_embed.proj.weight",
            "blocks.1.mlp.fc1.bias",
        ] {
            let mut analytic = None;
            m.visit(&mut |n, t, kind| {
                if n == key && kind == ParamKind::Trainable {
                    analytic = Some(grads.get(t).unwrap().to_vec::<f64>().unwrap());
                }
            });
            let analytic = analytic.unwrap();
            for idx in [0usize, 5] {
                let eps = 1e-5;
                let shifted = |delta: f64| {
                    let mut copy = m.clone();
                    copy.visit_mut(&mut |n, t| {
                        if n == key {
                            let mut v = t.to_vec::<f64>().unwrap();
                            v[idx] += delta;
                            *t = Tensor::from_vec(v, t.dims().to_vec(), &CpuDevice).unwrap();
                        }
                    });
                    loss_of(&copy).to_vec::<f64>().unwrap()[0]
                };
                let fd = (shifted(eps) - shifted(-eps)) / (2.0 * eps);
                let err = (fd - analytic[idx]).abs() / fd.abs().max(1e-3);
                assert!(
                    err < 1e-5,
                    "{kind} {key}[{idx}]: fd {fd} vs {}",
                    analytic[idx]
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 10);
    }
}

#[test]
fn bicubic_resize_is_identity_at_the_native_size_and_keeps_constants() {
    for n in [1, 3, 7, 14] {
        let m = bicubic_matrix(n, n);
        for i in 0..n {
            for j in 0..n {
                let expect = if i == j { 1.0 } else { 0.0 };
                assert!((m[i * n + j] - expect).abs() < 1e-15);
            }
        }
    }
    // Every row sums to one: constant grids stay constant at any size.
    for (out, inp) in [(7, 14), (14, 7), (10, 3)] {
        let m = bicubic_matrix(out, inp);
        for row in m.chunks(inp) {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
    }
    let pos = Tensor::<Cpu>::randn([1, 1 + 16, 8], DType::F64, 3, &CpuDevice).unwrap();
    let same = resize_tokens(&pos, 1, 1, 4, 4).unwrap();
    assert_eq!(host(&same), host(&pos));
    let bigger = resize_tokens(&pos, 1, 1, 4, 6).unwrap();
    assert_eq!(bigger.dims(), [1, 37, 8]);
    // The class-token row is kept.
    assert_eq!(
        host(&bigger.narrow(1, 0, 1).unwrap()),
        host(&pos.narrow(1, 0, 1).unwrap())
    );
    let grid = Tensor::<Cpu>::full([2, 5, 5], 3.0, DType::F64, &CpuDevice).unwrap();
    let r = resize_grid(&grid, 9).unwrap();
    assert!(host(&r).iter().all(|v| (v - 3.0).abs() < 1e-12));
}

#[test]
fn every_variant_runs_and_grid_bound_ones_resize() {
    for kind in AttentionKind::ALL {
        let mut cfg = tiny(kind);
        if kind == AttentionKind::VarsS {
            cfg.pooling = Pooling::Average;
        }
        let mut m =
            VisionTransformer::<Cpu>::new(&cfg, &mut Init::new(&CpuDevice, DType::F32, 5)).unwrap();
        let x = Tensor::<Cpu>::randn([2, 3, 16, 16], DType::F32, 1, &CpuDevice).unwrap();
        assert_eq!(m.forward(&x, Mode::Eval).unwrap().dims(), [2, 3], "{kind}");
        let (_, traces) = m.introspect(&x, Mode::Eval).unwrap();
        assert_eq!(traces.len(), 2);
        // Another size is refused until the model is resized, then runs.
        let x24 = Tensor::<Cpu>::randn([2, 3, 24, 24], DType::F32, 1, &CpuDevice).unwrap();
        assert!(m.forward(&x24, Mode::Eval).is_err(), "{kind}");
        m.resize(24).unwrap();
        assert_eq!(m.pos_embed.dims()[1], cfg.extra_tokens() + 36);
        assert_eq!(
            m.forward(&x24, Mode::Eval).unwrap().dims(),
            [2, 3],
            "{kind}"
        );
        if kind == AttentionKind::VarsSd {
            let Block::PreNorm(b) = &m.blocks[0] else {
                unreachable!()
            };
            let vars_vit::attention::Attention::Vars(a) = &b.attn else {
                unreachable!()
            };
            assert_eq!(a.kernel.as_ref().unwrap().dims()[2], 1 + 36);
        }
        if kind == AttentionKind::VarsS {
            let Block::VarsS(b) = &m.blocks[0] else {
                unreachable!()
            };
            assert_eq!(b.grid(), 6);
            assert_eq!(b.kernel().dims()[3], 6);
        }
    }
    let err = VisionTransformer::<Cpu>::new(
        &VitConfig {
            pooling: Pooling::ClassToken,
            ..tiny(AttentionKind::VarsS)
        },
        &mut Init::new(&CpuDevice, DType::F32, 5),
    )
    .unwrap_err();
    assert!(matches!(err, VitError::Config { .. }), "{err}");
}
