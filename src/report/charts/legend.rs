//! Legends: a framed column in a panel right of the plot (ladder, training curves), or rows laid
//! out left to right above it (error vs compute, claim deltas).

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::style::{draw_marker, fit_end, fit_middle, text_style, text_width, Shape, LEGEND_SIZE};
use super::DrawError;

/// Bounds on the width of the legend panel right of the ladder and training-curve charts: wide
/// enough for typical "experiment/model" labels, narrow enough to leave the plot ≥ 700 px.
const SIDE_LEGEND_MIN_W: i32 = 260;
/// See [`SIDE_LEGEND_MIN_W`].
const SIDE_LEGEND_MAX_W: i32 = 450;
/// Height of one legend row, in pixels.
const ROW_H: i32 = 30;
/// Width of a line sample left of its label.
const SAMPLE_W: i32 = 54;
/// Space after each entry of a left-to-right legend.
const FLOW_GAP: i32 = 34;

/// What a legend entry shows left of its label.
#[derive(Clone)]
pub(super) enum Sample {
    /// A line (dashed or solid) with an optional marker (shape, filled) in its middle.
    Line { color: RGBColor, width: u32, dashed: bool, marker: Option<(Shape, bool)> },
    /// A lone marker.
    Marker { color: RGBColor, shape: Shape, filled: bool },
    /// A horizontal whisker (error bar).
    Whisker { color: RGBColor },
    /// A shaded box (tolerance band).
    Band { color: RGBAColor },
}

#[derive(Clone)]
pub(super) struct LegendEntry {
    pub sample: Sample,
    pub label: String,
}

/// Splits the area below the title into the plot (left) and a legend panel (right) as wide as
/// `entries` need.
pub(super) fn split_for_side_legend<DB: DrawingBackend>(
    body: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
) -> (DrawingArea<DB, Shift>, DrawingArea<DB, Shift>) {
    let (xr, _) = body.get_pixel_range();
    body.split_horizontally(xr.end - xr.start - side_legend_width(entries))
}

/// Draws `entries` as a column in `side`, its top level with the plot's top edge
/// (`plot_top`, in pixels of the whole chart).
pub(super) fn draw_side_legend<DB: DrawingBackend>(
    side: &DrawingArea<DB, Shift>,
    plot_top: i32,
    entries: &[LegendEntry],
) -> Result<(), DrawError> {
    let (_, side_y) = side.get_pixel_range();
    let top = (plot_top - side_y.start).max(0);
    draw_column_legend(&side.margin(top, 12, 0, 14), entries)
}

/// Draws `entries` left to right across the top of `body`, centred and wrapping; returns the
/// area below them for the plot.
pub(super) fn draw_top_legend<DB: DrawingBackend>(
    body: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
) -> Result<DrawingArea<DB, Shift>, DrawError> {
    let (xr, _) = body.get_pixel_range();
    let legend_h = flow_rows(entries, xr.end - xr.start - 40) * ROW_H + 8;
    let (legend_area, plot) = body.split_vertically(legend_h);
    draw_flow_legend(&legend_area.margin(0, 0, 20, 20), entries)?;
    Ok(plot)
}

/// Pixels a sample takes in a left-to-right legend: a lone marker needs less than a line.
fn sample_width(sample: &Sample) -> i32 {
    match sample {
        Sample::Marker { .. } => 18,
        _ => SAMPLE_W,
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
    let capacity = ((h - 2 * pad) / ROW_H).max(1) as usize;
    let shown = if entries.len() > capacity { capacity - 1 } else { entries.len() };
    let used_h = (shown.max(1) as i32 + i32::from(entries.len() > shown)) * ROW_H + 2 * pad;
    area.draw(&Rectangle::new([(0, 0), (w - 1, used_h)], WHITE.filled()))?;
    area.draw(&Rectangle::new([(0, 0), (w - 1, used_h)], RGBColor(170, 170, 170).stroke_width(1)))?;
    let text_x = pad + SAMPLE_W + 10;
    let style = text_style(LEGEND_SIZE, BLACK).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, e) in entries.iter().take(shown).enumerate() {
        let y = pad + ROW_H / 2 + i as i32 * ROW_H;
        draw_sample(area, &e.sample, pad, y, SAMPLE_W)?;
        // Cut in the middle: "experiment/model" stays distinguishable at both ends.
        let label = fit_middle(&e.label, LEGEND_SIZE, w - text_x - pad);
        area.draw(&Text::new(label, (text_x, y), style.clone()))?;
    }
    if entries.len() > shown {
        let y = pad + ROW_H / 2 + shown as i32 * ROW_H;
        let more = format!("… and {} more", entries.len() - shown);
        area.draw(&Text::new(more, (pad, y), style.clone()))?;
    }
    Ok(())
}

/// Pixels a column legend of `entries` rows takes, its padding included.
pub(super) fn column_legend_height(entries: usize) -> i32 {
    entries as i32 * ROW_H + 2 * 12
}

/// The side panel's width for `entries`: the longest label, within the bounds (longer labels
/// are cut with an ellipsis). Includes the panel's 14 px left and 12 px right margins.
fn side_legend_width(entries: &[LegendEntry]) -> i32 {
    let text = entries.iter().map(|e| text_width(&e.label, LEGEND_SIZE)).max().unwrap_or(0);
    (14 + 12 + SAMPLE_W + 10 + text + 12 + 12).clamp(SIDE_LEGEND_MIN_W, SIDE_LEGEND_MAX_W)
}

/// Pixels one entry takes in a left-to-right legend, the gap after it included.
fn flow_entry_width(e: &LegendEntry) -> i32 {
    sample_width(&e.sample) + 10 + text_width(&e.label, LEGEND_SIZE) + FLOW_GAP
}

/// `entries` broken into the rows of a left-to-right legend `width` pixels wide.
fn flow_lines(entries: &[LegendEntry], width: i32) -> Vec<Vec<&LegendEntry>> {
    let mut lines: Vec<Vec<&LegendEntry>> = vec![vec![]];
    let mut x = 0;
    for e in entries {
        let ew = flow_entry_width(e);
        if x > 0 && x + ew > width {
            lines.push(vec![]);
            x = 0;
        }
        if let Some(line) = lines.last_mut() {
            line.push(e);
        }
        x += ew;
    }
    lines
}

/// Rows a left-to-right legend needs at `width` pixels.
fn flow_rows(entries: &[LegendEntry], width: i32) -> i32 {
    flow_lines(entries, width).len() as i32
}

/// A legend laid out left to right, wrapping, centred in `area`.
fn draw_flow_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
) -> Result<(), DrawError> {
    let (xr, _) = area.get_pixel_range();
    let w = xr.end - xr.start;
    let style = text_style(LEGEND_SIZE, BLACK).pos(Pos::new(HPos::Left, VPos::Center));
    for (row, line) in flow_lines(entries, w).iter().enumerate() {
        let line_w: i32 = line.iter().map(|e| flow_entry_width(e)).sum::<i32>() - FLOW_GAP;
        let mut x = ((w - line_w) / 2).max(0);
        let y = ROW_H / 2 + row as i32 * ROW_H;
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
