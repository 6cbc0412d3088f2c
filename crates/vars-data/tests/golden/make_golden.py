#!/usr/bin/env python3
"""Regenerate the golden images and helper references of `vars-data`.

The Rust tests never run this script: they read the PNG / text files it writes next to itself.
Run it only to regenerate them (the outputs are committed):

    python3 -m venv /tmp/gv
    /tmp/gv/bin/pip install imagecorruptions==1.1.2          # pulls the versions listed below
    /tmp/gv/bin/pip download --no-deps -d /tmp/skl scikit-learn==1.9.1
    unzip -j /tmp/skl/scikit_learn-*.whl 'sklearn/datasets/images/*.jpg' -d /tmp/skl/imgs
    /tmp/gv/bin/python crates/vars-data/tests/golden/make_golden.py /tmp/skl/imgs

Versions used for the committed files (checked at start-up; a mismatch is an error unless
`--any-version` is given):
    imagecorruptions 1.1.2, numpy 2.4.6, scipy 1.17.1, scikit-image 0.26.0,
    opencv-python 5.0.0.93 (cv2 5.0.0), Pillow 13.0.0 (libjpeg-turbo 6.2 API), Python 3.11.7.

Inputs: `china.jpg` (SHA-256 8378025a...fad29) and `flower.jpg` (SHA-256 a77f6ec4...5638)
from the scikit-learn 1.9.1 wheel, CC BY 2.0 (see README.md in this folder).

What it writes (all PNGs are 8-bit RGB):
- base/{photo}_{224,32}.png: the inputs. 224: PIL bilinear resize of the shorter side to 256
  (torchvision's `Resize(256)`), centre crop 224 (ImageNet-C's pipeline). 32: PIL bilinear
  (antialiased) resize of the shorter side to 32, centre crop 32.
- imagenet/{photo}_{size}_{corruption}_s{k}.png: `imagecorruptions.corrupt(base, k, name)`, i.e.
  the ImageNet-C parameters (the package applies them at any size), for the deterministic
  corruptions contrast, brightness, saturate, pixelate, defocus_blur, zoom_blur and
  jpeg_compression, plus gaussian_blur (the package's own call fails with scikit-image 0.26 because
  `multichannel` was removed; the same definition is evaluated here with `channel_axis=-1`).
- cifar/{photo}_32_{corruption}_s{k}.png: the CIFAR-10-C parameter set (make_cifar_c.py), written
  out below with the same library calls as the reference.
- motion/{photo}_{size}_s{k}_a{angle}.png: `imagecorruptions.corruptions._motion_blur` at a fixed
  angle (the only random draw of motion_blur), for the CIFAR (32 px) and ImageNet (224 px) radii.
- frost/{photo}_{size}_s{k}_f{idx}_{row}_{col}.png: the reference frost blend with a fixed texture
  index and crop (make_imagenet_c.py / make_cifar_c.py semantics: cv2.imread, x0.2 INTER_LINEAR
  resize at 32 px, crop, BGR->RGB, clip(a*x + f*frost, 0, 255)).
- helpers/*.png and helpers.txt: the numeric helpers (disk kernels, gaussian_filter, zoom,
  map_coordinates, getAffineTransform + warpAffine, cv2.resize, the spatter edge chain:
  Canny, distanceTransform, blur, equalizeHist, filter2D).
"""

import hashlib
import io
import os
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore")

import cv2  # noqa: E402
import imagecorruptions  # noqa: E402
import PIL  # noqa: E402
import scipy  # noqa: E402
import skimage as sk  # noqa: E402
from imagecorruptions import corrupt  # noqa: E402
from imagecorruptions.corruptions import _motion_blur, clipped_zoom, disk  # noqa: E402
from PIL import Image  # noqa: E402
from scipy.ndimage import gaussian_filter, map_coordinates, zoom  # noqa: E402
from skimage.filters import gaussian  # noqa: E402

EXPECTED = {
    "numpy": "2.4.6",
    "scipy": "1.17.1",
    "skimage": "0.26.0",
    "cv2": "5.0.0",
    "PIL": "13.0.0",
}
FILE_SHA = {
    "china.jpg": "8378025ad2519d649d02e32bd98990db4ab572357d9f09841c2fbfbb4fefad29",
    "flower.jpg": "a77f6ec41e353afdf8bdff2ea981b2955535d8d83294f8cfa49cf4e423dd5638",
}
HERE = os.path.dirname(os.path.abspath(__file__))
FROST_DIR = os.path.join(os.path.dirname(imagecorruptions.__file__), "frost")

DETERMINISTIC = [
    "contrast",
    "brightness",
    "saturate",
    "pixelate",
    "defocus_blur",
    "zoom_blur",
    "jpeg_compression",
    "gaussian_blur",
]


