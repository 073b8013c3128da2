//! What both documents say, before markup: numbers formatted as the report prints them, status
//! names and counts, the reading guide, the results table's cells, and sweep bands in words.

use crate::report::{Measured, ResultRow, Status, SweepBand};

/// What a cell or sentence shows where there is no value.
pub(super) const MISSING: &str = "—";

/// Error in percent, 2 decimals.
pub(super) fn fmt_err(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.2}"),
        _ => MISSING.into(),
    }
}

/// Error with its Wilson interval: `24.70 [24.32, 25.08]`.
fn fmt_measured(m: Option<&Measured>) -> String {
    match m {
        Some(m) if m.err.is_finite() => format!("{:.2} [{:.2}, {:.2}]", m.err, m.low, m.high),
        _ => MISSING.into(),
    }
}

/// Signed points, 2 decimals: `+0.12`, `-0.30`; a value that rounds to zero is `+0.00`, not `-0.00`.
fn fmt_delta(v: Option<f64>) -> String {
    match v {
        Some(d) if d.is_finite() => {
            let s = format!("{d:+.2}");
            if s == "-0.00" {
                "+0.00".into()
            } else {
                s
            }
        }
        _ => MISSING.into(),
    }
}

/// The allowed |Δ| as `±0.20`.
fn fmt_tolerance(v: Option<f64>) -> String {
    match v {
        Some(t) if t.is_finite() => format!("±{t:.2}"),
        _ => MISSING.into(),
    }
}

/// Three significant digits: 4.09, 40.9, 409, 4090, 0.0409.
fn fmt_sig3(v: Option<f64>) -> String {
    let Some(x) = v.filter(|x| x.is_finite()) else { return MISSING.into() };
    if x == 0.0 {
        return "0".into();
    }
    // Round first, then pick decimals from the rounded value, so 9.996 prints as 10.0, not 10.00.
    let exp = |y: f64| y.abs().log10().floor() as i32;
    let scale = 10f64.powi(exp(x) - 2);
    let rounded = (x / scale).round() * scale;
    let decimals = (2 - exp(rounded)).max(0) as usize;
    format!("{rounded:.decimals$}")
}

/// Thousands separated: 50,000.
pub(super) fn fmt_count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Top-1 and top-5 in one cell, `a / b`; a single dash when both are missing.
fn fmt_pair(a: String, b: String) -> String {
    if a == MISSING && b == MISSING {
        MISSING.into()
    } else {
        format!("{a} / {b}")
    }
}

/// The first 12 hex digits of a SHA-256: enough to tell files apart in a table.
pub(super) fn short_sha(sha: &str) -> String {
    sha.chars().take(12).collect()
}

/// The CSS class of a status, also the key of [`STATUS_NAMES`].
pub(super) fn status_class(status: &Status) -> &'static str {
    match status {
        Status::Reproduced => "reproduced",
        Status::Drift => "drift",
        Status::Measured => "measured",
        // A baseline match is not a reproduced published claim; it shares the neutral look of
        // `measured` until the report's styling gives it its own.
        Status::Baseline => "measured",
        Status::Regressed => "drift",
        Status::Subset(_) => "measured",
        Status::Empty(_) => "drift",
        Status::NotRun(_) => "notrun",
    }
}

/// The status names in the order the summary counts them.
pub(super) const STATUS_NAMES: [(&str, &str); 4] =
    [("reproduced", "reproduced"), ("drift", "drift"), ("measured", "measured"), ("notrun", "not run")];

/// Rows per status, in [`STATUS_NAMES`] order.
pub(super) fn status_counts<'a>(rows: impl IntoIterator<Item = &'a ResultRow>) -> [usize; 4] {
    let mut counts = [0; 4];
    for row in rows {
        let class = status_class(&row.status);
        if let Some(i) = STATUS_NAMES.iter().position(|(c, _)| *c == class) {
            counts[i] += 1;
        }
    }
    counts
}

