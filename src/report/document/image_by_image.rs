//! The report's "What changed, image by image" section, in both formats: calibration per
//! (model, protocol) with each model's reliability diagram, then per pair of a model's protocols
//! the flip counts, the classes that moved most, and a gallery of flipped images (the
//! thumbnails are files beside the report, the one thing the HTML page does not inline: hundreds
//! of images would not fit one page). The audit computed all of it (`audit::images`).

use super::html::esc;
use crate::report::{ClassChange, FlipImage, FlipPair, ImageByImage};

const TITLE: &str = "What changed, image by image";

const INTRO: &str = "For each model and each pair of its protocols (as written; sweep settings left out): \
the images whose top-1 answer became right (fixed) and those that became wrong (broken) on the images \
both protocols scored (the off-diagonal cells of the paired McNemar comparison), up to a dozen of each \
whose probability of the label moved most, with the label and both top-1 guesses; for (i) → (ii) and \
(i) → (iii) the classes whose top-1 error changed most. Calibration: NLL is the mean −ln p(label) \
(p clamped at 1e-12); ECE the expected calibration error over 15 equal-width bins of the top-1 \
confidence (Guo et al. 2017). Per-class errors of every (model, protocol) are in per_class.csv / \
per_class.parquet.";

fn pair_title(p: &FlipPair) -> String {
    format!("{}: {} {} → {} {}", p.model, p.from_kind.numeral(), p.from, p.to_kind.numeral(), p.to)
}

fn pair_counts(p: &FlipPair) -> String {
    let mut text = format!("{} fixed, {} broken, of {} images both scored", p.fixed, p.broken, p.paired);
    for other in &p.by_other_labels {
        text += &format!(
            "; under {}: {} fixed, {} of them only by the label set",
            other.labels, other.fixed, other.fixed_only_by_labels
        );
    }
    text
}

fn change_text(c: &ClassChange) -> String {
    format!("{}: {:.1}% → {:.1}% ({:+.1} points, {} images)", c.class_name, c.from_err, c.to_err, c.delta(), c.images)
}

fn guess_text(image: &FlipImage, p: &FlipPair) -> String {
    format!(
        "label {}; {} guessed {} ({:.2}), {} guessed {} ({:.2})",
        image.label, p.from, image.from.class, image.from.probability, p.to, image.to.class, image.to.probability
    )
}

/// The Markdown section; `md` escapes inline text as the rest of `report.md` does.
pub(super) fn markdown(analyses: &[ImageByImage], md: fn(&str) -> String) -> String {
    if analyses.is_empty() {
        return String::new();
    }
    let mut s = format!("\n## {TITLE}\n\n{}\n\n", md(INTRO));
    for a in analyses {
        s += &format!("### {}\n\nCorrectness judged with {}.\n\n", md(&a.experiment), md(&a.labels));
        if !a.calibration.is_empty() {
            s += "#### Calibration\n\n| model | protocol | NLL (nats) | ECE (%) |\n| --- | --- | ---: | ---: |\n";
            for c in &a.calibration {
                s += &format!(
                    "| {} | {} {} | {:.4} | {:.2} |\n",
                    md(&c.model),
                    c.kind.numeral(),
                    md(&c.protocol),
                    c.nll,
                    100.0 * c.ece
                );
            }
            s.push('\n');
            for chart in &a.charts {
                s += &format!("![{}]({}) ([SVG]({}))\n\n", md(&chart.title), chart.png, chart.svg);
            }
        }
        if !a.pairs.is_empty() {
            s += "#### Flips between protocols\n\n";
        }
        for p in &a.pairs {
            s += &format!("- **{}**: {}.\n", md(&pair_title(p)), pair_counts(p));
            if !p.class_changes.is_empty() {
                s += "  - Classes whose top-1 error changed most:\n";
                for c in &p.class_changes {
                    s += &format!("    - {}\n", md(&change_text(c)));
                }
            }
            for (word, total, shown) in [("Fixed", p.fixed, &p.fixed_shown), ("Broken", p.broken, &p.broken_shown)] {
                if shown.is_empty() {
                    continue;
                }
                s += &format!("  - {word} ({} of {total} shown):\n", shown.len());
                for image in shown {
                    let thumb = image.thumbnail.as_ref().map(|t| format!("![{}]({t}) ", md(&image.image)));
                    s += &format!(
                        "    - {}`{}`: {}\n",
                        thumb.unwrap_or_default(),
                        image.image.replace('`', "'"),
                        md(&guess_text(image, p))
                    );
                }
            }
        }
        if !a.notes.is_empty() {
            s += "\nNotes:\n\n";
            for note in &a.notes {
                s += &format!("- {}\n", md(note));
            }
        }
        s.push('\n');
    }
    s
}

