//! `cargo xtask gpu-check`: the CUDA backend's device check as one carried harness.
//!
//! GPU machines here have the driver and the CUDA libraries but no Rust toolchain and no registry
//! access, so the check is built on the development machine (both are x86-64) into
//! `target/gpu-harness/`:
//!
//! - `gpu-tests`: the stripped test binary `crates/vars-cuda/tests/gpu` (kernels, the shared
//!   backend suite on CUDA, the GPU tests of every op family, the official parity fixtures);
//! - `gpu-timings`: the stripped example `crates/vars-cuda/examples/gpu_timings.rs` (RVT‑Ti and
//!   the fused VARS‑D op, CUDA fused / unfused / CPU, one table);
//! - `run.sh`: finds the CUDA 13 libraries, runs both with `VARS_REQUIRE_GPU=1` (a missing GPU
//!   fails instead of skipping) and `VARS_FIXTURES` pointing at the checkout's fixtures, and tees
//!   the logs into its output folder.
//!
//! Modes:
//! - `cargo xtask gpu-check`: build (release), check inputs, then run `run.sh` here (needs a GPU);
//! - `--build-only`: build and check, then print how to run the folder on a GPU machine;
//! - `--dry-run` (CI): take both from `cargo test --workspace --all-features --no-run` (the
//!   README's test command has built them, so this costs no compilation), check that
//!   both binaries exist and start (`gpu-tests --list` lists the GPU tests), that the fixtures
//!   are where `run.sh` looks, and that `run.sh` parses; runs nothing on a device.

use std::path::{Path, PathBuf};
use std::process::Command;

const RUN_SH: &str = include_str!("../gpu-harness.sh");

pub fn gpu_check(root: &Path, args: &[String]) -> Result<(), String> {
    let (mut dry_run, mut build_only) = (false, false);
    for a in args {
        match a.as_str() {
            "--dry-run" => dry_run = true,
            "--build-only" => build_only = true,
            other => return Err(format!("unknown gpu-check argument `{other}`")),
        }
    }
    // The dry run uses cargo's default (test) profile, exactly as the README's test command.
    let profile = if dry_run { None } else { Some("release") };
    let out = root.join("target/gpu-harness");
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;

    let (tests, timings) = if dry_run {
        // The README's test command already built both (examples too), with these features.
        let cmd = ["test", "--workspace", "--all-features", "--no-run"];
        let [tests, timings] = build(root, &cmd, profile, ["gpu", "gpu_timings"])?;
        (tests, timings)
    } else {
        let [tests] = build(
            root,
            &["test", "-p", "vars-cuda", "--test", "gpu", "--no-run"],
            profile,
            ["gpu"],
        )?;
        let [timings] = build(
            root,
            &["build", "-p", "vars-cuda", "--example", "gpu_timings"],
            profile,
            ["gpu_timings"],
        )?;
        (tests, timings)
    };
    install(&tests, &out.join("gpu-tests"))?;
    install(&timings, &out.join("gpu-timings"))?;
    let run_sh = out.join("run.sh");
    std::fs::write(&run_sh, RUN_SH)
        .map_err(|e| format!("cannot write {}: {e}", run_sh.display()))?;

    check_inputs(root, &out)?;
    let size: u64 = ["gpu-tests", "gpu-timings", "run.sh"]
        .iter()
        .filter_map(|f| std::fs::metadata(out.join(f)).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "gpu-check: harness ready in {} ({:.1} MiB, {} build)",
        out.display(),
        size as f64 / (1024.0 * 1024.0),
        profile.unwrap_or("test")
    );
    if dry_run {
        println!("gpu-check --dry-run: OK (nothing was run on a device)");
        return Ok(());
    }
    if build_only {
        println!(
            "run it on a GPU machine from a checkout of this commit (the fixtures come from the \
             checkout):\n  bash target/gpu-harness/run.sh [LOG_DIR]"
        );
        return Ok(());
    }
    let status = Command::new("bash")
        .arg(&run_sh)
        .current_dir(root)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", run_sh.display()))?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| format!("the GPU check failed ({status}); logs in {}", out.display()))
}

