//! Chart tests: each chart from realistic rows, legible PNG and SVG, and the edge cases (empty,
//! non-finite, many series, bad stems).

use std::collections::HashSet;
use std::path::Path;

use super::axis::{fmt_log_tick, fmt_tick, log_ticks};
use super::compute::COMPUTE_TITLE;
use super::deltas::{Deltas, DELTA_LABEL_MAX_W, MAX_HEIGHT};
use super::ladder::{Ladder, LADDER_TITLE};
use super::style::{ensure_font, fit_end, fit_middle, text_width, KINDS, TICK_SIZE};
use super::*;
use crate::report::{ChartFiles, Measured, ProtocolKind, ResultRow, Status};

fn m(err: f64) -> Option<Measured> {
    Some(Measured { err, low: err - 0.35, high: err + 0.36 })
}

#[allow(clippy::too_many_arguments)]
fn row(
    experiment: &str,
    model: &str,
    protocol: &str,
    kind: ProtocolKind,
    top1: Option<Measured>,
    claim: Option<f64>,
    gmacs: Option<f64>,
    status: Status,
) -> ResultRow {
    let mut r = ResultRow::blank(experiment, model, protocol, kind, String::new(), status);
    r.top1 = top1;
    r.images = 50_000;
    r.param_count_m = Some(25.6);
    r.gmacs_per_image = gmacs;
    r.claimed_top1_err = claim;
    r.delta_top1 = top1.zip(claim).map(|(t, c)| t.err - c);
    r.tolerance = claim.map(|_| 0.5);
    r.claim_source = claim.map(|_| "He et al. 2016, Table 3".into());
    r
}

/// The ResNet-50 ladder (claims 24.7 → 22.85 → 20.74) with measurements nearby, ResNet-101,
/// an ensemble, a model not run, and a sweep row.
fn sample_rows() -> Vec<ResultRow> {
    use ProtocolKind::*;
    let e = "resnet-paper";
    let mut rows = vec![
        row(e, "resnet50", "center-crop", CenterCrop, m(24.9), Some(24.7), Some(4.09), Status::Reproduced),
        row(e, "resnet50", "ten-crop", TenCrop, m(22.95), Some(22.85), Some(40.9), Status::Reproduced),
        row(e, "resnet50", "fcn-multiscale", FullyConvolutional, m(21.6), Some(20.74), Some(147.0), Status::Drift),
        row(e, "resnet50", "fcn-multiscale-noflip", FullyConvolutional, m(22.1), None, Some(73.5), Status::Measured),
        row(e, "resnet101", "center-crop", CenterCrop, m(23.4), Some(23.6), Some(7.8), Status::Reproduced),
        row(e, "resnet101", "ten-crop", TenCrop, m(21.6), Some(21.75), Some(78.0), Status::Reproduced),
        row(
            e,
            "resnet101",
            "fcn-multiscale",
            FullyConvolutional,
            m(20.1),
            Some(19.87),
            Some(281.0),
            Status::Reproduced,
        ),
        row(e, "ensemble-r50-r101", "ensemble-r50-r101", Ensemble, m(19.2), None, Some(428.0), Status::Measured),
        row(
            e,
            "resnet152",
            "center-crop",
            CenterCrop,
            None,
            Some(23.0),
            Some(11.5),
            Status::NotRun("weights missing: set RESNET152_WEIGHTS".into()),
        ),
        row(
            e,
            "resnet152",
            "fcn-multiscale",
            FullyConvolutional,
            None,
            Some(19.38),
            Some(414.0),
            Status::NotRun("weights missing".into()),
        ),
    ];
    // rows[7] is the ensemble: its model is the ensemble protocol's id.
    let mut sweep = rows[0].clone();
    sweep.setting = Some("interpolation=bicubic".into());
    sweep.top1 = m(30.0);
    rows.push(sweep);
    rows
}

