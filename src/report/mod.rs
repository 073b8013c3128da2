//! The audit's outputs after the numbers exist: the results table (one [`ResultRow`] per
//! experiment × model × protocol), charts (plotters, PNG + SVG) and the report documents
//! (Markdown and a self-contained HTML page). Nothing here computes a result; it only presents
//! what `audit.rs` measured.

pub mod charts;
pub mod document;

use serde::{Deserialize, Serialize};

/// Whether a measured row agrees with its claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Every claimed error is within `tolerance` points of the measurement.
    Reproduced,
    /// A claimed error differs from the measurement by more than `tolerance` points.
    Drift,
    /// Measured, but nothing claims a number for it.
    Measured,
    /// Not run; the string says why and how to fix it.
    NotRun(String),
}

impl Status {
    /// The text in the table's `status` column: `reproduced`, `drift`, `measured`, `not run: …`.
    pub fn label(&self) -> String {
        match self {
            Status::Reproduced => "reproduced".into(),
            Status::Drift => "drift".into(),
            Status::Measured => "measured".into(),
            Status::NotRun(why) => format!("not run: {why}"),
        }
    }
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
    /// Wilson 95% interval, percent.
    pub low: f64,
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
    /// Images evaluated (scored), and images skipped as unreadable.
    pub images: usize,
    pub skipped: usize,
    /// Parameters of the model (sum over members for ensembles), in millions.
    pub param_count_m: Option<f64>,
    /// Test-time multiply-adds per image (all views, all members), in billions (GMACs).
    pub gmacs_per_image: Option<f64>,
    pub claimed_top1_err: Option<f64>,
    pub claimed_top5_err: Option<f64>,
    /// Measured − claimed, points.
    pub delta_top1: Option<f64>,
    pub delta_top5: Option<f64>,
    /// Allowed |delta| in points.
    pub tolerance: Option<f64>,
    /// Where the claim comes from (paper table, README, URL).
    pub claim_source: Option<String>,
    pub status: Status,
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
    /// File stem (`demo`), and the path of its copy inside the report folder (`experiments/demo.yaml`).
    pub name: String,
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
    /// File names relative to the report folder.
    pub png: String,
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
    pub experiments: Vec<ExperimentInfo>,
    pub rows: Vec<ResultRow>,
    pub charts: Vec<ChartFiles>,
}
