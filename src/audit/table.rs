//! The results table: one column schema ([`Column`]) that writes `results.parquet` /
//! `results.csv` from [`ResultRow`]s and that `check` reads back, so the writer and the gate cannot
//! disagree on a column's name or type.

use std::path::{Path, PathBuf};

use polars::prelude::{
    CsvWriter, DataFrame, NamedFrom, ParquetReader, ParquetWriter, PolarsError, SerReader, SerWriter, Series,
};

use crate::fsio::{atomic_write, WriteError};
use crate::report::ResultRow;

/// The columns of the results table, in table order. Names follow timm's results CSVs
/// (`top1`, `top5` as accuracy, `img_size`, `crop_pct`, `interpolation`, `param_count`) beside
/// ours (`top1_err`, …: error, the paper's convention).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Experiment,
    Model,
    Protocol,
    ProtocolKind,
    Setting,
    Labels,
    Top1,
    Top5,
    Top1Err,
    Top1ErrCiLow,
    Top1ErrCiHigh,
    Top5Err,
    Top5ErrCiLow,
    Top5ErrCiHigh,
    Images,
    Skipped,
    LabelsExcluded,
    Nll,
    Ece,
    ParamCount,
    ImgSize,
    CropPct,
    Interpolation,
    Antialias,
    GmacsPerImage,
    ClaimKind,
    ClaimedTop1Err,
    ClaimedTop5Err,
    ClaimTestImages,
    DeltaTop1,
    DeltaTop5,
    Tolerance,
    ClaimSource,
    Status,
    Reason,
    Weights,
    WeightsSha256,
    ProtocolSummary,
}

/// How a column's cells come from a row, which also fixes its type in the file.
enum Cells {
    /// Always present text (Parquet string, no nulls).
    Text(fn(&ResultRow) -> String),
    /// Text or null.
    OptionalText(fn(&ResultRow) -> Option<String>),
    /// A number or null (f64).
    Number(fn(&ResultRow) -> Option<f64>),
    /// A percentage or percentage points, or null (f64): full precision in Parquet, two
    /// decimals in the CSV (what 1/N for a test set of thousands supports).
    Percent(fn(&ResultRow) -> Option<f64>),
    /// A count (u64).
    Count(fn(&ResultRow) -> usize),
    /// A count or null (u64).
    OptionalCount(fn(&ResultRow) -> Option<usize>),
    /// Yes, no or null.
    Flag(fn(&ResultRow) -> Option<bool>),
}

/// Accuracy in percent from an error in percent (timm's `top1` / `top5`).
fn accuracy(m: Option<crate::report::Measured>) -> Option<f64> {
    m.map(|m| 100.0 - m.err)
}

