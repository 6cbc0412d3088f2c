//! The subcommands, one module each.

pub mod corrupt;
pub mod make_c;

use clap::Subcommand;

/// Every subcommand of `vars`.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Corrupt one image (PNG or JPEG), like the Python `imagecorruptions` package.
    Corrupt(corrupt::Args),
    /// Write a corrupted copy of a data set: ImageNet-C layout for image folders, one IDX file
    /// per corruption and severity for IDX input.
    #[command(name = "make-c")]
    MakeC(make_c::Args),
}

/// Runs a subcommand; errors come back as the message to print.
pub fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Corrupt(args) => corrupt::run(args),
        Command::MakeC(args) => make_c::run(args),
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
