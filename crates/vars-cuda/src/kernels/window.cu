#line 2 "window.cu"
// Sliding windows (Backend::unfold2d, fold2d), f32/f64; see `window.rs`. `WindowParams` mirrors
// the Rust struct of the same name field for field (all u64).
//
// - `unfold2d_<t>(total, params, x, out, pad)` (im2col): one thread per output element of the
//   contiguous (N, C·kh·kw, Ho·Wo) buffer, row `c·kh·kw + i·kw + j`, column `oy·Wo + ox`; it reads
//   input pixel (y, x) = (oy·sy + i·dy − py, ox·sx + j·dx − px) of the (N, C, H, W) view
//   (`strides[0..4]`, `offset`), or writes `pad` outside the image. A pure copy: bit-exact.
// - `fold2d_<t>(total, params, cols, out)` (col2im), gather form: one thread per output pixel of
//   the contiguous (N, C, H, W) buffer sums, from 0 and in tap order (i, then j), the column
//   entries of the (N, C·kh·kw, Ho·Wo) view (`strides[0..3]`) whose window covers it. No atomics:
//   deterministic, and the same additions in the same order as the CPU backend (which folds tap
//   by tap; each tap reaches a pixel at most once), so results are bit-identical.

struct WindowParams {
    vars_u64 n, c, h, w, ho, wo;
    vars_u64 kh, kw, sy, sx, py, px, dy, dx;
    vars_u64 offset;
    vars_u64 strides[4];
};

#define VARS_WINDOW(T, SFX)                                                                      \
    extern "C" __global__ void unfold2d_##SFX(vars_u64 total, WindowParams p,                    \
                                              const T* __restrict__ x, T* __restrict__ out,      \
                                              T pad) {                                           \
        VARS_GRID_STRIDE_LOOP(e, total) {                                                        \
            vars_u64 t = e;                                                                      \
            const vars_u64 ox = t % p.wo;                                                        \
            t /= p.wo;                                                                           \
            const vars_u64 oy = t % p.ho;                                                        \
            t /= p.ho;                                                                           \
            const vars_u64 j = t % p.kw;                                                         \
            t /= p.kw;                                                                           \
            const vars_u64 i = t % p.kh;                                                         \
            t /= p.kh;                                                                           \
            const vars_u64 ch = t % p.c, b = t / p.c;                                            \
            const vars_i64 y = (vars_i64)(oy * p.sy + i * p.dy) - (vars_i64)p.py;                \
            const vars_i64 xx = (vars_i64)(ox * p.sx + j * p.dx) - (vars_i64)p.px;               \
            T v = pad;                                                                           \
            if (y >= 0 && y < (vars_i64)p.h && xx >= 0 && xx < (vars_i64)p.w) {                  \
                v = x[p.offset + b * p.strides[0] + ch * p.strides[1] +                          \
                      (vars_u64)y * p.strides[2] + (vars_u64)xx * p.strides[3]];                 \
            }                                                                                    \
            out[e] = v;                                                                          \
        }                                                                                        \
    }                                                                                            \
    extern "C" __global__ void fold2d_##SFX(vars_u64 total, WindowParams p,                      \
                                            const T* __restrict__ cols, T* __restrict__ out) {   \
        const vars_u64 kk = p.kh * p.kw;                                                         \
        VARS_GRID_STRIDE_LOOP(e, total) {                                                        \
            vars_u64 t = e;                                                                      \
            const vars_u64 xx = t % p.w;                                                         \
            t /= p.w;                                                                            \
            const vars_u64 y = t % p.h;                                                          \
            t /= p.h;                                                                            \
            const vars_u64 ch = t % p.c, b = t / p.c;                                            \
            const vars_u64 base = p.offset + b * p.strides[0] + ch * kk * p.strides[1];          \
            T acc = T(0);                                                                        \
            for (vars_u64 i = 0; i < p.kh; ++i) {                                                \
                const vars_i64 ty = (vars_i64)(y + p.py) - (vars_i64)(i * p.dy);                 \
                if (ty < 0 || (vars_u64)ty % p.sy != 0) continue;                                \
                const vars_u64 oy = (vars_u64)ty / p.sy;                                         \
                if (oy >= p.ho) continue;                                                        \
                for (vars_u64 j = 0; j < p.kw; ++j) {                                            \
                    const vars_i64 tx = (vars_i64)(xx + p.px) - (vars_i64)(j * p.dx);            \
                    if (tx < 0 || (vars_u64)tx % p.sx != 0) continue;                            \
                    const vars_u64 ox = (vars_u64)tx / p.sx;                                     \
                    if (ox >= p.wo) continue;                                                    \
                    acc = acc + cols[base + (i * p.kw + j) * p.strides[1] +                      \
                                     (oy * p.wo + ox) * p.strides[2]];                           \
                }                                                                                \
            }                                                                                    \
            out[e] = acc;                                                                        \
        }                                                                                        \
    }

VARS_WINDOW(float, f32)
VARS_WINDOW(double, f64)