def check_versions():
    got = {
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "skimage": sk.__version__,
        "cv2": cv2.__version__,
        "PIL": PIL.__version__,
    }
    bad = {k: (v, EXPECTED[k]) for k, v in got.items() if v != EXPECTED[k]}
    if bad and "--any-version" not in sys.argv:
        sys.exit(f"version mismatch (got, expected): {bad}; pass --any-version to continue")


def save(rel, arr):
    path = os.path.join(HERE, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.asarray(arr, dtype=np.uint8)).save(path, optimize=True)


def make_bases(img_dir):
    bases = {}
    for photo in ("china", "flower"):
        path = os.path.join(img_dir, photo + ".jpg")
        sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
        if sha != FILE_SHA[photo + ".jpg"]:
            sys.exit(f"{path}: unexpected SHA-256 {sha}")
        im = Image.open(path).convert("RGB")
        w, h = im.size
        for side, crop in ((256, 224), (32, 32)):
            # torchvision Resize(int): shorter side -> side, longer side -> int(side * long / short)
            if w <= h:
                nw, nh = side, int(side * h / w)
            else:
                nw, nh = int(side * w / h), side
            r = im.resize((nw, nh), Image.BILINEAR)
            left, top = int(round((nw - crop) / 2.0)), int(round((nh - crop) / 2.0))
            c = np.array(r.crop((left, top, left + crop, top + crop)))
            save(f"base/{photo}_{crop}.png", c)
            bases[(photo, crop)] = c
    return bases


def gaussian_blur_ref(x, sigma):
    y = gaussian(np.array(x) / 255.0, sigma=sigma, channel_axis=-1)
    return np.clip(y, 0, 1) * 255


# 224 px goldens are ~55 KB each: keep the repo lean with severities 1 and 5 of china and 3 of
# flower at 224 px (every severity of both photos at 32 px).
SEVERITIES_224 = {"china": (1, 5), "flower": (3,)}


def imagenet_goldens(bases):
    sig = [1, 2, 3, 4, 6]
    for (photo, size), x in bases.items():
        for name in DETERMINISTIC:
            for s in SEVERITIES_224[photo] if size == 224 else range(1, 6):
                if name == "gaussian_blur":
                    y = np.uint8(gaussian_blur_ref(x, sig[s - 1]))
                else:
                    y = corrupt(x, severity=s, corruption_name=name)
                save(f"imagenet/{photo}_{size}_{name}_s{s}.png", y)


# ---- CIFAR-10-C (make_cifar_c.py), same library calls -------------------------------------------


def c_contrast(x, s):
    c = [0.75, 0.5, 0.4, 0.3, 0.15][s - 1]
    x = np.array(x) / 255.0
    means = np.mean(x, axis=(0, 1), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1) * 255


def c_brightness(x, s):
    c = [0.05, 0.1, 0.15, 0.2, 0.3][s - 1]
    x = np.array(x) / 255.0
    x = sk.color.rgb2hsv(x)
    x[:, :, 2] = np.clip(x[:, :, 2] + c, 0, 1)
    x = sk.color.hsv2rgb(x)
    return np.clip(x, 0, 1) * 255


def c_saturate(x, s):
    c = [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)][s - 1]
    x = np.array(x) / 255.0
    x = sk.color.rgb2hsv(x)
    x[:, :, 1] = np.clip(x[:, :, 1] * c[0] + c[1], 0, 1)
    x = sk.color.hsv2rgb(x)
    return np.clip(x, 0, 1) * 255


def c_pixelate(x, s):
    c = [0.95, 0.9, 0.85, 0.75, 0.65][s - 1]
    im = Image.fromarray(x)
    im = im.resize((int(32 * c), int(32 * c)), Image.BOX)
    im = im.resize((32, 32), Image.BOX)
    return np.array(im)


def c_defocus(x, s):
    c = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)][s - 1]
    x = np.array(x) / 255.0
    kernel = disk(radius=c[0], alias_blur=c[1])
    ch = [cv2.filter2D(x[:, :, d], -1, kernel) for d in range(3)]
    return np.clip(np.array(ch).transpose((1, 2, 0)), 0, 1) * 255


def c_zoom(x, s):
    # as make_cifar_c.py: np.arange keeps its float quirks (quirk 2: lengths 7, 12, 16, 21, 26)
    zs = [np.arange(1, 1.06, 0.01), np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01),
          np.arange(1, 1.21, 0.01), np.arange(1, 1.26, 0.01)][s - 1]
    x = (np.array(x) / 255.0).astype(np.float32)
    out = np.zeros_like(x)
    for z in zs:
        out += clipped_zoom(x, z)[:32, :32, :]
    x = (x + out) / (len(zs) + 1)
    return np.clip(x, 0, 1) * 255


