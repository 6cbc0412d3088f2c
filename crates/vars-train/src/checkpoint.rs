//! Checkpoints: one directory per checkpoint, committed atomically, and exact resume.
//!
//! **Layout.** Under a root directory, each checkpoint is `step-{global_step:012}/` holding
//!
//! | file | content |
//! |---|---|
//! | `model.safetensors` | the model's state dict under the official names (parameters, frozen tensors, BatchNorm buffers) |
//! | `optimizer.safetensors` | `exp_avg.*`/`exp_avg_sq.*` (AdamW) or `momentum_buffer.*` (SGD); kind and step counts in the metadata |
//! | `ema.safetensors` | the EMA weights (official names; loads into a model as is), when EMA is on |
//! | `trainer.json` | position (epoch, step, global step), the current epoch's running sums, steps per epoch, RNG state (seed + counters) |
//! | `config.json` | `{"train": TrainConfig, "run": run info}` |
//! | `provenance.json` | git commit, config hash, crate version, thread count, machine |
//!
//! **Atomicity.** Files are written into a fresh hidden directory `.tmp-step-…` in the root,
//! each fsynced, then the directory is fsynced and renamed to its final name (one atomic
//! `rename`), and the root is fsynced. A crash at any point leaves either no new checkpoint (the
//! hidden directory is ignored and removed by the next save) or a complete one; earlier
//! checkpoints are untouched until the new one is committed. Old checkpoints beyond `keep_last`
//! are removed after the commit, by renaming them to a hidden `.trash-…` name first, so a crash
//! during removal never leaves a half-deleted directory under a checkpoint name.
//!
//! **Resume.** [`Trainer::load_checkpoint`] validates everything (format tags, the configuration,
//! every tensor's name, shape and dtype against the model) before changing anything. Every
//! random draw is a function of the seed and the position, so a resumed run continues
//! bit-identically to an uninterrupted one (same thread count; tests in `tests/`).

use crate::model::TrainModel;
use crate::optim::Optimizer;
use crate::trainer::{EpochAccumulator, Position, TrainConfig, Trainer};
use crate::{Result, TrainError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use vars_core::{Autodiff, Backend};
use vars_vit::StateDict;

const DIR_PREFIX: &str = "step-";
const TMP_PREFIX: &str = ".tmp-";
const TRASH_PREFIX: &str = ".trash-";
const TRAINER_FORMAT: &str = "vars-train/checkpoint/1";

/// File names inside a checkpoint directory.
pub mod files {
    pub const MODEL: &str = "model.safetensors";
    pub const OPTIMIZER: &str = "optimizer.safetensors";
    pub const EMA: &str = "ema.safetensors";
    pub const TRAINER: &str = "trainer.json";
    pub const CONFIG: &str = "config.json";
    pub const PROVENANCE: &str = "provenance.json";
}

type CommitHook = Box<dyn FnMut(&Path) -> std::io::Result<()> + Send>;

/// Where checkpoints go and how many are kept (module docs). One run writes to a root at a
/// time: a save removes every hidden leftover of the root, which would include another writer's
/// checkpoint in progress.
pub struct Checkpointer {
    root: PathBuf,
    /// Also checkpoint every this many optimiser steps (besides every epoch end and a stop).
    pub every_steps: Option<u64>,
    /// How many committed checkpoints to keep (≥ 1; the newest are kept).
    pub keep_last: usize,
    before_commit: Option<CommitHook>,
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpointer")
            .field("root", &self.root)
            .field("every_steps", &self.every_steps)
            .field("keep_last", &self.keep_last)
            .field("before_commit", &self.before_commit.is_some())
            .finish()
    }
}

