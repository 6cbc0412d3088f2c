//! The training engine on real models: every attention kind learns, weight-decay exemptions,
//! gradient accumulation equals the large batch, clipping, EMA, the VARS‑S hook, seeded
//! determinism on 1 and 2 threads, bit-identical resume, checkpoint files and failure handling,
//! the metrics log, error paths.

mod common;

use common::*;
use std::path::Path;
use vars_core::{DType, Tensor};
use vars_cpu::{Cpu, CpuDevice};
use vars_train::checkpoint::{config_hash, read_config, read_provenance, read_trainer_file};
use vars_train::*;
use vars_vit::config::AttentionKind;
use vars_vit::layers::{Init, Mode};
use vars_vit::vit::{VisionTransformer, VitConfig};
use vars_vit::{ParamKind, Parameters, StateDict};

/// Runs `fit` and returns every step's loss as bits, with the outcome.
fn fit_losses(
    t: &mut Trainer<Cpu, Model>,
    data: &mut TensorBatches<Cpu>,
    checkpoints: Option<&mut Checkpointer>,
    max_global_steps: Option<u64>,
) -> (Vec<u64>, FitOutcome) {
    let mut losses = Vec::new();
    let mut cb = |ev: Progress<'_>| {
        if let Progress::Step(r) = ev {
            losses.push(r.loss.to_bits());
        }
        Control::Continue
    };
    let opts = FitOptions {
        checkpoints,
        max_global_steps,
        progress: Some(&mut cb),
        ..Default::default()
    };
    let out = t.fit(data, opts).unwrap();
    (losses, out)
}

fn all_state(t: &Trainer<Cpu, Model>) -> Vec<(String, Vec<u64>)> {
    let mut v = bits(&StateDict::from_model(t.model()).unwrap());
    v.extend(bits(t.ema().unwrap().state_dict()));
    v.extend(bits(&t.optimizer().state_dict().unwrap()));
    v
}

#[test]
fn every_attention_kind_learns() {
    let mut data = tiny_data(0);
    for kind in AttentionKind::ALL {
        // Plain AdamW at a constant rate: the loss must fall clearly within 3 epochs.
        let mut c = full_recipe(3);
        c.mixup = None;
        c.ema_decay = None;
        c.schedule = CosineSchedule::constant(3e-3);
        let mut t = Trainer::new(tiny_model(kind, 1), c).unwrap();
        let out = t.fit(&mut data, FitOptions::default()).unwrap();
        let (first, last) = (&out.epochs[0], &out.epochs[2]);
        eprintln!(
            "{kind}: loss {:.3} → {:.3}, accuracy {:.2} → {:.2}",
            first.loss, last.loss, first.accuracy, last.accuracy
        );
        assert!(
            last.loss < 0.75 * first.loss && last.accuracy > first.accuracy,
            "{kind}: {first:?} → {last:?}"
        );
        assert_eq!(out.position.global_step, 12);
        // The full recipe (mixup/cutmix, EMA, clipping, warmup + cosine, hook) runs and stays
        // finite.
        let mut t = Trainer::new(tiny_model(kind, 1), full_recipe(1)).unwrap();
        let out = t.fit(&mut data, FitOptions::default()).unwrap();
        let m = &out.epochs[0];
        assert!(
            m.loss.is_finite() && m.grad_norm.unwrap().is_finite(),
            "{kind}: {m:?}"
        );
        assert_eq!((m.steps, m.samples), (4, 32));
        assert!(m.images_per_sec > 0.0);
    }
}

