//! Text, drawn with `ab_glyph` and the embedded font.
//!
//! plotters 0.3.7's own `ab_glyph` text drops each glyph's left side bearing and truncates the
//! pen position, which renders "alarm" as "al arm". Laying glyphs out here at sub-pixel pen
//! positions costs forty lines and gives correctly spaced, kerned text.

use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use plotters::prelude::*;

use crate::{Area, R};

/// DejaVu Sans, subset to Latin-1 and a few symbols (see assets/README.md): 23 KB.
static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans-subset.ttf");

fn font() -> R<&'static FontRef<'static>> {
    static FONT: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(FONT_BYTES).ok())
        .as_ref()
        .ok_or_else(|| "the embedded font is not a valid TrueType font".to_string())
}

/// How a text sits on its anchor point: fractions of its width and height, (0, 0) = top left,
/// (1, 0.5) = middle right.
pub(crate) type Anchor = (f32, f32);

/// Glyphs of `text` at size `px` with their pen x, and the total advance.
fn layout(font: &FontRef<'static>, text: &str, px: f32) -> (Vec<(ab_glyph::GlyphId, f32)>, f32) {
    let scaled = font.as_scaled(PxScale::from(px));
    let mut pen = 0.0;
    let mut prev = None;
    let mut glyphs = Vec::with_capacity(text.len());
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(p) = prev {
            pen += scaled.kern(p, id);
        }
        glyphs.push((id, pen));
        pen += scaled.h_advance(id);
        prev = Some(id);
    }
    (glyphs, pen)
}

/// Width of `text` at size `px`, pixels.
pub(crate) fn width(text: &str, px: f32) -> R<f32> {
    Ok(layout(font()?, text, px).1)
}

/// Draws `text` at `pos` (coordinates of `area`), `px` pixels high (ascent to descent);
/// `vertical` turns it 90° counter-clockwise (reading upwards), anchored in its own frame.
pub(crate) fn draw(
    area: &Area,
    text: &str,
    pos: (i32, i32),
    px: f32,
    color: RGBColor,
    anchor: Anchor,
    vertical: bool,
) -> R<()> {
    let font = font()?;
    let scaled = font.as_scaled(PxScale::from(px));
    let (glyphs, w) = layout(font, text, px);
    let h = scaled.ascent() - scaled.descent();
    let (ox, baseline) = (-anchor.0 * w, -anchor.1 * h + scaled.ascent());
    let mut pixels = Vec::new();
    for (id, x) in glyphs {
        let glyph = id.with_scale_and_position(PxScale::from(px), point(ox + x, baseline));
        if let Some(outline) = font.outline_glyph(glyph) {
            let b = outline.px_bounds();
            outline.draw(|gx, gy, coverage| {
                let (tx, ty) = (b.min.x as i32 + gx as i32, b.min.y as i32 + gy as i32);
                pixels.push((tx, ty, coverage));
            });
        }
    }
    for (tx, ty, coverage) in pixels {
        if coverage <= 0.0 {
            continue;
        }
        let p = if vertical {
            (pos.0 + ty, pos.1 - tx)
        } else {
            (pos.0 + tx, pos.1 + ty)
        };
        area.draw_pixel(p, &color.mix(f64::from(coverage.min(1.0))))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
