//! The batch loader and the augmentations: determinism (call order, thread count), shuffling,
//! coverage, repeated augmentation, augmentation invariants, normalisation.

use std::collections::HashMap;

use vars_data::datasets::{Dataset, ImageFolder, InMemory, Split};
use vars_data::pipeline::randaugment::{RandAugment, RAND_INCREASING_TRANSFORMS};
use vars_data::pipeline::transforms::{self, RandomErasing};
use vars_data::pipeline::{seed, Augment, ImageNetTrain, Loader, Normalize};
use vars_data::rng::Stream;
use vars_data::{io, Image};

/// `n` grey 8×8 images; image i has pixel (y, x) = (i + 8y + x) mod 256, label i mod 4.
fn synthetic(n: usize) -> InMemory {
    let pixels = (0..n * 64).map(|k| ((k / 64) + (k % 64)) as u8).collect();
    let labels = (0..n).map(|i| (i % 4) as i64).collect();
    InMemory::from_raw(
        pixels,
        (8, 8, 1),
        labels,
        (0..4).map(|i| i.to_string()).collect(),
    )
    .unwrap()
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

#[test]
fn batches_are_pure_functions_of_epoch_and_index() {
    let data = InMemory::fashion_mnist_embedded(Split::Test)
        .unwrap()
        .subset(&(0..96).collect::<Vec<_>>());
    let make = || {
        Loader::new(data.clone(), 16, 7)
            .channels(3)
            .augment(Augment::ImageNet { size: 32 })
            .normalize(Normalize::fashion_mnist())
            .repeated_augmentation(3)
    };
    let a = make();
    let b = make();
    assert_eq!(a.len(), 6);
    let forward: Vec<_> = (0..a.len()).map(|i| a.batch(1, i).unwrap()).collect();
    // reverse order, other epochs in between, on a 1-thread and a 2-thread pool
    let _ = b.batch(0, 3).unwrap();
    let _ = b.batch(5, 0).unwrap();
    for i in (0..b.len()).rev() {
        let one = pool(1).install(|| b.batch(1, i).unwrap());
        let two = pool(2).install(|| b.batch(1, i).unwrap());
        assert_eq!(one, forward[i], "batch {i}, 1 thread");
        assert_eq!(two, forward[i], "batch {i}, 2 threads");
    }
    // a clone (fresh order cache) serves the same batches
    assert_eq!(a.clone().batch(1, 2).unwrap(), forward[2]);
    let f = &forward[2];
    assert_eq!(f.shape, [16, 3, 32, 32]);
    assert!(f.images.iter().all(|v| v.is_finite()));
    // another epoch or seed differs
    assert_ne!(a.batch(2, 2).unwrap().images, f.images);
    let c = Loader::new(data, 16, 8)
        .channels(3)
        .augment(Augment::ImageNet { size: 32 })
        .normalize(Normalize::fashion_mnist());
    assert_ne!(c.batch(1, 2).unwrap().images, f.images);
}

#[test]
fn each_sample_once_per_epoch_and_shuffled_per_epoch() {
    let loader = Loader::new(synthetic(103), 10, 1);
    assert_eq!(loader.len(), 11);
    let mut orders = Vec::new();
    for epoch in 0..3 {
        let mut seen = Vec::new();
        for i in 0..loader.len() {
            let b = loader.batch(epoch, i).unwrap();
            assert_eq!(b.len(), if i == 10 { 3 } else { 10 });
            // the rows are the samples named in `indices`
            for (r, &idx) in b.indices.iter().enumerate() {
                assert_eq!(b.labels[r], (idx % 4) as i64);
                assert_eq!(b.image(r)[0], (idx % 256) as f32 / 255.0);
            }
            seen.extend(b.indices);
        }
        orders.push(seen.clone());
        seen.sort_unstable();
        assert_eq!(seen, (0..103).collect::<Vec<_>>(), "epoch {epoch}");
    }
    assert_ne!(orders[0], orders[1]);
    assert_ne!(orders[1], orders[2]);
    assert_ne!(orders[0], (0..103).collect::<Vec<_>>());
    assert_eq!(*loader.epoch_order(1), orders[1]);

    // drop_last, no shuffle
    let l = Loader::new(synthetic(103), 10, 1)
        .drop_last(true)
        .shuffle(false);
    assert_eq!(l.len(), 10);
    assert_eq!(l.batch(0, 3).unwrap().indices, (30..40).collect::<Vec<_>>());
    assert_eq!(*l.epoch_order(4), (0..103).collect::<Vec<_>>());
    assert!(l.batch(0, 10).is_err());
    assert!(Loader::new(synthetic(3), 0, 0).is_empty());
}

#[test]
fn repeated_augmentation_follows_ra_sampler() {
    let l = Loader::new(synthetic(600), 64, 2)
        .repeated_augmentation(3)
        .augment(Augment::Small { pad: 2, flip: true });
    assert_eq!(l.samples_per_epoch(), 512); // ⌊600/256⌋·256
    assert_eq!(l.len(), 8);
    let order = l.epoch_order(0);
    assert_eq!(order.len(), 512);
    // [a, a, a, b, b, b, ...]: 170 full triples and one pair, all distinct images
    for t in order.chunks(3) {
        assert!(t.iter().all(|&v| v == t[0]), "{t:?}");
    }
    let mut distinct: Vec<usize> = order.iter().copied().collect();
    distinct.dedup();
    assert_eq!(distinct.len(), 171);
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 171);
    assert_ne!(*l.epoch_order(1), *order);
    // the repeats of one image get independent augmentations
    let b = l.batch(0, 0).unwrap();
    let differing = (0..21)
        .filter(|t| b.image(3 * t) != b.image(3 * t + 1) || b.image(3 * t) != b.image(3 * t + 2))
        .count();
    assert!(differing >= 18, "{differing} of 21 triples differ");
    // small sets keep all their samples
    let small = Loader::new(synthetic(100), 10, 0).repeated_augmentation(3);
    assert_eq!(small.samples_per_epoch(), 100);
    let off = Loader::new(synthetic(600), 64, 2).repeated_augmentation(1);
    assert_eq!(off.samples_per_epoch(), 600);
}

