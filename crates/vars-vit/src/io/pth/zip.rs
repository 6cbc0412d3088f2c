//! A minimal, bounds-checked zip reader for the archives `torch.save` writes.
//!
//! Only what a `.pth` needs: the end-of-central-directory record (with its zip64 variant), the
//! central directory, and the local headers that locate each entry's bytes. Entries must be
//! *stored* (method 0, which is all `torch.save` writes); compressed or encrypted entries are
//! reported, never decoded. Every offset and length read from the file is checked against the
//! buffer before it is used, so a truncated or hostile archive is an error, never a panic or an
//! out-of-bounds read, and nothing is allocated in proportion to a declared (unchecked) count.

use super::Fail;
use std::collections::HashMap;

const SIG_LOCAL: u32 = 0x0403_4b50;
const SIG_CENTRAL: u32 = 0x0201_4b50;
const SIG_EOCD: u32 = 0x0605_4b50;
const SIG_ZIP64_EOCD: u32 = 0x0606_4b50;
const SIG_ZIP64_LOCATOR: u32 = 0x0706_4b50;
const EOCD_LEN: usize = 22;
const CENTRAL_LEN: usize = 46;
const LOCAL_LEN: usize = 30;
const ZIP64_LOCATOR_LEN: usize = 20;
const ZIP64_EOCD_LEN: usize = 56;
/// The longest zip comment, i.e. how far before the end the EOCD record can start.
const MAX_COMMENT: usize = 0xFFFF;

/// One archive member, with its data range already validated against the buffer.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub name: String,
    /// 0 = stored, 8 = deflate, anything else is some other compression.
    pub method: u16,
    /// General-purpose flags; bit 0 means encrypted.
    pub flags: u16,
    pub crc32: u32,
    /// Size of the bytes in the archive (compressed size).
    pub stored_size: u64,
    /// Size after decompression (equal to `stored_size` for stored entries).
    pub size: u64,
    /// Where the entry's bytes begin in the buffer.
    pub data_start: usize,
}

/// A parsed archive borrowing the file's bytes.
pub(crate) struct Archive<'a> {
    buf: &'a [u8],
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
}

/// Little-endian field readers over a slice; `None` when the slice is too short.
fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

fn truncated(what: String) -> Fail {
    Fail::Corrupt(format!("truncated zip archive: {what}"))
}

fn to_usize(v: u64, what: &str) -> Result<usize, Fail> {
    usize::try_from(v).map_err(|_| Fail::Corrupt(format!("{what} {v} does not fit in memory")))
}

