//! Checkpoint I/O: [`StateDict`] (official state-dict name → tensor), safetensors load and save,
//! and strict or lenient loading into a model through [`crate::Parameters`].
//!
//! Keys are the official PyTorch names, 1:1 (vars-spec §4.8), so a checkpoint exported from the
//! official code with `safetensors.torch.save_file(model.state_dict(), ...)` loads without a
//! renaming table, and a checkpoint saved here loads into the official model. The parity
//! fixtures store the same names under a `param.` prefix; [`StateDict::strip_prefix`] removes it.
//!
//! ```no_run
//! # use vars_core::Backend;
//! # fn demo<B: Backend>(model: &mut impl vars_vit::Parameters<B>, device: &B::Device)
//! #     -> vars_vit::Result<()> {
//! use vars_vit::io::StateDict;
//! let fixture = StateDict::<B>::load("model_vars_d.safetensors", device)?;
//! fixture.strip_prefix("param.").load_into(model, true)?; // strict: all keys must line up
//! StateDict::from_model(model)?.save("checkpoint.safetensors")?; // atomic replace
//! # Ok(()) }
//! ```

mod atomic;
pub mod pth;
mod safetensors;
mod state_dict;

pub use pth::{
    convert_pth, load_pth, load_pth_with, ConvertReport, FeatureNorm, PthCheckpoint, PthOptions,
};
pub use state_dict::{LoadReport, Mismatch, StateDict};
