//! A tiny line-plot renderer: axes with "nice" ticks, one polyline (with point markers) per
//! series, a legend, a title, all drawn into an RGB buffer with a built-in 5×7 pixel font and
//! saved as PNG with the `png` crate. Enough for loss/accuracy curves; no plotting framework.

use std::path::Path;

/// One curve.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub color: [u8; 3],
}

/// A chart.
#[derive(Debug, Clone, Default)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Fixed y range (default: the data's, padded).
    pub y_range: Option<(f64, f64)>,
}

/// Distinguishable colours for the series, in order.
pub const PALETTE: [[u8; 3]; 6] = [
    [31, 119, 180],
    [214, 39, 40],
    [44, 160, 44],
    [255, 127, 14],
    [148, 103, 189],
    [140, 86, 75],
];

/// An RGB canvas.
struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Self {
        Canvas {
            w,
            h,
            px: vec![255; w * h * 3],
        }
    }

    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h {
            let i = (y as usize * self.w + x as usize) * 3;
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }

    fn rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: [u8; 3]) {
        for y in y0..=y1 {
            for x in x0..=x1 {
                self.set(x, y, c);
            }
        }
    }

    /// A line `thick` pixels wide (Bresenham with a square brush).
    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: [u8; 3], thick: i64) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        let r0 = (thick - 1) / 2;
        let r1 = thick / 2;
        loop {
            self.rect(x - r0, y - r0, x + r1, y + r1, c);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Text at (x, y) = top-left, `scale`× the 5×7 font; returns the width drawn.
    fn text(&mut self, x: i64, y: i64, s: &str, c: [u8; 3], scale: i64) -> i64 {
        let mut cx = x;
        for ch in s.chars() {
            let g = glyph(ch);
            for (row, bits) in g.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0x10 >> col) != 0 {
                        self.rect(
                            cx + col * scale,
                            y + row as i64 * scale,
                            cx + col * scale + scale - 1,
                            y + row as i64 * scale + scale - 1,
                            c,
                        );
                    }
                }
            }
            cx += 6 * scale;
        }
        cx - x
    }

    /// Text rotated by 90° (bottom to top), with its left end at (x, y).
    fn text_vertical(&mut self, x: i64, y: i64, s: &str, c: [u8; 3], scale: i64) {
        let mut cy = y;
        for ch in s.chars() {
            let g = glyph(ch);
            for (row, bits) in g.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0x10 >> col) != 0 {
                        // (col, row) → (row, -col)
                        let px = x + row as i64 * scale;
                        let py = cy - col * scale;
                        self.rect(px, py - scale + 1, px + scale - 1, py, c);
                    }
                }
            }
            cy -= 6 * scale;
        }
    }
}

/// Width in pixels of `s` at `scale`.
fn text_width(s: &str, scale: i64) -> i64 {
    s.chars().count() as i64 * 6 * scale
}