/// vars-spec §6: rank-1 tensors and biases are exempt; W (`learned_k`), P (`kernel` of VARS‑SD),
/// K and K2 are decayed; frozen tensors and buffers are never touched. With zero gradients an
/// AdamW step is exactly the decoupled decay `p·(1 − lr·wd)`.
#[test]
fn weight_decay_exemptions_on_the_models() {
    for kind in [
        AttentionKind::VarsD,
        AttentionKind::VarsSd,
        AttentionKind::VarsS,
    ] {
        let mut model = tiny_model(kind, 3);
        vars_vit::params::mark_trainable(&mut model).unwrap();
        let mut opt =
            Optimizer::<Cpu>::new(OptimizerConfig::adamw(), DecayPolicy::reference()).unwrap();
        let decayed = opt.decayed_parameters(&model);
        let has = |s: &str| decayed.iter().any(|n| n.ends_with(s));
        match kind {
            AttentionKind::VarsD => assert!(has("attn.learned_k")),
            AttentionKind::VarsSd => assert!(has("attn.learned_k") && has("attn.kernel")),
            _ => assert!(has("blocks.0.kernel") && has("blocks.0.kernel2")),
        }
        // Decayed ⇔ trainable, rank ≥ 2 and not a bias: s_λ, s_L (rank 1), norms, biases, Ω,
        // VARS‑S `L` and `kernel_norm` (frozen) and BatchNorm buffers are not.
        let mut all = Vec::new();
        model.visit(&mut |n, t, k| all.push((n.to_string(), t.rank(), k)));
        for (n, rank, k) in &all {
            let want = *k == ParamKind::Trainable && *rank >= 2 && !n.ends_with(".bias");
            assert_eq!(decayed.contains(n), want, "{kind}: {n}");
        }
        for exempt in [
            "learned_lam",
            "learned_L",
            "rand_matrix",
            ".L",
            "kernel_norm",
            "norm1.weight",
        ] {
            assert!(
                !decayed.iter().any(|n| n.ends_with(exempt)),
                "{kind}: {exempt}"
            );
        }
        assert!(
            all.iter().any(|(n, _, _)| n.ends_with("learned_lam")) || kind == AttentionKind::VarsS
        );

        let before = StateDict::from_model(&model).unwrap();
        let mut kinds = std::collections::HashMap::new();
        let mut grads = Gradients::<Cpu>::default();
        model.visit(&mut |n, t, k| {
            kinds.insert(n.to_string(), k);
            if k == ParamKind::Trainable && n != "head.weight" {
                grads.insert(n.to_string(), t.inner().zeros_like().unwrap());
            }
        });
        let stats = opt.step(&mut model, &grads, 0.1).unwrap();
        assert_eq!(stats.skipped, 1, "head.weight has no gradient");
        assert_eq!(stats.decayed, decayed.len() - 1);
        let after = StateDict::from_model(&model).unwrap();
        for (name, old) in before.iter() {
            let new = after.get(name).unwrap();
            let want = if kinds[name] == ParamKind::Trainable
                && name != "head.weight"
                && decayed.iter().any(|d| d == name)
            {
                old.mul_scalar(1.0 - 0.1 * 0.05).unwrap()
            } else {
                old.clone()
            };
            assert_eq!(bits_of(new), bits_of(&want), "{kind}: {name}");
        }
        // Updated parameters are leaf variables again; frozen tensors and buffers are not.
        model.visit(&mut |n, t, k| {
            assert_eq!(t.is_tracked(), k == ParamKind::Trainable, "{n}");
        });
        assert_eq!(opt.step_count("head.weight"), 0);
        assert_eq!(opt.step_count("head.bias"), 1);
    }
}

fn bits_of<B: vars_core::Backend>(t: &Tensor<B>) -> Vec<u64> {
    match t.dtype() {
        DType::F32 => t
            .to_vec::<f32>()
            .unwrap()
            .iter()
            .map(|x| x.to_bits() as u64)
            .collect(),
        DType::F64 => t
            .to_vec::<f64>()
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect(),
        _ => t
            .to_vec::<i64>()
            .unwrap()
            .iter()
            .map(|&x| x as u64)
            .collect(),
    }
}

fn max_rel_diff(a: &Gradients<Cpu>, b: &Gradients<Cpu>) -> f64 {
    assert_eq!(a.len(), b.len());
    let mut worst = 0.0f64;
    for (name, ga) in a.iter() {
        let x = ga.to_vec_f64().unwrap();
        let y = b.get(name).unwrap().to_vec_f64().unwrap();
        let scale = y.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-30);
        for (p, q) in x.iter().zip(&y) {
            worst = worst.max((p - q).abs() / scale);
        }
    }
    worst
}

