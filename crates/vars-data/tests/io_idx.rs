//! Image and IDX I/O round trips and errors.

use vars_data::idx::IdxArray;
use vars_data::io::{decode_image, encode_jpeg, encode_png, read_image, write_image, Format};
use vars_data::{Error, Image};

fn pattern(w: usize, h: usize, c: usize) -> Image {
    Image::new(
        w,
        h,
        c,
        (0..w * h * c).map(|i| (i * 37 % 256) as u8).collect(),
    )
    .unwrap()
}

#[test]
fn png_round_trip_is_lossless_for_grey_and_rgb() {
    let dir = tempfile::tempdir().unwrap();
    for c in [1, 3] {
        let img = pattern(13, 7, c);
        let p = dir.path().join(format!("sub/x{c}.png"));
        write_image(&p, &img, 95).unwrap();
        assert_eq!(read_image(&p).unwrap(), img);
        assert_eq!(
            decode_image(&encode_png(&img).unwrap(), "m".as_ref()).unwrap(),
            img
        );
    }
}

#[test]
fn jpeg_keeps_shape_and_channels() {
    for c in [1, 3] {
        let img = pattern(40, 24, c);
        let out = decode_image(&encode_jpeg(&img, 85).unwrap(), "m".as_ref()).unwrap();
        assert_eq!((out.width(), out.height(), out.channels()), (40, 24, c));
    }
    assert!(encode_jpeg(&pattern(4, 4, 3), 0).is_err());
    assert!(Format::from_path("a.JPEG".as_ref(), 90).unwrap() == Format::Jpeg { quality: 90 });
    assert!(matches!(
        Format::from_path("a.gif".as_ref(), 90),
        Err(Error::UnknownFormat(_))
    ));
}

#[test]
fn image_helpers() {
    let img = pattern(10, 6, 3);
    let c = img.center_crop(4).unwrap();
    assert_eq!((c.width(), c.height()), (4, 4));
    // torchvision: left = round(3.0) = 3, top = round(1.0) = 1
    assert_eq!(c.get(0, 0, 0), img.get(1, 3, 0));
    assert!(img.center_crop(7).is_err());
    let r = img.resize_shorter_side(3).unwrap();
    assert_eq!((r.width(), r.height()), (5, 3));
    assert_eq!(pattern(2, 2, 1).to_rgb().to_grey(), pattern(2, 2, 1));
}

#[test]
fn idx_round_trip_plain_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let imgs: Vec<Image> = (0..3)
        .map(|i| Image::filled(5, 4, 1, i * 10).unwrap())
        .collect();
    let arr = IdxArray::from_images(&imgs).unwrap();
    assert_eq!(arr.dims, vec![3, 4, 5]);
    for gz in [false, true] {
        let p = dir.path().join(format!("a{gz}"));
        arr.write(&p, gz).unwrap();
        let raw = std::fs::read(&p).unwrap();
        assert_eq!(raw.starts_with(&[0x1f, 0x8b]), gz);
        let back = IdxArray::read(&p).unwrap();
        assert_eq!(back, arr);
        assert_eq!(back.image(2).unwrap(), imgs[2]);
    }
    // header layout of datasets.md: magic 0x00000803, then big-endian dims
    let b = arr.to_bytes();
    assert_eq!(&b[..8], &[0, 0, 8, 3, 0, 0, 0, 3]);
    assert_eq!(b.len(), 16 + 60);
    // RGB images are (n, h, w, 3)
    let rgb = IdxArray::from_images(&[pattern(2, 3, 3)]).unwrap();
    assert_eq!(rgb.dims, vec![1, 3, 2, 3]);
    assert_eq!(rgb.image(0).unwrap(), pattern(2, 3, 3));
}

#[test]
fn bad_idx_files_are_clear_errors() {
    let p = std::path::Path::new("t");
    for (bytes, needle) in [
        (vec![1u8, 0, 8, 1, 0, 0, 0, 1, 9], "first two bytes"),
        (
            vec![0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0],
            "only unsigned bytes",
        ),
        (vec![0, 0, 8, 2, 0, 0, 0, 2], "truncated header"),
        (vec![0, 0, 8, 1, 0, 0, 0, 5, 1, 2], "need"),
    ] {
        let e = IdxArray::parse(&bytes, p).unwrap_err();
        assert!(e.to_string().contains(needle), "{e}");
    }
    let labels = IdxArray::new(vec![4], vec![1, 2, 3, 4]).unwrap();
    assert!(labels.image_shape().is_err());
    assert!(IdxArray::new(vec![2, 2], vec![0; 3]).is_err());
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("broken.gz");
    std::fs::write(&gz, [0x1f, 0x8b, 0, 1, 2]).unwrap();
    assert!(IdxArray::read(&gz)
        .unwrap_err()
        .to_string()
        .contains("gzip"));
}