/// Ticks at a 1/2/5×10^k step covering [lo, hi].
fn nice_ticks(lo: f64, hi: f64, target: usize) -> (f64, Vec<f64>) {
    let span = (hi - lo).max(1e-12);
    let raw = span / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() * step;
    let mut ticks = Vec::new();
    let mut t = first;
    while t <= hi + step * 1e-9 && ticks.len() < 50 {
        ticks.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    (step, ticks)
}

fn fmt_tick(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    format!("{v:.decimals$}")
}

/// Renders `chart` into an RGB buffer of `w × h`.
pub fn render(chart: &Chart, w: usize, h: usize) -> Vec<u8> {
    let mut cv = Canvas::new(w, h);
    let (black, grey, light) = ([0, 0, 0], [90, 90, 90], [228, 228, 228]);
    let pts = chart.series.iter().flat_map(|s| s.points.iter());
    let finite: Vec<(f64, f64)> = pts
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .copied()
        .collect();
    let (mut x0, mut x1) = finite
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.0), b.max(p.0))
        });
    let (mut y0, mut y1) = chart.y_range.unwrap_or_else(|| {
        let (a, b) = finite
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
                (a.min(p.1), b.max(p.1))
            });
        let pad = ((b - a) * 0.05).max(1e-3);
        (a - pad, b + pad)
    });
    if !x0.is_finite() || !x1.is_finite() {
        (x0, x1) = (0.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if !y0.is_finite() || !y1.is_finite() {
        (y0, y1) = (0.0, 1.0);
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    let (left, right, top, bottom) = (70i64, 20i64, 40i64, 50i64);
    let (pw, ph) = (w as i64 - left - right, h as i64 - top - bottom);
    let map = |x: f64, y: f64| -> (i64, i64) {
        (
            left + ((x - x0) / (x1 - x0) * pw as f64).round() as i64,
            top + ph - ((y - y0) / (y1 - y0) * ph as f64).round() as i64,
        )
    };
    // grid and ticks
    let (ys, yt) = nice_ticks(y0, y1, 6);
    for &t in &yt {
        let (_, py) = map(x0, t);
        cv.line((left, py), (left + pw, py), light, 1);
        let s = fmt_tick(t, ys);
        cv.text(left - 6 - text_width(&s, 1), py - 3, &s, grey, 1);
    }
    let (xs, xt) = nice_ticks(x0, x1, 8);
    for &t in &xt {
        let (px, _) = map(t, y0);
        cv.line((px, top), (px, top + ph), light, 1);
        let s = fmt_tick(t, xs);
        cv.text(px - text_width(&s, 1) / 2, top + ph + 6, &s, grey, 1);
    }
    // axes
    cv.line((left, top), (left, top + ph), black, 1);
    cv.line((left, top + ph), (left + pw, top + ph), black, 1);
    // labels and title
    let tw = text_width(&chart.title, 2);
    cv.text((w as i64 - tw) / 2, 10, &chart.title, black, 2);
    let xw = text_width(&chart.x_label, 1);
    cv.text(
        left + (pw - xw) / 2,
        top + ph + 24,
        &chart.x_label,
        black,
        1,
    );
    let yw = text_width(&chart.y_label, 1);
    cv.text_vertical(12, top + (ph + yw) / 2, &chart.y_label, black, 1);
    // series
    for s in &chart.series {
        // lone points (e.g. one test evaluation) get a bigger marker
        let r = if s.points.len() <= 2 { 4 } else { 2 };
        let mut prev: Option<(i64, i64)> = None;
        for &(x, y) in &s.points {
            if !(x.is_finite() && y.is_finite()) {
                prev = None;
                continue;
            }
            let p = map(x, y.clamp(y0, y1));
            if let Some(q) = prev {
                cv.line(q, p, s.color, 2);
            }
            cv.rect(p.0 - r, p.1 - r, p.0 + r, p.1 + r, s.color);
            prev = Some(p);
        }
    }
    // legend: in the corner that hides the fewest data points
    if !chart.series.is_empty() {
        let lw = chart
            .series
            .iter()
            .map(|s| text_width(&s.label, 1))
            .max()
            .unwrap_or(0)
            + 34;
        let lh = chart.series.len() as i64 * 14 + 8;
        let corners = [
            (left + pw - lw - 8, top + 8),
            (left + pw - lw - 8, top + ph - lh - 8),
            (left + 8, top + 8),
            (left + 8, top + ph - lh - 8),
        ];
        let pixels: Vec<(i64, i64)> = chart
            .series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|&(x, y)| map(x, y.clamp(y0, y1)))
            .collect();
        let hidden = |&(lx, ly): &(i64, i64)| {
            pixels
                .iter()
                .filter(|p| {
                    p.0 >= lx - 4 && p.0 <= lx + lw + 4 && p.1 >= ly - 4 && p.1 <= ly + lh + 4
                })
                .count()
        };
        let (lx, ly) = corners
            .iter()
            .copied()
            .min_by_key(hidden)
            .unwrap_or(corners[0]);
        cv.rect(lx, ly, lx + lw, ly + lh, [255, 255, 255]);
        cv.line((lx, ly), (lx + lw, ly), grey, 1);
        cv.line((lx, ly + lh), (lx + lw, ly + lh), grey, 1);
        cv.line((lx, ly), (lx, ly + lh), grey, 1);
        cv.line((lx + lw, ly), (lx + lw, ly + lh), grey, 1);
        for (i, s) in chart.series.iter().enumerate() {
            let y = ly + 8 + i as i64 * 14;
            cv.line((lx + 6, y + 3), (lx + 24, y + 3), s.color, 3);
            cv.text(lx + 30, y, &s.label, black, 1);
        }
    }
    cv.px
}

/// Renders `chart` (800×500) and writes it as an 8-bit RGB PNG.
pub fn write_png(path: &Path, chart: &Chart) -> Result<(), String> {
    let (w, h) = (800usize, 500usize);
    let px = render(chart, w, h);
    let err = |e: &dyn std::fmt::Display| format!("cannot write plot `{}`: {e}", path.display());
    let file = std::fs::File::create(path).map_err(|e| err(&e))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w as u32, h as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(|e| err(&e))?;
    writer.write_image_data(&px).map_err(|e| err(&e))?;
    writer.finish().map_err(|e| err(&e))
}

/// The 5×7 glyph of `c` (rows top to bottom, bit 4 = leftmost column). Lower case is drawn as
/// upper case; unknown characters as a small box.
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        ' ' => [0; 7],
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '.' => [0, 0, 0, 0, 0, 0x0C, 0x0C],
        ',' => [0, 0, 0, 0, 0x0C, 0x04, 0x08],
        ':' => [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0],
        ';' => [0, 0x0C, 0x0C, 0, 0x0C, 0x04, 0x08],
        '!' => [0x04, 0x04, 0x04, 0x04, 0x04, 0, 0x04],
        '?' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0, 0x04],
        '\'' => [0x04, 0x04, 0x08, 0, 0, 0, 0],
        '"' => [0x0A, 0x0A, 0, 0, 0, 0, 0],
        '[' => [0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E],
        ']' => [0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E],
        '#' => [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A],
        '&' => [0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D],
        'σ' => [0, 0, 0x0F, 0x12, 0x11, 0x11, 0x0E],
        '±' => [0x04, 0x04, 0x1F, 0x04, 0x04, 0, 0x1F],
        '-' => [0, 0, 0, 0x1F, 0, 0, 0],
        '+' => [0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0],
        '=' => [0, 0, 0x1F, 0, 0x1F, 0, 0],
        '_' => [0, 0, 0, 0, 0, 0, 0x1F],
        '/' => [0, 0x01, 0x02, 0x04, 0x08, 0x10, 0],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        '·' | '*' => [0, 0, 0, 0x0C, 0x0C, 0, 0],
        '×' => [0, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0],
        '>' => [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08],
        '<' => [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02],
        _ => [0, 0x1F, 0x11, 0x11, 0x11, 0x1F, 0],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_nice() {
        let (step, t) = nice_ticks(0.0, 1.0, 5);
        assert_eq!(step, 0.2);
        assert_eq!(t.len(), 6);
        let (step, t) = nice_ticks(0.83, 0.91, 6);
        assert!((step - 0.02).abs() < 1e-12, "{step}");
        assert_eq!(fmt_tick(t[0], step), "0.84");
    }

    #[test]
    fn renders_lines_legend_and_png() {
        let chart = Chart {
            title: "Loss".into(),
            x_label: "epoch".into(),
            y_label: "loss".into(),
            series: vec![
                Series {
                    label: "a".into(),
                    points: vec![(0.0, 2.0), (1.0, 1.0), (2.0, 0.5)],
                    color: PALETTE[0],
                },
                Series {
                    label: "b".into(),
                    points: vec![(0.0, 2.2), (1.0, f64::NAN), (2.0, 0.7)],
                    color: PALETTE[1],
                },
            ],
            y_range: None,
        };
        let px = render(&chart, 400, 300);
        let count = |c: [u8; 3]| px.chunks(3).filter(|p| *p == c).count();
        assert!(count(PALETTE[0]) > 100 && count(PALETTE[1]) > 20);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.png");
        write_png(&p, &chart).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        // empty charts still render
        render(&Chart::default(), 200, 150);
    }
}