fn grey_gradient(w: usize, h: usize) -> Image {
    Image::new(w, h, 1, (0..w * h).map(|k| (k * 5 % 251) as u8).collect()).unwrap()
}

#[test]
fn padded_crop_shifts_content_and_flip_mirrors() {
    let img = grey_gradient(8, 6);
    // shift: output (y, x) = input (y + top − pad, x + left − pad), zeros outside
    for seed in 0..50u64 {
        let (out, top, left) = transforms::padded_random_crop(&img, 3, &mut Stream::new(seed));
        assert!(top <= 6 && left <= 6);
        for y in 0..6 {
            for x in 0..8 {
                let (sy, sx) = (
                    y as isize + top as isize - 3,
                    x as isize + left as isize - 3,
                );
                let want = if (0..6).contains(&sy) && (0..8).contains(&sx) {
                    img.get(sy as usize, sx as usize, 0)
                } else {
                    0
                };
                assert_eq!(out.get(y, x, 0), want);
            }
        }
    }
    // flip
    let f = transforms::hflip(&img);
    for y in 0..6 {
        for x in 0..8 {
            assert_eq!(f.get(y, x, 0), img.get(y, 7 - x, 0));
        }
    }
    assert_eq!(transforms::hflip(&f), img);
    let rgb = img.to_rgb();
    assert_eq!(transforms::hflip(&rgb).to_grey(), f);

    // through the loader: every row is the original or its mirror, both occur
    let data = synthetic(64);
    let l = Loader::new(data.clone(), 64, 3).augment(Augment::Small { pad: 0, flip: true });
    let b = l.batch(0, 0).unwrap();
    let mut flipped = 0;
    for (r, &i) in b.indices.iter().enumerate() {
        let orig = data.get(i).unwrap().0;
        let as_f32 = |im: &Image| {
            im.data()
                .iter()
                .map(|&v| v as f32 / 255.0)
                .collect::<Vec<_>>()
        };
        if b.image(r) == as_f32(&transforms::hflip(&orig)).as_slice() {
            flipped += 1;
        } else {
            assert_eq!(b.image(r), as_f32(&orig).as_slice());
        }
    }
    assert!((16..=48).contains(&flipped), "{flipped} of 64 flipped");

    // padded crops through the loader: each row is a shift of its image by ≤ pad
    let l = Loader::new(data.clone(), 32, 4).augment(Augment::Small {
        pad: 2,
        flip: false,
    });
    let b = l.batch(0, 0).unwrap();
    let mut shifted = 0;
    for (r, &i) in b.indices.iter().enumerate() {
        let orig = data.get(i).unwrap().0;
        let ok = (0..5).any(|t| {
            (0..5).any(|s| {
                let want = transforms::shift_with_zeros(&orig, 2, t, s);
                let w: Vec<f32> = want.data().iter().map(|&v| v as f32 / 255.0).collect();
                if w == b.image(r) && (t, s) != (2, 2) {
                    shifted += 1;
                }
                w == b.image(r)
            })
        });
        assert!(ok, "row {r} is not a padded crop of sample {i}");
    }
    assert!(shifted > 20, "{shifted}");
}

