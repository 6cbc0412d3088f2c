#!/usr/bin/env python3
"""Writes the small `.pth` fixtures of tests/pth_reader.rs with CPython's own pickler.

PyTorch is not needed: stand-ins for `torch._utils._rebuild_tensor_v2`, `_rebuild_parameter`,
`torch.FloatStorage`, ... are registered under their real module names, so `pickle` writes
exactly the GLOBALs, REDUCEs and persistent ids `torch.save` writes (its `persistent_id` and
`Tensor.__reduce_ex__` are reproduced below), while `argparse.Namespace`, `OrderedDict` with a
`_metadata` attribute, sets and bytes are the genuine objects. The archive layout follows
`torch.save`: stored entries `archive/data.pkl`, `archive/data/<key>`, `archive/byteorder`,
`archive/version`.

Run from this folder: `python3 make_fixtures.py` (deterministic output).
"""
import argparse
import collections
import io
import pickle
import struct
import sys
import types
import zipfile

torch = types.ModuleType("torch")
_utils = types.ModuleType("torch._utils")
sys.modules["torch"] = torch
sys.modules["torch._utils"] = _utils
torch._utils = _utils


def _rebuild_tensor_v2(*args):
    raise RuntimeError("stand-in")


def _rebuild_parameter(*args):
    raise RuntimeError("stand-in")


for f in (_rebuild_tensor_v2, _rebuild_parameter):
    f.__module__ = "torch._utils"
    setattr(_utils, f.__name__, f)

STORAGE_TYPES = {}
for name, fmt in [("FloatStorage", "<f"), ("HalfStorage", "<e"), ("BFloat16Storage", None),
                  ("LongStorage", "<q"), ("BoolStorage", "<?"), ("DoubleStorage", "<d")]:
    cls = type(name, (), {"__module__": "torch"})
    setattr(torch, name, cls)
    STORAGE_TYPES[name] = (cls, fmt)


def bf16(x):
    return struct.pack("<f", x)[2:]  # truncation is exact for the values used


class Storage:
    def __init__(self, kind, key, values, location="cpu"):
        self.cls, fmt = STORAGE_TYPES[kind]
        self.key, self.location, self.numel = key, location, len(values)
        self.data = b"".join(bf16(v) if fmt is None else struct.pack(fmt, v) for v in values)


class Tensor:
    def __init__(self, storage, offset, size, stride, param=False):
        self.args = (storage, offset, tuple(size), tuple(stride))
        self.param = param

    def __reduce_ex__(self, proto):
        inner = (_rebuild_tensor_v2, self.args + (False, collections.OrderedDict()))
        if self.param:  # nn.Parameter.__reduce_ex__
            return (_rebuild_parameter, (_Rebuilt(inner), True, collections.OrderedDict()))
        return inner


class _Rebuilt:
    def __init__(self, red):
        self.red = red

    def __reduce_ex__(self, proto):
        return self.red


class Pickler(pickle.Pickler):
    """torch.serialization._save's persistent_id."""

    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.cls, obj.key, obj.location, obj.numel)
        return None


def contiguous(size):
    stride, acc = [], 1
    for d in reversed(size):
        stride.insert(0, acc)
        acc *= d
    return stride


def save(path, obj, storages, protocol):
    buf = io.BytesIO()
    Pickler(buf, protocol=protocol).dump(obj)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        def add(name, data):
            info = zipfile.ZipInfo("archive/" + name, date_time=(1980, 1, 1, 0, 0, 0))
            z.writestr(info, data)
        add("data.pkl", buf.getvalue())
        add("byteorder", b"little")
        for s in storages:
            add("data/" + s.key, s.data)
        add("version", b"3\n")


def training_checkpoint():
    # Shared storage "0": 0..11, viewed as w (3, 4), its transpose, and a strided slice.
    s0 = Storage("FloatStorage", "0", [float(i) for i in range(12)], "cuda:0")
    s1 = Storage("HalfStorage", "1", [1.0, -2.5, 65504.0], "cuda:0")
    s2 = Storage("BFloat16Storage", "2", [1.0, -3.0])
    s3 = Storage("LongStorage", "3", [1 << 40])
    s4 = Storage("BoolStorage", "4", [True, False, True, True])
    s5 = Storage("DoubleStorage", "5", [0.1, -2.0])
    s6 = Storage("FloatStorage", "6", [7.0, 8.0])
    ema = Storage("FloatStorage", "7", [float(-i) for i in range(12)])
    opt = Storage("FloatStorage", "8", [0.5] * 12)
    step = Storage("FloatStorage", "9", [3.0])

    model = collections.OrderedDict()
    model["blocks.0.attn.qkv.weight"] = Tensor(s0, 0, [3, 4], [4, 1])
    model["blocks.0.attn.proj.weight"] = Tensor(s0, 0, [4, 3], [1, 4])  # .T of the above
    model["blocks.0.attn.slice"] = Tensor(s0, 5, [2, 2], [4, 2])
    model["blocks.0.norm1.weight"] = Tensor(s1, 0, [3], [1])
    model["blocks.0.norm1.bias"] = Tensor(s2, 0, [2], [1])
    model["blocks.0.bn.num_batches_tracked"] = Tensor(s3, 0, [], [])
    model["blocks.0.mask"] = Tensor(s4, 0, [2, 2], [2, 1])
    model["head.double"] = Tensor(s5, 0, [2], [1])
    model["head.bias"] = Tensor(s6, 0, [2], [1], param=True)
    model._metadata = collections.OrderedDict(
        [("", {"version": 1}), ("blocks", {"version": 1}), ("blocks.0.bn", {"version": 2})])

    model_ema = collections.OrderedDict()
    model_ema["blocks.0.attn.qkv.weight"] = Tensor(ema, 0, [3, 4], [4, 1])
    model_ema._metadata = collections.OrderedDict([("", {"version": 1})])

    args = argparse.Namespace(
        model="rvt_tiny_vars_d", lr=5e-4, batch_size=128, use_mask=False, drop_path=0.1,
        input_size=224, data_path="/data/imagenet", betas=None, opt_eps=1e-8, seed=0,
        aa="rand-m9-mstd0.5-inc1", sched="cosine", repeated_aug=True, epochs=300,
        mixup=0.8, dist_url="env://", device="cuda", num_workers=10, pin_mem=True)

    return {
        "model": model,
        "optimizer": {
            "state": {0: {"step": Tensor(step, 0, [], []),
                          "exp_avg": Tensor(opt, 0, [3, 4], [4, 1])}},
            "param_groups": [{"lr": 5e-4, "betas": (0.9, 0.999), "eps": 1e-8,
                              "weight_decay": 0.05, "amsgrad": False, "foreach": None,
                              "params": [0, 1]}],
        },
        "lr_scheduler": {"t_initial": 300, "lr_min": 1e-5, "cycle_mul": 1.0,
                         "base_values": [5e-4], "milestones": {30, 60}, "frozen": frozenset([7]),
                         "blob": b"\x00\xff"},
        "epoch": 299,
        "model_ema": model_ema,
        "scaler": {"scale": 65536.0, "growth_factor": 2.0, "_growth_tracker": 17},
        "args": args,
        "max_accuracy": 72.5,
    }, [s0, s1, s2, s3, s4, s5, s6, ema, opt, step]


if __name__ == "__main__":
    obj, storages = training_checkpoint()
    for proto in (2, 4):
        save(f"training_ckpt_p{proto}.pth", obj, storages, proto)