/// k micro-batches of B/k samples, accumulated and scaled by 1/k, give the gradient of the
/// batch of B. It must hold where samples do not interact in the forward pass: the RVT model in
/// eval mode (BatchNorm with running statistics, no stochastic depth), in f64.
#[test]
fn gradient_accumulation_equals_the_large_batch_gradient() {
    let mut model = PoolingTransformerF64::new(
        &tiny_config(AttentionKind::VarsD),
        &mut Init::new(&CpuDevice, DType::F64, 5),
    )
    .unwrap();
    vars_vit::params::mark_trainable(&mut model).unwrap();
    let (x, y) = synthetic(8, 9);
    let x = Tensor::<Ad>::from_inner(&x.to_dtype(DType::F64).unwrap());
    let y = Tensor::<Ad>::from_inner(&y);
    let grads_of = |xs: &Tensor<Ad>, ys: &Tensor<Ad>| {
        let logits = model.forward(xs, Mode::Eval).unwrap();
        let loss =
            vars_core::nn::cross_entropy(&logits, vars_core::nn::Target::Labels(ys), 0.1).unwrap();
        Gradients::from_store(&model, &loss.backward().unwrap())
    };
    let full = grads_of(&x, &y);
    assert!(full.len() > 10);
    for k in [2usize, 4] {
        let m = 8 / k;
        let mut acc = Gradients::default();
        for j in 0..k {
            acc.accumulate(grads_of(
                &x.narrow(0, j * m, m).unwrap(),
                &y.narrow(0, j * m, m).unwrap(),
            ))
            .unwrap();
        }
        acc.scale(1.0 / k as f64).unwrap();
        let d = max_rel_diff(&acc, &full);
        eprintln!("accumulation k = {k}: max relative gradient difference {d:e}");
        assert!(d < 1e-12, "k = {k}: max relative difference {d:e}");
    }
}

type PoolingTransformerF64 = vars_vit::model::PoolingTransformer<Ad>;

/// The trainer's own accumulation path in train mode, on a model without BatchNorm (ViT with
/// LayerNorm and the linear MLP, no stochastic depth): two SGD steps with `accum_steps = 2`
/// land where two steps on the whole batch land.
#[test]
fn trainer_accumulation_matches_the_large_batch_steps() {
    let mut cfg = VitConfig::deit_tiny(AttentionKind::SelfAttention);
    cfg.image_size = 28;
    cfg.patch_size = 7;
    cfg.in_chans = 1;
    cfg.num_classes = CLASSES;
    cfg.embed_dim = 16;
    cfg.depth = 2;
    cfg.heads = 2;
    cfg.drop_path_rate = 0.0;
    let run = |accum: usize| {
        let model =
            VisionTransformer::<Ad>::new(&cfg, &mut Init::new(&CpuDevice, DType::F64, 2)).unwrap();
        let mut c = TrainConfig::new(8, 1);
        c.optimizer = OptimizerConfig::sgd(0.9);
        c.decay = DecayPolicy::deit();
        c.schedule = CosineSchedule::constant(0.1);
        c.mixup = None;
        c.ema_decay = None;
        c.accum_steps = accum;
        let mut t = Trainer::new(model, c).unwrap();
        let (x, y) = synthetic(8, 4);
        let x = x.to_dtype(DType::F64).unwrap();
        for _ in 0..2 {
            let b = Batch {
                images: x.clone(),
                targets: Targets::Labels(y.clone()),
            };
            t.train_step(b, 1).unwrap();
        }
        StateDict::from_model(t.model()).unwrap()
    };
    let (one, two) = (run(1), run(2));
    let mut worst = 0.0f64;
    for (name, a) in one.iter() {
        let (a, b) = (
            a.to_vec_f64().unwrap(),
            two.get(name).unwrap().to_vec_f64().unwrap(),
        );
        for (p, q) in a.iter().zip(&b) {
            worst = worst.max((p - q).abs() / p.abs().max(1e-3));
        }
    }
    eprintln!(
        "trainer accumulation (k = 2, 2 SGD steps): max relative weight difference {worst:e}"
    );
    assert!(worst < 1e-12, "weights differ by {worst:e}");
}

#[test]
fn clipping_by_global_norm() {
    let t = |v: &[f64]| Tensor::<Cpu>::from_vec(v.to_vec(), [v.len()], &CpuDevice).unwrap();
    let mut g = Gradients::default();
    g.insert("a".into(), t(&[3.0, 4.0]));
    g.insert("b".into(), t(&[12.0]));
    assert_eq!(g.global_norm().unwrap(), 13.0);
    let mut big = g.clone();
    assert_eq!(big.clip_global_norm(100.0).unwrap(), 13.0);
    assert_eq!(
        big.get("a").unwrap().to_vec::<f64>().unwrap(),
        vec![3.0, 4.0]
    );
    assert_eq!(g.clip_global_norm(6.5).unwrap(), 13.0);
    let coef = 6.5 / (13.0 + 1e-6);
    assert_eq!(
        g.get("a").unwrap().to_vec::<f64>().unwrap(),
        vec![3.0 * coef, 4.0 * coef]
    );
    assert_eq!(
        g.get("b").unwrap().to_vec::<f64>().unwrap(),
        vec![12.0 * coef]
    );
    assert!((g.global_norm().unwrap() - 6.5).abs() < 1e-6);
    assert!(g.clip_global_norm(0.0).is_err());
}

