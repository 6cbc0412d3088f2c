//! The `vars` binary end to end: `info`, `demo --quick`, `train`/`eval`/resume, `convert`,
//! `parity`, `--device`, and the error messages of bad flags and missing data. Kept fast (tiny
//! models, a few hundred images).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn vars(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vars"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run vars")
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn ok(o: &Output) -> (String, String) {
    let (out, err) = text(o);
    assert!(o.status.success(), "failed: {out}\n{err}");
    (out, err)
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn info_counts_parameters_and_macs() {
    // vars-spec §5: trainable counts exactly, GMACs per image within 2%
    for (attention, trainable, frozen, gmac) in [
        ("self-att", 8_646_376u64, 0u64, 1.28),
        ("perf", 8_646_376, 172_032, 1.41),
        ("vars_d", 8_029_312, 172_116, 1.28),
        ("vars_sd", 9_004_672, 172_116, 1.96),
    ] {
        let o = vars(&[
            "info",
            "--model",
            "rvt_tiny",
            "--attention",
            attention,
            "--json",
        ]);
        let (out, _) = ok(&o);
        let v = json(&out);
        assert_eq!(v["trainable"].as_u64(), Some(trainable), "{attention}");
        assert_eq!(v["frozen"].as_u64(), Some(frozen), "{attention}");
        let mac = v["mac_per_image"].as_f64().unwrap() / 1e9;
        assert!((mac / gmac - 1.0).abs() < 0.02, "{attention}: {mac} GMAC");
        assert_eq!(
            v["flop_per_image"].as_u64().unwrap(),
            2 * v["mac_per_image"].as_u64().unwrap()
        );
        // per-layer rows add up
        let rows = v["layers"].as_array().unwrap();
        assert_eq!(rows.len(), 1 + 10 + 1 + 2 + 1);
        let sum: u64 = rows.iter().map(|r| r["trainable"].as_u64().unwrap()).sum();
        assert_eq!(sum, trainable);
    }
    // the table labels MAC and FLOP
    let (out, _) = ok(&vars(&[
        "info",
        "--model",
        "rvt_tiny",
        "--attention",
        "self-att",
    ]));
    assert!(out.contains("FLOP = 2·MAC"), "{out}");
    assert!(out.contains("8,646,376"), "{out}");
    assert!(out.contains("transformers.1.blocks.1"), "{out}");
}

#[test]
fn demo_quick_writes_report_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let o = vars(&[
        "demo",
        "--quick",
        "--test-images",
        "100",
        "--out",
        out.to_str().unwrap(),
        "--threads",
        "2",
    ]);
    let (stdout, stderr) = ok(&o);
    assert!(
        stderr.contains("under 5 minutes on 2 CPU cores"),
        "{stderr}"
    );
    for model in ["self-attention", "VARS-D", "no attention"] {
        assert!(stdout.contains(model), "{stdout}");
        assert!(stderr.contains(&format!("{model}: ")), "{stderr}");
    }
    assert!(
        stdout.contains("σ=0.04") && stdout.contains("noise mean"),
        "{stdout}"
    );
    let report = json(&std::fs::read_to_string(out.join("report.json")).unwrap());
    let summary = report["summary"].as_array().unwrap();
    assert_eq!(summary.len(), 3);
    for s in summary {
        assert_eq!(s["noise"].as_array().unwrap().len(), 5);
        let clean = s["clean"][0].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&clean));
    }
    assert_eq!(
        report["noise_std"],
        serde_json::json!([0.04, 0.06, 0.08, 0.09, 0.1])
    );
    // same architecture: the ablated twin has fewer parameters, the other two similar counts
    let params: Vec<u64> = summary
        .iter()
        .map(|s| s["trainable_parameters"].as_u64().unwrap())
        .collect();
    assert!(params[2] < params[0] && params[2] < params[1], "{params:?}");
    for p in ["loss.png", "accuracy.png", "robustness.png"] {
        let bytes = std::fs::read(out.join(p)).unwrap();
        assert_eq!(&bytes[1..4], b"PNG", "{p}");
    }
    // per-model runs can be evaluated again
    let (ev, _) = ok(&vars(&[
        "eval",
        out.join("seed-0/vars_d").to_str().unwrap(),
        "--test-images",
        "100",
        "--severities",
        "5",
    ]));
    assert!(
        ev.contains("clean: accuracy") && ev.contains("gaussian_noise: s5"),
        "{ev}"
    );
}