/// A piece of the reading guide: plain text, or a status word (CSS class, word) that each format
/// marks up its own way.
enum Piece {
    Text(&'static str),
    Status(&'static str, &'static str),
}

/// The one-paragraph reading guide.
const HOW_TO_READ: &[Piece] = &[
    Piece::Text(
        "Each result row is one model (or ensemble) evaluated under one test protocol on the images \
         named by its experiment. The protocols are the four of the ResNet paper: (i) one center crop \
         of the resized image; (ii) 10 crops (four corners and the center, plus their horizontal \
         flips) with the scores averaged; (iii) fully-convolutional testing at multiple scales (the \
         network slides over the whole resized image and the scores of all scales are averaged); \
         (iv) ensembles, whose members' scores are combined. Every knob of each protocol as \
         configured is listed in its experiment's protocol table. Errors are top-1 and top-5 error \
         in percent (images whose true class is not the first, or not among the first five, \
         predictions), each followed by its Wilson 95% confidence interval in brackets. \
         Delta (Δ) = measured − claimed, in percentage points: negative means the measurement is \
         better than the published claim; tolerance is the largest |Δ| still counted as agreement. \
         Status: ",
    ),
    Piece::Status("reproduced", "reproduced"),
    Piece::Text(" = every claimed number is within tolerance of the measurement; "),
    Piece::Status("drift", "drift"),
    Piece::Text(" = at least one claimed number is outside tolerance; "),
    Piece::Status("measured", "measured"),
    Piece::Text(" = measured, but no claim exists for it; "),
    Piece::Status("notrun", "not run"),
    Piece::Text(
        " = not measured, with the reason and the fix. A setting (such as interpolation=bicubic) \
         marks a sensitivity sweep: the protocol re-run with one knob the source leaves open set \
         differently, to show the band of errors a claim is consistent with. A dash (—) means no value.",
    ),
];

/// The reading guide marked up by one format: `text` escapes the plain pieces, `status` marks up
/// a status word given its CSS class and the word.
pub(super) fn reading_guide(text: impl Fn(&str) -> String, status: impl Fn(&str, &str) -> String) -> String {
    HOW_TO_READ
        .iter()
        .map(|piece| match piece {
            Piece::Text(t) => text(t),
            Piece::Status(class, word) => status(class, word),
        })
        .collect()
}

/// Text of a drift row for the summary list, after its experiment's name.
pub(super) fn drift_text(r: &ResultRow) -> String {
    let mut parts = Vec::new();
    for (name, m, c, d) in [
        ("top-1", r.top1.as_ref(), r.claimed_top1_err, r.delta_top1),
        ("top-5", r.top5.as_ref(), r.claimed_top5_err, r.delta_top5),
    ] {
        if c.is_some() {
            parts.push(format!("{name} {} vs claimed {} (Δ {})", fmt_err(m.map(|m| m.err)), fmt_err(c), fmt_delta(d)));
        }
    }
    let setting = r.setting.as_ref().map(|s| format!(" [{s}]")).unwrap_or_default();
    format!(
        "{} · {} {}{setting}: {}; tolerance {}",
        r.model,
        r.protocol_kind.numeral(),
        r.protocol,
        if parts.is_empty() { MISSING.to_string() } else { parts.join(", ") },
        fmt_tolerance(r.tolerance)
    )
}

/// One results-table row as plain text cells (escaped by each format).
pub(super) struct RowCells {
    pub cells: Vec<String>,
    /// A sweep setting's row (shown indented under its protocol as written).
    pub sweep: bool,
    /// The sweep setting (`interpolation=bicubic`), shown under the protocol.
    pub setting: Option<String>,
    /// 1-based number of the experiment's not-run box that says why and how to fix it.
    pub note: Option<usize>,
    /// 1-based number of the claim's source in the experiment's source list.
    pub source: Option<usize>,
}

/// Column headers of the results table: few enough to fit a 1400 px screen (the setting goes
/// under the protocol, intervals into the error's cell, the tolerance beside Δ, skipped images
/// beside the count, the claim's source into a numbered list under the table).
pub(super) const RESULT_HEADER: [&str; 9] = [
    "model",
    "protocol",
    "top-1 err % [95% CI]",
    "top-5 err % [95% CI]",
    "claimed top-1 / top-5",
    "Δ top-1 / top-5 (tolerance)",
    "status",
    "images",
    "GMACs/image",
];
/// Columns of RESULT_HEADER holding numbers (right-aligned).
pub(super) const RESULT_NUMERIC: [usize; 6] = [2, 3, 4, 5, 7, 8];
/// The protocol column of the results table.
pub(super) const COL_PROTOCOL: usize = 1;
/// The claimed-numbers column (carries the source's number).
pub(super) const COL_CLAIMED: usize = 4;
/// The status column of the results table.
pub(super) const COL_STATUS: usize = 6;

/// One "not run" box of an experiment: a reason with its fix, and the rows it keeps from running.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct NotRunNote {
    /// The reason and fix, verbatim.
    pub reason: String,
    /// The rows it covers, grouped by model: `resnet50: (i) center-crop, (ii) ten-crop`.
    pub covers: Vec<String>,
    /// Whether it covers every row of the experiment.
    pub all_rows: bool,
}