impl<'a> Archive<'a> {
    /// Parses the central directory of `buf` and locates every entry's data.
    pub fn parse(buf: &'a [u8]) -> Result<Self, Fail> {
        let eocd = find_eocd(buf).ok_or_else(|| {
            if buf.starts_with(b"PK\x03\x04") {
                truncated(format!(
                    "no end-of-central-directory record in the last {} bytes of the {}-byte \
                     file (the end of the file is missing; it was probably cut off while \
                     downloading or copying)",
                    (EOCD_LEN + MAX_COMMENT).min(buf.len()),
                    buf.len()
                ))
            } else {
                Fail::Corrupt("not a zip archive: no end-of-central-directory record".to_string())
            }
        })?;

        let mut n_entries = u64::from(u16_at(buf, eocd + 10).unwrap_or(0));
        let mut cd_size = u64::from(u32_at(buf, eocd + 12).unwrap_or(0));
        let mut cd_offset = u64::from(u32_at(buf, eocd + 16).unwrap_or(0));
        let disk = u16_at(buf, eocd + 4).unwrap_or(0);
        if disk != 0 {
            return Err(Fail::Unsupported(
                "the zip archive spans several disks".to_string(),
                super::HINT_RESAVE,
            ));
        }

        // zip64: the locator sits right before the EOCD record and points at the zip64 EOCD.
        let needs_zip64 = n_entries == 0xFFFF || cd_size == 0xFFFF_FFFF || cd_offset == 0xFFFF_FFFF;
        let locator = eocd
            .checked_sub(ZIP64_LOCATOR_LEN)
            .filter(|&at| u32_at(buf, at) == Some(SIG_ZIP64_LOCATOR));
        if let Some(at) = locator {
            let z_off = u64_at(buf, at + 8).unwrap_or(u64::MAX);
            let z = usize::try_from(z_off)
                .ok()
                .filter(|&z| {
                    z.checked_add(ZIP64_EOCD_LEN)
                        .is_some_and(|e| e <= buf.len())
                        && u32_at(buf, z) == Some(SIG_ZIP64_EOCD)
                })
                .ok_or_else(|| {
                    truncated(format!(
                        "the zip64 locator points at byte {z_off}, where no zip64 \
                         end-of-central-directory record is"
                    ))
                })?;
            n_entries = u64_at(buf, z + 32).unwrap_or(0);
            cd_size = u64_at(buf, z + 40).unwrap_or(0);
            cd_offset = u64_at(buf, z + 48).unwrap_or(0);
        } else if needs_zip64 {
            return Err(truncated(
                "the end-of-central-directory record needs a zip64 record, which is missing"
                    .to_string(),
            ));
        }

        let cd_start = to_usize(cd_offset, "central directory offset")?;
        let cd_len = to_usize(cd_size, "central directory size")?;
        let cd = cd_start
            .checked_add(cd_len)
            .and_then(|end| buf.get(cd_start..end))
            .ok_or_else(|| {
                truncated(format!(
                    "the central directory [{cd_offset}, +{cd_size}) lies outside the \
                     {}-byte file",
                    buf.len()
                ))
            })?;
        // Each central record is at least 46 bytes, which bounds a hostile entry count.
        if n_entries > (cd.len() / CENTRAL_LEN) as u64 {
            return Err(Fail::Corrupt(format!(
                "the zip archive declares {n_entries} entries, but its {}-byte central \
                 directory can hold at most {}",
                cd.len(),
                cd.len() / CENTRAL_LEN
            )));
        }

        let mut entries = Vec::with_capacity(n_entries as usize);
        let mut index = HashMap::with_capacity(n_entries as usize);
        let mut pos = 0usize;
        for i in 0..n_entries {
            let entry = parse_central(buf, cd, &mut pos).map_err(|e| match e {
                Fail::Corrupt(p) => Fail::Corrupt(format!("zip entry #{i}: {p}")),
                other => other,
            })?;
            if index.insert(entry.name.clone(), entries.len()).is_some() {
                return Err(Fail::Corrupt(format!(
                    "the zip archive holds two entries named `{}`",
                    entry.name.escape_debug()
                )));
            }
            entries.push(entry);
        }
        Ok(Archive {
            buf,
            entries,
            index,
        })
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn find(&self, name: &str) -> Option<&Entry> {
        self.index.get(name).and_then(|&i| self.entries.get(i))
    }

    /// The bytes of a stored entry, optionally checking its CRC-32 (a stored CRC of 0 means
    /// "not computed", which `torch.serialization.set_crc32_options(False)` produces, and is
    /// not checked).
    pub fn data(&self, e: &Entry, verify_crc: bool) -> Result<&'a [u8], Fail> {
        if e.flags & 1 != 0 {
            return Err(Fail::Unsupported(
                format!("zip entry `{}` is encrypted", e.name.escape_debug()),
                super::HINT_RESAVE,
            ));
        }
        if e.method != 0 {
            let what = if e.method == 8 {
                "deflate-compressed".to_string()
            } else {
                format!("compressed with zip method {}", e.method)
            };
            return Err(Fail::Unsupported(
                format!(
                    "zip entry `{}` is {what} ({} bytes for {}); this reader accepts only stored \
                     (uncompressed) entries, which is what torch.save writes",
                    e.name.escape_debug(),
                    e.stored_size,
                    e.size
                ),
                super::HINT_COMPRESSED,
            ));
        }
        let len = to_usize(e.size, "entry size")?;
        let data = e
            .data_start
            .checked_add(len)
            .and_then(|end| self.buf.get(e.data_start..end))
            .ok_or_else(|| {
                truncated(format!(
                    "entry `{}` needs bytes [{}, +{len}) of a {}-byte file",
                    e.name.escape_debug(),
                    e.data_start,
                    self.buf.len()
                ))
            })?;
        if verify_crc && e.crc32 != 0 {
            let got = crc32(data);
            if got != e.crc32 {
                return Err(Fail::Corrupt(format!(
                    "zip entry `{}` fails its CRC-32 check (stored {:08x}, computed {got:08x}): \
                     its bytes were altered",
                    e.name.escape_debug(),
                    e.crc32
                )));
            }
        }
        Ok(data)
    }
}

