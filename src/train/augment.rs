//! Training augmentations, as a serde-deserializable list a YAML recipe can name:
//!
//! - `scale-augment`: the ResNet paper's scale augmentation (shorter side uniform in an integer
//!   range, a random square crop, a horizontal flip with p = 0.5);
//! - `random-resized-crop`: Inception-style cropping (torchvision `RandomResizedCrop`,
//!   fb.resnet.torch `RandomSizedCrop`), then a flip;
//! - `pad-crop`: the CIFAR augmentation (zero padding, a random crop, a flip);
//! - `lighting`: AlexNet's PCA lighting noise with fb.resnet.torch's ImageNet eigenvectors;
//! - `color-jitter`: fb.resnet.torch's brightness/contrast/saturation jitter in random order.
//!
//! Pixel math (lighting, jitter) is done in f32 on the 0–255 scale; intermediate values of a
//! jitter chain are not clamped (as in fb.resnet.torch, which works on unclamped floats), and the
//! result is rounded (half away from zero) and clamped to 0–255 once, when it goes back to u8.
//!
//! Every random draw comes from the `rng` passed in, in a fixed order per augmentation, so a
//! seeded `rand_chacha::ChaCha8Rng` reproduces a run exactly.

use image::RgbImage;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::transform::{crop, flip_horizontal, resize, Interpolation, Region, Resampling};

/// fb.resnet.torch's ImageNet PCA eigenvalues (on the 0–1 scale; multiplied by 255 where used).
pub const IMAGENET_EIGVAL: [f32; 3] = [0.2175, 0.0188, 0.0045];
/// fb.resnet.torch's ImageNet PCA eigenvectors: row = channel (R, G, B), column = eigenvector.
pub const IMAGENET_EIGVEC: [[f32; 3]; 3] =
    [[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]];
/// fb.resnet.torch's grayscale weights (used by saturation and contrast).
pub const GRAY_WEIGHTS: [f32; 3] = [0.299, 0.587, 0.114];

/// How crops are resampled (ScaleAugment's rescale, RandomResizedCrop's resize): Pillow bilinear.
const RESAMPLING: Resampling = Resampling { interpolation: Interpolation::Bilinear, antialias: true };

fn default_scale() -> (f64, f64) {
    (0.08, 1.0)
}

fn default_ratio() -> (f64, f64) {
    (3.0 / 4.0, 4.0 / 3.0)
}

fn default_lighting_std() -> f64 {
    0.1
}

/// One training augmentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Augmentation {
    /// The paper's scale augmentation: shorter side uniform in [min, max] (integers, inclusive;
    /// the longer side scaled to keep the aspect ratio, truncated as torchvision's `Resize`
    /// does), then a random size×size crop, then a horizontal flip with p = 0.5.
    /// Requires `size <= min`.
    ScaleAugment { min: u32, max: u32, size: u32 },
    /// Inception-style crop: area fraction uniform in `scale`, log-aspect uniform in
    /// [ln ratio.0, ln ratio.1], up to 10 attempts, falling back to a center crop of side the
    /// image's shorter side; resized to size×size (bilinear, antialiased); then a flip p = 0.5.
    RandomResizedCrop {
        size: u32,
        #[serde(default = "default_scale")]
        scale: (f64, f64),
        #[serde(default = "default_ratio")]
        ratio: (f64, f64),
    },
    /// CIFAR: zero-pad by `pad` on each side, a random size×size crop, a flip with p = 0.5.
    PadCrop { pad: u32, size: u32 },
    /// AlexNet PCA lighting: alpha ~ N(0, std) per eigenvector, eigvec · (alpha ⊙ eigval·255)
    /// added to every pixel. std = 0 is the identity.
    Lighting {
        #[serde(default = "default_lighting_std")]
        std: f64,
    },
    /// fb.resnet.torch ColorJitter: brightness, contrast and saturation, each with a factor
    /// uniform in [1 − s, 1 + s], the non-zero ones applied in random order.
    ColorJitter { brightness: f64, contrast: f64, saturation: f64 },
}

