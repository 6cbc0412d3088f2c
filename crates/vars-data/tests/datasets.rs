//! The data-set readers on small generated files (IDX, Fashion-MNIST layouts, CIFAR-10 binary,
//! image folders), on corrupt and truncated ones, and the embedded Fashion-MNIST subset.

use std::path::{Path, PathBuf};

use vars_data::datasets::{class_counts, Dataset, ImageFolder, InMemory, Split};
use vars_data::idx::IdxArray;
use vars_data::pipeline::Normalize;
use vars_data::{io, Error, Image};

/// `n` grey `h × w` images whose pixel (y, x) of image i is `(7i + 3y + x) mod 256`.
fn idx_images(n: usize, h: usize, w: usize) -> IdxArray {
    let data = (0..n * h * w)
        .map(|k| {
            let (i, r) = (k / (h * w), k % (h * w));
            ((7 * i + 3 * (r / w) + r % w) % 256) as u8
        })
        .collect();
    IdxArray::new(vec![n, h, w], data).unwrap()
}

fn idx_labels(labels: &[u8]) -> IdxArray {
    IdxArray::new(vec![labels.len()], labels.to_vec()).unwrap()
}

fn msg(e: Error) -> String {
    e.to_string()
}

#[test]
fn idx_pair_plain_and_gz() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = idx_images(5, 4, 3);
    let labs = idx_labels(&[0, 1, 2, 1, 0]);
    for gz in [false, true] {
        let ip = dir.path().join(format!("i{gz}"));
        let lp = dir.path().join(format!("l{gz}"));
        imgs.write(&ip, gz).unwrap();
        labs.write(&lp, gz).unwrap();
        let d = InMemory::idx(&ip, &lp).unwrap();
        assert_eq!((d.len(), d.num_classes()), (5, 3));
        assert_eq!(d.sample_shape(), Some((1, 4, 3)));
        assert_eq!(d.class_names(), vec!["0", "1", "2"]);
        let (img, label) = d.get(2).unwrap();
        assert_eq!(label, 2);
        assert_eq!((img.width(), img.height(), img.channels()), (3, 4, 1));
        assert_eq!(img.get(1, 2, 0), (14 + 3 + 2) as u8);
        assert!(d.get(5).is_err());
        assert_eq!(class_counts(&d).unwrap(), vec![2, 2, 1]);
    }
    // RGB IDX (n, h, w, 3)
    let rgb = IdxArray::new(vec![2, 2, 2, 3], (0..24).collect()).unwrap();
    let ip = dir.path().join("rgb");
    let lp = dir.path().join("rgbl");
    rgb.write(&ip, false).unwrap();
    idx_labels(&[4, 0]).write(&lp, false).unwrap();
    let d = InMemory::idx(&ip, &lp).unwrap();
    assert_eq!((d.sample_shape(), d.num_classes()), (Some((3, 2, 2)), 5));
    assert_eq!(
        d.get(1).unwrap().0.data(),
        &(12..24).collect::<Vec<u8>>()[..]
    );
}

#[test]
fn idx_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ip = dir.path().join("imgs.idx");
    let lp = dir.path().join("labs.idx");
    idx_images(5, 4, 3).write(&ip, false).unwrap();
    idx_labels(&[0, 1, 2, 1, 0]).write(&lp, false).unwrap();

    // truncated images
    let bytes = std::fs::read(&ip).unwrap();
    let tp = dir.path().join("trunc.idx");
    std::fs::write(&tp, &bytes[..bytes.len() - 5]).unwrap();
    let e = msg(InMemory::idx(&tp, &lp).unwrap_err());
    assert!(e.contains("trunc.idx") && e.contains("data bytes"), "{e}");
    // truncated header
    std::fs::write(&tp, &bytes[..6]).unwrap();
    assert!(msg(InMemory::idx(&tp, &lp).unwrap_err()).contains("truncated header"));
    // truncated gzip
    let gp = dir.path().join("imgs.gz");
    idx_images(5, 4, 3).write(&gp, true).unwrap();
    let gz = std::fs::read(&gp).unwrap();
    std::fs::write(&gp, &gz[..gz.len() / 2]).unwrap();
    let e = msg(InMemory::idx(&gp, &lp).unwrap_err());
    assert!(e.contains("imgs.gz") && e.contains("gzip"), "{e}");
    // not IDX at all, empty file
    std::fs::write(&tp, b"hello world, not idx").unwrap();
    assert!(msg(InMemory::idx(&tp, &lp).unwrap_err()).contains("not an IDX file"));
    std::fs::write(&tp, b"").unwrap();
    assert!(InMemory::idx(&tp, &lp).is_err());
    // label count mismatch names the labels file
    let lp3 = dir.path().join("three.idx");
    idx_labels(&[0, 1, 2]).write(&lp3, false).unwrap();
    let e = msg(InMemory::idx(&ip, &lp3).unwrap_err());
    assert!(
        e.contains("three.idx") && e.contains("3 labels for 5 images"),
        "{e}"
    );
    // swapped files
    let e = msg(InMemory::idx(&lp, &ip).unwrap_err());
    assert!(e.contains("labs.idx") && e.contains("not images"), "{e}");
    let e = msg(InMemory::idx(&ip, &ip).unwrap_err());
    assert!(e.contains("not labels"), "{e}");
    // missing file
    let e = msg(InMemory::idx(&dir.path().join("nope"), &lp).unwrap_err());
    assert!(e.contains("nope"), "{e}");
}

