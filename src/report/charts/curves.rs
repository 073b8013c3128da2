//! (4) Training curves like the paper's Figures 4/6: error (%) vs epoch, thin dashed training
//! error and bold validation error, one colour per run.

use std::ops::Range;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axis::{error_range, extent, fmt_tick, mesh, plottable, Axes, NUMERIC_Y_LABEL_WIDTH};
use super::legend::{draw_side_legend, split_for_side_legend, LegendEntry, Sample};
use super::style::{draw_marker, series_style, titled, Shape, AXIS};
use super::{Chart, CurveSeries, DrawError, InputProblem, HEIGHT, WIDTH};

struct Curve {
    color: RGBColor,
    /// (epoch, error %) points, non-finite ones left out.
    train: Vec<(f64, f64)>,
    val: Vec<(f64, f64)>,
}

pub(super) struct Curves {
    title: String,
    curves: Vec<Curve>,
    x: Range<f64>,
    y: Range<f64>,
    legend: Vec<LegendEntry>,
}

/// Why runs cannot be drawn: nothing finite in them, or a series of the wrong length.
pub(super) enum CurveProblem {
    Empty,
    Length(InputProblem),
}

impl Curves {
    pub(super) fn prepare(runs: &[CurveSeries], title: &str) -> Result<Curves, CurveProblem> {
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
            for (series, v) in [("train_error", &run.train_error), ("val_error", &run.val_error)] {
                if !v.is_empty() && v.len() != run.epochs.len() {
                    return Err(CurveProblem::Length(InputProblem::CurveLength {
                        run: run.label.clone(),
                        series,
                        values: v.len(),
                        epochs: run.epochs.len(),
                    }));
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
        let y = error_range(ylo, yhi, 0.06);
        Ok(Curves { title: title.to_string(), curves, x, y, legend })
    }
}

impl Chart for Curves {
    fn size(&self) -> (u32, u32) {
        (WIDTH, HEIGHT)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError> {
        let body = titled(root, &self.title)?;
        let (plot, side) = split_for_side_legend(&body, &self.legend);
        let format = |v: &f64| fmt_tick(*v);
        let axes = Axes {
            x_desc: "epoch",
            y_desc: "error (%)",
            x_labels: 10,
            y_labels: 8,
            x_format: &format,
            y_format: &format,
            x_grid: true,
            margin_right: 30,
            y_label_width: NUMERIC_Y_LABEL_WIDTH,
        };
        let mut chart = mesh(&plot, self.x.clone(), self.y.clone(), &axes)?;
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
        let (_, plot_y) = chart.plotting_area().get_pixel_range();
        draw_side_legend(&side, plot_y.start, &self.legend)
    }
}
