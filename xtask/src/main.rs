//! `cargo xtask`: project automation (matklad's xtask pattern, no dependencies).
//!
//! - `cargo xtask bench [FILTER] [--features F] [--quick]`: runs the criterion benches in
//!   `benches/` and prints one table per benchmark group, with each entry's time and its speed
//!   ratio against the group's first entry, measured in the same run.
//! - `cargo xtask ci`: runs what `.ci/run` runs (tests, fmt, clippy).
//! - `cargo xtask gpu-check [--dry-run | --build-only]`: builds the CUDA check harness (tests,
//!   official parity on CUDA, timings) into `target/gpu-harness/` and runs it on this machine's
//!   GPU; see [`gpu_check`].

mod gpu_check;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("bench") => bench(&args[1..]),
        Some("ci") => run_script(&root().join(".ci/run")),
        Some("gpu-check") => gpu_check::gpu_check(&root(), &args[1..]),
        _ => {
            eprintln!(
                "usage:\n  cargo xtask bench [FILTER] [--features F] [--quick]\n  cargo xtask ci\n  \
                 cargo xtask gpu-check [--dry-run | --build-only]"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the repository root")
        .to_path_buf()
}

fn run_script(path: &Path) -> Result<(), String> {
    let status = Command::new("bash")
        .arg(path)
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| format!("{} failed ({status})", path.display()))
}

fn bench(args: &[String]) -> Result<(), String> {
    let mut filter = None;
    let mut features = None;
    let mut quick = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--features" => features = Some(it.next().ok_or("--features needs a value")?.clone()),
            "--quick" => quick = true,
            other if other.starts_with("--") => return Err(format!("unknown flag {other}")),
            other => filter = Some(other.to_string()),
        }
    }
    let criterion_dir = root().join("target/criterion");
    let started = std::time::SystemTime::now();
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root())
        .args(["bench", "-p", "vars-benches"]);
    if let Some(f) = &features {
        cmd.args(["--features", f]);
    }
    cmd.arg("--");
    if let Some(f) = &filter {
        cmd.arg(f);
    }
    if quick {
        cmd.args(["--warm-up-time", "1", "--measurement-time", "2"]);
    }
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run cargo bench: {e}"))?;
    if !status.success() {
        return Err(format!("cargo bench failed ({status})"));
    }
    let mut rows = Vec::new();
    collect_estimates(&criterion_dir, &criterion_dir, started, &mut rows);
    rows.sort_by(|a, b| (&a.0, &a.2, &a.1).cmp(&(&b.0, &b.2, &b.1)));
    print_table(&rows);
    Ok(())
}

/// (group, function, parameter, mean nanoseconds) for every benchmark updated by this run.
type Row = (String, String, String, f64);

fn collect_estimates(base: &Path, dir: &Path, since: std::time::SystemTime, rows: &mut Vec<Row>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let estimates = path.join("new/estimates.json");
        let fresh = std::fs::metadata(&estimates)
            .and_then(|m| m.modified())
            .map(|t| t >= since)
            .unwrap_or(false);
        if fresh {
            if let Some(mean) = std::fs::read_to_string(&estimates)
                .ok()
                .and_then(|s| mean_ns(&s))
            {
                let rel: Vec<String> = path
                    .strip_prefix(base)
                    .unwrap_or(&path)
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                let (group, function, param) = match rel.as_slice() {
                    [g, f, p] => (g.clone(), f.clone(), p.clone()),
                    [g, f] => (g.clone(), f.clone(), String::new()),
                    other => (other.join("/"), String::new(), String::new()),
                };
                rows.push((group, function, param, mean));
            }
        }
        collect_estimates(base, &path, since, rows);
    }
}

/// Criterion's `estimates.json` holds `"mean":{…,"point_estimate":X,…}`; read X without a JSON
/// dependency.
fn mean_ns(json: &str) -> Option<f64> {
    let after = &json[json.find("\"mean\"")?..];
    let start = after.find("\"point_estimate\":")? + "\"point_estimate\":".len();
    let rest = &after[start..];
    let end = rest.find([',', '}'])?;
    rest[..end].trim().parse().ok()
}

/// One block per (group, input). The baseline is the entry whose name starts with `baseline`,
/// else the first by name; every ratio compares entries measured in this same run.
fn print_table(rows: &[Row]) {
    if rows.is_empty() {
        println!("no benchmark results were written by this run");
        return;
    }
    let mut keys: Vec<(&str, &str)> = rows.iter().map(|r| (r.0.as_str(), r.2.as_str())).collect();
    keys.dedup();
    println!(
        "\n{:<28} {:<20} {:<28} {:>12} {:>9}",
        "group", "input", "entry", "mean", "vs base"
    );
    for (group, param) in keys {
        let block: Vec<&Row> = rows
            .iter()
            .filter(|r| r.0 == group && r.2 == param)
            .collect();
        let base = block
            .iter()
            .find(|r| r.1.starts_with("baseline"))
            .unwrap_or(&block[0]);
        for r in &block {
            let tag = if std::ptr::eq(*r, *base) {
                " (base)"
            } else {
                ""
            };
            println!(
                "{:<28} {:<20} {:<28} {:>12} {:>8.2}x{tag}",
                r.0,
                r.2,
                r.1,
                human(r.3),
                base.3 / r.3
            );
        }
    }
}

fn human(ns: f64) -> String {
    match ns {
        n if n >= 1e9 => format!("{:.3} s", n / 1e9),
        n if n >= 1e6 => format!("{:.3} ms", n / 1e6),
        n if n >= 1e3 => format!("{:.3} µs", n / 1e3),
        n => format!("{n:.1} ns"),
    }
}