#[test]
fn random_resized_crop_boxes_and_sizes() {
    let (w, h) = (120usize, 90usize);
    let mut areas = Vec::new();
    for seed in 0..400u64 {
        let b = transforms::random_resized_crop_box(
            w,
            h,
            (0.08, 1.0),
            (3.0 / 4.0, 4.0 / 3.0),
            &mut Stream::new(seed),
        );
        assert!(b.width >= 1 && b.height >= 1);
        assert!(b.left + b.width <= w && b.top + b.height <= h, "{b:?}");
        let area = (b.width * b.height) as f64 / (w * h) as f64;
        let aspect = b.width as f64 / b.height as f64;
        // rounding of the sides moves area and aspect slightly
        assert!((0.07..=1.0).contains(&area), "{b:?}");
        assert!(
            (0.70..=1.40).contains(&aspect) || (b.width, b.height) == (w, h),
            "{b:?}"
        );
        areas.push(area);
    }
    let mean = areas.iter().sum::<f64>() / areas.len() as f64;
    assert!((0.40..0.60).contains(&mean), "mean area fraction {mean}");
    // fallback: no try can fit, so the central crop clamped to the ratio range
    let b = transforms::random_resized_crop_box(
        1000,
        5,
        (0.9, 1.0),
        (3.0 / 4.0, 4.0 / 3.0),
        &mut Stream::new(1),
    );
    assert_eq!((b.top, b.left, b.height, b.width), (0, 496, 5, 7));
    // output size
    let img = Image::new(w, h, 3, (0..w * h * 3).map(|k| k as u8).collect()).unwrap();
    for seed in 0..10 {
        let out = transforms::random_resized_crop(
            &img,
            48,
            (0.08, 1.0),
            (0.75, 4.0 / 3.0),
            &mut Stream::new(seed),
        )
        .unwrap();
        assert_eq!((out.width(), out.height(), out.channels()), (48, 48, 3));
    }
    // evaluation: shorter side ⌊size/0.875⌋, centre crop
    assert_eq!(transforms::eval_resize_side(224), 256);
    assert_eq!(transforms::eval_resize_side(96), 109);
    let e = transforms::eval_resize_crop(&img, 64).unwrap();
    assert_eq!((e.width(), e.height()), (64, 64));
}

#[test]
fn random_erasing_fills_one_box() {
    let er = RandomErasing {
        probability: 1.0,
        ..RandomErasing::reference()
    };
    let (c, h, w) = (3, 40, 50);
    for s in 0..100u64 {
        let mut data = vec![0f32; c * h * w];
        let boxes = er.apply(&mut data, (c, h, w), &mut Stream::new(s), 1000 + s);
        assert!(boxes.len() <= 1);
        let Some(b) = boxes.first() else { continue };
        assert!(b.width < w && b.height < h && b.top + b.height <= h && b.left + b.width <= w);
        let frac = (b.width * b.height) as f64 / (h * w) as f64;
        assert!((0.01..=0.36).contains(&frac), "{b:?}");
        let mut vals = Vec::new();
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let v = data[(ch * h + y) * w + x];
                    let inside = (b.top..b.top + b.height).contains(&y)
                        && (b.left..b.left + b.width).contains(&x);
                    if inside {
                        vals.push(v as f64);
                    } else {
                        assert_eq!(v, 0.0);
                    }
                }
            }
        }
        // per-pixel N(0, 1) noise ("pixel" mode)
        if vals.len() > 200 {
            let m = vals.iter().sum::<f64>() / vals.len() as f64;
            let sd =
                (vals.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / vals.len() as f64).sqrt();
            assert!(m.abs() < 0.3 && (sd - 1.0).abs() < 0.3, "{m} {sd}");
        }
    }
    // p = 0.25 of images
    let er = RandomErasing::reference();
    let hits = (0..4000u64)
        .filter(|&s| {
            let mut d = vec![0f32; 3 * 16 * 16];
            !er.apply(&mut d, (3, 16, 16), &mut Stream::new(s), s)
                .is_empty()
        })
        .count();
    assert!((900..1100).contains(&hits), "{hits} of 4000 erased");
}

