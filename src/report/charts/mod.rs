//! The report's charts (plotters): each chart is drawn twice from the same prepared data, once
//! into an RGB buffer (encoded as `<stem>.png`) and once as `<stem>.svg`, and each file is
//! written with [`crate::fsio::atomic_write`].
//!
//! Text uses DejaVu Sans embedded in the binary (`assets/DejaVuSans.ttf`, license beside it),
//! registered with plotters' `ab_glyph` backend under the family name [`FONT_FAMILY`]: no
//! fontconfig or freetype, the same glyph metrics on every machine. The SVG names the same
//! family, so a browser substitutes its own sans-serif.
//!
//! What is plotted: only rows of the protocol as written (`setting == None`; sweep rows are
//! variants) and, for measurements, only finite `top1` values. Non-finite numbers are skipped,
//! never drawn; an input with nothing left to draw is [`ChartError::NothingToPlot`].
//!
//! Layout: this file holds the public functions, the errors and the output (files, rendering);
//! `style` the font, colours, text fitting and markers; `axis` ranges, ticks and the one mesh
//! set-up all charts share; `legend` the two legend layouts; then one file per chart.

mod axis;
mod compute;
mod curves;
mod deltas;
mod ladder;
mod legend;
mod reliability;
mod style;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{ChartFiles, ImageByImage, ProtocolCalibration, ResultRow};
use compute::{Compute, COMPUTE_TITLE};
use curves::{CurveProblem, Curves};
use deltas::{Deltas, DELTAS_TITLE};
use ladder::{Ladder, LADDER_TITLE};
use reliability::Reliability;
pub use style::FONT_FAMILY;

/// Default width of a chart, in pixels (the SVG uses the same user units).
pub const WIDTH: u32 = 1200;
/// Default height of a chart, in pixels; the claim-deltas chart grows with its rows.
pub const HEIGHT: u32 = 700;

