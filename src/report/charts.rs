//! The report's charts (plotters): each chart is drawn twice from the same prepared data, once
//! into an RGB buffer (encoded as `<stem>.png`) and once as `<stem>.svg`, and each file is
//! written atomically (a temporary name in the same folder, then a rename).
//!
//! Text uses DejaVu Sans embedded in the binary (`assets/DejaVuSans.ttf`, license beside it),
//! registered with plotters' `ab_glyph` backend under the family name [`FONT_FAMILY`]: no
//! fontconfig or freetype, the same glyph metrics on every machine. The SVG names the same
//! family, so a browser substitutes its own sans-serif.
//!
//! What is plotted: only rows of the protocol as written (`setting == None`; sweep rows are
//! variants) and, for measurements, only finite `top1` values. Non-finite numbers are skipped,
//! never drawn; an input with nothing left to draw is [`ChartError::NothingToPlot`].

use std::collections::HashMap;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{ChartFiles, Measured, ProtocolKind, ResultRow, Status};

/// Default size of a chart, in pixels (the SVG uses the same user units).
pub const WIDTH: u32 = 1200;
pub const HEIGHT: u32 = 700;

/// The family name the embedded font is registered under (and named in the SVGs).
pub const FONT_FAMILY: &str = "sans-serif";

static FONT_TTF: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

// Text sizes in plotters units: ab_glyph scales a glyph so that ascent − descent equals the
// size, so the em is about size / 1.16 px; 18 gives ≈ 15.5 px text in the PNG.
const TITLE_SIZE: f64 = 28.0;
const DESC_SIZE: f64 = 21.0;
const TICK_SIZE: f64 = 18.0;
const LEGEND_SIZE: f64 = 18.0;
const POINT_LABEL_SIZE: f64 = 17.0;

/// Bounds on the width of the legend panel right of the ladder and training-curve charts: wide
/// enough for typical "experiment/model" labels, narrow enough to leave the plot ≥ 700 px.
const SIDE_LEGEND_MIN_W: i32 = 260;
const SIDE_LEGEND_MAX_W: i32 = 450;
const LEGEND_ROW_H: i32 = 30;
const LEGEND_SAMPLE_W: i32 = 54;

/// The four ladder positions, in order.
const KINDS: [ProtocolKind; 4] =
    [ProtocolKind::CenterCrop, ProtocolKind::TenCrop, ProtocolKind::FullyConvolutional, ProtocolKind::Ensemble];

/// Category10: distinct on white and in print.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
const GREEN_OK: RGBColor = RGBColor(34, 139, 34);
const RED_DRIFT: RGBColor = RGBColor(214, 39, 40);
const BLUE_MEASURED: RGBColor = RGBColor(31, 119, 180);
const GREY_TEXT: RGBColor = RGBColor(90, 90, 90);
const GRID: RGBColor = RGBColor(225, 225, 225);
const AXIS: RGBColor = RGBColor(60, 60, 60);