/// The position of the end-of-central-directory record: the last signature within the final
/// 22 + 65535 bytes whose comment length reaches exactly to the end of the file, else the last
/// signature found at all.
fn find_eocd(buf: &[u8]) -> Option<usize> {
    let last = buf.len().checked_sub(EOCD_LEN)?;
    let first = last.saturating_sub(MAX_COMMENT);
    let mut fallback = None;
    for at in (first..=last).rev() {
        if u32_at(buf, at) != Some(SIG_EOCD) {
            continue;
        }
        let comment = usize::from(u16_at(buf, at + 20).unwrap_or(0));
        if at + EOCD_LEN + comment == buf.len() {
            return Some(at);
        }
        fallback.get_or_insert(at);
    }
    fallback
}

/// Parses the central record at `cd[*pos..]`, advances `pos`, and validates the local header
/// it points to.
fn parse_central(buf: &[u8], cd: &[u8], pos: &mut usize) -> Result<Entry, Fail> {
    let at = *pos;
    let short = || Fail::Corrupt("the central directory ends inside a record".to_string());
    if u32_at(cd, at) != Some(SIG_CENTRAL) {
        return Err(Fail::Corrupt(format!(
            "no central-directory signature at byte {at} of the central directory"
        )));
    }
    let flags = u16_at(cd, at + 8).ok_or_else(short)?;
    let method = u16_at(cd, at + 10).ok_or_else(short)?;
    let crc32 = u32_at(cd, at + 16).ok_or_else(short)?;
    let mut stored_size = u64::from(u32_at(cd, at + 20).ok_or_else(short)?);
    let mut size = u64::from(u32_at(cd, at + 24).ok_or_else(short)?);
    let name_len = usize::from(u16_at(cd, at + 28).ok_or_else(short)?);
    let extra_len = usize::from(u16_at(cd, at + 30).ok_or_else(short)?);
    let comment_len = usize::from(u16_at(cd, at + 32).ok_or_else(short)?);
    let mut local = u64::from(u32_at(cd, at + 42).ok_or_else(short)?);

    let name_start = at + CENTRAL_LEN;
    let extra_start = name_start + name_len;
    let end = extra_start + extra_len + comment_len;
    let name = cd.get(name_start..extra_start).ok_or_else(short)?;
    let extra = cd
        .get(extra_start..extra_start + extra_len)
        .ok_or_else(short)?;
    if end > cd.len() {
        return Err(short());
    }
    *pos = end;
    let name = String::from_utf8(name.to_vec())
        .map_err(|_| Fail::Corrupt("an entry name is not UTF-8".to_string()))?;

    // zip64 extended information: the 64-bit values replace, in order, those of the 32-bit
    // fields that are saturated.
    let mut x = 0usize;
    while x + 4 <= extra.len() {
        let id = u16_at(extra, x).unwrap_or(0);
        let len = usize::from(u16_at(extra, x + 2).unwrap_or(0));
        let body = extra.get(x + 4..x + 4 + len).ok_or_else(|| {
            Fail::Corrupt(format!(
                "entry `{}`: an extra field runs past its record",
                name.escape_debug()
            ))
        })?;
        if id == 0x0001 {
            let mut f = 0usize;
            let mut next = |field: &mut u64, saturated: bool| -> Result<(), Fail> {
                if saturated {
                    *field = u64_at(body, f).ok_or_else(|| {
                        Fail::Corrupt(format!(
                            "entry `{}`: the zip64 extra field is too short",
                            name.escape_debug()
                        ))
                    })?;
                    f += 8;
                }
                Ok(())
            };
            let (s, c, l) = (
                size == 0xFFFF_FFFF,
                stored_size == 0xFFFF_FFFF,
                local == 0xFFFF_FFFF,
            );
            next(&mut size, s)?;
            next(&mut stored_size, c)?;
            next(&mut local, l)?;
        }
        x += 4 + len;
    }

    if method == 0 && stored_size != size {
        return Err(Fail::Corrupt(format!(
            "stored entry `{}` has {stored_size} bytes in the archive but a size of {size}",
            name.escape_debug()
        )));
    }

    // The local header repeats the name and carries its own extra field (torch.save pads it so
    // that tensor data is 64-byte aligned), so the data starts after *its* lengths.
    let lh = to_usize(local, "local header offset")?;
    if u32_at(buf, lh) != Some(SIG_LOCAL) {
        return Err(Fail::Corrupt(format!(
            "entry `{}`: no local header at byte {local} (the archive is damaged or truncated)",
            name.escape_debug()
        )));
    }
    let lname = usize::from(u16_at(buf, lh + 26).ok_or_else(|| truncated(name.clone()))?);
    let lextra = usize::from(u16_at(buf, lh + 28).ok_or_else(|| truncated(name.clone()))?);
    let data_start = lh + LOCAL_LEN + lname + lextra;
    data_start
        .checked_add(to_usize(stored_size, "entry size")?)
        .filter(|&e| e <= buf.len())
        .ok_or_else(|| {
            truncated(format!(
                "entry `{}` needs bytes [{data_start}, +{stored_size}) of a {}-byte file",
                name.escape_debug(),
                buf.len()
            ))
        })?;
    Ok(Entry {
        name,
        method,
        flags,
        crc32,
        stored_size,
        size,
        data_start,
    })
}