/// After each optimiser step every float entry (parameters, frozen `L`, BatchNorm running
/// statistics) is `0.9·ema + 0.1·model`; `num_batches_tracked` is copied.
#[test]
fn ema_blends_every_float_entry() {
    let mut c = full_recipe(1);
    c.mixup = None;
    let mut t = Trainer::new(tiny_model(AttentionKind::VarsS, 1), c).unwrap();
    let mut data = tiny_data(0);
    let before = t.ema().unwrap().state_dict().clone();
    let b = data.batch(0, 0).unwrap();
    t.train_step(b, 4).unwrap();
    let model = StateDict::from_model(t.model()).unwrap();
    let ema = t.ema().unwrap().state_dict();
    let mut floats = 0;
    for (name, e) in ema.iter() {
        let m = model.get(name).unwrap();
        if e.dtype() == DType::I64 {
            assert_eq!(
                e.to_vec::<i64>().unwrap(),
                m.to_vec::<i64>().unwrap(),
                "{name}"
            );
            assert_eq!(e.to_vec::<i64>().unwrap(), vec![1], "{name}");
        } else {
            let want = before
                .get(name)
                .unwrap()
                .mul_scalar(0.9)
                .unwrap()
                .add(&m.inner().mul_scalar(1.0 - 0.9).unwrap())
                .unwrap();
            assert_eq!(bits_of(e), bits_of(&want), "{name}");
            floats += 1;
        }
    }
    assert!(floats > 20);
    // The EMA loads into a model as is.
    let ema_model = t.ema_model().unwrap().unwrap();
    assert_eq!(bits(&StateDict::from_model(&ema_model).unwrap()), bits(ema));
}

/// A model wrapper that counts hook calls and can poison its logits.
#[derive(Clone)]
struct Probe {
    inner: Model,
    hook_calls: usize,
    nan: bool,
}

impl Parameters<Ad> for Probe {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor<Ad>, ParamKind)) {
        self.inner.visit(f)
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<Ad>)) {
        self.inner.visit_mut(f)
    }
}

impl TrainModel<Cpu> for Probe {
    fn forward_logits(&self, x: &Tensor<Ad>, mode: Mode) -> vars_train::Result<Tensor<Ad>> {
        let y = self.inner.forward_logits(x, mode)?;
        Ok(if self.nan { y.mul_scalar(f64::NAN)? } else { y })
    }
    fn num_classes(&self) -> usize {
        CLASSES
    }
    fn update_step_constants(&mut self, rate: f64) -> vars_train::Result<()> {
        self.hook_calls += 1;
        TrainModel::update_step_constants(&mut self.inner, rate)
    }
}

fn frozen_l(m: &Model) -> Vec<u64> {
    let mut out = Vec::new();
    m.visit(&mut |n, t, _| {
        if n.ends_with(".L") {
            out.extend(bits_of(t));
        }
    });
    out
}

/// vars-spec §3.5: the hook fires before the forward pass at steps 0, every, 2·every, … of each
/// epoch (the counter restarts every epoch); VARS‑S `L` changes exactly then and is otherwise
/// frozen (not optimised).
#[test]
fn step_constant_hook_fires_on_schedule() {
    let mut c = full_recipe(2);
    c.step_constants = Some(StepConstantsUpdate {
        every: 3,
        rate: 0.1,
    });
    let probe = Probe {
        inner: tiny_model(AttentionKind::VarsS, 1),
        hook_calls: 0,
        nan: false,
    };
    let mut t = Trainer::new(probe, c.clone()).unwrap();
    let mut data = tiny_data(0);
    let mut fired = Vec::new();
    let mut l_changed = Vec::new();
    for epoch in 0..2 {
        for step in 0..4 {
            let l0 = frozen_l(&t.model().inner);
            let r = t.train_step(data.batch(epoch, step).unwrap(), 4).unwrap();
            fired.push(r.step_constants_updated);
            l_changed.push(frozen_l(&t.model().inner) != l0);
        }
        t.end_epoch(None);
    }
    let want = [true, false, false, true, true, false, false, true];
    assert_eq!(fired, want);
    assert_eq!(l_changed, want);
    assert_eq!(t.model().hook_calls, 4);

    c.step_constants = None;
    let probe = Probe {
        inner: tiny_model(AttentionKind::VarsS, 1),
        hook_calls: 0,
        nan: false,
    };
    let l0 = frozen_l(&probe.inner);
    let mut t = Trainer::new(probe, c).unwrap();
    t.fit(&mut data, FitOptions::default()).unwrap();
    assert_eq!(t.model().hook_calls, 0);
    assert_eq!(frozen_l(&t.model().inner), l0);
}