impl Augmentation {
    /// Checks the parameters (what `apply` would otherwise panic on, or silently misbehave with).
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            Augmentation::ScaleAugment { min, max, size } => {
                if min > max {
                    return Err(format!("scale-augment: min {min} > max {max}"));
                }
                if size == 0 || size > min {
                    return Err(format!("scale-augment: crop size {size} must be in 1..=min ({min})"));
                }
            }
            Augmentation::RandomResizedCrop { size, scale, ratio } => {
                if size == 0 {
                    return Err("random-resized-crop: size must be at least 1".into());
                }
                if !(scale.0 > 0.0 && scale.0 <= scale.1) {
                    return Err(format!("random-resized-crop: bad scale range {scale:?}"));
                }
                if !(ratio.0 > 0.0 && ratio.0 <= ratio.1) {
                    return Err(format!("random-resized-crop: bad ratio range {ratio:?}"));
                }
            }
            Augmentation::PadCrop { size, .. } => {
                if size == 0 {
                    return Err("pad-crop: size must be at least 1".into());
                }
            }
            Augmentation::Lighting { std } => {
                if !(std >= 0.0 && std.is_finite()) {
                    return Err(format!("lighting: std {std} must be finite and >= 0"));
                }
            }
            Augmentation::ColorJitter { brightness, contrast, saturation } => {
                for (name, s) in [("brightness", brightness), ("contrast", contrast), ("saturation", saturation)] {
                    if !(s >= 0.0 && s.is_finite()) {
                        return Err(format!("color-jitter: {name} {s} must be finite and >= 0"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Applies the augmentation. Panics where the image is too small for the crop
    /// (ScaleAugment never is when `validate` passes; PadCrop needs size <= side + 2·pad).
    /// Errors (instead of panicking) when the image is too small for the crop.
    pub fn apply(&self, image: &RgbImage, rng: &mut impl Rng) -> Result<RgbImage, TooSmall> {
        Ok(match *self {
            Augmentation::ScaleAugment { min, max, size } => {
                let shorter = scale_augment_shorter_side(min, max, rng);
                let (w, h) = shorter_side_size(image.width(), image.height(), shorter);
                if w < size || h < size {
                    return Err(TooSmall { what: "scale-augment", width: w, height: h, size });
                }
                let scaled = resize(image, w, h, RESAMPLING);
                let left = rng.random_range(0..=w - size);
                let top = rng.random_range(0..=h - size);
                let cropped = crop(&scaled, Region { left, top, width: size, height: size });
                maybe_flip(cropped, rng)
            }
            Augmentation::RandomResizedCrop { size, scale, ratio } => {
                let region = random_resized_region(image.width(), image.height(), scale, ratio, rng);
                let resized = resize(&crop(image, region), size, size, RESAMPLING);
                maybe_flip(resized, rng)
            }
            Augmentation::PadCrop { pad, size } => {
                let (pw, ph) = (image.width() + 2 * pad, image.height() + 2 * pad);
                if size > pw || size > ph {
                    return Err(TooSmall { what: "pad-crop", width: pw, height: ph, size });
                }
                let (left, top, flip) = pad_crop_params(image.width(), image.height(), pad, size, rng);
                let out = pad_crop(image, pad, left, top, size);
                if flip {
                    flip_horizontal(&out)
                } else {
                    out
                }
            }
            Augmentation::Lighting { std } => {
                if std == 0.0 {
                    return Ok(image.clone());
                }
                let shift = lighting_shift(std, rng);
                let mut pixels = to_f32(image);
                for px in pixels.chunks_exact_mut(3) {
                    for (v, s) in px.iter_mut().zip(shift) {
                        *v += s;
                    }
                }
                from_f32(image.width(), image.height(), &pixels)
            }
            Augmentation::ColorJitter { brightness, contrast, saturation } => {
                let mut ops: Vec<(JitterOp, f64)> = [
                    (JitterOp::Brightness, brightness),
                    (JitterOp::Contrast, contrast),
                    (JitterOp::Saturation, saturation),
                ]
                .into_iter()
                .filter(|&(_, s)| s != 0.0)
                .collect();
                if ops.is_empty() {
                    return Ok(image.clone());
                }
                ops.shuffle(rng);
                let mut pixels = to_f32(image);
                for (op, s) in ops {
                    let factor = jitter_factor(s, rng);
                    match op {
                        JitterOp::Brightness => brightness_f32(&mut pixels, factor),
                        JitterOp::Contrast => contrast_f32(&mut pixels, factor),
                        JitterOp::Saturation => saturation_f32(&mut pixels, factor),
                    }
                }
                from_f32(image.width(), image.height(), &pixels)
            }
        })
    }
}

/// An image too small for an augmentation's crop.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: a {size}x{size} crop does not fit the {width}x{height} image")]
pub struct TooSmall {
    pub what: &'static str,
    pub width: u32,
    pub height: u32,
    pub size: u32,
}

#[derive(Debug, Clone, Copy)]
enum JitterOp {
    Brightness,
    Contrast,
    Saturation,
}

fn maybe_flip(image: RgbImage, rng: &mut impl Rng) -> RgbImage {
    if rng.random_bool(0.5) {
        flip_horizontal(&image)
    } else {
        image
    }
}

/// The size with shorter side `shorter` and the aspect ratio kept: torchvision's `Resize(int)`
/// rule, the one the evaluation uses ([`crate::transform::ResizePolicy::ShorterSide`]).
fn shorter_side_size(width: u32, height: u32, shorter: u32) -> (u32, u32) {
    crate::transform::ResizePolicy::ShorterSide(shorter).target_size(width, height)
}

/// ScaleAugment's first draw: the shorter side, uniform on the integers [min, max].
pub fn scale_augment_shorter_side(min: u32, max: u32, rng: &mut impl Rng) -> u32 {
    rng.random_range(min..=max)
}

/// The crop rectangle RandomResizedCrop picks, as torchvision's `get_params` does: up to 10
/// attempts at an area fraction uniform in `scale` and a log-aspect uniform in
/// [ln ratio.0, ln ratio.1], sides rounded half to even; then fb.resnet.torch's fallback, a center
/// square of the shorter side.
pub fn random_resized_region(
    width: u32,
    height: u32,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut impl Rng,
) -> Region {
    random_resized_region_attempt(width, height, scale, ratio, rng).0
}

/// `random_resized_region` and whether it came from an attempt (true) or the fallback (false).
fn random_resized_region_attempt(
    width: u32,
    height: u32,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut impl Rng,
) -> (Region, bool) {
    let area = width as f64 * height as f64;
    let (log_lo, log_hi) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target_area = area * uniform(rng, scale.0, scale.1);
        let aspect = uniform(rng, log_lo, log_hi).exp();
        let w = (target_area * aspect).sqrt().round_ties_even();
        let h = (target_area / aspect).sqrt().round_ties_even();
        if w >= 1.0 && h >= 1.0 && w <= width as f64 && h <= height as f64 {
            let (w, h) = (w as u32, h as u32);
            let top = rng.random_range(0..=height - h);
            let left = rng.random_range(0..=width - w);
            return (Region { left, top, width: w, height: h }, true);
        }
    }
    let side = width.min(height);
    (Region { left: (width - side) / 2, top: (height - side) / 2, width: side, height: side }, false)
}

/// Uniform in [lo, hi) (lo itself when the range is empty, as Python's `uniform`).
fn uniform(rng: &mut impl Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

/// PadCrop's draws for a width×height image: the crop's offsets in the padded image (left, top,
/// each uniform on 0..=side + 2·pad − size), then whether to flip (p = 0.5).
pub fn pad_crop_params(width: u32, height: u32, pad: u32, size: u32, rng: &mut impl Rng) -> (u32, u32, bool) {
    let (pw, ph) = (width + 2 * pad, height + 2 * pad);
    assert!(size <= pw && size <= ph, "pad-crop: {size}x{size} crop does not fit {pw}x{ph}");
    let left = rng.random_range(0..=pw - size);
    let top = rng.random_range(0..=ph - size);
    (left, top, rng.random_bool(0.5))
}

/// The size×size window at (left, top) of the image zero-padded by `pad` on each side.
fn pad_crop(image: &RgbImage, pad: u32, left: u32, top: u32, size: u32) -> RgbImage {
    let (w, h) = (image.width() as i64, image.height() as i64);
    RgbImage::from_fn(size, size, |x, y| {
        let sx = (left + x) as i64 - pad as i64;
        let sy = (top + y) as i64 - pad as i64;
        if (0..w).contains(&sx) && (0..h).contains(&sy) {
            *image.get_pixel(sx as u32, sy as u32)
        } else {
            image::Rgb([0, 0, 0])
        }
    })
}

/// The RGB shift (0–255 scale) Lighting adds to every pixel: alpha ~ N(0, std) per eigenvector,
/// shift[c] = Σ_i eigvec[c][i] · alpha_i · eigval_i · 255. Three normal draws (none if std = 0).
pub fn lighting_shift(std: f64, rng: &mut impl Rng) -> [f32; 3] {
    if std == 0.0 {
        return [0.0; 3];
    }
    let alpha: [f64; 3] = std::array::from_fn(|_| rng.sample::<f64, _>(StandardNormal) * std);
    std::array::from_fn(|c| {
        (0..3).map(|i| IMAGENET_EIGVEC[c][i] as f64 * alpha[i] * IMAGENET_EIGVAL[i] as f64 * 255.0).sum::<f64>() as f32
    })
}

/// A ColorJitter factor for strength `s`: uniform in [1 − s, 1 + s] (1 without a draw if s = 0).
pub fn jitter_factor(s: f64, rng: &mut impl Rng) -> f32 {
    if s == 0.0 {
        return 1.0;
    }
    uniform(rng, 1.0 - s, 1.0 + s) as f32
}

/// Brightness with a fixed factor: every channel multiplied by `factor`.
pub fn adjust_brightness(image: &RgbImage, factor: f32) -> RgbImage {
    map_f32(image, |p| brightness_f32(p, factor))
}

/// Contrast with a fixed factor: blended with the image's mean gray level.
pub fn adjust_contrast(image: &RgbImage, factor: f32) -> RgbImage {
    map_f32(image, |p| contrast_f32(p, factor))
}

/// Saturation with a fixed factor: blended with each pixel's gray level (0 gives a gray image).
pub fn adjust_saturation(image: &RgbImage, factor: f32) -> RgbImage {
    map_f32(image, |p| saturation_f32(p, factor))
}

fn map_f32(image: &RgbImage, f: impl FnOnce(&mut [f32])) -> RgbImage {
    let mut pixels = to_f32(image);
    f(&mut pixels);
    from_f32(image.width(), image.height(), &pixels)
}

fn gray(px: &[f32]) -> f32 {
    GRAY_WEIGHTS[0] * px[0] + GRAY_WEIGHTS[1] * px[1] + GRAY_WEIGHTS[2] * px[2]
}

/// `alpha · x + (1 − alpha) · g`.
fn blend(x: f32, g: f32, alpha: f32) -> f32 {
    alpha * x + (1.0 - alpha) * g
}

fn brightness_f32(pixels: &mut [f32], factor: f32) {
    pixels.iter_mut().for_each(|v| *v *= factor);
}

fn contrast_f32(pixels: &mut [f32], factor: f32) {
    let n = (pixels.len() / 3).max(1);
    let mean = (pixels.chunks_exact(3).map(|px| gray(px) as f64).sum::<f64>() / n as f64) as f32;
    pixels.iter_mut().for_each(|v| *v = blend(*v, mean, factor));
}

fn saturation_f32(pixels: &mut [f32], factor: f32) {
    for px in pixels.chunks_exact_mut(3) {
        let g = gray(px);
        px.iter_mut().for_each(|v| *v = blend(*v, g, factor));
    }
}

fn to_f32(image: &RgbImage) -> Vec<f32> {
    image.as_raw().iter().map(|&v| v as f32).collect()
}

/// Back to u8: rounded half away from zero, clamped to 0–255.
fn from_f32(width: u32, height: u32, pixels: &[f32]) -> RgbImage {
    let bytes = pixels.iter().map(|&v| v.round().clamp(0.0, 255.0) as u8).collect();
    RgbImage::from_raw(width, height, bytes).expect("width*height*3 values")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    /// A deterministic, varied test image.
    fn pattern(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x * 7 % 256) as u8, (y * 13 % 256) as u8, ((x * y + 31) % 256) as u8])
        })
    }