/// `n` experiment/model series with long names, three protocols each.
fn many_rows(n: usize, long_names: bool) -> Vec<ResultRow> {
    let mut rows = vec![];
    let experiments = ["resnet-paper-caffe", "torchvision-zoo-v1", "timm-recipes-a1"];
    let models = ["resnet18", "resnet34", "resnet50", "resnet101"];
    for i in 0..n {
        let (exp, model) = if long_names {
            (
                format!("experiment-with-a-rather-long-name-{}", i / 4),
                format!("resnet{}-torchvision-v1.5-with-a-long-suffix", 18 + i),
            )
        } else {
            (experiments[i / 4 % 3].to_string(), format!("{}{}", models[i % 4], "-v2".repeat(i / 12)))
        };
        for (k, kind) in KINDS.iter().take(3).enumerate() {
            let claim = 25.0 - k as f64 * 1.5 + i as f64 * 0.15;
            rows.push(row(
                &exp,
                &model,
                &format!("protocol-{k}-with-many-options-spelled-out"),
                *kind,
                m(claim + 0.3 - (i % 5) as f64 * 0.2),
                Some(claim),
                Some(4.0 * 10f64.powi(k as i32) * (1.0 + i as f64 * 0.1)),
                if i % 3 == 0 { Status::Drift } else { Status::Reproduced },
            ));
        }
    }
    rows
}

fn check_png(path: &Path, w: u32, h: u32) {
    let img = image::open(path).expect("PNG decodes").to_rgb8();
    assert_eq!(img.dimensions(), (w, h), "{}", path.display());
    let colours: HashSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    assert!(colours.len() > 60, "{}: only {} distinct colours", path.display(), colours.len());
    // Not blank: plenty of non-white pixels, but mostly background.
    let ink = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    let total = (w * h) as usize;
    assert!(ink > total / 100 && ink < total * 6 / 10, "{}: ink {ink}/{total}", path.display());
}

fn svg_text(dir: &Path, files: &ChartFiles) -> String {
    std::fs::read_to_string(dir.join(&files.svg)).expect("SVG readable")
}

fn no_temporaries_left(dir: &Path) {
    for e in std::fs::read_dir(dir).expect("dir readable").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".tmp-"), "left behind: {name}");
    }
}

fn curves() -> Vec<CurveSeries> {
    let epochs: Vec<f64> = (0..=60).map(f64::from).collect();
    let mk = |label: &str, floor: f64, gap: f64| CurveSeries {
        label: label.into(),
        epochs: epochs.clone(),
        train_error: epochs
            .iter()
            .map(|e| floor - gap + 0.5 * (-e / 12.0).exp() - if *e > 30.0 { 0.08 } else { 0.0 })
            .collect(),
        val_error: epochs
            .iter()
            .map(|e| floor + 0.45 * (-e / 12.0).exp() - if *e > 30.0 { 0.06 } else { 0.0 })
            .collect(),
    };
    vec![
        mk("plain-18", 0.34, 0.02),
        mk("plain-34", 0.36, 0.03),
        mk("ResNet-18", 0.33, 0.02),
        mk("ResNet-34", 0.31, 0.03),
    ]
}

#[test]
fn ladder_writes_legible_png_and_svg() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = protocol_ladder(&sample_rows(), dir.path(), "ladder").expect("ladder");
    assert_eq!(files.png, "ladder.png");
    assert_eq!(files.svg, "ladder.svg");
    assert!(!files.caption.is_empty() && !files.title.is_empty());
    check_png(&dir.path().join("ladder.png"), WIDTH, HEIGHT);
    let svg = svg_text(dir.path(), &files);
    for text in [
        "Top-1 error along the test-protocol ladder",
        "top-1 error (%)",
        "test protocol",
        "(i) 1 crop",
        "(iv) ensemble",
        "resnet152 (not run)",
    ] {
        assert!(svg.contains(text), "SVG lacks {text:?}");
    }
    // The sweep row (30.0 %) is a variant, not part of the ladder.
    assert!(!svg.contains("interpolation"));
    no_temporaries_left(dir.path());
}

#[test]
fn compute_chart_writes_legible_png_and_svg() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = error_vs_compute(&sample_rows(), dir.path(), "compute").expect("compute");
    check_png(&dir.path().join("compute.png"), WIDTH, HEIGHT);
    let svg = svg_text(dir.path(), &files);
    for text in [
        COMPUTE_TITLE,
        "test-time multiply-adds per image (GMACs, log scale)",
        "top-1 error (%)",
        "(iii) multi-scale FCN",
        "resnet101",
    ] {
        assert!(svg.contains(text), "SVG lacks {text:?}");
    }
    assert!(files.caption.contains("labelled with its model id"));
}

