//! Whether a prediction is correct: the one place that decides it, and the error rates that
//! follow from it.
//!
//! The store keeps what a model said about each image (ranked classes, probabilities) and the
//! label the dataset gave it; it knows nothing of correctness. `metrics` turns counts into
//! intervals and tests; it knows nothing of labels. Everything in between lives here, so that a
//! new kind of label set changes this file (and, for its data, `dataset/`) only. Labels are not
//! part of a store key: one stored result is re-scored under every label set an experiment names
//! (`labels:`), with no model built (`--no-compute`).
//!
//! - `original` ([`LabelSet::Single`]): the one label stored beside the scores; an output with no
//!   dataset class (a background) still ranks, and is an error when it wins.
//! - `real` ([`LabelSet::Real`]): ImageNet-ReaL's list of correct classes per validation image;
//!   an empty list means the image is not scored.
//! - `{subset: …}` ([`LabelSet::Subset`]): a class subset (ImageNet-A/-R's 200 classes): the
//!   stored probabilities are re-ranked over the subset's classes before comparing, as timm's
//!   `output[:, valid_labels]`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::dataset::{self, Dataset, DatasetError, DatasetSpec};
use crate::metrics::{wilson, Proportion, Z95};
use crate::store::ImageResult;

/// What counts as a correct answer for each image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LabelSet {
    /// One correct class per image: the label stored beside its scores.
    #[default]
    Single,
    /// ImageNet-ReaL (Beyer et al. 2020, "Are we done with ImageNet?"): the correct classes of
    /// each image by image id; an image with an empty list (or none) is not scored.
    ///
    /// Top-1 is the paper's ReaL accuracy: the top prediction is correct when it is in the
    /// image's list, and images with an empty list are left out of the count. The paper reports
    /// top-1 only; top-5 here is timm's extension (`RealLabelsImagenet`): correct when any of
    /// the five best classes is in the list.
    Real { lists: BTreeMap<String, Vec<u32>> },
    /// A class subset: ranking is restricted to these dataset classes (sorted, distinct) before
    /// the single label is compared, as timm's `output[:, valid_labels]` then argmax / top-k.
    /// Ties in probability rank the lower class index first.
    Subset { classes: Vec<u32> },
}

impl LabelSet {
    /// The label set a dataset is scored with when an experiment names none.
    pub fn for_dataset(_dataset: &Dataset) -> Self {
        LabelSet::Single
    }

    /// Top-1 and top-5 correctness of one image; `None` when the image is not scored (it was
    /// skipped as a bad image, or the label set has no label for it).
    pub fn judge(&self, result: &ImageResult) -> Option<Correct> {
        let scored = result.outcome.as_ref().ok()?;
        let ranked: Vec<i64> = scored.top5.iter().map(|&(class, _)| class).collect();
        match self {
            LabelSet::Single => {
                let label = i64::from(result.label);
                Some(Correct { top1: in_top_k(&ranked, label, 1), top5: in_top_k(&ranked, label, 5) })
            }
            LabelSet::Real { lists } => {
                let list = lists.get(&result.image).filter(|list| !list.is_empty())?;
                let in_list = |k: usize| ranked.iter().take(k).any(|&c| list.iter().any(|&l| i64::from(l) == c));
                Some(Correct { top1: in_list(1), top5: in_list(5) })
            }
            LabelSet::Subset { classes } => {
                let ranked = rank_within(&scored.probs, classes, 5);
                let label = i64::from(result.label);
                Some(Correct { top1: in_top_k(&ranked, label, 1), top5: in_top_k(&ranked, label, 5) })
            }
        }
    }

    /// Top-1 and top-5 error over the scored images, each with a Wilson 95% interval.
    pub fn error_rates(&self, results: &[ImageResult]) -> ErrorRates {
        let judged: Vec<Correct> = results.iter().filter_map(|r| self.judge(r)).collect();
        error_rates(&judged)
    }

