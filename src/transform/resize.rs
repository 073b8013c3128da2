//! Resampling an RGB image to a given size, bit-compatible with the two libraries whose
//! preprocessing published numbers came from:
//!
//! - antialiased: Pillow's `Image.resize` (what torchvision's `Resize` does to a PIL image):
//!   the filter's support widens with the downscaling factor, coefficients in 22-bit fixed
//!   point, a horizontal pass rounded to u8, then a vertical pass; bicubic with a = −0.5;
//!   nearest samples pixel centres.
//! - not antialiased: `torch.nn.functional.interpolate(align_corners=False)` (torchvision's
//!   `Resize` on a tensor with `antialias=False`, close to OpenCV): a fixed 2- or 4-tap
//!   kernel, computed in f32 and rounded half to even once; bicubic with a = −0.75; legacy
//!   nearest (`floor(dst · in/out)`).

use image::RgbImage;
use serde::{Deserialize, Serialize};

/// Interpolation kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Interpolation {
    Nearest,
    Bilinear,
    Bicubic,
}

/// The kernel's name as the libraries spell it: `nearest`, `bilinear`, `bicubic`.
impl std::fmt::Display for Interpolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Interpolation::Nearest => "nearest",
            Interpolation::Bilinear => "bilinear",
            Interpolation::Bicubic => "bicubic",
        })
    }
}

/// `bilinear` for Pillow's antialiased resampling (the usual case), `bilinear, no antialias
/// (torch)` otherwise.
impl std::fmt::Display for Resampling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.antialias {
            write!(f, "{}", self.interpolation)
        } else {
            write!(f, "{}, no antialias (torch)", self.interpolation)
        }
    }
}

/// How to resample: the kernel and whether it is antialiased (Pillow) or not (torch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resampling {
    pub interpolation: Interpolation,
    /// true: Pillow's resampling; false: torch's `interpolate` (see the module docs).
    pub antialias: bool,
}

const CHANNELS: usize = 3;

/// The most pixels one buffer of [`resize`] holds when it resizes `in_w`×`in_h` to
/// `out_w`×`out_h`: the output, or for Pillow's two passes the horizontal pass's `out_w`×`in_h`
/// rows when that is larger. Compared with a pixel limit before resizing, it bounds the
/// resize's memory by the limit, whatever the input's shape (a 65500×1 strip, a Warp of a tall
/// image).
pub fn largest_buffer_pixels(in_w: u32, in_h: u32, out_w: u32, out_h: u32, resampling: Resampling) -> u64 {
    let output = out_w as u64 * out_h as u64;
    let pillow_two_pass = resampling.antialias && resampling.interpolation != Interpolation::Nearest;
    if pillow_two_pass && out_w != in_w {
        output.max(out_w as u64 * in_h as u64)
    } else {
        output
    }
}

/// Resizes `image` to `width`×`height` (both at least 1). Callers resizing to a size derived
/// from untrusted input check [`largest_buffer_pixels`] first.
pub fn resize(image: &RgbImage, width: u32, height: u32, resampling: Resampling) -> RgbImage {
    let (in_w, in_h) = image.dimensions();
    if (in_w, in_h) == (width, height) {
        return image.clone();
    }
    let pixels = match (resampling.antialias, resampling.interpolation) {
        (true, Interpolation::Nearest) => nearest(image, &pillow_nearest(in_w, width), &pillow_nearest(in_h, height)),
        (false, Interpolation::Nearest) => nearest(image, &torch_nearest(in_w, width), &torch_nearest(in_h, height)),
        (true, Interpolation::Bilinear) => pillow(image, width, height, &PillowFilter::BILINEAR),
        (true, Interpolation::Bicubic) => pillow(image, width, height, &PillowFilter::BICUBIC),
        (false, Interpolation::Bilinear) => torch(image, width, height, &TorchKernel::Bilinear),
        (false, Interpolation::Bicubic) => torch(image, width, height, &TorchKernel::Bicubic),
    };
    RgbImage::from_raw(width, height, pixels).expect("resize produced width*height*3 bytes")
}

