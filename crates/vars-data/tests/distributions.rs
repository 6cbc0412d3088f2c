//! The random corruptions against their distributional definitions (seeded, so the tolerances
//! are fixed numbers, not flaky): noise mean and variance, impulse fraction, shot-noise Poisson
//! variance; plus bit-identical seeded reruns.
//!
//! Outputs are 8-bit with truncation, so a value `v ∈ [0, 1]` comes back as `⌊255·v⌋`: the tests
//! add 0.5 before dividing by 255 (removes the −0.5/255 bias; adds 1/12 level² of variance).

use vars_data::corruptions::{corrupt, noise, Corruption, ParamSet};
use vars_data::Image;

const SIDE: usize = 256;

fn grey_level(v: u8) -> Image {
    Image::filled(SIDE, SIDE, 3, v).unwrap()
}

/// (mean, variance) of `(out + 0.5)/255 − x`.
fn moments(out: &Image, x: f64) -> (f64, f64) {
    let n = out.data().len() as f64;
    let d: Vec<f64> = out
        .data()
        .iter()
        .map(|&v| (v as f64 + 0.5) / 255.0 - x)
        .collect();
    let mean = d.iter().sum::<f64>() / n;
    let var = d.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var)
}

const Q: f64 = 1.0 / (12.0 * 255.0 * 255.0); // quantisation variance

#[test]
fn gaussian_noise_has_the_defined_mean_and_variance() {
    let x = 128.0 / 255.0;
    // severities where clipping at 0 and 1 is negligible (≥ 4.9 σ from the edges)
    for (set, s, std) in [
        (ParamSet::ImageNetC, 1, 0.08),
        (ParamSet::ImageNetC, 2, 0.12),
        (ParamSet::Cifar10C, 5, 0.10),
    ] {
        let out = corrupt(&grey_level(128), Corruption::GaussianNoise, s, set, 42).unwrap();
        let (m, v) = moments(&out, x);
        let n = out.data().len() as f64;
        assert!(m.abs() < 5.0 * std / n.sqrt(), "s{s}: mean {m}");
        let want = std * std + Q;
        // sd of a sample variance ≈ σ²·√(2/n)
        assert!(
            (v - want).abs() < 5.0 * want * (2.0 / n).sqrt(),
            "s{s}: var {v} vs {want}"
        );
    }
}

#[test]
fn speckle_noise_scales_with_the_pixel() {
    let lv = 100u8;
    let x = lv as f64 / 255.0;
    let std = 0.2; // ImageNet severity 2
    let out = corrupt(
        &grey_level(lv),
        Corruption::SpeckleNoise,
        2,
        ParamSet::ImageNetC,
        7,
    )
    .unwrap();
    let (m, v) = moments(&out, x);
    let n = out.data().len() as f64;
    let want = (x * std).powi(2) + Q;
    assert!(m.abs() < 5.0 * x * std / n.sqrt(), "mean {m}");
    assert!(
        (v - want).abs() < 5.0 * want * (2.0 / n).sqrt(),
        "var {v} vs {want}"
    );
}

#[test]
fn shot_noise_has_poisson_variance() {
    let x = 128.0 / 255.0;
    for (set, s, rate) in [
        (ParamSet::ImageNetC, 1, 60.0),
        (ParamSet::ImageNetC, 3, 12.0),
        (ParamSet::Cifar10C, 1, 500.0),
    ] {
        let out = corrupt(&grey_level(128), Corruption::ShotNoise, s, set, 9).unwrap();
        let n = out.data().len() as f64;
        // Poisson(x·c)/c: mean x, variance x/c; values above 1 are clipped: negligible here
        // except at c = 12 (P(k > 12 | λ = 6.02) ≈ 0.9%), so compare the variance loosely there
        let (m, v) = moments(&out, x);
        let want = x / rate + Q;
        let tol = if rate < 20.0 {
            0.05 * want
        } else {
            5.0 * want * (2.0 / n).sqrt()
        };
        assert!(
            m.abs() < 5.0 * (x / rate / n).sqrt() + if rate < 20.0 { 2e-3 } else { 0.0 },
            "c={rate}: mean {m}"
        );
        assert!((v - want).abs() < tol, "c={rate}: var {v} vs {want}");
    }
}

#[test]
fn impulse_noise_hits_the_defined_fraction() {
    for (set, s, amount) in [
        (ParamSet::ImageNetC, 1, 0.03),
        (ParamSet::ImageNetC, 5, 0.27),
        (ParamSet::Cifar10C, 1, 0.01),
    ] {
        let out = corrupt(&grey_level(128), Corruption::ImpulseNoise, s, set, 3).unwrap();
        let n = out.data().len() as f64;
        let salt = out.data().iter().filter(|&&v| v == 255).count() as f64;
        let pepper = out.data().iter().filter(|&&v| v == 0).count() as f64;
        let untouched = out.data().iter().filter(|&&v| v == 128).count() as f64;
        assert_eq!(
            salt + pepper + untouched,
            n,
            "only 0, 255 or the original value"
        );
        let frac = (salt + pepper) / n;
        let se = (amount * (1.0 - amount) / n).sqrt();
        assert!(
            (frac - amount).abs() < 5.0 * se,
            "s{s}: fraction {frac} vs {amount}"
        );
        let hits = salt + pepper;
        assert!(
            (salt / hits - 0.5).abs() < 5.0 * (0.25 / hits).sqrt(),
            "s{s}: salt share {}",
            salt / hits
        );
    }
}

#[test]
fn noise_is_independent_per_element() {
    // neighbouring elements of a Gaussian-noise image are uncorrelated
    let img = grey_level(128);
    let out = noise::gaussian_noise(&img, 0.1, 1);
    let d: Vec<f64> = out.data().iter().map(|&v| v as f64 - 128.0).collect();
    let n = d.len() - 1;
    let mean = d.iter().sum::<f64>() / d.len() as f64;
    let var = d.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d.len() as f64;
    let cov = (0..n)
        .map(|i| (d[i] - mean) * (d[i + 1] - mean))
        .sum::<f64>()
        / n as f64;
    assert!(
        (cov / var).abs() < 5.0 / (n as f64).sqrt(),
        "lag-1 correlation {}",
        cov / var
    );
}

#[test]
fn seeded_reruns_are_bit_identical_and_seeds_decorrelate() {
    let img = grey_level(90);
    for c in Corruption::all().filter(|c| c.is_random()) {
        let a = corrupt(&img, c, 4, ParamSet::Cifar10C, 1234).unwrap();
        assert_eq!(
            a,
            corrupt(&img, c, 4, ParamSet::Cifar10C, 1234).unwrap(),
            "{c}"
        );
    }
    // image_seed: different images of a data set get different noise
    let s0 = vars_data::rng::image_seed(0, Corruption::GaussianNoise, 1, 0);
    let s1 = vars_data::rng::image_seed(0, Corruption::GaussianNoise, 1, 1);
    let a = corrupt(&img, Corruption::GaussianNoise, 1, ParamSet::Cifar10C, s0).unwrap();
    let b = corrupt(&img, Corruption::GaussianNoise, 1, ParamSet::Cifar10C, s1).unwrap();
    let same = a
        .data()
        .iter()
        .zip(b.data())
        .filter(|(x, y)| x == y)
        .count() as f64
        / a.data().len() as f64;
    assert!(same < 0.2, "{same}");
}
