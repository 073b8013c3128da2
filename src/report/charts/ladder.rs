//! (1) The protocol ladder: per experiment/model, measured top-1 error along (i) → (iv) beside
//! the claimed ladder.

use std::collections::HashMap;
use std::ops::Range;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axis::{
    error_range, extent, finite, finite_measured, fmt_tick, mesh, Axes, KeyedAxis, NUMERIC_Y_LABEL_WIDTH,
};
use super::legend::{column_legend_height, draw_side_legend, split_for_side_legend, LegendEntry, Sample};
use super::style::{draw_marker, kind_index, kind_label, series_style, titled, Shape, AXIS, KINDS};
use super::{Chart, DrawError, HEIGHT, WIDTH};
use crate::report::{ClaimKind, Measured, ProtocolKind, ResultRow};

pub(super) const LADDER_TITLE: &str = "Top-1 error along the test-protocol ladder (i) \u{2192} (iv)";

/// Pixels above the side legend: the title and the plot's top margin (the legend starts level
/// with the plot), plus room below the last entry.
const LEGEND_TOP: u32 = 110;

struct LadderSeries {
    label: String,
    color: RGBColor,
    shape: Shape,
    /// (x, measurement), sorted by x.
    measured: Vec<(f64, Measured)>,
    /// (x, claimed error), sorted by x.
    claimed: Vec<(f64, f64)>,
}

pub(super) struct Ladder {
    /// Drawn once, at the top of the chart.
    title: String,
    /// Tall enough for every legend entry: the legend is never cut to "… and N more".
    height: u32,
    series: Vec<LadderSeries>,
    pub(super) y: Range<f64>,
    legend: Vec<LegendEntry>,
}

impl Ladder {
    pub(super) fn prepare(rows: &[ResultRow], title: &str) -> Option<Ladder> {
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
        let y = error_range(lo, hi, 0.08);

        let mut legend = vec![
            LegendEntry {
                sample: Sample::Line { color: AXIS, width: 3, dashed: false, marker: Some((Shape::Circle, true)) },
                label: "measured, 95% CI".into(),
            },
            LegendEntry {
                sample: Sample::Line { color: AXIS, width: 2, dashed: true, marker: Some((Shape::Circle, false)) },
                label: claimed_label(rows).into(),
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
        // The title, the plot's top margin and the legend frame's padding, then one row per entry.
        let height = HEIGHT.max(LEGEND_TOP + column_legend_height(legend.len()) as u32);
        Some(Ladder { title: title.to_string(), height, series, y, legend })
    }
}

impl Chart for Ladder {
    fn size(&self) -> (u32, u32) {
        (WIDTH, self.height)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError> {
        let body = titled(root, &self.title)?;
        let (plot, side) = split_for_side_legend(&body, &self.legend);
        let x = KeyedAxis::new(-0.5..3.5, vec![0.0, 1.0, 2.0, 3.0]);
        let x_format = |v: &f64| {
            let i = v.round();
            if (0.0..4.0).contains(&i) {
                kind_label(KINDS[i as usize])
            } else {
                String::new()
            }
        };
        let axes = Axes {
            x_desc: "test protocol",
            y_desc: "top-1 error (%)",
            x_labels: x.key_count(),
            y_labels: 8,
            x_format: &x_format,
            y_format: &|v: &f64| fmt_tick(*v),
            x_grid: false,
            margin_right: 24,
            y_label_width: NUMERIC_Y_LABEL_WIDTH,
        };
        let mut chart = mesh(&plot, x, self.y.clone(), &axes)?;

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

        let (_, plot_y) = chart.plotting_area().get_pixel_range();
        draw_side_legend(&side, plot_y.start, &self.legend)
    }
}

/// What the dashed lines are: published claims, this project's recorded baselines, or both, so
/// that a baseline is never drawn as if a source had published it.
fn claimed_label(rows: &[ResultRow]) -> &'static str {
    let claimed = rows.iter().filter(|r| r.claimed_top1_err.is_some());
    let (mut published, mut baseline) = (false, false);
    for r in claimed {
        match r.claim_kind {
            Some(ClaimKind::Baseline) => baseline = true,
            _ => published = true,
        }
    }
    match (published, baseline) {
        (false, true) => "recorded baseline",
        (true, true) => "claimed or recorded baseline",
        _ => "published claim",
    }
}
