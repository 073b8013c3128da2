//! What changed image by image in one experiment that ran: for each model and each pair of its
//! protocols as written, the flips (`flips.rs`) with a thumbnail gallery of the first few, the
//! classes whose error moved most between (i) and (ii)/(iii) (`per_class.rs`), and calibration
//! per protocol (`calibration.rs`). Thumbnails are written here, into the report folder, because
//! only here are the dataset's images at hand; everything else becomes data the report formats.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::calibration::{calibration, CalibrationError};
use super::flips::{fixed_only_by_labels, flips, FlipsError};
use super::per_class::{largest_changes, per_class, ClassError, PerClassRow};
use super::rows::kind_of;
use crate::dataset::{DatasetError, Sample};
use crate::decode::decode_rgb_within;
use crate::eval::{EvalReport, NamedLabels, Row};
use crate::experiment::LoadedExperiment;
use crate::fsio::{atomic_write, WriteError};
use crate::report::{FlipImage, FlipPair, Guess, ImageByImage, LabelSetFixes, ProtocolCalibration, ProtocolKind};
use crate::scoring::LabelSet;
use crate::store::{ImageResult, UNMAPPED_CLASS};

/// Fixed and broken images shown per pair and direction (the counts are always complete).
pub const GALLERY_SIZE: usize = 12;

/// Classes listed per (i) → (ii)/(iii) pair.
pub const CLASS_CHANGES_SHOWN: usize = 5;

/// The longer side of a thumbnail at most (smaller images are kept as they are).
const THUMBNAIL_SIDE: u32 = 96;

/// The folder thumbnails go to inside the report folder.
pub const FLIPS_DIR: &str = "flips";

#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("the experiment's dataset is an unresolved name")]
    UnresolvedDataset,
    #[error("the experiment has no label set")]
    NoLabelSet,
    #[error("{model}: {from} → {to}: {error}")]
    Flips { model: String, from: String, to: String, error: FlipsError },
    #[error("{model}/{protocol}: {error}")]
    Calibration { model: String, protocol: String, error: CalibrationError },
    #[error("thumbnail of {image}: {error}")]
    Thumbnail { image: String, error: WriteError },
    #[error("cannot remove the earlier report's thumbnails {path}: {error}")]
    RemoveThumbnails { path: PathBuf, error: std::io::Error },
    #[error("no result of {model}/{protocol} (the run has: {})", available.join(", "))]
    NoResult { model: String, protocol: String, available: Vec<String> },
}

/// Every flip between two protocols of one model: what `resnet-audit flips` prints.
#[derive(Debug, Clone, PartialEq)]
pub struct FlipList {
    pub model: String,
    pub from: String,
    pub to: String,
    /// Images both protocols scored.
    pub paired: usize,
    /// (image, label's class name, guess under `from`, guess under `to`), in store order.
    pub fixed: Vec<(String, String, Guess, Guess)>,
    pub broken: Vec<(String, String, Guess, Guess)>,
}

/// The flips from `from` to `to` of `model` in an eval report of the experiment (model
/// `ensemble` for ensemble protocols), every one, with class names.
pub fn flip_list(
    loaded: &LoadedExperiment,
    report: &EvalReport,
    model: &str,
    from: &str,
    to: &str,
) -> Result<FlipList, ImagesError> {
    let dataset = loaded.experiment.dataset().map_err(|_| ImagesError::UnresolvedDataset)?.load(&loaded.base)?;
    let ((labels_id, labels), _) = split_labels(report)?;
    let names = dataset.human_names();
    let find = |protocol: &str| {
        let mut rows = report.rows.iter().filter(|r| r.labels == *labels_id && r.sweep.is_none());
        rows.find(|r| r.model == model && r.protocol == protocol).ok_or_else(|| {
            ImagesError::NoResult {
                model: model.to_string(),
                protocol: protocol.to_string(),
                available: report.rows.iter().map(|r| format!("{}/{}", r.model, r.protocol)).collect(),
            }
        })
    };
    let (a, b) = (find(from)?, find(to)?);
    let found = flips(&a.results, &b.results, labels).map_err(|error| ImagesError::Flips {
        model: model.to_string(),
        from: from.to_string(),
        to: to.to_string(),
        error,
    })?;
    let line = |&k: &usize| {
        let (x, y) = (&a.results[k], &b.results[k]);
        let label = names.get(x.label as usize).cloned().unwrap_or_else(|| x.label.to_string());
        (x.image.clone(), label, guess(x, &names), guess(y, &names))
    };
    Ok(FlipList {
        model: model.to_string(),
        from: from.to_string(),
        to: to.to_string(),
        paired: found.paired,
        fixed: found.fixed.iter().map(line).collect(),
        broken: found.broken.iter().map(line).collect(),
    })
}