/// Same seed and thread count ⇒ bit-identical losses and weights, on 2 threads and on 1; the
/// CPU backend's reductions do not depend on the thread count, so 1 and 2 threads agree too.
/// Another seed gives other losses.
#[test]
fn seeded_runs_are_bit_identical_on_one_and_two_threads() {
    let run = |threads: usize, seed: u64| {
        pool(threads).install(|| {
            let mut c = full_recipe(2);
            c.seed = seed;
            let mut t = Trainer::new(tiny_model(AttentionKind::VarsS, 1), c).unwrap();
            let (losses, _) = fit_losses(&mut t, &mut tiny_data(0), None, None);
            (losses, all_state(&t))
        })
    };
    let a = run(2, 7);
    let b = run(2, 7);
    assert_eq!(a.0.len(), 8);
    assert_eq!(a.0, b.0, "2 threads: losses differ");
    assert!(a.1 == b.1, "2 threads: final state differs");
    let c = run(1, 7);
    let d = run(1, 7);
    assert_eq!(c.0, d.0, "1 thread: losses differ");
    assert!(c.1 == d.1, "1 thread: final state differs");
    assert_eq!(a.0, c.0, "1 vs 2 threads");
    let e = run(2, 8);
    assert_ne!(a.0, e.0, "another seed must change the run");
}

/// Train 8 steps uninterrupted; separately train 3 (stopping mid-epoch), checkpoint, load into a
/// freshly built (differently initialised) model and trainer, train the remaining 5: the losses
/// of steps 3..8 and the final weights, EMA and optimiser state are bit-identical.
#[test]
fn resume_mid_epoch_is_bit_identical() {
    pool(2).install(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Trainer::new(tiny_model(AttentionKind::VarsS, 1), full_recipe(2)).unwrap();
        let (reference, out) = fit_losses(&mut t, &mut tiny_data(0), None, None);
        assert_eq!(reference.len(), 8);
        assert!(!out.stopped);
        let want = all_state(&t);

        let mut ck = Checkpointer::new(dir.path()).unwrap();
        let mut t = Trainer::new(tiny_model(AttentionKind::VarsS, 1), full_recipe(2)).unwrap();
        let (first, out) = fit_losses(&mut t, &mut tiny_data(0), Some(&mut ck), Some(3));
        assert!(out.stopped);
        assert_eq!(
            out.position,
            Position {
                epoch: 0,
                step: 3,
                global_step: 3
            }
        );
        assert_eq!(first, reference[..3]);
        drop(t);

        let mut t = Trainer::new(tiny_model(AttentionKind::VarsS, 999), full_recipe(2)).unwrap();
        let path = t.resume(&ck, ResumePolicy::default()).unwrap().unwrap();
        assert!(path.ends_with("step-000000000003"));
        assert_eq!(
            t.position(),
            Position {
                epoch: 0,
                step: 3,
                global_step: 3
            }
        );
        let (rest, out) = fit_losses(&mut t, &mut tiny_data(0), None, None);
        assert_eq!(rest, reference[3..]);
        assert_eq!(out.epochs[0].epoch, 0);
        assert!(all_state(&t) == want, "final state differs after resume");
    });
}

