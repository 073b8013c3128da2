//! The label-set section: per model and protocol, the error under an experiment's first label
//! set (usually `original`) beside its error under each other label set (`real`, a class
//! subset), with how many images each scored. Both numbers come from the audit's rows; nothing
//! is computed here. Shown only when some experiment names more than one label set.

use super::format::{fmt_count, fmt_err, MISSING};
use super::html::esc;
use crate::report::{AuditReport, ResultRow};

const HEADER: [&str; 9] = [
    "experiment",
    "model",
    "protocol",
    "labels",
    "top-1 err %",
    "under",
    "top-1 err %",
    "top-5 err %",
    "images scored (left out)",
];
const NUMERIC: [usize; 4] = [4, 6, 7, 8];

const INTRO: &str = "Each result re-scored under the experiment's other label sets, from the same stored \
     predictions (no model is run again). `real`: ImageNet-ReaL (Beyer et al. 2020), a prediction is \
     correct when it is in the image's list of correct classes, and images whose list is empty are left \
     out; top-5 counts any of the five best in the list. `subset:…`: the model's outputs restricted to \
     the subset's classes before ranking (timm's `valid_labels`).";

/// Rows under another label set that have no error (not run, empty): counted, not listed, since
/// their main rows already say why.
fn unmeasured(report: &AuditReport) -> usize {
    report.label_rows.iter().filter(|r| r.setting.is_none() && r.top1.is_none()).count()
}

/// The sentence about [`unmeasured`] rows; empty when there are none.
fn unmeasured_sentence(report: &AuditReport) -> String {
    match unmeasured(report) {
        0 => String::new(),
        n => format!(
            "{} row{} under other label sets {} no error (not run or empty); the main rows say why.",
            fmt_count(n),
            if n == 1 { "" } else { "s" },
            if n == 1 { "has" } else { "have" }
        ),
    }
}

/// One line per measured row under another label set, with its main row's top-1 error beside it.
fn lines(report: &AuditReport) -> Vec<[String; 9]> {
    report
        .label_rows
        .iter()
        .filter(|r| r.setting.is_none() && r.top1.is_some())
        .map(|other| {
            let main: Option<&ResultRow> = report.rows.iter().find(|r| {
                (r.experiment.as_str(), r.model.as_str(), r.protocol.as_str())
                    == (other.experiment.as_str(), other.model.as_str(), other.protocol.as_str())
                    && r.setting.is_none()
            });
            let scored = format!("{} ({})", fmt_count(other.images), fmt_count(other.labels_excluded));
            [
                other.experiment.clone(),
                other.model.clone(),
                format!("{} {}", other.protocol_kind.numeral(), other.protocol),
                main.map_or_else(|| MISSING.to_string(), |m| m.labels.clone()),
                fmt_err(main.and_then(|m| m.top1).map(|m| m.err)),
                other.labels.clone(),
                fmt_err(other.top1.map(|m| m.err)),
                fmt_err(other.top5.map(|m| m.err)),
                scored,
            ]
        })
        .collect()
}

/// Markdown text without its special characters.
fn md_text(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '|' | '\\' | '*' | '_' | '`' | '[' | ']' | '<' | '>' => vec!['\\', c],
            '\n' | '\r' => vec![' '],
            c => vec![c],
        })
        .collect()
}

/// The section for `report.md`; empty when no experiment names a second label set.
pub(super) fn markdown(report: &AuditReport) -> String {
    let lines = lines(report);
    if lines.is_empty() && unmeasured(report) == 0 {
        return String::new();
    }
    // The introduction is a constant written as Markdown already.
    let mut s = format!("\n## Label sets\n\n{INTRO}\n\n");
    if unmeasured(report) > 0 {
        s += &format!("{}\n\n", unmeasured_sentence(report));
    }
    if lines.is_empty() {
        return s;
    }
    s += &format!("| {} |\n|", HEADER.join(" | "));
    for i in 0..HEADER.len() {
        s += if NUMERIC.contains(&i) { " ---: |" } else { " --- |" };
    }
    s.push('\n');
    for line in &lines {
        s += &format!("| {} |\n", line.iter().map(|c| md_text(c)).collect::<Vec<_>>().join(" | "));
    }
    s
}

