//! Top-1 error per class for each (model, protocol): `per_class.parquet` / `per_class.csv` beside
//! the results table, and the classes whose error moved most between two protocols of a model.
//!
//! A class is the dataset's label of the image (also under a multi-label set, whose judge decides
//! correctness); skipped images and images the label set does not score count nowhere.

use std::path::Path;

use polars::prelude::{CsvWriter, DataFrame, NamedFrom, ParquetWriter, SerWriter, Series};

use super::flips::Judge;
use super::table::TableError;
use crate::fsio::atomic_write;
use crate::report::ClassChange;
use crate::store::ImageResult;

/// The per-class table's files inside the report folder.
pub const PER_CLASS_PARQUET: &str = "per_class.parquet";
pub const PER_CLASS_CSV: &str = "per_class.csv";

/// One class under one (model, protocol).
#[derive(Debug, Clone, PartialEq)]
pub struct ClassError {
    pub class: usize,
    /// Scored images of the class.
    pub images: usize,
    /// Of those, top-1 errors.
    pub top1_errors: usize,
}

impl ClassError {
    /// Top-1 error in percent; `None` for a class with no scored image.
    pub fn top1_err(&self) -> Option<f64> {
        (self.images > 0).then(|| 100.0 * self.top1_errors as f64 / self.images as f64)
    }
}

/// One row of the per-class table.
#[derive(Debug, Clone, PartialEq)]
pub struct PerClassRow {
    pub experiment: String,
    pub model: String,
    pub protocol: String,
    pub class_name: String,
    pub error: ClassError,
}

/// Per class (index = class), over `classes` classes. An image whose label is outside the class
/// list is not counted (the store checks labels against the dataset's, so none is).
pub fn per_class(results: &[ImageResult], classes: usize, labels: &impl Judge) -> Vec<ClassError> {
    let mut out: Vec<ClassError> = (0..classes).map(|class| ClassError { class, images: 0, top1_errors: 0 }).collect();
    for result in results {
        let (Some(correct), Some(entry)) = (labels.judge(result), out.get_mut(result.label as usize)) else {
            continue;
        };
        entry.images += 1;
        entry.top1_errors += usize::from(!correct.top1);
    }
    out
}

/// The `n` classes with the largest |Δ top-1 error| from `from` to `to` (ties: lower class
/// index first; classes without a scored image on either side and unchanged classes are left out).
pub fn largest_changes(from: &[ClassError], to: &[ClassError], names: &[String], n: usize) -> Vec<ClassChange> {
    let mut changes: Vec<ClassChange> = from
        .iter()
        .zip(to)
        .filter_map(|(a, b)| {
            let (from_err, to_err) = (a.top1_err()?, b.top1_err()?);
            (from_err != to_err).then(|| ClassChange {
                class: a.class,
                class_name: names.get(a.class).cloned().unwrap_or_else(|| a.class.to_string()),
                images: a.images.min(b.images),
                from_err,
                to_err,
            })
        })
        .collect();
    changes.sort_by(|a, b| b.delta().abs().total_cmp(&a.delta().abs()).then(a.class.cmp(&b.class)));
    changes.truncate(n);
    changes
}

fn frame(rows: &[PerClassRow], rounded: bool) -> Result<DataFrame, polars::prelude::PolarsError> {
    let text =
        |name: &str, f: fn(&PerClassRow) -> String| Series::new(name.into(), rows.iter().map(f).collect::<Vec<_>>());
    let count = |name: &str, f: fn(&PerClassRow) -> usize| {
        Series::new(name.into(), rows.iter().map(|r| f(r) as u64).collect::<Vec<u64>>())
    };
    let round = |v: f64| if rounded { (v * 100.0).round() / 100.0 } else { v };
    let columns = vec![
        text("experiment", |r| r.experiment.clone()),
        text("model", |r| r.model.clone()),
        text("protocol", |r| r.protocol.clone()),
        count("class", |r| r.error.class),
        text("class_name", |r| r.class_name.clone()),
        count("images", |r| r.error.images),
        count("top1_errors", |r| r.error.top1_errors),
        Series::new("top1_err".into(), rows.iter().map(|r| r.error.top1_err().map(round)).collect::<Vec<_>>()),
    ];
    DataFrame::new_infer_height(columns.into_iter().map(Into::into).collect())
}

/// Writes `per_class.parquet` (full precision) and `per_class.csv` (errors to two decimals) into `out`.
pub fn write_per_class(rows: &[PerClassRow], out: &Path) -> Result<(), TableError> {
    for (name, rounded) in [(PER_CLASS_PARQUET, false), (PER_CLASS_CSV, true)] {
        let path = out.join(name);
        let encode = |error| TableError::Encode { path: path.clone(), error };
        let mut table = frame(rows, rounded).map_err(encode)?;
        let mut bytes = Vec::new();
        if rounded {
            CsvWriter::new(&mut bytes).finish(&mut table).map_err(encode)?;
        } else {
            ParquetWriter::new(&mut bytes).finish(&mut table).map_err(encode)?;
        }
        atomic_write(&path, &bytes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::LabelSet;
    use crate::store::Scored;

    fn guess(label: u32, class: i64) -> ImageResult {
        ImageResult {
            image: format!("{label}-{class}"),
            label,
            outcome: Ok(Scored { top5: vec![(class, 0.5)], probs: vec![0.1; 3], unmapped_prob: 0.0 }),
        }
    }

    #[test]
    fn per_class_counts_and_largest_changes() {
        let skipped = ImageResult { image: "s".into(), label: 0, outcome: Err("bad".into()) };
        let a = per_class(&[guess(0, 0), guess(0, 1), guess(1, 1), guess(2, 0), skipped.clone()], 3, &LabelSet::Single);
        assert_eq!(a.iter().map(|c| (c.images, c.top1_errors)).collect::<Vec<_>>(), [(2, 1), (1, 0), (1, 1)]);
        assert_eq!(a[0].top1_err(), Some(50.0));
        let b = per_class(&[guess(0, 0), guess(0, 0), guess(1, 1), guess(2, 2)], 3, &LabelSet::Single);
        let names: Vec<String> = ["cat", "dog", "fox"].map(String::from).into();
        let changes = largest_changes(&a, &b, &names, 5);
        // fox: 100 → 0, cat: 50 → 0; dog unchanged is left out.
        assert_eq!(
            changes.iter().map(|c| (c.class_name.as_str(), c.delta())).collect::<Vec<_>>(),
            [("fox", -100.0), ("cat", -50.0)]
        );
        assert_eq!(largest_changes(&a, &b, &names, 1).len(), 1);
    }
}