    #[test]
    fn random_resized_region_geometry() {
        let (w, h) = (400u32, 300u32);
        let (scale, ratio) = (default_scale(), default_ratio());
        let mut r = rng(1);
        let (mut n, mut sum_log_aspect, mut fallbacks) = (0usize, 0.0f64, 0usize);
        for _ in 0..20_000 {
            let (reg, accepted) = random_resized_region_attempt(w, h, scale, ratio, &mut r);
            assert!(reg.width >= 1 && reg.height >= 1);
            assert!(reg.left + reg.width <= w && reg.top + reg.height <= h, "{reg:?} outside {w}x{h}");
            if !accepted {
                fallbacks += 1;
                assert_eq!(reg, Region { left: 50, top: 0, width: 300, height: 300 });
                continue;
            }
            let frac = (reg.width * reg.height) as f64 / (w * h) as f64;
            assert!((0.08 - 0.005..=1.0).contains(&frac), "area fraction {frac}");
            let log_aspect = (reg.width as f64 / reg.height as f64).ln();
            assert!(
                log_aspect >= ratio.0.ln() - 0.05 && log_aspect <= ratio.1.ln() + 0.05,
                "log aspect {log_aspect} for {reg:?}"
            );
            sum_log_aspect += log_aspect;
            n += 1;
        }
        // Ten failed attempts in a row are rare on a 4:3 image.
        assert!(fallbacks < 20, "{fallbacks} fallbacks");
        // Tall draws (height up to sqrt(4/3 * 120000) = 400 > 300) fail to fit more often than wide
        // ones, so the accepted regions lean slightly wide on a 4:3 image: a separate Python
        // simulation of torchvision's get_params (400,000 draws) gives a mean log aspect of 0.0307.
        let mean = sum_log_aspect / n as f64;
        assert!((mean - 0.0307).abs() < 0.005, "mean log aspect {mean}");
        // On a square image the truncation is symmetric: the mean log aspect is near 0.
        let square_mean = (0..20_000)
            .map(|_| {
                let reg = random_resized_region(300, 300, scale, ratio, &mut r);
                (reg.width as f64 / reg.height as f64).ln()
            })
            .sum::<f64>()
            / 20_000.0;
        assert!(square_mean.abs() < 0.03, "square image: mean log aspect {square_mean}");
        // The public function places regions the same way.
        let reg = random_resized_region(w, h, scale, ratio, &mut r);
        assert!(reg.left + reg.width <= w && reg.top + reg.height <= h);
    }

