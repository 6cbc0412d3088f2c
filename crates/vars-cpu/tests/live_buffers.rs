//! The live-buffer counters: exact byte/buffer accounting, and flat across many op rounds.
//! (A separate test binary with a single test, so no other test allocates concurrently.)

use vars_core::{Backend, BinaryOp, DType, HostData, Layout, ReduceOp, UnaryOp};
use vars_cpu::{live_buffers, live_bytes, Cpu, CpuDevice, CpuStorage};

#[test]
fn counters_track_creation_and_drop() {
    let (bytes0, bufs0) = (live_bytes(), live_buffers());
    let a = CpuStorage::from_vec_f32(vec![1.0; 10]);
    let b = CpuStorage::from_host(HostData::I64(vec![1; 3]));
    assert_eq!(live_bytes() - bytes0, 40 + 24);
    assert_eq!(live_buffers() - bufs0, 2);
    let c = a.clone();
    assert_eq!(live_bytes() - bytes0, 40 + 24 + 40);
    let host = c.into_host(); // moving the data out still releases the count
    assert_eq!(host.len(), 10);
    assert_eq!(live_buffers() - bufs0, 2);
    drop((a, b));
    assert_eq!((live_bytes(), live_buffers()), (bytes0, bufs0));

    // A forward/backward-like loop of ops must leave the counters where they started.
    let dev = CpuDevice;
    let l = Layout::contiguous([64, 48]);
    let w = Cpu::random(
        &dev,
        48 * 32,
        DType::F32,
        vars_core::Distribution::Normal {
            mean: 0.0,
            std: 1.0,
        },
        1,
    )
    .unwrap();
    let lw = Layout::contiguous([48, 32]);
    let (bytes1, bufs1) = (live_bytes(), live_buffers());
    for step in 0..2000u64 {
        let x = Cpu::random(
            &dev,
            64 * 48,
            DType::F32,
            vars_core::Distribution::Uniform {
                low: -1.0,
                high: 1.0,
            },
            step,
        )
        .unwrap();
        let h = Cpu::matmul(&x, &l, &w, &lw).unwrap();
        let lh = Layout::contiguous([64, 32]);
        let g = Cpu::unary(UnaryOp::Gelu, &h, &lh).unwrap();
        let s = Cpu::reduce(ReduceOp::Sum, &g, &lh, &[1]).unwrap();
        let d = Cpu::unary(UnaryOp::GeluDerivative, &h, &lh).unwrap();
        let gd = Cpu::binary(BinaryOp::Mul, &d, &lh, &g, &lh).unwrap();
        let gw = Cpu::matmul(&x, &l.permute(&[1, 0]).unwrap(), &gd, &lh).unwrap();
        assert_eq!(s.len(), 64);
        assert_eq!(gw.len(), 48 * 32);
    }
    assert_eq!((live_bytes(), live_buffers()), (bytes1, bufs1));
    drop(w);
    assert_eq!((live_bytes(), live_buffers()), (bytes0, bufs0));
}
