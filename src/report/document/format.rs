//! What both documents say, before markup: numbers formatted as the report prints them, status
//! names and counts, the reading guide, the results table's cells, and sweep bands in words.

use crate::report::{ClaimKind, Measured, ResultRow, Status, SweepBand};

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
    crate::report::thousands(n)
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

/// The CSS class of a status: its word (`not-run` as `notrun`).
pub(super) fn status_class(status: &Status) -> &'static str {
    class_of_word(status.word())
}

/// The CSS class of a status word.
fn class_of_word(word: &'static str) -> &'static str {
    if word == "not-run" {
        "notrun"
    } else {
        word
    }
}

/// Every status word, in the order counts list them (the table's `status` column's values).
pub(super) const STATUS_ORDER: [&str; 8] =
    ["reproduced", "drift", "subset", "baseline", "regressed", "measured", "empty", "not-run"];

/// A status word as a person reads it: `not run` for `not-run`.
pub(super) fn status_name(word: &str) -> &str {
    if word == "not-run" {
        "not run"
    } else {
        word
    }
}

/// Rows per status word, in [`STATUS_ORDER`].
pub(super) fn status_counts<'a>(rows: impl IntoIterator<Item = &'a ResultRow>) -> [usize; 8] {
    let mut counts = [0; 8];
    for row in rows {
        if let Some(i) = STATUS_ORDER.iter().position(|w| *w == row.status.word()) {
            counts[i] += 1;
        }
    }
    counts
}

/// Whose number a row is compared with. The verdict counts each apart, so that a recorded
/// baseline (this project's own number) is never shown as a reproduced published claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    /// A claim from a source outside the project.
    Published,
    /// A number this project recorded from its own earlier run.
    Baseline,
    /// No number to compare with.
    Unclaimed,
}

impl Side {
    pub(super) fn of(r: &ResultRow) -> Side {
        match r.claim_kind {
            Some(ClaimKind::Published) => Side::Published,
            Some(ClaimKind::Baseline) => Side::Baseline,
            None => Side::Unclaimed,
        }
    }

    /// (status word, how the verdict words it, shown even at zero) in the verdict's order.
    fn counted(self) -> &'static [(&'static str, &'static str, bool)] {
        match self {
            Side::Published => &[
                ("reproduced", "reproduced", true),
                ("drift", "drift", true),
                ("subset", "on a subset (not judged)", false),
                ("empty", "empty (every image skipped)", false),
                ("not-run", "not run", false),
            ],
            Side::Baseline => &[
                ("baseline", "hold", true),
                ("regressed", "regressed", true),
                ("subset", "on a subset (not judged)", false),
                ("empty", "empty (every image skipped)", false),
                ("not-run", "not run", false),
            ],
            Side::Unclaimed => &[
                ("measured", "measured", false),
                ("empty", "empty (every image skipped)", false),
                ("not-run", "not run", false),
            ],
        }
    }
}

/// One number of the verdict: `n` rows of one side with one status (`21` recorded baselines `hold`).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Count {
    pub n: usize,
    /// The status's CSS class.
    pub class: &'static str,
    /// The status in the side's words (`hold` for a baseline that matches).
    pub words: &'static str,
}

/// The counts of one side's rows; empty when the side has no row. A count of zero is kept where
/// it is the news (`0 drift`), dropped elsewhere.
pub(super) fn side_counts<'a>(rows: impl IntoIterator<Item = &'a ResultRow>, side: Side) -> Vec<Count> {
    let rows: Vec<&ResultRow> = rows.into_iter().filter(|r| Side::of(r) == side).collect();
    if rows.is_empty() {
        return Vec::new();
    }
    side.counted()
        .iter()
        .map(|&(word, words, always)| {
            (
                Count { n: rows.iter().filter(|r| r.status.word() == word).count(), class: class_of_word(word), words },
                always,
            )
        })
        .filter(|(c, always)| *always || c.n > 0)
        .map(|(c, _)| c)
        .collect()
}

