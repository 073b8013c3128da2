//! Image files to RGB pixels: JPEG (baseline, progressive, grayscale, CMYK/YCCK) and PNG,
//! recognised by content rather than extension (ImageNet has a PNG named .JPEG). EXIF
//! orientation is ignored, as PIL does by default.

use std::path::{Path, PathBuf};

use image::RgbImage;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("cannot read image {path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path} is not an image format we read (JPEG or PNG)")]
    UnknownFormat { path: PathBuf },
    #[error("cannot decode image {path} (corrupt or truncated?): {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// Decodes the file at `path` to 8-bit RGB (grayscale replicated, CMYK converted).
pub fn decode_rgb(path: &Path) -> Result<RgbImage, DecodeError> {
    let bytes = std::fs::read(path).map_err(|error| DecodeError::Io { path: path.to_path_buf(), error })?;
    decode_rgb_bytes(&bytes, path)
}

/// As [`decode_rgb`], from bytes already read; `path` is only for messages.
pub fn decode_rgb_bytes(bytes: &[u8], path: &Path) -> Result<RgbImage, DecodeError> {
    let format = image::guess_format(bytes).map_err(|_| DecodeError::UnknownFormat { path: path.to_path_buf() })?;
    if !matches!(format, image::ImageFormat::Jpeg | image::ImageFormat::Png) {
        return Err(DecodeError::UnknownFormat { path: path.to_path_buf() });
    }
    if format == image::ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(DecodeError::Corrupt {
            path: path.to_path_buf(),
            reason: "truncated JPEG: no end-of-image marker after the last scan".to_string(),
        });
    }
    let image = image::load_from_memory_with_format(bytes, format)
        .map_err(|e| DecodeError::Corrupt { path: path.to_path_buf(), reason: e.to_string() })?;
    Ok(image.to_rgb8())
}

/// Whether an end-of-image marker (FF D9) follows the last start-of-scan (FF DA). Our decoder
/// fills a truncated scan with grey instead of failing (PIL raises "image file is truncated");
/// inside entropy-coded data 0xFF is always stuffed, so FF D9 there can only be the real end,
/// and an EXIF thumbnail's own end marker comes before the main image's scans.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_marker = |second: u8| bytes.windows(2).rposition(|w| w[0] == 0xFF && w[1] == second);
    match (last_marker(0xDA), last_marker(0xD9)) {
        (Some(scan), Some(end)) => end > scan,
        _ => false,
    }
}
