//! The audit's outputs after the numbers exist: the results table (one [`ResultRow`] per
//! experiment × model × protocol), charts (plotters, PNG + SVG) and the report documents
//! (Markdown and a self-contained HTML page). Nothing here computes a result; it only presents
//! what the audit measured and judged (rows, statuses, sweep bands: see `audit::bands`).

pub mod charts;
pub mod document;

use serde::{Deserialize, Serialize};

/// A count with thousands separated by commas (`10,000`), as every text a person reads shows
/// counts: the audit's reasons (`subset: 846 of 10,000 images`) and the report's tables alike.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Whether a measured row agrees with its claim or recorded baseline.
///
/// A published claim (a source outside the project) is `reproduced` or `drift`; a recorded
/// baseline (a number this project measured itself, for regression) is `baseline` or
/// `regressed`, so a baseline is never presented as a reproduced published result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Every claimed error of a published claim is within `tolerance` points of the measurement.
    Reproduced,
    /// A published claim's error differs from the measurement by more than `tolerance` points.
    Drift,
    /// Measured, but nothing claims a number for it.
    Measured,
    /// Every error of a recorded baseline is within `tolerance` points of the measurement.
    Baseline,
    /// A recorded baseline's error differs from the measurement by more than `tolerance` points.
    Regressed,
    /// Measured on fewer images than the claim's test set: shown, never judged. The string says
    /// how many (`subset: 20 of 600 images`).
    Subset(String),
    /// No image scored because every one was skipped (`on_bad_image: skip`); the string says why.
    Empty(String),
    /// Not run; the string says why and how to fix it.
    NotRun(String),
}

impl Status {
    /// The table's `status` column: one word.
    pub fn word(&self) -> &'static str {
        match self {
            Status::Reproduced => "reproduced",
            Status::Drift => "drift",
            Status::Measured => "measured",
            Status::Baseline => "baseline",
            Status::Regressed => "regressed",
            Status::Subset(_) => "subset",
            Status::Empty(_) => "empty",
            Status::NotRun(_) => "not-run",
        }
    }

    /// The table's `reason` column: why a row is subset, empty or not run; `None` otherwise.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Status::Subset(why) | Status::Empty(why) | Status::NotRun(why) => Some(why),
            _ => None,
        }
    }

    /// The status in words for a person: `reproduced`, `drift`, …, `not run: …`, `subset: 20 of 600 images`.
    pub fn label(&self) -> String {
        match self {
            Status::NotRun(why) => format!("not run: {why}"),
            Status::Subset(why) | Status::Empty(why) => why.clone(),
            other => other.word().into(),
        }
    }
}

/// What a number beside a measurement is: a published claim or this project's recorded baseline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClaimKind {
    /// A result published outside the project (paper table, authors' README).
    #[default]
    Published,
    /// A number this project measured itself, kept to catch regressions.
    Baseline,
}

impl ClaimKind {
    pub fn word(self) -> &'static str {
        match self {
            ClaimKind::Published => "published",
            ClaimKind::Baseline => "baseline",
        }
    }
}

/// How a row's model saw its images, in timm's terms (`img_size`, `crop_pct`, `interpolation`),
/// and which weights it was: the columns a timm user looks for in a results file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RowSetup {
    /// The crop fed to the model (single- and ten-crop protocols); `None` for multi-scale and ensembles.
    pub img_size: Option<u32>,
    /// Crop over the resized shorter side (timm's `crop_pct`), when the resize fixes one.
    pub crop_pct: Option<f64>,
    /// `bilinear`, `bicubic`, `nearest`; `None` for ensembles.
    pub interpolation: Option<String>,
    pub antialias: Option<bool>,
    /// The weights as the experiment names them (path or `hf://…`); `None` for ensembles.
    pub weights: Option<String>,
    /// SHA-256 of the weights file, when it was read.
    pub weights_sha256: Option<String>,
}

/// The protocol families of the paper, in ladder order (i) → (iv).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProtocolKind {
    CenterCrop,
    TenCrop,
    FullyConvolutional,
    Ensemble,
}

