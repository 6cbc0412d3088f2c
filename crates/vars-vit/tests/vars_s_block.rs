use std::time::Instant;
use vars_core::nn::{irfft2, rfft2};
use vars_core::{DType, Tensor};
use vars_cpu::{Cpu, CpuDevice};

#[test]
#[ignore]
fn timing() {
    let dev = CpuDevice;
    let x = Tensor::<Cpu>::randn(vec![64, 192, 5, 14, 14], DType::F32, 1, &dev).unwrap();
    for _ in 0..2 {
        let t = Instant::now();
        let y = rfft2(&x).unwrap();
        println!("rfft2 {:?}", t.elapsed());
        let t = Instant::now();
        let z = irfft2(&y, 14).unwrap();
        println!("irfft2 {:?} {:?}", t.elapsed(), z.dims());
        let w = Tensor::<Cpu>::randn(vec![196, 224], DType::F32, 2, &dev).unwrap();
        let t = Instant::now();
        let q = x.reshape([64 * 192 * 5, 196]).unwrap().matmul(&w).unwrap();
        println!("dense {:?} {:?}", t.elapsed(), q.dims());
        let w = Tensor::<Cpu>::randn(vec![14, 16], DType::F32, 2, &dev).unwrap();
        let t = Instant::now();
        let q = x
            .reshape([64 * 192 * 5 * 14, 14])
            .unwrap()
            .matmul(&w)
            .unwrap();
        println!("rowpass {:?} {:?}", t.elapsed(), q.dims());
        let t = Instant::now();
        let q = q.add(&q).unwrap();
        println!("add {:?} {:?}", t.elapsed(), q.dims());
        let t = Instant::now();
        let q = q.transpose(0, 1).unwrap().contiguous().unwrap();
        println!("transpose copy {:?} {:?}", t.elapsed(), q.dims());
    }
}
