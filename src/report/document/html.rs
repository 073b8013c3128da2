//! `report.html`: one self-contained page (the style sheet `report.css` inline, the charts'
//! SVGs inlined by the caller), with the same facts as `report.md`.

use super::format::{
    anchor, band_sentence, drift_text, fmt_count, not_run_reason, reading_guide, row_cells, short_sha, status_class,
    status_counts, COL_SOURCE, COL_STATUS, MISSING, RESULT_HEADER_HTML, RESULT_NUMERIC, STATUS_NAMES,
};
use super::{experiment_views, ExperimentView};
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

/// The whole `report.html`; `svgs` are the charts' inlined SVG elements, in `report.charts` order.
pub(super) fn html(report: &AuditReport, svgs: &[String]) -> String {
    let mut s = String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    s += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
    s += &format!("<title>{}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n<main>\n", esc(&report.title));

    s += &format!("<header>\n<h1>{}</h1>\n", esc(&report.title));
    s += &format!(
        "<p class=\"meta\">Generated {} by {}.</p>\n<p>Command line:</p>\n<pre><code>{}</code></pre>\n</header>\n",
        esc(&report.generated_at),
        esc(&report.software),
        esc(report.command.trim_end())
    );

    s += "\n<section id=\"how-to-read\">\n<h2>How to read this report</h2>\n<p>";
    s += &reading_guide(esc, |class, word| format!("<span class=\"badge {class}\">{word}</span>"));
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
    let drift: Vec<&ResultRow> =
        report.rows.iter().filter(|r| matches!(r.status, Status::Drift | Status::Regressed)).collect();
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