#[test]
fn checkpoint_holds_everything_and_the_ema_loads_as_a_model() {
    pool(2).install(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut ck = Checkpointer::new(dir.path())
            .unwrap()
            .with_every_steps(2)
            .with_keep_last(2);
        let run = serde_json::json!({"model": "tiny", "attention": "vars_s"});
        let mut t = Trainer::new(tiny_model(AttentionKind::VarsS, 1), full_recipe(2))
            .unwrap()
            .with_run_info(run.clone());
        let mut saved = Vec::new();
        let mut cb = |ev: Progress<'_>| {
            if let Progress::Checkpoint { global_step, .. } = ev {
                saved.push(global_step);
            }
            Control::Continue
        };
        t.fit(
            &mut tiny_data(0),
            FitOptions {
                checkpoints: Some(&mut ck),
                progress: Some(&mut cb),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(saved, vec![2, 4, 6, 8]);
        let list: Vec<u64> = ck.list().unwrap().into_iter().map(|(s, _)| s).collect();
        assert_eq!(list, vec![6, 8], "keep_last = 2");
        let latest = ck.latest().unwrap().unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&latest)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "config.json",
                "ema.safetensors",
                "model.safetensors",
                "optimizer.safetensors",
                "provenance.json",
                "trainer.json"
            ]
        );
        let tf = read_trainer_file(&latest).unwrap();
        assert_eq!(
            tf.position,
            Position {
                epoch: 2,
                step: 0,
                global_step: 8
            }
        );
        assert_eq!((tf.rng.seed, tf.rng.global_step), (7, 8));
        assert_eq!(tf.steps_per_epoch, Some(4));
        let cfg = read_config(&latest).unwrap();
        assert_eq!(cfg.train, full_recipe(2));
        assert_eq!(cfg.run, run);
        let p = read_provenance(&latest).unwrap();
        assert_eq!(p.config_hash, config_hash(&cfg));
        assert!(p.config_hash.starts_with("fnv1a64:"));
        assert_eq!(p.threads, 2);
        assert!(!p.git_commit.is_empty() && p.machine.cpus > 0 && !p.machine.os.is_empty());
        assert_eq!(p.crates["vars-train"], env!("CARGO_PKG_VERSION"));
        // ema.safetensors is a model checkpoint under the official names.
        let mut m = tiny_model(AttentionKind::VarsS, 5);
        StateDict::<Ad>::load(latest.join("ema.safetensors"), &CpuDevice)
            .unwrap()
            .load_into(&mut m, true)
            .unwrap();
        assert_eq!(
            bits(&StateDict::from_model(&m).unwrap()),
            bits(t.ema().unwrap().state_dict())
        );
        // Nothing hidden is left behind.
        assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with('.')));
    });
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A save that fails before its commit leaves the previous checkpoint loadable and no temporary
/// directory; leftovers of a crashed save are removed by the next save.
#[test]
fn failed_or_interrupted_saves_keep_the_previous_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = full_recipe(1);
    c.mixup = None;
    let mut t = Trainer::new(tiny_model(AttentionKind::SelfAttention, 1), c.clone()).unwrap();
    let mut data = tiny_data(0);
    t.train_step(data.batch(0, 0).unwrap(), 4).unwrap();
    let mut ck = Checkpointer::new(dir.path()).unwrap();
    t.save_checkpoint(&mut ck).unwrap();
    let good = bits(&StateDict::from_model(t.model()).unwrap());

    t.train_step(data.batch(0, 1).unwrap(), 4).unwrap();
    let mut failing = Checkpointer::new(dir.path())
        .unwrap()
        .with_before_commit_hook(|_| Err(std::io::Error::other("disk full (simulated)")));
    let e = t.save_checkpoint(&mut failing).unwrap_err().to_string();
    assert!(
        e.contains("disk full") && e.contains("aborted before commit"),
        "{e}"
    );
    assert_eq!(entries(dir.path()), ["step-000000000001"]);

    // A crashed save (a temporary directory with a partial file) is ignored and cleaned up.
    let stale = dir.path().join(".tmp-step-000000000002-1-0");
    std::fs::create_dir(&stale).unwrap();
    std::fs::write(stale.join("model.safetensors"), b"partial").unwrap();
    assert_eq!(ck.list().unwrap().len(), 1);
    let mut fresh = Trainer::new(tiny_model(AttentionKind::SelfAttention, 9), c).unwrap();
    fresh.resume(&ck, ResumePolicy::default()).unwrap().unwrap();
    assert_eq!(fresh.position().global_step, 1);
    assert!(bits(&StateDict::from_model(fresh.model()).unwrap()) == good);
    t.save_checkpoint(&mut ck).unwrap();
    assert_eq!(
        entries(dir.path()),
        ["step-000000000001", "step-000000000002"]
    );
}

