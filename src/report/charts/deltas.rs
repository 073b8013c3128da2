//! (3) Measured − claimed per claim: one row per top-1 claim (published or a recorded baseline),
//! with its tolerance band and the 95% CI whisker (CI minus claim), marked by status: published
//! claims as circles, recorded baselines as squares in colours of their own.

use std::ops::Range;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis::{extent, finite, finite_measured, fmt_tick, mesh, Axes, KeyedAxis};
use super::legend::{draw_top_legend, LegendEntry, Sample};
use super::style::{
    draw_marker, fit_middle, text_style, text_width, titled, Shape, AXIS, BLUE_MEASURED, GREEN_OK, GREY_TEXT,
    ORANGE_REGRESSED, PURPLE_SUBSET, RED_DRIFT, TICK_SIZE,
};
use super::{Chart, DrawError, HEIGHT, WIDTH};
use crate::report::{Measured, ResultRow, Status};

pub(super) const DELTAS_TITLE: &str = "Measured \u{2212} claimed top-1 error, per claim";

/// Height of one claim row, in pixels.
const DELTA_ROW_H: u32 = 40;
/// The widest a claim's label may be before it is cut in the middle.
pub(super) const DELTA_LABEL_MAX_W: i32 = 470;
/// The chart grows with its rows up to this height.
pub(super) const MAX_HEIGHT: u32 = 8000;
/// The tolerance band.
const BAND: RGBAColor = RGBAColor(150, 150, 150, 0.3);

struct DeltaRow {
    label: String,
    claim: f64,
    measured: Option<Measured>,
    tolerance: Option<f64>,
    status: Status,
}

pub(super) struct Deltas {
    rows: Vec<DeltaRow>,
    x: Range<f64>,
    /// Pixels the widest (cut) row label takes.
    pub(super) label_w: i32,
    height: u32,
    legend: Vec<LegendEntry>,
}

/// A row's marker: colour, shape, filled. Published claims are circles, recorded baselines
/// squares, so that a baseline that holds never reads as a reproduced published claim.
fn status_marker(status: &Status) -> (RGBColor, Shape, bool) {
    match status {
        Status::Reproduced => (GREEN_OK, Shape::Circle, true),
        Status::Drift => (RED_DRIFT, Shape::Circle, true),
        Status::Measured => (BLUE_MEASURED, Shape::Circle, false),
        Status::Baseline => (BLUE_MEASURED, Shape::Square, true),
        Status::Regressed => (ORANGE_REGRESSED, Shape::Square, true),
        Status::Subset(_) => (PURPLE_SUBSET, Shape::Circle, false),
        Status::Empty(_) | Status::NotRun(_) => (GREY_TEXT, Shape::Circle, false),
    }
}

/// The legend's entries, one per status drawn, in this order.
const LEGEND_STATUSES: [(&str, &str); 6] = [
    ("reproduced", "reproduced (published claim)"),
    ("drift", "drift (published claim)"),
    ("baseline", "holds (recorded baseline)"),
    ("regressed", "regressed (recorded baseline)"),
    ("subset", "subset of the test set (not judged)"),
    ("measured", "measured (no verdict)"),
];

impl Deltas {
    pub(super) fn prepare(rows: &[ResultRow]) -> Option<Deltas> {
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
        for (word, label) in LEGEND_STATUSES {
            if let Some(r) = rows.iter().find(|r| r.measured.is_some() && r.status.word() == word) {
                let (color, shape, filled) = status_marker(&r.status);
                legend.push(LegendEntry { sample: Sample::Marker { color, shape, filled }, label: label.into() });
            }
        }
        legend.push(LegendEntry { sample: Sample::Whisker { color: AXIS }, label: "95% CI \u{2212} claim".into() });
        if rows.iter().any(|r| r.tolerance.is_some()) {
            legend.push(LegendEntry { sample: Sample::Band { color: BAND }, label: "\u{b1} tolerance".into() });
        }
        Some(Deltas { rows, x: -half..half, label_w, height, legend })
    }

    /// Claim rows drawn.
    #[cfg(test)]
    pub(super) fn row_count(&self) -> usize {
        self.rows.len()
    }
}

impl Chart for Deltas {
    fn size(&self) -> (u32, u32) {
        (WIDTH, self.height)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError> {
        let body = titled(root, DELTAS_TITLE)?;
        let plot = draw_top_legend(&body, &self.legend)?;

        let n = self.rows.len();
        let labels: Vec<String> =
            self.rows.iter().map(|r| fit_middle(&r.label, TICK_SIZE, DELTA_LABEL_MAX_W)).collect();
        // Row i (input order) is drawn top to bottom: y = n − 1 − i.
        let y_of = |i: usize| (n - 1 - i) as f64;
        let y_format = |v: &f64| {
            let k = v.round();
            if k >= 0.0 && (k as usize) < n {
                labels[n - 1 - k as usize].clone()
            } else {
                String::new()
            }
        };
        // Signed ticks, with a true minus sign to match the axis title.
        let x_format = |v: &f64| {
            let s = fmt_tick(*v);
            if *v > 1e-9 {
                format!("+{s}")
            } else {
                s.replace('-', "\u{2212}")
            }
        };
        let y = KeyedAxis::new(-0.5..n as f64 - 0.5, (0..n).map(|k| k as f64).collect());
        let axes = Axes {
            x_desc: "measured \u{2212} claimed top-1 error (points)",
            y_desc: "claim (experiment/model/protocol)",
            x_labels: 9,
            y_labels: y.key_count(),
            x_format: &x_format,
            y_format: &y_format,
            x_grid: true,
            margin_right: 30,
            y_label_width: (self.label_w + 50) as u32,
        };
        let mut chart = mesh(&plot, self.x.clone(), y, &axes)?;

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
                    let (color, shape, filled) = status_marker(&r.status);
                    chart.draw_series(std::iter::once(ErrorBar::new_horizontal(
                        y,
                        m.low - r.claim,
                        m.err - r.claim,
                        m.high - r.claim,
                        color.stroke_width(2),
                        14,
                    )))?;
                    draw_marker(chart.plotting_area(), (m.err - r.claim, y), shape, color, filled, 7)?;
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
