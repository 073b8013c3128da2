//! Axes: which numbers may go on one, the ranges and ticks built from them, and the one mesh
//! set-up (margins, label areas, grid, text) that every chart shares.

use std::ops::Range;

use plotters::coord::ranged1d::{AsRangedCoord, DefaultFormatting, KeyPointHint, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::style::{text_style, AXIS, DESC_SIZE, GRID, TICK_SIZE};
use super::DrawError;
use crate::report::Measured;

/// What differs between the charts' meshes; everything else is drawn the same in all of them.
pub(super) struct Axes<'f, X, Y> {
    pub x_desc: &'f str,
    pub y_desc: &'f str,
    /// At most this many tick labels (a [`KeyedAxis`] or an axis with key points has its own).
    pub x_labels: usize,
    pub y_labels: usize,
    pub x_format: &'f dyn Fn(&X) -> String,
    pub y_format: &'f dyn Fn(&Y) -> String,
    /// Vertical grid lines at the x ticks; off where x positions are categories (the ladder).
    pub x_grid: bool,
    /// Room right of the plot for markers and labels that sit at the x range's end.
    pub margin_right: u32,
    /// Width of the area left of the plot holding the y tick labels and the y description.
    pub y_label_width: u32,
}

/// Tick label width for numeric y axes (error in percent, two decimals at most).
pub(super) const NUMERIC_Y_LABEL_WIDTH: u32 = 74;

/// A chart over the axes built from `X` and `Y` (what [`mesh`] returns).
pub(super) type Plot<'a, DB, X, Y> =
    ChartContext<'a, DB, Cartesian2d<<X as AsRangedCoord>::CoordDescType, <Y as AsRangedCoord>::CoordDescType>>;

/// Builds the chart on `area` over `x` × `y` and draws its mesh as `axes` says.
pub(super) fn mesh<'a, DB, X, Y>(
    area: &'a DrawingArea<DB, Shift>,
    x: X,
    y: Y,
    axes: &Axes<'_, X::Value, Y::Value>,
) -> Result<Plot<'a, DB, X, Y>, DrawError>
where
    DB: DrawingBackend,
    X: AsRangedCoord,
    Y: AsRangedCoord,
    X::CoordDescType: ValueFormatter<X::Value>,
    Y::CoordDescType: ValueFormatter<Y::Value>,
{
    let mut chart = ChartBuilder::on(area)
        .margin_left(16)
        .margin_right(axes.margin_right)
        .margin_bottom(12)
        .margin_top(8)
        .x_label_area_size(64)
        .y_label_area_size(axes.y_label_width)
        .build_cartesian_2d(x, y)?;
    let mut mesh = chart.configure_mesh();
    if !axes.x_grid {
        mesh.disable_x_mesh();
    }
    mesh.x_labels(axes.x_labels)
        .y_labels(axes.y_labels)
        .x_label_formatter(axes.x_format)
        .y_label_formatter(axes.y_format)
        .x_desc(axes.x_desc)
        .y_desc(axes.y_desc)
        .label_style(text_style(TICK_SIZE, BLACK))
        .axis_desc_style(text_style(DESC_SIZE, BLACK))
        .bold_line_style(GRID.stroke_width(1))
        .light_line_style(TRANSPARENT)
        .axis_style(AXIS.stroke_width(1))
        .draw()?;
    Ok(chart)
}

/// A linear f64 axis with ticks exactly at `keys` (protocol positions, claim rows). plotters'
/// own `with_key_points` wrapper loses the f64 axis' label formatting, hence this.
pub(super) struct KeyedAxis {
    linear: RangedCoordf64,
    keys: Vec<f64>,
}

impl KeyedAxis {
    pub(super) fn new(range: Range<f64>, keys: Vec<f64>) -> Self {
        KeyedAxis { linear: range.into(), keys }
    }

    pub(super) fn key_count(&self) -> usize {
        self.keys.len()
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
pub(super) fn fmt_tick(v: f64) -> String {
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
pub(super) fn fmt_log_tick(v: f64) -> String {
    if v <= 0.0 || !v.is_finite() || v >= 1.0 {
        return fmt_tick(v);
    }
    let decimals = (-v.log10().floor()) as usize + 2;
    let s = format!("{v:.decimals$}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Tick values for a log axis over `lo..hi`: 1-2-5 steps, denser or sparser to give 3–12.
pub(super) fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
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

/// `lo..hi` widened by `frac` of its span on each side (at least `min_pad`).
pub(super) fn padded(lo: f64, hi: f64, frac: f64, min_pad: f64) -> Range<f64> {
    let pad = ((hi - lo) * frac).max(min_pad);
    (lo - pad)..(hi + pad)
}

/// An error-rate axis (percent) over data from `lo` to `hi`: padded by `frac` of the span (at
/// least half a point), and not below 0 unless the data are.
pub(super) fn error_range(lo: f64, hi: f64, frac: f64) -> Range<f64> {
    let y = padded(lo, hi, frac, 0.5);
    y.start.max(0.0).min(lo)..y.end
}

/// Whether `v` can go on an axis: finite, and small enough that ranges, paddings and pixel
/// mappings built from it stay finite (a percent or GMAC count beyond 1e9 is garbage anyway).
pub(super) fn plottable(v: f64) -> bool {
    v.is_finite() && v.abs() <= 1e9
}

/// Min and max of the plottable values, if any.
pub(super) fn extent(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values.into_iter().filter(|v| plottable(*v)).fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// A measurement with plottable, ordered numbers, or `None`.
pub(super) fn finite_measured(m: &Option<Measured>) -> Option<Measured> {
    let m = (*m)?;
    if !(plottable(m.err) && plottable(m.low) && plottable(m.high)) {
        return None;
    }
    Some(Measured { err: m.err, low: m.low.min(m.err), high: m.high.max(m.err) })
}

/// The value if it is plottable.
pub(super) fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|v| plottable(*v))
}
