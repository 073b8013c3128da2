//! Sensitivity-sweep bands: for each swept (experiment, model, protocol), the spread of top-1
//! error over its settings and the protocol as written, and whether the claim lies inside it.
//! Computed here, with the rows and their verdicts, so that the report only words the result.

use crate::report::{ResultRow, SweepBand};

/// Half a unit in the second decimal: how far a claim written to two decimals may sit outside a band.
const CLAIM_ROUNDING: f64 = 0.005;

/// Sweep bands of all sweep rows, one per (experiment, model, protocol), in order of first
/// appearance. Groups without any measured top-1 error have no band and are left out.
pub fn sweep_bands(rows: &[ResultRow]) -> Vec<SweepBand> {
    let same =
        |a: &ResultRow, b: &ResultRow| a.experiment == b.experiment && a.model == b.model && a.protocol == b.protocol;
    // Group sweep rows by key, keeping first-appearance order (row counts are small: O(n²) is fine).
    let mut groups: Vec<Vec<&ResultRow>> = Vec::new();
    for row in rows.iter().filter(|r| r.setting.is_some()) {
        match groups.iter_mut().find(|g| same(g[0], row)) {
            Some(g) => g.push(row),
            None => groups.push(vec![row]),
        }
    }
    let mut bands = Vec::new();
    for group in groups {
        let first = group[0];
        let measured: Vec<(&str, f64)> = group
            .iter()
            .filter_map(|r| Some((r.setting.as_deref()?, r.top1.as_ref()?.err)))
            .filter(|(_, e)| e.is_finite())
            .collect();
        let Some(&(s0, e0)) = measured.first() else { continue };
        let written = rows.iter().find(|r| r.setting.is_none() && same(r, first));
        // The protocol as written is one faithful reading too: it belongs in the band.
        let written_err = written.and_then(|r| r.top1.as_ref()).map(|m| m.err).filter(|e| e.is_finite());
        let (mut min, mut max) = ((s0, e0), (s0, e0));
        for &(s, e) in measured[1..].iter().chain(written_err.map(|e| ("as written", e)).iter()) {
            if e < min.1 {
                min = (s, e);
            }
            if e > max.1 {
                max = (s, e);
            }
        }
        let claimed = group
            .iter()
            .find_map(|r| r.claimed_top1_err)
            .or_else(|| written.and_then(|r| r.claimed_top1_err))
            .filter(|c| c.is_finite());
        bands.push(SweepBand {
            experiment: first.experiment.clone(),
            model: first.model.clone(),
            protocol: first.protocol.clone(),
            protocol_kind: first.protocol_kind,
            settings: measured.iter().map(|(s, _)| s.to_string()).collect(),
            unmeasured: group.len() - measured.len(),
            min_top1_err: min.1,
            min_setting: min.0.to_string(),
            max_top1_err: max.1,
            max_setting: max.0.to_string(),
            as_written_top1_err: written.and_then(|r| r.top1.as_ref()).map(|m| m.err),
            claimed_top1_err: claimed,
            // Claims are written to two decimals (percent), so a claim within half a unit of
            // the band's edge is inside it: 58.67 is the 58.666… that a run measured.
            claim_inside: claimed.map(|c| min.1 - CLAIM_ROUNDING <= c && c <= max.1 + CLAIM_ROUNDING),
        });
    }
    bands
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Measured, ProtocolKind, Status};

    fn row(model: &str, protocol: &str, kind: ProtocolKind, setting: Option<&str>, top1: Option<f64>) -> ResultRow {
        let mut r =
            ResultRow::blank("demo", model, protocol, kind, format!("{protocol} as configured"), Status::Measured);
        r.setting = setting.map(Into::into);
        r.top1 = top1.map(|err| Measured { err, low: err - 0.38, high: err + 0.38 });
        r.images = if top1.is_some() { 50_000 } else { 0 };
        r.param_count_m = Some(25.6);
        r.gmacs_per_image = Some(4.09);
        r
    }

    fn claimed(mut r: ResultRow, top1: f64) -> ResultRow {
        r.claimed_top1_err = Some(top1);
        r.tolerance = Some(0.2);
        r
    }

    #[test]
    fn sweep_bands_min_max_and_claim_position() {
        use ProtocolKind::*;
        let rows = vec![
            claimed(row("resnet50", "center-crop", CenterCrop, None, Some(24.70)), 24.58),
            claimed(row("resnet50", "center-crop", CenterCrop, Some("interpolation=bicubic"), Some(24.10)), 24.58),
            claimed(row("resnet50", "center-crop", CenterCrop, Some("interpolation=nearest"), Some(25.40)), 24.58),
            // Not swept: no band.
            claimed(row("resnet50", "ten-crop", TenCrop, None, Some(23.50)), 22.85),
            row("resnet101", "ten-crop", TenCrop, None, Some(22.00)),
            // A second sweep whose claim lies below the band, and a sweep setting that was not run.
            claimed(row("resnet101", "ten-crop", TenCrop, Some("scores=logits"), Some(22.3)), 21.75),
            claimed(row("resnet101", "ten-crop", TenCrop, Some("corners=square"), Some(22.1)), 21.75),
            row("resnet101", "ten-crop", TenCrop, Some("flip=off"), None),
        ];
        let bands = sweep_bands(&rows);
        assert_eq!(bands.len(), 2);
        let a = &bands[0];
        assert_eq!((a.model.as_str(), a.protocol.as_str()), ("resnet50", "center-crop"));
        assert_eq!(a.settings, ["interpolation=bicubic", "interpolation=nearest"]);
        assert_eq!((a.min_top1_err, a.min_setting.as_str()), (24.10, "interpolation=bicubic"));
        assert_eq!((a.max_top1_err, a.max_setting.as_str()), (25.40, "interpolation=nearest"));
        assert_eq!((a.as_written_top1_err, a.claimed_top1_err, a.claim_inside), (Some(24.70), Some(24.58), Some(true)));
        let b = &bands[1];
        // The protocol as written (22.0) widens the band below the settings' 22.1.
        assert_eq!(
            (b.min_top1_err, b.min_setting.as_str(), b.max_top1_err, b.unmeasured),
            (22.0, "as written", 22.3, 1)
        );
        assert_eq!((b.claimed_top1_err, b.claim_inside), (Some(21.75), Some(false)));
        // No claim anywhere: no verdict.
        let mut bare = rows.clone();
        bare.iter_mut().for_each(|r| r.claimed_top1_err = None);
        assert_eq!(sweep_bands(&bare)[0].claim_inside, None);
        // A claim recorded to two decimals sits at the band's edge it rounds, not outside it.
        let edge = |claim: f64| {
            vec![
                claimed(row("m", "cc", CenterCrop, None, Some(58.666_666)), claim),
                row("m", "cc", CenterCrop, Some("interpolation=bicubic"), Some(57.17)),
            ]
        };
        assert_eq!(sweep_bands(&edge(58.67))[0].claim_inside, Some(true));
        assert_eq!(sweep_bands(&edge(58.68))[0].claim_inside, Some(false));
    }
}
