//! [`CudaStorage::unfold2d`] (im2col) and [`CudaStorage::fold2d`] (col2im), the two ops behind
//! convolution and pooling (`vars_core::Window2d`), in `kernels/window.cu`; f32 and f64.
//!
//! The host validates the geometry exactly like the CPU backend ([`unfold_params`],
//! [`fold_params`]: same checks, same order, same errors) and passes it with the view's strides
//! as one [`WindowParams`] argument, so any strided view is read in place.
//!
//! - `unfold2d`: one thread per output element; a pure copy (or the pad value), bit-exact.
//! - `fold2d`: gather form, one thread per output pixel summing its covering window entries in
//!   tap order from 0: no atomics, deterministic, and bit-identical to the CPU backend (which
//!   sums in the same order).

use crate::device::driver_err;
use crate::error::{CudaError, Result};
use crate::kernels;
use crate::storage::{check_bounds, launch_config, unsupported, CudaStorage, DeviceElement};
use cudarc::driver::PushKernelArg;
use vars_core::{DType, Error, Layout, Window2d};

/// `unfold2d_<t>(total, WindowParams, const T* x, T* out, T pad)`.
pub(crate) fn unfold_kernel(dtype: DType) -> String {
    format!("unfold2d_{dtype}")
}

/// `fold2d_<t>(total, WindowParams, const T* cols, T* out)`.
pub(crate) fn fold_kernel(dtype: DType) -> String {
    format!("fold2d_{dtype}")
}

/// Entry points of `window.cu`.
pub(crate) fn entries() -> Vec<String> {
    let mut v = Vec::new();
    for d in kernels::FLOAT_DTYPES {
        v.push(unfold_kernel(d));
        v.push(fold_kernel(d));
    }
    v
}

/// The window geometry as the kernels take it: the C struct `WindowParams` of `window.cu`, field
/// for field. `strides`/`offset` describe the kernel's *input* view: `(N, C, H, W)` for unfold,
/// `(N, C·kh·kw, Ho·Wo)` for fold (`strides[3]` unused, 0).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowParams {
    pub n: u64,
    pub c: u64,
    pub h: u64,
    pub w: u64,
    pub ho: u64,
    pub wo: u64,
    pub kh: u64,
    pub kw: u64,
    pub sy: u64,
    pub sx: u64,
    pub py: u64,
    pub px: u64,
    pub dy: u64,
    pub dx: u64,
    pub offset: u64,
    pub strides: [u64; 4],
}

// SAFETY: `#[repr(C)]` plain-old-data (u64 fields only) matching `WindowParams` in window.cu.
unsafe impl cudarc::driver::DeviceRepr for WindowParams {}

impl WindowParams {
    fn new(
        (n, c, h, w): (usize, usize, usize, usize),
        (ho, wo): (usize, usize),
        win: Window2d,
        layout: &Layout,
    ) -> Self {
        let mut strides = [0u64; 4];
        for (s, &l) in strides.iter_mut().zip(layout.strides()) {
            *s = l as u64;
        }
        let u = |v: usize| v as u64;
        WindowParams {
            n: u(n),
            c: u(c),
            h: u(h),
            w: u(w),
            ho: u(ho),
            wo: u(wo),
            kh: u(win.kernel.0),
            kw: u(win.kernel.1),
            sy: u(win.stride.0),
            sx: u(win.stride.1),
            py: u(win.padding.0),
            px: u(win.padding.1),
            dy: u(win.dilation.0),
            dx: u(win.dilation.1),
            offset: u(layout.offset()),
            strides,
        }
    }

    /// Elements of the unfold output `(N, C·kh·kw, Ho·Wo)`.
    pub(crate) fn unfold_len(&self) -> usize {
        (self.n * self.c * self.kh * self.kw * self.ho * self.wo) as usize
    }

    /// Elements of the fold output `(N, C, H, W)`.
    pub(crate) fn fold_len(&self) -> usize {
        (self.n * self.c * self.h * self.w) as usize
    }
}

fn bad_layout(op: &'static str, l: &Layout, msg: String) -> CudaError {
    CudaError::Core(Error::InvalidArgument {
        op,
        shape: l.shape().clone(),
        msg,
    })
}

