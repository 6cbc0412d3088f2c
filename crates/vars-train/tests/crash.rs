//! Real crashes: a child process (this test binary re-run with an environment switch) trains and
//! checkpoints, and is killed with SIGKILL mid-epoch or in the middle of writing a checkpoint.
//! Resuming from what is on disk must reproduce the uninterrupted run bit for bit: every step's
//! loss, the final weights, EMA and optimiser state, and the metrics log.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vars_train::checkpoint::files;
use vars_train::*;
use vars_vit::config::AttentionKind;

const CHILD_ENV: &str = "VARS_TRAIN_CRASH_CHILD";
const MARKER: &str = "stalled";

/// Where a child run blocks, waiting to be killed.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Stall {
    None,
    /// In the progress callback, right after global step `n` finished.
    AfterStep(u64),
    /// In the checkpoint writer, after every file of the checkpoint for global step `n` is in
    /// its temporary directory and before the commit rename.
    InCommit(u64),
}

/// The training job: 2 epochs of 4 steps of the full recipe on a VARS‑S model (BatchNorm
/// buffers, the `L` hook, stochastic depth, mixup, EMA, clipping), checkpoints every 2 steps,
/// resuming from the newest checkpoint in `dir` if there is one. Every step's loss is appended
/// to `dir/losses.txt` as `global_step loss_bits`.
fn run_job(dir: &Path, stall: Stall) {
    pool(2).install(|| {
        let root = dir.join("ckpt");
        let mut ck = Checkpointer::new(&root)
            .unwrap()
            .with_every_steps(2)
            .with_keep_last(3);
        if let Stall::InCommit(n) = stall {
            let marker = dir.join(MARKER);
            let name = format!("step-{n:012}");
            ck = ck.with_before_commit_hook(move |tmp| {
                if tmp.to_string_lossy().contains(&name) {
                    std::fs::write(&marker, b"")?;
                    std::thread::sleep(Duration::from_secs(120));
                }
                Ok(())
            });
        }
        let mut t = Trainer::new(tiny_model(AttentionKind::VarsS, 1), full_recipe(2)).unwrap();
        t.resume(&ck, ResumePolicy::default()).unwrap();
        let mut log = MetricsLog::open(dir.join("metrics.jsonl"), t.position().epoch).unwrap();
        let mut losses = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("losses.txt"))
            .unwrap();
        let marker = dir.join(MARKER);
        let mut cb = |ev: Progress<'_>| {
            if let Progress::Step(r) = ev {
                writeln!(losses, "{} {}", r.global_step, r.loss.to_bits()).unwrap();
                losses.flush().unwrap();
                if stall == Stall::AfterStep(r.global_step + 1) {
                    std::fs::write(&marker, b"").unwrap();
                    std::thread::sleep(Duration::from_secs(120));
                }
            }
            Control::Continue
        };
        let mut data = tiny_data(0);
        let opts = FitOptions {
            checkpoints: Some(&mut ck),
            metrics: Some(&mut log),
            progress: Some(&mut cb),
            ..Default::default()
        };
        t.fit(&mut data, opts).unwrap();
    });
}

/// The child side: does nothing unless the parent set [`CHILD_ENV`] (`dir|mode|n`).
#[test]
fn child_process_entry() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split('|').collect();
    let n: u64 = parts[2].parse().unwrap();
    let stall = match parts[1] {
        "after-step" => Stall::AfterStep(n),
        "in-commit" => Stall::InCommit(n),
        _ => Stall::None,
    };
    run_job(Path::new(parts[0]), stall);
}

/// Kills the child on drop, whatever happens in the test.
struct Killer(Child);