#[test]
fn train_eval_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = out.to_str().unwrap();
    let common = [
        "--train-images",
        "96",
        "--test-images",
        "50",
        "--batch",
        "32",
        "--depth",
        "1",
        "--heads",
        "1",
        "--lr",
        "1e-3",
        "--quiet",
    ];
    let mut args = vec![
        "train",
        "--attention",
        "vars_d",
        "--epochs",
        "1",
        "--out",
        o,
    ];
    args.extend(common);
    let (stdout, stderr) = ok(&vars(&args));
    assert!(stdout.contains("final test accuracy"), "{stdout}");
    assert!(stderr.contains("params trainable"), "{stderr}");
    for f in [
        "metrics.jsonl",
        "loss.png",
        "accuracy.png",
        "run.json",
        "model.safetensors",
        "best.safetensors",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let log = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 1);
    assert!(json(log.lines().next().unwrap())["eval"]["accuracy"].is_number());
    // a second run into the same folder is refused, with what to do
    let (_, err) = text(&vars(&args));
    assert!(err.contains("--resume"), "{err}");
    // resume and extend to 2 epochs: one more metrics line
    ok(&vars(&[
        "train", "--resume", o, "--epochs", "2", "--quiet", "--device", "cpu",
    ]));
    let log = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let epochs: Vec<u64> = log
        .lines()
        .map(|l| json(l)["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs, [0, 1]);
    // eval reads run.json
    let (ev, _) = ok(&vars(&[
        "eval",
        o,
        "--weights",
        "final",
        "--test-images",
        "50",
        "--corruptions",
        "gaussian_noise,contrast",
        "--severities",
        "1,5",
        "--device",
        "cpu",
    ]));
    assert!(
        ev.contains("gaussian_noise: s1") && ev.contains("contrast: s1"),
        "{ev}"
    );
    // a bare safetensors file needs the model flags
    let (_, err) = text(&vars(&[
        "eval",
        out.join("model.safetensors").to_str().unwrap(),
    ]));
    assert!(err.contains("--model"), "{err}");
    // with them it loads strictly
    let (ev, _) = ok(&vars(&[
        "eval",
        out.join("model.safetensors").to_str().unwrap(),
        "--model",
        "small",
        "--attention",
        "vars_d",
        "--depth",
        "1",
        "--heads",
        "1",
        "--test-images",
        "50",
        "--corruptions",
        "none",
    ]));
    assert!(ev.contains("clean: accuracy"), "{ev}");
    // and says what is wrong when the model does not match
    let o = vars(&[
        "eval",
        out.join("model.safetensors").to_str().unwrap(),
        "--model",
        "small",
        "--attention",
        "self-att",
        "--depth",
        "1",
        "--heads",
        "1",
    ]);
    assert!(!o.status.success() && text(&o).1.contains("does not match"));
}

#[test]
fn convert_official_pth() {
    let dir = tempfile::tempdir().unwrap();
    let pth = root().join("fixtures/official/model_vars_d.pth");
    let dst = dir.path().join("m.safetensors");
    let (out, err) = ok(&vars(&[
        "convert",
        pth.to_str().unwrap(),
        dst.to_str().unwrap(),
        "--feature-norm",
        "on",
    ]));
    assert!(
        out.contains("wrote") && out.contains("vars.feature_norm = on"),
        "{out}"
    );
    assert!(!err.contains("warning"), "{err}");
    assert!(dst.is_file());
    // without the mode: converted, with a warning on stderr
    let dst2 = dir.path().join("m2.safetensors");
    let (_, err) = ok(&vars(&[
        "convert",
        pth.to_str().unwrap(),
        dst2.to_str().unwrap(),
    ]));
    assert!(err.contains("warning:"), "{err}");
    // bad mode, missing file
    let (_, err) = text(&vars(&[
        "convert",
        pth.to_str().unwrap(),
        dst2.to_str().unwrap(),
        "--feature-norm",
        "maybe",
    ]));
    assert!(err.contains("use `on`"), "{err}");
    let o = vars(&["convert", "/nonexistent.pth", dst2.to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).1.contains("/nonexistent.pth"));
}

#[test]
fn parity_on_the_official_fixtures() {
    let fixtures = root().join("fixtures/official");
    let o = vars(&[
        "parity",
        fixtures.to_str().unwrap(),
        "--only",
        "block_self_att",
        "--device",
        "cpu",
    ]);
    let (out, _) = ok(&o);
    assert!(out.contains("all 1 fixtures passed"), "{out}");
    // input error: exit 2
    let o = vars(&["parity", "/nonexistent-fixtures"]);
    assert_eq!(o.status.code(), Some(2));
    // a failing tolerance: exit 1
    let o = vars(&[
        "parity",
        fixtures.to_str().unwrap(),
        "--only",
        "block_self_att",
        "--forward-tol",
        "0",
        "--grad-tol",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(1), "{:?}", text(&o));
    assert!(text(&o).0.contains("FAILED: block_self_att"));
}

#[test]
fn user_errors_are_one_readable_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x");
    let o = out.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["train", "--data", "mnist", "--out", o],
            "unknown data source `mnist`",
        ),
        (
            vec!["train", "--data", "fashion-mnist:/nonexistent", "--out", o],
            "cannot open --data fashion-mnist:/nonexistent",
        ),
        (
            vec![
                "train",
                "--data",
                "idx:/nope-images,/nope-labels",
                "--out",
                o,
            ],
            "/nope-images",
        ),
        (
            vec!["train", "--model", "rvt_huge", "--out", o],
            "unknown model `rvt_huge`",
        ),
        (
            vec!["train", "--attention", "linear", "--out", o],
            "unknown attention `linear`",
        ),
        (vec!["train", "--epochs", "0", "--out", o], "epochs = 0"),
        (
            vec!["train", "--augment", "heavy", "--out", o],
            "--augment heavy",
        ),
        (
            vec![
                "train",
                "--model",
                "rvt_tiny",
                "--attention",
                "vars_sd",
                "--image-size",
                "112",
                "--out",
                o,
            ],
            "resolution-locked",
        ),
        (
            vec!["train", "--resume", "/nonexistent-run"],
            "no checkpoint under",
        ),
        (vec!["eval", "/nonexistent-run"], "does not exist"),
        (
            vec!["info", "--model", "small", "--heads", "0"],
            "invalid configuration",
        ),
        (
            vec!["demo", "--models", "linear", "--out", o],
            "unknown model `linear`",
        ),
        (vec!["demo", "--threads", "0", "--out", o], "--threads 0"),
    ];
    for (args, needle) in cases {
        let o = vars(&args);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{err}"
        );
    }
    // clap's own usage errors: exit 2 with a hint
    let o = vars(&["train", "--epochs", "many"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("invalid value 'many'"));
}

