//! Importers: weights released in other formats, converted to safetensors in torchvision's
//! tensor names with a [`crate::weights::Provenance`] recording what the names cannot say
//! (source, stride placement, stem pool, input convention). After conversion a model is an
//! ordinary weights file; nothing downstream knows where it came from.
//!
//! [`WeightsFormat::detect`] is the one place a weights path is matched to its reader, by the
//! file's first bytes. A new format is a variant here, its signature in
//! [`WeightsFormat::of_bytes`], and an arm wherever a format is dispatched (`inspect`).

pub mod caffe;
pub mod convert;
pub mod pytorch;
pub mod torch7;

use std::io::Read;
use std::path::{Path, PathBuf};

/// A weights file's format, as its content says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightsFormat {
    /// Our format: an 8-byte header length, then a JSON header.
    Safetensors,
    /// A Caffe `.caffemodel`: a protobuf `NetParameter`.
    Caffe,
    /// A Torch7 `.t7` file in binary mode: a torch object tag, its index, `V 1` or a class name.
    Torch7,
    /// `torch.save` of torch ≥ 1.6: a zip archive.
    PytorchZip,
    /// `torch.save` before 1.6 (or `_use_new_zipfile_serialization=False`): pickles starting
    /// with the magic number.
    PytorchLegacy,
}

/// Bytes read to decide a format: enough for a safetensors length and brace, and a Caffe net's
/// name.
const SIGNATURE_BYTES: usize = 64;

#[derive(Debug, thiserror::Error)]
#[error("cannot read weights file {path}: {error}")]
pub struct DetectError {
    pub path: PathBuf,
    pub error: std::io::Error,
}

impl WeightsFormat {
    /// The format of the file at `path`, by content; when the content matches no format, by the
    /// `.caffemodel` extension, and otherwise safetensors (whose reader then says what it found).
    pub fn detect(path: &Path) -> Result<Self, DetectError> {
        let mut head = Vec::with_capacity(SIGNATURE_BYTES);
        std::fs::File::open(path)
            .and_then(|file| file.take(SIGNATURE_BYTES as u64).read_to_end(&mut head))
            .map_err(|error| DetectError { path: path.to_path_buf(), error })?;
        Ok(Self::of_bytes(&head).unwrap_or_else(|| {
            if path.extension().is_some_and(|e| e == "caffemodel") {
                WeightsFormat::Caffe
            } else {
                WeightsFormat::Safetensors
            }
        }))
    }

    /// The format whose signature `head` (a file's first bytes) starts with, if any.
    pub fn of_bytes(head: &[u8]) -> Option<Self> {
        if is_safetensors(head) {
            Some(WeightsFormat::Safetensors)
        } else if is_caffe_net(head) {
            Some(WeightsFormat::Caffe)
        } else if head.starts_with(b"PK\x03\x04") {
            Some(WeightsFormat::PytorchZip)
        } else if pytorch::looks_like_checkpoint(head) {
            Some(WeightsFormat::PytorchLegacy)
        } else if is_torch7(head) {
            Some(WeightsFormat::Torch7)
        } else {
            None
        }
    }

    pub fn is_safetensors(self) -> bool {
        self == WeightsFormat::Safetensors
    }

    /// What the file is, in words.
    pub fn description(self) -> &'static str {
        match self {
            WeightsFormat::Safetensors => "a safetensors file",
            WeightsFormat::Caffe => "a Caffe .caffemodel",
            WeightsFormat::Torch7 => "a Torch7 .t7 file",
            WeightsFormat::PytorchZip => "a PyTorch checkpoint (zip)",
            WeightsFormat::PytorchLegacy => "a PyTorch checkpoint (legacy pickle)",
        }
    }

    /// How to use such a file where safetensors are expected.
    pub fn how_to_use(self) -> &'static str {
        match self {
            WeightsFormat::Safetensors => "read it directly",
            // The mean image is Caffe's alone, so its own subcommand.
            WeightsFormat::Caffe => {
                "give it as `weights:` as it is (converted once, cached by its SHA-256), or convert it: \
                 resnet-audit convert caffe <file>.caffemodel [--mean <mean>.binaryproto] --out <name>.safetensors"
            }
            _ => {
                "give it as `weights:` as it is (converted once, cached by its SHA-256), or convert it: \
                 resnet-audit convert <file> --out <name>.safetensors"
            }
        }
    }
}