/// What went wrong, and for which output (`dir/<stem>.{png,svg}` or one of the two files).
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("nothing to plot: {}: {why}", file.display())]
    NothingToPlot { file: PathBuf, why: String },
    #[error("{}: invalid chart input: {why}", file.display())]
    InvalidInput { file: PathBuf, why: String },
    #[error("{}: the embedded chart font (assets/DejaVuSans.ttf) could not be registered", file.display())]
    Font { file: PathBuf },
    #[error("{}: drawing failed: {why}", file.display())]
    Draw { file: PathBuf, why: String },
    #[error("{}: PNG encoding failed: {why}", file.display())]
    Encode { file: PathBuf, why: String },
    #[error("{}: could not write: {source}", file.display())]
    Write {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
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
pub fn protocol_ladder(rows: &[ResultRow], dir: &Path, stem: &str) -> Result<ChartFiles, ChartError> {
    let out = Output::new(dir, stem)?;
    let chart = Ladder::prepare(rows).ok_or_else(|| ChartError::NothingToPlot {
        file: out.both(),
        why: "no row of a protocol as written has a finite measured or claimed top-1 error".into(),
    })?;
    out.render(&chart)?;
    Ok(out.files(
        LADDER_TITLE,
        "Each colour is one experiment/model: solid lines with filled markers and 95% CI \
         whiskers are measured top-1 error along the protocols (i) → (iv), dashed lines with \
         hollow markers the published claims for the same protocols (lower is better). \
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
              multiply-add count"
            .into(),
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
        why: "no row of a protocol as written has a finite claimed top-1 error".into(),
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

/// Training curves like the paper's Figures 4/6: error (%) vs epoch; thin dashed = training
/// error, bold = validation error, one colour per run.
pub fn training_curves(runs: &[CurveSeries], dir: &Path, stem: &str, title: &str) -> Result<ChartFiles, ChartError> {
    let out = Output::new(dir, stem)?;
    let chart = Curves::prepare(runs, title).map_err(|e| match e {
        CurveProblem::Empty => {
            ChartError::NothingToPlot { file: out.both(), why: "no run has a finite (epoch, error) point".into() }
        }
        CurveProblem::Length(why) => ChartError::InvalidInput { file: out.both(), why },
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
                why: format!("chart stem {stem:?} is not a plain file name"),
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
        ensure_font().map_err(|()| ChartError::Font { file: self.both() })?;
        std::fs::create_dir_all(&self.dir).map_err(|source| ChartError::Write { file: self.dir.clone(), source })?;
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
                .map_err(|e| ChartError::Encode { file: png_path.clone(), why: e.to_string() })?;
        }
        write_atomically(&png_path, &png)?;

        let svg_path = self.path("svg");
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
            let drawn = chart.draw(&root).and_then(|()| Ok(root.present()?));
            drawn.map_err(|DrawError(why)| ChartError::Draw { file: svg_path.clone(), why })?;
        }
        write_atomically(&svg_path, svg.as_bytes())
    }
}

/// Registers the embedded font once per process; plotters keeps it in a global table.
fn ensure_font() -> Result<(), ()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok =
        *REGISTERED.get_or_init(|| plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, FONT_TTF).is_ok());
    if ok {
        Ok(())
    } else {
        Err(())
    }
}

/// Writes `bytes` to a unique temporary name beside `path`, then renames it over `path`, so a
/// reader never sees a half-written chart.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ChartError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let fail = |source| ChartError::Write { file: path.to_path_buf(), source };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp =
        path.with_file_name(format!(".{name}.tmp-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        // Best effort: the temporary file is ours and useless now.
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Shared drawing helpers.

fn font(size: f64) -> FontDesc<'static> {
    FontDesc::new(FontFamily::Name(FONT_FAMILY), size, FontStyle::Normal)
}

fn text_style(size: f64, color: RGBColor) -> TextStyle<'static> {
    font(size).color(&color)
}

/// Width of `text` in pixels; a generous guess if the font cannot measure it.
fn text_width(text: &str, size: f64) -> i32 {
    match font(size).box_size(text) {
        Ok((w, _)) => w as i32,
        Err(_) => (text.chars().count() as f64 * size * 0.62) as i32,
    }
}

/// `text` cut at the end with an ellipsis so that it fits in `max_w` pixels.
fn fit_end(text: &str, size: f64, max_w: i32) -> String {
    if text_width(text, size) <= max_w {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    for keep in (0..chars.len()).rev() {
        let s: String = chars[..keep].iter().chain(['…'].iter()).collect();
        if text_width(&s, size) <= max_w {
            return s;
        }
    }
    "…".to_string()
}

/// `text` cut in the middle with an ellipsis so that it fits in `max_w` pixels: both the
/// experiment (start) and the protocol (end) stay readable.
fn fit_middle(text: &str, size: f64, max_w: i32) -> String {
    if text_width(text, size) <= max_w {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    for keep in (0..chars.len()).rev() {
        let head = keep.div_ceil(2);
        let tail = keep / 2;
        let s: String = chars[..head].iter().chain(['…'].iter()).chain(chars[chars.len() - tail..].iter()).collect();
        if text_width(&s, size) <= max_w {
            return s;
        }
    }
    "…".to_string()
}

/// A linear f64 axis with ticks exactly at `keys` (protocol positions, claim rows). plotters'
/// own `with_key_points` wrapper loses the f64 axis' label formatting, hence this.
struct KeyedAxis {
    linear: RangedCoordf64,
    keys: Vec<f64>,
}

impl KeyedAxis {
    fn new(range: Range<f64>, keys: Vec<f64>) -> Self {
        KeyedAxis { linear: range.into(), keys }
    }
}

impl Ranged for KeyedAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.linear.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        // Bold points only: no light mesh lines between the keys.
        if hint.weight().allow_light_points() {
            vec![]
        } else {
            self.keys.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.linear.range()
    }
}

/// A number for a tick label: no trailing zeros, at most two decimals.
fn fmt_tick(v: f64) -> String {
    let s = if v.abs() >= 100.0 { format!("{v:.0}") } else { format!("{v:.2}") };
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

/// A log-axis tick (1-2-5 steps over any decade): three significant digits, so 0.002 and 0.005
/// stay distinct (two decimals would print them as 0 and 0.01).
fn fmt_log_tick(v: f64) -> String {
    if v <= 0.0 || !v.is_finite() || v >= 1.0 {
        return fmt_tick(v);
    }
    let decimals = (-v.log10().floor()) as usize + 2;
    let s = format!("{v:.decimals$}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `lo..hi` widened by `frac` of its span on each side (at least `min_pad`).
fn padded(lo: f64, hi: f64, frac: f64, min_pad: f64) -> Range<f64> {
    let pad = ((hi - lo) * frac).max(min_pad);
    (lo - pad)..(hi + pad)
}

/// Whether `v` can go on an axis: finite, and small enough that ranges, paddings and pixel
/// mappings built from it stay finite (a percent or GMAC count beyond 1e9 is garbage anyway).
fn plottable(v: f64) -> bool {
    v.is_finite() && v.abs() <= 1e9
}

/// Min and max of the plottable values, if any.
fn extent(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values.into_iter().filter(|v| plottable(*v)).fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// A measurement with finite, ordered numbers, or `None`.
fn finite_measured(m: &Option<Measured>) -> Option<Measured> {
    let m = (*m)?;
    if !(plottable(m.err) && plottable(m.low) && plottable(m.high)) {
        return None;
    }
    Some(Measured { err: m.err, low: m.low.min(m.err), high: m.high.max(m.err) })
}

fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|v| plottable(*v))
}

fn kind_index(kind: ProtocolKind) -> usize {
    match kind {
        ProtocolKind::CenterCrop => 0,
        ProtocolKind::TenCrop => 1,
        ProtocolKind::FullyConvolutional => 2,
        ProtocolKind::Ensemble => 3,
    }
}

fn kind_label(kind: ProtocolKind) -> String {
    format!("{} {}", kind.numeral(), kind.short_name())
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    Circle,
    Square,
    TriangleUp,
    Diamond,
    TriangleDown,
}

const SHAPES: [Shape; 5] = [Shape::Circle, Shape::Square, Shape::TriangleUp, Shape::Diamond, Shape::TriangleDown];

/// Colour and marker of series `i`: ten colours, and the shape shifts each round of ten, so
/// the first 50 series are all distinct and neighbours differ in shape too.
fn series_style(i: usize) -> (RGBColor, Shape) {
    (PALETTE[i % PALETTE.len()], SHAPES[(i + i / PALETTE.len()) % SHAPES.len()])
}

/// Draws a marker at `at`: filled with `color`, or hollow (white inside, so lines behind it do
/// not show through), with a 2 px outline.
fn draw_marker<DB: DrawingBackend, CT: CoordTranslate>(
    area: &DrawingArea<DB, CT>,
    at: CT::From,
    shape: Shape,
    color: RGBColor,
    filled: bool,
    r: i32,
) -> Result<(), DrawError> {
    let fill = if filled { color } else { WHITE }.filled();
    let edge = color.stroke_width(2);
    match shape {
        Shape::Circle => {
            area.draw(&(EmptyElement::at(at) + Circle::new((0, 0), r, fill) + Circle::new((0, 0), r, edge)))?
        }
        Shape::Square => {
            let s = r * 85 / 100;
            area.draw(
                &(EmptyElement::at(at)
                    + Rectangle::new([(-s, -s), (s, s)], fill)
                    + Rectangle::new([(-s, -s), (s, s)], edge)),
            )?
        }
        Shape::TriangleUp | Shape::TriangleDown | Shape::Diamond => {
            let t = r * 6 / 5;
            let h = t * 87 / 100;
            let pts: Vec<(i32, i32)> = match shape {
                Shape::TriangleUp => vec![(0, -t), (h, t / 2), (-h, t / 2)],
                Shape::TriangleDown => vec![(0, t), (h, -t / 2), (-h, -t / 2)],
                _ => vec![(0, -t), (t, 0), (0, t), (-t, 0)],
            };
            let mut outline = pts.clone();
            outline.push(pts[0]);
            area.draw(&(EmptyElement::at(at) + Polygon::new(pts, fill) + PathElement::new(outline, edge)))?
        }
    }
    Ok(())
}

/// What a legend entry shows left of its label.
#[derive(Clone)]
enum Sample {
    /// A line (dashed or solid) with an optional marker in its middle.
    Line {
        color: RGBColor,
        width: u32,
        dashed: bool,
        marker: Option<(Shape, bool)>,
    },
    Marker {
        color: RGBColor,
        shape: Shape,
        filled: bool,
    },
    /// A horizontal whisker (error bar).
    Whisker {
        color: RGBColor,
    },
    /// A shaded box (tolerance band).
    Band {
        color: RGBAColor,
    },
}

#[derive(Clone)]
struct LegendEntry {
    sample: Sample,
    label: String,
}

/// Pixels a sample takes in a left-to-right legend: a lone marker needs less than a line.
fn sample_width(sample: &Sample) -> i32 {
    match sample {
        Sample::Marker { .. } => 18,
        _ => LEGEND_SAMPLE_W,
    }
}

/// Draws `sample` in the `w` pixels from `x`, centred on `y`.
fn draw_sample<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    sample: &Sample,
    x: i32,
    y: i32,
    w: i32,
) -> Result<(), DrawError> {
    let (x0, x1, xm) = (x, x + w, x + w / 2);
    match sample {
        Sample::Line { color, width, dashed, marker: m } => {
            let style = color.stroke_width(*width);
            if *dashed {
                area.draw(&DashedPathElement::new(vec![(x0, y), (x1, y)], 8, 5, style))?;
            } else {
                area.draw(&PathElement::new(vec![(x0, y), (x1, y)], style))?;
            }
            if let Some((shape, filled)) = m {
                draw_marker(area, (xm, y), *shape, *color, *filled, 7)?;
            }
        }
        Sample::Marker { color, shape, filled } => draw_marker(area, (xm, y), *shape, *color, *filled, 7)?,
        Sample::Whisker { color } => {
            area.draw(&ErrorBar::new_horizontal(y, x0 + 4, xm, x1 - 4, color.stroke_width(2), 12))?;
        }
        Sample::Band { color } => {
            area.draw(&Rectangle::new([(x0, y - 10), (x1, y + 10)], color.filled()))?;
        }
    }
    Ok(())
}

/// A legend as one column in `area` (white, framed): entries that do not fit end in "… N more".
fn draw_column_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
) -> Result<(), DrawError> {
    let (xr, yr) = area.get_pixel_range();
    let (w, h) = (xr.end - xr.start, yr.end - yr.start);
    let pad = 12;
    let capacity = ((h - 2 * pad) / LEGEND_ROW_H).max(1) as usize;
    let shown = if entries.len() > capacity { capacity - 1 } else { entries.len() };
    let used_h = (shown.max(1) as i32 + i32::from(entries.len() > shown)) * LEGEND_ROW_H + 2 * pad;
    area.draw(&Rectangle::new([(0, 0), (w - 1, used_h)], WHITE.filled()))?;
    area.draw(&Rectangle::new([(0, 0), (w - 1, used_h)], RGBColor(170, 170, 170).stroke_width(1)))?;
    let text_x = pad + LEGEND_SAMPLE_W + 10;
    let style = text_style(LEGEND_SIZE, BLACK).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, e) in entries.iter().take(shown).enumerate() {
        let y = pad + LEGEND_ROW_H / 2 + i as i32 * LEGEND_ROW_H;
        draw_sample(area, &e.sample, pad, y, LEGEND_SAMPLE_W)?;
        // Cut in the middle: "experiment/model" stays distinguishable at both ends.
        let label = fit_middle(&e.label, LEGEND_SIZE, w - text_x - pad);
        area.draw(&Text::new(label, (text_x, y), style.clone()))?;
    }
    if entries.len() > shown {
        let y = pad + LEGEND_ROW_H / 2 + shown as i32 * LEGEND_ROW_H;
        let more = format!("… and {} more", entries.len() - shown);
        area.draw(&Text::new(more, (pad, y), style.clone()))?;
    }
    Ok(())
}

/// The side panel's width for `entries`: the longest label, within the bounds (longer labels
/// are cut with an ellipsis). Includes the panel's 14 px left and 12 px right margins.
fn side_legend_width(entries: &[LegendEntry]) -> i32 {
    let text = entries.iter().map(|e| text_width(&e.label, LEGEND_SIZE)).max().unwrap_or(0);
    (14 + 12 + LEGEND_SAMPLE_W + 10 + text + 12 + 12).clamp(SIDE_LEGEND_MIN_W, SIDE_LEGEND_MAX_W)
}

fn flow_entry_width(e: &LegendEntry) -> i32 {
    sample_width(&e.sample) + 10 + text_width(&e.label, LEGEND_SIZE) + 34
}

/// Rows a left-to-right legend needs at `width` pixels.
fn flow_rows(entries: &[LegendEntry], width: i32) -> i32 {
    let mut rows = 1;
    let mut x = 0;
    for e in entries {
        let ew = flow_entry_width(e);
        if x > 0 && x + ew > width {
            rows += 1;
            x = 0;
        }
        x += ew;
    }
    rows
}

/// A legend laid out left to right, wrapping, centred in `area`.
fn draw_flow_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
) -> Result<(), DrawError> {
    let (xr, _) = area.get_pixel_range();
    let w = xr.end - xr.start;
    let mut lines: Vec<Vec<&LegendEntry>> = vec![vec![]];
    let mut x = 0;
    for e in entries {
        let ew = flow_entry_width(e);
        if x > 0 && x + ew > w {
            lines.push(vec![]);
            x = 0;
        }
        if let Some(line) = lines.last_mut() {
            line.push(e);
        }
        x += ew;
    }
    let style = text_style(LEGEND_SIZE, BLACK).pos(Pos::new(HPos::Left, VPos::Center));
    for (row, line) in lines.iter().enumerate() {
        let line_w: i32 = line.iter().map(|e| flow_entry_width(e)).sum::<i32>() - 34;
        let mut x = ((w - line_w) / 2).max(0);
        let y = LEGEND_ROW_H / 2 + row as i32 * LEGEND_ROW_H;
        for e in line {
            let sw = sample_width(&e.sample);
            draw_sample(area, &e.sample, x, y, sw)?;
            let label = fit_end(&e.label, LEGEND_SIZE, w - x - sw - 10);
            area.draw(&Text::new(label, (x + sw + 10, y), style.clone()))?;
            x += flow_entry_width(e);
        }
    }
    Ok(())
}

