//! `report.md` and a self-contained `report.html` from an [`AuditReport`]: the same facts in both,
//! written so that a reader who never saw the code can tell what was measured, under which
//! protocol, and whether it agrees with the published claim. Nothing here computes a result: the
//! rows, claims, statuses and sweep bands come from the audit; this module words and marks them up.
//!
//! `format` holds what both documents share (numbers, status words, the reading guide, table
//! cells), `markdown` and `html` the two formats, `svg` the inliner that puts each chart's SVG into
//! the page. The HTML page has no external references: its CSS (`report.css`) is inline and every
//! chart's SVG is read from the report folder and inlined (prolog stripped, made to scale to the
//! page width). The exception is `image_by_image`: its thumbnails and reliability diagrams are
//! files beside the page (hundreds of images), referenced by relative `<img src>`. Both files are written with [`crate::fsio::atomic_write`], so a reader never sees a
//! half-written report.

mod format;
mod html;
mod labels;
mod image_by_image;
mod markdown;
mod svg;

use std::path::{Path, PathBuf};

pub use svg::SvgError;

use super::{AuditReport, ExperimentInfo, ResultRow, SweepBand};

/// The Markdown report's file name inside the report folder.
pub const MARKDOWN_FILE: &str = "report.md";
/// The HTML report's file name inside the report folder.
pub const HTML_FILE: &str = "report.html";

/// Why a report document could not be written; always names the file.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("{}: cannot read chart SVG: {source}", path.display())]
    ReadSvg {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not an SVG document: {problem}", path.display())]
    BadSvg {
        path: PathBuf,
        #[source]
        problem: SvgError,
    },
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Writes `dir/report.md`; charts referenced as images by their PNG file names.
pub fn write_markdown(report: &AuditReport, dir: &Path) -> Result<PathBuf, DocumentError> {
    write(&dir.join(MARKDOWN_FILE), &markdown::markdown(report))
}

/// Writes `dir/report.html`: one file, no external references: CSS inline, each chart's SVG
/// (read from `dir/<chart.svg>`) inlined into the page. A missing SVG is an error naming it.
pub fn write_html(report: &AuditReport, dir: &Path) -> Result<PathBuf, DocumentError> {
    let mut svgs = Vec::with_capacity(report.charts.len());
    for chart in &report.charts {
        let path = dir.join(&chart.svg);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(source) => return Err(DocumentError::ReadSvg { path, source }),
        };
        svgs.push(svg::inline_svg(&text, &chart.title).map_err(|problem| DocumentError::BadSvg { path, problem })?);
    }
    write(&dir.join(HTML_FILE), &html::html(report, &svgs))
}

/// Writes one document atomically (creating the folder); returns its path.
fn write(path: &Path, text: &str) -> Result<PathBuf, DocumentError> {
    crate::fsio::atomic_write(path, text.as_bytes())
        .map_err(|e| DocumentError::Write { path: e.path, source: e.source })?;
    Ok(path.to_path_buf())
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
    /// `None` for rows whose experiment the report does not describe.
    info: Option<&'a ExperimentInfo>,
    name: &'a str,
    /// Its rows, each protocol's sweep rows right after the protocol as written.
    rows: Vec<&'a ResultRow>,
    /// Its sweep bands grouped by protocol: (numeral + id, bands).
    bands: Vec<(String, Vec<SweepBand>)>,
    /// One box per distinct not-run reason of its rows.
    notes: Vec<format::NotRunNote>,
    /// The distinct sources of its claims, numbered from 1 under its results table.
    sources: Vec<format::ClaimSource>,
}