fn write_fashion(dir: &Path, prefix: &str, n: usize, gz: bool, labels: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    let sfx = if gz { ".gz" } else { "" };
    idx_images(n, 28, 28)
        .write(dir.join(format!("{prefix}-images-idx3-ubyte{sfx}")), gz)
        .unwrap();
    idx_labels(labels)
        .write(dir.join(format!("{prefix}-labels-idx1-ubyte{sfx}")), gz)
        .unwrap();
}

#[test]
fn fashion_mnist_layouts_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    // the dpkg-deb -x layout, gzip (as the package ships)
    let root = tmp.path().join("x");
    let deb = root.join("usr/share/datasets/fashion-mnist");
    write_fashion(&deb, "train", 4, true, &[9, 0, 3, 3]);
    write_fashion(&deb, "t10k", 2, true, &[1, 2]);
    let train = InMemory::fashion_mnist(Some(&root), Split::Train).unwrap();
    assert_eq!((train.len(), train.num_classes()), (4, 10));
    assert_eq!(train.class_names()[9], "Ankle boot");
    assert_eq!(train.labels(), &[9, 0, 3, 3]);
    let test = InMemory::fashion_mnist(Some(&deb), Split::Test).unwrap();
    assert_eq!(test.len(), 2);
    assert_eq!(test.sample_shape(), Some((1, 28, 28)));

    // plain files, `test-` prefix
    let plain = tmp.path().join("plain");
    write_fashion(&plain, "test", 3, false, &[0, 0, 1]);
    assert_eq!(
        InMemory::fashion_mnist(Some(&plain), Split::Test)
            .unwrap()
            .len(),
        3
    );

    // missing set: says how to install it
    let e =
        msg(InMemory::fashion_mnist(Some(&tmp.path().join("empty")), Split::Train).unwrap_err());
    assert!(
        e.contains("apt-get install dataset-fashion-mnist") && e.contains("dpkg-deb -x"),
        "{e}"
    );
    assert!(
        msg(InMemory::fashion_mnist(Some(&plain), Split::Train).unwrap_err()).contains("not found")
    );

    // images without labels
    let half = tmp.path().join("half");
    write_fashion(&half, "train", 2, false, &[0, 1]);
    std::fs::remove_file(half.join("train-labels-idx1-ubyte")).unwrap();
    let e = msg(InMemory::fashion_mnist(Some(&half), Split::Train).unwrap_err());
    assert!(e.contains("labels") && e.contains("missing"), "{e}");

    // wrong size, label out of range
    let bad = tmp.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    idx_images(2, 27, 28)
        .write(bad.join("train-images-idx3-ubyte"), false)
        .unwrap();
    idx_labels(&[0, 1])
        .write(bad.join("train-labels-idx1-ubyte"), false)
        .unwrap();
    assert!(
        msg(InMemory::fashion_mnist(Some(&bad), Split::Train).unwrap_err())
            .contains("expected 28x28")
    );
    write_fashion(&bad, "train", 2, false, &[0, 10]);
    let e = msg(InMemory::fashion_mnist(Some(&bad), Split::Train).unwrap_err());
    assert!(e.contains("label 10") && e.contains("train-labels"), "{e}");

    // the Debian path: either installed (the full set) or a clear error
    match InMemory::fashion_mnist(None, Split::Test) {
        Ok(d) => {
            assert_eq!(d.len(), 10_000);
            assert_eq!(class_counts(&d).unwrap(), vec![1000; 10]);
        }
        Err(e) => assert!(msg(e).contains("/usr/share/datasets/fashion-mnist")),
    }
}