/// The distinct not-run reasons of an experiment's rows, in row order, each with the rows it
/// covers: one box per reason instead of the same text in every row.
pub(super) fn not_run_notes(rows: &[&ResultRow]) -> Vec<NotRunNote> {
    /// A reason being collected: its rows' protocols per model, in row order, and its row count.
    struct Pending {
        reason: String,
        by_model: Vec<(String, Vec<String>)>,
        rows: usize,
    }
    let mut notes: Vec<Pending> = Vec::new();
    for r in rows {
        let Status::NotRun(why) = &r.status else { continue };
        let why = why.trim();
        let index = match notes.iter().position(|n| n.reason == why) {
            Some(i) => i,
            None => {
                notes.push(Pending { reason: why.to_string(), by_model: Vec::new(), rows: 0 });
                notes.len() - 1
            }
        };
        let note = &mut notes[index];
        note.rows += 1;
        let protocol = protocol_label(r);
        match note.by_model.iter_mut().find(|(m, _)| *m == r.model) {
            Some((_, protocols)) => protocols.push(protocol),
            None => note.by_model.push((r.model.clone(), vec![protocol])),
        }
    }
    notes
        .into_iter()
        .map(|n| NotRunNote {
            reason: n.reason,
            covers: n.by_model.into_iter().map(|(m, ps)| format!("{m}: {}", ps.join(", "))).collect(),
            all_rows: n.rows == rows.len(),
        })
        .collect()
}

/// The distinct claim sources of an experiment's rows, in row order (numbered from 1 under the table).
pub(super) fn claim_sources(rows: &[&ResultRow]) -> Vec<String> {
    let mut sources: Vec<String> = Vec::new();
    for source in rows.iter().filter_map(|r| r.claim_source.as_deref()) {
        let source = source.trim();
        if !source.is_empty() && !sources.iter().any(|s| s == source) {
            sources.push(source.to_string());
        }
    }
    sources
}

/// `(i) center-crop`, with a sweep row's setting after it: `(i) center-crop [interpolation=bicubic]`.
fn protocol_label(r: &ResultRow) -> String {
    let base = format!("{} {}", r.protocol_kind.numeral(), r.protocol);
    match &r.setting {
        Some(setting) => format!("{base} [{setting}]"),
        None => base,
    }
}

/// The cells of one results-table row; `notes` and `sources` are the experiment's (see
/// [`not_run_notes`], [`claim_sources`]), which the row points into by number.
pub(super) fn row_cells(r: &ResultRow, notes: &[NotRunNote], sources: &[String]) -> RowCells {
    let note = match &r.status {
        Status::NotRun(why) => notes.iter().position(|n| n.reason == why.trim()).map(|i| i + 1),
        _ => None,
    };
    let source = r.claim_source.as_deref().and_then(|c| sources.iter().position(|s| s == c.trim())).map(|i| i + 1);
    let delta = fmt_pair(fmt_delta(r.delta_top1), fmt_delta(r.delta_top5));
    let delta = match r.tolerance.filter(|t| t.is_finite()) {
        Some(_) if delta != MISSING => format!("{delta} ({})", fmt_tolerance(r.tolerance)),
        _ => delta,
    };
    let images = match r.skipped {
        0 => fmt_count(r.images),
        n => format!("{} ({} skipped)", fmt_count(r.images), fmt_count(n)),
    };
    RowCells {
        cells: vec![
            r.model.clone(),
            format!("{} {}", r.protocol_kind.numeral(), r.protocol),
            fmt_measured(r.top1.as_ref()),
            fmt_measured(r.top5.as_ref()),
            fmt_pair(fmt_err(r.claimed_top1_err), fmt_err(r.claimed_top5_err)),
            delta,
            match note {
                Some(n) => format!("not run ({})", note_name(n)),
                None if matches!(r.status, Status::NotRun(_)) => "not run".into(),
                None => r.status.label(),
            },
            images,
            fmt_sig3(r.gmacs_per_image),
        ],
        sweep: r.setting.is_some(),
        setting: r.setting.clone(),
        note,
        source,
    }
}