/// What went wrong, and for which output (`dir/<stem>.{png,svg}` or one of the two files).
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("nothing to plot: {}: {why}", file.display())]
    NothingToPlot { file: PathBuf, why: &'static str },
    #[error("{}: invalid chart input: {problem}", file.display())]
    InvalidInput { file: PathBuf, problem: InputProblem },
    #[error("{}: the embedded chart font (assets/DejaVuSans.ttf) could not be registered", file.display())]
    Font { file: PathBuf },
    /// plotters' drawing errors differ per backend (bitmap, SVG), so their text is kept.
    #[error("{}: drawing failed: {why}", file.display())]
    Draw { file: PathBuf, why: String },
    #[error("{}: PNG encoding failed: {source}", file.display())]
    Encode {
        file: PathBuf,
        #[source]
        source: image::ImageError,
    },
    #[error("{}: could not write: {source}", file.display())]
    Write {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Why the input of a chart cannot be drawn.
#[derive(Debug, thiserror::Error)]
pub enum InputProblem {
    /// The stem becomes a file name beside the report.
    #[error("chart stem {stem:?} is not a plain file name")]
    Stem { stem: String },
    /// A training run whose error series is neither empty nor as long as its epochs.
    #[error("run {run:?}: {series} has {values} values for {epochs} epochs")]
    CurveLength { run: String, series: &'static str, values: usize, epochs: usize },
}

/// One training run for [`training_curves`]: errors are fractions (0..1), drawn in percent.
#[derive(Debug, Clone, PartialEq)]
pub struct CurveSeries {
    pub label: String,
    pub epochs: Vec<f64>,
    /// Training error per epoch; may be empty (no training curve), else as long as `epochs`.
    pub train_error: Vec<f64>,
    /// Validation error per epoch; may be empty, else as long as `epochs`.
    pub val_error: Vec<f64>,
}

/// Per model: measured top-1 error for (i)→(ii)→(iii)→(iv) beside the claimed ladder.
/// One protocol ladder per experiment (`<stem>-<experiment>`), so that a dataset's errors are
/// never drawn on the scale of another's (the demo's 20–80% beside ImageNet's 20–25%):
/// experiments with measured rows first (most first), then those with claims only; experiments
/// with nothing finite to draw get no chart.
pub fn protocol_ladders(rows: &[ResultRow], dir: &Path, stem: &str) -> Result<Vec<ChartFiles>, ChartError> {
    let mut experiments: Vec<(&str, usize)> = Vec::new();
    for r in rows {
        let measured = usize::from(r.top1.is_some());
        match experiments.iter_mut().find(|(e, _)| *e == r.experiment) {
            Some((_, n)) => *n += measured,
            None => experiments.push((&r.experiment, measured)),
        }
    }
    experiments.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    let mut written = Vec::new();
    for (experiment, _) in experiments {
        let own: Vec<ResultRow> = rows.iter().filter(|r| r.experiment == experiment).cloned().collect();
        let slug: String = experiment
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
            .collect();
        let title = format!("{LADDER_TITLE}: {experiment}");
        match ladder_chart(&own, dir, &format!("{stem}-{slug}"), &title) {
            Ok(files) => written.push(files),
            Err(ChartError::NothingToPlot { .. }) => {}
            Err(other) => return Err(other),
        }
    }
    Ok(written)
}

/// All rows in one ladder (one experiment's rows: see [`protocol_ladders`]).
pub fn protocol_ladder(rows: &[ResultRow], dir: &Path, stem: &str) -> Result<ChartFiles, ChartError> {
    ladder_chart(rows, dir, stem, LADDER_TITLE)
}

fn ladder_chart(rows: &[ResultRow], dir: &Path, stem: &str, title: &str) -> Result<ChartFiles, ChartError> {
    let out = Output::new(dir, stem)?;
    let chart = Ladder::prepare(rows, title).ok_or_else(|| ChartError::NothingToPlot {
        file: out.both(),
        why: "no row of a protocol as written has a finite measured or claimed top-1 error",
    })?;
    out.render(&chart)?;
    Ok(out.files(
        title,
        "Each colour is one model (or ensemble) of the experiment: solid lines with filled markers and 95% CI \
         whiskers are measured top-1 error along the protocols (i) → (iv), dashed lines with \
         hollow markers the numbers it is compared with for the same protocols, as the \
         legend names them: published claims or this project's recorded baselines (lower is better). \
         Ensembles are their own series with a point at (iv); a model that was not run shows \
         only its claims, and several protocols of one kind are drawn side by side.",
    ))
}

/// Top-1 error vs test-time multiply-adds per image (log x axis), one point per (model, protocol).
pub fn error_vs_compute(rows: &[ResultRow], dir: &Path, stem: &str) -> Result<ChartFiles, ChartError> {
    let out = Output::new(dir, stem)?;
    let chart = Compute::prepare(rows).ok_or_else(|| ChartError::NothingToPlot {
        file: out.both(),
        why: "no measured row of a protocol as written has a finite top-1 error and a positive \
              multiply-add count",
    })?;
    out.render(&chart)?;
    let labels = if chart.labelled { ", labelled with its model id" } else { "" };
    Ok(out.files(
        COMPUTE_TITLE,
        &format!(
            "Each marker is one measured (experiment, model, protocol){labels}: test-time \
             multiply-adds per image on a log scale against top-1 error with its 95% CI, shape and \
             colour giving the protocol kind. Lower is better, so a protocol earns its extra \
             compute when its marker sits lower than the cheaper ones of the same model."
        ),
    ))
}

/// Measured − claimed (top-1, points) per row with a claim: the tolerance band and the 95% CI
/// whiskers (CI minus claim).
pub fn claim_deltas(rows: &[ResultRow], dir: &Path, stem: &str) -> Result<ChartFiles, ChartError> {
    let out = Output::new(dir, stem)?;
    let chart = Deltas::prepare(rows).ok_or_else(|| ChartError::NothingToPlot {
        file: out.both(),
        why: "no row of a protocol as written has a finite claimed top-1 error",
    })?;
    out.render(&chart)?;
    Ok(out.files(
        DELTAS_TITLE,
        "One row per published top-1 claim: the marker is measured minus claimed error in \
         points (right of 0: worse than claimed), the whisker is the 95% CI minus the claim and \
         the grey band the allowed tolerance. Green markers reproduced the claim, red ones \
         drifted; rows marked \u{201c}not run\u{201d} have a claim but no measurement.",
    ))
}

/// One reliability diagram per model of an experiment's image-by-image analysis
/// (`reliability-<experiment>-<model>`), its protocols as lines; models with nothing to draw get none.
pub fn reliability_diagrams(analysis: &ImageByImage, dir: &Path) -> Result<Vec<ChartFiles>, ChartError> {
    let mut models: Vec<&str> = Vec::new();
    for c in &analysis.calibration {
        if !models.contains(&c.model.as_str()) {
            models.push(&c.model);
        }
    }
    let mut written = Vec::new();
    for model in models {
        let protocols: Vec<&ProtocolCalibration> = analysis.calibration.iter().filter(|c| c.model == model).collect();
        let title = format!("Reliability: {} / {model}", analysis.experiment);
        let Some(chart) = Reliability::prepare(&title, &protocols) else { continue };
        let out = Output::new(dir, &format!("reliability-{}-{}", slug(&analysis.experiment), slug(model)))?;
        out.render(&chart)?;
        written.push(out.files(
            &title,
            "Top-1 accuracy against top-1 confidence, images in 15 equal-width confidence bins (each \
             marker one non-empty bin, at its mean confidence), one line per protocol: on the dashed \
             diagonal a model is as often right as it is confident; below it, over-confident. The \
             legend gives each protocol's expected calibration error and NLL.",
        ));
    }
    Ok(written)
}

/// A file-name-safe form of an id.
fn slug(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect()
}

/// Training curves like the paper's Figures 4/6: error (%) vs epoch; thin dashed = training
/// error, bold = validation error, one colour per run.
pub fn training_curves(runs: &[CurveSeries], dir: &Path, stem: &str, title: &str) -> Result<ChartFiles, ChartError> {
    let out = Output::new(dir, stem)?;
    let chart = Curves::prepare(runs, title).map_err(|e| match e {
        CurveProblem::Empty => {
            ChartError::NothingToPlot { file: out.both(), why: "no run has a finite (epoch, error) point" }
        }
        CurveProblem::Length(problem) => ChartError::InvalidInput { file: out.both(), problem },
    })?;
    out.render(&chart)?;
    Ok(out.files(
        title,
        "Top-1 error (%) against epoch, one colour per run: thin dashed lines are training \
         error, bold solid lines validation error.",
    ))
}

// ---------------------------------------------------------------------------------------------
// Output: file names, font registration, rendering to both backends, atomic writes.

/// Why drawing failed, as text (plotters' error types differ per backend).
struct DrawError(String);

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for DrawError {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        DrawError(e.to_string())
    }
}

/// A chart with its data prepared: draws itself on any plotters backend.
trait Chart {
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError>;
}

/// Where one chart goes: `dir/<stem>.png` and `dir/<stem>.svg`.
struct Output {
    dir: PathBuf,
    stem: String,
}

impl Output {
    fn new(dir: &Path, stem: &str) -> Result<Self, ChartError> {
        let out = Output { dir: dir.to_path_buf(), stem: stem.to_string() };
        // The stem becomes a file name beside the report: no separators, nothing hidden.
        let bad = stem.is_empty()
            || stem.starts_with('.')
            || stem.contains(['/', '\\'])
            || stem.chars().any(char::is_control);
        if bad {
            return Err(ChartError::InvalidInput {
                file: out.both(),
                problem: InputProblem::Stem { stem: stem.to_string() },
            });
        }
        Ok(out)
    }

    /// `dir/<stem>.{png,svg}`, for errors about the chart as a whole.
    fn both(&self) -> PathBuf {
        self.dir.join(format!("{}.{{png,svg}}", self.stem))
    }

    fn path(&self, ext: &str) -> PathBuf {
        self.dir.join(format!("{}.{ext}", self.stem))
    }

    fn files(&self, title: &str, caption: &str) -> ChartFiles {
        ChartFiles {
            title: title.to_string(),
            caption: caption.to_string(),
            png: format!("{}.png", self.stem),
            svg: format!("{}.svg", self.stem),
        }
    }

    fn render(&self, chart: &impl Chart) -> Result<(), ChartError> {
        if !style::ensure_font() {
            return Err(ChartError::Font { file: self.both() });
        }
        let (w, h) = chart.size();

        let png_path = self.path("png");
        let mut rgb = vec![0u8; w as usize * h as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
            let drawn = chart.draw(&root).and_then(|()| Ok(root.present()?));
            drawn.map_err(|DrawError(why)| ChartError::Draw { file: png_path.clone(), why })?;
        }
        let mut png = Vec::new();
        {
            use image::ImageEncoder;
            image::codecs::png::PngEncoder::new(&mut png)
                .write_image(&rgb, w, h, image::ExtendedColorType::Rgb8)
                .map_err(|source| ChartError::Encode { file: png_path.clone(), source })?;
        }
        write(&png_path, &png)?;

        let svg_path = self.path("svg");
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
            let drawn = chart.draw(&root).and_then(|()| Ok(root.present()?));
            drawn.map_err(|DrawError(why)| ChartError::Draw { file: svg_path.clone(), why })?;
        }
        write(&svg_path, svg.as_bytes())
    }
}

/// Writes one chart file atomically (creating the folder), so a reader never sees half a chart.
fn write(path: &Path, bytes: &[u8]) -> Result<(), ChartError> {
    crate::fsio::atomic_write(path, bytes).map_err(|e| ChartError::Write { file: e.path, source: e.source })
}