impl ProtocolKind {
    /// The paper's roman numeral: "(i)" … "(iv)".
    pub fn numeral(self) -> &'static str {
        match self {
            ProtocolKind::CenterCrop => "(i)",
            ProtocolKind::TenCrop => "(ii)",
            ProtocolKind::FullyConvolutional => "(iii)",
            ProtocolKind::Ensemble => "(iv)",
        }
    }

    /// Short name: "1 crop", "10 crops", "multi-scale FCN", "ensemble".
    pub fn short_name(self) -> &'static str {
        match self {
            ProtocolKind::CenterCrop => "1 crop",
            ProtocolKind::TenCrop => "10 crops",
            ProtocolKind::FullyConvolutional => "multi-scale FCN",
            ProtocolKind::Ensemble => "ensemble",
        }
    }
}

/// A 95% interval on an error rate, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// Error in percent.
    pub err: f64,
    /// Lower end of the Wilson 95% interval, percent.
    pub low: f64,
    /// Upper end of the Wilson 95% interval, percent.
    pub high: f64,
}

/// One row of `results.parquet` / `results.csv`: an (experiment, model, protocol[, sweep setting]).
/// Errors are in percent; deltas are measured − claimed, in points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    /// The experiment's file stem (`resnet50-torchvision`).
    pub experiment: String,
    /// The model id, or the ensemble's protocol id for ensembles (model `ensemble`).
    pub model: String,
    /// The protocol id.
    pub protocol: String,
    pub protocol_kind: ProtocolKind,
    /// For a sensitivity sweep: the setting (`interpolation=bicubic`); `None` for the protocol as written.
    pub setting: Option<String>,
    /// The label set the errors are scored under (`original`, `real`, `subset:imagenet-a`, …).
    #[serde(default = "original_labels")]
    pub labels: String,
    /// Images the model scored that the label set leaves out (ReaL's images without a label);
    /// not in `images`.
    #[serde(default)]
    pub labels_excluded: usize,
    /// One-line description of the protocol as configured.
    pub protocol_summary: String,
    pub top1: Option<Measured>,
    pub top5: Option<Measured>,
    /// Images evaluated (scored).
    pub images: usize,
    /// Images skipped as unreadable.
    pub skipped: usize,
    /// Parameters of the model (sum over members for ensembles), in millions.
    pub param_count_m: Option<f64>,
    /// Test-time multiply-adds per image (all views, all members), in billions (GMACs).
    pub gmacs_per_image: Option<f64>,
    pub claimed_top1_err: Option<f64>,
    pub claimed_top5_err: Option<f64>,
    /// Measured − claimed top-1 error, points.
    pub delta_top1: Option<f64>,
    /// Measured − claimed top-5 error, points.
    pub delta_top5: Option<f64>,
    /// Allowed |delta| in points.
    pub tolerance: Option<f64>,
    /// Where the claim comes from (paper table, README, URL).
    pub claim_source: Option<String>,
    /// Whether the claim columns hold a published claim or a recorded baseline; `None`: no claim.
    pub claim_kind: Option<ClaimKind>,
    /// The size of the test set the claim was measured on; a row with fewer images is a subset.
    pub claim_test_images: Option<usize>,
    /// Mean negative log-likelihood of the label, nats (`audit::calibration`).
    #[serde(default)]
    pub nll: Option<f64>,
    /// Expected calibration error, 15 equal-width confidence bins, a fraction (`audit::calibration`).
    #[serde(default)]
    pub ece: Option<f64>,
    pub setup: RowSetup,
    pub status: Status,
}

fn original_labels() -> String {
    "original".into()
}

