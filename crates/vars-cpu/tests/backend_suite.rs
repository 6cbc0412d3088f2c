//! The shared backend-generic suite of `vars_core::testing`, instantiated for the CPU backend.

fn device() -> Option<vars_cpu::CpuDevice> {
    Some(vars_cpu::CpuDevice)
}

vars_core::backend_test_suite!(
    vars_cpu::Cpu,
    device,
    live_bytes = vars_cpu::live_bytes,
    live_buffers = vars_cpu::live_buffers
);