#[test]
fn deltas_chart_writes_legible_png_and_svg() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = claim_deltas(&sample_rows(), dir.path(), "deltas").expect("deltas");
    // 8 claimed rows of the protocol as written; the sweep row is left out.
    let (w, h) = Deltas::prepare(&sample_rows()).map(|d| d.size()).expect("rows");
    assert_eq!(Deltas::prepare(&sample_rows()).map(|d| d.row_count()), Some(8));
    check_png(&dir.path().join("deltas.png"), w, h);
    let svg = svg_text(dir.path(), &files);
    for text in [
        "Measured \u{2212} claimed top-1 error",
        "measured \u{2212} claimed top-1 error (points)",
        "resnet-paper/resnet50/ten-crop",
        "not run",
        "reproduced",
        "drift",
    ] {
        assert!(svg.contains(text), "SVG lacks {text:?}");
    }
}

/// Recorded baselines get legend entries of their own (deltas) and their own name (ladder): a
/// baseline that holds is never shown as a reproduced published claim.
#[test]
fn deltas_legend_tells_baselines_from_published_claims() {
    use ProtocolKind::*;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rows = vec![
        row("demo", "paper-s1", "center-crop", CenterCrop, m(30.0), Some(30.1), None, Status::Baseline),
        row("demo", "paper-s2", "center-crop", CenterCrop, m(33.0), Some(30.1), None, Status::Regressed),
        row("cifar", "resnet20", "as-is", CenterCrop, m(8.5), Some(8.75), None, Status::Subset("subset".into())),
    ];
    for r in &mut rows[..2] {
        r.claim_kind = Some(crate::report::ClaimKind::Baseline);
    }
    let files = claim_deltas(&rows, dir.path(), "deltas").expect("deltas");
    let svg = svg_text(dir.path(), &files);
    for text in ["holds (recorded baseline)", "regressed (recorded baseline)", "subset of the test set (not judged)"] {
        assert!(svg.contains(text), "SVG lacks {text:?}");
    }
    assert!(!svg.contains("reproduced"), "no published claim was reproduced here");
    // The ladder's dashed lines say whose numbers they are.
    let ladder = protocol_ladder(&rows[..2], dir.path(), "ladder").expect("ladder");
    let svg = svg_text(dir.path(), &ladder);
    assert!(svg.contains("recorded baseline") && !svg.contains("published claim"), "baselines only");
    let ladder = protocol_ladder(&rows, dir.path(), "ladder-mixed").expect("ladder");
    assert!(svg_text(dir.path(), &ladder).contains("claimed or recorded baseline"));
}

#[test]
fn training_curves_write_legible_png_and_svg() {
    let dir = tempfile::tempdir().expect("tempdir");
    let title = "ImageNet training, plain vs residual (Figure 4)";
    let files = training_curves(&curves(), dir.path(), "curves", title).expect("curves");
    assert_eq!(files.title, title);
    check_png(&dir.path().join("curves.png"), WIDTH, HEIGHT);
    let svg = svg_text(dir.path(), &files);
    for text in [title, "epoch", "error (%)", "ResNet-34", "training error"] {
        assert!(svg.contains(text), "SVG lacks {text:?}");
    }
}

#[test]
fn empty_inputs_say_nothing_to_plot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    let errors = [
        protocol_ladder(&[], p, "a").err(),
        error_vs_compute(&[], p, "b").err(),
        claim_deltas(&[], p, "c").err(),
        training_curves(&[], p, "d", "t").err(),
    ];
    for e in errors {
        let e = e.expect("an error");
        assert!(matches!(e, ChartError::NothingToPlot { .. }), "{e}");
        assert!(e.to_string().starts_with("nothing to plot: "), "{e}");
    }
    // Only not-run and sweep rows: nothing measured for the compute chart.
    let rows: Vec<ResultRow> = sample_rows().into_iter().filter(|r| r.top1.is_none() || r.setting.is_some()).collect();
    let e = error_vs_compute(&rows, p, "e").expect_err("nothing measured");
    assert!(e.to_string().contains("nothing to plot"), "{e}");
    // ... but the ladder still shows the claims of the model not run.
    protocol_ladder(&rows, p, "f").expect("claims alone are drawn");
    assert_eq!(std::fs::read_dir(p).map(|d| d.count()).ok(), Some(2));
}

