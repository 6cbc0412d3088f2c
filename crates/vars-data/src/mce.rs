//! Corruption metrics (robustness protocol §4): per-corruption CE, mCE and relative mCE against a
//! baseline (AlexNet's table for ImageNet-C, or any model's saved errors), and the unnormalised
//! mean error used for CIFAR-10-C.
//!
//! All errors are top-1 error *fractions* in `[0, 1]`. CE and mCE come out as ratios (1.0 = the
//! baseline); papers print them ×100 ("mCE 52.3").
//!
//! - `CE_c = Σ_s E_{s,c} / Σ_s E^base_{s,c}` — with severity means this is `Ē_c / Ē^base_c`, which
//!   is why a baseline only needs its severity-averaged errors (AlexNet's are published so).
//! - `mCE = mean over the 15 benchmark corruptions of CE_c`.
//! - relative `CE_c = Σ_s (E_{s,c} − E_clean) / Σ_s (E^base_{s,c} − E^base_clean)
//!   = (Ē_c − E_clean)/(Ē^base_c − E^base_clean)`; relative mCE is its mean.
//! - CIFAR-10-C has no AlexNet reference: [`mean_error`] is the plain mean over 15 × 5; a CE
//!   against an in-project baseline model is a project choice and must be labelled as such.
//!
//! The VARS code computes `CE_c = (100 − acc_c)/(100·E^AlexNet_c)` from mean accuracies in %, which
//! is the same number.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::corruptions::Corruption;
use crate::error::{Error, Result};

/// AlexNet's clean top-1 error (1 − 0.56522, torchvision weights), protocol §4.
pub const ALEXNET_CLEAN_ERROR: f64 = 0.43478;

/// AlexNet's severity-averaged top-1 errors on ImageNet-C (protocol §4).
pub const ALEXNET_ERRORS: [(Corruption, f64); 15] = [
    (Corruption::GaussianNoise, 0.886428),
    (Corruption::ShotNoise, 0.894468),
    (Corruption::ImpulseNoise, 0.922640),
    (Corruption::DefocusBlur, 0.819880),
    (Corruption::GlassBlur, 0.826268),
    (Corruption::MotionBlur, 0.785948),
    (Corruption::ZoomBlur, 0.798360),
    (Corruption::Snow, 0.866816),
    (Corruption::Frost, 0.826572),
    (Corruption::Fog, 0.819324),
    (Corruption::Brightness, 0.564592),
    (Corruption::Contrast, 0.853204),
    (Corruption::ElasticTransform, 0.646056),
    (Corruption::Pixelate, 0.717840),
    (Corruption::JpegCompression, 0.606500),
];

fn check_fraction(v: f64, what: &str) -> Result<()> {
    if v.is_finite() && (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(Error::Mce(format!(
            "{what} = {v} is not an error fraction in [0, 1] (percentages must be divided by 100)"
        )))
    }
}

/// One model's top-1 errors: clean (optional) and per corruption × severity 1..=5.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CorruptionErrors {
    /// Clean top-1 error, needed for relative CE.
    pub clean: Option<f64>,
    /// Errors at severities 1..=5.
    pub errors: BTreeMap<Corruption, [f64; 5]>,
}

impl CorruptionErrors {
    /// No errors yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the clean error.
    pub fn with_clean(mut self, clean: f64) -> Result<Self> {
        check_fraction(clean, "clean error")?;
        self.clean = Some(clean);
        Ok(self)
    }

    /// Sets the five severity errors of `corruption`.
    pub fn set(&mut self, corruption: Corruption, errors: [f64; 5]) -> Result<()> {
        for (s, &e) in errors.iter().enumerate() {
            check_fraction(e, &format!("{corruption} severity {}", s + 1))?;
        }
        self.errors.insert(corruption, errors);
        Ok(())
    }

    /// The severity-averaged error of `corruption`.
    pub fn mean_error(&self, corruption: Corruption) -> Result<f64> {
        self.errors
            .get(&corruption)
            .map(|e| e.iter().sum::<f64>() / 5.0)
            .ok_or_else(|| Error::Mce(format!("no errors for {corruption}")))
    }

