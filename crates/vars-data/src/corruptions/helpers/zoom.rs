//! SciPy `ndimage.zoom(order=1)` and the reference's `clipped_zoom` (protocol §2.5).

/// Python's `round` (half to even) of a non-negative float, as an integer.
fn round_half_even(v: f64) -> usize {
    v.round_ties_even().max(0.0) as usize
}

/// Corner-aligned linear sampling positions of SciPy's `zoom`: output index `o` reads input
/// coordinate `o·(n_in − 1)/(n_out − 1)`; returns `(i0, i1, t)` per output index.
fn axis_weights(n_in: usize, n_out: usize) -> Vec<(usize, usize, f64)> {
    let scale = if n_out > 1 {
        (n_in as f64 - 1.0) / (n_out as f64 - 1.0)
    } else {
        0.0
    };
    (0..n_out)
        .map(|o| {
            let cc = o as f64 * scale;
            let i0 = (cc.floor().max(0.0) as usize).min(n_in - 1);
            let t = cc - i0 as f64;
            (i0, (i0 + 1).min(n_in - 1), t)
        })
        .collect()
}

/// SciPy `zoom(order=1)` of an `h×w×c` buffer to `out_h×out_w×c` (channels untouched).
pub fn zoom_linear(
    src: &[f64],
    h: usize,
    w: usize,
    c: usize,
    out_h: usize,
    out_w: usize,
) -> Vec<f64> {
    let ys = axis_weights(h, out_h);
    let xs = axis_weights(w, out_w);
    let mut out = vec![0.0; out_h * out_w * c];
    for (oy, &(y0, y1, ty)) in ys.iter().enumerate() {
        for (ox, &(x0, x1, tx)) in xs.iter().enumerate() {
            let (wy0, wy1, wx0, wx1) = (1.0 - ty, ty, 1.0 - tx, tx);
            for ch in 0..c {
                let at = |y: usize, x: usize| src[(y * w + x) * c + ch];
                let mut v = wy0 * wx0 * at(y0, x0);
                v += wy0 * wx1 * at(y0, x1);
                v += wy1 * wx0 * at(y1, x0);
                v += wy1 * wx1 * at(y1, x1);
                out[(oy * out_w + ox) * c + ch] = v;
            }
        }
    }
    out
}

/// `clipped_zoom(img, z)`: crop the centre `⌈h/z⌉ × ⌈w/z⌉` at offset `(n − ⌈n/z⌉) // 2` per
/// axis, zoom it by z (output side `round(crop·z)`, half to even), keep the centre `h×w` at
/// offset `(zoomed − h) // 2`. Square images give the reference's square crop; `z = 1` is the
/// identity. Should the zoomed side come out smaller than the image (impossible for z ≥ 1 up to
/// rounding), the last row/column is repeated.
pub fn clipped_zoom(src: &[f64], h: usize, w: usize, c: usize, z: f64) -> Vec<f64> {
    let ch = ((h as f64 / z).ceil() as usize).clamp(1, h);
    let cw = ((w as f64 / z).ceil() as usize).clamp(1, w);
    let (top, left) = ((h - ch) / 2, (w - cw) / 2);
    let mut crop = Vec::with_capacity(ch * cw * c);
    for y in top..top + ch {
        crop.extend_from_slice(&src[(y * w + left) * c..(y * w + left + cw) * c]);
    }
    let nh = round_half_even(ch as f64 * z).max(1);
    let nw = round_half_even(cw as f64 * z).max(1);
    let zoomed = zoom_linear(&crop, ch, cw, c, nh, nw);
    let (ty, tx) = (nh.saturating_sub(h) / 2, nw.saturating_sub(w) / 2);
    let mut out = Vec::with_capacity(h * w * c);
    for y in 0..h {
        let yy = (ty + y).min(nh - 1);
        for x in 0..w {
            let xx = (tx + x).min(nw - 1);
            out.extend_from_slice(&zoomed[(yy * nw + xx) * c..(yy * nw + xx + 1) * c]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_corner_alignment() {
        let p: Vec<f64> = (0..20).map(|v| v as f64).collect();
        assert_eq!(clipped_zoom(&p, 4, 5, 1, 1.0), p);
        // 2 → 3 samples: 0, 0.5, 1 of the input
        let z = zoom_linear(&[0.0, 10.0], 1, 2, 1, 1, 3);
        assert_eq!(z, vec![0.0, 5.0, 10.0]);
        // f64 reference: a linear ramp stays linear under zoom
        let ramp: Vec<f64> = (0..7).map(|v| v as f64).collect();
        let z = zoom_linear(&ramp, 1, 7, 1, 1, 10);
        for (o, v) in z.iter().enumerate() {
            assert!((v - o as f64 * 6.0 / 9.0).abs() < 1e-12);
        }
    }

    #[test]
    fn python_rounding_of_the_zoomed_side() {
        assert_eq!(round_half_even(224.5), 224);
        assert_eq!(round_half_even(225.5), 226);
        assert_eq!(round_half_even(2.4999), 2);
    }
}
