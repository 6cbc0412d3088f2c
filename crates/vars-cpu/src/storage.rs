//! [`CpuStorage`]: a flat, typed host buffer that counts itself.
//!
//! Every live buffer is registered in two process-global atomics (bytes and buffer count), bumped
//! on creation and dropped in [`Drop`]. [`live_bytes`] / [`live_buffers`] read them; a leak test
//! runs thousands of training steps and checks that both stay flat. The count uses the element
//! count (`len × size_of`), not the allocator's capacity, so it is exact and reproducible.
//!
//! The buffer itself is a private enum over the supported element types; fused kernels outside
//! this crate reach the raw data through the typed accessors ([`CpuStorage::as_f32`],
//! [`CpuStorage::as_slice`], …).

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use vars_core::{DType, Element, HostData};

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static LIVE_BUFFERS: AtomicUsize = AtomicUsize::new(0);

/// Bytes held by all live [`CpuStorage`] buffers of this process.
pub fn live_bytes() -> usize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// Number of live [`CpuStorage`] buffers in this process.
pub fn live_buffers() -> usize {
    LIVE_BUFFERS.load(Ordering::Relaxed)
}

/// The typed vector behind a [`CpuStorage`].
pub(crate) enum Buf {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
}

impl Buf {
    fn bytes(&self) -> usize {
        match self {
            Buf::F32(v) => v.len() * 4,
            Buf::F64(v) => v.len() * 8,
            Buf::I64(v) => v.len() * 8,
        }
    }
}

/// A contiguous host buffer of one [`DType`], tracked by [`live_bytes`] / [`live_buffers`].
pub struct CpuStorage {
    buf: Buf,
    /// Bytes registered at creation (subtracted again on drop).
    bytes: usize,
}

impl CpuStorage {
    pub(crate) fn new(buf: Buf) -> Self {
        let bytes = buf.bytes();
        LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed);
        LIVE_BUFFERS.fetch_add(1, Ordering::Relaxed);
        CpuStorage { buf, bytes }
    }

    pub(crate) fn buf(&self) -> &Buf {
        &self.buf
    }

    pub(crate) fn buf_mut(&mut self) -> &mut Buf {
        &mut self.buf
    }

    /// Takes ownership of a host buffer (no copy).
    pub fn from_host(data: HostData) -> Self {
        CpuStorage::new(match data {
            HostData::F32(v) => Buf::F32(v),
            HostData::F64(v) => Buf::F64(v),
            HostData::I64(v) => Buf::I64(v),
        })
    }

    /// Moves the whole buffer out as [`HostData`] (no copy; ignores any view).
    pub fn into_host(mut self) -> HostData {
        match &mut self.buf {
            Buf::F32(v) => HostData::F32(std::mem::take(v)),
            Buf::F64(v) => HostData::F64(std::mem::take(v)),
            Buf::I64(v) => HostData::I64(std::mem::take(v)),
        }
    }

    pub fn from_vec_f32(v: Vec<f32>) -> Self {
        CpuStorage::new(Buf::F32(v))
    }
    pub fn from_vec_f64(v: Vec<f64>) -> Self {
        CpuStorage::new(Buf::F64(v))
    }
    pub fn from_vec_i64(v: Vec<i64>) -> Self {
        CpuStorage::new(Buf::I64(v))
    }

    /// Wraps a vector of any supported element type.
    pub fn from_vec<T: Element>(v: Vec<T>) -> Self {
        CpuStorage::from_host(T::into_host(v))
    }

    pub fn dtype(&self) -> DType {
        match self.buf {
            Buf::F32(_) => DType::F32,
            Buf::F64(_) => DType::F64,
            Buf::I64(_) => DType::I64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.buf {
            Buf::F32(v) => v.len(),
            Buf::F64(v) => v.len(),
            Buf::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.buf {
            Buf::F32(v) => Some(v),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<&[f64]> {
        match &self.buf {
            Buf::F64(v) => Some(v),
            _ => None,
        }
    }
    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.buf {
            Buf::I64(v) => Some(v),
            _ => None,
        }
    }
    pub fn as_f32_mut(&mut self) -> Option<&mut [f32]> {
        match &mut self.buf {
            Buf::F32(v) => Some(v),
            _ => None,
        }
    }
    pub fn as_f64_mut(&mut self) -> Option<&mut [f64]> {
        match &mut self.buf {
            Buf::F64(v) => Some(v),
            _ => None,
        }
    }
    pub fn as_i64_mut(&mut self) -> Option<&mut [i64]> {
        match &mut self.buf {
            Buf::I64(v) => Some(v),
            _ => None,
        }
    }

    /// The raw elements when `T` is the buffer's element type.
    pub fn as_slice<T: Element>(&self) -> Option<&[T]> {
        let any: &dyn Any = match &self.buf {
            Buf::F32(v) => v,
            Buf::F64(v) => v,
            Buf::I64(v) => v,
        };
        any.downcast_ref::<Vec<T>>().map(Vec::as_slice)
    }

    /// Mutable raw elements when `T` is the buffer's element type.
    pub fn as_mut_slice<T: Element>(&mut self) -> Option<&mut [T]> {
        let any: &mut dyn Any = match &mut self.buf {
            Buf::F32(v) => v,
            Buf::F64(v) => v,
            Buf::I64(v) => v,
        };
        any.downcast_mut::<Vec<T>>().map(Vec::as_mut_slice)
    }
}

impl Clone for CpuStorage {
    fn clone(&self) -> Self {
        CpuStorage::new(match &self.buf {
            Buf::F32(v) => Buf::F32(v.clone()),
            Buf::F64(v) => Buf::F64(v.clone()),
            Buf::I64(v) => Buf::I64(v.clone()),
        })
    }
}

impl Drop for CpuStorage {
    fn drop(&mut self) {
        LIVE_BYTES.fetch_sub(self.bytes, Ordering::Relaxed);
        LIVE_BUFFERS.fetch_sub(1, Ordering::Relaxed);
    }
}

impl fmt::Debug for CpuStorage {
    /// Prints the dtype and length only: buffers can hold millions of elements.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CpuStorage")
            .field("dtype", &self.dtype())
            .field("len", &self.len())
            .finish()
    }
}
