//! (2) Error against compute: top-1 error vs test-time multiply-adds per image (log x axis), one
//! point per measured (experiment, model, protocol), labelled while there are few.

use std::ops::Range;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis::{
    error_range, extent, finite, finite_measured, fmt_log_tick, fmt_tick, log_ticks, mesh, Axes, NUMERIC_Y_LABEL_WIDTH,
};
use super::legend::{draw_top_legend, LegendEntry, Sample};
use super::style::{
    draw_marker, fit_end, kind_label, kind_style, text_style, text_width, titled, AXIS, GREY_TEXT, POINT_LABEL_SIZE,
};
use super::{Chart, DrawError, HEIGHT, WIDTH};
use crate::report::{Measured, ProtocolKind, ResultRow};

pub(super) const COMPUTE_TITLE: &str = "Top-1 error against test-time compute";

/// Points are labelled with their model id up to this many; beyond, labels would be clutter.
const MAX_LABELLED: usize = 20;

struct ComputePoint {
    gmacs: f64,
    m: Measured,
    kind: ProtocolKind,
    label: String,
}

pub(super) struct Compute {
    points: Vec<ComputePoint>,
    x: Range<f64>,
    x_ticks: Vec<f64>,
    y: Range<f64>,
    /// Whether points carry their model id (few enough of them).
    pub(super) labelled: bool,
    legend: Vec<LegendEntry>,
}

impl Compute {
    pub(super) fn prepare(rows: &[ResultRow]) -> Option<Compute> {
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
        let y = error_range(ylo, yhi, 0.1);
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
        Some(Compute {
            labelled: points.len() <= MAX_LABELLED,
            x_ticks: log_ticks(lo, hi),
            x: lo..hi,
            y,
            points,
            legend,
        })
    }
}

/// A rectangle in pixels: (left, top, right, bottom).
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
        let plot = draw_top_legend(&body, &self.legend)?;
        let axes = Axes {
            x_desc: "test-time multiply-adds per image (GMACs, log scale)",
            y_desc: "top-1 error (%)",
            x_labels: self.x_ticks.len(),
            y_labels: 8,
            x_format: &|v: &f64| fmt_log_tick(*v),
            y_format: &|v: &f64| fmt_tick(*v),
            x_grid: true,
            margin_right: 30,
            y_label_width: NUMERIC_Y_LABEL_WIDTH,
        };
        let x = self.x.clone().log_scale().with_key_points(self.x_ticks.clone());
        let mut chart = mesh(&plot, x, self.y.clone(), &axes)?;

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
