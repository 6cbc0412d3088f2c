//! The official PyTorch fixtures on CUDA, with the tolerances the CPU parity test uses
//! (`crates/vars-vit/tests/parity_official.rs`): forward/activations within 1e-4 and gradients
//! within 1e-3 of max|ref|, through the same `vars_vit::parity` code as the `parity` command.
//!
//! The fixture folder is `$VARS_FIXTURES` when set (the carried GPU harness sets it, since the
//! path compiled in below belongs to the build machine), else the repository's
//! `fixtures/official`.

use std::path::{Path, PathBuf};
use vars_cuda::Cuda;
use vars_vit::parity::{check_fixture, read_manifest, Tolerances};

fn dir() -> PathBuf {
    match std::env::var_os("VARS_FIXTURES") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/official"),
    }
}

/// Every fixture in the manifest, each reported; fails listing the ones that did not pass.
#[test]
fn official_fixtures_on_cuda() {
    let Some(dev) = super::device() else { return };
    let dir = dir();
    let specs = read_manifest(&dir)
        .unwrap_or_else(|e| panic!("cannot read the fixture manifest in {}: {e}", dir.display()));
    assert!(
        specs.len() >= 9,
        "expected the 9 official fixtures, found {}",
        specs.len()
    );
    let mut failed = Vec::new();
    for (name, spec) in &specs {
        match check_fixture::<Cuda>(&dir, name, spec, Tolerances::default(), dev) {
            Ok(report) => {
                println!("{}", report.render());
                if !report.passed() || !report.problems.is_empty() {
                    failed.push(name.clone());
                }
            }
            Err(e) => {
                println!("{name}: error: {e}");
                failed.push(name.clone());
            }
        }
    }
    assert!(failed.is_empty(), "fixtures failing on CUDA: {failed:?}");
}