/// The verdict's opening sentence: what was tested against published claims and how it came
/// out, then the recorded baselines apart. `rows`: the rows as written (no sweep settings).
pub(super) fn bottom_line(rows: &[&ResultRow]) -> String {
    let count = |side: Side, word: &str| rows.iter().filter(|r| Side::of(r) == side && r.status.word() == word).count();
    let (reproduced, drift) = (count(Side::Published, "reproduced"), count(Side::Published, "drift"));
    let (subset, not_run) = (count(Side::Published, "subset"), count(Side::Published, "not-run"));
    let plural = |n: usize, one: &str, many: &str| if n == 1 { format!("{n} {one}") } else { format!("{n} {many}") };
    let mut s = match reproduced + drift {
        0 => "No published claim was tested on its full test set".to_string(),
        tested => format!(
            "{reproduced} of {} tested on the full test set reproduced, {drift} drifted",
            plural(tested, "published claim", "published claims")
        ),
    };
    let mut rest = Vec::new();
    if subset > 0 {
        rest.push(format!("{subset} on a subset only (not judged)"));
    }
    if not_run > 0 {
        rest.push(format!("{not_run} not run (fixes below)"));
    }
    if !rest.is_empty() {
        s += if reproduced + drift == 0 { ": " } else { "; " };
        s += &rest.join(", ");
    }
    s.push('.');
    let (hold, regressed) = (count(Side::Baseline, "baseline"), count(Side::Baseline, "regressed"));
    if hold + regressed > 0 {
        s += &format!(
            " Separately, {} (this project's own earlier numbers) {}, {regressed} regressed.",
            plural(hold, "recorded baseline", "recorded baselines"),
            if hold == 1 { "holds" } else { "hold" }
        );
    }
    s
}

/// The verdict's line on sensitivity-sweep rows (left out of its counts: a sweep setting is
/// another reading of a protocol, not a claim's test); `None` without any.
pub(super) fn sweep_note(rows: &[ResultRow]) -> Option<String> {
    let n = rows.iter().filter(|r| r.setting.is_some()).count();
    (n > 0).then(|| {
        format!(
            "Sensitivity sweeps: {n} row{} (a protocol re-run with one knob its source leaves open; \
             no verdict), in the experiment sections.",
            if n == 1 { "" } else { "s" }
        )
    })
}

/// A published claim that was measured, for the verdict.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct TestedClaim {
    /// `resnet50 · (i) center-crop`.
    pub what: String,
    /// `top-1 24.70 [24.32, 25.08] vs claimed 24.58 (Δ +0.12); tolerance ±0.20`.
    pub numbers: String,
    pub status: Status,
}

/// Rows of one experiment kept from running by one fix, for the verdict.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct NotRunClaims {
    /// The numbers of the experiment's not-run boxes that share this fix (`fix 1`, or `fixes
    /// 1–5` when each run names its own command after the same variable); empty: the
    /// experiment's own reason.
    pub notes: Vec<usize>,
    /// Published claims it keeps from being tested.
    pub published: usize,
    /// Other rows (recorded baselines, rows without a claim).
    pub others: usize,
    /// The reason's first clause (up to its first `; ` or line end): the variable or command
    /// that fixes it.
    pub fix: String,
    /// Whether the reason says more than `fix` (its box has the rest).
    pub more: bool,
}

impl NotRunClaims {
    /// How the boxes are named: `fix 1`, `fixes 1–5`, `fixes 1, 3`; `None` without a box.
    pub(super) fn notes_name(&self) -> Option<String> {
        match self.notes.as_slice() {
            [] => None,
            [one] => Some(note_name(*one)),
            [first, .., last] if *last - *first + 1 == self.notes.len() => Some(format!("fixes {first}–{last}")),
            many => Some(format!("fixes {}", many.iter().map(usize::to_string).collect::<Vec<_>>().join(", "))),
        }
    }

    /// `3 published claims not run`, `2 rows without a published claim not run`.
    pub(super) fn what(&self) -> String {
        let mut parts = Vec::new();
        if self.published > 0 {
            parts.push(if self.published == 1 {
                "1 published claim".to_string()
            } else {
                format!("{} published claims", self.published)
            });
        }
        if self.others > 0 {
            let rows = if self.others == 1 { "row" } else { "rows" };
            parts.push(if self.published > 0 {
                format!("{} other {rows}", self.others)
            } else {
                format!("{} {rows} without a published claim", self.others)
            });
        }
        if parts.is_empty() {
            return "not run".into();
        }
        format!("{} not run", parts.join(" and "))
    }
}