#[test]
fn non_finite_values_are_skipped_without_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rows = sample_rows();
    rows[0].top1 = Some(Measured { err: f64::NAN, low: 1.0, high: 2.0 });
    rows[1].top1 = Some(Measured { err: 22.0, low: f64::NEG_INFINITY, high: 23.0 });
    rows[2].claimed_top1_err = Some(f64::INFINITY);
    rows[4].gmacs_per_image = Some(f64::NAN);
    rows[5].gmacs_per_image = Some(-3.0);
    rows[6].tolerance = Some(f64::NAN);
    protocol_ladder(&rows, dir.path(), "ladder").expect("ladder");
    error_vs_compute(&rows, dir.path(), "compute").expect("compute");
    claim_deltas(&rows, dir.path(), "deltas").expect("deltas");
    let ladder = Ladder::prepare(&rows, LADDER_TITLE).expect("ladder data");
    assert!(ladder.y.start.is_finite() && ladder.y.end.is_finite());

    // Absurd but finite numbers are skipped like non-finite ones.
    rows[3].top1 = Some(Measured { err: 1e300, low: -1e300, high: 1e300 });
    rows[4].claimed_top1_err = Some(-1e300);
    rows[7].gmacs_per_image = Some(1e300);
    rows[8].tolerance = Some(1e300);
    protocol_ladder(&rows, dir.path(), "ladder").expect("ladder");
    error_vs_compute(&rows, dir.path(), "compute").expect("compute");
    claim_deltas(&rows, dir.path(), "deltas").expect("deltas");

    // All-NaN input is the empty case.
    let nan = Some(Measured { err: f64::NAN, low: f64::NAN, high: f64::NAN });
    let bad: Vec<ResultRow> = rows
        .iter()
        .cloned()
        .map(|mut r| {
            r.top1 = nan;
            r.claimed_top1_err = Some(f64::NAN);
            r
        })
        .collect();
    for e in [
        protocol_ladder(&bad, dir.path(), "x").err(),
        error_vs_compute(&bad, dir.path(), "y").err(),
        claim_deltas(&bad, dir.path(), "z").err(),
    ] {
        assert!(matches!(e, Some(ChartError::NothingToPlot { .. })));
    }

    let mut runs = curves();
    runs[0].val_error[3] = f64::NAN;
    runs[1].epochs[5] = f64::INFINITY;
    training_curves(&runs, dir.path(), "curves", "t").expect("curves");
    let all_nan = vec![CurveSeries {
        label: "nan".into(),
        epochs: vec![0.0, 1.0],
        train_error: vec![f64::NAN, f64::NAN],
        val_error: vec![],
    }];
    let e = training_curves(&all_nan, dir.path(), "c2", "t").expect_err("all NaN");
    assert!(matches!(e, ChartError::NothingToPlot { .. }), "{e}");
}

#[test]
fn curve_length_mismatch_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut runs = curves();
    runs[2].train_error.pop();
    let e = training_curves(&runs, dir.path(), "c", "t").expect_err("mismatch");
    assert!(matches!(e, ChartError::InvalidInput { .. }), "{e}");
    assert!(e.to_string().contains("ResNet-18"), "{e}");
    // A single point per run is drawn as a marker, not refused.
    let one =
        vec![CurveSeries { label: "one".into(), epochs: vec![3.0], train_error: vec![0.5], val_error: vec![0.6] }];
    training_curves(&one, dir.path(), "one", "t").expect("single epoch");
}

#[test]
fn bad_stems_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    for stem in ["", "../x", "a/b", ".hidden"] {
        let e = protocol_ladder(&sample_rows(), dir.path(), stem).expect_err(stem);
        assert!(matches!(e, ChartError::InvalidInput { .. }), "{e}");
    }
}