#[test]
fn resume_refuses_another_configuration_or_model() {
    let dir = tempfile::tempdir().unwrap();
    let mut ck = Checkpointer::new(dir.path()).unwrap();
    let mut t = Trainer::new(tiny_model(AttentionKind::VarsD, 1), full_recipe(1)).unwrap();
    t.train_step(tiny_data(0).batch(0, 0).unwrap(), 4).unwrap();
    t.save_checkpoint(&mut ck).unwrap();

    let mut other = full_recipe(1);
    other.schedule.base_lr = 1e-2;
    other.seed = 3;
    let mut t2 = Trainer::new(tiny_model(AttentionKind::VarsD, 1), other).unwrap();
    let e = t2
        .resume(&ck, ResumePolicy::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("train.schedule") && e.contains("train.seed") && e.contains("allow"),
        "{e}"
    );
    assert_eq!(t2.position().global_step, 0);
    t2.resume(
        &ck,
        ResumePolicy {
            allow_config_change: true,
        },
    )
    .unwrap();
    assert_eq!(t2.position().global_step, 1);

    // Another attention kind: the optimiser state names parameters the model lacks.
    let before =
        bits(&StateDict::from_model(&tiny_model(AttentionKind::SelfAttention, 1)).unwrap());
    let mut t3 = Trainer::new(tiny_model(AttentionKind::SelfAttention, 1), full_recipe(1)).unwrap();
    let e = t3
        .resume(&ck, ResumePolicy::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("does not match the model") && e.contains("learned_k"),
        "{e}"
    );
    assert_eq!(t3.position().global_step, 0);
    assert!(
        bits(&StateDict::from_model(t3.model()).unwrap()) == before,
        "model changed on a failed load"
    );
}

#[test]
fn metrics_log_has_one_line_per_epoch_and_drops_epochs_to_redo() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.jsonl");
    let mut log = MetricsLog::open(&path, 0).unwrap();
    let mut c = full_recipe(2);
    c.mixup = None;
    let mut t = Trainer::new(tiny_model(AttentionKind::Performer, 1), c).unwrap();
    let mut eval = tiny_data(1);
    t.fit(
        &mut tiny_data(0),
        FitOptions {
            metrics: Some(&mut log),
            eval: Some(&mut eval),
            ..Default::default()
        },
    )
    .unwrap();
    let lines = MetricsLog::read_all(&path).unwrap();
    assert_eq!(lines.len(), 2);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["kind"], "train_epoch");
        assert_eq!(l["epoch"], i);
        assert_eq!(l["samples"], 32);
        assert!(l["loss"].as_f64().unwrap() > 0.0);
        assert!((0.0..=1.0).contains(&l["accuracy"].as_f64().unwrap()));
        assert!(l["images_per_sec"].as_f64().unwrap() > 0.0);
        assert_eq!(l["eval"]["samples"], 32);
    }
    // A torn last line and the epochs to redo are dropped on resume.
    std::fs::write(
        &path,
        format!("{}\n{}\n{{\"epoch\": 2, \"lo", lines[0], lines[1]),
    )
    .unwrap();
    drop(MetricsLog::open(&path, 1).unwrap());
    assert_eq!(MetricsLog::read_all(&path).unwrap(), vec![lines[0].clone()]);
}

