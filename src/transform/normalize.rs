//! Pixels to the numbers a model was trained on: channel order, scale, mean and std.

use std::path::{Path, PathBuf};

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::weights::WeightsFile;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChannelOrder {
    Rgb,
    /// Caffe models (OpenCV decoding).
    Bgr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PixelScale {
    /// 0–1 (torchvision's ToTensor).
    Unit,
    /// 0–255 (Caffe).
    Byte,
}

/// What is subtracted: one value per channel, or a per-pixel mean image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MeanSpec {
    /// Per channel, in the model's channel order and pixel scale.
    Channel([f32; 3]),
    /// A safetensors file with a tensor `mean` [3, H, W] in the model's channel order and scale
    /// (Caffe's `ResNet_mean.binaryproto`, converted by `convert caffe --mean`), subtracted pixel
    /// by pixel from views of exactly H×W; `other_sizes` says what views of other sizes get.
    Image {
        image: PathBuf,
        #[serde(default)]
        other_sizes: OtherSizes,
    },
}

/// What a per-pixel mean image means for a view of another size (fully-convolutional testing
/// at several scales): the source (Caffe's released models) does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OtherSizes {
    /// Subtract the mean image's per-channel average.
    #[default]
    ChannelMean,
    /// Subtract the mean image resized to the view (bilinear, not antialiased).
    Resized,
    /// Refuse: an error naming the file and both sizes.
    Error,
}

/// A model's input convention, as written in an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub channel_order: ChannelOrder,
    pub scale: PixelScale,
    pub mean: MeanSpec,
    #[serde(default = "unit_std")]
    pub std: [f32; 3],
}

fn unit_std() -> [f32; 3] {
    [1.0; 3]
}

impl std::fmt::Display for ChannelOrder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChannelOrder::Rgb => "RGB",
            ChannelOrder::Bgr => "BGR",
        })
    }
}

/// The value range: `[0,1]` or `[0,255]`.
impl std::fmt::Display for PixelScale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PixelScale::Unit => "[0,1]",
            PixelScale::Byte => "[0,255]",
        })
    }
}

impl std::fmt::Display for OtherSizes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OtherSizes::ChannelMean => "its channel means for other sizes",
            OtherSizes::Resized => "resized to other sizes",
            OtherSizes::Error => "other sizes refused",
        })
    }
}

/// Three numbers as a paper lists them: `(104, 117, 123)`, `(0.485, 0.456, 0.406)`.
fn triple(values: &[f32; 3]) -> String {
    let parts: Vec<String> = values.iter().map(|v| format!("{v}")).collect();
    format!("({})", parts.join(", "))
}

/// As a paper writes it: `RGB in [0,1], ImageNet mean/std`, `BGR in [0,255], minus mean
/// image ResNet_mean.safetensors (its channel means for other sizes)`.
impl std::fmt::Display for InputSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} in {}", self.channel_order, self.scale)?;
        let imagenet = InputSpec::torchvision();
        if self.mean == imagenet.mean && self.std == imagenet.std {
            return f.write_str(", ImageNet mean/std");
        }
        match &self.mean {
            MeanSpec::Channel(m) if m.iter().all(|v| *v == 0.0) => {}
            MeanSpec::Channel(m) => write!(f, ", minus mean {}", triple(m))?,
            MeanSpec::Image { image, other_sizes } => {
                let name =
                    image.file_name().map_or_else(|| image.display().to_string(), |n| n.to_string_lossy().into());
                write!(f, ", minus mean image {name} ({other_sizes})")?
            }
        }
        if self.std != unit_std() {
            write!(f, ", divided by std {}", triple(&self.std))?;
        }
        Ok(())
    }
}