/// White background and the title; returns the area below the title.
fn titled<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, title: &str) -> Result<DrawingArea<DB, Shift>, DrawError> {
    root.fill(&WHITE)?;
    let (xr, _) = root.get_pixel_range();
    let title = fit_end(title, TITLE_SIZE, xr.end - xr.start - 40);
    let body = root.margin(14, 0, 0, 0).titled(&title, text_style(TITLE_SIZE, BLACK))?;
    Ok(body.margin(10, 0, 0, 0))
}

// ---------------------------------------------------------------------------------------------
// (1) The protocol ladder.

const LADDER_TITLE: &str = "Top-1 error along the test-protocol ladder (i) \u{2192} (iv)";

struct LadderSeries {
    label: String,
    color: RGBColor,
    shape: Shape,
    /// (x, measurement), sorted by x.
    measured: Vec<(f64, Measured)>,
    /// (x, claimed error), sorted by x.
    claimed: Vec<(f64, f64)>,
}

struct Ladder {
    series: Vec<LadderSeries>,
    y: Range<f64>,
    legend: Vec<LegendEntry>,
}

impl Ladder {
    fn prepare(rows: &[ResultRow]) -> Option<Ladder> {
        // Group the protocol-as-written rows by (experiment, model), in first-seen order.
        let mut order: Vec<(&str, &str)> = vec![];
        let mut groups: HashMap<(&str, &str), Vec<&ResultRow>> = HashMap::new();
        for r in rows.iter().filter(|r| r.setting.is_none()) {
            let key = (r.experiment.as_str(), r.model.as_str());
            let g = groups.entry(key).or_default();
            if g.is_empty() {
                order.push(key);
            }
            g.push(r);
        }
        // Keep groups with anything finite to draw.
        let usable: Vec<((&str, &str), Vec<&ResultRow>)> = order
            .into_iter()
            .filter_map(|key| {
                let g: Vec<&ResultRow> = groups
                    .remove(&key)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|r| finite_measured(&r.top1).is_some() || finite(r.claimed_top1_err).is_some())
                    .collect();
                (!g.is_empty()).then_some((key, g))
            })
            .collect();
        if usable.is_empty() {
            return None;
        }
        let one_experiment = usable.iter().all(|((e, _), _)| *e == usable[0].0 .0);
        let n = usable.len();
        // Series sit side by side around each protocol position (≤ 0.5 of the gap in all), so
        // their whiskers do not hide one another.
        let step = (0.5 / n as f64).min(0.08);
        let sub = (step * 0.5).max(0.03);
        let mut series = vec![];
        for (i, ((experiment, model), mut g)) in usable.into_iter().enumerate() {
            g.sort_by_key(|r| kind_index(r.protocol_kind));
            let offset = (i as f64 - (n as f64 - 1.0) / 2.0) * step;
            let mut per_kind = [0usize; 4];
            for r in &g {
                per_kind[kind_index(r.protocol_kind)] += 1;
            }
            let mut seen = [0usize; 4];
            let (color, shape) = series_style(i);
            let mut s = LadderSeries { label: String::new(), color, shape, measured: vec![], claimed: vec![] };
            for r in &g {
                let k = kind_index(r.protocol_kind);
                // Several protocols of one kind (two FCN variants): spread them a little.
                let dup = (seen[k] as f64 - (per_kind[k] as f64 - 1.0) / 2.0) * sub;
                seen[k] += 1;
                let x = k as f64 + offset + dup;
                if let Some(m) = finite_measured(&r.top1) {
                    s.measured.push((x, m));
                }
                if let Some(c) = finite(r.claimed_top1_err) {
                    s.claimed.push((x, c));
                }
            }
            let base = if one_experiment { model.to_string() } else { format!("{experiment}/{model}") };
            let ensemble_only = g.iter().all(|r| r.protocol_kind == ProtocolKind::Ensemble);
            s.label = match (s.measured.is_empty(), ensemble_only) {
                (true, _) => format!("{base} (not run)"),
                (false, true) if !base.contains("ensemble") => format!("{base} (ensemble)"),
                _ => base,
            };
            series.push(s);
        }
        let ys = series.iter().flat_map(|s| {
            s.measured.iter().flat_map(|(_, m)| [m.low, m.high]).chain(s.claimed.iter().map(|(_, c)| *c))
        });
        let (lo, hi) = extent(ys)?;
        let y = padded(lo, hi, 0.08, 0.5);
        let y = y.start.max(0.0).min(lo)..y.end;

