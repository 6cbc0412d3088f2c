//! Strided views: a [`Layout`] maps a logical index to a position in a flat storage buffer.
//!
//! Every backend op takes its operands as `(storage, layout)` pairs, so transposes, slices and
//! broadcasts are metadata changes and never copies (candle's design). Broadcast dimensions have
//! stride 0. Kernels are expected to take a fast path when [`Layout::contiguous_range`] is `Some`
//! and fall back to [`StridedIndex`] (or [`Layout::blocks`]) otherwise.

use crate::{Error, Result, Shape};

/// Shape, element strides and element offset of a view into a storage buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    shape: Shape,
    strides: Vec<usize>,
    offset: usize,
}

impl Layout {
    /// A contiguous row-major layout starting at element 0.
    pub fn contiguous(shape: impl Into<Shape>) -> Self {
        let shape = shape.into();
        let strides = shape.contiguous_strides();
        Layout {
            shape,
            strides,
            offset: 0,
        }
    }

    /// A layout from raw parts. Callers guarantee that every index stays inside the storage.
    pub fn from_parts(shape: Shape, strides: Vec<usize>, offset: usize) -> Self {
        debug_assert_eq!(shape.rank(), strides.len());
        Layout {
            shape,
            strides,
            offset,
        }
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }
    pub fn offset(&self) -> usize {
        self.offset
    }
    pub fn rank(&self) -> usize {
        self.shape.rank()
    }
    pub fn elem_count(&self) -> usize {
        self.shape.elem_count()
    }