impl ExperimentView<'_> {
    /// Rows with a measured top-1 or top-5 error.
    fn measured_rows(&self) -> usize {
        self.rows.iter().filter(|r| r.top1.is_some() || r.top5.is_some()).count()
    }

    /// Its part of the verdict box: the question, the published claims tested and not run, the
    /// recorded baselines apart.
    fn verdict(&self) -> format::ExperimentVerdict {
        let question = match self.info {
            Some(info) => info.question.as_deref().filter(|q| !q.trim().is_empty()).unwrap_or(&info.description),
            None => "",
        };
        let own_reason = self.info.and_then(|info| info.not_run.as_deref());
        format::experiment_verdict(self.name, question, &self.rows, &self.notes, own_reason)
    }
}

/// The verdict's three kinds of row, in its order: (side, title, what it means).
const SIDES: [(format::Side, &str, &str); 3] = [
    (
        format::Side::Published,
        "Published claims",
        "numbers from sources outside this project: papers, READMEs, library docs",
    ),
    (
        format::Side::Baseline,
        "Recorded baselines",
        "this project's own earlier numbers, kept to catch regressions; never counted as reproduced",
    ),
    (format::Side::Unclaimed, "Without a claim", "nothing to compare with"),
];

/// The rows the verdict counts: each protocol as written (a sweep setting is a sensitivity
/// reading, not a claim's test).
fn written_rows(report: &AuditReport) -> Vec<&ResultRow> {
    report.rows.iter().filter(|r| r.setting.is_none()).collect()
}

/// One view per experiment: what was measured first (most measured rows first, a reader's
/// question is answered by those), ties in the report's order; an experiment that only rows name
/// gets a view too, so no result is dropped.
fn experiment_views<'a>(report: &'a AuditReport) -> Vec<ExperimentView<'a>> {
    let build = |info: Option<&'a ExperimentInfo>, name: &'a str| -> ExperimentView<'a> {
        let rows: Vec<&ResultRow> = report.rows.iter().filter(|r| r.experiment == name).collect();
        let bands: Vec<SweepBand> = report.bands.iter().filter(|b| b.experiment == name).cloned().collect();
        let rows = ordered_rows(&rows);
        let notes = format::not_run_notes(&rows);
        let sources = format::claim_sources(&rows);
        ExperimentView { info, name, bands: bands_by_protocol(info, &bands), rows, notes, sources }
    };
    let mut views = Vec::new();
    for exp in &report.experiments {
        views.push(build(Some(exp), &exp.name));
    }
    // Rows whose experiment is not described still get a section, so no result is dropped.
    let mut orphans: Vec<&str> = Vec::new();
    for r in &report.rows {
        if !report.experiments.iter().any(|e| e.name == r.experiment) && !orphans.contains(&r.experiment.as_str()) {
            orphans.push(&r.experiment);
        }
    }
    for name in orphans {
        views.push(build(None, name));
    }
    // Stable: equal counts keep the report's order.
    views.sort_by_key(|v| std::cmp::Reverse(v.measured_rows()));
    views
}

#[cfg(test)]
mod tests {
    use super::html::esc;
    use super::*;
    use crate::report::{ChartFiles, ClaimKind, Measured, ModelInfo, ProtocolInfo, ProtocolKind, Status};

    const FIX: &str = "IMAGENET_VAL is not set: point it at the ImageNet 2012 validation folder (class folders), e.g.\n    export IMAGENET_VAL=/data/imagenet/val\n\nand convert the released Caffe weights first:\n    resnet-audit convert caffe ResNet-50-model.caffemodel --prototxt ResNet-50-deploy.prototxt --out weights/resnet50-caffe.safetensors";
    const ODD_ID: &str = "resnet50<b>&";

    fn measured(err: f64) -> Option<Measured> {
        Some(Measured { err, low: err - 0.38, high: err + 0.38 })
    }

    fn row(model: &str, protocol: &str, kind: ProtocolKind, setting: Option<&str>, top1: Option<f64>) -> ResultRow {
        let mut r =
            ResultRow::blank("demo", model, protocol, kind, format!("{protocol} as configured"), Status::Measured);
        r.setting = setting.map(Into::into);
        r.top1 = top1.and_then(measured);
        r.top5 = top1.and_then(|t| measured(t / 3.0));
        r.images = if top1.is_some() { 50_000 } else { 0 };
        r.param_count_m = Some(25.6);
        r.gmacs_per_image = Some(4.0903);
        r
    }