/// The spread of top-1 error over one sensitivity sweep: all rows of one (experiment, model,
/// protocol) whose `setting` is `Some`, with the protocol as written (`setting: None`) counted
/// as one more faithful reading. Computed by `audit::bands::sweep_bands`.
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
    /// The lowest top-1 error in the band.
    pub min_top1_err: f64,
    /// The setting that gave the lowest error (`as written` for the protocol as written).
    pub min_setting: String,
    /// The highest top-1 error in the band.
    pub max_top1_err: f64,
    /// The setting that gave the highest error (`as written` for the protocol as written).
    pub max_setting: String,
    /// Top-1 error of the protocol as written, when that row exists and was measured.
    pub as_written_top1_err: Option<f64>,
    /// The claimed top-1 error: from the sweep rows, else from the protocol-as-written row.
    pub claimed_top1_err: Option<f64>,
    /// Whether min ≤ claim ≤ max (within the claim's rounding); `None` when nothing claims a
    /// top-1 error.
    pub claim_inside: Option<bool>,
}

/// A model as the report describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub id: String,
    /// `ResNet-50 v1.5 (torch pool)` etc.
    pub architecture: String,
    /// The weights as written in the experiment (path or hf://…).
    pub weights: String,
    /// SHA-256 of the weights file, when it was read.
    pub sha256: Option<String>,
    /// Input convention in words (`RGB, 0-1, mean/std torchvision`).
    pub input: String,
}

/// A protocol as the report describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtocolInfo {
    pub id: String,
    pub kind: ProtocolKind,
    /// Every knob, in words.
    pub summary: String,
    /// The sweep settings evaluated besides the protocol as written (empty: no sweep).
    pub sweep: Vec<String>,
}

/// One experiment file's part of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentInfo {
    /// File stem (`demo`).
    pub name: String,
    /// The path of its copy inside the report folder (`experiments/demo.yaml`).
    pub copied_file: String,
    pub description: String,
    /// The question the experiment asks (its YAML's `question:`), shown in the verdict box;
    /// `None`: the description stands in.
    #[serde(default)]
    pub question: Option<String>,
    /// The dataset in words (`class folders under …, 600 images, 10 classes`).
    pub dataset: String,
    /// Images evaluated; `None` when the experiment did not run.
    pub images: Option<usize>,
    /// `None` when it ran; otherwise why not and the exact fix (variable, file, command).
    pub not_run: Option<String>,
    pub models: Vec<ModelInfo>,
    pub protocols: Vec<ProtocolInfo>,
    /// Choices a reader must know (mean image policy, models not run, …).
    pub notes: Vec<String>,
    /// Paired comparisons in words (McNemar), e.g. `demo-paper-s1: center-crop vs ten-crop: …, p = 0.003`.
    pub paired: Vec<String>,
    /// The label sets the experiment scores under, by id, the main rows' first (empty: a
    /// training experiment, scored by its own labels).
    #[serde(default)]
    pub labels: Vec<String>,
}

/// A chart written next to the report: `<stem>.png` and `<stem>.svg` inside the report folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChartFiles {
    pub title: String,
    /// One or two sentences saying what the chart shows and how to read it.
    pub caption: String,
    /// The PNG's file name, relative to the report folder.
    pub png: String,
    /// The SVG's file name, relative to the report folder.
    pub svg: String,
}

impl AuditReport {
    /// Every row of the results table: the main rows, then the other label sets' rows.
    pub fn table_rows(&self) -> Vec<ResultRow> {
        self.rows.iter().chain(&self.label_rows).cloned().collect()
    }
}

/// Everything `report.md` and `report.html` show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditReport {
    pub title: String,
    /// UTC, RFC 3339.
    pub generated_at: String,
    /// `resnet-audit 0.1.0 (git 93bd70d)`.
    pub software: String,
    /// The command line that produced the report.
    pub command: String,
    /// Where and how models computed (`cpu, f32, backend fast`).
    #[serde(default)]
    pub runtime: String,
    pub experiments: Vec<ExperimentInfo>,
    /// The rows under each experiment's first label set: what every section but the label
    /// sets' own shows.
    pub rows: Vec<ResultRow>,
    /// The rows under an experiment's other label sets (`labels: [original, real]`: the `real`
    /// rows), shown beside the main rows by the label-set section.
    #[serde(default)]
    pub label_rows: Vec<ResultRow>,
    /// One band per swept (experiment, model, protocol), computed by the audit from `rows`.
    #[serde(default)]
    pub bands: Vec<SweepBand>,
    pub charts: Vec<ChartFiles>,
    /// Per experiment that ran: what changed image by image (flips, per-class changes, calibration).
    #[serde(default)]
    pub image_by_image: Vec<ImageByImage>,
}

