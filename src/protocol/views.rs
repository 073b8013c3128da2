//! One image → groups of equally shaped model inputs; their outputs → one probability vector.

use image::RgbImage;

use super::{Combine, CropRegion, FullyConvolutional, PoolWindow, ProtocolSpec};
use crate::decode::DEFAULT_MAX_PIXELS;
use crate::model::DenseWindow;
use crate::transform::{
    center_region, crop, flip_horizontal, largest_buffer_pixels, resize, ten_crop, CropTooLarge, NormalizeError,
    Normalizer, Resampling, ResizePolicy,
};

/// Which head the views of a group go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Head {
    /// Global average pool + fc: logits [N, classes].
    Standard,
    /// The dense head, then the class-score map averaged over its positions.
    Dense(DenseWindow),
}

/// `count` views of one shape, normalised, planar: `pixels` is [count, 3, height, width].
#[derive(Debug, Clone)]
pub struct ViewGroup {
    pub height: u32,
    pub width: u32,
    pub count: usize,
    pub head: Head,
    pub pixels: Vec<f32>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("{0}")]
    Crop(#[from] CropTooLarge),
    #[error(transparent)]
    Normalize(#[from] NormalizeError),
    #[error("at scale {scale} the image becomes {width}x{height}, over max_side {max_side}")]
    TooLarge { scale: u32, width: u32, height: u32, max_side: u32 },
    #[error(
        "resizing the {from_width}x{from_height} image to {width}x{height} needs {pixels} pixels in one \
         buffer, over the limit of {max_pixels} (`max_pixels` in the experiment)"
    )]
    TooManyPixels { from_width: u32, from_height: u32, width: u32, height: u32, pixels: u64, max_pixels: u64 },
    #[error("an ensemble has no views: it reads its members' stored results")]
    Ensemble,
}

/// `image` resized to `width`×`height`, unless one of the resize's buffers would hold more than
/// `max_pixels` pixels: the size comes from the image's shape and the protocol (a 65500×1 strip
/// at shorter side 256 would be 16768000×256), so it is checked before anything is allocated.
fn resize_within(
    image: &RgbImage,
    (width, height): (u32, u32),
    resampling: Resampling,
    max_pixels: u64,
) -> Result<RgbImage, ProtocolError> {
    let (from_width, from_height) = image.dimensions();
    let pixels = largest_buffer_pixels(from_width, from_height, width, height, resampling);
    if pixels > max_pixels {
        return Err(ProtocolError::TooManyPixels { from_width, from_height, width, height, pixels, max_pixels });
    }
    Ok(resize(image, width, height, resampling))
}

fn resized(
    image: &RgbImage,
    policy: ResizePolicy,
    resampling: Resampling,
    max_pixels: u64,
) -> Result<RgbImage, ProtocolError> {
    resize_within(image, policy.target_size(image.width(), image.height()), resampling, max_pixels)
}

fn group(views: &[RgbImage], head: Head, normalizer: &Normalizer) -> Result<ViewGroup, ProtocolError> {
    let (width, height) = views[0].dimensions();
    let mut pixels = Vec::with_capacity(views.len() * 3 * (width * height) as usize);
    for view in views {
        normalizer.append_chw(view, &mut pixels)?;
    }
    Ok(ViewGroup { height, width, count: views.len(), head, pixels })
}

/// The views `spec` makes of `image`, grouped by shape (one group per scale for (iii)), with
/// resized images of at most [`DEFAULT_MAX_PIXELS`] pixels.
pub fn prepare(
    spec: &ProtocolSpec,
    image: &RgbImage,
    normalizer: &Normalizer,
) -> Result<Vec<ViewGroup>, ProtocolError> {
    prepare_within(spec, image, normalizer, DEFAULT_MAX_PIXELS)
}

/// As [`prepare`], with every resized image (and resize buffer) at most `max_pixels` pixels.
/// Views are crops and flips of those, so a group's memory is bounded by the limit too.
pub fn prepare_within(
    spec: &ProtocolSpec,
    image: &RgbImage,
    normalizer: &Normalizer,
    max_pixels: u64,
) -> Result<Vec<ViewGroup>, ProtocolError> {
    let resampling = spec.resampling().ok_or(ProtocolError::Ensemble)?;
    match spec {
        ProtocolSpec::CenterCrop(p) => {
            let resized = resized(image, p.resize, resampling, max_pixels)?;
            let region = center_region(resized.width(), resized.height(), p.crop, p.crop)?;
            Ok(vec![group(&[crop(&resized, region)], Head::Standard, normalizer)?])
        }
        ProtocolSpec::TenCrop(p) => {
            let mut resized = resized(image, p.resize, resampling, max_pixels)?;
            if p.region == CropRegion::CentralSquare {
                let side = resized.width().min(resized.height());
                resized = crop(&resized, center_region(resized.width(), resized.height(), side, side)?);
            }
            Ok(vec![group(&ten_crop(&resized, p.crop)?, Head::Standard, normalizer)?])
        }
        ProtocolSpec::FullyConvolutional(p) => fully_convolutional(p, image, resampling, normalizer, max_pixels),
        ProtocolSpec::Ensemble(_) => Err(ProtocolError::Ensemble),
    }
}

