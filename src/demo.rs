//! A procedurally generated, seeded image-classification dataset: ten classes of textured objects drawn at
//! random scale, position and aspect ratio into cluttered images of varied sizes. Objects are often off-centre
//! and vary in scale, so center crop, ten crop, multi-scale and ensemble protocols give measurably different
//! errors on it. Every image is a function of (seed, split, index) alone.

use std::path::{Path, PathBuf};

use image::{ImageFormat, Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Class names, in sorted order so that an ImageFolder loader (which sorts folder names) assigns the same labels.
pub const CLASSES: [&str; 10] =
    ["checker", "cross", "disc", "dots", "frame", "ring", "square", "stripes-h", "stripes-v", "triangle"];

/// Smallest and largest object bounding-box side, as fractions of the shorter image side.
const OBJECT_FRACTION: (f64, f64) = (0.2, 0.7);
/// Range of the object's aspect stretch (width / height multiplier).
const ASPECT: (f64, f64) = (0.75, 1.33);
/// Probability that an object is placed uniformly anywhere; otherwise near the centre.
const UNIFORM_PLACEMENT: f64 = 0.5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoSpec {
    pub seed: u64,
    pub train_per_class: usize,
    pub test_per_class: usize,
    /// Image side lengths (width and height independently) are uniform in `min_side..=max_side`.
    pub min_side: u32,
    pub max_side: u32,
}

impl Default for DemoSpec {
    fn default() -> Self {
        Self { seed: 2015, train_per_class: 300, test_per_class: 60, min_side: 48, max_side: 96 }
    }
}

impl DemoSpec {
    /// Number of images in `split`.
    pub fn len(&self, split: Split) -> usize {
        CLASSES.len()
            * match split {
                Split::Train => self.train_per_class,
                Split::Test => self.test_per_class,
            }
    }

    /// Whether both splits are empty.
    pub fn is_empty(&self) -> bool {
        self.len(Split::Train) == 0 && self.len(Split::Test) == 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Test,
}

impl Split {
    pub const ALL: [Split; 2] = [Split::Train, Split::Test];

    /// Folder name of the split.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }

    fn tag(self) -> u64 {
        match self {
            Split::Train => 0x7472_6169_6e00_0001,
            Split::Test => 0x7465_7374_0000_0002,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("invalid demo spec: {0}")]
    Spec(String),
    #[error("{}: {message}", path.display())]
    Io { path: PathBuf, message: String },
    #[error("{}: this demo folder was generated with another spec ({found}); remove the folder or point `dir` elsewhere", path.display())]
    OtherSpec { path: PathBuf, found: String },
    #[error("cannot encode {} as PNG: {error}", path.display())]
    Encode { path: PathBuf, error: image::ImageError },
    #[error(transparent)]
    Write(#[from] crate::fsio::WriteError),
}

/// Ground truth of one generated image (for tests and for explaining protocol differences).
#[derive(Debug, Clone, PartialEq)]
pub struct DemoImage {
    pub class: usize,
    pub image: RgbImage,
    /// The object's bounding box: left, top, width, height.
    pub object: (u32, u32, u32, u32),
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn image_seed(seed: u64, split: Split, index: usize) -> u64 {
    splitmix64(splitmix64(splitmix64(seed) ^ split.tag()) ^ index as u64)
}

fn check(spec: &DemoSpec) -> Result<(), DemoError> {
    if spec.min_side < 8 || spec.min_side > spec.max_side {
        return Err(DemoError::Spec(format!(
            "need 8 <= min_side <= max_side, got {}..={}",
            spec.min_side, spec.max_side
        )));
    }
    Ok(())
}

type Colour = [f64; 3];

fn random_colour(rng: &mut ChaCha8Rng, low: f64, high: f64) -> Colour {
    [rng.random_range(low..high), rng.random_range(low..high), rng.random_range(low..high)]
}

fn luma(c: &Colour) -> f64 {
    0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]
}

/// Low-contrast clutter: a base colour, soft blobs, faint line segments and pixel noise.
fn background(rng: &mut ChaCha8Rng, width: u32, height: u32) -> Vec<Colour> {
    let (w, h) = (width as usize, height as usize);
    let base = random_colour(rng, 60.0, 190.0);
    let mut pixels = vec![base; w * h];
    let blobs = rng.random_range(2..6);
    for _ in 0..blobs {
        let (cx, cy) = (rng.random_range(0.0..width as f64), rng.random_range(0.0..height as f64));
        let radius = rng.random_range(0.1..0.4) * width.min(height) as f64;
        let offset = random_colour(rng, -45.0, 45.0);
        for y in 0..h {
            for x in 0..w {
                let d2 = ((x as f64 - cx).powi(2) + (y as f64 - cy).powi(2)) / (radius * radius);
                if d2 < 9.0 {
                    let weight = (-d2).exp();
                    for (p, o) in pixels[y * w + x].iter_mut().zip(offset) {
                        *p += weight * o;
                    }
                }
            }
        }
    }
    let lines = rng.random_range(1..5);
    for _ in 0..lines {
        let (x0, y0) = (rng.random_range(0.0..width as f64), rng.random_range(0.0..height as f64));
        let (x1, y1) = (rng.random_range(0.0..width as f64), rng.random_range(0.0..height as f64));
        let offset = random_colour(rng, -35.0, 35.0);
        let steps = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
        for s in 0..=steps {
            let t = s as f64 / steps as f64;
            let (x, y) = ((x0 + t * (x1 - x0)) as usize, (y0 + t * (y1 - y0)) as usize);
            if x < w && y < h {
                for (p, o) in pixels[y * w + x].iter_mut().zip(offset) {
                    *p += o;
                }
            }
        }
    }
    for p in &mut pixels {
        for c in p.iter_mut() {
            *c += rng.random_range(-8.0..8.0);
        }
    }
    pixels
}

/// Whether normalised box coordinates (u, v) in [0, 1)² are "on" for `class`; `None` means background shows.
fn shape(class: usize, u: f64, v: f64) -> Option<bool> {
    let (du, dv) = (u - 0.5, v - 0.5);
    let r2 = du * du + dv * dv;
    match CLASSES[class] {
        "checker" => Some(((u * 4.0) as u32 + (v * 4.0) as u32).is_multiple_of(2)),
        "cross" => (du.abs() < 0.17 || dv.abs() < 0.17).then_some(true),
        "disc" => (r2 <= 0.25).then_some(true),
        "dots" => {
            let (fu, fv) = ((u * 3.0).fract() - 0.5, (v * 3.0).fract() - 0.5);
            (fu * fu + fv * fv <= 0.1).then_some(true)
        }
        "frame" => (!(0.2..0.8).contains(&u) || !(0.2..0.8).contains(&v)).then_some(true),
        "ring" => (0.09..=0.25).contains(&r2).then_some(true),
        "square" => Some(true),
        "stripes-h" => Some(((v * 5.0) as u32).is_multiple_of(2)),
        "stripes-v" => Some(((u * 5.0) as u32).is_multiple_of(2)),
        "triangle" => (du.abs() <= v / 2.0).then_some(true),
        other => unreachable!("unknown class {other}"),
    }
}

/// The `index`-th image of a split, generated deterministically from (seed, split, index) alone (so any image
/// can be regenerated independently, and in parallel). The class is `index % 10`.
///
/// Panics if `spec.min_side > spec.max_side` or `spec.min_side < 8`.
pub fn generate(spec: &DemoSpec, split: Split, index: usize) -> DemoImage {
    check(spec).unwrap_or_else(|e| panic!("{e}"));
    let class = index % CLASSES.len();
    let mut rng = ChaCha8Rng::seed_from_u64(image_seed(spec.seed, split, index));
    let width = rng.random_range(spec.min_side..=spec.max_side);
    let height = rng.random_range(spec.min_side..=spec.max_side);
    let short = width.min(height) as f64;

    // Object box: a side fraction, stretched by an aspect factor, both sides kept within the fraction range.
    let side = rng.random_range(OBJECT_FRACTION.0..=OBJECT_FRACTION.1) * short;
    let aspect = rng.random_range(ASPECT.0..=ASPECT.1).sqrt();
    let clamp = |s: f64| s.clamp(OBJECT_FRACTION.0 * short, OBJECT_FRACTION.1 * short).round().max(1.0) as u32;
    let (ow, oh) = (clamp(side * aspect), clamp(side / aspect));
    let place = |rng: &mut ChaCha8Rng, room: u32| -> u32 {
        if rng.random_bool(UNIFORM_PLACEMENT) {
            rng.random_range(0..=room)
        } else {
            // Near the centre: a triangular distribution around the middle of the free range.
            let t = (rng.random_range(0.0..1.0) + rng.random_range(0.0..1.0)) / 2.0;
            let centre = room as f64 / 2.0;
            let spread = (0.15 * short).min(centre);
            (centre + (2.0 * t - 1.0) * spread).round() as u32
        }
    };
    let left = place(&mut rng, width - ow);
    let top = place(&mut rng, height - oh);

    let mut pixels = background(&mut rng, width, height);

    // Object colour with contrast to the mean background under its box.
    let (w, h) = (width as usize, height as usize);
    let mut mean = [0.0; 3];
    for y in top as usize..(top + oh) as usize {
        for x in left as usize..(left + ow) as usize {
            for (m, p) in mean.iter_mut().zip(pixels[y * w + x]) {
                *m += p;
            }
        }
    }
    let area = (ow * oh) as f64;
    mean.iter_mut().for_each(|m| *m /= area);
    let mut colour = random_colour(&mut rng, 0.0, 255.0);
    if (luma(&colour) - luma(&mean)).abs() < 60.0 {
        let target = if luma(&mean) > 128.0 { rng.random_range(0.0..50.0) } else { rng.random_range(205.0..255.0) };
        let shift = target - luma(&colour);
        colour.iter_mut().for_each(|c| *c = (*c + shift).clamp(0.0, 255.0));
    }
    // The "off" colour of textures: halfway between the object and its background.
    let off: Colour = std::array::from_fn(|i| (colour[i] + mean[i]) / 2.0);
    let noise = rng.random_range(3.0..12.0);

    for y in top..top + oh {
        for x in left..left + ow {
            let u = (x - left) as f64 / ow as f64 + 0.5 / ow as f64;
            let v = (y - top) as f64 / oh as f64 + 0.5 / oh as f64;
            if let Some(on) = shape(class, u, v) {
                let c = if on { colour } else { off };
                let p = &mut pixels[y as usize * w + x as usize];
                for (p, c) in p.iter_mut().zip(c) {
                    *p = c + rng.random_range(-noise..noise);
                }
            }
        }
    }

    let image = RgbImage::from_fn(width, height, |x, y| {
        let p = pixels[y as usize * w + x as usize];
        Rgb(p.map(|c| c.round().clamp(0.0, 255.0) as u8))
    });
    debug_assert_eq!(pixels.len(), w * h);
    DemoImage { class, image, object: (left, top, ow, oh) }
}

/// Path of the `index`-th image of `split` under `dir`: `<dir>/<split>/<class>/<index:05>.png`.
pub fn image_path(dir: &Path, split: Split, index: usize) -> PathBuf {
    dir.join(split.name()).join(CLASSES[index % CLASSES.len()]).join(format!("{index:05}.png"))
}

/// The file that marks a finished dataset folder and records the spec it was made with.
const SPEC_FILE: &str = "demo-spec.json";

/// Writes the dataset to `dir` unless a finished one with the same spec is there already (an
/// interrupted write has no spec file and is redone). A folder made with another spec is an error.
pub fn ensure(spec: &DemoSpec, dir: &Path) -> Result<(), DemoError> {
    let marker = dir.join(SPEC_FILE);
    let wanted = serde_json::to_string_pretty(spec).map_err(|e| DemoError::Spec(e.to_string()))?;
    match std::fs::read_to_string(&marker) {
        Ok(found) if found == wanted => return Ok(()),
        Ok(found) => return Err(DemoError::OtherSpec { path: marker, found }),
        Err(_) => {}
    }
    eprintln!("writing the demo dataset to {}", dir.display());
    write(spec, dir)?;
    Ok(crate::fsio::atomic_write(&marker, wanted.as_bytes())?)
}

/// Writes the dataset as a class-per-folder tree of PNGs, `<dir>/<split>/<class>/<index:05>.png` (torchvision
/// ImageFolder layout), each file through [`crate::fsio::atomic_write`]; existing files are rewritten. Returns
/// the number of files written.
pub fn write(spec: &DemoSpec, dir: &Path) -> Result<usize, DemoError> {
    check(spec)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e: std::io::Error| DemoError::Io { path, message: e.to_string() }
    };
    let mut jobs = Vec::new();
    for split in Split::ALL {
        for class in CLASSES {
            let folder = dir.join(split.name()).join(class);
            std::fs::create_dir_all(&folder).map_err(io(&folder))?;
        }
        jobs.extend((0..spec.len(split)).map(|index| (split, index)));
    }
    jobs.par_iter().try_for_each(|&(split, index)| {
        let path = image_path(dir, split, index);
        let mut png = std::io::Cursor::new(Vec::new());
        generate(spec, split, index)
            .image
            .write_to(&mut png, ImageFormat::Png)
            .map_err(|error| DemoError::Encode { path: path.clone(), error })?;
        crate::fsio::atomic_write(&path, png.get_ref()).map_err(DemoError::from)
    })?;
    Ok(jobs.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the object box lies fully inside the central square crop of 87.5% of the shorter side.
    fn inside_center_crop(d: &DemoImage) -> bool {
        let (w, h) = d.image.dimensions();
        let crop = (0.875 * w.min(h) as f64).round();
        let (cl, ct) = ((w as f64 - crop) / 2.0, (h as f64 - crop) / 2.0);
        let (l, t, ow, oh) = d.object;
        l as f64 >= cl && t as f64 >= ct && (l + ow) as f64 <= cl + crop && (t + oh) as f64 <= ct + crop
    }

    #[test]
    fn deterministic_and_distinct() {
        let spec = DemoSpec::default();
        for split in Split::ALL {
            for index in [0, 7, 123] {
                assert_eq!(generate(&spec, split, index), generate(&spec, split, index));
            }
            assert_ne!(generate(&spec, split, 3).image, generate(&spec, split, 13).image);
        }
        assert_ne!(generate(&spec, Split::Train, 5).image, generate(&spec, Split::Test, 5).image);
        let other = DemoSpec { seed: 1, ..DemoSpec::default() };
        assert_ne!(generate(&spec, Split::Train, 5).image, generate(&other, Split::Train, 5).image);
    }

    #[test]
    fn classes_sizes_and_boxes() {
        let spec = DemoSpec::default();
        let mut seen = [false; 10];
        for index in 0..200 {
            let d = generate(&spec, Split::Test, index);
            assert_eq!(d.class, index % 10);
            seen[d.class] = true;
            let (w, h) = d.image.dimensions();
            assert!((spec.min_side..=spec.max_side).contains(&w) && (spec.min_side..=spec.max_side).contains(&h));
            let (l, t, ow, oh) = d.object;
            assert!(l + ow <= w && t + oh <= h, "box {:?} outside {w}x{h}", d.object);
            let short = w.min(h) as f64;
            for side in [ow, oh] {
                let f = side as f64 / short;
                assert!((0.2 - 0.6 / short..=0.7 + 0.6 / short).contains(&f), "side fraction {f}");
            }
        }
        assert!(seen.iter().all(|&s| s));
        let mut sorted = CLASSES;
        sorted.sort_unstable();
        assert_eq!(sorted, CLASSES, "ImageFolder labels classes in sorted order");
    }

    #[test]
    fn center_crop_often_misses_part_of_the_object() {
        let spec = DemoSpec::default();
        let n = 500;
        let outside = (0..n).filter(|&i| !inside_center_crop(&generate(&spec, Split::Train, i))).count();
        let fraction = outside as f64 / n as f64;
        eprintln!("off-centre fraction: {fraction:.3}");
        assert!((0.15..=0.60).contains(&fraction), "off-centre fraction {fraction}");
    }

    #[test]
    fn write_produces_decodable_tree() {
        let dir = tempfile::tempdir().unwrap();
        let spec = DemoSpec { train_per_class: 2, test_per_class: 1, ..DemoSpec::default() };
        assert_eq!(write(&spec, dir.path()).unwrap(), 30);
        let pngs = walk(dir.path());
        assert_eq!(pngs.len(), 30);
        assert!(pngs.iter().all(|p| p.extension().is_some_and(|e| e == "png")));
        let path = image_path(dir.path(), Split::Test, 3);
        assert!(path.ends_with("test/dots/00003.png"));
        let decoded = image::open(&path).unwrap().to_rgb8();
        assert_eq!(decoded, generate(&spec, Split::Test, 3).image);
        // Rewriting is fine.
        assert_eq!(write(&spec, dir.path()).unwrap(), 30);
        assert_eq!(walk(dir.path()).len(), 30);
    }

    #[test]
    fn write_names_the_path_on_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let spec = DemoSpec { train_per_class: 1, test_per_class: 1, ..DemoSpec::default() };
        let err = write(&spec, &file).unwrap_err();
        assert!(err.to_string().contains("not-a-dir"), "{err}");
        let bad = DemoSpec { min_side: 90, max_side: 50, ..DemoSpec::default() };
        assert!(matches!(write(&bad, dir.path()), Err(DemoError::Spec(_))));
    }

    #[test]
    fn spec_round_trips_and_rejects_unknown_fields() {
        let spec = DemoSpec::default();
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<DemoSpec>(&json).unwrap(), spec);
        assert!(serde_json::from_str::<DemoSpec>(&json.replace('}', ",\"extra\":1}")).is_err());
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
        out
    }
}