#[test]
fn help_is_complete() {
    let (out, _) = ok(&vars(&["--help"]));
    for sub in [
        "train", "eval", "info", "demo", "parity", "convert", "corrupt", "make-c",
    ] {
        assert!(out.contains(sub), "{sub}: {out}");
    }
    for (sub, flags) in [
        (
            "train",
            &[
                "--model",
                "--attention",
                "--data",
                "--epochs",
                "--batch",
                "--lr",
                "--warmup",
                "--weight-decay",
                "--label-smoothing",
                "--mixup",
                "--cutmix",
                "--ema",
                "--accum",
                "--clip",
                "--seed",
                "--threads",
                "--out",
                "--resume",
            ][..],
        ),
        (
            "eval",
            &["--weights", "--corruptions", "--severities", "--data"][..],
        ),
        ("info", &["--model", "--attention", "--json"][..]),
        ("demo", &["--seeds", "--out", "--quick", "--threads"][..]),
        ("parity", &["--only", "--f64"][..]),
        ("convert", &["--feature-norm"][..]),
    ] {
        let (out, _) = ok(&vars(&[sub, "--help"]));
        for f in flags {
            assert!(out.contains(f), "{sub} --help lacks {f}");
        }
        assert!(out.contains("Examples:"), "{sub}");
    }
}