    /// Images the model scored that this label set leaves out (ReaL's empty lists): reported
    /// beside the error, never counted in it.
    pub fn excluded(&self, results: &[ImageResult]) -> usize {
        results.iter().filter(|r| r.outcome.is_ok() && self.judge(r).is_none()).count()
    }

    /// Top-1 correctness of two runs over the same images, on the images both scored (the
    /// paired outcomes McNemar's test compares).
    pub fn paired_top1(&self, a: &[ImageResult], b: &[ImageResult]) -> (Vec<bool>, Vec<bool>) {
        a.iter().zip(b).filter_map(|(x, y)| Some((self.judge(x)?.top1, self.judge(y)?.top1))).unzip()
    }
}

/// The `k` best of `classes` by `probs` (best first; equal probabilities: lower class first).
/// A class beyond `probs` (never the case for a store that matches its dataset) ranks last.
fn rank_within(probs: &[f32], classes: &[u32], k: usize) -> Vec<i64> {
    let prob = |c: u32| probs.get(c as usize).copied().unwrap_or(f32::NEG_INFINITY);
    let mut ranked: Vec<u32> = classes.to_vec();
    // Stable, and `classes` is sorted: ties keep the lower class first.
    ranked.sort_by(|&a, &b| prob(b).total_cmp(&prob(a)));
    ranked.into_iter().take(k).map(i64::from).collect()
}

/// A label set as an experiment names it. YAML: `original`, `real`, or `{subset: S}` with S
/// `imagenet-a`, `imagenet-r` (the shipped 200-class lists) or the path of a synset list file
/// (one class name a line; write `./imagenet-a` for a file of that name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelSetSpec {
    Original,
    Real,
    Subset(ClassSubset),
}

/// The classes of a subset benchmark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassSubset {
    ImagenetA,
    ImagenetR,
    File(PathBuf),
}

impl LabelSetSpec {
    /// The `labels` column's value: `original`, `real`, `subset:imagenet-a`, `subset:<path>`.
    pub fn id(&self) -> String {
        match self {
            LabelSetSpec::Original => "original".into(),
            LabelSetSpec::Real => "real".into(),
            LabelSetSpec::Subset(ClassSubset::ImagenetA) => "subset:imagenet-a".into(),
            LabelSetSpec::Subset(ClassSubset::ImagenetR) => "subset:imagenet-r".into(),
            LabelSetSpec::Subset(ClassSubset::File(path)) => format!("subset:{}", path.display()),
        }
    }

    /// The label set over `dataset` (loaded from `spec`); relative paths start at `base`.
    /// ReaL needs the ImageNet validation images; a subset's classes must be classes of the
    /// dataset, and every image's label one of them.
    pub fn load(&self, spec: &DatasetSpec, dataset: &Dataset, base: &Path) -> Result<LabelSet, DatasetError> {
        match self {
            LabelSetSpec::Original => Ok(LabelSet::Single),
            LabelSetSpec::Real => {
                if !matches!(spec, DatasetSpec::ImagenetVal { .. }) {
                    return Err(DatasetError::Spec { field: "labels", reason: REAL_NEEDS_VAL.to_string() });
                }
                Ok(LabelSet::Real { lists: dataset::real_lists(&dataset.samples)? })
            }
            LabelSetSpec::Subset(subset) => {
                let names = match subset {
                    ClassSubset::ImagenetA => dataset::shipped_subset(dataset::ShippedSubset::ImagenetA),
                    ClassSubset::ImagenetR => dataset::shipped_subset(dataset::ShippedSubset::ImagenetR),
                    ClassSubset::File(path) => {
                        dataset::read_subset_file(&dataset::resolve_path(base, "labels.subset", path)?)?
                    }
                };
                Ok(LabelSet::Subset { classes: dataset::subset_classes(dataset, &names, &self.id())? })
            }
        }
    }
}