def c_jpeg(x, s):
    q = [80, 65, 58, 50, 40][s - 1]
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, "JPEG", quality=q)
    return np.array(Image.open(buf))


def c_gaussian_blur(x, s):
    return gaussian_blur_ref(x, [0.4, 0.6, 0.7, 0.8, 1][s - 1])


CIFAR = {
    "contrast": c_contrast,
    "brightness": c_brightness,
    "saturate": c_saturate,
    "pixelate": c_pixelate,
    "defocus_blur": c_defocus,
    "zoom_blur": c_zoom,
    "jpeg_compression": c_jpeg,
    "gaussian_blur": c_gaussian_blur,
}


def cifar_goldens(bases):
    for n, (stop, step) in zip((7, 12, 16, 21, 26), ((1.06, 0.01), (1.11, 0.01), (1.16, 0.01), (1.21, 0.01), (1.26, 0.01))):
        assert len(np.arange(1, stop, step)) == n
    for n, (stop, step) in zip((12, 16, 11, 13, 11), ((1.11, 0.01), (1.16, 0.01), (1.21, 0.02), (1.26, 0.02), (1.31, 0.03))):
        assert len(np.arange(1, stop, step)) == n
    for photo in ("china", "flower"):
        x = bases[(photo, 32)]
        for name, f in CIFAR.items():
            for s in range(1, 6):
                save(f"cifar/{photo}_32_{name}_s{s}.png", np.uint8(f(x, s)))
    # hendrycks pixelate (BOX up) == imagecorruptions pixelate (NEAREST up): check it once
    x = bases[("china", 224)]
    for c in [0.6, 0.5, 0.4, 0.3, 0.25]:
        im = Image.fromarray(x).resize((int(224 * c), int(224 * c)), Image.BOX)
        assert np.array_equal(np.array(im.resize((224, 224), Image.BOX)), np.array(im.resize((224, 224), Image.NEAREST)))


def motion_goldens(bases):
    cif = [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)]
    inet = [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)]
    angles = [-45.0, -20.0, 7.5, 30.0, 44.0]
    for photo in ("china", "flower"):
        for s in range(1, 6):
            x = bases[(photo, 32)]
            y = np.uint8(np.clip(_motion_blur(x, cif[s - 1][0], cif[s - 1][1], angles[s - 1]), 0, 255))
            save(f"motion/{photo}_32_s{s}_a{angles[s - 1]:g}.png", y)
        for s in (5,) if photo == "china" else ():
            x = bases[(photo, 224)]
            y = np.uint8(np.clip(_motion_blur(x, inet[s - 1][0], inet[s - 1][1], angles[s - 1]), 0, 255))
            save(f"motion/{photo}_224_s{s}_a{angles[s - 1]:g}.png", y)


FROST_FILES = ["frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg"]


def frost_ref(x, a, f, idx, row, col, small):
    fr = cv2.imread(os.path.join(FROST_DIR, FROST_FILES[idx]))
    if small:
        fr = cv2.resize(fr, (0, 0), fx=0.2, fy=0.2)
    s = x.shape[0]
    fr = fr[row : row + s, col : col + s][..., [2, 1, 0]]
    return np.uint8(np.clip(a * np.array(x) + f * fr, 0, 255))


def frost_goldens(bases):
    cif = [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)]
    inet = [(1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)]
    # (idx, row, col) fixed per severity; 32 px crops live in the x0.2 textures
    small = [(0, 50, 100), (1, 10, 70), (2, 0, 0), (3, 30, 60), (4, 60, 90)]
    large = [(4, 100, 200)]
    for photo in ("china", "flower"):
        x = bases[(photo, 32)]
        for s in range(1, 6):
            i, r, c = small[s - 1]
            save(f"frost/{photo}_32_s{s}_f{i}_{r}_{c}.png", frost_ref(x, *cif[s - 1], i, r, c, True))
    x = bases[("china", 224)]
    for s, (i, r, c) in zip((5,), large):
        save(f"frost/china_224_s{s}_f{i}_{r}_{c}.png", frost_ref(x, *inet[s - 1], i, r, c, False))


# ---- helpers.txt -------------------------------------------------------------------------------


class Out:
    def __init__(self):
        self.lines = []

    def arr(self, name, a, fmt="%.17g"):
        a = np.asarray(a)
        self.lines.append(f"# {name}")
        self.lines.append("shape " + " ".join(str(d) for d in a.shape))
        self.lines.append(" ".join(fmt % v for v in a.ravel()))

    def write(self, rel):
        with open(os.path.join(HERE, rel), "w") as fh:
            fh.write("\n".join(self.lines) + "\n")


