//! `vars corrupt`: one image, one corruption, one severity.

use std::path::PathBuf;

use vars_data::corruptions::{corrupt, Corruption, ParamSet, Params};
use vars_data::io::{read_image, write_image};
use vars_data::rng::image_seed;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  vars corrupt --corruption fog --severity 3 photo.jpg fog3.png\n  vars corrupt --corruption shot_noise --severity 5 --params cifar --seed 7 digit.png out.png\n  vars corrupt --list"
)]
pub struct Args {
    /// Corruption name (see --list), e.g. gaussian_noise, zoom_blur, frost, jpeg_compression.
    #[arg(short, long, required_unless_present = "list")]
    corruption: Option<String>,
    /// Severity, 1 to 5.
    #[arg(short, long, required_unless_present = "list", value_parser = clap::value_parser!(u8))]
    severity: Option<u8>,
    /// Parameter table: auto (CIFAR-10-C's up to 84 px, ImageNet-C's above), imagenet, cifar.
    #[arg(long, default_value = "auto")]
    params: String,
    /// Base seed of the random corruptions.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Image index within its data set (enters the seed: image_seed(seed, corruption, severity, index)).
    #[arg(long, default_value_t = 0)]
    index: u64,
    /// JPEG quality when OUT ends in .jpg/.jpeg (PNG is lossless).
    #[arg(long, default_value_t = 95)]
    quality: u8,
    /// List the corruptions and their parameters, then exit.
    #[arg(long)]
    list: bool,
    /// Input image (PNG or JPEG; grey stays grey, alpha is dropped).
    #[arg(required_unless_present = "list")]
    input: Option<PathBuf>,
    /// Output image (.png or .jpg/.jpeg).
    #[arg(required_unless_present = "list")]
    output: Option<PathBuf>,
}

fn list() {
    for set in [ParamSet::ImageNetC, ParamSet::Cifar10C] {
        println!("{} ({} px):", set.name(), set.native_size());
        for c in Corruption::all() {
            let kind = if c.is_benchmark() { "" } else { " (extra)" };
            println!("  {}{kind}", c.name());
            for s in 1..=5 {
                println!(
                    "    {s}: {:?}",
                    Params::table(c, s, set).expect("valid severity")
                );
            }
        }
    }
}

pub fn run(args: Args) -> Result<(), String> {
    if args.list {
        list();
        return Ok(());
    }
    let (Some(name), Some(severity), Some(input), Some(output)) =
        (args.corruption, args.severity, args.input, args.output)
    else {
        return Err("missing arguments: vars corrupt --corruption NAME --severity S IN OUT".into());
    };
    let c = Corruption::from_name(&name).map_err(|e| e.to_string())?;
    let img = read_image(&input).map_err(|e| e.to_string())?;
    let set = super::parse_params(&args.params)?
        .unwrap_or_else(|| ParamSet::for_size(img.width(), img.height()));
    let seed = image_seed(args.seed, c, severity, args.index);
    let out = corrupt(&img, c, severity, set, seed).map_err(|e| e.to_string())?;
    write_image(&output, &out, args.quality).map_err(|e| e.to_string())?;
    eprintln!(
        "{} severity {severity} ({} parameters, seed {}) -> {}",
        c.name(),
        set.name(),
        if c.is_random() {
            seed.to_string()
        } else {
            "unused".into()
        },
        output.display()
    );
    Ok(())
}
