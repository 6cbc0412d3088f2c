//! `make_c`: layout, contents equal to per-image `corrupt` with the documented seeds, IDX output,
//! independence from the thread count.

use std::path::Path;

use vars_data::corruptions::{corrupt, Corruption, ParamSet};
use vars_data::idx::IdxArray;
use vars_data::io::{read_image, write_image};
use vars_data::make_c::{MakeC, MakeCConfig, OutputFormat};
use vars_data::rng::image_seed;
use vars_data::Image;

fn pattern(w: usize, h: usize, c: usize, k: usize) -> Image {
    Image::new(
        w,
        h,
        c,
        (0..w * h * c)
            .map(|i| ((i * 31 + k * 17) % 256) as u8)
            .collect(),
    )
    .unwrap()
}

fn folder(root: &Path) {
    write_image(root.join("cat/b.png"), &pattern(20, 16, 3, 1), 95).unwrap();
    write_image(root.join("cat/a.png"), &pattern(20, 16, 3, 2), 95).unwrap();
    write_image(root.join("dog/c.png"), &pattern(16, 20, 1, 3), 95).unwrap();
    std::fs::write(root.join("dog/notes.txt"), "ignored").unwrap();
}

#[test]
fn folder_layout_and_contents() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("in"), dir.path().join("out"));
    folder(&input);
    let mut cfg = MakeCConfig::new(&input, &out);
    cfg.corruptions = vec![Corruption::GaussianNoise, Corruption::Contrast];
    cfg.severities = vec![2, 5];
    cfg.format = OutputFormat::Png;
    cfg.seed = 77;
    let job = MakeC::new(cfg).unwrap();
    assert_eq!((job.images(), job.total()), (3, 12));
    let count = std::sync::atomic::AtomicU64::new(0);
    let summary = job
        .run(&|n| {
            count.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        })
        .unwrap();
    assert_eq!(
        (summary.images, summary.written, summary.files),
        (3, 12, 12)
    );
    assert_eq!(count.into_inner(), 12);
    // sorted order: cat/a.png (0), cat/b.png (1), dog/c.png (2)
    for (i, rel) in ["cat/a.png", "cat/b.png", "dog/c.png"].iter().enumerate() {
        let src = read_image(input.join(rel)).unwrap();
        for c in [Corruption::GaussianNoise, Corruption::Contrast] {
            for s in [2u8, 5] {
                let got = read_image(out.join(c.name()).join(s.to_string()).join(rel)).unwrap();
                let want = corrupt(
                    &src,
                    c,
                    s,
                    ParamSet::Cifar10C,
                    image_seed(77, c, s, i as u64),
                )
                .unwrap();
                assert_eq!(got, want, "{c}/{s}/{rel}");
            }
        }
    }
    let index = std::fs::read_to_string(out.join("index.tsv")).unwrap();
    assert!(index.contains("1\tcat/b.png"), "{index}");
    let manifest = std::fs::read_to_string(out.join("make-c.json")).unwrap();
    assert!(
        manifest.contains("\"seed\": 77") && manifest.contains("\"gaussian_noise\""),
        "{manifest}"
    );
}

#[test]
fn jpeg_output_keeps_jpeg_names_and_the_pipeline_resizes() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("in"), dir.path().join("out"));
    write_image(input.join("n01/x.JPEG"), &pattern(60, 40, 3, 0), 95).unwrap();
    write_image(input.join("n01/y.png"), &pattern(40, 60, 3, 1), 95).unwrap();
    let mut cfg = MakeCConfig::new(&input, &out);
    cfg.corruptions = vec![Corruption::Pixelate];
    cfg.severities = vec![1];
    cfg.resize = Some(36);
    cfg.crop = Some(32);
    MakeC::new(cfg).unwrap().run(&|_| {}).unwrap();
    for name in ["x.JPEG", "y.jpg"] {
        let img = read_image(out.join("pixelate/1/n01").join(name)).unwrap();
        assert_eq!((img.width(), img.height()), (32, 32));
    }
}

#[test]
fn idx_input_gives_one_file_per_corruption_and_severity() {
    let dir = tempfile::tempdir().unwrap();
    let imgs: Vec<Image> = (0..6).map(|k| pattern(28, 28, 1, k)).collect();
    let input = dir.path().join("t10k-images-idx3-ubyte.gz");
    IdxArray::from_images(&imgs)
        .unwrap()
        .write(&input, true)
        .unwrap();
    let out = dir.path().join("c");
    let mut cfg = MakeCConfig::new(&input, &out);
    cfg.corruptions = vec![Corruption::Fog, Corruption::Saturate];
    cfg.severities = vec![1, 3];
    let s = MakeC::new(cfg).unwrap().run(&|_| {}).unwrap();
    assert_eq!((s.written, s.files), (24, 4));
    for c in [Corruption::Fog, Corruption::Saturate] {
        for sev in [1u8, 3] {
            let arr = IdxArray::read(
                out.join(c.name())
                    .join(sev.to_string())
                    .join("t10k-images-idx3-ubyte"),
            )
            .unwrap();
            assert_eq!(arr.dims, vec![6, 28, 28]);
            for (i, img) in imgs.iter().enumerate() {
                let want = corrupt(
                    img,
                    c,
                    sev,
                    ParamSet::Cifar10C,
                    image_seed(0, c, sev, i as u64),
                )
                .unwrap();
                assert_eq!(arr.image(i).unwrap(), want);
            }
        }
    }
}

#[test]
fn output_does_not_depend_on_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let imgs: Vec<Image> = (0..8).map(|k| pattern(16, 16, 3, k)).collect();
    let input = dir.path().join("imgs-idx");
    IdxArray::from_images(&imgs)
        .unwrap()
        .write(&input, false)
        .unwrap();
    let run = |threads: usize, name: &str| {
        let out = dir.path().join(name);
        let mut cfg = MakeCConfig::new(&input, &out);
        cfg.corruptions = vec![
            Corruption::GlassBlur,
            Corruption::Snow,
            Corruption::ShotNoise,
        ];
        cfg.severities = vec![5];
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| MakeC::new(cfg).unwrap().run(&|_| {}).unwrap());
        out
    };
    let (a, b) = (run(1, "one"), run(3, "three"));
    for c in ["glass_blur", "snow", "shot_noise"] {
        let p = format!("{c}/5/imgs-idx");
        assert_eq!(
            std::fs::read(a.join(&p)).unwrap(),
            std::fs::read(b.join(&p)).unwrap(),
            "{c}"
        );
    }
}

#[test]
fn bad_inputs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = MakeC::new(MakeCConfig::new(&empty, dir.path().join("o")))
        .err()
        .unwrap();
    assert!(e.to_string().contains("no .png/.jpg/.jpeg"), "{e}");
    let e = MakeC::new(MakeCConfig::new(
        dir.path().join("nope"),
        dir.path().join("o"),
    ))
    .err()
    .unwrap();
    assert!(e.to_string().contains("nope"), "{e}");
    let mut cfg = MakeCConfig::new(&empty, dir.path().join("o"));
    cfg.severities = vec![6];
    assert!(MakeC::new(cfg).is_err());
    // an unreadable image inside a folder names the file
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("x.png"), b"garbage").unwrap();
    let e = MakeC::new(MakeCConfig::new(&bad, dir.path().join("o2")))
        .unwrap()
        .run(&|_| {})
        .unwrap_err();
    assert!(e.to_string().contains("x.png"), "{e}");
}