/// Escaped text whose backquoted parts become `<code>` (the introduction is written as Markdown).
fn html_code_spans(text: &str) -> String {
    text.split('`')
        .enumerate()
        .map(|(i, part)| if i % 2 == 1 { format!("<code>{}</code>", esc(part)) } else { esc(part) })
        .collect()
}

/// The section for `report.html`; empty when no experiment names a second label set.
pub(super) fn html(report: &AuditReport) -> String {
    let lines = lines(report);
    if lines.is_empty() && unmeasured(report) == 0 {
        return String::new();
    }
    let mut s = format!("\n<section id=\"label-sets\">\n<h2>Label sets</h2>\n<p>{}</p>\n", html_code_spans(INTRO));
    if unmeasured(report) > 0 {
        s += &format!("<p>{}</p>\n", esc(&unmeasured_sentence(report)));
    }
    if lines.is_empty() {
        return s + "</section>\n";
    }
    s += "<div class=\"table-wrap\"><table class=\"stack\">\n<thead><tr>";
    for (i, h) in HEADER.iter().enumerate() {
        let class = if NUMERIC.contains(&i) { " class=\"num\"" } else { "" };
        s += &format!("<th{class}>{}</th>", esc(h));
    }
    s += "</tr></thead>\n<tbody>\n";
    for line in &lines {
        s += "<tr>";
        for (i, cell) in line.iter().enumerate() {
            let class = if NUMERIC.contains(&i) { " class=\"num\"" } else { "" };
            s += &format!("<td{class} data-label=\"{}\">{}</td>", esc(HEADER[i]), esc(cell));
        }
        s += "</tr>\n";
    }
    s += "</tbody></table></div>\n</section>\n";
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Measured, ProtocolKind, Status};

    fn row(labels: &str, top1: f64, images: usize, excluded: usize) -> ResultRow {
        let mut r =
            ResultRow::blank("imagenet", "r50", "center-crop", ProtocolKind::CenterCrop, "s".into(), Status::Measured);
        r.labels = labels.into();
        r.top1 = Some(Measured { err: top1, low: top1 - 0.3, high: top1 + 0.3 });
        r.top5 = Some(Measured { err: top1 / 3.0, low: 0.0, high: 100.0 });
        r.images = images;
        r.labels_excluded = excluded;
        r
    }

    fn report(label_rows: Vec<ResultRow>) -> AuditReport {
        AuditReport {
            title: "t".into(),
            generated_at: "g".into(),
            software: "s".into(),
            command: "c".into(),
            runtime: "cpu, f32, backend fast".into(),
            experiments: Vec::new(),
            rows: vec![row("original", 23.85, 50_000, 0)],
            label_rows,
            bands: Vec::new(),
            charts: Vec::new(),
            image_by_image: Vec::new(),
        }
    }

    #[test]
    fn original_and_real_errors_stand_side_by_side() {
        let report = report(vec![row("real", 17.12, 46_837, 3_163)]);
        let md = markdown(&report);
        assert!(md.contains("## Label sets"), "{md}");
        assert!(
            md.contains(
                "| imagenet | r50 | (i) center-crop | original | 23.85 | real | 17.12 | 5.71 | 46,837 (3,163) |"
            ),
            "{md}"
        );
        let html = html(&report);
        assert!(html.contains("<td class=\"num\" data-label=\"top-1 err %\">17.12</td>"), "{html}");
        assert!(html.contains("46,837 (3,163)"), "{html}");
        assert!(html.contains("<code>real</code>: ImageNet-ReaL") && !html.contains('`'), "{html}");
    }

    #[test]
    fn rows_without_an_error_are_counted_not_listed() {
        let mut not_run = row("real", 0.0, 0, 0);
        not_run.top1 = None;
        not_run.status = Status::NotRun("IMAGENET_VAL is not set".into());
        let report = report(vec![not_run.clone(), not_run]);
        let md = markdown(&report);
        assert!(md.contains("2 rows under other label sets have no error"), "{md}");
        assert!(!md.contains("IMAGENET_VAL") && !md.contains("| --- |"), "{md}");
        assert!(html(&report).ends_with("</section>\n"));
    }

    #[test]
    fn no_other_label_set_no_section() {
        assert_eq!(markdown(&report(Vec::new())), "");
        assert_eq!(html(&report(Vec::new())), "");
    }
}