#[test]
fn rand_augment_ops_keep_shape_and_draw_timm_distributions() {
    let rgb = Image::new(
        20,
        14,
        3,
        (0..20 * 14 * 3).map(|k| (k * 13 % 256) as u8).collect(),
    )
    .unwrap();
    let grey = rgb.to_grey();
    for op in RAND_INCREASING_TRANSFORMS {
        for negate in [false, true] {
            let arg = op.level_arg(9.0, negate, 0.45);
            for img in [&rgb, &grey] {
                let out = op.apply(img, arg, &[124, 116, 104]);
                assert_eq!(
                    (out.width(), out.height(), out.channels()),
                    (img.width(), img.height(), img.channels()),
                    "{op:?}"
                );
            }
        }
    }
    // the draws: op choice uniform over 15, prob 0.5, magnitude ~ N(9, 0.5²) clipped, sign ±
    let ra = RandAugment::reference();
    let (mut counts, mut applied, mut mags, mut neg, mut signed) =
        (HashMap::new(), 0usize, Vec::new(), 0usize, 0usize);
    let n = 20_000u64;
    for s in 0..n {
        let draws = ra.draw(&mut Stream::new(s));
        assert_eq!(draws.len(), 2);
        for d in draws {
            *counts.entry(d.op).or_insert(0usize) += 1;
            if d.applied {
                applied += 1;
                assert!((0.0..=10.0).contains(&d.magnitude));
                mags.push(d.magnitude);
                if d.op.has_sign() {
                    signed += 1;
                    let pos = d.op.level_arg(d.magnitude, false, 0.45);
                    if d.arg != pos {
                        neg += 1;
                    }
                }
            }
        }
    }
    let total = 2 * n as usize;
    assert_eq!(counts.len(), 15);
    for (op, c) in &counts {
        let p = *c as f64 / total as f64;
        assert!((p - 1.0 / 15.0).abs() < 0.006, "{op:?}: {p}");
    }
    let pa = applied as f64 / total as f64;
    assert!((pa - 0.5).abs() < 0.01, "applied {pa}");
    let m = mags.iter().sum::<f64>() / mags.len() as f64;
    let sd = (mags.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / mags.len() as f64).sqrt();
    // N(9, 0.5²) clipped at 10 (= +2σ): mean 9 − 0.5·0.0085 = 8.9957, sd 0.5·0.97991 = 0.4900
    assert!(
        (m - 8.9957).abs() < 0.01 && (sd - 0.4900).abs() < 0.008,
        "magnitude {m} ± {sd}"
    );
    assert!(mags.iter().filter(|&&v| v == 10.0).count() > 0);
    let pn = neg as f64 / signed as f64;
    assert!((pn - 0.5).abs() < 0.02, "negated {pn}");
    // without noise the magnitude is exactly m
    let fixed = RandAugment::from_config("rand-m9-inc1").unwrap();
    for s in 0..100 {
        for d in fixed.draw(&mut Stream::new(s)) {
            assert!(!d.applied || d.magnitude == 9.0);
        }
    }
}

#[test]
fn normalisation_values() {
    let v = 73u8;
    let data =
        InMemory::from_raw(vec![v; 4 * 4 * 3], (4, 4, 3), vec![0], vec!["x".into()]).unwrap();
    let b = Loader::new(data.clone(), 1, 0)
        .normalize(Normalize::imagenet())
        .batch(0, 0)
        .unwrap();
    let n = Normalize::imagenet();
    for ch in 0..3 {
        let want = (v as f32 / 255.0 - n.mean[ch]) / n.std[ch];
        assert!(b.image(0)[ch * 16..(ch + 1) * 16]
            .iter()
            .all(|&x| x == want));
    }
    // plain /255
    let b = Loader::new(data.clone(), 1, 0).batch(0, 0).unwrap();
    assert!(b.images.iter().all(|&x| x == 73.0 / 255.0));
    // one value for all channels; grey replicated to 3 channels
    let grey = InMemory::from_raw(vec![v; 16], (4, 4, 1), vec![0], vec!["x".into()]).unwrap();
    let b = Loader::new(grey.clone(), 1, 0)
        .channels(3)
        .normalize(Normalize::fashion_mnist())
        .batch(0, 0)
        .unwrap();
    assert_eq!(b.shape, [1, 3, 4, 4]);
    let want = (73.0f32 / 255.0 - 0.2860) / 0.3530;
    assert!(b.images.iter().all(|&x| x == want));
    // RGB → grey with PIL's luma
    let b = Loader::new(data, 1, 0).channels(1).batch(0, 0).unwrap();
    assert_eq!(b.shape, [1, 1, 4, 4]);
    assert!(b.images.iter().all(|&x| x == 73.0 / 255.0));
    assert_eq!(vars_data::pipeline::pil::luma(255, 0, 0), 76);
    assert_eq!(vars_data::pipeline::pil::luma(10, 200, 30), 124);
    // mismatches are errors, not panics
    assert!(Loader::new(grey.clone(), 1, 0)
        .normalize(Normalize::imagenet())
        .batch(0, 0)
        .is_err());
    assert!(Loader::new(grey.clone(), 1, 0)
        .normalize(Normalize {
            mean: vec![0.5],
            std: vec![0.0]
        })
        .batch(0, 0)
        .is_err());
    assert!(Loader::new(grey, 1, 0).channels(2).batch(0, 0).is_err());
    assert_eq!(Normalize::imagenet().fill_u8(), vec![124, 116, 104]);
    assert_eq!(Normalize::fashion_mnist().fill_u8(), vec![73]);
}

