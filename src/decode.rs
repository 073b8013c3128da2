//! Image files to RGB pixels: JPEG (baseline, progressive, grayscale, CMYK/YCCK) and PNG,
//! recognised by content rather than extension (ImageNet has a PNG named .JPEG). EXIF
//! orientation is ignored, as PIL does by default.
//!
//! JPEGs go through libjpeg-turbo's code (the mozjpeg crate) with its defaults, as Pillow's
//! do, and CMYK/YCCK ones (about 22 in ImageNet) through Pillow's own CMYK→RGB arithmetic, so
//! the pixels are Pillow's exactly; PNGs go through the `image` crate.

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
    if format == image::ImageFormat::Jpeg {
        return decode_with_libjpeg(bytes, path);
    }
    let image = image::load_from_memory_with_format(bytes, format)
        .map_err(|e| DecodeError::Corrupt { path: path.to_path_buf(), reason: e.to_string() })?;
    Ok(image.to_rgb8())
}

/// Pillow's conversion of a CMYK JPEG: it reads the samples as Adobe-inverted (`CMYK;I`), then
/// `cmyk2rgb` computes `(255 − k) − c·(255 − k)/255` per channel with its rounded integer division.
fn inverted_cmyk_to_rgb(samples: &[u8]) -> Vec<u8> {
    let muldiv255 = |a: u32, b: u32| {
        let t = a * b + 128;
        ((t >> 8) + t) >> 8
    };
    samples
        .chunks_exact(4)
        .flat_map(|px| {
            let nk = px[3] as u32; // 255 − (255 − k')
            let channel = |stored: u8| (nk - muldiv255(255 - stored as u32, nk)) as u8;
            [channel(px[0]), channel(px[1]), channel(px[2])]
        })
        .collect()
}

/// libjpeg-turbo decoding to RGB (CMYK/YCCK through libjpeg's CMYK output and Pillow's conversion).
fn decode_with_libjpeg(bytes: &[u8], path: &Path) -> Result<RgbImage, DecodeError> {
    use mozjpeg::ColorSpace;
    let corrupt = |reason: String| DecodeError::Corrupt { path: path.to_path_buf(), reason };
    // libjpeg reports fatal errors by unwinding out of its C code (mozjpeg's error manager).
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> std::io::Result<Option<RgbImage>> {
        let decompress = mozjpeg::Decompress::new_mem(bytes)?;
        let cmyk = matches!(decompress.color_space(), ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK);
        let mut started = if cmyk { decompress.to_colorspace(ColorSpace::JCS_CMYK)? } else { decompress.rgb()? };
        let (width, height) = (started.width() as u32, started.height() as u32);
        let pixels: Vec<u8> = started.read_scanlines()?;
        started.finish()?;
        let pixels = if cmyk { inverted_cmyk_to_rgb(&pixels) } else { pixels };
        Ok(RgbImage::from_raw(width, height, pixels))
    }));
    match decoded {
        Ok(Ok(Some(image))) => Ok(image),
        Ok(Ok(None)) => Err(corrupt("libjpeg returned fewer pixels than the image size".into())),
        Ok(Err(error)) => Err(corrupt(error.to_string())),
        Err(panic) => {
            let reason = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "libjpeg failed".to_string());
            Err(corrupt(reason))
        }
    }
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
