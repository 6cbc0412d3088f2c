//! The numeric helpers against the reference libraries' outputs (`tests/golden/helpers.txt`,
//! written by `make_golden.py` with SciPy 1.17.1, scikit-image 0.26.0, OpenCV 5.0.0): disk kernels,
//! `gaussian_filter`, `clipped_zoom`, `map_coordinates`, `getAffineTransform` + `warpAffine`,
//! `cv2.resize`, the spatter edge chain, `rgb2hsv`.

use std::collections::HashMap;
use std::path::Path;

use vars_data::corruptions::helpers::{color, disk, edges, filter, resample, zoom};

struct Arr {
    shape: Vec<usize>,
    data: Vec<f64>,
}

fn load() -> HashMap<String, Arr> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/helpers.txt"),
    )
    .unwrap();
    let mut out = HashMap::new();
    let mut lines = text.lines();
    while let Some(name) = lines.next() {
        let name = name.strip_prefix("# ").expect("record name").to_string();
        let shape = lines
            .next()
            .unwrap()
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap())
            .collect();
        let data = lines
            .next()
            .unwrap()
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        out.insert(name, Arr { shape, data });
    }
    out
}

fn max_abs(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn disk_kernels() {
    let h = load();
    for (r, a) in [
        (3.0, 0.1),
        (4.0, 0.5),
        (6.0, 0.5),
        (8.0, 0.5),
        (10.0, 0.5),
        (0.3, 0.4),
        (0.4, 0.5),
        (0.5, 0.6),
        (1.0, 0.2),
        (1.5, 0.1),
    ] {
        let want = &h[&format!("disk r={r} a={a}")];
        let (k, side) = disk::disk(r, a);
        assert_eq!(want.shape, vec![side, side]);
        let k: Vec<f64> = k.iter().map(|&v| v as f64).collect();
        let err = max_abs(&k, &want.data);
        assert!(err < 1e-8, "disk({r}, {a}): max |Δ| {err:e}");
    }
}

#[test]
fn gaussian_filter_modes() {
    let h = load();
    let input = &h["gauss input"];
    let (rows, cols) = (input.shape[0], input.shape[1]);
    for s in [0.4, 1.0, 2.5] {
        let near =
            filter::gaussian_filter(&input.data, rows, cols, s, 4.0, filter::Border::Nearest);
        let refl =
            filter::gaussian_filter(&input.data, rows, cols, s, 3.0, filter::Border::Reflect);
        assert!(
            max_abs(&near, &h[&format!("gauss nearest t4 s={s}")].data) < 1e-15,
            "nearest σ={s}"
        );
        assert!(
            max_abs(&refl, &h[&format!("gauss reflect t3 s={s}")].data) < 1e-15,
            "reflect σ={s}"
        );
    }
}

#[test]
fn clipped_zoom_matches_scipy() {
    let h = load();
    let input = &h["zoom input"];
    for z in [1.3, 1.11, 2.5] {
        let want = &h[&format!("clipped_zoom z={z}")];
        let got = zoom::clipped_zoom(&input.data, 7, 7, 1, z);
        // the reference returns the un-trimmed zoom (8×8 here); its top-left 7×7 is the trim
        let n = want.shape[0];
        let top: Vec<f64> = (0..7)
            .flat_map(|y| (0..7).map(move |x| (y, x)))
            .map(|(y, x)| want.data[y * n + x])
            .collect();
        let got32: Vec<f64> = got.iter().map(|&v| v as f32 as f64).collect();
        assert!(
            max_abs(&got32, &top) < 1e-7,
            "z = {z}: {}",
            max_abs(&got32, &top)
        );
    }
}

#[test]
fn map_coordinates_reflect() {
    let h = load();
    let m = &h["map input"];
    let (ys, xs, want) = (&h["map ys"].data, &h["map xs"].data, &h["map out"].data);
    let got: Vec<f64> = ys
        .iter()
        .zip(xs)
        .map(|(&y, &x)| resample::map_coordinates_reflect(&m.data, m.shape[0], m.shape[1], y, x))
        .collect();
    assert!(max_abs(&got, want) < 1e-14, "{}", max_abs(&got, want));
}

#[test]
fn affine_warp_matches_opencv() {
    let h = load();
    let pts = |name: &str| -> [[f64; 2]; 3] {
        let d = &h[name].data;
        [[d[0], d[1]], [d[2], d[3]], [d[4], d[5]]]
    };
    let m = resample::get_affine_transform(pts("affine src"), pts("affine dst")).unwrap();
    // OpenCV 5 returns M at f32 precision; this solves in f64
    assert!(max_abs(&m, &h["affine M"].data) < 1e-6);
    let input = &h["affine input"];
    let (hh, ww, cc) = (input.shape[0], input.shape[1], input.shape[2]);
    let src: Vec<f32> = input.data.iter().map(|&v| v as f32).collect();
    let got: Vec<f64> = resample::warp_affine_f32(&src, hh, ww, cc, m)
        .iter()
        .map(|&v| v as f64)
        .collect();
    let err = max_abs(&got, &h["affine out"].data);
    assert!(err < 1e-6, "warpAffine max |Δ| {err:e}");
}

#[test]
fn opencv_resize_by_a_fifth() {
    let h = load();
    let input = &h["resize input"];
    let src: Vec<u8> = input.data.iter().map(|&v| v as u8).collect();
    let (out, w, hh) =
        resample::cv_resize_linear_u8(&src, input.shape[1], input.shape[0], 3, 0.2, 0.2);
    let want = &h["resize 0.2"];
    assert_eq!(vec![hh, w, 3], want.shape);
    assert_eq!(out.iter().map(|&v| v as f64).collect::<Vec<_>>(), want.data);
}

#[test]
fn spatter_edge_chain_matches_opencv() {
    let h = load();
    let l8 = vars_data::io::read_image(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/helpers/spatter_l8.png"),
    )
    .unwrap()
    .to_grey();
    let (hh, ww) = (l8.height(), l8.width());
    let u8s = |v: &[u8]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    let canny = edges::canny(l8.data(), hh, ww, 50.0, 150.0);
    assert_eq!(u8s(&canny), h["canny"].data, "Canny");
    let inv: Vec<u8> = canny.iter().map(|&e| 255 - e).collect();
    let dist = edges::distance_transform_l2_5(&inv, hh, ww);
    let d64: Vec<f64> = dist.iter().map(|&v| v as f64).collect();
    assert!(
        max_abs(&d64, &h["distance"].data) < 1e-5,
        "distanceTransform"
    );
    let trunc: Vec<f32> = dist.iter().map(|&d| d.min(20.0)).collect();
    let blurred: Vec<u8> = filter::cv_blur3_f32(&trunc, hh, ww)
        .into_iter()
        .map(|v| v as u8)
        .collect();
    assert_eq!(
        u8s(&blurred),
        h["dist blurred u8"].data,
        "blur of the distance"
    );
    let eq = edges::equalize_hist(&blurred);
    assert_eq!(u8s(&eq), h["equalized"].data, "equalizeHist");
    let emb = edges::filter2d_u8_3x3(&eq, hh, ww, [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]);
    assert_eq!(u8s(&emb), h["embossed"].data, "emboss");
    assert_eq!(
        u8s(&filter::cv_blur3_u8(&emb, hh, ww)),
        h["emboss blurred"].data,
        "blur of the emboss"
    );
    // and the whole chain in one call
    assert_eq!(
        u8s(&vars_data::corruptions::weather::spatter_water_texture(
            l8.data(),
            hh,
            ww
        )),
        h["emboss blurred"].data
    );
}

#[test]
fn rgb2hsv_matches_scikit_image() {
    let h = load();
    let input = &h["hsv input"].data;
    let want = &h["rgb2hsv"].data;
    for (p, w) in input.chunks(3).zip(want.chunks(3)) {
        let (hh, s, v) = color::rgb2hsv(p[0], p[1], p[2]);
        assert!(
            (hh - w[0]).abs() < 1e-15 && (s - w[1]).abs() < 1e-15 && (v - w[2]).abs() < 1e-15,
            "{p:?}"
        );
    }
}