#[test]
fn shapes_resize_and_eval_pipeline() {
    let data = synthetic(10);
    let l = Loader::new(data.clone(), 4, 0).resize(20);
    assert_eq!(l.output_shape(), Some((1, 20, 20)));
    assert_eq!(l.batch(0, 2).unwrap().shape, [2, 1, 20, 20]);
    let l = Loader::new(data.clone(), 4, 0)
        .channels(3)
        .augment(Augment::ImageNetEval { size: 6 });
    assert_eq!(l.output_shape(), Some((3, 6, 6)));
    assert_eq!(l.batch(0, 0).unwrap().shape, [4, 3, 6, 6]);
    assert!(!l.augmentation().is_random());
    // evaluation needs no random draws: same batch under any seed
    let l2 = Loader::new(data.clone(), 4, 99)
        .channels(3)
        .augment(Augment::ImageNetEval { size: 6 })
        .shuffle(false);
    let l1 = Loader::new(data.clone(), 4, 1)
        .channels(3)
        .augment(Augment::ImageNetEval { size: 6 })
        .shuffle(false);
    assert_eq!(l1.batch(0, 1).unwrap(), l2.batch(3, 1).unwrap());
    assert_eq!(
        Augment::ImageNet { size: 224 }.eval(),
        Augment::ImageNetEval { size: 224 }
    );
    assert_eq!(Augment::Small { pad: 4, flip: true }.eval(), Augment::None);
    // a custom ImageNet stack without RandAugment and erasing
    let cfg = ImageNetTrain {
        rand_augment: None,
        erasing: None,
        ..ImageNetTrain::reference(12)
    };
    let l = Loader::new(data, 5, 0).imagenet_train(cfg);
    assert_eq!(*l.augmentation(), Augment::ImageNet { size: 12 });
    let b = l.batch(0, 1).unwrap();
    assert_eq!(b.shape, [5, 1, 12, 12]);
    assert!(b.images.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn image_folder_batches_need_one_shape() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, (w, h)) in [(10, 8), (12, 12), (9, 14), (16, 10)]
        .into_iter()
        .enumerate()
    {
        let img = Image::new(w, h, 3, (0..w * h * 3).map(|k| (k + i) as u8).collect()).unwrap();
        let p = tmp.path().join(format!("c{}/{i}.png", i % 2));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        io::write_image(&p, &img, 95).unwrap();
    }
    let d = ImageFolder::open(tmp.path()).unwrap();
    let raw = Loader::new(&d, 4, 0);
    assert_eq!(raw.output_shape(), None);
    let e = raw.batch(0, 0).unwrap_err().to_string();
    assert!(e.contains("one shape"), "{e}");
    let train = Loader::new(&d, 4, 0)
        .augment(Augment::ImageNet { size: 8 })
        .normalize(Normalize::imagenet());
    assert_eq!(train.output_shape(), Some((3, 8, 8)));
    let b = train.batch(0, 0).unwrap();
    assert_eq!(b.shape, [4, 3, 8, 8]);
    assert!(b.images.iter().all(|v| v.is_finite()));
    let eval = Loader::new(&d, 3, 0).augment(Augment::ImageNetEval { size: 8 });
    assert_eq!(eval.batch(0, 1).unwrap().shape, [1, 3, 8, 8]);
}

#[test]
fn seeds_are_documented_functions() {
    // the loader's order is the documented permutation
    let l = Loader::new(synthetic(50), 8, 11);
    assert_eq!(
        *l.epoch_order(3),
        seed::permutation(50, seed::shuffle_seed(11, 3))
    );
}
