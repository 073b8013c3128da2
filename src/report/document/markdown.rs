//! `report.md`: CommonMark with GitHub tables; charts as PNG images with a link to the SVG.

use super::format::{
    anchor, band_sentence, bottom_line, drift_text, fmt_count, note_name, reading_guide, row_cells, short_sha,
    side_counts, status_counts, status_name, sweep_note, Side, COL_CLAIMED, COL_PROTOCOL, MISSING, RESULT_HEADER,
    RESULT_NUMERIC, STATUS_ORDER,
};
use super::{experiment_views, written_rows, ExperimentView, SIDES};
use crate::report::{AuditReport, ChartFiles, ResultRow, Status};

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

/// The whole `report.md`.
pub(super) fn markdown(report: &AuditReport) -> String {
    let views = experiment_views(report);
    let mut s = format!("# {}\n\n", md(&report.title));
    s += &format!("Generated {} by {}.\n\n", md(&report.generated_at), md(&report.software));
    // The verdict before anything else: what a reader needs in ten seconds.
    s += &md_verdict(report, &views);
    s += "\nCommand line:\n\n";
    s += &md_code_block(&report.command);

    s += "\n## How to read this report\n\n";
    s += &reading_guide(md, |_, word| format!("**{word}**"));
    s += "\n\n";

    s += &md_summary(report, &views);

    s += "\n## Charts\n\n";
    if report.charts.is_empty() {
        s += "No charts were written.\n";
    }
    for chart in &report.charts {
        s += &md_chart(chart);
    }

    s += &super::labels::markdown(report);

    s += "\n## Experiments\n";
    for view in &views {
        s += &md_experiment(view);
    }
    s += &super::image_by_image::markdown(&report.image_by_image, md);

    s += "\n---\n\n## How to reproduce\n\nRun, from the same working directory:\n\n";
    s += &md_code_block(&report.command);
    s += &format!("\nSoftware: {}. Generated {}.\n", md(&report.software), md(&report.generated_at));
    if !report.runtime.is_empty() {
        s += &format!("\nRuntime: {}.\n", md(&report.runtime));
    }
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

/// The verdict box (a block quote): the bottom line, the counts of published claims and of
/// recorded baselines apart, then per experiment its question, the published claims tested with
/// their result, those not run with their fix, and its baselines.
fn md_verdict(report: &AuditReport, views: &[ExperimentView]) -> String {
    let written = written_rows(report);
    let mut s = "## Verdict\n\n".to_string();
    s += &format!("**{}**\n\n", md(&bottom_line(&written)));
    for (side, title, gloss) in SIDES {
        let counts = side_counts(written.iter().copied(), side);
        if !counts.is_empty() {
            let parts: Vec<String> = counts.iter().map(|c| format!("**{}** {}", c.n, c.words)).collect();
            s += &format!("- {title} ({gloss}): {}.\n", parts.join(" · "));
        }
    }
    if let Some(note) = sweep_note(&report.rows) {
        s += &format!("- {}\n", md(&note));
    }
    if written.is_empty() {
        s += "- No result rows.\n";
    }
    for view in views {
        let verdict = view.verdict();
        s += &format!("\n**[{}](#{})**", md(&verdict.name), anchor(&verdict.name));
        if !verdict.question.is_empty() {
            s += &format!(": {}", md(&verdict.question));
        }
        s += "\n\n";
        for t in &verdict.tested {
            let judged = if matches!(t.status, Status::Subset(_)) { " (not judged)" } else { "" };
            s += &format!("- **{}**{judged} {}: {}\n", md(&t.status.label()), md(&t.what), md(&t.numbers));
        }
        for n in &verdict.not_run {
            let more = match n.notes_name() {
                Some(name) => format!(" (see {name} below)"),
                None if n.more => " (full text below)".to_string(),
                None => String::new(),
            };
            s += &format!("- **not run**, {}. Fix: {}{more}\n", md(&n.what()), md(&n.fix));
        }
        for (side, counts) in [(Side::Baseline, &verdict.baselines), (Side::Unclaimed, &verdict.unclaimed)] {
            if !counts.is_empty() {
                let title = if side == Side::Baseline { "Recorded baselines" } else { "Without a claim" };
                let parts: Vec<String> = counts.iter().map(|c| format!("**{}** {}", c.n, c.words)).collect();
                s += &format!("- {title}: {}.\n", parts.join(" · "));
            }
        }
        if verdict.tested.is_empty()
            && verdict.not_run.is_empty()
            && verdict.baselines.is_empty()
            && verdict.unclaimed.is_empty()
        {
            s += "- No result rows.\n";
        }
    }
    // A block quote: one box in any Markdown viewer.
    let quoted: Vec<String> =
        s.lines().map(|line| if line.is_empty() { ">".to_string() } else { format!("> {line}") }).collect();
    quoted.join("\n") + "\n"
}

fn md_summary(report: &AuditReport, views: &[ExperimentView]) -> String {
    let counts = status_counts(&report.rows);
    let mut s = "## Summary\n\n".to_string();
    // Reproduced and drift always (zero is news), other statuses when they occur.
    let shown: Vec<usize> = (0..STATUS_ORDER.len()).filter(|&i| i < 2 || counts[i] > 0).collect();
    let parts: Vec<String> =
        shown.iter().map(|&i| format!("**{}** {}", counts[i], status_name(STATUS_ORDER[i]))).collect();
    s += &format!("{} result rows: {}.\n\n", report.rows.len(), parts.join(", "));
    for (status, title, none) in [
        (Status::Drift, "Drift from a published claim", "No published claim drifts."),
        (Status::Regressed, "Regressed from a recorded baseline", "No recorded baseline regressed."),
    ] {
        let listed: Vec<&ResultRow> = report.rows.iter().filter(|r| r.status == status).collect();
        if listed.is_empty() {
            s += &format!("{none}\n\n");
            continue;
        }
        s += &format!(
            "**{title}** ({} row{} outside tolerance):\n\n",
            listed.len(),
            if listed.len() == 1 { "" } else { "s" }
        );
        for r in listed {
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
        row.extend(shown.iter().map(|&i| c[i].to_string()));
        table.push(row);
    }
    if !table.is_empty() {
        // Cells here are built above (links, numbers), so they bypass md_cell's escaping.
        let names: Vec<&str> = shown.iter().map(|&i| status_name(STATUS_ORDER[i])).collect();
        s += &format!("| experiment | run | rows | {} |\n| --- | --- | ---:", names.join(" | "));
        s += &" | ---:".repeat(names.len());
        s += " |\n";
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
            // The experiment's own reason, when no row carries it (rows' reasons are boxed below).
            if let Some(why) = info.not_run.as_deref().filter(|w| !view.notes.iter().any(|n| n.reason == w.trim())) {
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
    for (i, note) in view.notes.iter().enumerate() {
        let whole = note.all_rows && view.info.is_some_and(|info| info.not_run.is_some());
        s += &format!("> **⚠ Not run ({}).** ", note_name(i + 1));
        if whole {
            s += "This experiment was not evaluated.";
        } else {
            s += &format!("Rows: {}.", md(&note.covers.join("; ")));
        }
        s += " Reason and fix, verbatim:\n\n";
        s += &md_code_block(&note.reason);
        s.push('\n');
    }
    s += "#### Results\n\n";
    if view.rows.is_empty() {
        s += "No result rows.\n\n";
    } else {
        let rows: Vec<Vec<String>> = view
            .rows
            .iter()
            .map(|r| {
                let mut row = row_cells(r, &view.notes, &view.sources);
                if let Some(setting) = &row.setting {
                    row.cells[COL_PROTOCOL] += &format!(" [{setting}]");
                }
                if let Some(n) = row.source {
                    row.cells[COL_CLAIMED] += &format!(" [{n}]");
                }
                row.cells
            })
            .collect();
        s += &md_table(&RESULT_HEADER, &rows, &RESULT_NUMERIC);
        s.push('\n');
        for (i, source) in view.sources.iter().enumerate() {
            s += &format!("{}. {} {}\n", i + 1, source.lead(), md(&source.text));
        }
        if !view.sources.is_empty() {
            s.push('\n');
        }
    }
    if !view.bands.is_empty() {
        s += "#### Sensitivity sweeps\n\n";
        for (protocol, bands) in &view.bands {
            s += &format!("Protocol {}:\n\n", md(protocol));
            for b in bands {
                s += &format!("- {}\n", md(&band_sentence(b)));
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