    /// A published claim beside the row's measurement, judged as the audit judges it.
    fn claim(mut r: ResultRow, top1: Option<f64>, top5: Option<f64>, tolerance: f64) -> ResultRow {
        r.claimed_top1_err = top1;
        r.claimed_top5_err = top5;
        r.delta_top1 = top1.and_then(|c| Some(r.top1?.err - c));
        r.delta_top5 = top5.and_then(|c| Some(r.top5?.err - c));
        r.tolerance = Some(tolerance);
        r.claim_source = Some("https://github.com/KaimingHe/deep-residual-networks#results".into());
        r.claim_kind = Some(ClaimKind::Published);
        let out = [r.delta_top1, r.delta_top5].iter().flatten().any(|d| d.abs() > tolerance);
        r.status = if out { Status::Drift } else { Status::Reproduced };
        r
    }

    /// A recorded baseline (this project's own earlier run) beside the row's measurement.
    fn baseline(r: ResultRow, top1: f64, tolerance: f64) -> ResultRow {
        let mut r = claim(r, Some(top1), None, tolerance);
        r.claim_kind = Some(ClaimKind::Baseline);
        r.claim_source = Some("recorded by `make audit` on 2025-01-01".into());
        r.status = if r.status == Status::Drift { Status::Regressed } else { Status::Baseline };
        r
    }