impl std::fmt::Display for FlipList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{}: {} -> {}: {} images both scored, {} fixed, {} broken",
            self.model,
            self.from,
            self.to,
            self.paired,
            self.fixed.len(),
            self.broken.len()
        )?;
        let sections = [
            (format!("fixed (wrong under {}, right under {})", self.from, self.to), &self.fixed),
            (format!("broken (right under {}, wrong under {})", self.from, self.to), &self.broken),
        ];
        for (title, lines) in sections {
            writeln!(f, "{title}:")?;
            for (image, label, a, b) in lines {
                writeln!(
                    f,
                    "  {image}\tlabel {label}\t{}: {} ({:.3})\t{}: {} ({:.3})",
                    self.from, a.class, a.probability, self.to, b.class, b.probability
                )?;
            }
        }
        Ok(())
    }
}

/// The experiment's image-by-image analysis and its per-class table rows.
pub(super) fn analyse(
    loaded: &LoadedExperiment,
    name: &str,
    report: &EvalReport,
    out: &Path,
) -> Result<(ImageByImage, Vec<PerClassRow>), ImagesError> {
    let experiment = &loaded.experiment;
    let dataset = experiment.dataset().map_err(|_| ImagesError::UnresolvedDataset)?.load(&loaded.base)?;
    let ((labels_id, labels), others) = split_labels(report)?;
    let names = dataset.human_names();
    let samples: BTreeMap<&str, &Sample> = dataset.samples.iter().map(|s| (s.id.as_str(), s)).collect();
    let kind = |protocol: &str| experiment.protocol(protocol).map(kind_of).unwrap_or(ProtocolKind::Ensemble);
    // The main rows only: the other label sets' rows share these results.
    let written: Vec<&Row> = report.rows.iter().filter(|r| r.sweep.is_none() && r.labels == *labels_id).collect();

    let mut table = Vec::new();
    let mut classes: Vec<Vec<ClassError>> = Vec::new();
    let mut calibrations = Vec::new();
    for row in &written {
        let errors = per_class(&row.results, dataset.classes.len(), labels);
        table.extend(errors.iter().map(|error| PerClassRow {
            experiment: name.to_string(),
            model: row.model.clone(),
            protocol: row.protocol.clone(),
            class_name: names.get(error.class).cloned().unwrap_or_default(),
            error: error.clone(),
        }));
        classes.push(errors);
        let calibrated = calibration(&row.results).map_err(|error| ImagesError::Calibration {
            model: row.model.clone(),
            protocol: row.protocol.clone(),
            error,
        })?;
        if let Some(c) = calibrated {
            calibrations.push(ProtocolCalibration {
                model: row.model.clone(),
                protocol: row.protocol.clone(),
                kind: kind(&row.protocol),
                nll: c.nll,
                ece: c.ece,
                bins: c.bins,
            });
        }
    }

    let mut gallery = Gallery {
        out,
        folder: format!("{FLIPS_DIR}/{}", plain(name)),
        written: BTreeSet::new(),
        notes: Vec::new(),
        max_pixels: loaded.settings().max_pixels,
    };
    // An earlier report's thumbnails go first: the folder then holds exactly what the manifest lists.
    let folder = out.join(&gallery.folder);
    match std::fs::remove_dir_all(&folder) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(ImagesError::RemoveThumbnails { path: folder, error })
        }
        _ => {}
    }
    let mut pairs = Vec::new();
    // The pairs `eval::paired_tests` compares, in its order: so each pair's counts are its McNemar cells.
    for (i, a) in written.iter().enumerate() {
        for (j, b) in written.iter().enumerate().skip(i + 1).filter(|(_, b)| b.model == a.model) {
            let found = flips(&a.results, &b.results, labels).map_err(|error| ImagesError::Flips {
                model: a.model.clone(),
                from: a.protocol.clone(),
                to: b.protocol.clone(),
                error,
            })?;
            let (from_kind, to_kind) = (kind(&a.protocol), kind(&b.protocol));
            let compared = from_kind == ProtocolKind::CenterCrop
                && matches!(to_kind, ProtocolKind::TenCrop | ProtocolKind::FullyConvolutional);
            let show = |indices: &[usize], gallery: &mut Gallery| -> Result<Vec<FlipImage>, ImagesError> {
                shown(indices, &a.results, &b.results)
                    .into_iter()
                    .map(|k| gallery.image(&a.results[k], &b.results[k], &names, &samples))
                    .collect()
            };
            // What each other label set (ImageNet-ReaL) counts as fixed, and how much of that the
            // label set alone accounts for.
            let by_other_labels = others
                .iter()
                .map(|(id, set)| {
                    let pair_error = |error| ImagesError::Flips {
                        model: a.model.clone(),
                        from: a.protocol.clone(),
                        to: b.protocol.clone(),
                        error,
                    };
                    Ok(LabelSetFixes {
                        labels: id.clone(),
                        fixed: flips(&a.results, &b.results, set).map_err(pair_error)?.fixed.len(),
                        fixed_only_by_labels: fixed_only_by_labels(&a.results, &b.results, labels, set)
                            .map_err(pair_error)?,
                    })
                })
                .collect::<Result<Vec<_>, ImagesError>>()?;
            pairs.push(FlipPair {
                by_other_labels,
                model: a.model.clone(),
                from: a.protocol.clone(),
                from_kind,
                to: b.protocol.clone(),
                to_kind,
                paired: found.paired,
                fixed: found.fixed.len(),
                broken: found.broken.len(),
                fixed_shown: show(&found.fixed, &mut gallery)?,
                broken_shown: show(&found.broken, &mut gallery)?,
                class_changes: if compared {
                    largest_changes(&classes[i], &classes[j], &names, CLASS_CHANGES_SHOWN)
                } else {
                    Vec::new()
                },
            });
        }
    }
    let analysis = ImageByImage {
        experiment: name.to_string(),
        labels: describe(labels),
        pairs,
        calibration: calibrations,
        charts: Vec::new(),
        notes: gallery.notes,
    };
    Ok((analysis, table))
}

