//! `report.md` and a self-contained `report.html` from an [`AuditReport`]: the same facts in both,
//! written so that a reader who never saw the code can tell what was measured, under which
//! protocol, and whether it agrees with the published claim. Nothing here computes a result.
//!
//! The HTML page has no external references: its CSS is inline and every chart's SVG is read from
//! the report folder and inlined (prolog stripped, made to scale to the page width). Both files
//! are written atomically (a hidden temporary file in the same folder, then a rename), so a reader
//! never sees a half-written report.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{AuditReport, ChartFiles, ExperimentInfo, Measured, ProtocolKind, ResultRow, Status};

/// File names inside the report folder.
pub const MARKDOWN_FILE: &str = "report.md";
pub const HTML_FILE: &str = "report.html";

/// Why a report document could not be written; always names the file.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("{}: cannot read chart SVG: {reason}", path.display())]
    ReadSvg { path: PathBuf, reason: String },
    #[error("{}: not an SVG document: {reason}", path.display())]
    BadSvg { path: PathBuf, reason: String },
    #[error("{}: cannot write: {reason}", path.display())]
    Write { path: PathBuf, reason: String },
}

/// The spread of top-1 error over one sensitivity sweep: all rows of one (experiment, model,
/// protocol) whose `setting` is `Some`. The protocol as written (`setting: None`) is not part of
/// the band; its error is carried alongside for comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepBand {
    pub experiment: String,
    pub model: String,
    pub protocol: String,
    pub protocol_kind: ProtocolKind,
    /// The settings with a measured top-1 error, in row order (N = `settings.len()`).
    pub settings: Vec<String>,
    /// Sweep settings without a top-1 measurement (not run); not in the band.
    pub unmeasured: usize,
    pub min_top1_err: f64,
    pub min_setting: String,
    pub max_top1_err: f64,
    pub max_setting: String,
    /// Top-1 error of the protocol as written, when that row exists and was measured.
    pub as_written_top1_err: Option<f64>,
    /// The claimed top-1 error: from the sweep rows, else from the protocol-as-written row.
    pub claimed_top1_err: Option<f64>,
    /// Whether min ≤ claim ≤ max; `None` when nothing claims a top-1 error.
    pub claim_inside: Option<bool>,
}

impl SweepBand {
    /// The band in words, without the experiment/protocol (those head the group it is listed in).
    fn sentence(&self) -> String {
        let n = self.settings.len();
        let mut s = format!(
            "{}: band {}–{} top-1 error over the protocol as written and its {n} sweep setting{} (min: {}, max: {})",
            self.model,
            fmt_err(Some(self.min_top1_err)),
            fmt_err(Some(self.max_top1_err)),
            if n == 1 { "" } else { "s" },
            self.min_setting,
            self.max_setting,
        );
        if let Some(w) = self.as_written_top1_err {
            s += &format!("; as written: {}", fmt_err(Some(w)));
        }
        if self.unmeasured > 0 {
            s += &format!("; {} setting(s) not measured", self.unmeasured);
        }
        match (self.claimed_top1_err, self.claim_inside) {
            (Some(c), Some(true)) => s += &format!(". Claimed {} lies inside the band.", fmt_err(Some(c))),
            (Some(c), _) => {
                let side = if c < self.min_top1_err { "below" } else { "above" };
                s += &format!(". Claimed {} lies outside the band ({side} it).", fmt_err(Some(c)));
            }
            (None, _) => s += ". No top-1 claim to compare.",
        }
        s
    }
}

/// Sweep bands of all sweep rows, one per (experiment, model, protocol), in order of first
/// appearance. Groups without any measured top-1 error have no band and are left out.
/// Half a unit in the second decimal: how far a claim written to two decimals may sit outside a band.
const CLAIM_ROUNDING: f64 = 0.005;

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

/// Writes `dir/report.md`; charts referenced as images by their PNG file names.
pub fn write_markdown(report: &AuditReport, dir: &Path) -> Result<PathBuf, DocumentError> {
    write_atomic(&dir.join(MARKDOWN_FILE), &markdown(report))
}

/// Writes `dir/report.html`: one file, no external references: CSS inline, each chart's SVG
/// (read from `dir/<chart.svg>`) inlined into the page. A missing SVG is an error naming it.
pub fn write_html(report: &AuditReport, dir: &Path) -> Result<PathBuf, DocumentError> {
    let mut svgs = Vec::with_capacity(report.charts.len());
    for chart in &report.charts {
        let path = dir.join(&chart.svg);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| DocumentError::ReadSvg { path: path.clone(), reason: e.to_string() })?;
        svgs.push(inline_svg(&text, &chart.title).map_err(|reason| DocumentError::BadSvg { path, reason })?);
    }
    write_atomic(&dir.join(HTML_FILE), &html(report, &svgs))
}

fn write_atomic(path: &Path, text: &str) -> Result<PathBuf, DocumentError> {
    let err = |p: &Path, e: std::io::Error| DocumentError::Write { path: p.to_path_buf(), reason: e.to_string() };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // Same folder, so the rename cannot cross file systems; the pid keeps concurrent writers apart.
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(text.as_bytes())?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp); // best effort: the error below is what matters
        return Err(err(path, e));
    }
    Ok(path.to_path_buf())
}

// ---------------------------------------------------------------------------------------------
// Numbers and shared text

const MISSING: &str = "—";

/// Error in percent, 2 decimals.
fn fmt_err(v: Option<f64>) -> String {
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
fn fmt_count(n: usize) -> String {
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

fn fmt_pair(a: String, b: String) -> String {
    if a == MISSING && b == MISSING {
        MISSING.into()
    } else {
        format!("{a} / {b}")
    }
}

fn short_sha(sha: &str) -> String {
    sha.chars().take(12).collect()
}

fn status_class(status: &Status) -> &'static str {
    match status {
        Status::Reproduced => "reproduced",
        Status::Drift => "drift",
        Status::Measured => "measured",
        Status::NotRun(_) => "notrun",
    }
}

/// The status names in the order the summary counts them.
const STATUS_NAMES: [(&str, &str); 4] =
    [("reproduced", "reproduced"), ("drift", "drift"), ("measured", "measured"), ("notrun", "not run")];

fn status_counts<'a>(rows: impl IntoIterator<Item = &'a ResultRow>) -> [usize; 4] {
    let mut counts = [0; 4];
    for row in rows {
        let class = status_class(&row.status);
        if let Some(i) = STATUS_NAMES.iter().position(|(c, _)| *c == class) {
            counts[i] += 1;
        }
    }
    counts
}

