//! NLL, ECE and the reliability bins (src/audit/calibration.rs) against the numpy reference
//! fixtures/calibration/generate.py computed on the same stored f32 probabilities
//! (fixtures/calibration/cases.json). Tolerance 1e-6 absolute on NLL (nats), ECE, mean
//! confidence and accuracy (both compute in f64 from the same f32 values; the sums' order
//! differs, so equality is not expected to the last bit); bin counts exactly.

use resnet_audit::audit::calibration::{calibration, BINS};
use resnet_audit::store::{ImageResult, Scored};
use serde_json::Value;

const TOLERANCE: f64 = 1e-6;

fn results(case: &Value) -> Vec<ImageResult> {
    case["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|image| {
            let probs: Vec<f32> =
                image["probs"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            let top5 = image["top5"]
                .as_array()
                .unwrap()
                .iter()
                .map(|pair| (pair[0].as_i64().unwrap(), pair[1].as_f64().unwrap() as f32))
                .collect();
            let outcome = if image["skipped"].as_bool().unwrap() {
                Err("skipped in the fixture".to_string())
            } else {
                Ok(Scored { top5, probs, unmapped_prob: 0.0 })
            };
            ImageResult {
                image: image["image"].as_str().unwrap().into(),
                label: image["label"].as_u64().unwrap() as u32,
                outcome,
            }
        })
        .collect()
}

fn close(what: &str, ours: f64, reference: f64) {
    assert!((ours - reference).abs() <= TOLERANCE, "{what}: ours {ours}, numpy {reference}");
}

#[test]
fn nll_ece_and_bins_equal_the_numpy_reference() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/calibration/cases.json");
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let expected = &case["expected"];
        let ours = calibration(&results(case)).unwrap().expect("scored images");
        assert_eq!(ours.images as u64, expected["images"].as_u64().unwrap(), "{name}: images");
        close(&format!("{name}: NLL"), ours.nll, expected["nll"].as_f64().unwrap());
        close(&format!("{name}: ECE"), ours.ece, expected["ece"].as_f64().unwrap());
        let bins = expected["bins"].as_array().unwrap();
        assert_eq!((ours.bins.len(), bins.len()), (BINS, BINS));
        for (k, (ours, reference)) in ours.bins.iter().zip(bins).enumerate() {
            let what = format!("{name}: bin {k}");
            assert_eq!(ours.images as u64, reference["images"].as_u64().unwrap(), "{what}: images");
            close(&format!("{what}: lower"), ours.lower, reference["lower"].as_f64().unwrap());
            close(&format!("{what}: upper"), ours.upper, reference["upper"].as_f64().unwrap());
            for (field, value) in [("confidence", ours.confidence), ("accuracy", ours.accuracy)] {
                match (value, reference[field].as_f64()) {
                    (Some(v), Some(r)) => close(&format!("{what}: {field}"), v, r),
                    (None, None) => {}
                    (v, r) => panic!("{what}: {field}: ours {v:?}, numpy {r:?}"),
                }
            }
        }
    }
}

#[test]
fn the_fixture_exercises_the_clamp_and_skipped_images() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/calibration/cases.json");
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let all: Vec<ImageResult> = fixture["cases"].as_array().unwrap().iter().flat_map(results).collect();
    let zero =
        all.iter().filter_map(|r| r.outcome.as_ref().ok().map(|s| s.probs[r.label as usize])).filter(|p| *p == 0.0);
    assert!(zero.count() >= 3, "no stored probability of 0 for a label");
    assert!(all.iter().any(|r| r.outcome.is_err()), "no skipped image");
}