impl Drop for Killer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the child and returns once it has reached its stall point.
fn spawn_and_wait(dir: &Path, mode: &str, n: u64) -> Killer {
    let exe = std::env::current_exe().unwrap();
    let child = Command::new(exe)
        .args([
            "--exact",
            "child_process_entry",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD_ENV, format!("{}|{mode}|{n}", dir.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut k = Killer(child);
    let start = Instant::now();
    while !dir.join(MARKER).exists() {
        if let Some(status) = k.0.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = k.0.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("the child exited ({status}) before its stall point:\n{err}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the child never stalled"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    k
}

/// SIGKILL, and check it was one.
fn sigkill(mut k: Killer) {
    k.0.kill().unwrap(); // SIGKILL on Unix
    let status = k.0.wait().unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "{status}");
    }
    #[cfg(not(unix))]
    assert!(!status.success());
}

/// `global_step → every loss recorded for it` (a resumed run records steps again).
fn losses(dir: &Path) -> BTreeMap<u64, Vec<u64>> {
    let mut out: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for line in std::fs::read_to_string(dir.join("losses.txt"))
        .unwrap()
        .lines()
    {
        let (s, l) = line.split_once(' ').unwrap();
        out.entry(s.parse().unwrap())
            .or_default()
            .push(l.parse().unwrap());
    }
    out
}

fn steps_on_disk(dir: &Path) -> Vec<u64> {
    vars_train::checkpoint::list_checkpoints(&dir.join("ckpt"))
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect()
}

/// The final checkpoint's content: every tensor's bits and the metadata of the safetensors
/// files (whose header order is not canonical), the bytes of the JSON files.
fn final_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let latest: PathBuf = vars_train::checkpoint::list_checkpoints(&dir.join("ckpt"))
        .unwrap()
        .pop()
        .unwrap()
        .1;
    let mut out = Vec::new();
    for f in [files::MODEL, files::EMA, files::OPTIMIZER] {
        let sd = vars_vit::StateDict::<vars_cpu::Cpu>::load(latest.join(f), &vars_cpu::CpuDevice)
            .unwrap();
        out.push((
            f.to_string(),
            format!("{:?} {:?}", bits(&sd), sd.metadata()).into_bytes(),
        ));
    }
    for f in [files::TRAINER, files::CONFIG] {
        out.push((f.to_string(), std::fs::read(latest.join(f)).unwrap()));
    }
    out
}

fn metrics(dir: &Path) -> Vec<(u64, f64, f64)> {
    MetricsLog::read_all(dir.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["epoch"].as_u64().unwrap(),
                l["loss"].as_f64().unwrap(),
                l["accuracy"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// Every loss recorded in `dir` (killed and resumed runs alike) equals the reference's loss of
/// that step, every step was run, and the final checkpoint and metrics are identical.
fn assert_matches_reference(dir: &Path, reference: &Path) {
    let want = losses(reference);
    assert_eq!(want.len(), 8);
    assert!(want.values().all(|v| v.len() == 1));
    let got = losses(dir);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (step, ls) in &got {
        for l in ls {
            assert_eq!(*l, want[step][0], "loss of global step {step}");
        }
    }
    let (a, b) = (final_files(dir), final_files(reference));
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "{name} differs from the uninterrupted run");
    }
    assert_eq!(metrics(dir), metrics(reference));
    assert_eq!(metrics(dir).len(), 2);
}

#[test]
fn sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run() {
    let reference = tempfile::tempdir().unwrap();
    run_job(reference.path(), Stall::None);

    let dir = tempfile::tempdir().unwrap();
    // Killed after global step 3 of 8, in the middle of epoch 0 (steps 0..4), one step after
    // the checkpoint at 2 — which holds the half epoch's running loss and accuracy.
    sigkill(spawn_and_wait(dir.path(), "after-step", 3));
    assert_eq!(steps_on_disk(dir.path()), vec![2]);
    assert_eq!(losses(dir.path()).len(), 3);
    assert!(metrics(dir.path()).is_empty());

    run_job(dir.path(), Stall::None);
    assert_eq!(
        losses(dir.path())[&2].len(),
        2,
        "step 2 ran again after the resume"
    );
    assert_eq!(losses(dir.path())[&1].len(), 1);
    assert_eq!(steps_on_disk(dir.path()), vec![4, 6, 8]);
    assert_matches_reference(dir.path(), reference.path());
}

#[test]
fn sigkill_during_a_checkpoint_write_keeps_the_previous_checkpoint() {
    let reference = tempfile::tempdir().unwrap();
    run_job(reference.path(), Stall::None);

    let dir = tempfile::tempdir().unwrap();
    // Killed while the final checkpoint (step 8, end of epoch 1) sits complete in its temporary
    // directory, one rename short of being committed. Epoch 1's metrics line is already in the
    // log; the resume from step 6 must redo it, not duplicate it.
    sigkill(spawn_and_wait(dir.path(), "in-commit", 8));
    let root = dir.path().join("ckpt");
    let tmp: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".tmp-step-000000000008")
        })
        .collect();
    assert_eq!(tmp.len(), 1, "the interrupted write is on disk");
    assert!(tmp[0].join(files::MODEL).exists() && tmp[0].join(files::TRAINER).exists());
    assert_eq!(steps_on_disk(dir.path()), vec![2, 4, 6]);
    assert_eq!(metrics(dir.path()).len(), 2);

    // The previous checkpoints still load.
    for step in [2u64, 4, 6] {
        let mut t = Trainer::new(tiny_model(AttentionKind::VarsS, 3), full_recipe(2)).unwrap();
        t.load_checkpoint(
            &root.join(format!("step-{step:012}")),
            ResumePolicy::default(),
        )
        .unwrap();
        assert_eq!(t.position().global_step, step);
    }

    run_job(dir.path(), Stall::None);
    assert_eq!(
        losses(dir.path())[&6].len(),
        2,
        "steps 6 and 7 ran again after the resume"
    );
    assert!(!tmp[0].exists(), "the interrupted write was cleaned up");
    assert_eq!(steps_on_disk(dir.path()), vec![4, 6, 8]);
    assert_matches_reference(dir.path(), reference.path());
}