/// The one-paragraph reading guide, as (plain text, status term) pieces so each format can mark
/// the status words up its own way.
enum Piece {
    Text(&'static str),
    Status(&'static str, &'static str),
}

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

/// Text of a drift row for the summary list, after its experiment's name.
fn drift_text(r: &ResultRow) -> String {
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
struct RowCells {
    cells: Vec<String>,
    sweep: bool,
}

const RESULT_HEADER: [&str; 13] = [
    "model",
    "protocol",
    "setting",
    "top-1 err % [95% CI]",
    "top-5 err % [95% CI]",
    "claimed top-1 / top-5",
    "Δ top-1 / top-5",
    "tolerance",
    "status",
    "images",
    "skipped",
    "GMACs/image",
    "source",
];
/// The same headers for HTML (raw markup): the interval on its own line keeps the columns narrow.
const RESULT_HEADER_HTML: [&str; 13] = [
    "model",
    "protocol",
    "setting",
    "top-1 err %<br>[95% CI]",
    "top-5 err %<br>[95% CI]",
    "claimed<br>top-1 / top-5",
    "Δ<br>top-1 / top-5",
    "tolerance",
    "status",
    "images",
    "skipped",
    "GMACs/<br>image",
    "source",
];
/// Columns of RESULT_HEADER holding numbers (right-aligned).
const RESULT_NUMERIC: [usize; 8] = [3, 4, 5, 6, 7, 9, 10, 11];
const COL_STATUS: usize = 8;
const COL_SOURCE: usize = 12;

/// The not-run reason for a table cell: in full, unless the experiment's "Not run" box already
/// shows the same text; then its first line and a pointer to the box (keeps the table compact).
fn not_run_reason(why: &str, boxed: Option<&str>) -> String {
    let why = why.trim();
    let first = why.lines().next().unwrap_or_default();
    if boxed.is_some_and(|b| b.trim() == why) && first.len() < why.len() {
        format!("{first} … (in full in the box above)")
    } else {
        why.to_string()
    }
}

/// `boxed`: the experiment's not-run text, shown in full above the table.
fn row_cells(r: &ResultRow, boxed: Option<&str>) -> RowCells {
    RowCells {
        cells: vec![
            r.model.clone(),
            format!("{} {}", r.protocol_kind.numeral(), r.protocol),
            r.setting.clone().unwrap_or_else(|| "as written".into()),
            fmt_measured(r.top1.as_ref()),
            fmt_measured(r.top5.as_ref()),
            fmt_pair(fmt_err(r.claimed_top1_err), fmt_err(r.claimed_top5_err)),
            fmt_pair(fmt_delta(r.delta_top1), fmt_delta(r.delta_top5)),
            fmt_tolerance(r.tolerance),
            match &r.status {
                Status::NotRun(why) => format!("not run: {}", not_run_reason(why, boxed)),
                other => other.label(),
            },
            fmt_count(r.images),
            fmt_count(r.skipped),
            fmt_sig3(r.gmacs_per_image),
            r.claim_source.clone().unwrap_or_else(|| MISSING.into()),
        ],
        sweep: r.setting.is_some(),
    }
}

/// An experiment's rows with each protocol's sweep rows right after its as-written row; sweep rows
/// without an as-written row keep their place at the end.
fn ordered_rows<'a>(rows: &[&'a ResultRow]) -> Vec<&'a ResultRow> {
    let mut out: Vec<&ResultRow> = Vec::with_capacity(rows.len());
    let mut used = vec![false; rows.len()];
    for (i, r) in rows.iter().enumerate() {
        if r.setting.is_some() {
            continue;
        }
        out.push(r);
        used[i] = true;
        for (j, s) in rows.iter().enumerate() {
            if !used[j] && s.setting.is_some() && s.model == r.model && s.protocol == r.protocol {
                out.push(s);
                used[j] = true;
            }
        }
    }
    out.extend(rows.iter().zip(&used).filter(|(_, u)| !**u).map(|(r, _)| *r));
    out
}

/// Sweep bands of one experiment grouped by protocol: (numeral + id, bands), protocols in the
/// experiment's order, then any the experiment does not list.
fn bands_by_protocol(exp: Option<&ExperimentInfo>, bands: &[SweepBand]) -> Vec<(String, Vec<SweepBand>)> {
    let mut groups: Vec<(String, String, Vec<SweepBand>)> = Vec::new();
    if let Some(exp) = exp {
        for p in &exp.protocols {
            groups.push((p.id.clone(), format!("{} {}", p.kind.numeral(), p.id), Vec::new()));
        }
    }
    for b in bands {
        match groups.iter_mut().find(|g| g.0 == b.protocol) {
            Some(g) => g.2.push(b.clone()),
            None => groups.push((
                b.protocol.clone(),
                format!("{} {}", b.protocol_kind.numeral(), b.protocol),
                vec![b.clone()],
            )),
        }
    }
    groups.into_iter().filter(|g| !g.2.is_empty()).map(|g| (g.1, g.2)).collect()
}

/// What one experiment section shows, gathered once for both formats.
struct ExperimentView<'a> {
    info: Option<&'a ExperimentInfo>,
    name: &'a str,
    rows: Vec<&'a ResultRow>,
    bands: Vec<(String, Vec<SweepBand>)>,
}

fn experiment_views(report: &AuditReport) -> Vec<ExperimentView<'_>> {
    let all_bands = sweep_bands(&report.rows);
    let build = |info: Option<&'_ ExperimentInfo>, name: &str| {
        let rows: Vec<&ResultRow> = report.rows.iter().filter(|r| r.experiment == name).collect();
        let bands: Vec<SweepBand> = all_bands.iter().filter(|b| b.experiment == name).cloned().collect();
        (ordered_rows(&rows), bands_by_protocol(info, &bands))
    };
    let mut views = Vec::new();
    for exp in &report.experiments {
        let (rows, bands) = build(Some(exp), &exp.name);
        views.push(ExperimentView { info: Some(exp), name: &exp.name, rows, bands });
    }
    // Rows whose experiment is not described still get a section, so no result is dropped.
    let mut orphans: Vec<&str> = Vec::new();
    for r in &report.rows {
        if !report.experiments.iter().any(|e| e.name == r.experiment) && !orphans.contains(&r.experiment.as_str()) {
            orphans.push(&r.experiment);
        }
    }
    for name in orphans {
        let (rows, bands) = build(None, name);
        views.push(ExperimentView { info: None, name, rows, bands });
    }
    views
}

/// Anchor id of an experiment section.
fn anchor(name: &str) -> String {
    let slug: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect();
    format!("exp-{slug}")
}

// ---------------------------------------------------------------------------------------------
// Markdown

/// Inline text: backslash-escapes the characters that would start markup (CommonMark allows a
/// backslash before any ASCII punctuation): code spans, emphasis, inline HTML, table pipes, and a
/// blockquote `>` at a line start. Brackets and `_` are left alone: without a `(…)` after them
/// brackets stay literal, intra-word `_` is not emphasis, and the raw file stays readable.
fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut line_start = true;
    for c in s.chars() {
        if matches!(c, '\\' | '`' | '*' | '<' | '|') || (c == '>' && line_start) {
            out.push('\\');
        }
        out.push(c);
        line_start = c == '\n' || (line_start && c == ' ');
    }
    out
}

/// A table cell: escaped, line breaks kept as `<br>` (a raw newline would end the row).
fn md_cell(s: &str) -> String {
    md(s.trim()).replace("\r\n", "\n").replace('\n', "<br>")
}

/// A link destination; angle brackets where it has spaces or parentheses.
fn md_dest(p: &str) -> String {
    if p.contains([' ', '(', ')', '<', '>']) {
        format!("<{}>", p.replace('<', "%3C").replace('>', "%3E"))
    } else {
        p.to_string()
    }
}

/// A fenced code block that shows `text` verbatim: the fence is longer than any backtick run in it.
fn md_code_block(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}text\n{}\n{fence}\n", text.trim_end_matches(['\n', '\r']))
}

fn md_table(header: &[&str], rows: &[Vec<String>], numeric: &[usize]) -> String {
    let mut s = format!("| {} |\n|", header.iter().map(|h| md_cell(h)).collect::<Vec<_>>().join(" | "));
    for i in 0..header.len() {
        s += if numeric.contains(&i) { " ---: |" } else { " --- |" };
    }
    s.push('\n');
    for row in rows {
        s += &format!("| {} |\n", row.iter().map(|c| md_cell(c)).collect::<Vec<_>>().join(" | "));
    }
    s
}