/// One experiment's part of the verdict.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ExperimentVerdict {
    pub name: String,
    /// The question it asks (its `question:`, else its description).
    pub question: String,
    /// Published claims measured: drift first, then subsets, then reproduced.
    pub tested: Vec<TestedClaim>,
    pub not_run: Vec<NotRunClaims>,
    /// Its recorded baselines' counts (empty when it has none).
    pub baselines: Vec<Count>,
    /// Its rows without a claim (empty when it has none).
    pub unclaimed: Vec<Count>,
}

/// The verdict of one experiment: `rows` its rows (sweep settings included: they are left out
/// here), `notes` its not-run boxes, `own_reason` why the whole experiment did not run.
pub(super) fn experiment_verdict(
    name: &str,
    question: &str,
    rows: &[&ResultRow],
    notes: &[NotRunNote],
    own_reason: Option<&str>,
) -> ExperimentVerdict {
    let written: Vec<&ResultRow> = rows.iter().copied().filter(|r| r.setting.is_none()).collect();
    let rank = |s: &Status| match s {
        Status::Drift => 0,
        Status::Empty(_) => 1,
        Status::Subset(_) => 2,
        _ => 3,
    };
    let mut tested: Vec<(&ResultRow, TestedClaim)> = written
        .iter()
        .filter(|r| Side::of(r) == Side::Published && !matches!(r.status, Status::NotRun(_)))
        .map(|r| {
            let what = format!("{} · {} {}", r.model, r.protocol_kind.numeral(), r.protocol);
            (*r, TestedClaim { what, numbers: comparison(r, true), status: r.status.clone() })
        })
        .collect();
    tested.sort_by_key(|(r, _)| rank(&r.status));
    let mut not_run: Vec<NotRunClaims> = Vec::new();
    let mut add = |why: &str, note: Option<usize>, published: usize, others: usize| {
        let (fix, more) = first_clause(why);
        let index = match not_run.iter().position(|n| n.fix == fix) {
            Some(i) => i,
            None => {
                not_run.push(NotRunClaims { notes: Vec::new(), published: 0, others: 0, fix, more });
                not_run.len() - 1
            }
        };
        let entry = &mut not_run[index];
        entry.more |= more;
        if let Some(n) = note.filter(|n| !entry.notes.contains(n)) {
            entry.notes.push(n);
        }
        entry.published += published;
        entry.others += others;
    };
    for r in &written {
        let Status::NotRun(why) = &r.status else { continue };
        let note = notes.iter().position(|n| n.reason == why.trim()).map(|i| i + 1);
        let published = usize::from(Side::of(r) == Side::Published);
        add(why, note, published, 1 - published);
    }
    if let Some(why) = own_reason.filter(|_| written.is_empty()) {
        add(why, None, 0, 0);
    }
    let mut unclaimed = side_counts(written.iter().copied(), Side::Unclaimed);
    // Rows without a claim that did not run are in the not-run lines already.
    unclaimed.retain(|c| c.class != "notrun" && c.n > 0);
    ExperimentVerdict {
        name: name.to_string(),
        question: question.trim().to_string(),
        tested: tested.into_iter().map(|(_, t)| t).collect(),
        not_run,
        baselines: side_counts(written.iter().copied(), Side::Baseline),
        unclaimed,
    }
}

/// A not-run reason's first clause (up to its first `; ` or line end), and whether it says more.
fn first_clause(why: &str) -> (String, bool) {
    let why = why.trim();
    let line = why.lines().next().unwrap_or_default();
    let clause = line.split("; ").next().unwrap_or_default().trim();
    (clause.to_string(), clause.len() < why.len())
}

