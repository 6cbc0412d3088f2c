//! Fuzz target for the restricted `.pth` reader: any byte string must load or fail with an
//! error, never panic, hang or allocate without bound.
//!
//! The input is used two ways: as a whole `.pth` file (exercising the zip reader), and as the
//! `data.pkl` of an otherwise valid archive whose storages `0`..`3` exist (exercising the pickle
//! machine, the allowlist and tensor materialisation, which a random zip rarely reaches).
//! Run from `crates/vars-vit/fuzz` with `cargo +nightly fuzz run pth_reader`; see docs/pth.md.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vars_cpu::{Cpu, CpuDevice};
use vars_vit::io::pth::{load_pth_bytes, PthOptions, UnknownGlobals};

fuzz_target!(|data: &[u8]| {
    let strict = PthOptions::default();
    let _ = load_pth_bytes::<Cpu>(data, &CpuDevice, &strict);

    let inert = PthOptions {
        unknown_globals: UnknownGlobals::Inert,
        verify_crc: false,
        ..PthOptions::default()
    };
    let archive = wrap(data);
    let _ = load_pth_bytes::<Cpu>(&archive, &CpuDevice, &inert);
});

/// A stored zip holding `a/data.pkl` = `pickle` and four 64-byte storages `a/data/0`..`3`.
fn wrap(pickle: &[u8]) -> Vec<u8> {
    let mut entries: Vec<(String, Vec<u8>)> = vec![("a/data.pkl".into(), pickle.to_vec())];
    for k in 0..4 {
        entries.push((format!("a/data/{k}"), (0..64u8).collect()));
    }
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in &entries {
        let off = out.len() as u32;
        let len = data.len() as u32;
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&0u32.to_le_bytes()); // CRC 0: not checked
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        central.extend_from_slice(&0u32.to_le_bytes());
        central.extend_from_slice(&len.to_le_bytes());
        central.extend_from_slice(&len.to_le_bytes());
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 12]);
        central.extend_from_slice(&off.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_off = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    let n = entries.len() as u16;
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_off.to_le_bytes());
    out.extend_from_slice(&[0; 2]);
    out
}