    #[test]
    fn random_resized_region_falls_back_to_center_square() {
        // A 1000x10 strip: no 3/4..4/3 rectangle of >= 8% of its area fits.
        let mut r = rng(2);
        for _ in 0..100 {
            let reg = random_resized_region(1000, 10, default_scale(), default_ratio(), &mut r);
            assert_eq!(reg, Region { left: 495, top: 0, width: 10, height: 10 });
        }
    }

    #[test]
    fn random_resized_crop_output_size() {
        let aug = Augmentation::RandomResizedCrop { size: 64, scale: default_scale(), ratio: default_ratio() };
        let image = pattern(120, 90);
        let mut r = rng(3);
        for _ in 0..20 {
            assert_eq!(aug.apply(&image, &mut r).unwrap().dimensions(), (64, 64));
        }
    }

    #[test]
    fn scale_augment_shorter_side_is_uniform() {
        let (min, max) = (256u32, 480u32);
        let mut r = rng(4);
        let draws: Vec<u32> = (0..2_000).map(|_| scale_augment_shorter_side(min, max, &mut r)).collect();
        assert!(draws.iter().all(|&s| (min..=max).contains(&s)));
        assert_eq!(*draws.iter().min().unwrap(), min);
        assert_eq!(*draws.iter().max().unwrap(), max);
        let mean = draws.iter().map(|&s| s as f64).sum::<f64>() / draws.len() as f64;
        let expected = (min + max) as f64 / 2.0;
        assert!((mean - expected).abs() < 0.01 * expected, "mean {mean} vs {expected}");
    }