/// The flipped images a gallery shows: the [`GALLERY_SIZE`] whose probability of the label
/// moved most between the two runs (store order among equal moves), so that a gallery is not
/// simply the first class in id order.
fn shown(indices: &[usize], from: &[ImageResult], to: &[ImageResult]) -> Vec<usize> {
    let p = |r: &ImageResult| r.outcome.as_ref().ok().and_then(|s| s.probs.get(r.label as usize).copied());
    let moved = |k: usize| match (p(&from[k]), p(&to[k])) {
        (Some(a), Some(b)) => (b - a).abs(),
        _ => 0.0,
    };
    let mut order: Vec<usize> = indices.to_vec();
    order.sort_by(|&x, &y| moved(y).total_cmp(&moved(x)).then(x.cmp(&y)));
    order.truncate(GALLERY_SIZE);
    order
}

/// The label set of the main rows (with its id) and the others, as eval judged them.
fn split_labels(report: &EvalReport) -> Result<(&NamedLabels, &[NamedLabels]), ImagesError> {
    report.label_sets.split_first().ok_or(ImagesError::NoLabelSet)
}

fn describe(labels: &LabelSet) -> String {
    match labels {
        LabelSet::Single => "the dataset's labels (one per image)".into(),
        LabelSet::Real { .. } => "ImageNet-ReaL (a list of correct classes per image; empty lists not scored)".into(),
        LabelSet::Subset { classes } => {
            format!("the dataset's labels, outputs restricted to a {}-class subset before ranking", classes.len())
        }
    }
}