/// One cheap invocation per command that runs a model, with `--device D` appended; every one
/// fails (or would start work) right after opening the device.
fn device_cases(dir: &Path, device: &str) -> Vec<(Vec<String>, i32)> {
    let out = dir.join("d").to_string_lossy().into_owned();
    let fixtures = root()
        .join("fixtures/official")
        .to_string_lossy()
        .into_owned();
    let cases: [(&[&str], i32); 4] = [
        (&["train", "--quiet", "--out", &out], 1),
        (&["eval", "/nonexistent-run"], 1),
        (&["demo", "--quick", "--quiet", "--out", &out], 1),
        // parity: an unavailable device is an input error
        (&["parity", &fixtures, "--only", "block_self_att"], 2),
    ];
    cases
        .iter()
        .map(|(args, code)| {
            let mut v: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            v.extend(["--device".to_string(), device.to_string()]);
            (v, *code)
        })
        .collect()
}

fn run_strings(args: &[String]) -> Output {
    vars(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn bad_device_values_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["tpu", "cuda:x", "cuda:", "gpu0"] {
        for (args, _) in device_cases(dir.path(), bad) {
            let o = run_strings(&args);
            let (_, err) = text(&o);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
            assert!(
                err.contains(&format!("invalid value '{bad}'")) && err.contains("--device"),
                "{args:?}: {err}"
            );
            assert!(
                err.contains("cpu") && err.contains("cuda:N"),
                "the accepted forms: {err}"
            );
            assert!(!err.contains("panicked"), "{err}");
        }
    }
    // --help lists the flag and its forms
    for sub in ["train", "eval", "demo", "parity"] {
        let (out, _) = ok(&vars(&[sub, "--help"]));
        assert!(
            out.contains("--device") && out.contains("cuda:N"),
            "{sub}: {out}"
        );
    }
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_without_the_feature_says_how_to_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    for device in ["cuda", "cuda:0", "cuda:1"] {
        for (args, code) in device_cases(dir.path(), device) {
            let o = run_strings(&args);
            let (_, err) = text(&o);
            assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
            assert!(
                err.starts_with(
                    "error: this `vars` was built without CUDA support; rebuild with \
                                 `cargo build --release -p vars-cli --features cuda`"
                ),
                "{args:?}: {err}"
            );
            assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        }
    }
    // nothing was started
    assert!(!dir.path().join("d").exists());
}

/// With the `cuda` feature: a GPU that is not there (no driver, no device, or an index past the
/// last GPU) is a one-line error that names CUDA and a non-zero exit, never a panic.
#[cfg(feature = "cuda")]
#[test]
fn cuda_without_a_gpu_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // `cuda:99` is missing on every machine; plain `cuda` only where no NVIDIA driver is loaded
    let gpu_machine = Path::new("/dev/nvidiactl").exists() || Path::new("/dev/nvidia0").exists();
    let devices: &[&str] = if gpu_machine {
        &["cuda:99"]
    } else {
        &["cuda", "cuda:0", "cuda:99"]
    };
    for device in devices {
        for (args, code) in device_cases(dir.path(), device) {
            let o = run_strings(&args);
            let (out, err) = text(&o);
            assert_eq!(o.status.code(), Some(code), "{args:?}: {out}\n{err}");
            let canonical = if *device == "cuda" { "cuda:0" } else { device };
            assert!(
                err.starts_with(&format!(
                    "error: --device {canonical}: cannot open the CUDA device: "
                )),
                "{args:?}: {err}"
            );
            // the backend's own reason: what is missing
            assert!(
                err.contains("not found") || err.contains("no CUDA device"),
                "{args:?}: {err}"
            );
            assert!(
                !err.contains("panicked") && !err.contains("backtrace"),
                "{args:?}: {err}"
            );
            assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        }
    }
    assert!(!dir.path().join("d").exists());
}