def helpers():
    rng = np.random.default_rng(20220706)
    o = Out()
    # disk kernels, every (radius, alias_blur) of both parameter sets
    for r, a in [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5), (0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)]:
        o.arr(f"disk r={r:g} a={a:g}", disk(r, a), "%.9g")
    # gaussian_filter, nearest/truncate 4 and reflect/truncate 3
    g = rng.uniform(-1, 1, size=(9, 11))
    o.arr("gauss input", g)
    for sigma in (0.4, 1.0, 2.5):
        o.arr(f"gauss nearest t4 s={sigma:g}", gaussian_filter(g, sigma, mode="nearest", truncate=4.0))
        o.arr(f"gauss reflect t3 s={sigma:g}", gaussian_filter(g, sigma, mode="reflect", truncate=3.0))
    # scipy zoom order 1 (clipped_zoom's core), float32 like zoom_blur
    z = rng.uniform(0, 1, size=(7, 7, 1)).astype(np.float32)
    o.arr("zoom input", z, "%.9g")
    for f in (1.3, 1.11, 2.5):
        o.arr(f"clipped_zoom z={f:g}", clipped_zoom(z, f), "%.9g")
    # map_coordinates order 1 mode reflect, incl. out-of-range coordinates
    m = rng.uniform(0, 1, size=(6, 7))
    ys = rng.uniform(-9, 15, size=40)
    xs = rng.uniform(-9, 15, size=40)
    o.arr("map input", m)
    o.arr("map ys", ys)
    o.arr("map xs", xs)
    o.arr("map out", map_coordinates(m, [ys, xs], order=1, mode="reflect"))
    # getAffineTransform + warpAffine (bilinear, reflect-101) on a float32 image
    w = rng.uniform(0, 1, size=(20, 20, 2)).astype(np.float32)
    src = np.float32([[16, 16], [16, 4], [4, 4]])
    dst = (src + np.float32([[1.7, -2.2], [0.4, 2.5], [-2.9, 1.1]])).astype(np.float32)
    mat = cv2.getAffineTransform(src, dst)
    o.arr("affine input", w, "%.9g")
    o.arr("affine src", src, "%.9g")
    o.arr("affine dst", dst, "%.9g")
    o.arr("affine M", mat)
    o.arr("affine out", cv2.warpAffine(w, mat, (20, 20), borderMode=cv2.BORDER_REFLECT_101), "%.9g")
    # cv2.resize x0.2 INTER_LINEAR on uint8 (frost at 32 px)
    r8 = rng.integers(0, 256, size=(23, 37, 3), dtype=np.uint8)
    o.arr("resize input", r8, "%d")
    o.arr("resize 0.2", cv2.resize(r8, (0, 0), fx=0.2, fy=0.2), "%d")
    # spatter edge chain on a liquid layer like spatter's (224-set severity 2 at 64 px)
    liquid = gaussian(rng.normal(size=(64, 64), loc=0.65, scale=0.3), sigma=3)
    liquid[liquid < 0.68] = 0
    l8 = (liquid * 255).astype(np.uint8)
    save("helpers/spatter_l8.png", np.stack([l8] * 3, -1))
    canny = cv2.Canny(l8, 50, 150)
    o.arr("canny", canny, "%d")
    dist = cv2.distanceTransform(255 - canny, cv2.DIST_L2, 5)
    o.arr("distance", dist, "%.9g")
    _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
    dist = cv2.blur(dist, (3, 3)).astype(np.uint8)
    o.arr("dist blurred u8", dist, "%d")
    dist = cv2.equalizeHist(dist)
    o.arr("equalized", dist, "%d")
    ker = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
    dist = cv2.filter2D(dist, cv2.CV_8U, ker)
    o.arr("embossed", dist, "%d")
    dist = cv2.blur(dist, (3, 3))
    o.arr("emboss blurred", dist, "%d")
    # HSV round trip on edge cases (ties, black, white, grey)
    px = np.array([[[0, 0, 0], [1, 1, 1], [0.5, 0.5, 0.5], [1, 1, 0], [0, 1, 1], [1, 0, 1], [0.2, 0.7, 0.7], [0.9, 0.1, 0.3], [0.3, 0.3, 0.9]]])
    o.arr("hsv input", px)
    o.arr("rgb2hsv", sk.color.rgb2hsv(px))
    o.write("helpers.txt")


def main():
    check_versions()
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    bases = make_bases(sys.argv[1])
    imagenet_goldens(bases)
    cifar_goldens(bases)
    motion_goldens(bases)
    frost_goldens(bases)
    helpers()


if __name__ == "__main__":
    main()