impl Checkpointer {
    /// Checkpoints under `root` (created if missing), at each epoch end, keeping the last 2.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)
            .map_err(|e| TrainError::io("cannot create the checkpoint directory", &root, e))?;
        Ok(Checkpointer {
            root,
            every_steps: None,
            keep_last: 2,
            before_commit: None,
        })
    }

    /// Also checkpoint every `n` optimiser steps.
    pub fn with_every_steps(mut self, n: u64) -> Self {
        self.every_steps = (n > 0).then_some(n);
        self
    }

    /// Keep the newest `n` checkpoints (at least 1).
    pub fn with_keep_last(mut self, n: usize) -> Self {
        self.keep_last = n.max(1);
        self
    }

    /// Fault injection for tests: `hook` runs after every file of a checkpoint is written and
    /// synced into its temporary directory, just before the commit `rename`. An error aborts the
    /// save (the temporary directory is removed, earlier checkpoints are untouched).
    pub fn with_before_commit_hook(
        mut self,
        hook: impl FnMut(&Path) -> std::io::Result<()> + Send + 'static,
    ) -> Self {
        self.before_commit = Some(Box::new(hook));
        self
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Committed checkpoints, oldest first, as `(global_step, path)`.
    pub fn list(&self) -> Result<Vec<(u64, PathBuf)>> {
        list_checkpoints(&self.root)
    }

    /// The newest committed checkpoint, if any.
    pub fn latest(&self) -> Result<Option<PathBuf>> {
        Ok(self.list()?.pop().map(|(_, p)| p))
    }

    /// Writes a checkpoint for `global_step` with `write` filling a temporary directory, and
    /// commits it (module docs). A checkpoint that already exists for this step is kept as is.
    fn commit(
        &mut self,
        global_step: u64,
        write: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<PathBuf> {
        let final_dir = self.root.join(format!("{DIR_PREFIX}{global_step:012}"));
        if final_dir.is_dir() {
            return Ok(final_dir);
        }
        self.remove_stale()?;
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let tmp = self.root.join(format!(
            "{TMP_PREFIX}{DIR_PREFIX}{global_step:012}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&tmp).map_err(|e| {
            TrainError::io("cannot create the temporary checkpoint directory", &tmp, e)
        })?;
        let mut guard = DirGuard(Some(tmp.clone()));
        write(&tmp)?;
        sync_dir(&tmp)?;
        if let Some(hook) = self.before_commit.as_mut() {
            hook(&tmp).map_err(|e| TrainError::io("checkpoint aborted before commit", &tmp, e))?;
        }
        std::fs::rename(&tmp, &final_dir).map_err(|e| {
            TrainError::io("cannot commit the checkpoint (rename) to", &final_dir, e)
        })?;
        guard.0 = None;
        sync_dir(&self.root)?;
        self.prune()?;
        Ok(final_dir)
    }

    /// Removes leftovers of interrupted saves and removals (hidden `.tmp-`/`.trash-` entries).
    fn remove_stale(&self) -> Result<()> {
        let entries = std::fs::read_dir(&self.root)
            .map_err(|e| TrainError::io("cannot list the checkpoint directory", &self.root, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(TMP_PREFIX) || name.starts_with(TRASH_PREFIX) {
                let p = entry.path();
                std::fs::remove_dir_all(&p).map_err(|e| {
                    TrainError::io("cannot remove an interrupted checkpoint", &p, e)
                })?;
            }
        }
        Ok(())
    }

    fn prune(&self) -> Result<()> {
        let list = self.list()?;
        let excess = list.len().saturating_sub(self.keep_last.max(1));
        for (_, path) in list.into_iter().take(excess) {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let trash = self.root.join(format!(
                "{TRASH_PREFIX}{}-{}",
                name.unwrap_or_default(),
                std::process::id()
            ));
            std::fs::rename(&path, &trash)
                .map_err(|e| TrainError::io("cannot retire the old checkpoint", &path, e))?;
            std::fs::remove_dir_all(&trash)
                .map_err(|e| TrainError::io("cannot remove the old checkpoint", &trash, e))?;
        }
        Ok(())
    }
}

/// Committed checkpoints under `root`, oldest first.
pub fn list_checkpoints(root: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let entries = std::fs::read_dir(root)
        .map_err(|e| TrainError::io("cannot list the checkpoint directory", root, e))?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(step) = name
            .to_str()
            .and_then(|n| n.strip_prefix(DIR_PREFIX))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if entry.path().is_dir() {
            out.push((step, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Removes a temporary directory on drop unless disarmed.
struct DirGuard(Option<PathBuf>);

impl Drop for DirGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| TrainError::io("cannot sync directory", dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(|e| TrainError::io("cannot create", path, e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| TrainError::io("cannot write", path, e))
}

fn to_json(value: &impl Serialize, path: &Path) -> Result<Vec<u8>> {
    let mut v = serde_json::to_vec_pretty(value).map_err(|e| {
        TrainError::checkpoint(path, format!("cannot encode JSON: {e}"), "report a bug")
    })?;
    v.push(b'\n');
    Ok(v)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::io("cannot read", path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        TrainError::checkpoint(
            path,
            format!("unreadable JSON: {e}"),
            "the checkpoint is damaged; resume from an earlier one",
        )
    })
}

/// The RNG state: the seed and the counters every stream is derived from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    pub seed: u64,
    pub epoch: usize,
    pub step: usize,
    pub global_step: u64,
}

/// `trainer.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerFile {
    pub format: String,
    pub position: Position,
    pub epoch_sums: EpochAccumulator,
    pub steps_per_epoch: Option<usize>,
    pub rng: RngState,
    /// How the streams derive from `rng` (documentation for readers of the file).
    pub rng_derivation: String,
    pub optimizer: String,
    pub ema: bool,
}

/// `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigFile {
    pub train: TrainConfig,
    pub run: serde_json::Value,
}

/// The machine a checkpoint was written on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    pub hostname: String,
    pub os: String,
    pub arch: String,
    pub cpus: usize,
}

/// `provenance.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// `git rev-parse HEAD` in the working directory at the first save, or `"unknown"`.
    pub git_commit: String,
    /// Whether tracked files had uncommitted changes (`None` when unknown).
    pub git_dirty: Option<bool>,
    /// [`config_hash`] of `config.json`.
    pub config_hash: String,
    /// Crate versions (the workspace crates share one version).
    pub crates: BTreeMap<String, String>,
    /// Rayon threads of the pool the save ran in.
    pub threads: usize,
    pub machine: Machine,
    /// Seconds since the Unix epoch.
    pub created_unix_s: u64,
    pub global_step: u64,
}

/// FNV-1a (64-bit) of the compact JSON of `config`, as `fnv1a64:<16 hex digits>`: a stable
/// fingerprint to tell runs apart (not a cryptographic hash).
pub fn config_hash(config: &ConfigFile) -> String {
    let bytes = serde_json::to_vec(config).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("fnv1a64:{h:016x}")
}

fn git_info() -> &'static (String, Option<bool>) {
    static GIT: OnceLock<(String, Option<bool>)> = OnceLock::new();
    GIT.get_or_init(|| {
        let run = |args: &[&str]| {
            std::process::Command::new("git")
                .args(args)
                .stderr(std::process::Stdio::null())
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        let commit = run(&["rev-parse", "HEAD"])
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".into());
        let dirty = if commit == "unknown" {
            None
        } else {
            run(&["status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty())
        };
        (commit, dirty)
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

impl Provenance {
    /// Collects the provenance of a checkpoint of `config` at `global_step`.
    pub fn collect(config: &ConfigFile, global_step: u64) -> Self {
        let (commit, dirty) = git_info().clone();
        let mut crates = BTreeMap::new();
        crates.insert("vars-train".into(), env!("CARGO_PKG_VERSION").into());
        Provenance {
            git_commit: commit,
            git_dirty: dirty,
            config_hash: config_hash(config),
            crates,
            threads: rayon::current_num_threads(),
            machine: Machine {
                hostname: hostname(),
                os: std::env::consts::OS.into(),
                arch: std::env::consts::ARCH.into(),
                cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            },
            created_unix_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            global_step,
        }
    }
}

/// What a resume may differ in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResumePolicy {
    /// Accept a checkpoint whose `config.json` differs from the trainer's configuration (e.g. to
    /// extend `epochs`); the trainer's configuration is kept. Off by default: a resume with
    /// another recipe would silently not be the run it claims to continue.
    pub allow_config_change: bool,
}

/// Top-level keys of two JSON objects whose values differ.
fn differing_keys(a: &serde_json::Value, b: &serde_json::Value, prefix: &str) -> Vec<String> {
    match (a, b) {
        (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .filter(|k| x.get(*k) != y.get(*k))
                .map(|k| format!("{prefix}{k}"))
                .collect()
        }
        _ if a != b => vec![prefix.trim_end_matches('.').to_string()],
        _ => Vec::new(),
    }
}

impl<B: Backend, M: TrainModel<B>> Trainer<B, M> {
    fn config_file(&self) -> ConfigFile {
        ConfigFile {
            train: self.config.clone(),
            run: self.run_info.clone(),
        }
    }

    /// Writes a checkpoint of the current state through `ck` (module docs) and returns its
    /// directory.
    pub fn save_checkpoint(&self, ck: &mut Checkpointer) -> Result<PathBuf> {
        let pos = self.state.position;
        let config = self.config_file();
        let trainer = TrainerFile {
            format: TRAINER_FORMAT.into(),
            position: pos,
            epoch_sums: self.state.epoch_sums,
            steps_per_epoch: self.state.steps_per_epoch,
            rng: RngState {
                seed: self.config.seed,
                epoch: pos.epoch,
                step: pos.step,
                global_step: pos.global_step,
            },
            rng_derivation: "vars_train::seed::stream_seed(seed, stream, global_step, \
                             micro_batch) for drop path (stream 1) and mixup (stream 2); data \
                             order from the batch source's (epoch, index)"
                .into(),
            optimizer: self.config.optimizer.name().into(),
            ema: self.ema.is_some(),
        };
        let provenance = Provenance::collect(&config, pos.global_step);
        let model_sd = StateDict::from_model(&self.model)?;
        let opt_sd = self.optimizer.state_dict()?;
        ck.commit(pos.global_step, |dir| {
            model_sd.save(dir.join(files::MODEL))?;
            opt_sd.save(dir.join(files::OPTIMIZER))?;
            if let Some(ema) = &self.ema {
                ema.state_dict().save(dir.join(files::EMA))?;
            }
            for (name, bytes) in [
                (files::TRAINER, to_json(&trainer, dir)?),
                (files::CONFIG, to_json(&config, dir)?),
                (files::PROVENANCE, to_json(&provenance, dir)?),
            ] {
                write_synced(&dir.join(name), &bytes)?;
            }
            Ok(())
        })
    }

    /// Loads the checkpoint in `dir` into this trainer: model weights and buffers, optimiser
    /// state, EMA, position, epoch sums. Everything is read and checked against the model and
    /// the configuration first; on error nothing changes.
    pub fn load_checkpoint(&mut self, dir: &Path, policy: ResumePolicy) -> Result<()> {
        let trainer: TrainerFile = read_json(&dir.join(files::TRAINER))?;
        if trainer.format != TRAINER_FORMAT {
            return Err(TrainError::checkpoint(
                dir,
                format!("format `{}`, expected `{TRAINER_FORMAT}`", trainer.format),
                "load it with the vars-train version that wrote it",
            ));
        }
        let saved: ConfigFile = read_json(&dir.join(files::CONFIG))?;
        let current = self.config_file();
        if saved != current && !policy.allow_config_change {
            let a = serde_json::to_value(&saved).unwrap_or_default();
            let b = serde_json::to_value(&current).unwrap_or_default();
            let mut diff = Vec::new();
            for part in ["train", "run"] {
                diff.extend(differing_keys(&a[part], &b[part], &format!("{part}.")));
            }
            return Err(TrainError::checkpoint(
                dir,
                format!(
                    "it was trained with another configuration (differs in: {})",
                    diff.join(", ")
                ),
                "resume with the configuration in its config.json, or allow the change \
                 explicitly (ResumePolicy::allow_config_change)",
            ));
        }
        if trainer.ema != self.ema.is_some() {
            return Err(TrainError::checkpoint(
                dir,
                format!(
                    "EMA is {} in the checkpoint but {} in this run",
                    if trainer.ema { "on" } else { "off" },
                    if self.ema.is_some() { "on" } else { "off" }
                ),
                "use the same `ema_decay` setting as the run that wrote it",
            ));
        }
        let mut device = None;
        self.model.visit(&mut |_, t, _| {
            if device.is_none() {
                device = Some(t.device().clone());
            }
        });
        let Some(device) = device else {
            return Err(TrainError::checkpoint(
                dir,
                "the model has no tensors",
                "load into the model the checkpoint was trained with",
            ));
        };
        let model_sd = StateDict::<Autodiff<B>>::load(dir.join(files::MODEL), &device)?;
        let opt_sd = StateDict::<B>::load(dir.join(files::OPTIMIZER), &device)?;
        let mut optimizer =
            Optimizer::new(self.config.optimizer.clone(), self.config.decay.clone())?;
        optimizer.load_state_dict(&opt_sd, &self.model)?;
        let ema = match self.config.ema_decay {
            Some(decay) => {
                let sd = StateDict::<B>::load(dir.join(files::EMA), &device)?;
                let mut ema = crate::ema::Ema::new(&self.model, decay)?;
                ema.load_state_dict(sd, &self.model)?;
                Some(ema)
            }
            None => None,
        };
        model_sd.load_into(&mut self.model, true)?;
        self.optimizer = optimizer;
        self.ema = ema;
        self.state.position = trainer.position;
        self.state.epoch_sums = trainer.epoch_sums;
        self.state.steps_per_epoch = trainer.steps_per_epoch;
        Ok(())
    }

    /// Loads the newest checkpoint of `ck`, if there is one, and returns its path.
    pub fn resume(&mut self, ck: &Checkpointer, policy: ResumePolicy) -> Result<Option<PathBuf>> {
        match ck.latest()? {
            Some(p) => {
                self.load_checkpoint(&p, policy)?;
                Ok(Some(p))
            }
            None => Ok(None),
        }
    }
}

/// Reads a checkpoint's `provenance.json`.
pub fn read_provenance(dir: &Path) -> Result<Provenance> {
    read_json(&dir.join(files::PROVENANCE))
}

/// Reads a checkpoint's `trainer.json`.
pub fn read_trainer_file(dir: &Path) -> Result<TrainerFile> {
    read_json(&dir.join(files::TRAINER))
}

/// Reads a checkpoint's `config.json`.
pub fn read_config(dir: &Path) -> Result<ConfigFile> {
    read_json(&dir.join(files::CONFIG))
}