#[test]
fn embedded_fashion_mnist_is_balanced() {
    let train = InMemory::fashion_mnist_embedded(Split::Train).unwrap();
    let test = InMemory::fashion_mnist_embedded(Split::Test).unwrap();
    assert_eq!((train.len(), test.len()), (10_000, 2_000));
    assert_eq!(class_counts(&train).unwrap(), vec![1000; 10]);
    assert_eq!(class_counts(&test).unwrap(), vec![200; 10]);
    assert_eq!(train.sample_shape(), Some((1, 28, 28)));
    assert_eq!(train.class_names()[0], "T-shirt/top");
    // classes are interleaved, as in the official files
    assert!(train.labels()[..20].windows(2).any(|w| w[0] != w[1]));
    // pixel statistics close to the full training set's (mean 0.2860, std 0.3530)
    let n = Normalize::estimate(&train, 2000).unwrap();
    assert!((n.mean[0] - 0.2860).abs() < 0.01, "{n:?}");
    assert!((n.std[0] - 0.3530).abs() < 0.01, "{n:?}");
}

fn cifar_record(label: u8, seed: u8) -> Vec<u8> {
    let mut r = vec![label];
    r.extend((0..3072).map(|k| (k as u32 * 7 + seed as u32) as u8));
    r
}

#[test]
fn cifar10_binary_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).unwrap();
    for b in 1..=5u8 {
        let bytes: Vec<u8> = (0..3u8)
            .flat_map(|r| cifar_record(r + b, b * 10 + r))
            .collect();
        std::fs::write(dir.join(format!("data_batch_{b}.bin")), bytes).unwrap();
    }
    let test: Vec<u8> = (0..2u8).flat_map(|r| cifar_record(9 - r, r)).collect();
    std::fs::write(dir.join("test_batch.bin"), test).unwrap();

    // parent folder or the batches folder itself
    let train = InMemory::cifar10(tmp.path(), Split::Train).unwrap();
    assert_eq!((train.len(), train.num_classes()), (15, 10));
    assert_eq!(train.sample_shape(), Some((3, 32, 32)));
    assert_eq!(train.class_names()[0], "airplane");
    assert_eq!(&train.labels()[..4], &[1, 2, 3, 2]);
    // CHW planes → HWC: pixel (y, x) channel c is plane byte c·1024 + 32y + x
    let (img, _) = train.get(4).unwrap(); // batch 2, record 1: seed 21
    for (y, x, c) in [(0, 0, 0), (5, 7, 1), (31, 31, 2)] {
        let k = c * 1024 + 32 * y + x;
        assert_eq!(img.get(y, x, c), (k as u32 * 7 + 21) as u8);
    }
    std::fs::write(
        dir.join("batches.meta.txt"),
        "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n",
    )
    .unwrap();
    let test = InMemory::cifar10(&dir, Split::Test).unwrap();
    assert_eq!(test.labels(), &[9, 8]);
    assert_eq!(test.class_names()[9], "j");

    // truncated file
    let p3 = dir.join("data_batch_3.bin");
    let full = std::fs::read(&p3).unwrap();
    std::fs::write(&p3, &full[..3073 * 2 + 100]).unwrap();
    let e = msg(InMemory::cifar10(&dir, Split::Train).unwrap_err());
    assert!(
        e.contains("data_batch_3.bin") && e.contains("whole number"),
        "{e}"
    );
    std::fs::write(&p3, b"").unwrap();
    assert!(msg(InMemory::cifar10(&dir, Split::Train).unwrap_err()).contains("data_batch_3"));
    // bad label
    let mut bad = full.clone();
    bad[3073] = 12;
    std::fs::write(&p3, &bad).unwrap();
    let e = msg(InMemory::cifar10(&dir, Split::Train).unwrap_err());
    assert!(
        e.contains("data_batch_3.bin") && e.contains("label 12"),
        "{e}"
    );
    // missing file
    std::fs::remove_file(&p3).unwrap();
    let e = msg(InMemory::cifar10(&dir, Split::Train).unwrap_err());
    assert!(
        e.contains("data_batch_3.bin") && e.contains("missing"),
        "{e}"
    );
    // no data set at all
    let e = msg(InMemory::cifar10(&tmp.path().join("none"), Split::Test).unwrap_err());
    assert!(e.contains("cifar-10-binary.tar.gz"), "{e}");
}

fn save(path: PathBuf, img: &Image) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    io::write_image(&path, img, 95).unwrap();
}

fn rgb(w: usize, h: usize, v: u8) -> Image {
    Image::new(
        w,
        h,
        3,
        (0..w * h * 3).map(|k| v.wrapping_add(k as u8)).collect(),
    )
    .unwrap()
}