/// A file-name-safe form of a name: ASCII letters, digits, `-` and `_`.
fn plain(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') { c } else { '_' }).collect()
}

/// A file name for an image id (its extension dropped), with a short hash of the id so that two
/// ids that map to the same characters still get two files.
fn slug(id: &str) -> String {
    let stem = id.rsplit_once('.').filter(|(_, ext)| !ext.contains('/')).map_or(id, |(stem, _)| stem);
    let hash = format!("{:x}", Sha256::digest(id.as_bytes()));
    format!("{}-{}", plain(stem), &hash[..8])
}

/// Thumbnails of one experiment: each image written once, whatever the number of pairs showing it.
struct Gallery<'a> {
    out: &'a Path,
    /// `flips/<experiment>` inside the report folder.
    folder: String,
    written: BTreeSet<String>,
    notes: Vec<String>,
    max_pixels: u64,
}

impl Gallery<'_> {
    fn image(
        &mut self,
        from: &ImageResult,
        to: &ImageResult,
        names: &[String],
        samples: &BTreeMap<&str, &Sample>,
    ) -> Result<FlipImage, ImagesError> {
        Ok(FlipImage {
            image: from.image.clone(),
            label: names.get(from.label as usize).cloned().unwrap_or_else(|| from.label.to_string()),
            thumbnail: self.thumbnail(&from.image, samples)?,
            from: guess(from, names),
            to: guess(to, names),
        })
    }

    /// The thumbnail's path inside the report (written on first use); `None`, with a note, when
    /// the image cannot be read now (the run read it, so this is a changed dataset).
    fn thumbnail(&mut self, image: &str, samples: &BTreeMap<&str, &Sample>) -> Result<Option<String>, ImagesError> {
        let relative = format!("{}/{}.png", self.folder, slug(image));
        if self.written.contains(&relative) {
            return Ok(Some(relative));
        }
        let Some(sample) = samples.get(image) else {
            self.notes.push(format!("{image}: no thumbnail: not in the dataset as loaded now"));
            return Ok(None);
        };
        let rgb = match &sample.pixels {
            Some(pixels) => (**pixels).clone(),
            // The experiment's pixel limit, as when the image was scored.
            None => match decode_rgb_within(&sample.path, self.max_pixels) {
                Ok(rgb) => rgb,
                Err(error) => {
                    self.notes.push(format!("{image}: no thumbnail: {error}"));
                    return Ok(None);
                }
            },
        };
        let Some(png) = encode_thumbnail(&rgb) else {
            self.notes.push(format!("{image}: no thumbnail: the image could not be encoded as PNG"));
            return Ok(None);
        };
        let path: PathBuf = self.out.join(&relative);
        atomic_write(&path, &png).map_err(|error| ImagesError::Thumbnail { image: image.to_string(), error })?;
        self.written.insert(relative.clone());
        Ok(Some(relative))
    }
}

/// The image shrunk (never enlarged) to at most [`THUMBNAIL_SIDE`] on its longer side, as PNG.
fn encode_thumbnail(rgb: &image::RgbImage) -> Option<Vec<u8>> {
    use image::ImageEncoder;
    let (w, h) = rgb.dimensions();
    let longer = w.max(h).max(1);
    let small = if longer > THUMBNAIL_SIDE {
        let scale = |v: u32| ((u64::from(v) * u64::from(THUMBNAIL_SIDE)).div_ceil(u64::from(longer)) as u32).max(1);
        image::imageops::resize(rgb, scale(w), scale(h), image::imageops::FilterType::Triangle)
    } else {
        rgb.clone()
    };
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(small.as_raw(), small.width(), small.height(), image::ExtendedColorType::Rgb8)
        .ok()?;
    Some(png)
}