#[test]
fn errors_leave_the_run_intact() {
    let mut c = full_recipe(1);
    c.mixup = None;
    c.accum_steps = 2;
    let mut t = Trainer::new(tiny_model(AttentionKind::SelfAttention, 1), c.clone()).unwrap();
    let before = bits(&StateDict::from_model(t.model()).unwrap());
    let (x, y) = synthetic(6, 1);
    let odd = Batch {
        images: x.narrow(0, 0, 5).unwrap(),
        targets: Targets::Labels(y.narrow(0, 0, 5).unwrap()),
    };
    let e = t.train_step(odd, 4).unwrap_err();
    assert!(
        matches!(e, TrainError::Batch { .. }) && e.to_string().contains("micro-batches"),
        "{e}"
    );
    let short = Batch {
        images: x.clone(),
        targets: Targets::Labels(y.narrow(0, 0, 4).unwrap()),
    };
    assert!(t
        .train_step(short, 4)
        .unwrap_err()
        .to_string()
        .contains("targets for 6 images"));
    assert!(bits(&StateDict::from_model(t.model()).unwrap()) == before);
    assert_eq!(t.position().global_step, 0);

    // A NaN loss stops training (DeiT exits there), naming the step and the remedies.
    let probe = Probe {
        inner: tiny_model(AttentionKind::SelfAttention, 1),
        hook_calls: 0,
        nan: true,
    };
    let mut t = Trainer::new(probe, c.clone()).unwrap();
    let e = t.fit(&mut tiny_data(0), FitOptions::default()).unwrap_err();
    assert!(
        matches!(
            e,
            TrainError::NonFinite {
                what: "the loss",
                step: 0,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("clip"), "{e}");

    // Bad settings are refused up front.
    c.accum_steps = 0;
    let e = Trainer::new(tiny_model(AttentionKind::SelfAttention, 1), c)
        .err()
        .unwrap();
    assert!(e.to_string().contains("accum_steps"), "{e}");
    // A resumed run must use a source with the same number of steps per epoch.
    let mut t = Trainer::new(tiny_model(AttentionKind::SelfAttention, 1), full_recipe(1)).unwrap();
    t.fit(
        &mut tiny_data(0),
        FitOptions {
            max_global_steps: Some(1),
            ..Default::default()
        },
    )
    .unwrap();
    let (x, y) = synthetic(16, 3);
    let mut smaller = TensorBatches::new(x, y, 8, None).unwrap();
    let e = t
        .fit(&mut smaller, FitOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("4 steps per epoch") && e.contains("now has 2"),
        "{e}"
    );
}

#[test]
fn progress_events_and_stopping() {
    let mut t = Trainer::new(tiny_model(AttentionKind::VarsD, 1), full_recipe(2)).unwrap();
    let mut events = Vec::new();
    let mut cb = |ev: Progress<'_>| {
        events.push(match ev {
            Progress::EpochStart {
                epoch,
                first_step,
                steps_per_epoch,
            } => format!("start {epoch} {first_step}/{steps_per_epoch}"),
            Progress::Step(r) => format!("step {}.{}", r.epoch, r.step),
            Progress::EpochEnd(m) => format!("end {}", m.epoch),
            Progress::Checkpoint { global_step, .. } => format!("ckpt {global_step}"),
        });
        if events.len() == 8 {
            Control::Stop
        } else {
            Control::Continue
        }
    };
    let out = t
        .fit(
            &mut tiny_data(0),
            FitOptions {
                progress: Some(&mut cb),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        events,
        [
            "start 0 0/4",
            "step 0.0",
            "step 0.1",
            "step 0.2",
            "step 0.3",
            "end 0",
            "start 1 0/4",
            "step 1.0"
        ]
    );
    assert!(out.stopped);
    assert_eq!(
        out.position,
        Position {
            epoch: 1,
            step: 1,
            global_step: 5
        }
    );
    // Continuing picks up where it stopped.
    let out = t.fit(&mut tiny_data(0), FitOptions::default()).unwrap();
    assert_eq!(out.epochs.len(), 1);
    assert_eq!(out.epochs[0].steps, 4);
    assert_eq!(
        out.position,
        Position {
            epoch: 2,
            step: 0,
            global_step: 8
        }
    );
    // Evaluation of the trained model and of its EMA.
    let m = evaluate(t.model(), &mut tiny_data(1)).unwrap();
    assert_eq!(m.samples, 32);
    let ema = t.ema_model().unwrap().unwrap();
    assert!(evaluate(&ema, &mut tiny_data(1)).unwrap().loss.is_finite());
}

/// Steps run through `train_step` count: `fit` closes an epoch whose steps are all done and
/// carries on from there.
#[test]
fn fit_continues_from_manual_steps() {
    let mut c = full_recipe(2);
    c.mixup = None;
    let mut t = Trainer::new(tiny_model(AttentionKind::SelfAttention, 1), c).unwrap();
    let mut data = tiny_data(0);
    for i in 0..4 {
        t.train_step(data.batch(0, i).unwrap(), 4).unwrap();
    }
    assert_eq!(
        t.position(),
        Position {
            epoch: 0,
            step: 4,
            global_step: 4
        }
    );
    let out = t.fit(&mut data, FitOptions::default()).unwrap();
    assert_eq!(out.epochs.len(), 2);
    assert_eq!((out.epochs[0].epoch, out.epochs[0].steps), (0, 4));
    assert_eq!((out.epochs[1].epoch, out.epochs[1].steps), (1, 4));
    assert_eq!(
        out.position,
        Position {
            epoch: 2,
            step: 0,
            global_step: 8
        }
    );
}