/// Why `real` applies to one dataset only.
pub const REAL_NEEDS_VAL: &str = "`real` (ImageNet-ReaL) labels the 50,000 ImageNet 2012 validation images only: \
                                  use it with `dataset: {kind: imagenet-val, ...}`";

impl fmt::Display for LabelSetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id())
    }
}

impl<'de> Deserialize<'de> for LabelSetSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SpecVisitor;
        impl<'de> Visitor<'de> for SpecVisitor {
            type Value = LabelSetSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`original`, `real`, or `{subset: imagenet-a | imagenet-r | path}`")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<LabelSetSpec, E> {
                match value {
                    "original" => Ok(LabelSetSpec::Original),
                    "real" => Ok(LabelSetSpec::Real),
                    _ => Err(E::invalid_value(de::Unexpected::Str(value), &self)),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LabelSetSpec, A::Error> {
                let mut subset: Option<String> = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "subset" if subset.is_some() => return Err(de::Error::duplicate_field("subset")),
                        "subset" => subset = Some(map.next_value()?),
                        other => return Err(de::Error::unknown_field(other, &["subset"])),
                    }
                }
                let subset = subset.ok_or_else(|| de::Error::missing_field("subset"))?;
                Ok(LabelSetSpec::Subset(match subset.as_str() {
                    "" => return Err(de::Error::invalid_value(de::Unexpected::Str(""), &self)),
                    "imagenet-a" => ClassSubset::ImagenetA,
                    "imagenet-r" => ClassSubset::ImagenetR,
                    path => ClassSubset::File(PathBuf::from(path)),
                }))
            }
        }
        deserializer.deserialize_any(SpecVisitor)
    }
}

impl Serialize for LabelSetSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let subset = |serializer: S, value: &str| {
            let mut map = serializer.serialize_map(Some(1))?;
            map.serialize_entry("subset", value)?;
            map.end()
        };
        match self {
            LabelSetSpec::Original => serializer.serialize_str("original"),
            LabelSetSpec::Real => serializer.serialize_str("real"),
            LabelSetSpec::Subset(ClassSubset::ImagenetA) => subset(serializer, "imagenet-a"),
            LabelSetSpec::Subset(ClassSubset::ImagenetR) => subset(serializer, "imagenet-r"),
            // A file named like a keyword must not read back as the keyword.
            LabelSetSpec::Subset(ClassSubset::File(path)) => {
                let text = path.display().to_string();
                match text.as_str() {
                    "imagenet-a" | "imagenet-r" => subset(serializer, &format!("./{text}")),
                    _ => subset(serializer, &text),
                }
            }
        }
    }
}

/// The default `labels:`: the dataset's own labels.
pub fn default_label_sets() -> Vec<LabelSetSpec> {
    vec![LabelSetSpec::Original]
}

/// Whether one image's prediction is correct at top-1 and at top-5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Correct {
    pub top1: bool,
    pub top5: bool,
}

/// Whether the label is among the first k of `ranked` (classes best first).
pub fn in_top_k(ranked: &[i64], label: i64, k: usize) -> bool {
    ranked.iter().take(k).any(|&c| c == label)
}

/// Top-1 and top-5 error, each with a Wilson 95% interval (errors are the "successes" counted).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ErrorRates {
    pub top1: Proportion,
    pub top5: Proportion,
}