/// CRC-32 (IEEE 802.3, the zip polynomial), slicing-by-8.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    static TABLES: std::sync::OnceLock<[[u32; 256]; 8]> = std::sync::OnceLock::new();
    let t = TABLES.get_or_init(|| {
        let mut t = [[0u32; 256]; 8];
        for i in 0..256u32 {
            let mut c = i;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            t[0][i as usize] = c;
        }
        for i in 0..256 {
            for k in 1..8 {
                let prev = t[k - 1][i];
                t[k][i] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            }
        }
        t
    });
    let mut c = !0u32;
    let mut chunks = data.chunks_exact(8);
    for ch in &mut chunks {
        let lo = u32::from_le_bytes([ch[0], ch[1], ch[2], ch[3]]) ^ c;
        let hi = u32::from_le_bytes([ch[4], ch[5], ch[6], ch[7]]);
        c = t[7][(lo & 0xFF) as usize]
            ^ t[6][((lo >> 8) & 0xFF) as usize]
            ^ t[5][((lo >> 16) & 0xFF) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][(hi & 0xFF) as usize]
            ^ t[2][((hi >> 8) & 0xFF) as usize]
            ^ t[1][((hi >> 16) & 0xFF) as usize]
            ^ t[0][(hi >> 24) as usize];
    }
    for &b in chunks.remainder() {
        c = t[0][((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_known_values() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        let long: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        // Bytewise reference.
        let mut c = !0u32;
        for &b in &long {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        assert_eq!(crc32(&long), !c);
    }

    #[test]
    fn garbage_is_not_a_zip() {
        assert!(Archive::parse(b"").is_err());
        assert!(Archive::parse(&[0u8; 100]).is_err());
        // An EOCD claiming a central directory beyond the file.
        let mut b = vec![0u8; 22];
        b[..4].copy_from_slice(&SIG_EOCD.to_le_bytes());
        b[10] = 1;
        b[12..16].copy_from_slice(&100u32.to_le_bytes());
        assert!(Archive::parse(&b).is_err());
    }
}
