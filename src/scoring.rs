//! Whether a prediction is correct: the one place that decides it, and the error rates that
//! follow from it.
//!
//! The store keeps what a model said about each image (ranked classes, probabilities) and the
//! label the dataset gave it; it knows nothing of correctness. `metrics` turns counts into
//! intervals and tests; it knows nothing of labels. Everything in between lives here, so that a
//! new kind of label set changes this file only:
//!
//! - a multi-label set (ImageNet-ReaL: a list of correct classes per image, an empty list meaning
//!   the image is not scored) becomes a `LabelSet` variant holding the lists by image id; `judge`
//!   returns `None` for an empty list and compares the ranked classes with the list;
//! - a class subset (a 200-class benchmark scored by a 1000-class model) becomes a variant holding
//!   the subset; `judge` re-ranks `Scored::probs` over the subset's classes before comparing.

use serde::Serialize;

use crate::dataset::Dataset;
use crate::metrics::{wilson, Proportion, Z95};
use crate::store::ImageResult;

/// What counts as a correct answer for each image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LabelSet {
    /// One correct class per image: the label stored beside its scores.
    #[default]
    Single,
}

impl LabelSet {
    /// The label set a dataset is scored with.
    pub fn for_dataset(_dataset: &Dataset) -> Self {
        // Every dataset kind gives one label per image today.
        LabelSet::Single
    }

    /// Top-1 and top-5 correctness of one image; `None` when the image is not scored (it was
    /// skipped as a bad image).
    pub fn judge(&self, result: &ImageResult) -> Option<Correct> {
        let scored = result.outcome.as_ref().ok()?;
        match self {
            LabelSet::Single => {
                let ranked: Vec<i64> = scored.top5.iter().map(|&(class, _)| class).collect();
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

    /// Top-1 correctness of two runs over the same images, on the images both scored (the
    /// paired outcomes McNemar's test compares).
    pub fn paired_top1(&self, a: &[ImageResult], b: &[ImageResult]) -> (Vec<bool>, Vec<bool>) {
        a.iter().zip(b).filter_map(|(x, y)| Some((self.judge(x)?.top1, self.judge(y)?.top1))).unzip()
    }
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

    #[test]
    fn paired_outcomes_keep_only_images_both_scored() {
        let a = [scored("x", 0, &[0]), skipped("y", 1), scored("z", 2, &[1])];
        let b = [scored("x", 0, &[1]), scored("y", 1, &[1]), scored("z", 2, &[2])];
        assert_eq!(LabelSet::Single.paired_top1(&a, &b), (vec![true, false], vec![false, true]));
    }
}
