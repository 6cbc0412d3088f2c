//! mCE arithmetic (protocol §4) against hand-computed examples, incl. the AlexNet table.

use vars_data::corruptions::Corruption;
use vars_data::mce::{
    corruption_error, mce, mean_error, relative_corruption_error, relative_mce, report, Baseline,
    CorruptionErrors, ALEXNET_CLEAN_ERROR, ALEXNET_ERRORS,
};
use vars_data::Error;

fn flat(e: f64, clean: Option<f64>) -> CorruptionErrors {
    let mut m = CorruptionErrors::new();
    for c in Corruption::BENCHMARK {
        m.set(c, [e; 5]).unwrap();
    }
    m.clean = clean;
    m
}

#[test]
fn alexnet_table_is_the_protocols() {
    assert_eq!(ALEXNET_ERRORS.len(), 15);
    assert_eq!(ALEXNET_CLEAN_ERROR, 0.43478);
    let b = Baseline::alexnet();
    assert_eq!(b.mean_errors[&Corruption::GaussianNoise], 0.886428);
    assert_eq!(b.mean_errors[&Corruption::JpegCompression], 0.606500);
    // the order is the benchmark order
    for (i, (c, _)) in ALEXNET_ERRORS.iter().enumerate() {
        assert_eq!(*c, Corruption::BENCHMARK[i]);
    }
}

#[test]
fn alexnet_against_itself_is_100() {
    let mut m = CorruptionErrors::new()
        .with_clean(ALEXNET_CLEAN_ERROR)
        .unwrap();
    for (c, e) in ALEXNET_ERRORS {
        // severity errors averaging to the table value
        m.set(c, [e - 0.02, e - 0.01, e, e + 0.01, e + 0.02])
            .unwrap();
    }
    let b = Baseline::alexnet();
    assert!((mce(&m, &b).unwrap() - 1.0).abs() < 1e-12);
    assert!((relative_mce(&m, &b).unwrap() - 1.0).abs() < 1e-12);
}

#[test]
fn hand_computed_examples() {
    let b = Baseline::alexnet();
    // one corruption: errors 0.2..0.6 (mean 0.4) on Gaussian noise: CE = 0.4/0.886428
    let mut m = CorruptionErrors::new().with_clean(0.2).unwrap();
    m.set(Corruption::GaussianNoise, [0.2, 0.3, 0.4, 0.5, 0.6])
        .unwrap();
    assert!(
        (corruption_error(&m, &b, Corruption::GaussianNoise).unwrap() - 0.45124928364176226).abs()
            < 1e-15
    );
    // relative: (0.4 − 0.2)/(0.886428 − 0.43478)
    assert!(
        (relative_corruption_error(&m, &b, Corruption::GaussianNoise).unwrap()
            - 0.4428227292050447)
            .abs()
            < 1e-15
    );
    // a flat 50% error everywhere with 20% clean error (values computed by hand from the table)
    let m = flat(0.5, Some(0.2));
    assert!((mce(&m, &b).unwrap() - 0.6467257299919341).abs() < 1e-14);
    assert!((relative_mce(&m, &b).unwrap() - 0.9767733575866213).abs() < 1e-14);
    // unnormalised mean error (CIFAR-10-C): mean over 15 × 5
    let mut m = flat(0.1, None);
    m.set(Corruption::Fog, [0.1, 0.2, 0.3, 0.4, 0.5]).unwrap();
    assert!((mean_error(&m).unwrap() - (14.0 * 0.1 + 0.3) / 15.0).abs() < 1e-15);
}

#[test]
fn any_model_as_baseline() {
    // CE of a model against itself is 1; against a model with twice its errors, 0.5
    let m = flat(0.3, Some(0.1));
    let b = Baseline::from_errors("self-attention RVT-Ti", &m).unwrap();
    assert!((mce(&m, &b).unwrap() - 1.0).abs() < 1e-15);
    let worse = Baseline::from_errors("worse", &flat(0.6, Some(0.1))).unwrap();
    assert!((mce(&m, &worse).unwrap() - 0.5).abs() < 1e-15);
    // relative: (0.3 − 0.1)/(0.6 − 0.1) = 0.4
    assert!((relative_mce(&m, &worse).unwrap() - 0.4).abs() < 1e-15);
    let r = report(&m, Some(&worse)).unwrap();
    assert_eq!(r.rows.len(), 15);
    assert!((r.mce.unwrap() - 0.5).abs() < 1e-15 && (r.relative_mce.unwrap() - 0.4).abs() < 1e-15);
    assert!((r.mean_error - 0.3).abs() < 1e-15 && (r.mean_accuracy - 0.7).abs() < 1e-15);
    let r = report(&m, None).unwrap();
    assert!(r.mce.is_none() && r.relative_mce.is_none());
}

#[test]
fn text_round_trip() {
    let mut m = flat(0.25, Some(0.125));
    m.set(Corruption::Saturate, [0.1, 0.2, 0.3, 0.4, 0.5])
        .unwrap();
    let text = m.to_text();
    assert_eq!(CorruptionErrors::from_text(&text).unwrap(), m);
    let parsed =
        CorruptionErrors::from_text("# comment\nclean 0.2\nfog 0.1 0.2 0.3 0.4 0.5 # trailing\n")
            .unwrap();
    assert_eq!(parsed.clean, Some(0.2));
    assert_eq!(parsed.errors[&Corruption::Fog], [0.1, 0.2, 0.3, 0.4, 0.5]);
}

#[test]
fn bad_numbers_are_errors() {
    let b = Baseline::alexnet();
    // missing corruptions
    let mut m = CorruptionErrors::new();
    m.set(Corruption::Fog, [0.5; 5]).unwrap();
    let e = mce(&m, &b).unwrap_err();
    assert!(
        matches!(e, Error::Mce(_)) && e.to_string().contains("gaussian_noise"),
        "{e}"
    );
    // percentages instead of fractions
    assert!(m
        .set(Corruption::Fog, [50.0; 5])
        .unwrap_err()
        .to_string()
        .contains("divided by 100"));
    assert!(CorruptionErrors::new().with_clean(f64::NAN).is_err());
    // relative CE without clean errors
    assert!(relative_mce(&flat(0.5, None), &b).is_err());
    // a baseline that is no worse than clean, or has zero error
    let same = Baseline::from_errors("flat", &flat(0.2, Some(0.2))).unwrap();
    assert!(relative_mce(&flat(0.5, Some(0.1)), &same).is_err());
    let zero = Baseline::from_errors("perfect", &flat(0.0, None)).unwrap();
    assert!(mce(&flat(0.5, None), &zero).is_err());
    // malformed text
    assert!(CorruptionErrors::from_text("fog 0.1 0.2").is_err());
    assert!(CorruptionErrors::from_text("fogg 0.1 0.2 0.3 0.4 0.5").is_err());
    assert!(CorruptionErrors::from_text("clean x").is_err());
}