fn two_decimals(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

impl Column {
    pub const ALL: [Column; 38] = [
        Column::Experiment,
        Column::Model,
        Column::Protocol,
        Column::ProtocolKind,
        Column::Setting,
        Column::Labels,
        Column::Top1,
        Column::Top5,
        Column::Top1Err,
        Column::Top1ErrCiLow,
        Column::Top1ErrCiHigh,
        Column::Top5Err,
        Column::Top5ErrCiLow,
        Column::Top5ErrCiHigh,
        Column::Images,
        Column::Skipped,
        Column::LabelsExcluded,
        Column::Nll,
        Column::Ece,
        Column::ParamCount,
        Column::ImgSize,
        Column::CropPct,
        Column::Interpolation,
        Column::Antialias,
        Column::GmacsPerImage,
        Column::ClaimKind,
        Column::ClaimedTop1Err,
        Column::ClaimedTop5Err,
        Column::ClaimTestImages,
        Column::DeltaTop1,
        Column::DeltaTop5,
        Column::Tolerance,
        Column::ClaimSource,
        Column::Status,
        Column::Reason,
        Column::Weights,
        Column::WeightsSha256,
        Column::ProtocolSummary,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Column::Experiment => "experiment",
            Column::Model => "model",
            Column::Protocol => "protocol",
            Column::ProtocolKind => "protocol_kind",
            Column::Setting => "setting",
            Column::Labels => "labels",
            Column::Top1 => "top1",
            Column::Top5 => "top5",
            Column::Top1Err => "top1_err",
            Column::Top1ErrCiLow => "top1_err_ci_low",
            Column::Top1ErrCiHigh => "top1_err_ci_high",
            Column::Top5Err => "top5_err",
            Column::Top5ErrCiLow => "top5_err_ci_low",
            Column::Top5ErrCiHigh => "top5_err_ci_high",
            Column::Images => "images",
            Column::Skipped => "skipped",
            Column::LabelsExcluded => "labels_excluded",
            Column::Nll => "nll",
            Column::Ece => "ece",
            Column::ParamCount => "param_count",
            Column::ImgSize => "img_size",
            Column::CropPct => "crop_pct",
            Column::Interpolation => "interpolation",
            Column::Antialias => "antialias",
            Column::GmacsPerImage => "gmacs_per_image",
            Column::ClaimKind => "claim_kind",
            Column::ClaimedTop1Err => "claimed_top1_err",
            Column::ClaimedTop5Err => "claimed_top5_err",
            Column::ClaimTestImages => "claim_test_images",
            Column::DeltaTop1 => "delta_top1",
            Column::DeltaTop5 => "delta_top5",
            Column::Tolerance => "tolerance",
            Column::ClaimSource => "claim_source",
            Column::Status => "status",
            Column::Reason => "reason",
            Column::Weights => "weights",
            Column::WeightsSha256 => "weights_sha256",
            Column::ProtocolSummary => "protocol_summary",
        }
    }

    fn cells(self) -> Cells {
        match self {
            Column::Experiment => Cells::Text(|r| r.experiment.clone()),
            Column::Model => Cells::Text(|r| r.model.clone()),
            Column::Protocol => Cells::Text(|r| r.protocol.clone()),
            Column::ProtocolKind => {
                Cells::Text(|r| format!("{} {}", r.protocol_kind.numeral(), r.protocol_kind.short_name()))
            }
            Column::Setting => Cells::OptionalText(|r| r.setting.clone()),
            Column::Labels => Cells::Text(|r| r.labels.clone()),
            Column::Top1 => Cells::Percent(|r| accuracy(r.top1)),
            Column::Top5 => Cells::Percent(|r| accuracy(r.top5)),
            Column::Top1Err => Cells::Percent(|r| r.top1.map(|m| m.err)),
            Column::Top1ErrCiLow => Cells::Percent(|r| r.top1.map(|m| m.low)),
            Column::Top1ErrCiHigh => Cells::Percent(|r| r.top1.map(|m| m.high)),
            Column::Top5Err => Cells::Percent(|r| r.top5.map(|m| m.err)),
            Column::Top5ErrCiLow => Cells::Percent(|r| r.top5.map(|m| m.low)),
            Column::Top5ErrCiHigh => Cells::Percent(|r| r.top5.map(|m| m.high)),
            Column::Images => Cells::Count(|r| r.images),
            Column::Skipped => Cells::Count(|r| r.skipped),
            Column::LabelsExcluded => Cells::Count(|r| r.labels_excluded),
            // Nats and a fraction, not percentages: full precision in both files.
            Column::Nll => Cells::Number(|r| r.nll),
            Column::Ece => Cells::Number(|r| r.ece),
            Column::ParamCount => Cells::Number(|r| r.param_count_m),
            Column::ImgSize => Cells::OptionalCount(|r| r.setup.img_size.map(|s| s as usize)),
            Column::CropPct => Cells::Number(|r| r.setup.crop_pct),
            Column::Interpolation => Cells::OptionalText(|r| r.setup.interpolation.clone()),
            Column::Antialias => Cells::Flag(|r| r.setup.antialias),
            Column::GmacsPerImage => Cells::Number(|r| r.gmacs_per_image),
            Column::ClaimKind => Cells::OptionalText(|r| r.claim_kind.map(|k| k.word().to_string())),
            Column::ClaimedTop1Err => Cells::Percent(|r| r.claimed_top1_err),
            Column::ClaimedTop5Err => Cells::Percent(|r| r.claimed_top5_err),
            Column::ClaimTestImages => Cells::OptionalCount(|r| r.claim_test_images),
            Column::DeltaTop1 => Cells::Percent(|r| r.delta_top1),
            Column::DeltaTop5 => Cells::Percent(|r| r.delta_top5),
            Column::Tolerance => Cells::Percent(|r| r.tolerance),
            Column::ClaimSource => Cells::OptionalText(|r| r.claim_source.clone()),
            Column::Status => Cells::Text(|r| r.status.word().to_string()),
            Column::Reason => Cells::OptionalText(|r| r.status.reason().map(str::to_string)),
            Column::Weights => Cells::OptionalText(|r| r.setup.weights.clone()),
            Column::WeightsSha256 => Cells::OptionalText(|r| r.setup.weights_sha256.clone()),
            Column::ProtocolSummary => Cells::Text(|r| r.protocol_summary.clone()),
        }
    }

    /// The column's cells; `rounded`: percentages to two decimals (the CSV).
    fn series(self, rows: &[ResultRow], rounded: bool) -> Series {
        let name = self.name().into();
        match self.cells() {
            Cells::Text(f) => Series::new(name, rows.iter().map(f).collect::<Vec<String>>()),
            Cells::OptionalText(f) => Series::new(name, rows.iter().map(f).collect::<Vec<Option<String>>>()),
            Cells::Number(f) => Series::new(name, rows.iter().map(f).collect::<Vec<Option<f64>>>()),
            Cells::Percent(f) => {
                let round = |v: f64| if rounded { two_decimals(v) } else { v };
                Series::new(name, rows.iter().map(|r| f(r).map(round)).collect::<Vec<Option<f64>>>())
            }
            Cells::Count(f) => Series::new(name, rows.iter().map(|r| f(r) as u64).collect::<Vec<u64>>()),
            Cells::OptionalCount(f) => {
                Series::new(name, rows.iter().map(|r| f(r).map(|n| n as u64)).collect::<Vec<Option<u64>>>())
            }
            Cells::Flag(f) => Series::new(name, rows.iter().map(f).collect::<Vec<Option<bool>>>()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("cannot encode {path}: {error}")]
    Encode { path: PathBuf, error: PolarsError },
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("cannot read {path}: {error} (write it with `resnet-audit audit --out {dir}`)")]
    Missing { path: PathBuf, dir: PathBuf, error: std::io::Error },
    #[error("cannot read {path}: {error}")]
    Decode { path: PathBuf, error: PolarsError },
    #[error("cannot read {path}: column `{column}`: {error}")]
    Column { path: PathBuf, column: &'static str, error: PolarsError },
}

/// The rows as a table, one column per [`Column`], in order, at full precision (Parquet).
pub fn table(rows: &[ResultRow]) -> Result<DataFrame, PolarsError> {
    frame(rows, false)
}

/// [`table`] with percentages rounded to two decimals, as `results.csv` holds them.
pub fn rounded_table(rows: &[ResultRow]) -> Result<DataFrame, PolarsError> {
    frame(rows, true)
}

fn frame(rows: &[ResultRow], rounded: bool) -> Result<DataFrame, PolarsError> {
    DataFrame::new_infer_height(Column::ALL.iter().map(|c| c.series(rows, rounded).into()).collect())
}

/// Writes `results.parquet` and `results.csv` into `out`.
pub fn write_tables(rows: &[ResultRow], out: &Path) -> Result<(), TableError> {
    let parquet = out.join("results.parquet");
    let csv = out.join("results.csv");
    let encode = |path: &Path| {
        let path = path.to_path_buf();
        move |error| TableError::Encode { path, error }
    };
    let mut frame = table(rows).map_err(encode(&parquet))?;
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes).finish(&mut frame).map_err(encode(&parquet))?;
    atomic_write(&parquet, &bytes)?;
    write_csv(rows, &csv)
}

/// Writes the table as CSV to `path` (percentages rounded to two decimals): `results.csv`, and
/// `eval --results-file`.
pub fn write_csv(rows: &[ResultRow], path: &Path) -> Result<(), TableError> {
    let encode = |error| TableError::Encode { path: path.to_path_buf(), error };
    let mut frame = rounded_table(rows).map_err(encode)?;
    let mut bytes = Vec::new();
    CsvWriter::new(&mut bytes).finish(&mut frame).map_err(encode)?;
    atomic_write(path, &bytes)?;
    Ok(())
}

/// `results.parquet` of a report folder, read back through the schema.
pub struct WrittenTable {
    path: PathBuf,
    frame: DataFrame,
}

impl WrittenTable {
    pub fn read(dir: &Path) -> Result<Self, TableError> {
        let path = dir.join("results.parquet");
        let file = std::fs::File::open(&path).map_err(|error| TableError::Missing {
            path: path.clone(),
            dir: dir.to_path_buf(),
            error,
        })?;
        let frame =
            ParquetReader::new(file).finish().map_err(|error| TableError::Decode { path: path.clone(), error })?;
        Ok(Self { path, frame })
    }

    pub fn height(&self) -> usize {
        self.frame.height()
    }

    fn column_error(&self, column: Column) -> impl FnOnce(PolarsError) -> TableError + '_ {
        move |error| TableError::Column { path: self.path.clone(), column: column.name(), error }
    }

    /// A text column's cells (null as `None`).
    pub fn text(&self, column: Column) -> Result<Vec<Option<String>>, TableError> {
        debug_assert!(matches!(column.cells(), Cells::Text(_) | Cells::OptionalText(_)), "{column:?} is not text");
        let series = self.frame.column(column.name()).map_err(self.column_error(column))?;
        let strings = series.str().map_err(self.column_error(column))?;
        Ok((0..strings.len()).map(|i| strings.get(i).map(str::to_string)).collect())
    }

    /// A number column's cells (null as `None`).
    pub fn numbers(&self, column: Column) -> Result<Vec<Option<f64>>, TableError> {
        debug_assert!(
            matches!(column.cells(), Cells::Number(_) | Cells::Percent(_)),
            "{column:?} is not a number column"
        );
        let series = self.frame.column(column.name()).map_err(self.column_error(column))?;
        let values = series.f64().map_err(self.column_error(column))?;
        Ok((0..values.len()).map(|i| values.get(i)).collect())
    }
}
