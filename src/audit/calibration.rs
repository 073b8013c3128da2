//! Calibration of one (model, protocol) from its stored probabilities: negative log-likelihood
//! and expected calibration error, with the reliability diagram's bins.
//!
//! Both are about the dataset's own label (one per image, the one stored beside the scores):
//! NLL needs a single class whose probability is read, and ECE's accuracy is the top-1
//! correctness the results table's `top1_err` counts. Skipped images are not scored.
//!
//! - NLL: mean over scored images of −ln p(label), p read from the stored f32 vector and
//!   clamped below at [`MIN_PROBABILITY`] (a stored 0, an underflowed softmax, would make the
//!   mean infinite and hide every other image).
//! - ECE (Guo et al. 2017, "On Calibration of Modern Neural Networks", eq. 3): the top-1
//!   confidence (the probability of the best-ranked output) in [`BINS`] equal-width bins
//!   `(k/15, (k+1)/15]` (a confidence of exactly 0 goes into the first), and
//!   ECE = Σ_B |B|/n · |acc(B) − conf(B)| over the non-empty bins.

use crate::report::ReliabilityBin;
use crate::scoring::LabelSet;
use crate::store::ImageResult;

/// Bins of the reliability diagram and of ECE.
pub const BINS: usize = 15;

/// The smallest probability NLL reads: −ln(1e-12) ≈ 27.6 nats is what one image with a stored
/// probability of 0 for its label adds.
pub const MIN_PROBABILITY: f64 = 1e-12;

/// NLL, ECE and the bins of one (model, protocol).
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    /// Scored images.
    pub images: usize,
    /// Mean −ln p(label), nats.
    pub nll: f64,
    /// Expected calibration error, a fraction (0..1).
    pub ece: f64,
    pub bins: Vec<ReliabilityBin>,
}

/// A stored row that cannot be read as a probability of its label.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CalibrationError {
    #[error("image {image}: label {label} is outside its stored probability vector ({classes} classes)")]
    LabelOutsideProbabilities { image: String, label: u32, classes: usize },
    #[error("image {image}: no ranked output stored (no top-1 confidence)")]
    NoRankedOutput { image: String },
}

/// The bin of a confidence: `(k/BINS, (k+1)/BINS]`, bounds computed as numpy's
/// `linspace(0, 1, BINS + 1)` computes them, so that the reference agrees at the edges too.
fn bin_of(confidence: f64, bounds: &[f64]) -> usize {
    (0..BINS).find(|&k| confidence > bounds[k] && confidence <= bounds[k + 1]).unwrap_or(0)
}

fn bounds() -> Vec<f64> {
    let step = 1.0 / BINS as f64;
    let mut b: Vec<f64> = (0..=BINS).map(|k| k as f64 * step).collect();
    b[BINS] = 1.0;
    b
}

/// Calibration of `results` (`None` when no image was scored).
pub fn calibration(results: &[ImageResult]) -> Result<Option<Calibration>, CalibrationError> {
    let bounds = bounds();
    let mut sums = vec![(0usize, 0.0f64, 0usize); BINS];
    let (mut n, mut nll) = (0usize, 0.0f64);
    for result in results {
        let Some(correct) = LabelSet::Single.judge(result) else { continue };
        let Ok(scored) = &result.outcome else { continue };
        let p = scored.probs.get(result.label as usize).ok_or_else(|| CalibrationError::LabelOutsideProbabilities {
            image: result.image.clone(),
            label: result.label,
            classes: scored.probs.len(),
        })?;
        let confidence = scored
            .top5
            .first()
            .map(|&(_, p)| f64::from(p))
            .ok_or_else(|| CalibrationError::NoRankedOutput { image: result.image.clone() })?;
        n += 1;
        nll -= f64::from(*p).max(MIN_PROBABILITY).ln();
        let bin = &mut sums[bin_of(confidence, &bounds)];
        bin.0 += 1;
        bin.1 += confidence;
        bin.2 += usize::from(correct.top1);
    }
    if n == 0 {
        return Ok(None);
    }
    let bins: Vec<ReliabilityBin> = sums
        .iter()
        .enumerate()
        .map(|(k, &(images, conf, right))| ReliabilityBin {
            lower: bounds[k],
            upper: bounds[k + 1],
            images,
            confidence: (images > 0).then(|| conf / images as f64),
            accuracy: (images > 0).then(|| right as f64 / images as f64),
        })
        .collect();
    let ece = bins.iter().filter_map(|b| Some(b.images as f64 / n as f64 * (b.accuracy? - b.confidence?).abs())).sum();
    Ok(Some(Calibration { images: n, nll: nll / n as f64, ece, bins }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Scored;

    fn image(label: u32, probs: &[f32]) -> ImageResult {
        let mut ranked: Vec<(i64, f32)> = probs.iter().enumerate().map(|(c, &p)| (c as i64, p)).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked.truncate(5);
        ImageResult {
            image: format!("img-{label}"),
            label,
            outcome: Ok(Scored { top5: ranked, probs: probs.to_vec(), unmapped_prob: 0.0 }),
        }
    }

    #[test]
    fn hand_computed_nll_and_ece() {
        // Confidences 0.9 (right), 0.6 (wrong), 0.5 with p(label) = 0 (wrong: clamped).
        let results = [image(0, &[0.9, 0.1]), image(1, &[0.6, 0.4]), image(1, &[0.5, 0.0, 0.5])];
        let c = calibration(&results).unwrap().unwrap();
        let nll = -(0.9f32 as f64).ln() - (0.4f32 as f64).ln() - MIN_PROBABILITY.ln();
        assert!((c.nll - nll / 3.0).abs() < 1e-12);
        // Bins: 0.9 in (13/15, 14/15]; 0.6f32 (just above 9/15) in (9/15, 10/15]; 0.5 in (7/15, 8/15].
        assert_eq!(c.bins.iter().map(|b| b.images).collect::<Vec<_>>()[7..=13], [1, 0, 1, 0, 0, 0, 1]);
        let ece = (1.0 - 0.9f32 as f64) / 3.0 + (0.6f32 as f64) / 3.0 + 0.5 / 3.0;
        assert!((c.ece - ece).abs() < 1e-12, "{} vs {ece}", c.ece);
    }

    #[test]
    fn nothing_scored_is_none_and_a_label_outside_the_vector_is_named() {
        let skipped = ImageResult { image: "x".into(), label: 0, outcome: Err("bad".into()) };
        assert_eq!(calibration(&[skipped]), Ok(None));
        let mut broken = image(0, &[1.0]);
        broken.label = 3;
        let err = calibration(&[broken]).unwrap_err();
        assert!(err.to_string().contains("img-0") && err.to_string().contains("label 3"), "{err}");
    }

    #[test]
    fn bin_edges_follow_the_right_closed_definition() {
        let b = bounds();
        assert_eq!(bin_of(0.0, &b), 0);
        assert_eq!(bin_of(1.0, &b), BINS - 1);
        assert_eq!(bin_of(b[1], &b), 0, "an upper edge belongs to its bin");
        assert_eq!(bin_of(b[1] + 1e-12, &b), 1);
    }
}