/// Pillow's nearest (ImagingScaleAffine): pixel centres, the position accumulated in f64
/// step by step, which is not always the same as multiplying.
fn pillow_nearest(in_size: u32, out_size: u32) -> Vec<usize> {
    let step = in_size as f64 / out_size as f64;
    let mut position = step * 0.5;
    (0..out_size)
        .map(|_| {
            let index = (position as usize).min(in_size as usize - 1);
            position += step;
            index
        })
        .collect()
}

/// torch's legacy `nearest`: floor(dst · in/out) with an f32 scale.
fn torch_nearest(in_size: u32, out_size: u32) -> Vec<usize> {
    let scale = in_size as f32 / out_size as f32;
    (0..out_size).map(|d| ((d as f32 * scale).floor() as usize).min(in_size as usize - 1)).collect()
}

fn nearest(image: &RgbImage, xs: &[usize], ys: &[usize]) -> Vec<u8> {
    let in_w = image.width() as usize;
    let raw = image.as_raw();
    let mut out = Vec::with_capacity(xs.len() * ys.len() * CHANNELS);
    for &sy in ys {
        let row = &raw[sy * in_w * CHANNELS..];
        for &sx in xs {
            out.extend_from_slice(&row[sx * CHANNELS..sx * CHANNELS + CHANNELS]);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Pillow (libImaging/Resample.c)

struct PillowFilter {
    support: f64,
    weight: fn(f64) -> f64,
}

impl PillowFilter {
    const BILINEAR: PillowFilter = PillowFilter {
        support: 1.0,
        weight: |x| {
            let x = x.abs();
            if x < 1.0 {
                1.0 - x
            } else {
                0.0
            }
        },
    };
    const BICUBIC: PillowFilter = PillowFilter {
        support: 2.0,
        weight: |x| {
            const A: f64 = -0.5;
            let x = x.abs();
            if x < 1.0 {
                ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
            } else if x < 2.0 {
                (((x - 5.0) * x + 8.0) * x - 4.0) * A
            } else {
                0.0
            }
        },
    };
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Per output index: the first input index, and fixed-point weights of consecutive inputs.
struct FixedPointTaps {
    first: Vec<usize>,
    weights: Vec<Vec<i32>>,
}

/// Pillow's `precompute_coeffs` followed by `normalize_coeffs_8bpc`.
fn pillow_taps(in_size: u32, out_size: u32, filter: &PillowFilter) -> FixedPointTaps {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter.support * filter_scale;
    let mut first = Vec::with_capacity(out_size as usize);
    let mut weights = Vec::with_capacity(out_size as usize);
    for out in 0..out_size {
        let center = (out as f64 + 0.5) * scale;
        // C's (int) truncates toward zero; then clamp to the image.
        let min = ((center - support + 0.5) as i64).max(0) as usize;
        let max = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let raw: Vec<f64> = (min..max).map(|i| (filter.weight)((i as f64 - center + 0.5) / filter_scale)).collect();
        let total: f64 = raw.iter().sum();
        let fixed = raw
            .iter()
            .map(|&w| {
                let w = if total != 0.0 { w / total } else { w };
                let scaled = w * (1u32 << PRECISION_BITS) as f64;
                (if scaled < 0.0 { scaled - 0.5 } else { scaled + 0.5 }) as i32
            })
            .collect();
        first.push(min);
        weights.push(fixed);
    }
    FixedPointTaps { first, weights }
}

fn clip8(accumulator: i32) -> u8 {
    (accumulator >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Applies `taps` along one axis of an image `in_w` pixels wide, giving `out_w`×`out_h`.
fn pillow_pass(
    input: &[u8],
    in_w: usize,
    taps: &FixedPointTaps,
    horizontal: bool,
    out_w: usize,
    out_h: usize,
) -> Vec<u8> {
    let mut out = vec![0u8; out_w * out_h * CHANNELS];
    let half = 1i32 << (PRECISION_BITS - 1);
    for y in 0..out_h {
        for x in 0..out_w {
            let i = if horizontal { x } else { y };
            let (first, weights) = (taps.first[i], &taps.weights[i]);
            let mut acc = [half; CHANNELS];
            for (k, &w) in weights.iter().enumerate() {
                let (sx, sy) = if horizontal { (first + k, y) } else { (x, first + k) };
                let p = (sy * in_w + sx) * CHANNELS;
                for c in 0..CHANNELS {
                    acc[c] += input[p + c] as i32 * w;
                }
            }
            let o = (y * out_w + x) * CHANNELS;
            for c in 0..CHANNELS {
                out[o + c] = clip8(acc[c]);
            }
        }
    }
    out
}

fn pillow(image: &RgbImage, width: u32, height: u32, filter: &PillowFilter) -> Vec<u8> {
    let (in_w, in_h) = image.dimensions();
    let mut pixels = image.as_raw().clone();
    let mut current_w = in_w as usize;
    if width != in_w {
        let taps = pillow_taps(in_w, width, filter);
        pixels = pillow_pass(&pixels, current_w, &taps, true, width as usize, in_h as usize);
        current_w = width as usize;
    }
    if height != in_h {
        let taps = pillow_taps(in_h, height, filter);
        pixels = pillow_pass(&pixels, current_w, &taps, false, width as usize, height as usize);
    }
    pixels
}

// ---------------------------------------------------------------------------------------
// torch.nn.functional.interpolate, align_corners=False (aten/src/ATen/native/UpSample.h)

enum TorchKernel {
    Bilinear,
    Bicubic,
}

/// Per output index: input indices (clamped to the image) and f32 weights.
fn torch_taps(in_size: u32, out_size: u32, kernel: &TorchKernel) -> Vec<Vec<(usize, f32)>> {
    let scale = in_size as f32 / out_size as f32;
    let last = in_size as i64 - 1;
    let clamp = |i: i64| i.clamp(0, last) as usize;
    (0..out_size)
        .map(|d| {
            let src = (d as f32 + 0.5) * scale - 0.5;
            match kernel {
                TorchKernel::Bilinear => {
                    let src = src.max(0.0);
                    let i0 = src as i64; // src ≥ 0: truncation is floor
                    let i1 = if i0 < last { i0 + 1 } else { i0 };
                    let l1 = src - i0 as f32;
                    vec![(clamp(i0), 1.0 - l1), (clamp(i1), l1)]
                }
                TorchKernel::Bicubic => {
                    const A: f32 = -0.75;
                    let i = src.floor();
                    let t = src - i;
                    let near = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
                    let far = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
                    let w = [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)];
                    let i = i as i64;
                    (0..4).map(|k| (clamp(i - 1 + k as i64), w[k])).collect()
                }
            }
        })
        .collect()
}

/// Σ value·weight rounded as ATen's compiled kernel rounds it: the compiler contracts
/// `t0·w0 + t1·w1` into `fma(t0, w0, t1·w1)` (two taps) and `out += t·w` into `fma(t, w, out)`
/// (four taps). Plain multiply-adds differ in the last bit, which moves a rounded pixel by one
/// level now and then.
fn weighted_sum(mut terms: impl Iterator<Item = (f32, f32)>) -> f32 {
    let Some((t0, w0)) = terms.next() else { return 0.0 };
    let rest: Vec<(f32, f32)> = terms.collect();
    match rest.as_slice() {
        [(t1, w1)] => t0.mul_add(w0, t1 * w1),
        _ => rest.iter().fold(t0 * w0, |out, &(t, w)| t.mul_add(w, out)),
    }
}

fn torch(image: &RgbImage, width: u32, height: u32, kernel: &TorchKernel) -> Vec<u8> {
    let (in_w, in_h) = image.dimensions();
    let xs = torch_taps(in_w, width, kernel);
    let ys = torch_taps(in_h, height, kernel);
    let raw = image.as_raw();
    let mut out = Vec::with_capacity(width as usize * height as usize * CHANNELS);
    for y_taps in &ys {
        for x_taps in &xs {
            for c in 0..CHANNELS {
                // Rows first, then across them, as ATen does; f32 throughout.
                let along = |sy: usize| {
                    let row = sy * in_w as usize;
                    weighted_sum(x_taps.iter().map(|&(sx, wx)| (raw[(row + sx) * CHANNELS + c] as f32, wx)))
                };
                let value = weighted_sum(y_taps.iter().map(|&(sy, wy)| (along(sy), wy)));
                out.push(value.clamp(0.0, 255.0).round_ties_even() as u8);
            }
        }
    }
    out
}