impl InputSpec {
    /// torchvision / fb.resnet.torch: RGB in 0–1, ImageNet mean and std.
    pub fn torchvision() -> Self {
        Self {
            channel_order: ChannelOrder::Rgb,
            scale: PixelScale::Unit,
            mean: MeanSpec::Channel([0.485, 0.456, 0.406]),
            std: [0.229, 0.224, 0.225],
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NormalizeError {
    #[error("mean image {path}: {reason}")]
    MeanImage { path: PathBuf, reason: String },
    #[error("mean image {path} is {mean_w}x{mean_h} but the view is {view_w}x{view_h}: a per-pixel mean fits only views of its own size")]
    MeanImageSize { path: PathBuf, mean_w: usize, mean_h: usize, view_w: u32, view_h: u32 },
    #[error("input std has a zero entry {std:?}")]
    ZeroStd { std: [f32; 3] },
}

#[derive(Debug, Clone)]
enum Mean {
    Channel([f32; 3]),
    Image {
        path: PathBuf,
        sha256: String,
        width: usize,
        height: usize,
        values: Vec<f32>,
        other_sizes: OtherSizes,
        channel_means: [f32; 3],
    },
}

/// An [`InputSpec`] made ready to apply (the mean image read once).
#[derive(Debug, Clone)]
pub struct Normalizer {
    order: ChannelOrder,
    scale: PixelScale,
    mean: Mean,
    std: [f32; 3],
}

impl Normalizer {
    /// Relative mean-image paths are resolved against `base`.
    pub fn new(spec: &InputSpec, base: &Path) -> Result<Self, NormalizeError> {
        if spec.std.contains(&0.0) {
            return Err(NormalizeError::ZeroStd { std: spec.std });
        }
        let mean = match &spec.mean {
            MeanSpec::Channel(values) => Mean::Channel(*values),
            MeanSpec::Image { image, other_sizes } => read_mean_image(&base.join(image), *other_sizes)?,
        };
        Ok(Self { order: spec.channel_order, scale: spec.scale, mean, std: spec.std })
    }

    /// SHA-256 of the mean image file, if one is used (part of the store key).
    pub fn mean_image_sha256(&self) -> Option<&str> {
        match &self.mean {
            Mean::Image { sha256, .. } => Some(sha256),
            Mean::Channel(_) => None,
        }
    }

    /// What the mean image does, for reports (None with per-channel means).
    pub fn mean_image_policy(&self) -> Option<String> {
        match &self.mean {
            Mean::Channel(_) => None,
            Mean::Image { path, width, height, other_sizes, channel_means, .. } => Some(format!(
                "mean image {} subtracted per pixel on {width}x{height} views; other sizes: {}",
                path.display(),
                match other_sizes {
                    OtherSizes::ChannelMean => format!("its per-channel mean {channel_means:.3?}"),
                    OtherSizes::Resized => "the mean image resized to the view (bilinear)".to_string(),
                    OtherSizes::Error => "refused".to_string(),
                }
            )),
        }
    }

    /// The mean to subtract for a view of `w`×`h`, planar [3, h, w] (None: per channel).
    fn mean_plane(&self, w: u32, h: u32) -> Result<Option<std::borrow::Cow<'_, [f32]>>, NormalizeError> {
        let Mean::Image { path, width, height, values, other_sizes, channel_means, .. } = &self.mean else {
            return Ok(None);
        };
        if (*width, *height) == (w as usize, h as usize) {
            return Ok(Some(std::borrow::Cow::Borrowed(values)));
        }
        let plane = (w * h) as usize;
        match other_sizes {
            OtherSizes::Error => Err(NormalizeError::MeanImageSize {
                path: path.clone(),
                mean_w: *width,
                mean_h: *height,
                view_w: w,
                view_h: h,
            }),
            OtherSizes::ChannelMean => Ok(Some(std::borrow::Cow::Owned(
                channel_means.iter().flat_map(|&m| std::iter::repeat_n(m, plane)).collect(),
            ))),
            OtherSizes::Resized => {
                let resized = (0..3)
                    .flat_map(|c| {
                        resize_plane(
                            &values[c * width * height..(c + 1) * width * height],
                            *width,
                            *height,
                            w as usize,
                            h as usize,
                        )
                    })
                    .collect();
                Ok(Some(std::borrow::Cow::Owned(resized)))
            }
        }
    }

    /// Appends the image as a [3, H, W] planar float array to `out`.
    pub fn append_chw(&self, image: &RgbImage, out: &mut Vec<f32>) -> Result<(), NormalizeError> {
        let (w, h) = image.dimensions();
        let plane = (w * h) as usize;
        let mean_plane = self.mean_plane(w, h)?;
        let raw = image.as_raw();
        for channel in 0..3 {
            let source = match self.order {
                ChannelOrder::Rgb => channel,
                ChannelOrder::Bgr => 2 - channel,
            };
            let std = self.std[channel];
            out.extend((0..plane).map(|i| {
                let pixel = raw[i * 3 + source] as f32;
                // torchvision divides by 255 before subtracting; the same order keeps f32 rounding identical.
                let x = match self.scale {
                    PixelScale::Unit => pixel / 255.0,
                    PixelScale::Byte => pixel,
                };
                let mean = match (&self.mean, &mean_plane) {
                    (_, Some(values)) => values[channel * plane + i],
                    (Mean::Channel(m), None) => m[channel],
                    (Mean::Image { .. }, None) => unreachable!("an image mean always yields a plane"),
                };
                (x - mean) / std
            }));
        }
        Ok(())
    }
}

/// Bilinear resize of one float plane, `interpolate(align_corners=False)` without antialiasing.
fn resize_plane(values: &[f32], in_w: usize, in_h: usize, out_w: usize, out_h: usize) -> Vec<f32> {
    let taps = |n_in: usize, n_out: usize| -> Vec<(usize, usize, f32)> {
        let scale = n_in as f32 / n_out as f32;
        (0..n_out)
            .map(|d| {
                let src = ((d as f32 + 0.5) * scale - 0.5).max(0.0);
                let i0 = (src as usize).min(n_in - 1);
                let i1 = (i0 + 1).min(n_in - 1);
                (i0, i1, src - i0 as f32)
            })
            .collect()
    };
    let (xs, ys) = (taps(in_w, out_w), taps(in_h, out_h));
    let mut out = Vec::with_capacity(out_w * out_h);
    for &(y0, y1, ly) in &ys {
        for &(x0, x1, lx) in &xs {
            let row = |y: usize| values[y * in_w + x0] * (1.0 - lx) + values[y * in_w + x1] * lx;
            out.push(row(y0) * (1.0 - ly) + row(y1) * ly);
        }
    }
    out
}

fn read_mean_image(path: &Path, other_sizes: OtherSizes) -> Result<Mean, NormalizeError> {
    let fail = |reason: String| NormalizeError::MeanImage { path: path.to_path_buf(), reason };
    let file = WeightsFile::read(path).map_err(|e| fail(e.to_string()))?;
    let stored = file.tensors.get("mean").ok_or_else(|| fail("no tensor named `mean`".into()))?;
    let tensor =
        stored.tensor.as_ref().ok_or_else(|| fail(format!("`mean` is {}, not a float tensor", stored.dtype)))?;
    let (c, height, width) =
        tensor.dims3().map_err(|_| fail(format!("`mean` has shape {:?}, expected [3, H, W]", stored.shape)))?;
    if c != 3 {
        return Err(fail(format!("`mean` has shape {:?}, expected [3, H, W]", stored.shape)));
    }
    let values = tensor
        .to_dtype(candle_core::DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| fail(e.to_string()))?;
    let plane = (width * height) as f64;
    let channel_means = [0, 1, 2].map(|c| {
        (values[c * width * height..(c + 1) * width * height].iter().map(|&v| v as f64).sum::<f64>() / plane) as f32
    });
    Ok(Mean::Image {
        path: path.to_path_buf(),
        sha256: file.sha256.clone(),
        width,
        height,
        values,
        other_sizes,
        channel_means,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The input convention as the report prints it.
    #[test]
    fn input_conventions_read_as_a_paper_writes_them() {
        assert_eq!(InputSpec::torchvision().to_string(), "RGB in [0,1], ImageNet mean/std");
        let caffe = InputSpec {
            channel_order: ChannelOrder::Bgr,
            scale: PixelScale::Byte,
            mean: MeanSpec::Image {
                image: "weights/ResNet_mean.safetensors".into(),
                other_sizes: OtherSizes::ChannelMean,
            },
            std: [1.0; 3],
        };
        assert_eq!(
            caffe.to_string(),
            "BGR in [0,255], minus mean image ResNet_mean.safetensors (its channel means for other sizes)"
        );
        let plain = InputSpec { mean: MeanSpec::Channel([104.0, 117.0, 123.5]), ..caffe.clone() };
        assert_eq!(plain.to_string(), "BGR in [0,255], minus mean (104, 117, 123.5)");
        let scaled = InputSpec { std: [0.5, 0.25, 2.0], mean: MeanSpec::Channel([0.0; 3]), ..InputSpec::torchvision() };
        assert_eq!(scaled.to_string(), "RGB in [0,1], divided by std (0.5, 0.25, 2)");
    }

    #[test]
    fn bgr_byte_scale_swaps_channels_and_keeps_0_255() {
        let image = RgbImage::from_raw(1, 1, vec![10, 20, 30]).unwrap();
        let spec = InputSpec {
            channel_order: ChannelOrder::Bgr,
            scale: PixelScale::Byte,
            mean: MeanSpec::Channel([1.0, 2.0, 3.0]),
            std: [1.0; 3],
        };
        let mut out = Vec::new();
        Normalizer::new(&spec, Path::new(".")).unwrap().append_chw(&image, &mut out).unwrap();
        assert_eq!(out, vec![29.0, 18.0, 7.0]);
    }

    fn mean_image_spec(image: &str) -> InputSpec {
        InputSpec {
            channel_order: ChannelOrder::Bgr,
            scale: PixelScale::Byte,
            mean: MeanSpec::Image { image: image.into(), other_sizes: OtherSizes::Error },
            std: [1.0; 3],
        }
    }

    #[test]
    fn a_mean_image_fits_only_views_of_its_size() {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/parity");
        let normalizer = Normalizer::new(&mean_image_spec("mean_image_64.safetensors"), &base).unwrap();
        let mut out = Vec::new();
        normalizer.append_chw(&RgbImage::new(64, 64), &mut out).unwrap();
        assert_eq!(out.len(), 3 * 64 * 64);
        let err = normalizer.append_chw(&RgbImage::new(224, 224), &mut out).unwrap_err().to_string();
        assert!(err.contains("mean_image_64.safetensors is 64x64 but the view is 224x224"), "{err}");
    }

    #[test]
    fn other_sizes_get_the_channel_mean_or_the_resized_image() {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/parity");
        let mut spec = mean_image_spec("mean_image_64.safetensors");
        let image = RgbImage::from_pixel(32, 16, image::Rgb([0, 0, 0]));
        let mut channel = Vec::new();
        spec.mean = MeanSpec::Image { image: "mean_image_64.safetensors".into(), other_sizes: OtherSizes::ChannelMean };
        Normalizer::new(&spec, &base).unwrap().append_chw(&image, &mut channel).unwrap();
        // A black image minus a constant per channel: every value of a plane is the same.
        assert!(channel[..512].iter().all(|&v| v == channel[0]) && channel[0] < -90.0, "{}", channel[0]);
        let mut resized = Vec::new();
        spec.mean = MeanSpec::Image { image: "mean_image_64.safetensors".into(), other_sizes: OtherSizes::Resized };
        Normalizer::new(&spec, &base).unwrap().append_chw(&image, &mut resized).unwrap();
        assert!(resized[..512].iter().any(|&v| v != resized[0]), "the smooth mean image varies over the view");
        let mean_of_resized = resized[..512].iter().sum::<f32>() / 512.0;
        assert!((mean_of_resized - channel[0]).abs() < 2.0, "{mean_of_resized} vs {}", channel[0]);
    }

    #[test]
    fn a_bad_mean_image_file_is_named() {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/parity");
        let err = Normalizer::new(&mean_image_spec("missing.safetensors"), &base).unwrap_err().to_string();
        assert!(err.starts_with("mean image ") && err.contains("missing.safetensors"), "{err}");
        // A weights file has no `mean` tensor.
        let err = Normalizer::new(&mean_image_spec("resnet18_w8.safetensors"), &base).unwrap_err().to_string();
        assert!(err.contains("resnet18_w8.safetensors: no tensor named `mean`"), "{err}");
    }

    #[test]
    fn torchvision_convention() {
        let image = RgbImage::from_raw(1, 1, vec![255, 0, 128]).unwrap();
        let mut out = Vec::new();
        Normalizer::new(&InputSpec::torchvision(), Path::new(".")).unwrap().append_chw(&image, &mut out).unwrap();
        let expected = [(1.0 - 0.485) / 0.229, (0.0 - 0.456) / 0.224, (128.0 / 255.0 - 0.406) / 0.225];
        for (a, e) in out.iter().zip(expected) {
            assert!((a - e).abs() < 1e-6, "{a} vs {e}");
        }
    }
}