        let mut legend = vec![
            LegendEntry {
                sample: Sample::Line { color: AXIS, width: 3, dashed: false, marker: Some((Shape::Circle, true)) },
                label: "measured, 95% CI".into(),
            },
            LegendEntry {
                sample: Sample::Line { color: AXIS, width: 2, dashed: true, marker: Some((Shape::Circle, false)) },
                label: "claimed".into(),
            },
        ];
        legend.extend(series.iter().map(|s| LegendEntry {
            sample: Sample::Line {
                color: s.color,
                width: 3,
                dashed: s.measured.is_empty(),
                marker: Some((s.shape, !s.measured.is_empty())),
            },
            label: s.label.clone(),
        }));
        Some(Ladder { series, y, legend })
    }
}

impl Chart for Ladder {
    fn size(&self) -> (u32, u32) {
        (WIDTH, HEIGHT)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError> {
        let body = titled(root, LADDER_TITLE)?;
        let (xr, _) = body.get_pixel_range();
        let (plot, side) = body.split_horizontally(xr.end - xr.start - side_legend_width(&self.legend));
        let mut chart = ChartBuilder::on(&plot)
            .margin_left(16)
            .margin_right(24)
            .margin_bottom(12)
            .margin_top(8)
            .x_label_area_size(64)
            .y_label_area_size(74)
            .build_cartesian_2d(KeyedAxis::new(-0.5..3.5, vec![0.0, 1.0, 2.0, 3.0]), self.y.clone())?;
        let x_fmt = |v: &f64| {
            let i = v.round();
            if (0.0..4.0).contains(&i) {
                kind_label(KINDS[i as usize])
            } else {
                String::new()
            }
        };
        let y_fmt = |v: &f64| fmt_tick(*v);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_labels(8)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .x_desc("test protocol")
            .y_desc("top-1 error (%)")
            .label_style(text_style(TICK_SIZE, BLACK))
            .axis_desc_style(text_style(DESC_SIZE, BLACK))
            .bold_line_style(GRID.stroke_width(1))
            .light_line_style(TRANSPARENT)
            .axis_style(AXIS.stroke_width(1))
            .draw()?;

        for s in &self.series {
            if s.claimed.len() > 1 {
                chart.draw_series(DashedLineSeries::new(s.claimed.clone(), 9, 6, s.color.stroke_width(2)))?;
            }
        }
        for s in &self.series {
            if s.measured.len() > 1 {
                chart.draw_series(LineSeries::new(
                    s.measured.iter().map(|(x, m)| (*x, m.err)),
                    s.color.stroke_width(3),
                ))?;
            }
            chart.draw_series(
                s.measured
                    .iter()
                    .map(|(x, m)| ErrorBar::new_vertical(*x, m.low, m.err, m.high, s.color.stroke_width(2), 12)),
            )?;
        }
        for s in &self.series {
            for p in &s.claimed {
                draw_marker(chart.plotting_area(), *p, s.shape, s.color, false, 7)?;
            }
            for (x, m) in &s.measured {
                draw_marker(chart.plotting_area(), (*x, m.err), s.shape, s.color, true, 7)?;
            }
        }

        let (_, yr) = chart.plotting_area().get_pixel_range();
        let (_, side_y) = side.get_pixel_range();
        let top = (yr.start - side_y.start).max(0);
        let legend = side.margin(top, 12, 0, 14);
        draw_column_legend(&legend, &self.legend)
    }
}

// ---------------------------------------------------------------------------------------------
// (2) Error against compute.

const COMPUTE_TITLE: &str = "Top-1 error against test-time compute";

struct ComputePoint {
    gmacs: f64,
    m: Measured,
    kind: ProtocolKind,
    label: String,
}

struct Compute {
    points: Vec<ComputePoint>,
    x: Range<f64>,
    x_ticks: Vec<f64>,
    y: Range<f64>,
    labelled: bool,
    legend: Vec<LegendEntry>,
}

fn kind_style(kind: ProtocolKind) -> (RGBColor, Shape) {
    match kind {
        ProtocolKind::CenterCrop => (PALETTE[0], Shape::Circle),
        ProtocolKind::TenCrop => (PALETTE[1], Shape::Square),
        ProtocolKind::FullyConvolutional => (PALETTE[2], Shape::TriangleUp),
        ProtocolKind::Ensemble => (PALETTE[4], Shape::Diamond),
    }
}

/// Tick values for a log axis over `lo..hi`: 1-2-5 steps, denser or sparser to give 3–12.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let candidates: [&[f64]; 4] = [
        &[1.0, 2.0, 5.0],
        &[1.0],
        &[1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0],
        &[1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
    ];
    let ticks = |mults: &[f64]| {
        let (e0, e1) = (lo.log10().floor() as i32 - 1, hi.log10().ceil() as i32 + 1);
        let mut v = vec![];
        for e in e0..=e1 {
            for m in mults {
                let t = m * 10f64.powi(e);
                if t >= lo && t <= hi {
                    v.push(t);
                }
            }
        }
        v
    };
    let first = ticks(candidates[0]);
    if first.len() > 12 {
        // Powers of ten only; over very wide ranges, every k-th of them.
        let decades = ticks(candidates[1]);
        let k = decades.len().div_ceil(10).max(1);
        return decades.into_iter().step_by(k).collect();
    }
    if first.len() >= 3 {
        return first;
    }
    for mults in &candidates[2..] {
        let t = ticks(mults);
        if t.len() >= 3 {
            return t;
        }
    }
    vec![lo, (lo * hi).sqrt(), hi]
}