fn markdown(report: &AuditReport) -> String {
    let mut s = format!("# {}\n\n", md(&report.title));
    s += &format!("Generated {} by {}.\n\nCommand line:\n\n", md(&report.generated_at), md(&report.software));
    s += &md_code_block(&report.command);

    s += "\n## How to read this report\n\n";
    for piece in HOW_TO_READ {
        match piece {
            Piece::Text(t) => s += &md(t),
            Piece::Status(_, word) => s += &format!("**{word}**"),
        }
    }
    s += "\n\n";

    let views = experiment_views(report);
    s += &md_summary(report, &views);

    s += "\n## Charts\n\n";
    if report.charts.is_empty() {
        s += "No charts were written.\n";
    }
    for chart in &report.charts {
        s += &md_chart(chart);
    }

    s += "\n## Experiments\n";
    for view in &views {
        s += &md_experiment(view);
    }

    s += "\n---\n\n## How to reproduce\n\nRun, from the same working directory:\n\n";
    s += &md_code_block(&report.command);
    s += &format!("\nSoftware: {}. Generated {}.\n", md(&report.software), md(&report.generated_at));
    single_blank_lines(&s)
}

/// Collapses runs of blank lines to one, outside fenced code blocks (whose text stays verbatim):
/// the sections above each add their own spacing, and doubled blank lines are just noise.
fn single_blank_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut fence: Option<&str> = None;
    let mut previous_blank = false;
    for line in text.lines() {
        let ticks = &line[..line.len() - line.trim_start_matches('`').len()];
        match fence {
            None if ticks.len() >= 3 => fence = Some(ticks),
            Some(open) if ticks == open && line.trim_end() == open => fence = None,
            _ => {}
        }
        let blank = line.trim().is_empty();
        if blank && previous_blank && fence.is_none() {
            continue;
        }
        previous_blank = blank;
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn md_summary(report: &AuditReport, views: &[ExperimentView]) -> String {
    let counts = status_counts(&report.rows);
    let mut s = "## Summary\n\n".to_string();
    let parts: Vec<String> = STATUS_NAMES.iter().zip(counts).map(|((_, name), n)| format!("**{n}** {name}")).collect();
    s += &format!("{} result rows: {}.\n\n", report.rows.len(), parts.join(", "));
    let drift: Vec<&ResultRow> = report.rows.iter().filter(|r| r.status == Status::Drift).collect();
    if drift.is_empty() {
        s += "No row drifts from its claim.\n\n";
    } else {
        s += &format!(
            "**Drift** ({} row{} outside tolerance):\n\n",
            drift.len(),
            if drift.len() == 1 { "" } else { "s" }
        );
        for r in drift {
            s += &format!("- {} · {}\n", md(&r.experiment), md(&drift_text(r)));
        }
        s.push('\n');
    }
    let mut table = Vec::new();
    for v in views {
        let c = status_counts(v.rows.iter().copied());
        let ran = match v.info {
            Some(i) if i.not_run.is_some() => "not run".to_string(),
            Some(_) => "ran".to_string(),
            None => MISSING.to_string(),
        };
        let mut row = vec![format!("[{}](#{})", md(v.name), anchor(v.name)), ran, v.rows.len().to_string()];
        row.extend(c.iter().map(|n| n.to_string()));
        table.push(row);
    }
    if !table.is_empty() {
        // Cells here are built above (links, numbers), so they bypass md_cell's escaping.
        s += "| experiment | run | rows | reproduced | drift | measured | not run |\n| --- | --- | ---: | ---: | ---: | ---: | ---: |\n";
        for row in table {
            s += &format!("| {} |\n", row.join(" | "));
        }
    }
    s
}

fn md_chart(chart: &ChartFiles) -> String {
    format!(
        "### {}\n\n![{}]({})\n\n*{}* ([SVG]({}))\n\n",
        md(&chart.title),
        md(&chart.title),
        md_dest(&chart.png),
        md(chart.caption.trim()),
        md_dest(&chart.svg)
    )
}

fn md_experiment(view: &ExperimentView) -> String {
    let mut s = String::new();
    match view.info {
        Some(info) => {
            // The explicit anchor makes the summary's `#exp-…` links work in Markdown viewers too.
            s += &format!(
                "\n<a id=\"{}\"></a>\n\n### Experiment [{}]({})\n\n",
                anchor(&info.name),
                md(&info.name),
                md_dest(&info.copied_file)
            );
            if !info.description.trim().is_empty() {
                s += &format!("{}\n\n", md(info.description.trim()));
            }
            s += &format!("- Experiment file: [{}]({})\n", md(&info.copied_file), md_dest(&info.copied_file));
            s += &format!("- Dataset: {}\n", md(&info.dataset));
            let images = info.images.map(fmt_count).unwrap_or_else(|| format!("{MISSING} (not run)"));
            s += &format!("- Images evaluated: {images}\n\n");
            if let Some(why) = &info.not_run {
                s += "> **⚠ Not run.** This experiment was not evaluated. Reason and fix, verbatim:\n\n";
                s += &md_code_block(why);
                s.push('\n');
            }
            if !info.models.is_empty() {
                s += "#### Models\n\n";
                let rows: Vec<Vec<String>> = info
                    .models
                    .iter()
                    .map(|m| {
                        let sha = m.sha256.as_deref().map(short_sha).unwrap_or_else(|| MISSING.into());
                        vec![m.id.clone(), m.architecture.clone(), m.weights.clone(), sha, m.input.clone()]
                    })
                    .collect();
                s += &md_table(&["id", "architecture", "weights", "SHA-256 (first 12)", "input"], &rows, &[]);
                s.push('\n');
            }
            if !info.protocols.is_empty() {
                s += "#### Protocols\n\n";
                let rows: Vec<Vec<String>> = info
                    .protocols
                    .iter()
                    .map(|p| {
                        let sweep = if p.sweep.is_empty() { MISSING.to_string() } else { p.sweep.join("; ") };
                        vec![p.kind.numeral().to_string(), p.id.clone(), p.summary.clone(), sweep]
                    })
                    .collect();
                s += &md_table(&["", "id", "summary", "sweep settings"], &rows, &[]);
                s.push('\n');
            }
        }
        None => {
            s += &format!("\n<a id=\"{}\"></a>\n\n### Experiment {}\n\n", anchor(view.name), md(view.name));
            s += "Not described in this report's experiment list; its rows follow.\n\n";
        }
    }
    s += "#### Results\n\n";
    if view.rows.is_empty() {
        s += "No result rows.\n\n";
    } else {
        let boxed = view.info.and_then(|i| i.not_run.as_deref());
        let rows: Vec<Vec<String>> = view.rows.iter().map(|r| row_cells(r, boxed).cells).collect();
        s += &md_table(&RESULT_HEADER, &rows, &RESULT_NUMERIC);
        s.push('\n');
    }
    if !view.bands.is_empty() {
        s += "#### Sensitivity sweeps\n\n";
        for (protocol, bands) in &view.bands {
            s += &format!("Protocol {}:\n\n", md(protocol));
            for b in bands {
                s += &format!("- {}\n", md(&b.sentence()));
            }
            s.push('\n');
        }
    }
    if let Some(info) = view.info {
        for (title, items) in [("Notes", &info.notes), ("Paired comparisons (McNemar)", &info.paired)] {
            if !items.is_empty() {
                s += &format!("#### {title}\n\n");
                for item in items {
                    s += &format!("- {}\n", md(item.trim()).replace('\n', "\n  "));
                }
                s.push('\n');
            }
        }
    }
    s
}

// ---------------------------------------------------------------------------------------------
// HTML

/// Text and attribute values: the five characters HTML gives meaning to.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Escaped text; a text that is a web address becomes a plain link (navigation, not a resource load).
fn esc_or_link(s: &str) -> String {
    let t = s.trim();
    if (t.starts_with("https://") || t.starts_with("http://")) && !t.contains(char::is_whitespace) {
        // The scheme adds width, not information.
        let text = t.split_once("://").map_or(t, |(_, rest)| rest);
        format!("<a href=\"{}\">{}</a>", esc(t), esc(text))
    } else {
        esc(s)
    }
}

const CSS: &str = r#"
:root { --fg:#1f2328; --muted:#59636e; --border:#d1d9e0; --zebra:#f6f8fa; --head:#eaeef2;
  --green:#116329; --green-bg:#dafbe1; --red:#a40e26; --red-bg:#ffebe9;
  --grey:#424a53; --grey-bg:#eaeef2; --amber:#7d4e00; --amber-bg:#fff8c5; --amber-line:#d4a72c; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff; line-height: 1.5;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 1.9rem; margin: 0 0 4px; line-height: 1.25; }
h2 { font-size: 1.4rem; margin: 36px 0 12px; padding-bottom: 4px; border-bottom: 1px solid var(--border); }
h3 { font-size: 1.15rem; margin: 28px 0 8px; }
h4 { font-size: 1rem; margin: 20px 0 6px; }
a { color: #0969da; }
.meta { color: var(--muted); margin: 0 0 12px; }
code, pre { font-family: ui-monospace, SFMono-Regular, "SF Mono", Menlo, Consolas, "Liberation Mono", monospace; font-size: 0.9em; }
td code { font-size: 0.95em; }
pre { background: var(--zebra); border: 1px solid var(--border); border-radius: 6px; padding: 8px 12px;
  overflow-x: auto; white-space: pre; margin: 6px 0 12px; }
.table-wrap { overflow-x: auto; margin: 6px 0 14px; border: 1px solid var(--border); border-radius: 6px; }
table { border-collapse: collapse; font-size: 0.8rem; width: 100%; }
th, td { padding: 4px 6px; text-align: left; vertical-align: top; border-bottom: 1px solid var(--border); }
th { background: var(--head); font-weight: 600; white-space: nowrap; }
tbody tr:nth-child(even) { background: var(--zebra); }
tbody tr:last-child td { border-bottom: none; }
td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
th.num { text-align: right; }
td.nowrap { white-space: nowrap; }
td.source { min-width: 16em; overflow-wrap: anywhere; }
.ci { color: var(--muted); font-size: 0.9em; }
tr.sweep td:first-child, tr.sweep td:nth-child(2) { color: var(--muted); }
tr.sweep td:nth-child(3) { padding-left: 16px; }
.status { font-weight: 600; white-space: nowrap; }
.status .why { display: block; font-weight: 400; white-space: pre-wrap; min-width: 12em; font-size: 0.75rem; }
.reproduced { background: var(--green-bg); color: var(--green); }
.drift { background: var(--red-bg); color: var(--red); }
.measured { background: var(--grey-bg); color: var(--grey); }
.notrun { background: var(--amber-bg); color: var(--amber); }
td.status.reproduced, td.status.drift, td.status.measured, td.status.notrun { border-left: 3px solid currentColor; }
.badge { display: inline-block; padding: 0 6px; border-radius: 4px; font-weight: 600; }
.counts { display: flex; flex-wrap: wrap; gap: 8px 20px; list-style: none; padding: 0; margin: 8px 0 12px; }
.counts li { font-size: 1.05rem; }
.drift-list { border-left: 4px solid var(--red); background: var(--red-bg); padding: 8px 12px 8px 32px; border-radius: 6px; margin: 8px 0 16px; }
.drift-list li { margin: 2px 0; }
.not-run-box { border: 1px solid var(--amber-line); border-left: 6px solid var(--amber-line); background: var(--amber-bg);
  border-radius: 6px; padding: 10px 14px; margin: 12px 0 16px; }
.not-run-box strong { color: var(--amber); font-size: 1.05rem; }
.not-run-box pre { background: #fff; margin-bottom: 4px; white-space: pre-wrap; overflow-wrap: anywhere; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 8px 0 12px; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
figure { margin: 16px 0 24px; border: 1px solid var(--border); border-radius: 6px; padding: 12px 16px; }
figure h3 { margin: 0 0 8px; }
figure svg { display: block; width: 100%; height: auto; max-width: 100%; }
figcaption { color: var(--muted); font-size: 0.9rem; margin-top: 8px; }
section.experiment + section.experiment { border-top: 2px solid var(--border); margin-top: 40px; }
ul.bands { margin: 4px 0 12px; }
footer { margin-top: 48px; }
@media print {
  main { max-width: none; padding: 0; }
  .table-wrap { overflow: visible; border: none; }
  table { font-size: 0.7rem; }
  pre, .status .why { white-space: pre-wrap; word-break: break-all; }
  figure, .not-run-box, tr { break-inside: avoid; }
  h2, h3, h4 { break-after: avoid; }
  a { color: inherit; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"#;

/// `header`: raw HTML (constants of this file); `body`: the escaped rows.
fn html_table(header: &[&str], numeric: &[usize], body: &str) -> String {
    let mut s = "<div class=\"table-wrap\"><table>\n<thead><tr>".to_string();
    for (i, h) in header.iter().enumerate() {
        let class = if numeric.contains(&i) { " class=\"num\"" } else { "" };
        s += &format!("<th{class}>{h}</th>");
    }
    s += "</tr></thead>\n<tbody>\n";
    s += body;
    s += "</tbody></table></div>\n";
    s
}

fn html(report: &AuditReport, svgs: &[String]) -> String {
    let mut s = String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    s += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
    s += &format!("<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n", esc(&report.title));

    s += &format!("<header>\n<h1>{}</h1>\n", esc(&report.title));
    s += &format!(
        "<p class=\"meta\">Generated {} by {}.</p>\n<p>Command line:</p>\n<pre><code>{}</code></pre>\n</header>\n",
        esc(&report.generated_at),
        esc(&report.software),
        esc(report.command.trim_end())
    );

    s += "\n<section id=\"how-to-read\">\n<h2>How to read this report</h2>\n<p>";
    for piece in HOW_TO_READ {
        match piece {
            Piece::Text(t) => s += &esc(t),
            Piece::Status(class, word) => s += &format!("<span class=\"badge {class}\">{word}</span>"),
        }
    }
    s += "</p>\n</section>\n";

    let views = experiment_views(report);
    s += &html_summary(report, &views);

    s += "\n<section id=\"charts\">\n<h2>Charts</h2>\n";
    if report.charts.is_empty() {
        s += "<p>No charts were written.</p>\n";
    }
    for (chart, svg) in report.charts.iter().zip(svgs) {
        s += &format!(
            "<figure>\n<h3>{}</h3>\n{svg}\n<figcaption>{} Files: <a href=\"{}\">PNG</a>, <a href=\"{}\">SVG</a>.</figcaption>\n</figure>\n",
            esc(&chart.title),
            esc(chart.caption.trim()),
            esc(&chart.png),
            esc(&chart.svg)
        );
    }
    s += "</section>\n";

    s += "\n<section id=\"experiments\">\n<h2>Experiments</h2>\n";
    for view in &views {
        s += &html_experiment(view);
    }
    s += "</section>\n";

    s += "\n<footer>\n<h2>How to reproduce</h2>\n<p>Run, from the same working directory:</p>\n";
    s += &format!("<pre><code>{}</code></pre>\n", esc(report.command.trim_end()));
    s += &format!(
        "<p>Software: {}. Generated {}.</p>\n</footer>\n</main>\n</body>\n</html>\n",
        esc(&report.software),
        esc(&report.generated_at)
    );
    s
}

fn html_summary(report: &AuditReport, views: &[ExperimentView]) -> String {
    let counts = status_counts(&report.rows);
    let mut s = "\n<section id=\"summary\">\n<h2>Summary</h2>\n".to_string();
    s += &format!("<p>{} result rows:</p>\n<ul class=\"counts\">\n", report.rows.len());
    for ((class, name), n) in STATUS_NAMES.iter().zip(counts) {
        s += &format!("<li><strong>{n}</strong> <span class=\"badge {class}\">{name}</span></li>\n");
    }
    s += "</ul>\n";
    let drift: Vec<&ResultRow> = report.rows.iter().filter(|r| r.status == Status::Drift).collect();
    if drift.is_empty() {
        s += "<p>No row drifts from its claim.</p>\n";
    } else {
        s += &format!(
            "<p><strong>Drift</strong> ({} row{} outside tolerance):</p>\n<ul class=\"drift-list\">\n",
            drift.len(),
            if drift.len() == 1 { "" } else { "s" }
        );
        for r in drift {
            s += &format!(
                "<li><a href=\"#{}\">{}</a> · {}</li>\n",
                anchor(&r.experiment),
                esc(&r.experiment),
                esc(&drift_text(r))
            );
        }
        s += "</ul>\n";
    }
    let mut body = String::new();
    for v in views {
        let c = status_counts(v.rows.iter().copied());
        let ran = match v.info {
            Some(i) if i.not_run.is_some() => "<span class=\"badge notrun\">not run</span>".to_string(),
            Some(_) => "ran".to_string(),
            None => MISSING.to_string(),
        };
        body += &format!(
            "<tr><td><a href=\"#{}\">{}</a></td><td>{ran}</td><td class=\"num\">{}</td>",
            anchor(v.name),
            esc(v.name),
            v.rows.len()
        );
        for n in c {
            body += &format!("<td class=\"num\">{n}</td>");
        }
        body += "</tr>\n";
    }
    if !views.is_empty() {
        s += &html_table(
            &["experiment", "run", "rows", "reproduced", "drift", "measured", "not run"],
            &[2, 3, 4, 5, 6],
            &body,
        );
    }
    s += "</section>\n";
    s
}

fn html_experiment(view: &ExperimentView) -> String {
    let mut s = format!("\n<section class=\"experiment\" id=\"{}\">\n", anchor(view.name));
    match view.info {
        Some(info) => {
            s += &format!(
                "<h3>Experiment <a href=\"{}\"><code>{}</code></a></h3>\n",
                esc(&info.copied_file),
                esc(&info.name)
            );
            if !info.description.trim().is_empty() {
                s += &format!("<p>{}</p>\n", esc(info.description.trim()));
            }
            let images = info.images.map(fmt_count).unwrap_or_else(|| format!("{MISSING} (not run)"));
            s += &format!(
                "<dl class=\"facts\"><dt>Experiment file</dt><dd><a href=\"{}\">{}</a></dd>\
                 <dt>Dataset</dt><dd>{}</dd><dt>Images evaluated</dt><dd>{images}</dd></dl>\n",
                esc(&info.copied_file),
                esc(&info.copied_file),
                esc(&info.dataset)
            );
            if let Some(why) = &info.not_run {
                s += &format!(
                    "<div class=\"not-run-box\" role=\"note\"><strong>⚠ Not run</strong>\n\
                     <p>This experiment was not evaluated. Reason and fix, verbatim:</p>\n<pre><code>{}</code></pre></div>\n",
                    esc(why.trim_end())
                );
            }
            if !info.models.is_empty() {
                s += "<h4>Models</h4>\n";
                let mut body = String::new();
                for m in &info.models {
                    let sha = match &m.sha256 {
                        Some(full) => format!("<code title=\"{}\">{}</code>", esc(full), esc(&short_sha(full))),
                        None => MISSING.to_string(),
                    };
                    body += &format!(
                        "<tr><td class=\"nowrap\"><code>{}</code></td><td>{}</td><td><code>{}</code></td><td class=\"nowrap\">{sha}</td><td>{}</td></tr>\n",
                        esc(&m.id),
                        esc(&m.architecture),
                        esc_or_link(&m.weights),
                        esc(&m.input)
                    );
                }
                s += &html_table(&["id", "architecture", "weights", "SHA-256", "input"], &[], &body);
            }
            if !info.protocols.is_empty() {
                s += "<h4>Protocols</h4>\n";
                let mut body = String::new();
                for p in &info.protocols {
                    let sweep = if p.sweep.is_empty() {
                        MISSING.to_string()
                    } else {
                        p.sweep.iter().map(|x| format!("<code>{}</code>", esc(x))).collect::<Vec<_>>().join("<br>")
                    };
                    body += &format!(
                        "<tr><td class=\"nowrap\">{}</td><td class=\"nowrap\"><code>{}</code></td><td>{}</td><td>{sweep}</td></tr>\n",
                        p.kind.numeral(),
                        esc(&p.id),
                        esc(&p.summary)
                    );
                }
                s += &html_table(&["", "id", "summary", "sweep settings"], &[], &body);
            }
        }
        None => {
            s += &format!("<h3>Experiment <code>{}</code></h3>\n", esc(view.name));
            s += "<p>Not described in this report's experiment list; its rows follow.</p>\n";
        }
    }
    s += "<h4>Results</h4>\n";
    if view.rows.is_empty() {
        s += "<p>No result rows.</p>\n";
    } else {
        let boxed = view.info.and_then(|i| i.not_run.as_deref());
        let mut body = String::new();
        for r in &view.rows {
            let cells = row_cells(r, boxed);
            body += if cells.sweep { "<tr class=\"sweep\">" } else { "<tr>" };
            for (i, cell) in cells.cells.iter().enumerate() {
                body += &match i {
                    COL_STATUS => {
                        let class = status_class(&r.status);
                        match &r.status {
                            Status::NotRun(why) => format!(
                                "<td class=\"status {class}\">not run<span class=\"why\">{}</span></td>",
                                esc(&not_run_reason(why, boxed))
                            ),
                            _ => format!("<td class=\"status {class}\">{}</td>", esc(cell)),
                        }
                    }
                    COL_SOURCE => format!("<td class=\"source\">{}</td>", esc_or_link(cell)),
                    // The interval on its own line, smaller: keeps the wide table within the page.
                    3 | 4 => match if i == 3 { r.top1.as_ref() } else { r.top5.as_ref() } {
                        Some(m) if m.err.is_finite() => format!(
                            "<td class=\"num\">{:.2}<br><span class=\"ci\">[{:.2}, {:.2}]</span></td>",
                            m.err, m.low, m.high
                        ),
                        _ => format!("<td class=\"num\">{MISSING}</td>"),
                    },
                    0 | 1 => format!("<td class=\"nowrap\">{}</td>", esc(cell)),
                    _ if RESULT_NUMERIC.contains(&i) => format!("<td class=\"num\">{}</td>", esc(cell)),
                    _ => format!("<td>{}</td>", esc(cell)),
                };
            }
            body += "</tr>\n";
        }
        s += &html_table(&RESULT_HEADER_HTML, &RESULT_NUMERIC, &body);
    }
    if !view.bands.is_empty() {
        s += "<h4>Sensitivity sweeps</h4>\n";
        for (protocol, bands) in &view.bands {
            s += &format!("<p>Protocol <strong>{}</strong>:</p>\n<ul class=\"bands\">\n", esc(protocol));
            for b in bands {
                s += &format!("<li>{}</li>\n", esc(&b.sentence()));
            }
            s += "</ul>\n";
        }
    }
    if let Some(info) = view.info {
        for (title, items) in [("Notes", &info.notes), ("Paired comparisons (McNemar)", &info.paired)] {
            if !items.is_empty() {
                s += &format!("<h4>{title}</h4>\n<ul>\n");
                for item in items {
                    s += &format!("<li>{}</li>\n", esc(item.trim()));
                }
                s += "</ul>\n";
            }
        }
    }
    s += "</section>\n";
    s
}

// ---------------------------------------------------------------------------------------------
// SVG inlining

/// The SVG document as an element to put inside the page: everything before the root `<svg>`
/// (XML declaration, doctype, comments) dropped; fixed width/height replaced by `width="100%"`
/// and a viewBox (added from width/height when missing), so the chart scales with the page.
fn inline_svg(svg: &str, title: &str) -> Result<String, String> {
    let mut rest = svg.trim_start_matches('\u{feff}');
    loop {
        rest = rest.trim_start();
        let skip_to = |end: &str| rest.find(end).map(|i| i + end.len());
        let next = if rest.starts_with("<?") {
            skip_to("?>").ok_or("unterminated <? … ?>")?
        } else if rest.starts_with("<!--") {
            skip_to("-->").ok_or("unterminated comment")?
        } else if rest.get(..9).is_some_and(|p| p.eq_ignore_ascii_case("<!DOCTYPE")) {
            doctype_end(rest).ok_or("unterminated <!DOCTYPE")?
        } else {
            break;
        };
        rest = &rest[next..];
    }
    let after = rest.strip_prefix("<svg").ok_or("the root element is not <svg>")?;
    if !after.starts_with(|c: char| c.is_whitespace() || c == '>' || c == '/') {
        return Err("the root element is not <svg>".into());
    }
    let close = tag_end(after).ok_or("unterminated <svg> tag")?;
    let (inner, self_closing) = match after[..close].trim_end().strip_suffix('/') {
        Some(inner) => (inner, true),
        None => (&after[..close], false),
    };
    let attrs = parse_attrs(inner)?;
    let get = |name: &str| attrs.iter().find(|(n, _, _)| n == name).map(|(_, _, v)| v.as_str());
    let px = |v: Option<&str>| {
        v.and_then(|v| v.trim().trim_end_matches("px").trim().parse::<f64>().ok()).filter(|x| *x > 0.0)
    };
    let view_box = match (get("viewBox"), px(get("width")), px(get("height"))) {
        (Some(_), _, _) => None,
        (None, Some(w), Some(h)) => Some(format!("0 0 {w} {h}")),
        // Neither a viewBox nor numeric dimensions: leave the tag alone rather than break the drawing.
        (None, _, _) => return Ok(format!("<svg{}", after.trim_end())),
    };
    let mut tag = String::from("<svg");
    for (name, raw, _) in &attrs {
        if name != "width" && name != "height" {
            tag += &format!(" {raw}");
        }
    }
    if let Some(vb) = view_box {
        tag += &format!(" viewBox=\"{vb}\"");
    }
    tag += " width=\"100%\"";
    if get("role").is_none() {
        tag += " role=\"img\"";
    }
    if get("aria-label").is_none() {
        tag += &format!(" aria-label=\"{}\"", esc(title));
    }
    tag += if self_closing { "/>" } else { ">" };
    Ok(format!("{tag}{}", after[close + 1..].trim_end()))
}

/// Byte index just past a `<!DOCTYPE …>`, skipping an internal subset in `[…]`.
fn doctype_end(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            '>' if depth == 0 => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// Index of the `>` closing a start tag, ignoring `>` inside quoted attribute values.
fn tag_end(s: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '>') => return Some(i),
            _ => {}
        }
    }
    None
}

/// Attributes of a start tag as (name, raw text `name="value"`, unquoted value).
fn parse_attrs(s: &str) -> Result<Vec<(String, String, String)>, String> {
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let name_len = rest.find(|c: char| c.is_whitespace() || c == '=').unwrap_or(rest.len());
        let name = &rest[..name_len];
        if name.is_empty() {
            return Err(format!("malformed attribute near {:?}", rest.chars().take(20).collect::<String>()));
        }
        let after_name = rest[name_len..].trim_start();
        let Some(value_part) = after_name.strip_prefix('=') else {
            // An attribute without a value.
            out.push((name.to_string(), name.to_string(), String::new()));
            rest = after_name;
            continue;
        };
        let value_part = value_part.trim_start();
        let (value, consumed) = match value_part.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let end = value_part[1..].find(q).ok_or_else(|| format!("unterminated value of {name}"))?;
                (&value_part[1..1 + end], end + 2)
            }
            _ => {
                let end = value_part.find(char::is_whitespace).unwrap_or(value_part.len());
                (&value_part[..end], end)
            }
        };
        let raw = format!("{name}=\"{}\"", value.replace('"', "&quot;"));
        out.push((name.to_string(), raw, value.to_string()));
        rest = value_part[consumed..].trim_start();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::{ModelInfo, ProtocolInfo};
    use super::*;

    const FIX: &str = "IMAGENET_VAL is not set: point it at the ImageNet 2012 validation folder (class folders), e.g.\n    export IMAGENET_VAL=/data/imagenet/val\n\nand convert the released Caffe weights first:\n    resnet-audit convert caffe ResNet-50-model.caffemodel --prototxt ResNet-50-deploy.prototxt --out weights/resnet50-caffe.safetensors";
    const ODD_ID: &str = "resnet50<b>&";

    fn measured(err: f64) -> Option<Measured> {
        Some(Measured { err, low: err - 0.38, high: err + 0.38 })
    }

    fn row(model: &str, protocol: &str, kind: ProtocolKind, setting: Option<&str>, top1: Option<f64>) -> ResultRow {
        ResultRow {
            experiment: "demo".into(),
            model: model.into(),
            protocol: protocol.into(),
            protocol_kind: kind,
            setting: setting.map(Into::into),
            protocol_summary: format!("{protocol} as configured"),
            top1: top1.and_then(measured),
            top5: top1.and_then(|t| measured(t / 3.0)),
            images: if top1.is_some() { 50_000 } else { 0 },
            skipped: 0,
            param_count_m: Some(25.6),
            gmacs_per_image: Some(4.0903),
            claimed_top1_err: None,
            claimed_top5_err: None,
            delta_top1: None,
            delta_top5: None,
            tolerance: None,
            claim_source: None,
            status: Status::Measured,
        }
    }

    fn claim(mut r: ResultRow, top1: Option<f64>, top5: Option<f64>, tolerance: f64) -> ResultRow {
        r.claimed_top1_err = top1;
        r.claimed_top5_err = top5;
        r.delta_top1 = top1.and_then(|c| Some(r.top1?.err - c));
        r.delta_top5 = top5.and_then(|c| Some(r.top5?.err - c));
        r.tolerance = Some(tolerance);
        r.claim_source = Some("https://github.com/KaimingHe/deep-residual-networks#results".into());
        let out = [r.delta_top1, r.delta_top5].iter().flatten().any(|d| d.abs() > tolerance);
        r.status = if out { Status::Drift } else { Status::Reproduced };
        r
    }

    fn sample() -> AuditReport {
        use ProtocolKind::*;
        let mut ensemble = claim(row("ensemble", "ensemble-top5", Ensemble, None, Some(18.0)), None, Some(5.70), 0.5);
        ensemble.gmacs_per_image = Some(1234.5);
        let mut not_run = row("resnet101", "fcn-multiscale", FullyConvolutional, None, None);
        not_run.status = Status::NotRun("FCN pooling needs pool5 stride 1: set `pool5: sliding` in the model".into());
        let mut caffe_row = row("resnet50-caffe", "center-crop", CenterCrop, None, None);
        caffe_row.experiment = "caffe-paper".into();
        caffe_row.status = Status::NotRun(FIX.into());
        let rows = vec![
            // 24.70 measured vs 24.58 claimed: delta +0.12, reproduced within 0.2.
            claim(row(ODD_ID, "center-crop", CenterCrop, None, Some(24.70)), Some(24.58), None, 0.2),
            claim(
                row(ODD_ID, "center-crop", CenterCrop, Some("interpolation=bicubic"), Some(24.10)),
                Some(24.58),
                None,
                0.2,
            ),
            claim(
                row(ODD_ID, "center-crop", CenterCrop, Some("interpolation=nearest"), Some(25.40)),
                Some(24.58),
                None,
                0.2,
            ),
            // 23.50 vs 22.85: drift.
            claim(row(ODD_ID, "ten-crop", TenCrop, None, Some(23.50)), Some(22.85), None, 0.2),
            row("resnet101", "ten-crop", TenCrop, None, Some(22.00)),
            ensemble,
            not_run,
            caffe_row,
        ];
        let model = |id: &str, sha: Option<&str>| ModelInfo {
            id: id.into(),
            architecture: "ResNet-50 v1.5 (torch pool)".into(),
            weights: "hf://timm/resnet50.tv_in1k".into(),
            sha256: sha.map(Into::into),
            input: "RGB, 0-1, mean/std torchvision".into(),
        };
        let protocol = |id: &str, kind, sweep: &[&str]| ProtocolInfo {
            id: id.into(),
            kind,
            summary: format!("{id}: resize shorter side 256 (bilinear), center 224"),
            sweep: sweep.iter().map(|s| s.to_string()).collect(),
        };
        AuditReport {
            title: "ResNet audit: demo & caffe".into(),
            generated_at: "2025-01-02T03:04:05Z".into(),
            software: "resnet-audit 0.1.0 (git 93bd70d)".into(),
            command: "resnet-audit audit experiments/demo.yaml experiments/caffe-paper.yaml --out report".into(),
            experiments: vec![
                ExperimentInfo {
                    name: "demo".into(),
                    copied_file: "experiments/demo.yaml".into(),
                    description: "Torchvision weights under the paper's protocols.".into(),
                    dataset: "class folders under data/val, 50000 images, 1000 classes".into(),
                    images: Some(50_000),
                    not_run: None,
                    models: vec![
                        model(ODD_ID, Some("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")),
                        model("resnet101", None),
                    ],
                    protocols: vec![
                        protocol("center-crop", CenterCrop, &["interpolation=bicubic", "interpolation=nearest"]),
                        protocol("ten-crop", TenCrop, &[]),
                        protocol("fcn-multiscale", FullyConvolutional, &[]),
                        protocol("ensemble-top5", Ensemble, &[]),
                    ],
                    notes: vec!["Mean image: per-channel mean of ResNet_mean.binaryproto.".into()],
                    paired: vec!["resnet50: center-crop vs ten-crop: 812 vs 641 discordant, p = 0.003".into()],
                },
                ExperimentInfo {
                    name: "caffe-paper".into(),
                    copied_file: "experiments/caffe-paper.yaml".into(),
                    description: "The released Caffe models against the paper's tables.".into(),
                    dataset: "ImageNet 2012 validation ($IMAGENET_VAL)".into(),
                    images: None,
                    not_run: Some(FIX.into()),
                    models: vec![model("resnet50-caffe", None)],
                    protocols: vec![protocol("center-crop", CenterCrop, &[])],
                    notes: vec![],
                    paired: vec![],
                },
            ],
            rows,
            charts: vec![
                ChartFiles {
                    title: "Claimed vs measured".into(),
                    caption: "Each point is one row; the diagonal is perfect agreement.".into(),
                    png: "claimed-vs-measured.png".into(),
                    svg: "claimed-vs-measured.svg".into(),
                },
                ChartFiles {
                    title: "Protocol ladder".into(),
                    caption: "Top-1 error from (i) to (iv).".into(),
                    png: "ladder.png".into(),
                    svg: "ladder.svg".into(),
                },
            ],
        }
    }

    /// Fake plotters-like SVGs: XML prolog, fixed width/height, no viewBox.
    fn write_svgs(dir: &Path) {
        for (name, w, h) in [("claimed-vs-measured.svg", 800, 500), ("ladder.svg", 900, 450)] {
            let svg = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg width=\"{w}\" height=\"{h}\" xmlns=\"http://www.w3.org/2000/svg\">\n\
                 <rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"#FFFFFF\" stroke=\"#000000\"/>\n\
                 <rect x=\"80\" y=\"60\" width=\"{}\" height=\"{}\" fill=\"#4C72B0\"/>\n\
                 <text x=\"40\" y=\"40\" font-size=\"24\">{name} (top-1 &amp; top-5)</text>\n</svg>\n",
                w / 3,
                h / 2
            );
            std::fs::write(dir.join(name), svg).expect("write fake svg");
        }
    }

    fn written(dir: &Path) -> (String, String) {
        let report = sample();
        let md_path = write_markdown(&report, dir).expect("markdown");
        let html_path = write_html(&report, dir).expect("html");
        assert_eq!(md_path, dir.join("report.md"));
        assert_eq!(html_path, dir.join("report.html"));
        (std::fs::read_to_string(md_path).expect("read md"), std::fs::read_to_string(html_path).expect("read html"))
    }

    #[test]
    fn writes_both_files_without_leftover_temporaries() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_svgs(dir.path());
        written(dir.path());
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["claimed-vs-measured.svg", "ladder.svg", "report.html", "report.md"]);
    }

    #[test]
    fn html_is_self_contained_with_scalable_inline_svgs() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_svgs(dir.path());
        let (_, html) = written(dir.path());
        for banned in ["src=", "<link", "@import", "url(", "<script", "<?xml"] {
            assert!(!html.contains(banned), "found {banned}");
        }
        // Web addresses only as plain links in text (<a href>), never as resources.
        for (i, _) in html.match_indices("href=\"http") {
            let tag_start = html[..i].rfind('<').expect("inside a tag");
            assert!(html[tag_start..].starts_with("<a "), "non-link reference at {i}");
        }
        let svg_tags: Vec<&str> =
            html.match_indices("<svg").map(|(i, _)| &html[i..i + html[i..].find('>').expect("tag end")]).collect();
        assert_eq!(svg_tags.len(), 2);
        assert!(svg_tags[0].contains("viewBox=\"0 0 800 500\""), "{}", svg_tags[0]);
        assert!(svg_tags[1].contains("viewBox=\"0 0 900 450\""), "{}", svg_tags[1]);
        for tag in &svg_tags {
            assert!(tag.contains("width=\"100%\"") && !tag.contains("height="), "{tag}");
        }
        assert!(html.contains("<figure>") && html.contains("<figcaption>"));
        assert!(html.contains("</svg>"));
    }

    #[test]
    fn html_escapes_text_and_shows_fix_and_drift() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_svgs(dir.path());
        let (_, html) = written(dir.path());
        assert!(html.contains("resnet50&lt;b&gt;&amp;"));
        assert!(!html.contains(ODD_ID));
        assert!(html.contains("<title>ResNet audit: demo &amp; caffe</title>"));
        assert!(html.contains("the paper&#39;s protocols"));
        // The fix verbatim (escaped only for HTML), in a <pre> inside the not-run box.
        assert!(html.contains(&format!("<pre><code>{}</code></pre>", esc(FIX))));
        assert!(html.contains("class=\"not-run-box\""));
        assert!(esc(FIX).contains("IMAGENET_VAL") && esc(FIX).contains("resnet-audit convert caffe "));
        // The drift row: listed up front and coloured in its table.
        assert!(html.contains("<td class=\"status drift\">drift</td>"));
        assert!(html.contains("ten-crop: top-1 23.50 vs claimed 22.85 (Δ +0.65)"));
        assert!(html.contains("<td class=\"status reproduced\">reproduced</td>"));
        assert!(html.contains("<td class=\"status measured\">measured</td>"));
        assert!(html.contains("<td class=\"status notrun\">not run<span class=\"why\">"));
        // The SHA shortened, the full one in a title.
        assert!(html.contains(
            "<code title=\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\">0123456789ab</code>"
        ));
    }

    #[test]
    fn markdown_has_tables_numbers_and_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_svgs(dir.path());
        let (md, _) = written(dir.path());
        assert!(md.contains(
            "| model | protocol | setting | top-1 err % [95% CI] | top-5 err % [95% CI] | claimed top-1 / top-5 \
             | Δ top-1 / top-5 | tolerance | status | images | skipped | GMACs/image | source |"
        ));
        let reproduced = "| resnet50\\<b>& | (i) center-crop | as written | 24.70 [24.32, 25.08] | 8.23 [7.85, 8.61] \
                          | 24.58 / — | +0.12 / — | ±0.20 | reproduced |";
        assert!(md.contains(reproduced), "{md}");
        assert!(md.contains("| 50,000 | 0 | 4.09 |"));
        assert!(md.contains("| — / 5.70 | — / +0.30 | ±0.50 | reproduced |"), "ensemble row");
        assert!(md.contains("| 1230 |"), "GMACs to 3 significant digits");
        assert!(md.contains("![Claimed vs measured](claimed-vs-measured.png)"));
        assert!(md.contains("([SVG](claimed-vs-measured.svg))"));
        assert!(md.contains("### Experiment [demo](experiments/demo.yaml)"));
        assert!(md.contains(&format!("```text\n{FIX}\n```")));
        assert!(md.contains("**3** drift"));
        assert!(md.contains("band 24.10–25.40 top-1 error over the protocol as written and its 2 sweep settings"));
        assert!(md.contains("Claimed 24.58 lies inside the band."));
    }

    #[test]
    fn sweep_bands_min_max_and_claim_position() {
        use ProtocolKind::*;
        let mut rows = sample().rows;
        // A second sweep whose claim lies below the band, and a sweep setting that was not run.
        rows.push(claim(
            row("resnet101", "ten-crop", TenCrop, Some("scores=logits"), Some(22.3)),
            Some(21.75),
            None,
            0.2,
        ));
        rows.push(claim(
            row("resnet101", "ten-crop", TenCrop, Some("corners=square"), Some(22.1)),
            Some(21.75),
            None,
            0.2,
        ));
        rows.push(row("resnet101", "ten-crop", TenCrop, Some("flip=off"), None));
        let bands = sweep_bands(&rows);
        assert_eq!(bands.len(), 2);
        let a = &bands[0];
        assert_eq!((a.model.as_str(), a.protocol.as_str()), (ODD_ID, "center-crop"));
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
        assert!(b.sentence().contains("lies outside the band (below it)"));
        // No claim anywhere: no verdict.
        let mut bare = rows.clone();
        bare.iter_mut().for_each(|r| r.claimed_top1_err = None);
        assert_eq!(sweep_bands(&bare)[0].claim_inside, None);
        // A claim recorded to two decimals sits at the band's edge it rounds, not outside it.
        let edge = |claimed: f64| {
            vec![
                claim(row("m", "cc", CenterCrop, None, Some(58.666_666)), Some(claimed), None, 0.5),
                row("m", "cc", CenterCrop, Some("interpolation=bicubic"), Some(57.17)),
            ]
        };
        assert_eq!(sweep_bands(&edge(58.67))[0].claim_inside, Some(true));
        assert_eq!(sweep_bands(&edge(58.68))[0].claim_inside, Some(false));
    }

    #[test]
    fn missing_svg_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_svgs(dir.path());
        std::fs::remove_file(dir.path().join("ladder.svg")).expect("remove");
        let err = write_html(&sample(), dir.path()).expect_err("must fail");
        assert!(matches!(err, DocumentError::ReadSvg { .. }));
        assert!(err.to_string().contains("ladder.svg"), "{err}");
        assert!(!dir.path().join("report.html").exists());
    }

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

    #[test]
    fn svg_inlining_keeps_viewbox_and_rejects_non_svg() {
        let kept =
            inline_svg("<!-- made by hand -->\n<svg viewBox='0 0 10 5' width=\"10\" height=\"5\"><g/></svg>", "t")
                .expect("svg");
        assert!(
            kept.starts_with("<svg viewBox=\"0 0 10 5\" width=\"100%\" role=\"img\" aria-label=\"t\"><g/></svg>"),
            "{kept}"
        );
        let doctype = "<?xml version=\"1.0\"?><!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"x.dtd\"><svg width=\"4px\" height=\"2\"/>";
        assert_eq!(
            inline_svg(doctype, "a\"b").expect("svg"),
            "<svg viewBox=\"0 0 4 2\" width=\"100%\" role=\"img\" aria-label=\"a&quot;b\"/>"
        );
        assert!(inline_svg("<html></html>", "t").is_err());
        assert!(inline_svg("<svgx/>", "t").is_err());
    }

    /// Writes the sample report to $REPORT_PREVIEW_DIR (default /tmp/report-preview) for a look in a
    /// browser: `cargo test --release --lib report::document -- --ignored`.
    #[test]
    #[ignore]
    fn preview() {
        let dir =
            std::env::var_os("REPORT_PREVIEW_DIR").map(PathBuf::from).unwrap_or_else(|| "/tmp/report-preview".into());
        std::fs::create_dir_all(&dir).expect("preview dir");
        write_svgs(&dir);
        written(&dir);
    }
}
