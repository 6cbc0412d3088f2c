//! Conversions between CPU tensors and [`ndarray`] arrays, for researchers who analyse codes,
//! dictionaries or activations with the ndarray ecosystem.
//!
//! Both directions copy (a tensor may be a strided view; an array may have any memory order).
//! They work for `Tensor<Cpu>` and `Tensor<Autodiff<Cpu>>` alike; arrays come back untracked.

use ndarray::{ArrayBase, ArrayD, Data, Dimension, IxDyn};
use vars_core::{Backend, Element, Error, Result, Tensor};

use crate::{CpuDevice, CpuStorage};

/// The tensor's values as an owned n-dimensional array in row-major order.
pub fn to_ndarray<B, T>(t: &Tensor<B>) -> Result<ArrayD<T>>
where
    B: Backend<Storage = CpuStorage, Device = CpuDevice>,
    T: Element,
{
    let data = t.to_vec::<T>()?;
    ArrayD::from_shape_vec(IxDyn(t.dims()), data).map_err(|e| Error::Backend {
        backend: "cpu",
        msg: format!("to_ndarray: {e}"),
    })
}

/// A tensor with the array's shape and values (logical order, whatever the array's strides).
pub fn from_ndarray<B, T, S, D>(a: &ArrayBase<S, D>, device: &CpuDevice) -> Result<Tensor<B>>
where
    B: Backend<Storage = CpuStorage, Device = CpuDevice>,
    T: Element,
    S: Data<Elem = T>,
    D: Dimension,
{
    Tensor::from_vec(a.iter().copied().collect::<Vec<T>>(), a.shape(), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cpu;
    use ndarray::{Array2, Axis};

    #[test]
    fn round_trip_through_views_and_orders() {
        let dev = CpuDevice;
        let t =
            Tensor::<Cpu>::from_vec((0..24).map(|i| i as f64).collect(), [2, 3, 4], &dev).unwrap();
        let view = t.permute(&[2, 0, 1]).unwrap();
        let a: ArrayD<f64> = to_ndarray(&view).unwrap();
        assert_eq!(a.shape(), &[4, 2, 3]);
        for ((i, j, k), v) in [((1, 0, 2), 9.0), ((3, 1, 1), 19.0)] {
            assert_eq!(a[[i, j, k]], v);
        }
        // A Fortran-ordered (transposed) array converts in logical order.
        let m = Array2::from_shape_vec((2, 3), vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let mt = m.t();
        let back: Tensor<Cpu> = from_ndarray(&mt, &dev).unwrap();
        assert_eq!(back.dims(), &[3, 2]);
        assert_eq!(
            back.to_vec::<f32>().unwrap(),
            vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
        );
        let summed = to_ndarray::<Cpu, f32>(&back).unwrap().sum_axis(Axis(0));
        assert_eq!(
            summed.iter().copied().collect::<Vec<f32>>(),
            vec![6.0, 15.0]
        );
    }

    #[test]
    fn wrong_element_type_is_an_error() {
        let t = Tensor::<Cpu>::zeros([2], vars_core::DType::F32, &CpuDevice).unwrap();
        let err = to_ndarray::<Cpu, f64>(&t).unwrap_err();
        assert!(err.to_string().contains("to_vec"), "{err}");
    }
}
