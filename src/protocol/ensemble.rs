//! Protocol (iv): average the stored probabilities of member results, image by image.

use crate::store::{ImageResult, Scored, UNMAPPED_CLASS};

#[derive(Debug, thiserror::Error)]
#[error("ensemble member {member}: {reason}")]
pub struct EnsembleError {
    pub member: String,
    pub reason: String,
}

/// Per-image mean of the members' probability vectors (and of their unmapped mass, ranked as
/// one extra pseudo-class). An image skipped by any member is skipped by the ensemble.
pub fn average(members: &[(String, Vec<ImageResult>)]) -> Result<Vec<ImageResult>, EnsembleError> {
    let Some((_, first)) = members.first() else { return Ok(Vec::new()) };
    for (name, results) in members {
        let same = results.len() == first.len()
            && results.iter().zip(first).all(|(a, b)| a.image == b.image && a.label == b.label);
        if !same {
            return Err(EnsembleError {
                member: name.clone(),
                reason: "its images or labels differ from the first member's: members must share a dataset".into(),
            });
        }
    }
    let ensemble = (0..first.len())
        .map(|i| {
            let outcome = members
                .iter()
                .map(|(name, results)| results[i].outcome.as_ref().map_err(|why| format!("{name}: {why}")))
                .collect::<Result<Vec<&Scored>, String>>()
                .map(|scored| mean_scored(&scored));
            ImageResult { image: first[i].image.clone(), label: first[i].label, outcome }
        })
        .collect();
    Ok(ensemble)
}

fn mean_scored(members: &[&Scored]) -> Scored {
    let n = members.len() as f64;
    let classes = members[0].probs.len();
    let probs: Vec<f32> =
        (0..classes).map(|c| (members.iter().map(|s| s.probs[c] as f64).sum::<f64>() / n) as f32).collect();
    let unmapped_prob = (members.iter().map(|s| s.unmapped_prob as f64).sum::<f64>() / n) as f32;
    let mut ranked: Vec<(i64, f32)> = probs.iter().enumerate().map(|(c, &p)| (c as i64, p)).collect();
    if unmapped_prob > 0.0 {
        ranked.push((UNMAPPED_CLASS, unmapped_prob));
    }
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(5);
    Scored { top5: ranked, probs, unmapped_prob }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(image: &str, probs: Vec<f32>) -> ImageResult {
        ImageResult { image: image.into(), label: 0, outcome: Ok(Scored { top5: vec![], probs, unmapped_prob: 0.0 }) }
    }

    #[test]
    fn averages_probabilities_and_reranks() {
        let a = vec![result("x", vec![0.6, 0.4, 0.0])];
        let b = vec![result("x", vec![0.0, 0.5, 0.5])];
        let e = average(&[("a".into(), a), ("b".into(), b)]).unwrap();
        let scored = e[0].outcome.as_ref().unwrap();
        assert_eq!(scored.top5[0], (1, 0.45));
        assert_eq!(scored.probs, vec![0.3, 0.45, 0.25]);
    }

    #[test]
    fn members_on_different_images_are_refused() {
        let err = average(&[("a".into(), vec![result("x", vec![1.0])]), ("b".into(), vec![result("y", vec![1.0])])])
            .unwrap_err();
        assert!(err.to_string().starts_with("ensemble member b:"), "{err}");
    }
}