impl Compute {
    fn prepare(rows: &[ResultRow]) -> Option<Compute> {
        let points: Vec<ComputePoint> = rows
            .iter()
            .filter(|r| r.setting.is_none())
            .filter_map(|r| {
                let gmacs = finite(r.gmacs_per_image).filter(|g| *g > 0.0)?;
                let m = finite_measured(&r.top1)?;
                Some(ComputePoint { gmacs, m, kind: r.protocol_kind, label: r.model.clone() })
            })
            .collect();
        let (xlo, xhi) = extent(points.iter().map(|p| p.gmacs))?;
        let (ylo, yhi) = extent(points.iter().flat_map(|p| [p.m.low, p.m.high]))?;
        // Room on both sides for markers and labels; at least a factor 4 in all.
        let (mut lo, mut hi) = (xlo / 1.6, xhi * 1.8);
        if hi / lo < 4.0 {
            let mid = (xlo * xhi).sqrt();
            (lo, hi) = (mid / 2.0, mid * 2.0);
        }
        let y = padded(ylo, yhi, 0.1, 0.5);
        let y = y.start.max(0.0).min(ylo)..y.end;
        let mut kinds: Vec<ProtocolKind> = points.iter().map(|p| p.kind).collect();
        kinds.sort();
        kinds.dedup();
        let mut legend: Vec<LegendEntry> = kinds
            .iter()
            .map(|k| {
                let (color, shape) = kind_style(*k);
                LegendEntry { sample: Sample::Marker { color, shape, filled: true }, label: kind_label(*k) }
            })
            .collect();
        legend.push(LegendEntry { sample: Sample::Whisker { color: AXIS }, label: "95% CI".into() });
        Some(Compute { labelled: points.len() <= 20, x_ticks: log_ticks(lo, hi), x: lo..hi, y, points, legend })
    }
}