fn fully_convolutional(
    p: &FullyConvolutional,
    image: &RgbImage,
    resampling: Resampling,
    normalizer: &Normalizer,
    max_pixels: u64,
) -> Result<Vec<ViewGroup>, ProtocolError> {
    let head = Head::Dense(match p.pool {
        PoolWindow::Sliding(k) => DenseWindow::Pool(k),
        PoolWindow::Global(_) => DenseWindow::Global,
    });
    let mut groups = Vec::with_capacity(p.scales.len());
    for &scale in &p.scales {
        let (width, height) = ResizePolicy::ShorterSide(scale).target_size(image.width(), image.height());
        if width.max(height) > p.max_side {
            return Err(ProtocolError::TooLarge { scale, width, height, max_side: p.max_side });
        }
        // max_side is the protocol's own bound; max_pixels also holds when max_side is set high.
        let resized = resize_within(image, (width, height), resampling, max_pixels)?;
        let views = if p.flips {
            let mirrored = flip_horizontal(&resized);
            vec![resized, mirrored]
        } else {
            vec![resized]
        };
        groups.push(group(&views, head, normalizer)?);
    }
    Ok(groups)
}

fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
    let exp: Vec<f64> = logits.iter().map(|&x| (x as f64 - max).exp()).collect();
    let total: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / total).collect()
}

fn mean(vectors: &[Vec<f64>]) -> Vec<f64> {
    let mut sum = vec![0.0; vectors[0].len()];
    for v in vectors {
        sum.iter_mut().zip(v).for_each(|(s, x)| *s += x);
    }
    sum.into_iter().map(|s| s / vectors.len() as f64).collect()
}

/// One probability vector over the model's outputs from the logits of every view (all groups,
/// in order; for dense heads already averaged over positions).
pub fn combine(spec: &ProtocolSpec, view_logits: &[Vec<f32>]) -> Vec<f32> {
    let probabilities = match spec {
        ProtocolSpec::TenCrop(p) if p.combine == Combine::LogitSum => {
            let as_f64: Vec<Vec<f64>> = view_logits.iter().map(|l| l.iter().map(|&x| x as f64).collect()).collect();
            let mean_logits: Vec<f32> = mean(&as_f64).into_iter().map(|x| x as f32).collect();
            softmax(&mean_logits)
        }
        // One view, softmax-averaged views, or (iii)'s scales and flips: all average probabilities.
        _ => mean(&view_logits.iter().map(|l| softmax(l)).collect::<Vec<_>>()),
    };
    probabilities.into_iter().map(|p| p as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{CenterCrop, TenCrop};
    use crate::transform::{InputSpec, Interpolation};
    use std::path::Path;

    fn ten(combine: Combine) -> ProtocolSpec {
        ProtocolSpec::TenCrop(TenCrop {
            resize: ResizePolicy::ShorterSide(256),
            crop: 224,
            interpolation: Interpolation::Bilinear,
            antialias: true,
            region: CropRegion::Whole,
            combine,
        })
    }

    #[test]
    fn combine_rules_differ_and_softmax_mean_is_a_distribution() {
        let logits = vec![vec![4.0, 0.0, 0.0], vec![0.0, 1.0, 1.0]];
        let a = combine(&ten(Combine::SoftmaxMean), &logits);
        let b = combine(&ten(Combine::LogitSum), &logits);
        assert!((a.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((a[0] - (softmax(&[4.0, 0.0, 0.0])[0] + softmax(&[0.0, 1.0, 1.0])[0]) as f32 / 2.0).abs() < 1e-6);
        assert!((b[0] - softmax(&[2.0, 0.5, 0.5])[0] as f32).abs() < 1e-6);
    }

    #[test]
    fn max_side_guards_the_resized_image() {
        let spec: crate::protocol::ProtocolEntry =
            serde_yaml::from_str("{id: f, kind: fully-convolutional, scales: [224, 640], max_side: 1000}").unwrap();
        let normalizer = Normalizer::new(&InputSpec::torchvision(), Path::new(".")).unwrap();
        // A 3:1 panorama: 672x224 passes, 1920x640 is over the limit.
        let err = prepare(&spec.spec, &RgbImage::new(600, 200), &normalizer).unwrap_err();
        assert_eq!(err.to_string(), "at scale 640 the image becomes 1920x640, over max_side 1000");
    }

    #[test]
    fn center_crop_of_a_small_image_names_the_sizes() {
        let spec = ProtocolSpec::CenterCrop(CenterCrop {
            resize: ResizePolicy::Warp { height: 100, width: 100 },
            crop: 224,
            interpolation: Interpolation::Bilinear,
            antialias: true,
        });
        let normalizer = Normalizer::new(&InputSpec::torchvision(), Path::new(".")).unwrap();
        let err = prepare(&spec, &RgbImage::new(50, 60), &normalizer).unwrap_err();
        assert_eq!(err.to_string(), "a 224x224 crop does not fit a 100x100 image");
    }
}
