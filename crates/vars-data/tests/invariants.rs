//! Invariants of every corruption: shape, channel count and range kept; seeded reruns
//! bit-identical; the seed matters exactly for the random ones; clear errors for unknown names,
//! severities outside 1–5 and unreadable images; monotone damage where the definition is
//! monotone (protocol quirk 11).

use std::path::Path;

use vars_data::corruptions::{apply, corrupt, Corruption, ParamSet, Params, SpatterMode};
use vars_data::io::read_image;
use vars_data::{Error, Image};

fn photo(name: &str) -> Image {
    read_image(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden/base")
            .join(name),
    )
    .unwrap()
}

/// A deterministic test pattern with gradients, edges and colour.
fn pattern(w: usize, h: usize, c: usize) -> Image {
    let mut d = Vec::with_capacity(w * h * c);
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                let v =
                    (x * 255 / w.max(1) + ch * 60 + if (x / 4 + y / 4) % 2 == 0 { 40 } else { 0 })
                        % 256;
                d.push(((v + y * 3) % 256) as u8);
            }
        }
    }
    Image::new(w, h, c, d).unwrap()
}

#[test]
fn every_corruption_keeps_shape_and_is_reproducible() {
    let images = [
        pattern(32, 32, 3),
        pattern(28, 28, 1),
        pattern(40, 24, 3),
        pattern(9, 13, 1),
    ];
    for img in &images {
        for set in [ParamSet::ImageNetC, ParamSet::Cifar10C] {
            for c in Corruption::all() {
                for s in 1..=5u8 {
                    let a = corrupt(img, c, s, set, 11)
                        .unwrap_or_else(|e| panic!("{c} s{s} {img:?}: {e}"));
                    assert_eq!(
                        (a.width(), a.height(), a.channels()),
                        (img.width(), img.height(), img.channels()),
                        "{c} s{s}"
                    );
                    let b = corrupt(img, c, s, set, 11).unwrap();
                    assert_eq!(a, b, "{c} s{s} {img:?}: rerun with the same seed differs");
                    let other = corrupt(img, c, s, set, 12).unwrap();
                    if !c.is_random() {
                        assert_eq!(a, other, "{c} is deterministic but depends on the seed");
                    }
                }
            }
        }
    }
}

#[test]
fn random_corruptions_depend_on_the_seed() {
    let img = photo("china_32.png");
    for c in Corruption::all().filter(|c| c.is_random()) {
        for set in [ParamSet::ImageNetC, ParamSet::Cifar10C] {
            // CIFAR elastic at severity 1 has a zero displacement field but a random affine;
            // every random corruption must change with the seed at severity 3
            let a = corrupt(&img, c, 3, set, 1).unwrap();
            let b = corrupt(&img, c, 3, set, 2).unwrap();
            assert_ne!(a, b, "{c} ({set:?}) ignores its seed");
        }
    }
}

#[test]
fn extreme_images_stay_in_range() {
    // all-black and all-white images through every corruption: still valid u8 images of the
    // same shape (the u8 type guarantees [0, 255]; this guards against NaN/overflow paths)
    for v in [0u8, 255] {
        for ch in [1, 3] {
            let img = Image::filled(33, 31, ch, v).unwrap();
            for c in Corruption::all() {
                for s in [1, 5] {
                    let out = corrupt(&img, c, s, ParamSet::Cifar10C, 3).unwrap();
                    assert_eq!(out.data().len(), img.data().len(), "{c}");
                }
            }
        }
    }
    // a 1×1 and a 2×2 image do not break anything either
    for (w, h) in [(1, 1), (2, 2), (1, 7)] {
        let img = pattern(w, h, 3);
        for c in Corruption::all() {
            assert!(
                corrupt(&img, c, 5, ParamSet::ImageNetC, 0).is_ok(),
                "{c} on {w}x{h}"
            );
        }
    }
}

#[test]
fn grey_images_follow_the_grey_rule() {
    let grey = pattern(32, 32, 1);
    let rgb = grey.to_rgb();
    // channel-symmetric deterministic corruptions: grey result == any channel of the RGB result
    for c in [
        Corruption::Contrast,
        Corruption::DefocusBlur,
        Corruption::ZoomBlur,
        Corruption::Pixelate,
        Corruption::GaussianBlur,
        Corruption::Brightness,
    ] {
        for s in 1..=5 {
            let g = corrupt(&grey, c, s, ParamSet::Cifar10C, 0).unwrap();
            let r = corrupt(&rgb, c, s, ParamSet::Cifar10C, 0).unwrap();
            let r0: Vec<u8> = r.data().iter().step_by(3).copied().collect();
            assert_eq!(g.data(), &r0[..], "{c} s{s}");
        }
    }
    // saturate on grey (S = 0): desaturation keeps it unchanged
    let g = corrupt(&grey, Corruption::Saturate, 1, ParamSet::Cifar10C, 0).unwrap();
    assert_eq!(g, grey);
}

