//! The zip archives `torch.save` writes (PyTorch's own miniz-based writer): entries stored
//! uncompressed, zip64 records always present. Only that is read: the end-of-central-directory
//! record (and its zip64 form), the central directory, and each entry's local header, every
//! offset checked against the data. Entries are slices of the file, so nothing is allocated
//! for a size a header merely claims.
//!
//! The `zip` crate (a dependency of candle-core) was tried first; it rejects some archives
//! that torch.save writes and Python's `zipfile` reads ("Invalid Central Directory header").

const EOCD: &[u8; 4] = b"PK\x05\x06";
const EOCD64_LOCATOR: &[u8; 4] = b"PK\x06\x07";
const EOCD64: &[u8; 4] = b"PK\x06\x06";
const CENTRAL: &[u8; 4] = b"PK\x01\x02";
const LOCAL: &[u8; 4] = b"PK\x03\x04";
/// The EOCD record is 22 bytes followed by a comment of at most 65,535.
const EOCD_SEARCH: usize = 22 + 65_535;

/// One stored entry: its name and where its bytes lie in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub start: usize,
    pub len: usize,
}

fn bytes<const N: usize>(data: &[u8], at: usize) -> Result<[u8; N], String> {
    at.checked_add(N)
        .and_then(|end| data.get(at..end))
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("a record at byte {at} runs past the end ({} bytes)", data.len()))
}

fn u16_at(data: &[u8], at: usize) -> Result<usize, String> {
    Ok(u16::from_le_bytes(bytes(data, at)?).into())
}

fn u32_at(data: &[u8], at: usize) -> Result<u64, String> {
    Ok(u32::from_le_bytes(bytes(data, at)?).into())
}

fn u64_at(data: &[u8], at: usize) -> Result<u64, String> {
    Ok(u64::from_le_bytes(bytes(data, at)?))
}

fn offset(v: u64, data: &[u8]) -> Result<usize, String> {
    usize::try_from(v)
        .ok()
        .filter(|&v| v <= data.len())
        .ok_or_else(|| format!("offset {v} is past the end ({} bytes)", data.len()))
}

/// Every entry of the archive, in central-directory order.
pub fn entries(data: &[u8]) -> Result<Vec<Entry>, String> {
    let search_from = data.len().saturating_sub(EOCD_SEARCH);
    let eocd = (search_from..data.len().saturating_sub(21))
        .rev()
        .find(|&i| &data[i..i + 4] == EOCD)
        .ok_or("no end-of-central-directory record")?;
    let (mut count, mut dir_size, mut dir_start) =
        (u16_at(data, eocd + 10)? as u64, u32_at(data, eocd + 12)?, u32_at(data, eocd + 16)?);
    if eocd >= 20 && &data[eocd - 20..eocd - 16] == EOCD64_LOCATOR {
        let eocd64 = offset(u64_at(data, eocd - 20 + 8)?, data)?;
        if bytes::<4>(data, eocd64)? != *EOCD64 {
            return Err(format!("no zip64 end-of-central-directory record at byte {eocd64}"));
        }
        count = u64_at(data, eocd64 + 32)?;
        dir_size = u64_at(data, eocd64 + 40)?;
        dir_start = u64_at(data, eocd64 + 48)?;
    }
    let mut at = offset(dir_start, data)?;
    let dir_end = offset(dir_start.saturating_add(dir_size), data)?;
    let mut entries = Vec::new();
    // A central header takes 46 bytes, so the count cannot promise more entries than fit.
    for _ in 0..count.min((dir_end - at) as u64 / 46) {
        if bytes::<4>(data, at)? != *CENTRAL {
            return Err(format!("no central directory header at byte {at}"));
        }
        let method = u16_at(data, at + 10)?;
        let mut compressed = u32_at(data, at + 20)?;
        let mut uncompressed = u32_at(data, at + 24)?;
        let (name_len, extra_len, comment_len) =
            (u16_at(data, at + 28)?, u16_at(data, at + 30)?, u16_at(data, at + 32)?);
        let mut local = u32_at(data, at + 42)?;
        let name_start = at + 46;
        let name = data.get(name_start..name_start + name_len).ok_or("an entry name runs past the end")?;
        let name = String::from_utf8_lossy(name).into_owned();
        // The zip64 extra field holds, in this order, whichever 32-bit fields are saturated.
        let mut extra = name_start + name_len;
        let extra_end = extra + extra_len;
        while extra + 4 <= extra_end {
            let (id, len) = (u16_at(data, extra)?, u16_at(data, extra + 2)?);
            if id == 1 {
                let mut field = extra + 4;
                for value in [&mut uncompressed, &mut compressed, &mut local] {
                    if *value == u64::from(u32::MAX) {
                        *value = u64_at(data, field)?;
                        field += 8;
                    }
                }
            }
            extra += 4 + len;
        }
        if method != 0 || compressed != uncompressed {
            return Err(format!(
                "entry `{name}` is compressed (method {method}); torch.save stores entries uncompressed"
            ));
        }
        let local = offset(local, data)?;
        if bytes::<4>(data, local)? != *LOCAL {
            return Err(format!("entry `{name}`: no local header at byte {local}"));
        }
        let start = local + 30 + u16_at(data, local + 26)? + u16_at(data, local + 28)?;
        let len = usize::try_from(compressed).map_err(|_| format!("entry `{name}` is too large"))?;
        if start.checked_add(len).is_none_or(|end| end > data.len()) {
            return Err(format!(
                "entry `{name}` ({len} bytes at byte {start}) runs past the end ({} bytes)",
                data.len()
            ));
        }
        entries.push(Entry { name, start, len });
        at = extra_end + comment_len;
    }
    if (entries.len() as u64) < count {
        return Err(format!("the central directory lists {count} entries but holds {}", entries.len()));
    }
    Ok(entries)
}
