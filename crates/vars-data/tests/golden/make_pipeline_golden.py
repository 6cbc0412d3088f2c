#!/usr/bin/env python3
"""Regenerate the training-pipeline goldens of `vars-data` (tests/golden/pipeline/).

The Rust tests never run this script: they read the PNGs and `pipeline.txt` it writes. Run it
only to regenerate them (the outputs are committed):

    python3 -m venv /tmp/pv && /tmp/pv/bin/pip install pillow==13.0.0 numpy
    /tmp/pv/bin/python crates/vars-data/tests/golden/make_pipeline_golden.py

Versions used for the committed files: Pillow 13.0.0, numpy 2.4.6, Python 3.11.7.

What it writes, from the base images of this folder (base/*_32.png, base/flower_224.png) and two
synthetic ones (written too):
- PIL `Image.resize(..., BICUBIC)` (what torchvision's Resize / RandomResizedCrop do on PIL
  images), the crop + resize of RandomResizedCrop, the evaluation Resize(int) + CenterCrop.
  Note: Pillow 13 runs the vertical pass first when the height shrinks more than the width
  (Pillow PR #9549); the Pillow of the reference era (7-8, timm 0.3.2) always ran the horizontal
  pass first, as the Rust port does. `resized_crop.png` (30x40 -> 32x32) is such a case, so its
  Pillow 13 output differs by at most 1 grey level; `resized_crop_wide.png` is not;
- every op of timm 0.3.2's RandAugment (`timm/data/auto_augment.py`: the same PIL calls, with
  `resample=BICUBIC` and `fillcolor=img_mean` as DeiT configures them) at fixed arguments;
- `ImageFilter.SMOOTH` (the degenerate image of Sharpness).

`pipeline.txt`: one line per output, `output input op arg...`.
"""

import os
import sys

import numpy as np
import PIL
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "pipeline")
FILL_RGB = (124, 116, 104)  # timm img_mean for the ImageNet mean
FILL_L = 73  # round(255 * 0.2860), Fashion-MNIST