/// An 8-byte little-endian header length within the format's 100 MB limit, then `{`.
fn is_safetensors(head: &[u8]) -> bool {
    const MAX_HEADER: u64 = 100_000_000;
    match (head.get(..8), head.get(8)) {
        (Some(length), Some(b'{')) => {
            let length = u64::from_le_bytes(length.try_into().unwrap_or([0; 8]));
            (2..=MAX_HEADER).contains(&length)
        }
        _ => false,
    }
}

/// A Torch7 binary file whose root is a torch object: type tag 4 (int32), its reference index,
/// then a length-prefixed printable string (`V 1`, or the class name in files before versions).
fn is_torch7(head: &[u8]) -> bool {
    let int = |at: usize| head.get(at..at + 4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    match (int(0), int(8)) {
        (Some(4), Some(length)) if (1..=256).contains(&length) => {
            let text = &head[12..head.len().min(12 + length as usize)];
            !text.is_empty() && text.iter().all(|&b| (0x20..0x7F).contains(&b))
        }
        _ => false,
    }
}

/// A protobuf `NetParameter` as Caffe writes it, fields in number order: `name` (field 1, a
/// printable string), or with no name, `layers` (2, the legacy encoding) or `layer` (100).
fn is_caffe_net(head: &[u8]) -> bool {
    let (tag_len, is_name) = match head {
        [0x0A, ..] => (1, true),
        [0x12, ..] => (1, false),
        [0xA2, 0x06, ..] => (2, false),
        _ => return false,
    };
    let Some((length, varint_len)) = varint(&head[tag_len..]) else { return false };
    let body = &head[tag_len + varint_len..];
    if !is_name {
        // A nested message: its first byte is itself a field tag (field ≥ 1, wire type ≤ 5).
        return length > 0 && body.first().is_some_and(|&tag| tag >= 0x08 && tag & 7 <= 5);
    }
    let shown = &body[..body.len().min(length as usize)];
    length > 0 && length < 4096 && shown.iter().all(|&b| (0x20..0x7F).contains(&b))
}

/// A protobuf varint at the start of `bytes`: its value and length.
fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_told_apart_by_their_first_bytes() {
        let mut safetensors = 20u64.to_le_bytes().to_vec();
        safetensors.extend(b"{\"a\":{}}");
        assert_eq!(WeightsFormat::of_bytes(&safetensors), Some(WeightsFormat::Safetensors));
        let mut caffe = vec![0x0A, 9];
        caffe.extend(b"ResNet-50");
        caffe.extend([0xA2, 0x06, 0x10]);
        assert_eq!(WeightsFormat::of_bytes(&caffe), Some(WeightsFormat::Caffe));
        assert_eq!(WeightsFormat::of_bytes(&[0xA2, 0x06, 0x84, 0x01, 0x0A, 0x05]), Some(WeightsFormat::Caffe));
        assert_eq!(WeightsFormat::of_bytes(b"PK\x03\x04rest"), Some(WeightsFormat::PytorchZip));
        let mut t7 = vec![4, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0];
        t7.extend(b"V 1");
        assert_eq!(WeightsFormat::of_bytes(&t7), Some(WeightsFormat::Torch7));
        // A pickle that is not torch.save's, text, nothing: none of ours.
        for other in [&[0x80, 0x02, 0x8a, 0x0a][..], b"hello world", b""] {
            assert_eq!(WeightsFormat::of_bytes(other), None, "{other:?}");
        }
        // A safetensors length whose first byte looks like a protobuf tag is still safetensors.
        let mut tricky = 0x0Au64.to_le_bytes().to_vec();
        tricky.push(b'{');
        assert_eq!(WeightsFormat::of_bytes(&tricky), Some(WeightsFormat::Safetensors));
    }
}
