//! `report.html`: one self-contained page (the style sheet `report.css` inline, the charts'
//! SVGs inlined by the caller), with the same facts as `report.md`.

use super::format::{
    anchor, band_sentence, bottom_line, drift_text, fmt_count, note_name, reading_guide, row_cells, short_sha,
    side_counts, status_class, status_counts, status_name, sweep_note, Count, NotRunNote, Side, COL_CLAIMED,
    COL_PROTOCOL, COL_STATUS, MISSING, RESULT_HEADER, RESULT_NUMERIC, STATUS_ORDER,
};
use super::{experiment_views, written_rows, ExperimentView, SIDES};
use crate::report::{AuditReport, ResultRow, Status};

/// The page's style sheet, kept as a CSS file so that it reads (and diffs) as CSS.
const CSS: &str = include_str!("report.css");

/// Text and attribute values: the five characters HTML gives meaning to.
pub(super) fn esc(s: &str) -> String {
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

/// One table cell: its inner markup (already escaped) and CSS classes.
struct Cell {
    html: String,
    class: &'static str,
}

impl Cell {
    fn new(html: String, class: &'static str) -> Self {
        Self { html, class }
    }
    /// Escaped plain text.
    fn text(text: &str) -> Self {
        Self::new(esc(text), "")
    }
}

/// A table that fits its page: on a wide screen an ordinary table; on a phone (report.css,
/// below 700 px) every row becomes a card of `label: value` lines, the label taken from each
/// cell's `data-label`, so nothing needs sideways scrolling. `header`: plain text; `numeric`:
/// right-aligned columns; `rows`: (row class, cells).
fn html_table(header: &[&str], numeric: &[usize], rows: &[(&str, Vec<Cell>)]) -> String {
    let mut s = "<div class=\"table-wrap\"><table class=\"stack\">\n<thead><tr>".to_string();
    for (i, h) in header.iter().enumerate() {
        let class = if numeric.contains(&i) { " class=\"num\"" } else { "" };
        s += &format!("<th{class}>{}</th>", esc(h));
    }
    s += "</tr></thead>\n<tbody>\n";
    for (row_class, cells) in rows {
        s += &if row_class.is_empty() { "<tr>".to_string() } else { format!("<tr class=\"{row_class}\">") };
        for (i, cell) in cells.iter().enumerate() {
            let mut classes: Vec<&str> = Vec::new();
            if numeric.contains(&i) {
                classes.push("num");
            }
            if !cell.class.is_empty() {
                classes.push(cell.class);
            }
            let class = if classes.is_empty() { String::new() } else { format!(" class=\"{}\"", classes.join(" ")) };
            let label = header.get(i).filter(|h| !h.is_empty()).map(|h| format!(" data-label=\"{}\"", esc(h)));
            s += &format!("<td{class}{}>{}</td>", label.unwrap_or_default(), cell.html);
        }
        s += "</tr>\n";
    }
    s += "</tbody></table></div>\n";
    s
}

/// The whole `report.html`; `svgs` are the charts' inlined SVG elements, in `report.charts` order.
pub(super) fn html(report: &AuditReport, svgs: &[String]) -> String {
    let mut s = String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    s += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
    s += &format!("<title>{}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n<main>\n", esc(&report.title));

    let views = experiment_views(report);
    s += &format!("<header>\n<h1>{}</h1>\n", esc(&report.title));
    s += &format!("<p class=\"meta\">Generated {} by {}.</p>\n", esc(&report.generated_at), esc(&report.software));
    // The verdict before anything else: what a reader needs in ten seconds.
    s += &html_verdict(report, &views);
    s += &format!("<p>Command line:</p>\n<pre><code>{}</code></pre>\n</header>\n", esc(report.command.trim_end()));

    s += "\n<section id=\"how-to-read\">\n<h2>How to read this report</h2>\n<p>";
    s += &reading_guide(esc, |class, word| format!("<span class=\"badge {class}\">{word}</span>"));
    s += "</p>\n</section>\n";

    s += &html_summary(report, &views);

    s += "\n<section id=\"charts\">\n<h2>Charts</h2>\n";
    if report.charts.is_empty() {
        s += "<p>No charts were written.</p>\n";
    }
    for (chart, svg) in report.charts.iter().zip(svgs) {
        s += &format!(
            // The chart draws its own title: no heading above it (the title once). It shrinks to
            // the frame's width (report.css); the PNG and SVG links give it full size.
            "<figure aria-label=\"{}\">\n<div class=\"chart\">{svg}</div>\n<figcaption>{} Files: <a href=\"{}\">PNG</a>, <a href=\"{}\">SVG</a>.</figcaption>\n</figure>\n",
            esc(&chart.title),
            esc(chart.caption.trim()),
            esc(&chart.png),
            esc(&chart.svg)
        );
    }
    s += "</section>\n";

    s += &super::labels::html(report);

    s += "\n<section id=\"experiments\">\n<h2>Experiments</h2>\n";
    for view in &views {
        s += &html_experiment(view);
    }
    s += "</section>\n";
    s += &super::image_by_image::html(&report.image_by_image);

    s += "\n<footer>\n<h2>How to reproduce</h2>\n<p>Run, from the same working directory:</p>\n";
    s += &format!("<pre><code>{}</code></pre>\n", esc(report.command.trim_end()));
    let runtime =
        if report.runtime.is_empty() { String::new() } else { format!(" Runtime: {}.", esc(&report.runtime)) };
    s += &format!(
        "<p>Software: {}. Generated {}.{runtime}</p>\n</footer>\n</main>\n</body>\n</html>\n",
        esc(&report.software),
        esc(&report.generated_at)
    );
    s
}

/// Counts as badges: `<span class="badge baseline"><strong>21</strong> hold</span>`.
fn count_badges(counts: &[Count]) -> String {
    let badges: Vec<String> = counts
        .iter()
        .map(|c| format!("<span class=\"badge {}\"><strong>{}</strong> {}</span>", c.class, c.n, esc(c.words)))
        .collect();
    badges.join(" ")
}

/// The verdict box: the bottom line, the counts of published claims and of recorded baselines
/// apart, then per experiment its question, the published claims tested with their result, those
/// not run with their fix, and its baselines.
fn html_verdict(report: &AuditReport, views: &[ExperimentView]) -> String {
    let written = written_rows(report);
    let mut s = "<section id=\"verdict\" class=\"verdict\" aria-labelledby=\"verdict-title\">\n".to_string();
    s += "<h2 id=\"verdict-title\">Verdict</h2>\n";
    s += &format!("<p class=\"bottom-line\">{}</p>\n<ul class=\"sides\">\n", esc(&bottom_line(&written)));
    for (side, title, gloss) in SIDES {
        let counts = side_counts(written.iter().copied(), side);
        if !counts.is_empty() {
            s += &format!(
                "<li><strong>{title}</strong> <span class=\"gloss\">({})</span>: {}</li>\n",
                esc(gloss),
                count_badges(&counts)
            );
        }
    }
    if let Some(note) = sweep_note(&report.rows) {
        s += &format!("<li class=\"gloss\">{}</li>\n", esc(&note));
    }
    if written.is_empty() {
        s += "<li>No result rows.</li>\n";
    }
    s += "</ul>\n";
    for view in views {
        let verdict = view.verdict();
        let id = anchor(&verdict.name);
        s += &format!("<div class=\"verdict-exp\">\n<p><a href=\"#{id}\"><code>{}</code></a>", esc(&verdict.name));
        if !verdict.question.is_empty() {
            s += &format!(": <span class=\"question\">{}</span>", esc(&verdict.question));
        }
        s += "</p>\n<ul>\n";
        for t in &verdict.tested {
            let judged = if matches!(t.status, Status::Subset(_)) { " (not judged)" } else { "" };
            s += &format!(
                "<li><span class=\"badge {}\">{}</span>{judged} {}: {}</li>\n",
                status_class(&t.status),
                esc(&t.status.label()),
                esc(&t.what),
                esc(&t.numbers)
            );
        }
        for n in &verdict.not_run {
            let link = match (n.notes.first(), n.notes_name()) {
                (Some(first), Some(name)) => format!(" <a href=\"#{id}-fix-{first}\">({name})</a>"),
                _ if n.more => format!(" <a href=\"#{id}\">(full text)</a>"),
                _ => String::new(),
            };
            s += &format!(
                "<li><span class=\"badge notrun\">not run</span> {}. Fix: <code class=\"fix\">{}</code>{link}</li>\n",
                esc(&n.what()),
                esc(&n.fix)
            );
        }
        for (side, counts) in [(Side::Baseline, &verdict.baselines), (Side::Unclaimed, &verdict.unclaimed)] {
            if !counts.is_empty() {
                let title = if side == Side::Baseline { "Recorded baselines" } else { "Without a claim" };
                s += &format!("<li>{title}: {}</li>\n", count_badges(counts));
            }
        }
        if verdict.tested.is_empty()
            && verdict.not_run.is_empty()
            && verdict.baselines.is_empty()
            && verdict.unclaimed.is_empty()
        {
            s += "<li>No result rows.</li>\n";
        }
        s += "</ul>\n</div>\n";
    }
    s += "</section>\n";
    s
}

fn html_summary(report: &AuditReport, views: &[ExperimentView]) -> String {
    let counts = status_counts(&report.rows);
    // Reproduced and drift always (zero is news), other statuses when they occur.
    let shown: Vec<usize> = (0..STATUS_ORDER.len()).filter(|&i| i < 2 || counts[i] > 0).collect();
    let mut s = "\n<section id=\"summary\">\n<h2>Summary</h2>\n".to_string();
    s += &format!("<p>{} result rows:</p>\n<ul class=\"counts\">\n", report.rows.len());
    for &i in &shown {
        let word = STATUS_ORDER[i];
        s += &format!(
            "<li><strong>{}</strong> <span class=\"badge {}\">{}</span></li>\n",
            counts[i],
            if word == "not-run" { "notrun" } else { word },
            status_name(word)
        );
    }
    s += "</ul>\n";
    for (status, title, none) in [
        (Status::Drift, "Drift from a published claim", "No published claim drifts."),
        (Status::Regressed, "Regressed from a recorded baseline", "No recorded baseline regressed."),
    ] {
        let listed: Vec<&ResultRow> = report.rows.iter().filter(|r| r.status == status).collect();
        if listed.is_empty() {
            s += &format!("<p>{none}</p>\n");
            continue;
        }
        s += &format!(
            "<p><strong>{title}</strong> ({} row{} outside tolerance):</p>\n<ul class=\"drift-list\">\n",
            listed.len(),
            if listed.len() == 1 { "" } else { "s" }
        );
        for r in listed {
            s += &format!(
                "<li><a href=\"#{}\">{}</a> · {}</li>\n",
                anchor(&r.experiment),
                esc(&r.experiment),
                esc(&drift_text(r))
            );
        }
        s += "</ul>\n";
    }
    let mut rows = Vec::new();
    for v in views {
        let ran = match v.info {
            Some(i) if i.not_run.is_some() => Cell::new("<span class=\"badge notrun\">not run</span>".into(), ""),
            Some(_) => Cell::text("ran"),
            None => Cell::text(MISSING),
        };
        let mut cells = vec![
            Cell::new(format!("<a href=\"#{}\">{}</a>", anchor(v.name), esc(v.name)), ""),
            ran,
            Cell::text(&v.rows.len().to_string()),
        ];
        let c = status_counts(v.rows.iter().copied());
        cells.extend(shown.iter().map(|&i| Cell::text(&c[i].to_string())));
        rows.push(("", cells));
    }
    if !views.is_empty() {
        let mut header = vec!["experiment", "run", "rows"];
        header.extend(shown.iter().map(|&i| status_name(STATUS_ORDER[i])));
        let numeric: Vec<usize> = (2..header.len()).collect();
        s += &html_table(&header, &numeric, &rows);
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
            // The experiment's own reason gets a box even when no row carries it.
            if let Some(why) = info.not_run.as_deref().filter(|w| !view.notes.iter().any(|n| n.reason == w.trim())) {
                s += &not_run_box(view.name, None, why, "This experiment was not evaluated.");
            }
            if !info.models.is_empty() {
                s += "<h4>Models</h4>\n";
                let rows: Vec<(&str, Vec<Cell>)> = info
                    .models
                    .iter()
                    .map(|m| {
                        let sha = match &m.sha256 {
                            Some(full) => format!("<code title=\"{}\">{}</code>", esc(full), esc(&short_sha(full))),
                            None => MISSING.to_string(),
                        };
                        let cells = vec![
                            Cell::new(format!("<code>{}</code>", esc(&m.id)), "id"),
                            Cell::text(&m.architecture),
                            Cell::new(format!("<code>{}</code>", esc_or_link(&m.weights)), "wrap"),
                            Cell::new(sha, ""),
                            Cell::text(&m.input),
                        ];
                        ("", cells)
                    })
                    .collect();
                s += &html_table(&["id", "architecture", "weights", "SHA-256", "input"], &[], &rows);
            }
            if !info.protocols.is_empty() {
                s += "<h4>Protocols</h4>\n";
                let rows: Vec<(&str, Vec<Cell>)> = info
                    .protocols
                    .iter()
                    .map(|p| {
                        let sweep = if p.sweep.is_empty() {
                            MISSING.to_string()
                        } else {
                            p.sweep.iter().map(|x| format!("<code>{}</code>", esc(x))).collect::<Vec<_>>().join("<br>")
                        };
                        let id = format!("{} <code>{}</code>", p.kind.numeral(), esc(&p.id));
                        ("", vec![Cell::new(id, "id"), Cell::text(&p.summary), Cell::new(sweep, "")])
                    })
                    .collect();
                s += &html_table(&["protocol", "summary", "sweep settings"], &[], &rows);
            }
        }
        None => {
            s += &format!("<h3>Experiment <code>{}</code></h3>\n", esc(view.name));
            s += "<p>Not described in this report's experiment list; its rows follow.</p>\n";
        }
    }
    for (i, note) in view.notes.iter().enumerate() {
        let lead = if note.all_rows && view.info.is_some_and(|info| info.not_run.is_some()) {
            "This experiment was not evaluated.".to_string()
        } else {
            "Rows not run for this reason:".to_string()
        };
        s += &not_run_box(view.name, Some((i + 1, note)), &note.reason, &lead);
    }
    s += "<h4>Results</h4>\n";
    if view.rows.is_empty() {
        s += "<p>No result rows.</p>\n";
    } else {
        let source_ids = |n: usize| format!("{}-source-{n}", anchor(view.name));
        let note_ids = |n: usize| format!("{}-fix-{n}", anchor(view.name));
        let mut rows: Vec<(&str, Vec<Cell>)> = Vec::new();
        for r in &view.rows {
            let row = row_cells(r, &view.notes, &view.sources);
            let mut cells: Vec<Cell> = Vec::new();
            for (i, text) in row.cells.iter().enumerate() {
                cells.push(match i {
                    COL_PROTOCOL => {
                        let setting =
                            row.setting.as_ref().map(|s| format!("<span class=\"setting\">{}</span>", esc(s)));
                        Cell::new(format!("{}{}", esc(text), setting.unwrap_or_default()), "id")
                    }
                    COL_CLAIMED => {
                        let mark = row.source.map(|n| {
                            format!("<sup><a href=\"#{}\" title=\"source of the claim\">[{n}]</a></sup>", source_ids(n))
                        });
                        Cell::new(format!("{}{}", esc(text), mark.unwrap_or_default()), "")
                    }
                    COL_STATUS => {
                        let inner = match row.note {
                            Some(n) => format!("not run <a href=\"#{}\">({})</a>", note_ids(n), note_name(n)),
                            None => esc(text),
                        };
                        Cell::new(inner, status_cell_class(&r.status))
                    }
                    // The interval below the error, smaller: one cell, narrow column.
                    2 | 3 => match if i == 2 { r.top1.as_ref() } else { r.top5.as_ref() } {
                        Some(m) if m.err.is_finite() => Cell::new(
                            format!("{:.2} <span class=\"ci\">[{:.2}, {:.2}]</span>", m.err, m.low, m.high),
                            "",
                        ),
                        _ => Cell::text(MISSING),
                    },
                    0 => Cell::new(esc(text), "id"),
                    _ => Cell::text(text),
                });
            }
            rows.push((if row.sweep { "sweep" } else { "" }, cells));
        }
        s += &html_table(&RESULT_HEADER, &RESULT_NUMERIC, &rows);
        if !view.sources.is_empty() {
            s += "<ol class=\"sources\">\n";
            for (i, source) in view.sources.iter().enumerate() {
                s += &format!(
                    "<li id=\"{}\">{} {}</li>\n",
                    source_ids(i + 1),
                    esc(source.lead()),
                    esc_or_link(&source.text)
                );
            }
            s += "</ol>\n";
        }
    }
    if !view.bands.is_empty() {
        s += "<h4>Sensitivity sweeps</h4>\n";
        for (protocol, bands) in &view.bands {
            s += &format!("<p>Protocol <strong>{}</strong>:</p>\n<ul class=\"bands\">\n", esc(protocol));
            for b in bands {
                s += &format!("<li>{}</li>\n", esc(&band_sentence(b)));
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

/// The status cell's classes: `status` and the status's colour class.
fn status_cell_class(status: &Status) -> &'static str {
    match status {
        Status::Reproduced => "status reproduced",
        Status::Drift => "status drift",
        Status::Measured => "status measured",
        Status::Baseline => "status baseline",
        Status::Regressed => "status regressed",
        Status::Subset(_) => "status subset",
        Status::Empty(_) => "status empty",
        Status::NotRun(_) => "status notrun",
    }
}

/// A "not run" box: numbered when rows point at it (`fix 1`), with the rows it covers, and the
/// reason and fix verbatim.
fn not_run_box(experiment: &str, note: Option<(usize, &NotRunNote)>, why: &str, lead: &str) -> String {
    let (id, title) = match note {
        Some((n, _)) => (format!(" id=\"{}-fix-{n}\"", anchor(experiment)), format!("⚠ Not run ({})", note_name(n))),
        None => (String::new(), "⚠ Not run".to_string()),
    };
    let mut s =
        format!("<div class=\"not-run-box\" role=\"note\"{id}><strong>{title}</strong>\n<p>{}</p>\n", esc(lead));
    if let Some((_, note)) = note {
        if !note.all_rows || lead.starts_with("Rows") {
            s += "<ul class=\"covers\">\n";
            for line in &note.covers {
                s += &format!("<li>{}</li>\n", esc(line));
            }
            s += "</ul>\n";
        }
    }
    s += &format!("<p>Reason and fix:</p>\n<pre><code>{}</code></pre></div>\n", esc(why.trim_end()));
    s
}
