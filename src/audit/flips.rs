//! Flips between two protocols of one model: the images whose top-1 answer became right ("fixed")
//! and those that became wrong ("broken"), on the images both protocols scored. These are the
//! off-diagonal cells of the McNemar table `eval` prints for the same pair (the same paired
//! outcomes, `LabelSet::paired_top1`), listed image by image.
//!
//! Correctness comes from a [`Judge`]: `scoring::LabelSet` for the audit, any label set a test
//! builds by hand, so that "fixed only by the label set" ([`fixed_only_by_labels`]) can be
//! counted for a multi-label set (ImageNet-ReaL) against the original labels.

use serde::{Deserialize, Serialize};

use crate::scoring::{Correct, LabelSet};
use crate::store::ImageResult;

/// Whether one stored prediction is correct (`None`: the image is not scored).
pub trait Judge {
    fn judge(&self, result: &ImageResult) -> Option<Correct>;
}

impl Judge for LabelSet {
    fn judge(&self, result: &ImageResult) -> Option<Correct> {
        LabelSet::judge(self, result)
    }
}

/// The images that changed between two runs over the same image list, as indices into it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flips {
    /// Images both runs scored.
    pub paired: usize,
    /// Wrong under the first run, right under the second.
    pub fixed: Vec<usize>,
    /// Right under the first run, wrong under the second.
    pub broken: Vec<usize>,
}

/// Why two runs cannot be compared image by image.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlipsError {
    #[error("the runs hold different image lists ({from} vs {to} images)")]
    Length { from: usize, to: usize },
    #[error("image {index} is `{from}` in one run and `{to}` in the other")]
    OtherImage { index: usize, from: String, to: String },
}

/// Top-1 flips from `from` to `to` (the same images in the same order, as the store keeps them).
pub fn flips(from: &[ImageResult], to: &[ImageResult], labels: &impl Judge) -> Result<Flips, FlipsError> {
    same_images(from, to)?;
    let mut out = Flips::default();
    for (i, (a, b)) in from.iter().zip(to).enumerate() {
        let (Some(a), Some(b)) = (labels.judge(a), labels.judge(b)) else { continue };
        out.paired += 1;
        match (a.top1, b.top1) {
            (false, true) => out.fixed.push(i),
            (true, false) => out.broken.push(i),
            _ => {}
        }
    }
    Ok(out)
}

fn same_images(from: &[ImageResult], to: &[ImageResult]) -> Result<(), FlipsError> {
    if from.len() != to.len() {
        return Err(FlipsError::Length { from: from.len(), to: to.len() });
    }
    match from.iter().zip(to).position(|(a, b)| a.image != b.image) {
        Some(index) => {
            Err(FlipsError::OtherImage { index, from: from[index].image.clone(), to: to[index].image.clone() })
        }
        None => Ok(()),
    }
}

/// How many images `labels` counts as fixed from `from` to `to` that `original` does not: the
/// fixes a second label set (ImageNet-ReaL) adds by accepting the new answer, or by no longer
/// counting the old one wrong, rather than the protocol changing the answer into the one label.
pub fn fixed_only_by_labels(
    from: &[ImageResult],
    to: &[ImageResult],
    original: &impl Judge,
    labels: &impl Judge,
) -> Result<usize, FlipsError> {
    let by_original = flips(from, to, original)?.fixed;
    let by_labels = flips(from, to, labels)?.fixed;
    Ok(by_labels.iter().filter(|i| by_original.binary_search(i).is_err()).count())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::store::Scored;

    fn guess(image: &str, label: u32, class: i64) -> ImageResult {
        let top5 = vec![(class, 0.6), (9, 0.1)];
        ImageResult {
            image: image.into(),
            label,
            outcome: Ok(Scored { top5, probs: vec![0.04; 10], unmapped_prob: 0.0 }),
        }
    }

    /// A hand-made multi-label set: the classes accepted per image; an empty list is not scored.
    struct Lists(BTreeMap<&'static str, Vec<i64>>);

    impl Judge for Lists {
        fn judge(&self, result: &ImageResult) -> Option<Correct> {
            let accepted = self.0.get(result.image.as_str())?;
            let scored = result.outcome.as_ref().ok()?;
            if accepted.is_empty() {
                return None;
            }
            let top1 = accepted.contains(&scored.top5[0].0);
            Some(Correct { top1, top5: top1 || scored.top5.iter().any(|(c, _)| accepted.contains(c)) })
        }
    }

    #[test]
    fn fixed_and_broken_are_the_discordant_images() {
        let from = [guess("a", 1, 1), guess("b", 2, 0), guess("c", 3, 3), guess("d", 4, 0)];
        let to = [guess("a", 1, 1), guess("b", 2, 2), guess("c", 3, 0), guess("d", 4, 0)];
        let f = flips(&from, &to, &LabelSet::Single).unwrap();
        assert_eq!(f, Flips { paired: 4, fixed: vec![1], broken: vec![2] });
        let (a, b) = LabelSet::Single.paired_top1(&from, &to);
        let discordant = a.iter().zip(&b).filter(|(x, y)| x != y).count();
        assert_eq!(f.fixed.len() + f.broken.len(), discordant);
    }

    #[test]
    fn other_image_lists_are_refused() {
        let from = [guess("a", 1, 1)];
        assert_eq!(flips(&from, &[], &LabelSet::Single), Err(FlipsError::Length { from: 1, to: 0 }));
        let err = flips(&from, &[guess("b", 1, 1)], &LabelSet::Single).unwrap_err();
        assert!(err.to_string().contains("`a`") && err.to_string().contains("`b`"), "{err}");
    }

    #[test]
    fn fixes_only_a_second_label_set_sees() {
        // a: 0 → 1, label 1: fixed under both sets.
        // b: 0 → 5, label 2, ReaL accepts {2, 5}: fixed only under ReaL.
        // c: 7 → 3, label 3, ReaL accepts {3, 7}: right before and after under ReaL (no fix there),
        //    fixed under the original labels.
        // d: 0 → 4, label 4, ReaL list empty: not scored under ReaL.
        // e: 0 → 8, label 6, ReaL accepts {6}: wrong under both.
        let from = [guess("a", 1, 0), guess("b", 2, 0), guess("c", 3, 7), guess("d", 4, 0), guess("e", 6, 0)];
        let to = [guess("a", 1, 1), guess("b", 2, 5), guess("c", 3, 3), guess("d", 4, 4), guess("e", 6, 8)];
        let real = Lists(BTreeMap::from([
            ("a", vec![1]),
            ("b", vec![2, 5]),
            ("c", vec![3, 7]),
            ("d", vec![]),
            ("e", vec![6]),
        ]));
        assert_eq!(flips(&from, &to, &LabelSet::Single).unwrap().fixed, [0, 2, 3]);
        assert_eq!(flips(&from, &to, &real).unwrap(), Flips { paired: 4, fixed: vec![0, 1], broken: vec![] });
        assert_eq!(fixed_only_by_labels(&from, &to, &LabelSet::Single, &real), Ok(1));
        // The other way round: c and d are fixed only under the original labels.
        assert_eq!(fixed_only_by_labels(&from, &to, &real, &LabelSet::Single), Ok(2));
        assert_eq!(fixed_only_by_labels(&from, &to, &real, &real), Ok(0));
    }
}