def main():
    if PIL.__version__ != "13.0.0" and "--any-version" not in sys.argv:
        sys.exit(f"Pillow {PIL.__version__}; the committed files use 13.0.0 (--any-version)")
    os.makedirs(OUT, exist_ok=True)
    lines = []

    def save(img, name, src, op, *args):
        img.save(os.path.join(OUT, name))
        lines.append(" ".join([name, src, op] + [repr(a) if isinstance(a, float) else str(a) for a in args]))

    inputs = {}
    for photo in ("china", "flower"):
        inputs[f"base/{photo}_32.png"] = Image.open(os.path.join(HERE, "base", f"{photo}_32.png")).convert("RGB")
    grey = inputs["base/china_32.png"].convert("L")
    grey.save(os.path.join(OUT, "china_32_grey.png"))
    inputs["pipeline/china_32_grey.png"] = grey
    rng = np.random.default_rng(7)
    # clustered values: few distinct levels, so equalize/autocontrast hit their edge cases
    synth = rng.choice(np.array([3, 40, 41, 90, 200, 201, 250], np.uint8), size=(20, 24, 3), p=[.3, .2, .1, .1, .1, .1, .1])
    synth_img = Image.fromarray(synth, "RGB")
    synth_img.save(os.path.join(OUT, "synth_rgb.png"))
    inputs["pipeline/synth_rgb.png"] = synth_img
    big = Image.open(os.path.join(HERE, "base", "flower_224.png")).convert("RGB")
    crop = big.crop((20, 10, 90, 60))  # 70 x 50
    crop.save(os.path.join(OUT, "flower_crop.png"))
    inputs["pipeline/flower_crop.png"] = crop

    # --- resizes ---
    src = "pipeline/flower_crop.png"
    for (w, h) in [(33, 29), (96, 80), (70, 20), (16, 50), (224, 160)]:
        save(crop.resize((w, h), Image.BICUBIC), f"resize_{w}x{h}.png", src, "resize", w, h)
    save(big.resize((64, 64), Image.BICUBIC), "resize_big_64x64.png", "base/flower_224.png", "resize", 64, 64)
    # RandomResizedCrop's F.resized_crop(img, i=5, j=7, h=40, w=30, (32, 32), BICUBIC)
    save(crop.crop((7, 5, 7 + 30, 5 + 40)).resize((32, 32), Image.BICUBIC), "resized_crop.png", src, "resized_crop", 5, 7, 40, 30, 32)
    save(crop.crop((2, 3, 2 + 40, 3 + 30)).resize((32, 32), Image.BICUBIC), "resized_crop_wide.png", src, "resized_crop", 3, 2, 30, 40, 32)
    # evaluation: Resize(int(56 / 0.875) = 64) (shorter side) + CenterCrop(56), torchvision on PIL
    size = 56
    side = int(np.floor(size / 0.875))
    w, h = crop.size
    if w <= h:
        nw, nh = side, int(side * h / w)
    else:
        nw, nh = int(side * w / h), side
    r = crop.resize((nw, nh), Image.BICUBIC)
    left = int(round((nw - size) / 2.0))
    top = int(round((nh - size) / 2.0))
    save(r.crop((left, top, left + size, top + size)), "eval_56.png", src, "eval", size)

    # --- RandAugment ops (timm 0.3.2 auto_augment.py, with DeiT's hparams) ---
    def affine(img, m, fill):
        return img.transform(img.size, Image.AFFINE, m, resample=Image.BICUBIC, fillcolor=fill)

    def solarize_add(img, add, thresh=128):
        lut = [min(255, i + add) if i < thresh else i for i in range(256)]
        if img.mode == "RGB":
            lut = lut + lut + lut
        return img.point(lut)

    for name in ("base/china_32.png", "base/flower_32.png", "pipeline/china_32_grey.png", "pipeline/synth_rgb.png"):
        img = inputs[name]
        fill = FILL_L if img.mode == "L" else FILL_RGB
        stem = os.path.basename(name)[:-4]
        save(ImageOps.autocontrast(img), f"{stem}_autocontrast.png", name, "AutoContrast", 0)
        save(ImageOps.equalize(img), f"{stem}_equalize.png", name, "Equalize", 0)
        save(ImageOps.invert(img), f"{stem}_invert.png", name, "Invert", 0)
        save(img.filter(ImageFilter.SMOOTH), f"{stem}_smooth.png", name, "smooth", 0)
        for deg in (27.0, -13.7, 90.0):
            save(img.rotate(deg, resample=Image.BICUBIC, fillcolor=fill), f"{stem}_rotate_{deg}.png", name, "Rotate", deg)
        for bits in (1, 3):
            save(ImageOps.posterize(img, bits), f"{stem}_posterize_{bits}.png", name, "Posterize", bits)
        for t in (26, 230):
            save(ImageOps.solarize(img, t), f"{stem}_solarize_{t}.png", name, "Solarize", t)
        save(solarize_add(img, 99), f"{stem}_solarizeadd_99.png", name, "SolarizeAdd", 99)
        for f in (0.19, 1.81, 0.55):
            save(ImageEnhance.Color(img).enhance(f), f"{stem}_color_{f}.png", name, "Color", f)
            save(ImageEnhance.Contrast(img).enhance(f), f"{stem}_contrast_{f}.png", name, "Contrast", f)
            save(ImageEnhance.Brightness(img).enhance(f), f"{stem}_brightness_{f}.png", name, "Brightness", f)
            save(ImageEnhance.Sharpness(img).enhance(f), f"{stem}_sharpness_{f}.png", name, "Sharpness", f)
        for s in (0.27, -0.17):
            save(affine(img, (1, s, 0, 0, 1, 0), fill), f"{stem}_shearx_{s}.png", name, "ShearX", s)
            save(affine(img, (1, 0, 0, s, 1, 0), fill), f"{stem}_sheary_{s}.png", name, "ShearY", s)
        for p in (0.405, -0.3):
            save(affine(img, (1, 0, p * img.size[0], 0, 1, 0), fill), f"{stem}_translatex_{p}.png", name, "TranslateXRel", p)
            save(affine(img, (1, 0, 0, 0, 1, p * img.size[1]), fill), f"{stem}_translatey_{p}.png", name, "TranslateYRel", p)

    with open(os.path.join(HERE, "pipeline.txt"), "w") as f:
        f.write("# output input op args (make_pipeline_golden.py, Pillow %s)\n" % PIL.__version__)
        f.write("\n".join(lines) + "\n")
    print(len(lines), "outputs")


if __name__ == "__main__":
    main()