fn guess(result: &ImageResult, names: &[String]) -> Guess {
    let best = result.outcome.as_ref().ok().and_then(|s| s.top5.first().copied());
    match best {
        Some((class, p)) => Guess {
            class: match usize::try_from(class).ok().and_then(|c| names.get(c)) {
                Some(name) => name.clone(),
                None if class == UNMAPPED_CLASS => "an output with no dataset class".into(),
                None => format!("class {class}"),
            },
            probability: f64::from(p),
        },
        None => Guess { class: "(not scored)".into(), probability: f64::NAN },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn galleries_show_the_largest_moves_of_the_label_probability_first() {
        let image = |label: u32, p: f32| ImageResult {
            image: format!("{p}"),
            label,
            outcome: Ok(crate::store::Scored { top5: vec![(0, 0.5)], probs: vec![p, 1.0 - p], unmapped_prob: 0.0 }),
        };
        let from: Vec<ImageResult> = (0..20).map(|_| image(0, 0.3)).collect();
        let mut to: Vec<ImageResult> = (0..20).map(|i| image(0, 0.3 + 0.01 * i as f32)).collect();
        to[3] = to[1].clone(); // the same move as image 1: store order decides
        let picked = shown(&(0..20).collect::<Vec<_>>(), &from, &to);
        assert_eq!(picked.len(), GALLERY_SIZE);
        assert_eq!(picked[..3], [19, 18, 17]);
        assert_eq!(shown(&[3, 1], &from, &to), [1, 3]);
    }

    #[test]
    fn slugs_are_file_names_and_keep_ids_apart() {
        let (a, b) = (slug("n01/ILSVRC_1.JPEG"), slug("n01_ILSVRC_1.JPEG"));
        assert!(a.starts_with("n01_ILSVRC_1-") && b.starts_with("n01_ILSVRC_1-") && a != b, "{a} {b}");
        assert!(!slug("../x").contains(['/', '.']));
        assert!(slug("a.b/c").starts_with("a_b_c-"), "a dot in a folder name is no extension");
    }

    #[test]
    fn thumbnails_come_from_shipped_pixels_or_the_file_and_are_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let pixels = std::sync::Arc::new(image::RgbImage::from_pixel(32, 32, image::Rgb([200, 10, 10])));
        let cifar =
            Sample { id: "test_batch#7".into(), path: "/nonexistent/batch.bin".into(), label: 3, pixels: Some(pixels) };
        let missing = Sample::file("gone.png".into(), dir.path().join("gone.png"), 1);
        let samples: BTreeMap<&str, &Sample> = [(cifar.id.as_str(), &cifar), (missing.id.as_str(), &missing)].into();
        let mut gallery = Gallery {
            out: dir.path(),
            folder: "flips/x".into(),
            written: BTreeSet::new(),
            notes: Vec::new(),
            max_pixels: 1 << 20,
        };
        let first = gallery.thumbnail("test_batch#7", &samples).unwrap().unwrap();
        assert!(first.starts_with("flips/x/test_batch_7-") && dir.path().join(&first).is_file(), "{first}");
        assert_eq!(gallery.thumbnail("test_batch#7", &samples).unwrap(), Some(first));
        // A file that cannot be read any more: no thumbnail, and a note naming it.
        assert_eq!(gallery.thumbnail("gone.png", &samples).unwrap(), None);
        assert!(
            gallery.notes.len() == 1 && gallery.notes[0].starts_with("gone.png: no thumbnail"),
            "{:?}",
            gallery.notes
        );
    }

    #[test]
    fn thumbnails_shrink_and_never_grow() {
        let decode = |png: &[u8]| image::load_from_memory(png).unwrap().to_rgb8().dimensions();
        let big = image::RgbImage::from_pixel(300, 150, image::Rgb([10, 20, 30]));
        assert_eq!(decode(&encode_thumbnail(&big).unwrap()), (96, 48));
        let small = image::RgbImage::from_pixel(32, 32, image::Rgb([10, 20, 30]));
        assert_eq!(decode(&encode_thumbnail(&small).unwrap()), (32, 32));
    }
}
