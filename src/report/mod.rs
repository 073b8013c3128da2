//! The audit's outputs after the numbers exist: the results table (one [`ResultRow`] per
//! experiment × model × protocol), charts (plotters, PNG + SVG) and the report documents
//! (Markdown and a self-contained HTML page). Nothing here computes a result; it only presents
//! what the audit measured and judged (rows, statuses, sweep bands: see `audit::bands`).

pub mod charts;
pub mod document;

use serde::{Deserialize, Serialize};

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
    pub setup: RowSetup,
    pub status: Status,
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
    pub rows: Vec<ResultRow>,
    /// One band per swept (experiment, model, protocol), computed by the audit from `rows`.
    #[serde(default)]
    pub bands: Vec<SweepBand>,
    pub charts: Vec<ChartFiles>,
}