type PixelRect = (i32, i32, i32, i32);

fn overlaps(a: PixelRect, b: PixelRect) -> bool {
    a.0 < b.2 && b.0 < a.2 && a.1 < b.3 && b.1 < a.3
}

impl Chart for Compute {
    fn size(&self) -> (u32, u32) {
        (WIDTH, HEIGHT)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError> {
        let body = titled(root, COMPUTE_TITLE)?;
        let (xr, _) = body.get_pixel_range();
        let legend_h = flow_rows(&self.legend, xr.end - xr.start - 40) * LEGEND_ROW_H + 8;
        let (legend_area, plot) = body.split_vertically(legend_h);
        draw_flow_legend(&legend_area.margin(0, 0, 20, 20), &self.legend)?;

        let mut chart = ChartBuilder::on(&plot)
            .margin_left(16)
            .margin_right(30)
            .margin_bottom(12)
            .margin_top(8)
            .x_label_area_size(64)
            .y_label_area_size(74)
            .build_cartesian_2d(self.x.clone().log_scale().with_key_points(self.x_ticks.clone()), self.y.clone())?;
        let x_fmt = |v: &f64| fmt_log_tick(*v);
        let y_fmt = |v: &f64| fmt_tick(*v);
        chart
            .configure_mesh()
            .y_labels(8)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .x_desc("test-time multiply-adds per image (GMACs, log scale)")
            .y_desc("top-1 error (%)")
            .label_style(text_style(TICK_SIZE, BLACK))
            .axis_desc_style(text_style(DESC_SIZE, BLACK))
            .bold_line_style(GRID.stroke_width(1))
            .light_line_style(TRANSPARENT)
            .axis_style(AXIS.stroke_width(1))
            .draw()?;

        for p in &self.points {
            let (color, _) = kind_style(p.kind);
            chart.draw_series(std::iter::once(ErrorBar::new_vertical(
                p.gmacs,
                p.m.low,
                p.m.err,
                p.m.high,
                color.mix(0.8).stroke_width(2),
                10,
            )))?;
        }
        for p in &self.points {
            let (color, shape) = kind_style(p.kind);
            draw_marker(chart.plotting_area(), (p.gmacs, p.m.err), shape, color, true, 7)?;
        }

        if self.labelled {
            // Place each label right, left, above or below its marker, the first spot that
            // stays inside the plot and clear of markers and earlier labels; else leave it out.
            let (pxr, pyr) = chart.plotting_area().get_pixel_range();
            let centres: Vec<(i32, i32)> =
                self.points.iter().map(|p| chart.backend_coord(&(p.gmacs, p.m.err))).collect();
            let mut taken: Vec<PixelRect> = centres.iter().map(|(x, y)| (x - 9, y - 9, x + 9, y + 9)).collect();
            let style = text_style(POINT_LABEL_SIZE, GREY_TEXT).pos(Pos::new(HPos::Left, VPos::Center));
            let th = (POINT_LABEL_SIZE * 0.9) as i32;
            for (p, (cx, cy)) in self.points.iter().zip(&centres) {
                let label = fit_end(&p.label, POINT_LABEL_SIZE, 260);
                let tw = text_width(&label, POINT_LABEL_SIZE);
                let spots = [
                    (cx + 14, *cy),
                    (cx - 14 - tw, *cy),
                    (cx - tw / 2, cy - 14 - th / 2),
                    (cx - tw / 2, cy + 14 + th / 2),
                ];
                let found = spots.iter().find_map(|&(x, y)| {
                    let rect = (x - 2, y - th / 2 - 2, x + tw + 2, y + th / 2 + 2);
                    let inside = rect.0 >= pxr.start && rect.2 <= pxr.end && rect.1 >= pyr.start && rect.3 <= pyr.end;
                    (inside && !taken.iter().any(|t| overlaps(*t, rect))).then_some((x, y, rect))
                });
                if let Some((x, y, rect)) = found {
                    taken.push(rect);
                    root.draw(&Text::new(label, (x, y), style.clone()))?;
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// (3) Measured − claimed per claim.

const DELTAS_TITLE: &str = "Measured \u{2212} claimed top-1 error, per claim";

struct DeltaRow {
    label: String,
    claim: f64,
    measured: Option<Measured>,
    tolerance: Option<f64>,
    status: Status,
}

struct Deltas {
    rows: Vec<DeltaRow>,
    x: Range<f64>,
    label_w: i32,
    height: u32,
    legend: Vec<LegendEntry>,
}

const DELTA_ROW_H: u32 = 40;
const DELTA_LABEL_MAX_W: i32 = 470;
const MAX_HEIGHT: u32 = 8000;
const BAND: RGBAColor = RGBAColor(150, 150, 150, 0.3);

fn status_color(status: &Status) -> RGBColor {
    match status {
        Status::Reproduced => GREEN_OK,
        Status::Drift => RED_DRIFT,
        Status::Measured => BLUE_MEASURED,
        Status::NotRun(_) => GREY_TEXT,
    }
}

impl Deltas {
    fn prepare(rows: &[ResultRow]) -> Option<Deltas> {
        let rows: Vec<DeltaRow> = rows
            .iter()
            .filter(|r| r.setting.is_none())
            .filter_map(|r| {
                let claim = finite(r.claimed_top1_err)?;
                Some(DeltaRow {
                    label: format!("{}/{}/{}", r.experiment, r.model, r.protocol),
                    claim,
                    measured: finite_measured(&r.top1),
                    tolerance: finite(r.tolerance).map(f64::abs),
                    status: r.status.clone(),
                })
            })
            .collect();
        if rows.is_empty() {
            return None;
        }
        let xs = rows.iter().flat_map(|r| {
            let m = r.measured.map(|m| [m.low - r.claim, m.high - r.claim]);
            let t = r.tolerance.map(|t| [-t, t]);
            m.into_iter().chain(t).flatten().chain([0.0])
        });
        let (lo, hi) = extent(xs).unwrap_or((-1.0, 1.0));
        // Symmetric about 0, so left and right of the zero line read the same way.
        let half = lo.abs().max(hi.abs()).max(0.5) * 1.1;
        let label_w = rows.iter().map(|r| text_width(&r.label, TICK_SIZE)).max().unwrap_or(0).min(DELTA_LABEL_MAX_W);
        let height = (240 + DELTA_ROW_H * rows.len() as u32).clamp(HEIGHT / 2, MAX_HEIGHT);
        let mut legend = vec![];
        for (status, label) in
            [(Status::Reproduced, "reproduced"), (Status::Drift, "drift"), (Status::Measured, "measured (no verdict)")]
        {
            if rows.iter().any(|r| r.measured.is_some() && r.status == status) {
                legend.push(LegendEntry {
                    sample: Sample::Marker { color: status_color(&status), shape: Shape::Circle, filled: true },
                    label: label.into(),
                });
            }
        }
        legend.push(LegendEntry { sample: Sample::Whisker { color: AXIS }, label: "95% CI \u{2212} claim".into() });
        if rows.iter().any(|r| r.tolerance.is_some()) {
            legend.push(LegendEntry { sample: Sample::Band { color: BAND }, label: "\u{b1} tolerance".into() });
        }
        Some(Deltas { rows, x: -half..half, label_w, height, legend })
    }
}

impl Chart for Deltas {
    fn size(&self) -> (u32, u32) {
        (WIDTH, self.height)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError> {
        let body = titled(root, DELTAS_TITLE)?;
        let (xr, _) = body.get_pixel_range();
        let legend_h = flow_rows(&self.legend, xr.end - xr.start - 40) * LEGEND_ROW_H + 8;
        let (legend_area, plot) = body.split_vertically(legend_h);
        draw_flow_legend(&legend_area.margin(0, 0, 20, 20), &self.legend)?;

        let n = self.rows.len();
        let labels: Vec<String> =
            self.rows.iter().map(|r| fit_middle(&r.label, TICK_SIZE, DELTA_LABEL_MAX_W)).collect();
        // Row i (input order) is drawn top to bottom: y = n − 1 − i.
        let y_of = |i: usize| (n - 1 - i) as f64;
        let y_fmt = |v: &f64| {
            let k = v.round();
            if k >= 0.0 && (k as usize) < n {
                labels[n - 1 - k as usize].clone()
            } else {
                String::new()
            }
        };
        // Signed ticks, with a true minus sign to match the axis title.
        let x_fmt = |v: &f64| {
            let s = fmt_tick(*v);
            if *v > 1e-9 {
                format!("+{s}")
            } else {
                s.replace('-', "\u{2212}")
            }
        };
        let mut chart = ChartBuilder::on(&plot)
            .margin_left(16)
            .margin_right(30)
            .margin_bottom(12)
            .margin_top(8)
            .x_label_area_size(64)
            .y_label_area_size(self.label_w + 50)
            .build_cartesian_2d(
                self.x.clone(),
                KeyedAxis::new(-0.5..n as f64 - 0.5, (0..n).map(|k| k as f64).collect()),
            )?;
        chart
            .configure_mesh()
            .x_labels(9)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .x_desc("measured \u{2212} claimed top-1 error (points)")
            .y_desc("claim (experiment/model/protocol)")
            .label_style(text_style(TICK_SIZE, BLACK))
            .axis_desc_style(text_style(DESC_SIZE, BLACK))
            .bold_line_style(GRID.stroke_width(1))
            .light_line_style(TRANSPARENT)
            .axis_style(AXIS.stroke_width(1))
            .draw()?;

        chart.draw_series(self.rows.iter().enumerate().filter_map(|(i, r)| {
            let t = r.tolerance?;
            let y = y_of(i);
            Some(Rectangle::new([(-t, y - 0.32), (t, y + 0.32)], BAND.filled()))
        }))?;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(0.0, -0.5), (0.0, n as f64 - 0.5)],
            BLACK.stroke_width(2),
        )))?;
        for (i, r) in self.rows.iter().enumerate() {
            let y = y_of(i);
            match r.measured {
                Some(m) => {
                    let color = status_color(&r.status);
                    chart.draw_series(std::iter::once(ErrorBar::new_horizontal(
                        y,
                        m.low - r.claim,
                        m.err - r.claim,
                        m.high - r.claim,
                        color.stroke_width(2),
                        14,
                    )))?;
                    draw_marker(chart.plotting_area(), (m.err - r.claim, y), Shape::Circle, color, true, 7)?;
                }
                None => {
                    let style = text_style(TICK_SIZE, GREY_TEXT).pos(Pos::new(HPos::Left, VPos::Center));
                    chart.draw_series(std::iter::once(
                        EmptyElement::at((0.0, y)) + Text::new("not run", (10, 0), style),
                    ))?;
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// (4) Training curves.

struct Curve {
    color: RGBColor,
    train: Vec<(f64, f64)>,
    val: Vec<(f64, f64)>,
}

struct Curves {
    title: String,
    curves: Vec<Curve>,
    x: Range<f64>,
    y: Range<f64>,
    legend: Vec<LegendEntry>,
}

enum CurveProblem {
    Empty,
    Length(String),
}

impl Curves {
    fn prepare(runs: &[CurveSeries], title: &str) -> Result<Curves, CurveProblem> {
        let mut curves = vec![];
        let mut legend = vec![
            LegendEntry {
                sample: Sample::Line { color: AXIS, width: 4, dashed: false, marker: None },
                label: "validation error".into(),
            },
            LegendEntry {
                sample: Sample::Line { color: AXIS, width: 2, dashed: true, marker: None },
                label: "training error".into(),
            },
        ];
        for (i, run) in runs.iter().enumerate() {
            for (name, v) in [("train_error", &run.train_error), ("val_error", &run.val_error)] {
                if !v.is_empty() && v.len() != run.epochs.len() {
                    return Err(CurveProblem::Length(format!(
                        "run {:?}: {name} has {} values for {} epochs",
                        run.label,
                        v.len(),
                        run.epochs.len()
                    )));
                }
            }
            // Fractions in, percent out; non-finite points are left out of the line.
            let points = |v: &[f64]| -> Vec<(f64, f64)> {
                run.epochs
                    .iter()
                    .zip(v)
                    .filter(|(e, y)| plottable(**e) && plottable(**y * 100.0))
                    .map(|(e, y)| (*e, y * 100.0))
                    .collect()
            };
            let (train, val) = (points(&run.train_error), points(&run.val_error));
            if train.is_empty() && val.is_empty() {
                continue;
            }
            let (color, _) = series_style(i);
            legend.push(LegendEntry {
                sample: Sample::Line { color, width: 4, dashed: false, marker: None },
                label: run.label.clone(),
            });
            curves.push(Curve { color, train, val });
        }
        let all = || curves.iter().flat_map(|c| c.train.iter().chain(&c.val));
        let (xlo, xhi) = extent(all().map(|p| p.0)).ok_or(CurveProblem::Empty)?;
        let (ylo, yhi) = extent(all().map(|p| p.1)).ok_or(CurveProblem::Empty)?;
        let x = if xhi > xlo { xlo..xhi } else { xlo - 0.5..xhi + 0.5 };
        let y = padded(ylo, yhi, 0.06, 0.5);
        let y = y.start.max(0.0).min(ylo)..y.end;
        Ok(Curves { title: title.to_string(), curves, x, y, legend })
    }
}

impl Chart for Curves {
    fn size(&self) -> (u32, u32) {
        (WIDTH, HEIGHT)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError> {
        let body = titled(root, &self.title)?;
        let (xr, _) = body.get_pixel_range();
        let (plot, side) = body.split_horizontally(xr.end - xr.start - side_legend_width(&self.legend));
        let mut chart = ChartBuilder::on(&plot)
            .margin_left(16)
            .margin_right(30)
            .margin_bottom(12)
            .margin_top(8)
            .x_label_area_size(64)
            .y_label_area_size(74)
            .build_cartesian_2d(self.x.clone(), self.y.clone())?;
        let fmt = |v: &f64| fmt_tick(*v);
        chart
            .configure_mesh()
            .x_labels(10)
            .y_labels(8)
            .x_label_formatter(&fmt)
            .y_label_formatter(&fmt)
            .x_desc("epoch")
            .y_desc("error (%)")
            .label_style(text_style(TICK_SIZE, BLACK))
            .axis_desc_style(text_style(DESC_SIZE, BLACK))
            .bold_line_style(GRID.stroke_width(1))
            .light_line_style(TRANSPARENT)
            .axis_style(AXIS.stroke_width(1))
            .draw()?;
        for c in &self.curves {
            if c.train.len() > 1 {
                chart.draw_series(DashedLineSeries::new(c.train.clone(), 7, 5, c.color.stroke_width(2)))?;
            }
        }
        for c in &self.curves {
            if c.val.len() > 1 {
                chart.draw_series(LineSeries::new(c.val.clone(), c.color.stroke_width(4)))?;
            }
            // A lone point would be an invisible line: mark it.
            for pts in [&c.train, &c.val] {
                if pts.len() == 1 {
                    for p in pts.iter() {
                        draw_marker(chart.plotting_area(), *p, Shape::Circle, c.color, true, 5)?;
                    }
                }
            }
        }
        let (_, yr) = chart.plotting_area().get_pixel_range();
        let (_, side_y) = side.get_pixel_range();
        let top = (yr.start - side_y.start).max(0);
        draw_column_legend(&side.margin(top, 12, 0, 14), &self.legend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

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
        ResultRow {
            experiment: experiment.into(),
            model: model.into(),
            protocol: protocol.into(),
            protocol_kind: kind,
            setting: None,
            protocol_summary: String::new(),
            top1,
            top5: None,
            images: 50_000,
            skipped: 0,
            param_count_m: Some(25.6),
            gmacs_per_image: gmacs,
            claimed_top1_err: claim,
            claimed_top5_err: None,
            delta_top1: match (top1, claim) {
                (Some(t), Some(c)) => Some(t.err - c),
                _ => None,
            },
            delta_top5: None,
            tolerance: claim.map(|_| 0.5),
            claim_source: claim.map(|_| "He et al. 2016, Table 3".into()),
            status,
        }
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
            row(
                e,
                "resnet50",
                "fcn-multiscale-noflip",
                FullyConvolutional,
                m(22.1),
                None,
                Some(73.5),
                Status::Measured,
            ),
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
        assert_eq!(Deltas::prepare(&sample_rows()).map(|d| d.rows.len()), Some(8));
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
        let rows: Vec<ResultRow> =
            sample_rows().into_iter().filter(|r| r.top1.is_none() || r.setting.is_some()).collect();
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
        let ladder = Ladder::prepare(&rows).expect("ladder data");
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
        check_png(&dir.path().join(&ladder.png), WIDTH, HEIGHT);
        let svg = svg_text(dir.path(), &ladder);
        assert!(svg.contains("more"), "overflowing legend says how many are left out");
        let compute = error_vs_compute(&rows, dir.path(), "compute").expect("compute");
        assert!(!compute.caption.contains("labelled"), "120 points are not labelled");
        claim_deltas(&rows, dir.path(), "deltas").expect("deltas");
        let d = Deltas::prepare(&rows).expect("rows");
        assert!(d.size().1 <= MAX_HEIGHT);
        assert!(d.label_w <= DELTA_LABEL_MAX_W);
    }

    #[test]
    fn text_helpers_fit_and_format() {
        assert!(ensure_font().is_ok());
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
}
