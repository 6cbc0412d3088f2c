//! `vars make-c`: a corrupted copy of a data set, in parallel, with a progress bar.

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use vars_data::corruptions::Corruption;
use vars_data::make_c::{MakeC, MakeCConfig, OutputFormat};

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  vars make-c val/ imagenet-c/ --resize 256 --crop 224 --corruptions benchmark\n  vars make-c t10k-images-idx3-ubyte.gz fmnist-c/ --params cifar\n\nLayout: OUT/<corruption>/<severity>/<relative path> for folders; OUT/<corruption>/<severity>/<IDX name> for IDX input. OUT/make-c.json records the settings."
)]
pub struct Args {
    /// Input: a folder of PNG/JPEG images (any depth, e.g. class/file) or an IDX file (.gz accepted).
    input: PathBuf,
    /// Output folder.
    output: PathBuf,
    /// Comma-separated names, or `all` (19), `benchmark` (the 15 of mCE), `extras` (4).
    #[arg(long, default_value = "all")]
    corruptions: String,
    /// Comma-separated severities.
    #[arg(long, default_value = "1,2,3,4,5")]
    severities: String,
    /// Parameter table: auto (per image: CIFAR-10-C's up to 84 px, ImageNet-C's above), imagenet, cifar.
    #[arg(long, default_value = "auto")]
    params: String,
    /// Base seed; image i gets image_seed(seed, corruption, severity, i).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Folders: output format, jpeg (ImageNet-C's quality-85 save) or png.
    #[arg(long, default_value = "jpeg")]
    format: String,
    /// Folders: JPEG quality.
    #[arg(long, default_value_t = 85)]
    quality: u8,
    /// Folders: resize the shorter side to this first (ImageNet-C: 256).
    #[arg(long)]
    resize: Option<usize>,
    /// Folders: centre-crop to this square first (ImageNet-C: 224).
    #[arg(long)]
    crop: Option<usize>,
    /// IDX: gzip the output files.
    #[arg(long)]
    gzip: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

fn parse_corruptions(s: &str) -> Result<Vec<Corruption>, String> {
    match s.trim() {
        "all" => Ok(Corruption::all().collect()),
        "benchmark" => Ok(Corruption::BENCHMARK.to_vec()),
        "extras" => Ok(Corruption::EXTRAS.to_vec()),
        list => list
            .split(',')
            .map(|n| Corruption::from_name(n).map_err(|e| e.to_string()))
            .collect(),
    }
}

fn parse_severities(s: &str) -> Result<Vec<u8>, String> {
    s.split(',')
        .map(|v| {
            let v = v.trim();
            match v.parse::<u8>() {
                Ok(n @ 1..=5) => Ok(n),
                _ => Err(format!(
                    "severity `{v}` is out of range: severities are the integers 1 to 5"
                )),
            }
        })
        .collect()
}

pub fn run(args: Args) -> Result<(), String> {
    let mut cfg = MakeCConfig::new(&args.input, &args.output);
    cfg.corruptions = parse_corruptions(&args.corruptions)?;
    cfg.severities = parse_severities(&args.severities)?;
    cfg.params = super::parse_params(&args.params)?;
    cfg.seed = args.seed;
    cfg.format = match args.format.to_ascii_lowercase().as_str() {
        "jpeg" | "jpg" => OutputFormat::Jpeg {
            quality: args.quality,
        },
        "png" => OutputFormat::Png,
        other => return Err(format!("--format {other}: use jpeg or png")),
    };
    cfg.resize = args.resize;
    cfg.crop = args.crop;
    cfg.gzip = args.gzip;
    let job = MakeC::new(cfg).map_err(|e| e.to_string())?;
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(job.total())
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} images ({per_sec}, eta {eta})",
        )
        .map_err(|e| e.to_string())?
        .progress_chars("=> "),
    );
    let work = || job.run(&|n| bar.inc(n));
    let summary = match args.threads {
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| format!("cannot start {n} threads: {e}"))?
            .install(work),
        None => work(),
    }
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    eprintln!(
        "{} input images -> {} corrupted images in {} files under {}",
        summary.images,
        summary.written,
        summary.files,
        args.output.display()
    );
    Ok(())
}
