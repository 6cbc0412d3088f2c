//! The subcommands, one module each.

pub mod convert;
pub mod corrupt;
pub mod demo;
pub mod eval;
pub mod info;
pub mod make_c;
pub mod parity;
pub mod train;

use clap::Subcommand;

/// Every subcommand of `vars`.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a model (small-image model, RVT, DeiT; any attention) with progress bars, a JSONL
    /// metrics log, loss/accuracy plots and resumable checkpoints.
    Train(train::Args),
    /// Evaluate trained weights: clean accuracy and accuracy under a corruption per severity.
    Eval(eval::Args),
    /// Layers, parameter counts (trainable/frozen) and MACs/FLOPs per image of a model.
    Info(info::Args),
    /// The robustness demo: self-attention vs VARS-D vs no attention on Fashion-MNIST, clean and
    /// under Gaussian noise (CIFAR-10-C severities 1-5), in under 5 minutes on 2 CPU cores.
    Demo(demo::Args),
    /// Check the models against fixtures of the official PyTorch code (exit 1 on a failed
    /// fixture, 2 on a usage or input error).
    Parity(parity::Args),
    /// Convert an official PyTorch `.pth` checkpoint to safetensors (official tensor names).
    Convert(convert::Args),
    /// Corrupt one image (PNG or JPEG), like the Python `imagecorruptions` package.
    Corrupt(corrupt::Args),
    /// Write a corrupted copy of a data set: ImageNet-C layout for image folders, one IDX file
    /// per corruption and severity for IDX input.
    #[command(name = "make-c")]
    MakeC(make_c::Args),
}

/// Why a command failed: the message to print (one line, with what to do) and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure { message, code: 1 }
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Self {
        Failure::from(message.to_string())
    }
}

/// Runs a subcommand.
pub fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Train(args) => train::run(args).map_err(Failure::from),
        Command::Eval(args) => eval::run(args).map_err(Failure::from),
        Command::Info(args) => info::run(args).map_err(Failure::from),
        Command::Demo(args) => demo::run(args).map_err(Failure::from),
        Command::Parity(args) => parity::run(args),
        Command::Convert(args) => convert::run(args).map_err(Failure::from),
        Command::Corrupt(args) => corrupt::run(args).map_err(Failure::from),
        Command::MakeC(args) => make_c::run(args).map_err(Failure::from),
    }
}

/// `--params`: `auto` (the size rule), `imagenet` or `cifar`.
pub fn parse_params(s: &str) -> Result<Option<vars_data::ParamSet>, String> {
    if s.eq_ignore_ascii_case("auto") {
        Ok(None)
    } else {
        vars_data::ParamSet::from_name(s)
            .map(Some)
            .map_err(|e| e.to_string())
    }
}

/// Runs `work` on a rayon pool of `threads` threads (all cores when `None`).
pub fn with_threads<T>(
    threads: Option<usize>,
    work: impl FnOnce() -> Result<T, String> + Send,
) -> Result<T, String>
where
    T: Send,
{
    let n = threads.unwrap_or_else(default_threads);
    if n == 0 {
        return Err("--threads 0: use at least one thread (default: all cores)".into());
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .map_err(|e| format!("cannot start {n} threads: {e}"))?
        .install(work)
}

/// The available cores.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
