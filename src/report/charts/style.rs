//! How the charts look: the embedded font and text sizes, colours, fitting text into pixels,
//! series markers, and the titled white page every chart starts from.

use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::DrawError;
use crate::report::ProtocolKind;

/// The family name the embedded font is registered under (and named in the SVGs).
pub const FONT_FAMILY: &str = "sans-serif";

static FONT_TTF: &[u8] = include_bytes!("../../../assets/DejaVuSans.ttf");

// Text sizes in plotters units: ab_glyph scales a glyph so that ascent − descent equals the
// size, so the em is about size / 1.16 px; 18 gives ≈ 15.5 px text in the PNG.
pub(super) const TITLE_SIZE: f64 = 28.0;
pub(super) const DESC_SIZE: f64 = 21.0;
pub(super) const TICK_SIZE: f64 = 18.0;
pub(super) const LEGEND_SIZE: f64 = 18.0;
pub(super) const POINT_LABEL_SIZE: f64 = 17.0;

/// Category10: distinct on white and in print.
pub(super) const PALETTE: [RGBColor; 10] = [
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
pub(super) const GREEN_OK: RGBColor = RGBColor(34, 139, 34);
pub(super) const RED_DRIFT: RGBColor = RGBColor(214, 39, 40);
pub(super) const BLUE_MEASURED: RGBColor = RGBColor(31, 119, 180);
/// A recorded baseline that no longer holds: not the red of a published claim's drift.
pub(super) const ORANGE_REGRESSED: RGBColor = RGBColor(230, 120, 20);
/// Measured on a subset of the claim's test set: shown, not judged.
pub(super) const PURPLE_SUBSET: RGBColor = RGBColor(128, 80, 170);
pub(super) const GREY_TEXT: RGBColor = RGBColor(90, 90, 90);
pub(super) const GRID: RGBColor = RGBColor(225, 225, 225);
pub(super) const AXIS: RGBColor = RGBColor(60, 60, 60);

/// Registers the embedded font once per process; plotters keeps it in a global table.
/// `false` when plotters refused the font.
pub(super) fn ensure_font() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, FONT_TTF).is_ok())
}

pub(super) fn font(size: f64) -> FontDesc<'static> {
    FontDesc::new(FontFamily::Name(FONT_FAMILY), size, FontStyle::Normal)
}

pub(super) fn text_style(size: f64, color: RGBColor) -> TextStyle<'static> {
    font(size).color(&color)
}

/// Width of `text` in pixels; a generous guess if the font cannot measure it.
pub(super) fn text_width(text: &str, size: f64) -> i32 {
    match font(size).box_size(text) {
        Ok((w, _)) => w as i32,
        Err(_) => (text.chars().count() as f64 * size * 0.62) as i32,
    }
}

/// `text` cut at the end with an ellipsis so that it fits in `max_w` pixels.
pub(super) fn fit_end(text: &str, size: f64, max_w: i32) -> String {
    fit(text, size, max_w, |keep| (keep, 0))
}

/// `text` cut in the middle with an ellipsis so that it fits in `max_w` pixels: both the
/// experiment (start) and the protocol (end) stay readable.
pub(super) fn fit_middle(text: &str, size: f64, max_w: i32) -> String {
    fit(text, size, max_w, |keep| (keep.div_ceil(2), keep / 2))
}

/// The longest cut of `text` that fits in `max_w` pixels: `split(keep)` says how many of the
/// `keep` characters kept come from the start and how many from the end, around the ellipsis.
fn fit(text: &str, size: f64, max_w: i32, split: impl Fn(usize) -> (usize, usize)) -> String {
    if text_width(text, size) <= max_w {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    for keep in (0..chars.len()).rev() {
        let (head, tail) = split(keep);
        let s: String = chars[..head].iter().chain(['…'].iter()).chain(chars[chars.len() - tail..].iter()).collect();
        if text_width(&s, size) <= max_w {
            return s;
        }
    }
    "…".to_string()
}

/// The four ladder positions, in order.
pub(super) const KINDS: [ProtocolKind; 4] =
    [ProtocolKind::CenterCrop, ProtocolKind::TenCrop, ProtocolKind::FullyConvolutional, ProtocolKind::Ensemble];

/// Position of `kind` on the ladder: (i) → 0 … (iv) → 3.
pub(super) fn kind_index(kind: ProtocolKind) -> usize {
    match kind {
        ProtocolKind::CenterCrop => 0,
        ProtocolKind::TenCrop => 1,
        ProtocolKind::FullyConvolutional => 2,
        ProtocolKind::Ensemble => 3,
    }
}

/// "(i) 1 crop", "(iii) multi-scale FCN", …
pub(super) fn kind_label(kind: ProtocolKind) -> String {
    format!("{} {}", kind.numeral(), kind.short_name())
}

/// Colour and marker of a protocol kind, where the kind is the series (error vs compute).
pub(super) fn kind_style(kind: ProtocolKind) -> (RGBColor, Shape) {
    match kind {
        ProtocolKind::CenterCrop => (PALETTE[0], Shape::Circle),
        ProtocolKind::TenCrop => (PALETTE[1], Shape::Square),
        ProtocolKind::FullyConvolutional => (PALETTE[2], Shape::TriangleUp),
        ProtocolKind::Ensemble => (PALETTE[4], Shape::Diamond),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Shape {
    Circle,
    Square,
    TriangleUp,
    Diamond,
    TriangleDown,
}

const SHAPES: [Shape; 5] = [Shape::Circle, Shape::Square, Shape::TriangleUp, Shape::Diamond, Shape::TriangleDown];

/// Colour and marker of series `i`: ten colours, and the shape shifts each round of ten, so
/// the first 50 series are all distinct and neighbours differ in shape too.
pub(super) fn series_style(i: usize) -> (RGBColor, Shape) {
    (PALETTE[i % PALETTE.len()], SHAPES[(i + i / PALETTE.len()) % SHAPES.len()])
}

/// Draws a marker at `at`: filled with `color`, or hollow (white inside, so lines behind it do
/// not show through), with a 2 px outline.
pub(super) fn draw_marker<DB: DrawingBackend, CT: CoordTranslate>(
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

/// White background and the title; returns the area below the title.
pub(super) fn titled<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
) -> Result<DrawingArea<DB, Shift>, DrawError> {
    root.fill(&WHITE)?;
    let (xr, _) = root.get_pixel_range();
    let title = fit_end(title, TITLE_SIZE, xr.end - xr.start - 40);
    let body = root.margin(14, 0, 0, 0).titled(&title, text_style(TITLE_SIZE, BLACK))?;
    Ok(body.margin(10, 0, 0, 0))
}