/// Runs one cargo build with `--message-format=json-render-diagnostics` and returns the
/// executables of the artifacts whose targets are `target_names`, in that order.
fn build<const N: usize>(
    root: &Path,
    args: &[&str],
    profile: Option<&str>,
    target_names: [&str; N],
) -> Result<[PathBuf; N], String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut args: Vec<&str> = args.to_vec();
    if let Some(p) = profile {
        args.extend(["--profile", p]);
    }
    println!("gpu-check: cargo {}", args.join(" "));
    let output = Command::new(&cargo)
        .current_dir(root)
        .args(&args)
        .arg("--message-format=json-render-diagnostics")
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo {} failed ({})",
            args.join(" "),
            output.status
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut found = Vec::with_capacity(N);
    for name in target_names {
        let wanted = format!("\"name\":\"{name}\"");
        let exe = stdout
            .lines()
            .filter(|l| l.contains("\"reason\":\"compiler-artifact\"") && l.contains(&wanted))
            .find_map(executable)
            .ok_or_else(|| format!("cargo built no executable for target `{name}`"))?;
        found.push(exe);
    }
    Ok(found
        .try_into()
        .unwrap_or_else(|_| unreachable!("one executable per target name")))
}

/// The `"executable":"…"` field of one cargo JSON message (paths here contain no escapes other
/// than `\\` and `\"`, which are undone).
fn executable(line: &str) -> Option<PathBuf> {
    let key = "\"executable\":\"";
    let start = line.find(key)? + key.len();
    let mut path = String::new();
    let mut chars = line[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(PathBuf::from(path)),
            '\\' => path.push(chars.next()?),
            c => path.push(c),
        }
    }
    None
}

/// Copies `src` to `dst` without debug symbols (`strip`, when installed), keeping it executable.
fn install(src: &Path, dst: &Path) -> Result<(), String> {
    let _ = std::fs::remove_file(dst);
    let stripped = Command::new("strip")
        .arg("--strip-all")
        .arg("-o")
        .arg(dst)
        .arg(src)
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        std::fs::copy(src, dst)
            .map_err(|e| format!("cannot copy {} to {}: {e}", src.display(), dst.display()))?;
    }
    Ok(())
}

/// What `run.sh` needs besides the binaries: the fixtures of the checkout, a test list, a shell
/// script that parses.
fn check_inputs(root: &Path, out: &Path) -> Result<(), String> {
    let fixtures = root.join("fixtures/official");
    let manifest = fixtures.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).map_err(|e| {
        format!(
            "the parity fixtures are missing ({}): {e}",
            manifest.display()
        )
    })?;
    let fixture_files = std::fs::read_dir(&fixtures)
        .map_err(|e| format!("cannot list {}: {e}", fixtures.display()))?
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "safetensors"))
        .count();
    if fixture_files < 9 || !text.contains("model_vars_d") {
        return Err(format!(
            "{} holds {fixture_files} safetensors files; the 9 official fixtures are expected",
            fixtures.display()
        ));
    }
    let list = Command::new(out.join("gpu-tests"))
        .args(["--list", "--format", "terse"])
        .output()
        .map_err(|e| format!("gpu-tests does not start: {e}"))?;
    if !list.status.success() {
        return Err(format!("gpu-tests --list failed ({})", list.status));
    }
    let listed = String::from_utf8_lossy(&list.stdout);
    let count = listed.lines().filter(|l| l.ends_with(": test")).count();
    for needed in ["suite::", "parity::official_fixtures_on_cuda", "kernels::"] {
        if !listed.contains(needed) {
            return Err(format!("gpu-tests lists no `{needed}` test"));
        }
    }
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(out.join("run.sh"))
        .status()
        .map_err(|e| format!("cannot run bash: {e}"))?;
    if !syntax.success() {
        return Err("run.sh does not parse".into());
    }
    println!(
        "gpu-check: gpu-tests lists {count} tests; {fixture_files} fixture files in {}",
        fixtures.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_executable_field() {
        let line = r#"{"reason":"compiler-artifact","target":{"name":"gpu"},"executable":"/a/b\\c/gpu-1f2e","fresh":true}"#;
        assert_eq!(executable(line), Some(PathBuf::from("/a/b\\c/gpu-1f2e")));
        assert_eq!(executable(r#"{"executable":null}"#), None);
    }
}