#[test]
fn image_folder_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    save(root.join("dog/b.png"), &rgb(5, 4, 10));
    save(root.join("dog/a.JPG"), &rgb(8, 8, 20));
    save(root.join("cat/x.png"), &Image::filled(3, 3, 1, 77).unwrap());
    save(root.join("cat/sub/y.jpeg"), &rgb(6, 6, 30));
    save(root.join("bird/z.png"), &rgb(2, 7, 40));
    std::fs::write(root.join("dog/readme.txt"), "not an image").unwrap();
    std::fs::write(root.join("stray.png"), "ignored: not in a class folder").unwrap();

    let d = ImageFolder::open(root).unwrap();
    assert_eq!(d.class_names(), vec!["bird", "cat", "dog"]);
    assert_eq!(d.len(), 5);
    assert_eq!(d.sample_shape(), None);
    let names: Vec<String> = d
        .samples()
        .iter()
        .map(|(p, l)| format!("{}:{l}", p.strip_prefix(root).unwrap().display()))
        .collect();
    assert_eq!(
        names,
        vec![
            "bird/z.png:0",
            "cat/x.png:1",
            "cat/sub/y.jpeg:1",
            "dog/a.JPG:2",
            "dog/b.png:2"
        ]
    );
    let (img, label) = d.get(4).unwrap();
    assert_eq!(label, 2);
    assert_eq!(img, rgb(5, 4, 10));
    // grey files come back as RGB (torchvision's convert("RGB"))
    let (grey, _) = d.get(1).unwrap();
    assert_eq!(grey, Image::filled(3, 3, 3, 77).unwrap());
    assert_eq!(d.label(3).unwrap(), 2);
    assert!(d.get(5).is_err());

    // a corrupt file fails on get, naming it
    std::fs::write(root.join("bird/z.png"), b"\x89PNG broken").unwrap();
    let e = msg(d.get(0).unwrap_err());
    assert!(e.contains("z.png"), "{e}");
    // truncated JPEG
    let jpg = std::fs::read(root.join("dog/a.JPG")).unwrap();
    std::fs::write(root.join("dog/a.JPG"), &jpg[..jpg.len() / 3]).unwrap();
    assert!(msg(d.get(3).unwrap_err()).contains("a.JPG"));

    // an empty class folder, no class folders, not a folder, missing
    std::fs::create_dir_all(root.join("empty")).unwrap();
    let e = msg(ImageFolder::open(root).unwrap_err());
    assert!(e.contains("empty") && e.contains("no .png"), "{e}");
    let flat = tmp.path().join("empty");
    assert!(msg(ImageFolder::open(&flat).unwrap_err()).contains("no class folders"));
    assert!(msg(ImageFolder::open(&root.join("stray.png")).unwrap_err()).contains("not a folder"));
    assert!(ImageFolder::open(&root.join("missing")).is_err());
}

#[test]
fn subsets_and_splits() {
    let train = InMemory::fashion_mnist_embedded(Split::Test).unwrap();
    let s = train.subset(&[5, 0, 5]);
    assert_eq!(s.len(), 3);
    assert_eq!(s.get(0).unwrap(), train.get(5).unwrap());
    assert_eq!(s.get(2).unwrap(), train.get(5).unwrap());
    assert_eq!(s.num_classes(), 10);
    assert!(train.try_subset(&[2000]).is_err());

    let (rest, held) = train.stratified_split(0.1, 3).unwrap();
    assert_eq!((rest.len(), held.len()), (1800, 200));
    assert_eq!(class_counts(&held).unwrap(), vec![20; 10]);
    let (_, held2) = train.stratified_split(0.1, 3).unwrap();
    assert_eq!(held.labels(), held2.labels());
    assert_eq!(held.pixels(), held2.pixels());
    let (_, held3) = train.stratified_split(0.1, 4).unwrap();
    assert_ne!(held.pixels(), held3.pixels());
    assert!(train.stratified_split(1.5, 0).is_err());

    // from_raw validation
    assert!(InMemory::from_raw(vec![0; 8], (2, 2, 1), vec![0, 1], vec!["a".into()]).is_err());
    assert!(InMemory::from_raw(vec![0; 7], (2, 2, 1), vec![0, 0], vec!["a".into()]).is_err());
    assert!(InMemory::from_raw(vec![0; 8], (2, 2, 2), vec![0], vec!["a".into()]).is_err());
    assert!(InMemory::from_raw(vec![0; 8], (2, 2, 1), vec![0, 0], vec!["a".into()]).is_ok());
}