    /// Text form: one line per corruption, `name e1 e2 e3 e4 e5`, and `clean e`; `#` starts a
    /// comment. Round-trips through [`CorruptionErrors::from_text`].
    pub fn to_text(&self) -> String {
        let mut s = String::from("# top-1 error fractions: corruption, severities 1..5\n");
        if let Some(c) = self.clean {
            let _ = writeln!(s, "clean {c}");
        }
        for (c, e) in &self.errors {
            let _ = writeln!(
                s,
                "{} {} {} {} {} {}",
                c.name(),
                e[0],
                e[1],
                e[2],
                e[3],
                e[4]
            );
        }
        s
    }

    /// Parses [`CorruptionErrors::to_text`]'s format (any whitespace).
    pub fn from_text(text: &str) -> Result<Self> {
        let mut out = CorruptionErrors::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let name = parts.next().unwrap_or_default();
            let nums: Vec<f64> = parts
                .map(|p| {
                    p.parse::<f64>()
                        .map_err(|e| Error::Mce(format!("line {}: `{p}`: {e}", n + 1)))
                })
                .collect::<Result<_>>()?;
            if name == "clean" {
                if nums.len() != 1 {
                    return Err(Error::Mce(format!(
                        "line {}: `clean` takes one number",
                        n + 1
                    )));
                }
                out = out.with_clean(nums[0])?;
                continue;
            }
            let c = Corruption::from_name(name)
                .map_err(|e| Error::Mce(format!("line {}: {e}", n + 1)))?;
            let arr: [f64; 5] = nums.try_into().map_err(|v: Vec<f64>| {
                Error::Mce(format!(
                    "line {}: {name} has {} numbers, expected 5 (severities 1..5)",
                    n + 1,
                    v.len()
                ))
            })?;
            out.set(c, arr)?;
        }
        Ok(out)
    }
}

/// A baseline for CE: severity-averaged errors per corruption and (for relative CE) its clean
/// error.
#[derive(Debug, Clone, PartialEq)]
pub struct Baseline {
    /// Name printed in reports (e.g. `AlexNet`).
    pub name: String,
    /// Clean top-1 error.
    pub clean: Option<f64>,
    /// Severity-averaged top-1 error per corruption.
    pub mean_errors: BTreeMap<Corruption, f64>,
}

impl Baseline {
    /// AlexNet on ImageNet-C (protocol §4).
    pub fn alexnet() -> Self {
        Baseline {
            name: "AlexNet".into(),
            clean: Some(ALEXNET_CLEAN_ERROR),
            mean_errors: ALEXNET_ERRORS.into_iter().collect(),
        }
    }

    /// Any model's saved errors as a baseline (e.g. the self-attention model of the same size on
    /// the project's own corrupted sets: label such numbers as a project choice).
    pub fn from_errors(name: impl Into<String>, errors: &CorruptionErrors) -> Result<Self> {
        let mean_errors = errors
            .errors
            .keys()
            .map(|&c| Ok((c, errors.mean_error(c)?)))
            .collect::<Result<BTreeMap<_, _>>>()?;
        Ok(Baseline {
            name: name.into(),
            clean: errors.clean,
            mean_errors,
        })
    }

    fn mean(&self, c: Corruption) -> Result<f64> {
        self.mean_errors
            .get(&c)
            .copied()
            .ok_or_else(|| Error::Mce(format!("baseline {} has no errors for {c}", self.name)))
    }
}

/// `CE_c` of `model` against `baseline`.
pub fn corruption_error(
    model: &CorruptionErrors,
    baseline: &Baseline,
    c: Corruption,
) -> Result<f64> {
    let b = baseline.mean(c)?;
    if b <= 0.0 {
        return Err(Error::Mce(format!(
            "baseline {} has zero error on {c}: CE is undefined",
            baseline.name
        )));
    }
    Ok(model.mean_error(c)? / b)
}