    fn sample() -> AuditReport {
        use ProtocolKind::*;
        let mut ensemble = claim(row("ensemble", "ensemble-top5", Ensemble, None, Some(18.0)), None, Some(5.70), 0.5);
        ensemble.gmacs_per_image = Some(1234.5);
        let mut not_run = row("resnet101", "fcn-multiscale", FullyConvolutional, None, None);
        not_run.status = Status::NotRun("FCN pooling needs pool5 stride 1: set `pool5: sliding` in the model".into());
        let mut caffe_row = claim(row("resnet50-caffe", "center-crop", CenterCrop, None, None), Some(24.7), None, 0.3);
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
            // This project's own number for resnet101's center crop, matched: a baseline, not a reproduction.
            baseline(row("resnet101", "center-crop", CenterCrop, None, Some(23.10)), 23.0, 0.2),
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
            runtime: "cpu, f32, backend fast".into(),
            command: "resnet-audit audit experiments/demo.yaml experiments/caffe-paper.yaml --out report".into(),
            experiments: vec![
                ExperimentInfo {
                    name: "demo".into(),
                    copied_file: "experiments/demo.yaml".into(),
                    description: "Torchvision weights under the paper's protocols.".into(),
                    question: Some("Do torchvision's weights give the paper's errors under its protocols?".into()),
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
                    labels: Vec::new(),
                },
                ExperimentInfo {
                    name: "caffe-paper".into(),
                    copied_file: "experiments/caffe-paper.yaml".into(),
                    description: "The released Caffe models against the paper's tables.".into(),
                    question: None,
                    dataset: "ImageNet 2012 validation ($IMAGENET_VAL)".into(),
                    images: None,
                    not_run: Some(FIX.into()),
                    models: vec![model("resnet50-caffe", None)],
                    protocols: vec![protocol("center-crop", CenterCrop, &[])],
                    notes: vec![],
                    paired: vec![],
                    labels: Vec::new(),
                },
            ],
            rows,
            label_rows: Vec::new(),
            // What the audit computes from the center-crop sweep rows above (src/audit/bands.rs).
            bands: vec![SweepBand {
                experiment: "demo".into(),
                model: ODD_ID.into(),
                protocol: "center-crop".into(),
                protocol_kind: CenterCrop,
                settings: vec!["interpolation=bicubic".into(), "interpolation=nearest".into()],
                unmeasured: 0,
                min_top1_err: 24.10,
                min_setting: "interpolation=bicubic".into(),
                max_top1_err: 25.40,
                max_setting: "interpolation=nearest".into(),
                as_written_top1_err: Some(24.70),
                claimed_top1_err: Some(24.58),
                claim_inside: Some(true),
            }],
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
            image_by_image: Vec::new(),
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
        assert!(html.contains("<figure aria-label=\"Claimed vs measured\">") && html.contains("<figcaption>"));
        assert!(!html.contains("<h3>Claimed vs measured</h3>"), "the chart draws its title itself: once");
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
        assert!(html.contains("<td class=\"status drift\" data-label=\"status\">drift</td>"));
        assert!(html.contains("ten-crop: top-1 23.50 vs claimed 22.85 (Δ +0.65)"));
        assert!(html.contains("<td class=\"status reproduced\" data-label=\"status\">reproduced</td>"));
        assert!(html.contains("<td class=\"status measured\" data-label=\"status\">measured</td>"));
        // A not-run row points at its experiment's box instead of repeating the reason.
        assert!(html.contains(
            "<td class=\"status notrun\" data-label=\"status\">not run <a href=\"#exp-demo-fix-1\">(fix 1)</a></td>"
        ));
        assert!(html.contains("id=\"exp-demo-fix-1\""));
        // The claim's source as a numbered note under the table, not a column.
        assert!(html.contains("<li id=\"exp-demo-source-1\">Claims from <a href="));
        assert!(html.contains("24.58 / —<sup><a href=\"#exp-demo-source-1\""));
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
            "| model | protocol | top-1 err % [95% CI] | top-5 err % [95% CI] | claimed top-1 / top-5 \
             | Δ top-1 / top-5 (tolerance) | status | images | GMACs/image |"
        ));
        let reproduced = "| resnet50\\<b>& | (i) center-crop | 24.70 [24.32, 25.08] | 8.23 [7.85, 8.61] \
                          | 24.58 / — [1] | +0.12 / — (±0.20) | reproduced | 50,000 | 4.09 |";
        assert!(md.contains(reproduced), "{md}");
        assert!(md.contains("| (i) center-crop [interpolation=bicubic] |"), "sweep setting under its protocol");
        assert!(md.contains("| — / 5.70 [1] | — / +0.30 (±0.50) | reproduced |"), "ensemble row");
        assert!(md.contains("| 1230 |"), "GMACs to 3 significant digits");
        assert!(md.contains("1. Claims from https://github.com/KaimingHe/deep-residual-networks#results"));
        assert!(md.contains("| not run (fix 1) |"));
        assert!(md.contains("> **⚠ Not run (fix 1).** Rows: resnet101: (iii) fcn-multiscale."));
        assert!(md.contains("![Claimed vs measured](claimed-vs-measured.png)"));
        assert!(md.contains("([SVG](claimed-vs-measured.svg))"));
        assert!(md.contains("### Experiment [demo](experiments/demo.yaml)"));
        assert!(md.contains(&format!("```text\n{FIX}\n```")));
        assert!(md.contains("**3** drift"));
        assert!(md.contains("band 24.10–25.40 top-1 error over the protocol as written and its 2 sweep settings"));
        assert!(md.contains("Claimed 24.58 lies inside the band."));
    }

    #[test]
    fn experiments_with_measurements_come_first_whatever_the_input_order() {
        let mut report = sample();
        report.experiments.reverse(); // caffe-paper (nothing measured) first
        let views = experiment_views(&report);
        let names: Vec<&str> = views.iter().map(|v| v.name).collect();
        assert_eq!(names, ["demo", "caffe-paper"]);
        let dir = tempfile::tempdir().expect("tempdir");
        write_svgs(dir.path());
        write_html(&report, dir.path()).expect("html");
        let html = std::fs::read_to_string(dir.path().join("report.html")).expect("read");
        let position = |id: &str| html.find(&format!("<section class=\"experiment\" id=\"{id}\">")).expect(id);
        assert!(position("exp-demo") < position("exp-caffe-paper"));
    }

    #[test]
    fn one_not_run_box_per_reason_not_one_reason_per_row() {
        let mut report = sample();
        // Three more caffe-paper rows with the same reason as the first.
        let first = report.rows.iter().position(|r| r.experiment == "caffe-paper").expect("caffe row");
        for protocol in ["ten-crop", "fcn", "ensemble"] {
            let mut r = report.rows[first].clone();
            r.protocol = protocol.into();
            report.rows.push(r);
        }
        let dir = tempfile::tempdir().expect("tempdir");
        write_svgs(dir.path());
        write_html(&report, dir.path()).expect("html");
        write_markdown(&report, dir.path()).expect("md");
        let html = std::fs::read_to_string(dir.path().join("report.html")).expect("read");
        let md = std::fs::read_to_string(dir.path().join("report.md")).expect("read");
        assert_eq!(html.matches(&esc(FIX)).count(), 1, "the fix once, in its box");
        assert_eq!(md.matches(FIX).count(), 1, "the fix once, in its box");
        let experiments = &html[html.find("<section id=\"experiments\">").expect("experiments")..];
        assert_eq!(experiments.matches("href=\"#exp-caffe-paper-fix-1\"").count(), 4, "every row points at it");
        assert_eq!(html.matches("href=\"#exp-caffe-paper-fix-1\"").count(), 5, "and the verdict");
        assert!(html.contains("4 published claims not run. Fix: "), "the verdict counts them once");
        assert!(html.contains("This experiment was not evaluated."));
    }

    /// The results table's columns are few enough for a 1400 px screen, and each cell carries its
    /// column's name for the phone layout.
    #[test]
    fn result_cells_carry_their_labels_for_the_stacked_layout() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_svgs(dir.path());
        let (_, html) = written(dir.path());
        assert!(format::RESULT_HEADER.len() <= 9);
        for label in format::RESULT_HEADER {
            assert!(html.contains(&format!("data-label=\"{}\"", esc(label))), "{label}");
        }
        assert!(html.contains("<table class=\"stack\">"));
        assert!(CSS_HAS_PHONE_LAYOUT.iter().all(|rule| html.contains(rule)), "phone rules inline");
    }

    const CSS_HAS_PHONE_LAYOUT: [&str; 2] = ["@media (max-width: 700px)", "content: attr(data-label)"];

    /// The verdict section of each document: (markdown, html).
    fn verdicts<'a>(md: &'a str, html: &'a str) -> (&'a str, &'a str) {
        let md_start = md.find("> ## Verdict").expect("markdown verdict");
        let md_end = md[md_start..].find("\n\n").map_or(md.len(), |i| md_start + i);
        let html_start = html.find("<section id=\"verdict\"").expect("html verdict");
        let html_end = html_start + html[html_start..].find("</section>").expect("verdict end");
        (&md[md_start..md_end], &html[html_start..html_end])
    }

    #[test]
    fn the_verdict_box_comes_first_in_both_documents() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_svgs(dir.path());
        let (md, html) = written(dir.path());
        let before = |text: &str, first: &str, later: &str| {
            let at = |what: &str| text.find(what).unwrap_or_else(|| panic!("no {what:?}"));
            assert!(at(first) < at(later), "{first:?} must come before {later:?}");
        };
        // Markdown: right after the title and date, before the command line, the guide and any table.
        before(&md, "> ## Verdict", "Command line:");
        before(&md, "> ## Verdict", "## How to read");
        before(&md, "> ## Verdict", "\n| ");
        assert!(md.starts_with("# ResNet audit: demo & caffe\n\nGenerated "), "{md}");
        // HTML: the same, and every line of the box inside it.
        before(&html, "<section id=\"verdict\"", "<table");
        before(&html, "<section id=\"verdict\"", "id=\"how-to-read\"");
        before(&html, "<section id=\"verdict\"", "Command line:");
        before(&html, "<h1>", "<section id=\"verdict\"");
        let (md_box, html_box) = verdicts(&md, &html);
        assert!(md_box.lines().all(|l| l.starts_with('>')), "one block quote:\n{md_box}");
        // The question each experiment asks; the description stands in where none is written.
        for (text, question) in [
            (md_box, "Do torchvision's weights give the paper's errors under its protocols?"),
            (html_box, "Do torchvision&#39;s weights give the paper&#39;s errors under its protocols?"),
        ] {
            assert!(text.contains(question), "{text}");
        }
        assert!(md_box
            .contains("**[caffe-paper](#exp-caffe-paper)**: The released Caffe models against the paper's tables."));
        assert!(html_box
            .contains("<span class=\"question\">The released Caffe models against the paper&#39;s tables.</span>"));
        // The tested published claims with their result: drift first, numbers with intervals.
        assert!(md_box.contains(
            "- **drift** resnet50\\<b>& · (ii) ten-crop: top-1 23.50 [23.12, 23.88] vs claimed 22.85 (Δ +0.65); tolerance ±0.20"
        ), "{md_box}");
        assert!(html_box.contains("<li><span class=\"badge reproduced\">reproduced</span> resnet50&lt;b&gt;&amp; · (i) center-crop: top-1 24.70 [24.32, 25.08] vs claimed 24.58 (Δ +0.12); tolerance ±0.20</li>"), "{html_box}");
        assert!(md_box.find("**drift**") < md_box.find("**reproduced** resnet50"), "drift first");
        // Headline counts, published claims and recorded baselines apart (sweep settings aside).
        assert!(md_box.contains("- Published claims (numbers from sources outside this project: papers, READMEs, library docs): **2** reproduced · **1** drift · **1** not run."), "{md_box}");
        assert!(md_box.contains("- Recorded baselines (this project's own earlier numbers, kept to catch regressions; never counted as reproduced): **1** hold · **0** regressed."), "{md_box}");
        assert!(html_box.contains("<span class=\"badge baseline\"><strong>1</strong> hold</span>"));
    }

    #[test]
    fn a_recorded_baseline_is_never_counted_as_reproduced() {
        // The demo's situation: every measured row matches this project's own earlier numbers,
        // and no published claim ran.
        let mut report = sample();
        report.rows.retain(|r| r.experiment == "caffe-paper");
        for (i, top1) in [30.2, 31.0, 29.5].into_iter().enumerate() {
            let model = format!("paper-s{}", i + 1);
            report.rows.push(baseline(
                row(&model, "center-crop", ProtocolKind::CenterCrop, None, Some(top1)),
                top1,
                0.1,
            ));
        }
        let mut regressed = baseline(row("fb-s1", "ten-crop", ProtocolKind::TenCrop, None, Some(28.0)), 27.0, 0.1);
        regressed.delta_top1 = Some(1.0);
        report.rows.push(regressed);
        let dir = tempfile::tempdir().expect("tempdir");
        write_svgs(dir.path());
        write_markdown(&report, dir.path()).expect("md");
        write_html(&report, dir.path()).expect("html");
        let md = std::fs::read_to_string(dir.path().join("report.md")).expect("read");
        let html = std::fs::read_to_string(dir.path().join("report.html")).expect("read");
        let (md_box, html_box) = verdicts(&md, &html);
        let bottom = "No published claim was tested on its full test set: 1 not run (fixes below). \
                      Separately, 3 recorded baselines (this project's own earlier numbers) hold, 1 regressed.";
        assert!(md_box.contains(&format!("> **{bottom}**")), "{md_box}");
        assert!(html_box.contains(&format!("<p class=\"bottom-line\">{}</p>", esc(bottom))), "{html_box}");
        assert!(md_box.contains("**0** reproduced · **0** drift · **1** not run"), "{md_box}");
        assert!(md_box.contains("Recorded baselines: **3** hold · **1** regressed."), "{md_box}");
        assert!(html_box.contains("<span class=\"badge reproduced\"><strong>0</strong> reproduced</span>"));
        assert!(!html_box.contains("badge reproduced\">reproduced</span>"), "no baseline listed as a reproduced claim");
        // Nowhere in either document is a baseline row marked reproduced.
        assert!(!html.contains("status reproduced"), "a baseline's cell has its own class");
        assert!(html.contains("<td class=\"status baseline\" data-label=\"status\">baseline</td>"));
        let result_rows: Vec<&str> =
            md.lines().filter(|l| l.starts_with("| paper-s") || l.starts_with("| fb-s")).collect();
        assert_eq!(result_rows.len(), 4);
        assert!(result_rows.iter().all(|l| !l.contains("| reproduced |")), "{result_rows:?}");
        assert!(md.contains("| 30.20 / — (baseline) [1] |"), "the claimed column says baseline");
        assert!(md.contains("1. Recorded baseline (this project's own run): recorded by"), "{md}");
        // A regression is worded against the baseline, not a claim.
        assert!(md.contains("**Regressed from a recorded baseline** (1 row outside tolerance)"));
        assert!(md.contains(
            "- demo · fb-s1 · (ii) ten-crop: top-1 28.00 vs recorded baseline 27.00 (Δ +1.00); tolerance ±0.10"
        ));
        assert!(md.contains("No published claim drifts."));
    }

    #[test]
    fn the_verdict_lists_what_did_not_run_with_its_fix_and_subsets_apart() {
        let mut report = sample();
        let mut subset =
            claim(row("resnet20", "as-is", ProtocolKind::CenterCrop, None, Some(8.50)), Some(8.75), None, 0.5);
        subset.images = 846;
        subset.status = Status::Subset("subset: 846 of 10,000 images".into());
        report.rows.push(subset);
        let dir = tempfile::tempdir().expect("tempdir");
        write_svgs(dir.path());
        write_markdown(&report, dir.path()).expect("md");
        write_html(&report, dir.path()).expect("html");
        let md = std::fs::read_to_string(dir.path().join("report.md")).expect("read");
        let html = std::fs::read_to_string(dir.path().join("report.html")).expect("read");
        let (md_box, html_box) = verdicts(&md, &html);
        let fix = FIX.lines().next().expect("a first line");
        assert!(
            md_box.contains(&format!("- **not run**, 1 published claim not run. Fix: {fix} (see fix 1 below)")),
            "{md_box}"
        );
        assert!(html_box.contains(&format!(
            "<span class=\"badge notrun\">not run</span> 1 published claim not run. Fix: <code class=\"fix\">{}</code> <a href=\"#exp-caffe-paper-fix-1\">(fix 1)</a>",
            esc(fix)
        )), "{html_box}");
        // demo's own not-run row has no claim: counted apart from published claims.
        assert!(
            md_box.contains(
                "- **not run**, 1 row without a published claim not run. Fix: FCN pooling needs pool5 stride 1"
            ),
            "{md_box}"
        );
        // A subset: its interval, never counted as reproduced or drift.
        assert!(md_box.contains("- **subset: 846 of 10,000 images** (not judged) resnet20 · (i) as-is: top-1 8.50 [8.12, 8.88] vs claimed 8.75"), "{md_box}");
        assert!(
            md_box.contains("**2** reproduced · **1** drift · **1** on a subset (not judged) · **1** not run"),
            "{md_box}"
        );
        assert!(html_box.contains("<span class=\"badge subset\">subset: 846 of 10,000 images</span> (not judged)"));
        assert!(md_box.contains("1 on a subset only (not judged)"));
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
