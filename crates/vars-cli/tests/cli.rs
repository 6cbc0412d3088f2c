//! The `vars` binary end to end: `corrupt` and `make-c`, and their error messages.

use std::path::Path;
use std::process::{Command, Output};

use vars_data::io::{read_image, write_image};
use vars_data::Image;

fn vars(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vars"))
        .args(args)
        .output()
        .expect("run vars")
}

fn photo() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../vars-data/tests/golden/base/china_32.png")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn corrupt_writes_the_library_result() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.png");
    let o = vars(&[
        "corrupt",
        "--corruption",
        "shot_noise",
        "--severity",
        "4",
        "--seed",
        "3",
        &photo(),
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let img = read_image(photo()).unwrap();
    use vars_data::corruptions::{corrupt, Corruption, ParamSet};
    let seed = vars_data::rng::image_seed(3, Corruption::ShotNoise, 4, 0);
    assert_eq!(
        read_image(&out).unwrap(),
        corrupt(&img, Corruption::ShotNoise, 4, ParamSet::Cifar10C, seed).unwrap()
    );
    // JPEG output and explicit parameter table
    let jpg = dir.path().join("o.jpg");
    let o = vars(&[
        "corrupt",
        "-c",
        "zoom-blur",
        "-s",
        "2",
        "--params",
        "imagenet",
        &photo(),
        jpg.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(read_image(&jpg).unwrap().width(), 32);
}

#[test]
fn corrupt_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.png");
    let out = out.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["corrupt", "-c", "fogg", "-s", "1", &photo(), out],
            "unknown corruption `fogg`",
        ),
        (
            &["corrupt", "-c", "fog", "-s", "6", &photo(), out],
            "severity 6 is out of range",
        ),
        (
            &["corrupt", "-c", "fog", "-s", "1", "/nonexistent.png", out],
            "/nonexistent.png",
        ),
        (
            &[
                "corrupt",
                "-c",
                "fog",
                "-s",
                "1",
                "--params",
                "mnist",
                &photo(),
                out,
            ],
            "unknown parameter set",
        ),
        (
            &["corrupt", "-c", "fog", "-s", "1", &photo(), "/tmp/x.gif"],
            "use a .png, .jpg or .jpeg",
        ),
    ];
    for (args, needle) in cases {
        let o = vars(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(needle),
            "{args:?}: {err}"
        );
    }
    let bad = dir.path().join("bad.png");
    std::fs::write(&bad, b"nope").unwrap();
    let o = vars(&[
        "corrupt",
        "-c",
        "fog",
        "-s",
        "1",
        bad.to_str().unwrap(),
        out,
    ]);
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("cannot decode image")
    );
    let o = vars(&["corrupt", "--list"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("elastic_transform"));
}

#[test]
fn make_c_on_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write_image(
        input.join("a/x.png"),
        &Image::filled(24, 24, 3, 120).unwrap(),
        95,
    )
    .unwrap();
    write_image(
        input.join("b/y.png"),
        &Image::filled(24, 24, 1, 60).unwrap(),
        95,
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = vars(&[
        "make-c",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        "--corruptions",
        "fog,frost",
        "--severities",
        "1,5",
        "--format",
        "png",
        "--threads",
        "2",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for c in ["fog", "frost"] {
        for s in ["1", "5"] {
            assert!(
                out.join(c).join(s).join("a/x.png").exists()
                    && out.join(c).join(s).join("b/y.png").exists()
            );
        }
    }
    assert_eq!(
        read_image(out.join("frost/5/b/y.png")).unwrap().channels(),
        1
    );
    let o = vars(&[
        "make-c",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        "--severities",
        "0",
    ]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("out of range"));
    let o = vars(&[
        "make-c",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        "--corruptions",
        "blur",
    ]);
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("unknown corruption")
    );
}
