//! Pixels to model input: resize policy, crop, flip, normalisation.

pub mod crop;
pub mod normalize;
pub mod resize;

pub use crop::{center_region, crop, flip_horizontal, ten_crop, CropTooLarge, Region};
pub use normalize::{ChannelOrder, InputSpec, MeanSpec, NormalizeError, Normalizer, OtherSizes, PixelScale};
pub use resize::{largest_buffer_pixels, resize, Interpolation, Resampling};

use serde::{Deserialize, Serialize};

/// Which size an image is resized to before cropping.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum ResizePolicy {
    /// The shorter side becomes `n`; the longer `floor(n · long / short)` (torchvision).
    ShorterSide(u32),
    /// Exactly `height`×`width`, aspect ratio not kept.
    Warp { height: u32, width: u32 },
    /// timm: shorter side `floor(crop / crop_pct)`, for a center crop of `crop`.
    CropPct { crop: u32, crop_pct: f64 },
}

impl ResizePolicy {
    /// Output (width, height) for an input of `width`×`height`.
    pub fn target_size(&self, width: u32, height: u32) -> (u32, u32) {
        match *self {
            ResizePolicy::ShorterSide(n) => shorter_side(n, width, height),
            ResizePolicy::Warp { height: h, width: w } => (w, h),
            ResizePolicy::CropPct { crop, crop_pct } => {
                shorter_side((crop as f64 / crop_pct).floor() as u32, width, height)
            }
        }
    }
}

/// As a paper writes it: `shorter side 256`, `224×224 (aspect not kept)`,
/// `shorter side 248 (crop_pct 0.9 of 224)`.
impl std::fmt::Display for ResizePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            ResizePolicy::ShorterSide(n) => write!(f, "shorter side {n}"),
            ResizePolicy::Warp { height, width } => write!(f, "{height}×{width} (aspect not kept)"),
            ResizePolicy::CropPct { crop, crop_pct } => {
                let side = (crop as f64 / crop_pct).floor() as u32;
                write!(f, "shorter side {side} (crop_pct {crop_pct} of {crop})")
            }
        }
    }
}

fn shorter_side(n: u32, width: u32, height: u32) -> (u32, u32) {
    // torchvision: int(n * long / short), computed in floating point.
    let long = |l: u32, s: u32| ((n as f64 * l as f64 / s as f64) as u32).max(1);
    if width <= height {
        (n, long(height, width))
    } else {
        (long(width, height), n)
    }
}