#[test]
fn many_series_and_long_labels_stay_drawable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rows = many_rows(40, true);
    let ladder = protocol_ladder(&rows, dir.path(), "ladder").expect("ladder");
    let height = Ladder::prepare(&rows, "t").expect("rows").size().1;
    assert!(height > HEIGHT, "the chart grows with its legend");
    check_png(&dir.path().join(&ladder.png), WIDTH, height);
    let svg = svg_text(dir.path(), &ladder);
    assert!(!svg.contains("more"), "no legend entry is left out");
    let compute = error_vs_compute(&rows, dir.path(), "compute").expect("compute");
    assert!(!compute.caption.contains("labelled"), "120 points are not labelled");
    claim_deltas(&rows, dir.path(), "deltas").expect("deltas");
    let d = Deltas::prepare(&rows).expect("rows");
    assert!(d.size().1 <= MAX_HEIGHT);
    assert!(d.label_w <= DELTA_LABEL_MAX_W);
}

#[test]
fn text_helpers_fit_and_format() {
    assert!(ensure_font());
    let long = "resnet-paper-reproduction/resnet50-torchvision-v1/ten-crop-fcn";
    let cut = fit_middle(long, TICK_SIZE, 200);
    assert!(cut.contains('…') && text_width(&cut, TICK_SIZE) <= 200);
    assert!(cut.starts_with("resnet") && cut.ends_with("fcn"));
    let cut = fit_end(long, TICK_SIZE, 120);
    assert!(cut.ends_with('…') && text_width(&cut, TICK_SIZE) <= 120);
    assert_eq!(fit_end("short", TICK_SIZE, 500), "short");
    assert_eq!(fmt_tick(20.0), "20");
    assert_eq!(fmt_tick(0.5), "0.5");
    assert_eq!(fmt_tick(-0.0), "0");
    assert_eq!(log_ticks(2.5, 700.0), vec![5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0]);
    let small: Vec<String> = [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2].map(fmt_log_tick).to_vec();
    assert_eq!(small, ["0.002", "0.005", "0.01", "0.02", "0.05", "0.1", "0.2"]);
    assert_eq!(fmt_log_tick(500.0), "500");
    assert!(log_ticks(3.0, 6.0).len() >= 3);
}

/// Renders the charts from realistic rows to `/tmp/charts-preview/` for a person to look at.
#[test]
#[ignore]
fn preview_to_tmp() {
    let dir = Path::new("/tmp/charts-preview");
    let rows = sample_rows();
    protocol_ladder(&rows, dir, "ladder").expect("ladder");
    error_vs_compute(&rows, dir, "compute").expect("compute");
    claim_deltas(&rows, dir, "deltas").expect("deltas");
    training_curves(&curves(), dir, "curves", "ImageNet training (cf. Figure 4)").expect("curves");
    let many = many_rows(12, false);
    protocol_ladder(&many, dir, "ladder-12").expect("ladder");
    error_vs_compute(&many, dir, "compute-12").expect("compute");
    claim_deltas(&many, dir, "deltas-12").expect("deltas");
    protocol_ladder(&many_rows(40, true), dir, "ladder-40").expect("ladder");
}

/// One ladder per experiment: a dataset's errors never share an axis with another's, the most
/// measured experiment comes first, and an experiment with nothing to draw gets no chart.
#[test]
fn ladders_are_drawn_one_per_experiment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rows = many_rows(8, false); // experiments resnet-paper-caffe and torchvision-zoo-v1
    for r in rows.iter_mut().filter(|r| r.experiment == "resnet-paper-caffe") {
        r.top1 = None; // claims only
    }
    let mut blank = rows[0].clone();
    blank.experiment = "nothing-finite".into();
    blank.claimed_top1_err = None;
    rows.push(blank);
    let files = protocol_ladders(&rows, dir.path(), "protocol-ladder").expect("ladders");
    let stems: Vec<&str> = files.iter().map(|f| f.png.as_str()).collect();
    assert_eq!(stems, ["protocol-ladder-torchvision-zoo-v1.png", "protocol-ladder-resnet-paper-caffe.png"]);
    assert!(files[0].title.ends_with(": torchvision-zoo-v1"));
    let svg = svg_text(dir.path(), &files[0]);
    assert!(!svg.contains("resnet-paper-caffe"), "another experiment's series in this ladder");
    assert_eq!(svg.matches(LADDER_TITLE).count(), 1, "the title once");
}
