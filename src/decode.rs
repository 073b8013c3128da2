//! Image files to RGB pixels: JPEG (baseline, progressive, grayscale, CMYK/YCCK) and PNG,
//! recognised by content rather than extension (ImageNet has a PNG named .JPEG). EXIF
//! orientation is ignored, as PIL does by default.
//!
//! JPEGs go through libjpeg-turbo's code (the mozjpeg crate) with its defaults, as Pillow's
//! do, and CMYK/YCCK ones (about 22 in ImageNet) through Pillow's own CMYK→RGB arithmetic, so
//! the pixels are Pillow's exactly; PNGs go through the `image` crate.
//!
//! Memory is bounded before any pixel is decoded: the width and height in the file's header
//! must multiply to at most a pixel limit ([`DEFAULT_MAX_PIXELS`] unless the experiment sets
//! `max_pixels`), so a small file that claims a huge image (a decompression bomb) is refused.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::codecs::png::PngDecoder;
use image::{DynamicImage, ImageDecoder, Limits, RgbImage};

/// The default pixel limit: Pillow's `Image.MAX_IMAGE_PIXELS` (89,478,485, about 9459×9459).
/// Pillow only warns above it and refuses at twice that; we refuse above it, so that every
/// image we accept is one Pillow opens without a decompression-bomb warning, and the largest
/// decoded image stays at 268 MB of RGB. ImageNet's largest images are far below it.
pub const DEFAULT_MAX_PIXELS: u64 = 89_478_485;

/// Bytes per pixel of the widest PNG we read (16-bit RGBA): the PNG decoder's allocation limit
/// is this times the pixel limit, so a PNG within the pixel limit is never refused for memory.
const WIDEST_PNG_PIXEL_BYTES: u64 = 8;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("cannot read image {path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path} is not an image format we read (JPEG or PNG)")]
    UnknownFormat { path: PathBuf },
    #[error("cannot decode image {path} (corrupt or truncated?): {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "image {path} is {width}x{height} = {pixels} pixels, over the limit of {max_pixels} \
         (a decompression bomb, or raise `max_pixels` in the experiment)",
        pixels = *width as u64 * *height as u64
    )]
    TooManyPixels { path: PathBuf, width: u32, height: u32, max_pixels: u64 },
}

/// Decodes the file at `path` to 8-bit RGB (grayscale replicated, CMYK converted), refusing
/// images over [`DEFAULT_MAX_PIXELS`].
pub fn decode_rgb(path: &Path) -> Result<RgbImage, DecodeError> {
    decode_rgb_within(path, DEFAULT_MAX_PIXELS)
}

/// As [`decode_rgb`], refusing images of more than `max_pixels` pixels (checked on the header,
/// before anything is decoded).
pub fn decode_rgb_within(path: &Path, max_pixels: u64) -> Result<RgbImage, DecodeError> {
    let bytes = std::fs::read(path).map_err(|error| DecodeError::Io { path: path.to_path_buf(), error })?;
    decode_rgb_bytes_within(&bytes, path, max_pixels)
}

/// As [`decode_rgb`], from bytes already read; `path` is only for messages.
pub fn decode_rgb_bytes(bytes: &[u8], path: &Path) -> Result<RgbImage, DecodeError> {
    decode_rgb_bytes_within(bytes, path, DEFAULT_MAX_PIXELS)
}

/// As [`decode_rgb_within`], from bytes already read; `path` is only for messages.
pub fn decode_rgb_bytes_within(bytes: &[u8], path: &Path, max_pixels: u64) -> Result<RgbImage, DecodeError> {
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
        return decode_with_libjpeg(bytes, path, max_pixels);
    }
    decode_png(bytes, path, max_pixels)
}

fn check_pixels(path: &Path, width: u32, height: u32, max_pixels: u64) -> Result<(), DecodeError> {
    if width as u64 * height as u64 > max_pixels {
        return Err(DecodeError::TooManyPixels { path: path.to_path_buf(), width, height, max_pixels });
    }
    Ok(())
}

fn decode_png(bytes: &[u8], path: &Path, max_pixels: u64) -> Result<RgbImage, DecodeError> {
    let corrupt = |e: image::ImageError| DecodeError::Corrupt { path: path.to_path_buf(), reason: e.to_string() };
    let mut limits = Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(WIDEST_PNG_PIXEL_BYTES));
    // Reads the header only; the pixel check comes before the first row is inflated.
    let decoder = PngDecoder::with_limits(Cursor::new(bytes), limits).map_err(corrupt)?;
    let (width, height) = decoder.dimensions();
    check_pixels(path, width, height, max_pixels)?;
    Ok(DynamicImage::from_decoder(decoder).map_err(corrupt)?.to_rgb8())
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
fn decode_with_libjpeg(bytes: &[u8], path: &Path, max_pixels: u64) -> Result<RgbImage, DecodeError> {
    let corrupt = |reason: String| DecodeError::Corrupt { path: path.to_path_buf(), reason };
    // libjpeg reports fatal errors by unwinding out of its C code (mozjpeg's error manager).
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| libjpeg_rgb(bytes, path, max_pixels)));
    match decoded {
        Ok(Ok(Some(image))) => Ok(image),
        Ok(Ok(None)) => Err(corrupt("libjpeg returned fewer pixels than the image size".into())),
        Ok(Err(error)) => Err(error),
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

/// The libjpeg calls of [`decode_with_libjpeg`] (which catches their unwinding errors).
fn libjpeg_rgb(bytes: &[u8], path: &Path, max_pixels: u64) -> Result<Option<RgbImage>, DecodeError> {
    use mozjpeg::ColorSpace;
    let io = |e: std::io::Error| DecodeError::Corrupt { path: path.to_path_buf(), reason: e.to_string() };
    let decompress = mozjpeg::Decompress::new_mem(bytes).map_err(io)?;
    // `new_mem` has read the header only: libjpeg allocates its coefficient and sample buffers
    // when decompression starts, after this check.
    let size = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    check_pixels(path, size(decompress.width()), size(decompress.height()), max_pixels)?;
    let cmyk = matches!(decompress.color_space(), ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK);
    let mut started =
        if cmyk { decompress.to_colorspace(ColorSpace::JCS_CMYK) } else { decompress.rgb() }.map_err(io)?;
    let (width, height) = (started.width() as u32, started.height() as u32);
    let pixels: Vec<u8> = started.read_scanlines().map_err(io)?;
    started.finish().map_err(io)?;
    let pixels = if cmyk { inverted_cmyk_to_rgb(&pixels) } else { pixels };
    Ok(RgbImage::from_raw(width, height, pixels))
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