/// How a row's numbers compare with its claim: `top-1 24.70 vs claimed 24.58 (Δ +0.12)`, with
/// `vs recorded baseline` for a baseline, each error's interval when `intervals`, and the tolerance.
fn comparison(r: &ResultRow, intervals: bool) -> String {
    let against = match r.claim_kind {
        Some(ClaimKind::Baseline) => "vs recorded baseline",
        _ => "vs claimed",
    };
    let mut parts = Vec::new();
    for (name, m, c, d) in [
        ("top-1", r.top1.as_ref(), r.claimed_top1_err, r.delta_top1),
        ("top-5", r.top5.as_ref(), r.claimed_top5_err, r.delta_top5),
    ] {
        if c.is_some() {
            let measured = if intervals { fmt_measured(m) } else { fmt_err(m.map(|m| m.err)) };
            parts.push(format!("{name} {measured} {against} {} (Δ {})", fmt_err(c), fmt_delta(d)));
        }
    }
    let parts = if parts.is_empty() { MISSING.to_string() } else { parts.join(", ") };
    format!("{parts}; tolerance {}", fmt_tolerance(r.tolerance))
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
         Delta (Δ) = measured − claimed (or − recorded baseline), in percentage points: negative \
         means the measurement is better than the number it is compared with; tolerance is the largest |Δ| still counted as agreement. \
         Status: ",
    ),
    Piece::Status("reproduced", "reproduced"),
    Piece::Text(" = every number of a published claim (a source outside this project) is within tolerance of the measurement; "),
    Piece::Status("drift", "drift"),
    Piece::Text(" = at least one number of a published claim is outside tolerance; "),
    Piece::Status("baseline", "baseline"),
    Piece::Text(
        " = within tolerance of a recorded baseline, a number this project measured itself on an earlier \
         run and keeps to catch regressions (it says nothing about any published claim); ",
    ),
    Piece::Status("regressed", "regressed"),
    Piece::Text(" = outside tolerance of a recorded baseline; "),
    Piece::Status("subset", "subset"),
    Piece::Text(" = measured on fewer images than the claim's test set, shown with its interval but not judged; "),
    Piece::Status("measured", "measured"),
    Piece::Text(" = measured, but no claim exists for it; "),
    Piece::Status("empty", "empty"),
    Piece::Text(" = every image was skipped as unreadable; "),
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

/// Text of a drift or regressed row for the summary list, after its experiment's name:
/// `resnet50 · (ii) ten-crop: top-1 23.50 vs claimed 22.85 (Δ +0.65); tolerance ±0.20`.
pub(super) fn drift_text(r: &ResultRow) -> String {
    let setting = r.setting.as_ref().map(|s| format!(" [{s}]")).unwrap_or_default();
    format!("{} · {} {}{setting}: {}", r.model, r.protocol_kind.numeral(), r.protocol, comparison(r, false))
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

/// Where an experiment's claimed numbers come from, numbered under its results table.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ClaimSource {
    pub text: String,
    /// Every row citing it holds a recorded baseline (this project's run), not a published claim.
    pub baseline: bool,
}

impl ClaimSource {
    /// How the note under the table introduces it.
    pub(super) fn lead(&self) -> &'static str {
        if self.baseline {
            "Recorded baseline (this project's own run):"
        } else {
            "Claims from"
        }
    }
}

/// The distinct claim sources of an experiment's rows, in row order (numbered from 1 under the table).
pub(super) fn claim_sources(rows: &[&ResultRow]) -> Vec<ClaimSource> {
    let mut sources: Vec<ClaimSource> = Vec::new();
    for r in rows {
        let Some(source) = r.claim_source.as_deref().map(str::trim).filter(|s| !s.is_empty()) else { continue };
        let baseline = r.claim_kind == Some(ClaimKind::Baseline);
        match sources.iter_mut().find(|s| s.text == source) {
            Some(known) => known.baseline &= baseline,
            None => sources.push(ClaimSource { text: source.to_string(), baseline }),
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
pub(super) fn row_cells(r: &ResultRow, notes: &[NotRunNote], sources: &[ClaimSource]) -> RowCells {
    let note = match &r.status {
        Status::NotRun(why) => notes.iter().position(|n| n.reason == why.trim()).map(|i| i + 1),
        _ => None,
    };
    let source = r.claim_source.as_deref().and_then(|c| sources.iter().position(|s| s.text == c.trim())).map(|i| i + 1);
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
            claimed_cell(r),
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

/// The claimed numbers, `top-1 / top-5`; a recorded baseline says so, since the column's
/// header speaks of claims.
fn claimed_cell(r: &ResultRow) -> String {
    let pair = fmt_pair(fmt_err(r.claimed_top1_err), fmt_err(r.claimed_top5_err));
    match r.claim_kind {
        Some(ClaimKind::Baseline) if pair != MISSING => format!("{pair} (baseline)"),
        _ => pair,
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