/// What changed image by image in one experiment (computed by `audit::images`): flips between
/// each model's protocols, the classes whose error moved most, and calibration per protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageByImage {
    pub experiment: String,
    /// The label set correctness was judged with, in words.
    pub labels: String,
    /// Per model, every pair of its protocols as written (sweep settings left out), in the
    /// order of the paired McNemar comparisons.
    pub pairs: Vec<FlipPair>,
    /// Per (model, protocol) as written: NLL, ECE and the reliability bins.
    pub calibration: Vec<ProtocolCalibration>,
    /// One reliability diagram per model, written with the report's charts.
    pub charts: Vec<ChartFiles>,
    /// What a reader must know (thumbnails that could not be made, …).
    pub notes: Vec<String>,
}

/// The images whose top-1 answer changed from protocol `from` to `to` of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlipPair {
    pub model: String,
    pub from: String,
    pub from_kind: ProtocolKind,
    pub to: String,
    pub to_kind: ProtocolKind,
    /// Images both protocols scored.
    pub paired: usize,
    /// Wrong under `from`, right under `to`.
    pub fixed: usize,
    /// Right under `from`, wrong under `to`.
    pub broken: usize,
    /// The first fixed images (store order, at most the audit's gallery size).
    pub fixed_shown: Vec<FlipImage>,
    pub broken_shown: Vec<FlipImage>,
    /// For (i) → (ii) and (i) → (iii): the classes whose top-1 error changed most.
    pub class_changes: Vec<ClassChange>,
    /// The same pair under each of the experiment's other label sets (ImageNet-ReaL).
    #[serde(default)]
    pub by_other_labels: Vec<LabelSetFixes>,
}

/// A flip pair's fixed images under another label set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelSetFixes {
    /// The label set's id (`real`, `subset:…`).
    pub labels: String,
    /// Images wrong under `from` and right under `to` by this label set.
    pub fixed: usize,
    /// Of those, the ones the original labels do not count as fixed: fixed by the label set alone.
    pub fixed_only_by_labels: usize,
}

/// One flipped image as the gallery shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlipImage {
    /// The store's image id.
    pub image: String,
    /// The label's class name.
    pub label: String,
    /// The thumbnail's path inside the report folder; `None` when it could not be made.
    pub thumbnail: Option<String>,
    pub from: Guess,
    pub to: Guess,
}

/// A top-1 guess: the class name (or the unmapped output) and its probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Guess {
    pub class: String,
    pub probability: f64,
}

/// A class whose top-1 error changed between two protocols of one model (errors in percent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassChange {
    pub class: usize,
    pub class_name: String,
    /// Scored images of the class (the smaller count of the two protocols).
    pub images: usize,
    pub from_err: f64,
    pub to_err: f64,
}

impl ClassChange {
    /// `to − from`, points: negative is an improvement.
    pub fn delta(&self) -> f64 {
        self.to_err - self.from_err
    }
}

/// Calibration of one (model, protocol) as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtocolCalibration {
    pub model: String,
    pub protocol: String,
    pub kind: ProtocolKind,
    /// Mean −ln p(label), nats.
    pub nll: f64,
    /// Expected calibration error, a fraction (0..1).
    pub ece: f64,
    pub bins: Vec<ReliabilityBin>,
}

/// One bin of a reliability diagram: top-1 confidence in `(lower, upper]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    pub lower: f64,
    pub upper: f64,
    /// Scored images whose top-1 confidence falls in the bin.
    pub images: usize,
    /// Mean top-1 confidence of those images; `None` for an empty bin.
    pub confidence: Option<f64>,
    /// Fraction of them whose top-1 guess is right; `None` for an empty bin.
    pub accuracy: Option<f64>,
}