/// How a row points at its not-run box: `fix 1`.
pub(super) fn note_name(n: usize) -> String {
    format!("fix {n}")
}

/// Anchor id of an experiment section.
pub(super) fn anchor(name: &str) -> String {
    let slug: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect();
    format!("exp-{slug}")
}

/// A sweep band in words, without the experiment/protocol (those head the group it is listed in).
pub(super) fn band_sentence(band: &SweepBand) -> String {
    let n = band.settings.len();
    let mut s = format!(
        "{}: band {}–{} top-1 error over the protocol as written and its {n} sweep setting{} (min: {}, max: {})",
        band.model,
        fmt_err(Some(band.min_top1_err)),
        fmt_err(Some(band.max_top1_err)),
        if n == 1 { "" } else { "s" },
        band.min_setting,
        band.max_setting,
    );
    if let Some(w) = band.as_written_top1_err {
        s += &format!("; as written: {}", fmt_err(Some(w)));
    }
    if band.unmeasured > 0 {
        s += &format!("; {} setting(s) not measured", band.unmeasured);
    }
    match (band.claimed_top1_err, band.claim_inside) {
        (Some(c), Some(true)) => s += &format!(". Claimed {} lies inside the band.", fmt_err(Some(c))),
        (Some(c), _) => {
            let side = if c < band.min_top1_err { "below" } else { "above" };
            s += &format!(". Claimed {} lies outside the band ({side} it).", fmt_err(Some(c)));
        }
        (None, _) => s += ". No top-1 claim to compare.",
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ProtocolKind;

    #[test]
    fn numbers_are_formatted_as_documented() {
        assert_eq!(fmt_err(Some(24.7)), "24.70");
        assert_eq!(fmt_err(None), "—");
        assert_eq!(fmt_err(Some(f64::NAN)), "—");
        assert_eq!(fmt_delta(Some(0.12)), "+0.12");
        assert_eq!(fmt_delta(Some(-0.3)), "-0.30");
        assert_eq!(fmt_delta(Some(-0.001)), "+0.00");
        let sig: Vec<String> = [4.0903, 40.93, 409.3, 4093.0, 0.040_93, 9.996, 1.0].map(|v| fmt_sig3(Some(v))).into();
        assert_eq!(sig, ["4.09", "40.9", "409", "4090", "0.0409", "10.0", "1.00"]);
        assert_eq!(fmt_count(50_000), "50,000");
        assert_eq!(fmt_count(1_234_567), "1,234,567");
        assert_eq!(fmt_count(600), "600");
    }

    fn band(claimed: Option<f64>, inside: Option<bool>) -> SweepBand {
        SweepBand {
            experiment: "demo".into(),
            model: "resnet101".into(),
            protocol: "ten-crop".into(),
            protocol_kind: ProtocolKind::TenCrop,
            settings: vec!["scores=logits".into(), "corners=square".into()],
            unmeasured: 1,
            min_top1_err: 22.0,
            min_setting: "as written".into(),
            max_top1_err: 22.3,
            max_setting: "scores=logits".into(),
            as_written_top1_err: Some(22.0),
            claimed_top1_err: claimed,
            claim_inside: inside,
        }
    }

    #[test]
    fn band_sentence_says_where_the_claim_lies() {
        let below = band_sentence(&band(Some(21.75), Some(false)));
        assert_eq!(
            below,
            "resnet101: band 22.00–22.30 top-1 error over the protocol as written and its 2 sweep settings \
             (min: as written, max: scores=logits); as written: 22.00; 1 setting(s) not measured. \
             Claimed 21.75 lies outside the band (below it)."
        );
        assert!(band_sentence(&band(Some(22.5), Some(false))).ends_with("outside the band (above it)."));
        assert!(band_sentence(&band(Some(22.1), Some(true))).ends_with("Claimed 22.10 lies inside the band."));
        assert!(band_sentence(&band(None, None)).ends_with(". No top-1 claim to compare."));
    }
}