    #[test]
    fn scale_augment_output_size() {
        let aug = Augmentation::ScaleAugment { min: 256, max: 480, size: 224 };
        aug.validate().unwrap();
        let image = pattern(500, 375);
        let mut r = rng(5);
        for _ in 0..10 {
            assert_eq!(aug.apply(&image, &mut r).unwrap().dimensions(), (224, 224));
        }
        assert_eq!(shorter_side_size(500, 375, 256), (341, 256));
        assert_eq!(shorter_side_size(375, 500, 256), (256, 341));
        assert!(Augmentation::ScaleAugment { min: 200, max: 480, size: 224 }.validate().is_err());
    }

    #[test]
    fn pad_crop_offsets_and_flips() {
        // Every source pixel encodes its position (B = 200 marks "not padding").
        let (side, pad, size) = (32u32, 4u32, 32u32);
        let image = RgbImage::from_fn(side, side, |x, y| image::Rgb([x as u8 + 1, y as u8 + 1, 200]));
        let aug = Augmentation::PadCrop { pad, size };
        let mut r = rng(6);
        let positions = (2 * pad + 1) as usize;
        let mut seen = vec![false; positions * positions];
        let (draws, mut flips) = (4_000usize, 0usize);
        for _ in 0..draws {
            let out = aug.apply(&image, &mut r).unwrap();
            assert_eq!(out.dimensions(), (size, size));
            // Padding is zero.
            assert!(out.pixels().all(|p| p.0[2] == 200 || p.0 == [0, 0, 0]));
            // Find a row stretch of two adjacent source pixels: R increases left to right unless flipped.
            let (i, j) = (0..size - 1)
                .flat_map(|j| (0..size - 1).map(move |i| (i, j)))
                .find(|&(i, j)| out.get_pixel(i, j).0[2] == 200 && out.get_pixel(i + 1, j).0[2] == 200)
                .expect("at least two adjacent source pixels");
            let (a, b) = (out.get_pixel(i, j).0[0] as i64, out.get_pixel(i + 1, j).0[0] as i64);
            let flipped = b < a;
            assert_eq!((b - a).abs(), 1);
            flips += flipped as usize;
            let column = if flipped { size - 1 - i } else { i } as i64;
            let (src_x, src_y) = (a - 1, out.get_pixel(i, j).0[1] as i64 - 1);
            let left = src_x + pad as i64 - column;
            let top = src_y + pad as i64 - j as i64;
            assert!((0..positions as i64).contains(&left) && (0..positions as i64).contains(&top));
            seen[top as usize * positions + left as usize] = true;
        }
        assert!(seen.iter().all(|&s| s), "not every offset was drawn");
        let rate = flips as f64 / draws as f64;
        assert!((rate - 0.5).abs() < 0.05, "flip rate {rate}");
    }