/// From per-image correctness.
pub fn error_rates(judged: &[Correct]) -> ErrorRates {
    let trials = judged.len() as u64;
    let top1_errors = judged.iter().filter(|c| !c.top1).count() as u64;
    let top5_errors = judged.iter().filter(|c| !c.top5).count() as u64;
    ErrorRates { top1: wilson(top1_errors, trials, Z95), top5: wilson(top5_errors, trials, Z95) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Scored, UNMAPPED_CLASS};

    fn scored(image: &str, label: u32, ranked: &[i64]) -> ImageResult {
        let top5 = ranked.iter().map(|&c| (c, 0.1)).collect();
        ImageResult {
            image: image.into(),
            label,
            outcome: Ok(Scored { top5, probs: vec![0.1; 10], unmapped_prob: 0.0 }),
        }
    }

    fn skipped(image: &str, label: u32) -> ImageResult {
        ImageResult { image: image.into(), label, outcome: Err("cannot decode".into()) }
    }

    fn correct(top1: bool, top5: bool) -> Correct {
        Correct { top1, top5 }
    }

    #[test]
    fn in_top_k_edge_cases() {
        let ranked = [7, 3, 9, 1, 4, 8];
        assert!(in_top_k(&ranked, 7, 1));
        assert!(!in_top_k(&ranked, 3, 1));
        assert!(in_top_k(&ranked, 4, 5));
        assert!(!in_top_k(&ranked, 8, 5), "the 6th class is outside the top 5");
        assert!(in_top_k(&ranked, 8, 100), "k beyond the list means the whole list");
        assert!(!in_top_k(&ranked, 2, 100));
        assert!(!in_top_k(&ranked, 7, 0));
        assert!(!in_top_k(&[], 7, 5));
    }

    #[test]
    fn single_labels_judge_the_ranked_classes() {
        let labels = LabelSet::Single;
        assert_eq!(labels.judge(&scored("a", 2, &[2, 0, 1])), Some(correct(true, true)));
        assert_eq!(labels.judge(&scored("b", 1, &[2, 0, 1, 5, 6])), Some(correct(false, true)));
        assert_eq!(labels.judge(&scored("c", 9, &[2, 0, 1, 5, 6])), Some(correct(false, false)));
        // A background output (no dataset class) never matches a label, even when it wins.
        assert_eq!(labels.judge(&scored("d", 3, &[UNMAPPED_CLASS, 3])), Some(correct(false, true)));
        assert_eq!(labels.judge(&skipped("e", 0)), None, "a skipped image is not scored");
    }

    #[test]
    fn error_rates_count_errors_over_scored_images() {
        // 5 scored images: 3 top-1 errors, 1 top-5 error; the skipped one is no trial.
        let results = [
            scored("a", 0, &[0, 1]),
            scored("b", 1, &[0, 1]),
            scored("c", 2, &[0, 1]),
            scored("d", 0, &[0]),
            scored("e", 1, &[2, 3, 1]),
            skipped("f", 0),
        ];
        let r = LabelSet::Single.error_rates(&results);
        assert_eq!((r.top1.successes, r.top1.trials), (3, 5));
        assert_eq!((r.top5.successes, r.top5.trials), (1, 5));
        assert!((r.top1.estimate - 0.6).abs() < 1e-15 && (r.top5.estimate - 0.2).abs() < 1e-15);
        assert_eq!(r.top1, wilson(3, 5, Z95));
        assert_eq!(r.top5, wilson(1, 5, Z95));
    }

    #[test]
    fn error_rates_of_nothing_are_uninformative() {
        let r = error_rates(&[]);
        assert_eq!(r.top1.trials, 0);
        assert!(r.top1.estimate.is_nan() && r.top5.estimate.is_nan());
    }

    fn with_probs(image: &str, label: u32, probs: &[f32]) -> ImageResult {
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        let top5 = order.iter().take(5).map(|&c| (c as i64, probs[c])).collect();
        ImageResult {
            image: image.into(),
            label,
            outcome: Ok(Scored { top5, probs: probs.to_vec(), unmapped_prob: 0.0 }),
        }
    }

    #[test]
    fn real_labels_judge_against_the_list_and_skip_empty_lists() {
        let lists: BTreeMap<String, Vec<u32>> = [
            ("a".to_string(), vec![2, 7]),
            ("b".to_string(), vec![]),
            ("c".to_string(), vec![9]),
            ("d".to_string(), vec![1]),
        ]
        .into();
        let real = LabelSet::Real { lists };
        // The original label (0) is wrong by ReaL's list; the prediction 7 is in it.
        assert_eq!(real.judge(&scored("a", 0, &[7, 0])), Some(correct(true, true)));
        assert_eq!(real.judge(&scored("b", 0, &[0])), None, "an empty list is not scored");
        assert_eq!(real.judge(&scored("c", 9, &[1, 2, 3, 4, 5, 9])), Some(correct(false, false)));
        assert_eq!(real.judge(&scored("d", 1, &[UNMAPPED_CLASS, 3, 1])), Some(correct(false, true)));
        assert_eq!(real.judge(&scored("e", 1, &[1])), None, "an image without a list is not scored");
        assert_eq!(real.judge(&skipped("a", 0)), None);
        let results = [scored("a", 0, &[7]), scored("b", 0, &[0]), scored("c", 9, &[1]), skipped("d", 1)];
        let rates = real.error_rates(&results);
        assert_eq!((rates.top1.successes, rates.top1.trials), (1, 2));
        assert_eq!(real.excluded(&results), 1, "b: scored by the model, left out by ReaL");
        assert_eq!(LabelSet::Single.excluded(&results), 0);
    }

    #[test]
    fn a_subset_re_ranks_the_stored_probabilities_over_its_classes() {
        // Class 3 wins overall but is outside the subset {0, 1, 2, 4, 5, 6}: 1 wins inside it.
        let probs = [0.05, 0.2, 0.1, 0.4, 0.05, 0.1, 0.1];
        let subset = LabelSet::Subset { classes: vec![0, 1, 2, 4, 5, 6] };
        assert_eq!(LabelSet::Single.judge(&with_probs("x", 1, &probs)), Some(correct(false, true)));
        assert_eq!(subset.judge(&with_probs("x", 1, &probs)), Some(correct(true, true)));
        // Top-5 within the subset: 1, then the ties 2, 5, 6 (lower class first), then 0 before 4.
        assert_eq!(rank_within(&probs, &[0, 1, 2, 4, 5, 6], 5), vec![1, 2, 5, 6, 0]);
        assert_eq!(subset.judge(&with_probs("x", 4, &probs)), Some(correct(false, false)));
        assert_eq!(subset.judge(&skipped("y", 1)), None);
    }

    #[test]
    fn label_set_specs_read_and_write_their_yaml() {
        let specs: Vec<LabelSetSpec> =
            serde_yaml::from_str("[original, real, {subset: imagenet-a}, {subset: imagenet-r}, {subset: my.txt}]")
                .unwrap();
        let ids: Vec<String> = specs.iter().map(LabelSetSpec::id).collect();
        assert_eq!(ids, ["original", "real", "subset:imagenet-a", "subset:imagenet-r", "subset:my.txt"]);
        for spec in &specs {
            let text = serde_yaml::to_string(spec).unwrap();
            assert_eq!(&serde_yaml::from_str::<LabelSetSpec>(&text).unwrap(), spec, "{text}");
        }
        let file = LabelSetSpec::Subset(ClassSubset::File("imagenet-a".into()));
        let text = serde_yaml::to_string(&file).unwrap();
        // A file named like the keyword is written `./imagenet-a`: the same file, not the keyword.
        let read = serde_yaml::from_str::<LabelSetSpec>(&text).unwrap();
        assert_eq!(read, LabelSetSpec::Subset(ClassSubset::File("./imagenet-a".into())));
        for bad in ["reel", "{subset: ''}", "{subst: a}", "{}"] {
            assert!(serde_yaml::from_str::<LabelSetSpec>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paired_outcomes_keep_only_images_both_scored() {
        let a = [scored("x", 0, &[0]), skipped("y", 1), scored("z", 2, &[1])];
        let b = [scored("x", 0, &[1]), scored("y", 1, &[1]), scored("z", 2, &[2])];
        assert_eq!(LabelSet::Single.paired_top1(&a, &b), (vec![true, false], vec![false, true]));
    }
}