/// Geometry of `unfold2d` for an `(N, C, H, W)` view (the CPU backend's checks).
pub(crate) fn unfold_params(layout: &Layout, win: Window2d) -> Result<WindowParams> {
    const OP: &str = "unfold2d";
    if layout.rank() != 4 {
        return Err(bad_layout(OP, layout, "expected (N, C, H, W)".into()));
    }
    let d = layout.dims();
    let (n, c, h, w) = (d[0], d[1], d[2], d[3]);
    let hw = win.output_size(OP, layout.shape(), h, w)?;
    Ok(WindowParams::new((n, c, h, w), hw, win, layout))
}

/// Geometry of `fold2d` for an `(N, C·kh·kw, Ho·Wo)` view and an `(h, w)` output.
pub(crate) fn fold_params(
    layout: &Layout,
    win: Window2d,
    (h, w): (usize, usize),
) -> Result<WindowParams> {
    const OP: &str = "fold2d";
    let (ho, wo) = win.output_size(OP, layout.shape(), h, w)?;
    let kk = win.kernel.0 * win.kernel.1;
    let d = layout.dims();
    if layout.rank() != 3 || kk == 0 || d[1] % kk != 0 || d[2] != ho * wo {
        return Err(bad_layout(
            OP,
            layout,
            format!("expected (N, C·{kk}, {}) for a {h}×{w} output", ho * wo),
        ));
    }
    Ok(WindowParams::new(
        (d[0], d[1] / kk, h, w),
        (ho, wo),
        win,
        layout,
    ))
}

impl CudaStorage {
    /// im2col of an `(N, C, H, W)` view into a contiguous `(N, C·kh·kw, Ho·Wo)` buffer; positions
    /// outside the image read `pad_value` (f32, f64).
    pub fn unfold2d(
        &self,
        layout: &Layout,
        window: Window2d,
        pad_value: f64,
    ) -> Result<CudaStorage> {
        const OP: &str = "unfold2d";
        check_bounds(OP, layout, self.len())?;
        let p = unfold_params(layout, window)?;
        fn go<T: DeviceElement>(
            s: &CudaStorage,
            p: &WindowParams,
            pad: f64,
        ) -> Result<CudaStorage> {
            let dev = s.device();
            let total = p.unfold_len();
            let mut out = dev.alloc::<T>(total)?;
            if total == 0 {
                return Ok(dev.storage(out));
            }
            let f = dev.function(&kernels::WINDOW, &unfold_kernel(T::DTYPE))?;
            let (t64, pad) = (total as u64, T::from_f64(pad));
            let mut b = dev.stream().launch_builder(&f);
            b.arg(&t64)
                .arg(p)
                .arg(s.slice::<T>())
                .arg(&mut out)
                .arg(&pad);
            // SAFETY: unfold2d_<t>(u64 total, WindowParams, const T*, T* out, T pad): only
            // in-image pixels of the bounds-checked (N, C, H, W) view are read; out.len() == total.
            unsafe { b.launch(launch_config(total)) }.map_err(driver_err("cuLaunchKernel"))?;
            Ok(dev.storage(out))
        }
        match self.dtype() {
            DType::F32 => go::<f32>(self, &p, pad_value),
            DType::F64 => go::<f64>(self, &p, pad_value),
            other => Err(unsupported(OP, other, "f32, f64")),
        }
    }