    /// Whether the view is row-major contiguous (size-1 dims may have any stride).
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for (&d, &s) in self.dims().iter().zip(&self.strides).rev() {
            if d != 1 && s != expected {
                return false;
            }
            expected *= d;
        }
        true
    }

    /// `Some(start..end)` of the storage when the view is contiguous: the fast path for kernels.
    pub fn contiguous_range(&self) -> Option<std::ops::Range<usize>> {
        self.is_contiguous()
            .then(|| self.offset..self.offset + self.elem_count())
    }

    /// One past the largest storage index this view touches (0 for an empty view).
    pub fn storage_extent(&self) -> usize {
        if self.elem_count() == 0 {
            return 0;
        }
        self.offset
            + self
                .dims()
                .iter()
                .zip(&self.strides)
                .map(|(&d, &s)| (d - 1) * s)
                .sum::<usize>()
            + 1
    }

    /// Reorders the dimensions: output dim `i` is input dim `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Result<Layout> {
        let rank = self.rank();
        let mut seen = vec![false; rank];
        if perm.len() != rank
            || perm
                .iter()
                .any(|&p| p >= rank || std::mem::replace(&mut seen[p], true))
        {
            return Err(Error::invalid(
                "permute",
                &self.shape,
                format!("{perm:?} is not a permutation of 0..{rank}"),
            ));
        }
        Ok(Layout {
            shape: Shape::new(perm.iter().map(|&p| self.dims()[p]).collect::<Vec<_>>()),
            strides: perm.iter().map(|&p| self.strides[p]).collect(),
            offset: self.offset,
        })
    }

    /// The sub-range `start..start + len` of `dim`.
    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Layout> {
        let size = self.shape.dim("narrow", dim)?;
        if start + len > size {
            return Err(Error::invalid(
                "narrow",
                &self.shape,
                format!(
                    "range {start}..{} exceeds dim {dim} of size {size}",
                    start + len
                ),
            ));
        }
        let mut dims = self.dims().to_vec();
        dims[dim] = len;
        Ok(Layout {
            shape: Shape::new(dims),
            strides: self.strides.clone(),
            offset: self.offset + start * self.strides[dim],
        })
    }

    /// Broadcasts to `target` (trailing alignment); stretched dims get stride 0.
    pub fn broadcast_as(&self, target: &Shape) -> Result<Layout> {
        if !self.shape.broadcasts_to(target) {
            return Err(Error::ShapeMismatch {
                op: "broadcast_as",
                lhs: self.shape.clone(),
                rhs: target.clone(),
                hint: " (cannot broadcast)".into(),
            });
        }
        let extra = target.rank() - self.rank();
        let strides = target
            .dims()
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                if i < extra {
                    0
                } else {
                    let (d, s) = (self.dims()[i - extra], self.strides[i - extra]);
                    if d == 1 && t != 1 {
                        0
                    } else {
                        s
                    }
                }
            })
            .collect();
        Ok(Layout {
            shape: target.clone(),
            strides,
            offset: self.offset,
        })
    }

    /// A view with a new shape, when the data need not move (contiguous views, or only
    /// inserting/removing size-1 dims). `None` means a copy is required first.
    pub fn reshape(&self, shape: &Shape) -> Option<Layout> {
        if self.is_contiguous() {
            return Some(Layout {
                shape: shape.clone(),
                strides: shape.contiguous_strides(),
                offset: self.offset,
            });
        }
        // Non-contiguous: allowed when dropping/adding unit dims only.
        let kept: Vec<(usize, usize)> = self
            .dims()
            .iter()
            .zip(&self.strides)
            .filter(|(&d, _)| d != 1)
            .map(|(&d, &s)| (d, s))
            .collect();
        let target: Vec<usize> = shape.dims().iter().copied().filter(|&d| d != 1).collect();
        if kept.iter().map(|k| k.0).ne(target.iter().copied()) {
            return None;
        }
        let mut it = kept.iter();
        let strides = shape
            .dims()
            .iter()
            .map(|&d| {
                if d == 1 {
                    0
                } else {
                    it.next().map(|k| k.1).unwrap_or(0)
                }
            })
            .collect();
        Some(Layout {
            shape: shape.clone(),
            strides,
            offset: self.offset,
        })
    }

    /// Iterator over the storage index of every element in row-major logical order.
    pub fn strided_index(&self) -> StridedIndex {
        StridedIndex::new(self)
    }

    /// The view as runs of `block_len` consecutive storage elements, starting at the yielded
    /// indices. Kernels copy whole blocks instead of single elements.
    pub fn blocks(&self) -> Blocks {
        // Merge trailing dims while they are contiguous.
        let mut block_len = 1;
        let mut split = self.rank();
        for (&d, &s) in self.dims().iter().zip(&self.strides).rev() {
            if d == 1 {
                split -= 1;
                continue;
            }
            if s != block_len {
                break;
            }
            block_len *= d;
            split -= 1;
        }
        let outer = Layout {
            shape: Shape::new(&self.dims()[..split]),
            strides: self.strides[..split].to_vec(),
            offset: self.offset,
        };
        let count = if self.elem_count() == 0 {
            0
        } else {
            outer.elem_count()
        };
        Blocks {
            block_len,
            starts: StridedIndex::new(&outer),
            count,
        }
    }
}

/// Storage indices of a strided view in row-major order.
#[derive(Debug, Clone)]
pub struct StridedIndex {
    next: Option<usize>,
    index: Vec<usize>,
    dims: Vec<usize>,
    strides: Vec<usize>,
}

impl StridedIndex {
    fn new(layout: &Layout) -> Self {
        let next = (layout.elem_count() > 0).then_some(layout.offset);
        StridedIndex {
            next,
            index: vec![0; layout.rank()],
            dims: layout.dims().to_vec(),
            strides: layout.strides.clone(),
        }
    }
}

impl Iterator for StridedIndex {
    type Item = usize;
    #[inline]
    fn next(&mut self) -> Option<usize> {
        let current = self.next?;
        let mut pos = current;
        let mut done = true;
        for d in (0..self.dims.len()).rev() {
            if self.index[d] + 1 < self.dims[d] {
                self.index[d] += 1;
                pos += self.strides[d];
                done = false;
                break;
            }
            pos -= self.index[d] * self.strides[d];
            self.index[d] = 0;
        }
        self.next = (!done).then_some(pos);
        Some(current)
    }
}

/// Contiguous runs of a strided view; see [`Layout::blocks`].
#[derive(Debug, Clone)]
pub struct Blocks {
    pub block_len: usize,
    pub starts: StridedIndex,
    /// Number of blocks.
    pub count: usize,
}