/// Relative `CE_c`: `(Ē_c − E_clean)/(Ē^base_c − E^base_clean)`. Needs both clean errors and a
/// baseline that degrades under `c`.
pub fn relative_corruption_error(
    model: &CorruptionErrors,
    baseline: &Baseline,
    c: Corruption,
) -> Result<f64> {
    let clean = model
        .clean
        .ok_or_else(|| Error::Mce("relative CE needs the model's clean error".into()))?;
    let bclean = baseline.clean.ok_or_else(|| {
        Error::Mce(format!(
            "relative CE needs the clean error of baseline {}",
            baseline.name
        ))
    })?;
    let denom = baseline.mean(c)? - bclean;
    if denom <= 0.0 {
        return Err(Error::Mce(format!(
            "baseline {} is no worse on {c} than clean ({denom:+}): relative CE is undefined",
            baseline.name
        )));
    }
    Ok((model.mean_error(c)? - clean) / denom)
}

/// mCE over the 15 benchmark corruptions (a ratio; ×100 for the usual figure).
pub fn mce(model: &CorruptionErrors, baseline: &Baseline) -> Result<f64> {
    let mut s = 0.0;
    for c in Corruption::BENCHMARK {
        s += corruption_error(model, baseline, c)?;
    }
    Ok(s / 15.0)
}

/// Relative mCE over the 15 benchmark corruptions.
pub fn relative_mce(model: &CorruptionErrors, baseline: &Baseline) -> Result<f64> {
    let mut s = 0.0;
    for c in Corruption::BENCHMARK {
        s += relative_corruption_error(model, baseline, c)?;
    }
    Ok(s / 15.0)
}

/// The unnormalised mean error over the 15 benchmark corruptions × 5 severities (the usual
/// CIFAR-10-C figure).
pub fn mean_error(model: &CorruptionErrors) -> Result<f64> {
    let mut s = 0.0;
    for c in Corruption::BENCHMARK {
        s += model.mean_error(c)?;
    }
    Ok(s / 15.0)
}

/// One row of a [`Report`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRow {
    pub corruption: Corruption,
    /// Severity-averaged error.
    pub mean_error: f64,
    /// CE against the baseline, if one was given.
    pub ce: Option<f64>,
    /// Relative CE, if both clean errors are known.
    pub relative_ce: Option<f64>,
}

/// Everything §4 reports for one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub rows: Vec<ReportRow>,
    /// Unnormalised mean error over 15 × 5.
    pub mean_error: f64,
    /// Mean corruption accuracy `1 − mean_error` (what the VARS code also prints).
    pub mean_accuracy: f64,
    pub mce: Option<f64>,
    pub relative_mce: Option<f64>,
}

/// The full report over the 15 benchmark corruptions; CE columns when `baseline` is given,
/// relative CE when both clean errors are known as well.
pub fn report(model: &CorruptionErrors, baseline: Option<&Baseline>) -> Result<Report> {
    let mut rows = Vec::with_capacity(15);
    for c in Corruption::BENCHMARK {
        let ce = baseline
            .map(|b| corruption_error(model, b, c))
            .transpose()?;
        let relative_ce = match baseline {
            Some(b) if model.clean.is_some() && b.clean.is_some() => {
                Some(relative_corruption_error(model, b, c)?)
            }
            _ => None,
        };
        rows.push(ReportRow {
            corruption: c,
            mean_error: model.mean_error(c)?,
            ce,
            relative_ce,
        });
    }
    let mean_error = mean_error(model)?;
    let mce = baseline.map(|_| rows.iter().map(|r| r.ce.unwrap_or(0.0)).sum::<f64>() / 15.0);
    let relative_mce = rows
        .iter()
        .map(|r| r.relative_ce)
        .collect::<Option<Vec<f64>>>()
        .map(|v| v.iter().sum::<f64>() / 15.0);
    Ok(Report {
        rows,
        mean_error,
        mean_accuracy: 1.0 - mean_error,
        mce,
        relative_mce,
    })
}
