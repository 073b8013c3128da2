//! Inlining a chart's SVG into the HTML page: a small parser for the document's prolog and the
//! root `<svg>` start tag, enough to make the drawing scale with the page.

use super::html::esc;

/// Why a chart file is not an SVG document this inliner can use.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum SvgError {
    #[error("unterminated <? … ?>")]
    UnterminatedInstruction,
    #[error("unterminated comment")]
    UnterminatedComment,
    #[error("unterminated <!DOCTYPE")]
    UnterminatedDoctype,
    #[error("the root element is not <svg>")]
    RootNotSvg,
    #[error("unterminated <svg> tag")]
    UnterminatedTag,
    /// An attribute of the `<svg>` tag without a name; `near` is the text where it starts.
    #[error("malformed attribute near {near:?}")]
    MalformedAttribute { near: String },
    #[error("unterminated value of {name}")]
    UnterminatedValue { name: String },
}

/// The SVG document as an element to put inside the page: everything before the root `<svg>`
/// (XML declaration, doctype, comments) dropped; fixed width/height replaced by `width="100%"`
/// and a viewBox (added from width/height when missing), so the chart scales with the page.
pub(super) fn inline_svg(svg: &str, title: &str) -> Result<String, SvgError> {
    let mut rest = svg.trim_start_matches('\u{feff}');
    loop {
        rest = rest.trim_start();
        let skip_to = |end: &str| rest.find(end).map(|i| i + end.len());
        let next = if rest.starts_with("<?") {
            skip_to("?>").ok_or(SvgError::UnterminatedInstruction)?
        } else if rest.starts_with("<!--") {
            skip_to("-->").ok_or(SvgError::UnterminatedComment)?
        } else if rest.get(..9).is_some_and(|p| p.eq_ignore_ascii_case("<!DOCTYPE")) {
            doctype_end(rest).ok_or(SvgError::UnterminatedDoctype)?
        } else {
            break;
        };
        rest = &rest[next..];
    }
    let after = rest.strip_prefix("<svg").ok_or(SvgError::RootNotSvg)?;
    if !after.starts_with(|c: char| c.is_whitespace() || c == '>' || c == '/') {
        return Err(SvgError::RootNotSvg);
    }
    let close = tag_end(after).ok_or(SvgError::UnterminatedTag)?;
    let (inner, self_closing) = match after[..close].trim_end().strip_suffix('/') {
        Some(inner) => (inner, true),
        None => (&after[..close], false),
    };
    let attrs = parse_attrs(inner)?;
    let get = |name: &str| attrs.iter().find(|(n, _, _)| n == name).map(|(_, _, v)| v.as_str());
    let px = |v: Option<&str>| {
        v.and_then(|v| v.trim().trim_end_matches("px").trim().parse::<f64>().ok()).filter(|x| *x > 0.0)
    };
    let view_box = match (get("viewBox"), px(get("width")), px(get("height"))) {
        (Some(_), _, _) => None,
        (None, Some(w), Some(h)) => Some(format!("0 0 {w} {h}")),
        // Neither a viewBox nor numeric dimensions: leave the tag alone rather than break the drawing.
        (None, _, _) => return Ok(format!("<svg{}", after.trim_end())),
    };
    let mut tag = String::from("<svg");
    for (name, raw, _) in &attrs {
        if name != "width" && name != "height" {
            tag += &format!(" {raw}");
        }
    }
    if let Some(vb) = view_box {
        tag += &format!(" viewBox=\"{vb}\"");
    }
    tag += " width=\"100%\"";
    if get("role").is_none() {
        tag += " role=\"img\"";
    }
    if get("aria-label").is_none() {
        tag += &format!(" aria-label=\"{}\"", esc(title));
    }
    tag += if self_closing { "/>" } else { ">" };
    Ok(format!("{tag}{}", after[close + 1..].trim_end()))
}

/// Byte index just past a `<!DOCTYPE …>`, skipping an internal subset in `[…]`.
fn doctype_end(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            '>' if depth == 0 => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// Index of the `>` closing a start tag, ignoring `>` inside quoted attribute values.
fn tag_end(s: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '>') => return Some(i),
            _ => {}
        }
    }
    None
}

/// Attributes of a start tag as (name, raw text `name="value"`, unquoted value).
fn parse_attrs(s: &str) -> Result<Vec<(String, String, String)>, SvgError> {
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let name_len = rest.find(|c: char| c.is_whitespace() || c == '=').unwrap_or(rest.len());
        let name = &rest[..name_len];
        if name.is_empty() {
            return Err(SvgError::MalformedAttribute { near: rest.chars().take(20).collect() });
        }
        let after_name = rest[name_len..].trim_start();
        let Some(value_part) = after_name.strip_prefix('=') else {
            // An attribute without a value.
            out.push((name.to_string(), name.to_string(), String::new()));
            rest = after_name;
            continue;
        };
        let value_part = value_part.trim_start();
        let (value, consumed) = match value_part.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let end =
                    value_part[1..].find(q).ok_or_else(|| SvgError::UnterminatedValue { name: name.to_string() })?;
                (&value_part[1..1 + end], end + 2)
            }
            _ => {
                let end = value_part.find(char::is_whitespace).unwrap_or(value_part.len());
                (&value_part[..end], end)
            }
        };
        let raw = format!("{name}=\"{}\"", value.replace('"', "&quot;"));
        out.push((name.to_string(), raw, value.to_string()));
        rest = value_part[consumed..].trim_start();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_inlining_keeps_viewbox_and_rejects_non_svg() {
        let kept =
            inline_svg("<!-- made by hand -->\n<svg viewBox='0 0 10 5' width=\"10\" height=\"5\"><g/></svg>", "t")
                .expect("svg");
        assert!(
            kept.starts_with("<svg viewBox=\"0 0 10 5\" width=\"100%\" role=\"img\" aria-label=\"t\"><g/></svg>"),
            "{kept}"
        );
        let doctype = "<?xml version=\"1.0\"?><!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"x.dtd\"><svg width=\"4px\" height=\"2\"/>";
        assert_eq!(
            inline_svg(doctype, "a\"b").expect("svg"),
            "<svg viewBox=\"0 0 4 2\" width=\"100%\" role=\"img\" aria-label=\"a&quot;b\"/>"
        );
        assert_eq!(inline_svg("<html></html>", "t"), Err(SvgError::RootNotSvg));
        assert_eq!(inline_svg("<svgx/>", "t"), Err(SvgError::RootNotSvg));
        assert_eq!(inline_svg("<svg width=\"4", "t"), Err(SvgError::UnterminatedTag));
        assert_eq!(inline_svg("<svg =x>", "t"), Err(SvgError::MalformedAttribute { near: "=x".into() }));
    }
}