    /// col2im, the adjoint of [`CudaStorage::unfold2d`]: an `(N, C·kh·kw, Ho·Wo)` view summed
    /// into a zero `(N, C, H, W)` buffer, `(H, W) = output_hw`; padded positions are dropped.
    pub fn fold2d(
        &self,
        layout: &Layout,
        window: Window2d,
        output_hw: (usize, usize),
    ) -> Result<CudaStorage> {
        const OP: &str = "fold2d";
        check_bounds(OP, layout, self.len())?;
        let p = fold_params(layout, window, output_hw)?;
        fn go<T: DeviceElement>(s: &CudaStorage, p: &WindowParams) -> Result<CudaStorage> {
            let dev = s.device();
            let total = p.fold_len();
            let mut out = dev.alloc::<T>(total)?;
            if total == 0 {
                return Ok(dev.storage(out));
            }
            let f = dev.function(&kernels::WINDOW, &fold_kernel(T::DTYPE))?;
            let t64 = total as u64;
            let mut b = dev.stream().launch_builder(&f);
            b.arg(&t64).arg(p).arg(s.slice::<T>()).arg(&mut out);
            // SAFETY: fold2d_<t>(u64 total, WindowParams, const T* cols, T* out): reads entries
            // (n, c·kk + tap, oy·Wo + ox) with oy < Ho, ox < Wo of the bounds-checked
            // (N, C·kk, Ho·Wo) view; out.len() == total.
            unsafe { b.launch(launch_config(total)) }.map_err(driver_err("cuLaunchKernel"))?;
            Ok(dev.storage(out))
        }
        match self.dtype() {
            DType::F32 => go::<f32>(self, &p),
            DType::F64 => go::<f64>(self, &p),
            other => Err(unsupported(OP, other, "f32, f64")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vars_core::Shape;

    fn win(k: (usize, usize), s: (usize, usize), p: (usize, usize), d: (usize, usize)) -> Window2d {
        Window2d {
            kernel: k,
            stride: s,
            padding: p,
            dilation: d,
        }
    }

    /// Host model of the unfold kernel: which input pixel (or pad) output element `e` reads.
    fn unfold_src(p: &WindowParams, e: u64) -> Option<u64> {
        let mut t = e;
        let ox = t % p.wo;
        t /= p.wo;
        let oy = t % p.ho;
        t /= p.ho;
        let j = t % p.kw;
        t /= p.kw;
        let i = t % p.kh;
        t /= p.kh;
        let (ch, b) = (t % p.c, t / p.c);
        let y = (oy * p.sy + i * p.dy) as i64 - p.py as i64;
        let x = (ox * p.sx + j * p.dx) as i64 - p.px as i64;
        (y >= 0 && y < p.h as i64 && x >= 0 && x < p.w as i64).then(|| {
            p.offset
                + b * p.strides[0]
                + ch * p.strides[1]
                + y as u64 * p.strides[2]
                + x as u64 * p.strides[3]
        })
    }

    /// Host model of the fold kernel: the column positions pixel `e` sums, in order.
    fn fold_srcs(p: &WindowParams, e: u64) -> Vec<u64> {
        let mut t = e;
        let xx = t % p.w;
        t /= p.w;
        let y = t % p.h;
        t /= p.h;
        let (ch, b) = (t % p.c, t / p.c);
        let kk = p.kh * p.kw;
        let base = p.offset + b * p.strides[0] + ch * kk * p.strides[1];
        let mut v = Vec::new();
        for i in 0..p.kh {
            let ty = (y + p.py) as i64 - (i * p.dy) as i64;
            if ty < 0 || ty as u64 % p.sy != 0 || ty as u64 / p.sy >= p.ho {
                continue;
            }
            let oy = ty as u64 / p.sy;
            for j in 0..p.kw {
                let tx = (xx + p.px) as i64 - (j * p.dx) as i64;
                if tx < 0 || tx as u64 % p.sx != 0 || tx as u64 / p.sx >= p.wo {
                    continue;
                }
                let ox = tx as u64 / p.sx;
                v.push(base + (i * p.kw + j) * p.strides[1] + (oy * p.wo + ox) * p.strides[2]);
            }
        }
        v
    }

    #[test]
    fn fold_is_the_transpose_of_unfold() {
        // Every (unfold output element → input pixel) edge appears exactly once as a (fold
        // pixel ← column entry) edge, in tap order, for assorted geometries.
        let cases = [
            ((1, 2, 5, 6), win((3, 3), (1, 1), (1, 1), (1, 1))),
            ((2, 1, 7, 5), win((2, 3), (2, 1), (0, 2), (1, 1))),
            ((1, 3, 9, 8), win((3, 2), (2, 3), (2, 1), (2, 3))),
            ((2, 2, 4, 4), win((1, 1), (1, 1), (0, 0), (1, 1))),
            ((1, 1, 3, 3), win((3, 3), (1, 1), (2, 2), (1, 1))),
        ];
        for ((n, c, h, w), wn) in cases {
            let x = Layout::contiguous(vec![n, c, h, w]);
            let up = unfold_params(&x, wn).unwrap();
            let (ho, wo) = (up.ho as usize, up.wo as usize);
            let kk = wn.kernel.0 * wn.kernel.1;
            let cols = Layout::contiguous(vec![n, c * kk, ho * wo]);
            let fp = fold_params(&cols, wn, (h, w)).unwrap();
            assert_eq!(fp.unfold_len(), up.unfold_len());
            // unfold edges: (column position e) -> (pixel position)
            let mut fwd: Vec<(u64, u64)> = (0..up.unfold_len() as u64)
                .filter_map(|e| unfold_src(&up, e).map(|px| (e, px)))
                .collect();
            let mut back: Vec<(u64, u64)> = Vec::new();
            for px in 0..fp.fold_len() as u64 {
                let srcs = fold_srcs(&fp, px);
                assert!(srcs.windows(2).all(|w| w[0] < w[1]), "tap order");
                back.extend(srcs.into_iter().map(|col| (col, px)));
            }
            fwd.sort_unstable();
            back.sort_unstable();
            assert_eq!(fwd, back, "{wn:?} on {n}x{c}x{h}x{w}");
        }
    }

    #[test]
    fn strided_view_positions() {
        // A permuted (N, C, H, W) view of an NHWC buffer with an offset.
        let (n, c, h, w) = (2, 3, 4, 5);
        let l = Layout::from_parts(
            Shape::new(vec![n, c, h, w]),
            vec![h * w * c, 1, w * c, c],
            7,
        );
        let p = unfold_params(&l, win((1, 1), (1, 1), (0, 0), (1, 1))).unwrap();
        // 1x1 window: output (b, ch, y·W + x) reads pixel (b, ch, y, x).
        for e in 0..p.unfold_len() as u64 {
            let (b, rest) = (e / (c * h * w) as u64, e % (c * h * w) as u64);
            let (ch, yx) = (rest / (h * w) as u64, rest % (h * w) as u64);
            let (y, x) = (yx / w as u64, yx % w as u64);
            let want = 7 + b * (h * w * c) as u64 + ch + y * (w * c) as u64 + x * c as u64;
            assert_eq!(unfold_src(&p, e), Some(want));
        }
    }

    #[test]
    fn geometry_errors_match_cpu() {
        let w3 = Window2d::square(3, 1, 0);
        let e = unfold_params(&Layout::contiguous(vec![2, 3, 4]), w3).unwrap_err();
        assert!(e.to_string().contains("expected (N, C, H, W)"), "{e}");
        let e = unfold_params(&Layout::contiguous(vec![1, 1, 2, 2]), w3).unwrap_err();
        assert!(e.to_string().contains("does not fit"), "{e}");
        let e = unfold_params(
            &Layout::contiguous(vec![1, 1, 5, 5]),
            Window2d::square(3, 0, 0),
        )
        .unwrap_err();
        assert!(e.to_string().contains("zero size/stride"), "{e}");
        // fold: wrong column count, wrong channel multiple, wrong rank
        let e = fold_params(&Layout::contiguous(vec![1, 9, 8]), w3, (4, 4)).unwrap_err();
        assert!(e.to_string().contains("expected (N, C·9, 4)"), "{e}");
        let e = fold_params(&Layout::contiguous(vec![1, 10, 4]), w3, (4, 4)).unwrap_err();
        assert!(e.to_string().contains("expected (N, C·9, 4)"), "{e}");
        let e = fold_params(&Layout::contiguous(vec![9, 4]), w3, (4, 4)).unwrap_err();
        assert!(e.to_string().contains("expected"), "{e}");
        let p = fold_params(&Layout::contiguous(vec![2, 18, 4]), w3, (4, 4)).unwrap();
        assert_eq!((p.n, p.c, p.h, p.w, p.ho, p.wo), (2, 2, 4, 4, 2, 2));
    }

    #[test]
    fn params_layout_is_stable() {
        assert_eq!(std::mem::size_of::<WindowParams>(), 19 * 8);
        assert_eq!(
            entries(),
            ["unfold2d_f32", "fold2d_f32", "unfold2d_f64", "fold2d_f64"]
        );
    }
}
