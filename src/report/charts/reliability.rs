//! (5) Reliability diagram of one model: accuracy against top-1 confidence in the audit's
//! equal-width bins, one line per protocol, beside the diagonal of perfect calibration. Test-time
//! augmentation averages probabilities, which moves points off the diagonal; this shows how far.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axis::{fmt_tick, mesh, Axes, NUMERIC_Y_LABEL_WIDTH};
use super::legend::{draw_top_legend, LegendEntry, Sample};
use super::style::{draw_marker, kind_label, series_style, titled, Shape, GREY_TEXT};
use super::{Chart, DrawError};
use crate::report::ProtocolCalibration;

/// A reliability diagram is square-ish: both axes are probabilities.
const SIZE: (u32, u32) = (900, 820);

struct Line {
    color: RGBColor,
    shape: Shape,
    /// (mean confidence, accuracy) of each non-empty bin, in percent.
    points: Vec<(f64, f64)>,
}

pub(super) struct Reliability {
    title: String,
    lines: Vec<Line>,
    legend: Vec<LegendEntry>,
}

impl Reliability {
    /// `None` when no protocol has a non-empty bin with finite numbers.
    pub(super) fn prepare(title: &str, protocols: &[&ProtocolCalibration]) -> Option<Reliability> {
        let mut lines = Vec::new();
        let mut legend = vec![LegendEntry {
            sample: Sample::Line { color: GREY_TEXT, width: 2, dashed: true, marker: None },
            label: "perfect calibration".into(),
        }];
        for (i, p) in protocols.iter().enumerate() {
            let points: Vec<(f64, f64)> = p
                .bins
                .iter()
                .filter_map(|b| Some((100.0 * b.confidence?, 100.0 * b.accuracy?)))
                .filter(|(c, a)| c.is_finite() && a.is_finite())
                .collect();
            if points.is_empty() {
                continue;
            }
            let (color, shape) = series_style(i);
            legend.push(LegendEntry {
                sample: Sample::Line { color, width: 3, dashed: false, marker: Some((shape, true)) },
                label: format!("{} {}: ECE {:.2}%, NLL {:.3}", kind_label(p.kind), p.protocol, 100.0 * p.ece, p.nll),
            });
            lines.push(Line { color, shape, points });
        }
        (!lines.is_empty()).then(|| Reliability { title: title.to_string(), lines, legend })
    }
}

impl Chart for Reliability {
    fn size(&self) -> (u32, u32) {
        SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError> {
        let body = titled(root, &self.title)?;
        let plot = draw_top_legend(&body, &self.legend)?;
        let axes = Axes {
            x_desc: "top-1 confidence (%, mean over the bin)",
            y_desc: "top-1 accuracy (%)",
            x_labels: 11,
            y_labels: 11,
            x_format: &|v: &f64| fmt_tick(*v),
            y_format: &|v: &f64| fmt_tick(*v),
            x_grid: true,
            margin_right: 30,
            y_label_width: NUMERIC_Y_LABEL_WIDTH,
        };
        let mut chart = mesh(&plot, 0.0..100.0, 0.0..100.0, &axes)?;
        chart.draw_series(DashedLineSeries::new([(0.0, 0.0), (100.0, 100.0)], 9, 6, GREY_TEXT.stroke_width(2)))?;
        for line in &self.lines {
            chart.draw_series(LineSeries::new(line.points.clone(), line.color.stroke_width(3)))?;
        }
        for line in &self.lines {
            for &point in &line.points {
                draw_marker(chart.plotting_area(), point, line.shape, line.color, true, 6)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{ProtocolKind, ReliabilityBin};

    fn protocol(id: &str, bins: Vec<ReliabilityBin>) -> ProtocolCalibration {
        ProtocolCalibration {
            model: "m".into(),
            protocol: id.into(),
            kind: ProtocolKind::TenCrop,
            nll: 0.5,
            ece: 0.1,
            bins,
        }
    }

    fn bin(confidence: Option<f64>, accuracy: Option<f64>) -> ReliabilityBin {
        ReliabilityBin { lower: 0.0, upper: 1.0, images: usize::from(confidence.is_some()), confidence, accuracy }
    }

    #[test]
    fn empty_and_non_finite_bins_are_not_drawn() {
        let empty = protocol("a", vec![bin(None, None)]);
        assert!(Reliability::prepare("t", &[&empty]).is_none(), "nothing to draw");
        let drawn = protocol("b", vec![bin(Some(0.5), Some(0.25)), bin(None, None), bin(Some(f64::NAN), Some(0.5))]);
        let chart = Reliability::prepare("t", &[&empty, &drawn]).unwrap();
        assert_eq!(chart.lines.len(), 1);
        assert_eq!(chart.lines[0].points, [(50.0, 25.0)]);
        // The diagonal, then one entry per drawn protocol with its ECE (%) and NLL.
        assert_eq!(chart.legend.len(), 2);
        assert_eq!(chart.legend[1].label, "(ii) 10 crops b: ECE 10.00%, NLL 0.500");
    }
}