#[test]
fn errors_are_clear() {
    let img = pattern(8, 8, 3);
    let e = Corruption::from_name("fogg").unwrap_err();
    assert!(
        matches!(e, Error::UnknownCorruption { .. }) && e.to_string().contains("gaussian_noise"),
        "{e}"
    );
    assert_eq!(
        Corruption::from_name("Zoom-Blur").unwrap(),
        Corruption::ZoomBlur
    );
    for s in [0u8, 6, 255] {
        let e = corrupt(&img, Corruption::Fog, s, ParamSet::Cifar10C, 0).unwrap_err();
        assert!(
            matches!(e, Error::Severity(_)) && e.to_string().contains("1 to 5"),
            "{e}"
        );
    }
    assert!(matches!(
        ParamSet::from_name("mnist"),
        Err(Error::UnknownParamSet(_))
    ));
    // unreadable images: missing file, garbage bytes
    let dir = tempfile::tempdir().unwrap();
    let e = read_image(dir.path().join("missing.png")).unwrap_err();
    assert!(
        matches!(e, Error::Io { .. }) && e.to_string().contains("missing.png"),
        "{e}"
    );
    let bad = dir.path().join("bad.jpg");
    std::fs::write(&bad, b"definitely not a jpeg").unwrap();
    let e = read_image(&bad).unwrap_err();
    assert!(
        matches!(e, Error::Decode { .. }) && e.to_string().contains("bad.jpg"),
        "{e}"
    );
    // invalid images and parameters
    assert!(Image::new(4, 4, 2, vec![0; 32]).is_err());
    assert!(Image::new(4, 4, 3, vec![0; 47]).is_err());
    assert!(Image::new(0, 4, 3, vec![]).is_err());
    let bad_params = [
        Params::GaussianNoise { std: f64::NAN },
        Params::ShotNoise { rate: 0.0 },
        Params::ImpulseNoise { amount: 1.5 },
        Params::Pixelate { factor: 0.0 },
        Params::JpegCompression { quality: 0 },
        Params::ZoomBlur {
            step: 0.01,
            count: 0,
        },
        Params::Spatter {
            mean: 0.6,
            std: -1.0,
            sigma: 1.0,
            threshold: 0.6,
            intensity: 0.5,
            mode: SpatterMode::Mud,
        },
    ];
    for p in bad_params {
        let e = apply(&img, &p, 32, 0).unwrap_err();
        assert!(matches!(e, Error::InvalidParameter { .. }), "{p:?}: {e}");
    }
    assert!(apply(&img, &Params::Contrast { factor: 0.5 }, 0, 0).is_err());
}

fn damage(a: &Image, b: &Image) -> f64 {
    a.data()
        .iter()
        .zip(b.data())
        .map(|(&x, &y)| x.abs_diff(y) as f64)
        .sum::<f64>()
        / a.data().len() as f64
}

#[test]
fn damage_grows_with_severity_where_the_definition_is_monotone() {
    let cases = [
        ("china_32.png", ParamSet::Cifar10C),
        ("flower_32.png", ParamSet::Cifar10C),
        ("flower_32.png", ParamSet::ImageNetC),
    ];
    for c in Corruption::all() {
        let mut row = [0.0f64; 5];
        for (name, set) in cases {
            let img = photo(name);
            for s in 1..=5u8 {
                // the same seed at every severity: the same draws, scaled up
                row[s as usize - 1] += damage(&img, &corrupt(&img, c, s, set, 5).unwrap());
            }
        }
        let monotone = row
            .windows(2)
            .all(|w| w[1] >= w[0] - 0.25 * cases.len() as f64);
        if c.is_monotone() {
            assert!(monotone, "{c}: damage by severity {row:?}");
            assert!(
                row[4] > row[0],
                "{c}: no more damage at severity 5 than at 1: {row:?}"
            );
        }
    }
    // quirk 11 itself: saturate is not monotone on a colourful photo
    let img = photo("flower_32.png");
    let d: Vec<f64> = (1..=5)
        .map(|s| {
            damage(
                &img,
                &corrupt(&img, Corruption::Saturate, s, ParamSet::Cifar10C, 0).unwrap(),
            )
        })
        .collect();
    assert!(d.windows(2).any(|w| w[1] < w[0]), "{d:?}");
}