fn html_gallery(word: &str, total: usize, shown: &[FlipImage], p: &FlipPair) -> String {
    if shown.is_empty() {
        return String::new();
    }
    let mut s = format!("<p>{word} ({} of {total} shown):</p>\n<ul class=\"gallery\">\n", shown.len());
    for image in shown {
        let thumb = match &image.thumbnail {
            Some(t) => format!("<img src=\"{}\" alt=\"{}\" loading=\"lazy\">", esc(t), esc(&image.image)),
            None => "<span class=\"no-thumb\">no thumbnail</span>".to_string(),
        };
        s += &format!(
            "<li class=\"flip\">{thumb}<span><code>{}</code><br>label <strong>{}</strong><br>{}: {} ({:.2})<br>{}: {} ({:.2})</span></li>\n",
            esc(&image.image),
            esc(&image.label),
            esc(&p.from),
            esc(&image.from.class),
            image.from.probability,
            esc(&p.to),
            esc(&image.to.class),
            image.to.probability
        );
    }
    s + "</ul>\n"
}

/// The HTML section.
pub(super) fn html(analyses: &[ImageByImage]) -> String {
    if analyses.is_empty() {
        return String::new();
    }
    let mut s = format!("\n<section id=\"image-by-image\">\n<h2>{TITLE}</h2>\n<p>{}</p>\n", esc(INTRO));
    for a in analyses {
        s += &format!("<h3>{}</h3>\n<p>Correctness judged with {}.</p>\n", esc(&a.experiment), esc(&a.labels));
        if !a.calibration.is_empty() {
            s += "<h4>Calibration</h4>\n<div class=\"table-wrap\"><table>\n<thead><tr><th>model</th><th>protocol</th>\
                  <th class=\"num\">NLL (nats)</th><th class=\"num\">ECE (%)</th></tr></thead>\n<tbody>\n";
            for c in &a.calibration {
                s += &format!(
                    "<tr><td><code>{}</code></td><td>{} <code>{}</code></td><td class=\"num\">{:.4}</td><td class=\"num\">{:.2}</td></tr>\n",
                    esc(&c.model),
                    c.kind.numeral(),
                    esc(&c.protocol),
                    c.nll,
                    100.0 * c.ece
                );
            }
            s += "</tbody></table></div>\n";
            for chart in &a.charts {
                s += &format!(
                    "<figure class=\"reliability\"><img src=\"{}\" alt=\"{}\" loading=\"lazy\"><figcaption>{} <a href=\"{}\">SVG</a>.</figcaption></figure>\n",
                    esc(&chart.png),
                    esc(&chart.title),
                    esc(chart.caption.trim()),
                    esc(&chart.svg)
                );
            }
        }
        if !a.pairs.is_empty() {
            s += "<h4>Flips between protocols</h4>\n";
        }
        for p in &a.pairs {
            s += &format!(
                "<details class=\"flips\"><summary><strong>{}</strong>: {}</summary>\n",
                esc(&pair_title(p)),
                esc(&pair_counts(p))
            );
            if !p.class_changes.is_empty() {
                s += "<p>Classes whose top-1 error changed most:</p>\n<ul>\n";
                for c in &p.class_changes {
                    s += &format!("<li>{}</li>\n", esc(&change_text(c)));
                }
                s += "</ul>\n";
            }
            s += &html_gallery("Fixed", p.fixed, &p.fixed_shown, p);
            s += &html_gallery("Broken", p.broken, &p.broken_shown, p);
            s += "</details>\n";
        }
        if !a.notes.is_empty() {
            s += "<p>Notes:</p>\n<ul>\n";
            for note in &a.notes {
                s += &format!("<li>{}</li>\n", esc(note));
            }
            s += "</ul>\n";
        }
    }
    s + "</section>\n"
}