    #[test]
    fn pad_crop_zero_pad_is_visible() {
        let image = RgbImage::from_pixel(4, 4, image::Rgb([9, 9, 9]));
        let out = pad_crop(&image, 2, 0, 0, 8);
        assert_eq!(out.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(out.get_pixel(2, 2).0, [9, 9, 9]);
        assert_eq!(out.get_pixel(5, 5).0, [9, 9, 9]);
        assert_eq!(out.get_pixel(6, 6).0, [0, 0, 0]);
    }

    #[test]
    fn lighting_shift_covariance() {
        let std = 0.1;
        let mut r = rng(7);
        let n = 5_000usize;
        let shifts: Vec<[f32; 3]> = (0..n).map(|_| lighting_shift(std, &mut r)).collect();
        let mean: [f64; 3] = std::array::from_fn(|c| shifts.iter().map(|s| s[c] as f64).sum::<f64>() / n as f64);
        let cov = |a: usize, b: usize| {
            shifts.iter().map(|s| (s[a] as f64 - mean[a]) * (s[b] as f64 - mean[b])).sum::<f64>() / (n - 1) as f64
        };
        // Expected: V · diag((std · eigval · 255)²) · Vᵀ, rows of V = channels.
        let lambda: [f64; 3] = std::array::from_fn(|i| (std * IMAGENET_EIGVAL[i] as f64 * 255.0).powi(2));
        for (c, row) in IMAGENET_EIGVEC.iter().enumerate() {
            let expected: f64 = row.iter().zip(lambda).map(|(&v, l)| (v as f64).powi(2) * l).sum();
            let got = cov(c, c);
            assert!((got - expected).abs() < 0.1 * expected, "channel {c}: variance {got} vs {expected}");
        }
        // The channels move together (the first eigenvector dominates): strongly positive covariance.
        let expected_rg: f64 =
            (0..3).map(|i| IMAGENET_EIGVEC[0][i] as f64 * IMAGENET_EIGVEC[1][i] as f64 * lambda[i]).sum();
        assert!((cov(0, 1) - expected_rg).abs() < 0.1 * expected_rg.abs());
    }

    #[test]
    fn lighting_shifts_every_pixel_alike() {
        let image = RgbImage::from_pixel(16, 8, image::Rgb([120, 100, 80]));
        let aug = Augmentation::Lighting { std: 0.5 };
        let mut r = rng(8);
        let mut changed = false;
        for _ in 0..20 {
            let out = aug.apply(&image, &mut r).unwrap();
            let first = *out.get_pixel(0, 0);
            assert!(out.pixels().all(|p| *p == first));
            changed |= first != *image.get_pixel(0, 0);
        }
        assert!(changed);
        assert_eq!(Augmentation::Lighting { std: 0.0 }.apply(&image, &mut r).unwrap(), image);
    }

    #[test]
    fn color_jitter_zero_is_identity() {
        let image = pattern(23, 17);
        let aug = Augmentation::ColorJitter { brightness: 0.0, contrast: 0.0, saturation: 0.0 };
        let mut r = rng(9);
        assert_eq!(aug.apply(&image, &mut r).unwrap(), image);
        assert_eq!(adjust_brightness(&image, 1.0), image);
        assert_eq!(adjust_contrast(&image, 1.0), image);
        assert_eq!(adjust_saturation(&image, 1.0), image);
    }

    #[test]
    fn saturation_zero_is_gray() {
        let image = pattern(23, 17);
        let out = adjust_saturation(&image, 0.0);
        for (p, q) in out.pixels().zip(image.pixels()) {
            let [r, g, b] = p.0;
            assert!(r == g && g == b);
            let expected = 0.299 * q.0[0] as f32 + 0.587 * q.0[1] as f32 + 0.114 * q.0[2] as f32;
            assert!((r as f32 - expected).abs() <= 0.5 + 1e-3);
        }
        // Contrast 0: every pixel becomes the mean gray level.
        let flat = adjust_contrast(&image, 0.0);
        let first = *flat.get_pixel(0, 0);
        assert!(flat.pixels().all(|p| *p == first) && first.0[0] == first.0[1]);
    }

    #[test]
    fn brightness_factor_is_uniform() {
        let s = 0.4;
        let mut r = rng(10);
        let n = 20_000;
        let draws: Vec<f64> = (0..n).map(|_| jitter_factor(s, &mut r) as f64).collect();
        assert!(draws.iter().all(|&f| (1.0 - s - 1e-6..=1.0 + s + 1e-6).contains(&f)));
        let mean = draws.iter().sum::<f64>() / n as f64;
        let var = draws.iter().map(|f| (f - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        assert!((mean - 1.0).abs() < 0.01, "mean {mean}");
        // Uniform on a width-2s interval: variance (2s)²/12.
        let expected = (2.0 * s).powi(2) / 12.0;
        assert!((var - expected).abs() < 0.05 * expected, "variance {var} vs {expected}");
        let below = draws.iter().filter(|&&f| f < 1.0 - s / 2.0).count() as f64 / n as f64;
        assert!((below - 0.25).abs() < 0.02, "quartile {below}");
        assert_eq!(jitter_factor(0.0, &mut r), 1.0);
    }

    #[test]
    fn brightness_scales_pixels() {
        let image = RgbImage::from_pixel(3, 3, image::Rgb([100, 200, 10]));
        assert_eq!(adjust_brightness(&image, 1.5).get_pixel(1, 1).0, [150, 255, 15]);
    }

    #[test]
    fn color_jitter_keeps_size_and_varies() {
        let image = pattern(20, 10);
        let aug = Augmentation::ColorJitter { brightness: 0.4, contrast: 0.4, saturation: 0.4 };
        let mut r = rng(11);
        let outs: Vec<RgbImage> = (0..5).map(|_| aug.apply(&image, &mut r).unwrap()).collect();
        assert!(outs.iter().all(|o| o.dimensions() == (20, 10)));
        assert!(outs.iter().any(|o| *o != image));
    }

    #[test]
    fn deserializes_from_yaml() {
        let yaml = "
- kind: scale-augment
  min: 256
  max: 480
  size: 224
- kind: random-resized-crop
  size: 224
- kind: pad-crop
  pad: 4
  size: 32
- kind: lighting
- kind: color-jitter
  brightness: 0.4
  contrast: 0.4
  saturation: 0.4
";
        let augs: Vec<Augmentation> = serde_yaml::from_str(yaml).unwrap();
        assert_eq!(
            augs,
            vec![
                Augmentation::ScaleAugment { min: 256, max: 480, size: 224 },
                Augmentation::RandomResizedCrop { size: 224, scale: (0.08, 1.0), ratio: (3.0 / 4.0, 4.0 / 3.0) },
                Augmentation::PadCrop { pad: 4, size: 32 },
                Augmentation::Lighting { std: 0.1 },
                Augmentation::ColorJitter { brightness: 0.4, contrast: 0.4, saturation: 0.4 },
            ]
        );
        assert!(augs.iter().all(|a| a.validate().is_ok()));
        let rrc: Augmentation =
            serde_yaml::from_str("kind: random-resized-crop\nsize: 128\nscale: [0.25, 1.0]\nratio: [0.5, 2.0]")
                .unwrap();
        assert_eq!(rrc, Augmentation::RandomResizedCrop { size: 128, scale: (0.25, 1.0), ratio: (0.5, 2.0) });
        assert!(serde_yaml::from_str::<Augmentation>("kind: pad-crop\npad: 4\nsize: 32\nextra: 1").is_err());
        assert!(serde_yaml::from_str::<Augmentation>("kind: mixup").is_err());
    }

    #[test]
    fn a_crop_larger_than_the_padded_image_is_an_error() {
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let aug = Augmentation::PadCrop { pad: 2, size: 40 };
        let err = aug.apply(&RgbImage::new(32, 32), &mut r).unwrap_err();
        assert_eq!(err.to_string(), "pad-crop: a 40x40 crop does not fit the 36x36 image");
    }
}
