//! The shared, backend-generic test suite (cargo feature `testing`).
//!
//! Every backend crate instantiates the same suite (burn's design) and every test body runs on
//! whatever device the backend offers (candle's design):
//!
//! ```ignore
//! // crates/<backend>/tests/backend_suite.rs
//! fn device() -> Option<MyDevice> { Some(MyDevice::default()) } // `None` skips the suite
//! vars_core::backend_test_suite!(MyBackend, device);
//! // or, with the memory-leak test (counters of live device storage):
//! vars_core::backend_test_suite!(MyBackend, device, live_bytes = my::live_bytes, live_buffers = my::live_buffers);
//! ```
//!
//! - Test bodies are plain generic functions `fn body<B: Backend>(dev: &B::Device) -> Result<()>`,
//!   grouped by op family in the submodules ([`creation`], [`views`], [`elementwise`], [`reduce`],
//!   [`matmul`], [`index`], [`autodiff`], [`custom_op`], [`errors`], [`props`], [`leak`], [`nn`],
//!   [`fft`]). Bodies in [`autodiff`] and [`custom_op`] take the *inner* backend `B` and run on
//!   `Autodiff<B>`.
//! - Checks compare against references computed in `f64` on the host, with a tolerance stated
//!   next to each check (see [`util::tolerance`]).
//! - [`check_gradients`] is the finite-difference gradient checker, reusable by any crate that
//!   adds differentiable ops (NN layers, custom ops).
//! - The list of tests lives in one place, inside [`backend_test_suite!`]: adding a test is one
//!   line there plus the body.

pub mod autodiff;
pub mod creation;
pub mod custom_op;
pub mod elementwise;
pub mod errors;
pub mod fft;
mod gradcheck;
pub mod index;
pub mod leak;
pub mod matmul;
pub mod nn;
pub mod props;
pub mod reduce;
pub mod util;
pub mod views;

pub use gradcheck::check_gradients;

use crate::{Backend, Result};
use std::sync::{PoisonError, RwLock};

/// Serialises the memory-leak test against every other suite test in the process: ordinary
/// tests hold it shared, the leak test exclusively, so live-storage counters are not disturbed by
/// tests running on other threads.
pub static SUITE_LOCK: RwLock<()> = RwLock::new(());

/// Runs one suite test: skips (with a message) when `device` returns `None`, otherwise runs
/// `body` and panics with the error's `Display` (which names the op and shapes) on `Err`.
/// `exclusive` takes [`SUITE_LOCK`] exclusively (for tests that read global counters).
#[doc(hidden)]
pub fn run_test<B: Backend>(
    name: &str,
    device: fn() -> Option<B::Device>,
    exclusive: bool,
    body: impl FnOnce(&B::Device) -> Result<()>,
) {
    let Some(dev) = device() else {
        eprintln!(
            "skipping {name}: no device available for backend `{}` (the device function returned None)",
            B::name()
        );
        return;
    };
    let result = if exclusive {
        let _lock = SUITE_LOCK.write().unwrap_or_else(PoisonError::into_inner);
        body(&dev)
    } else {
        let _lock = SUITE_LOCK.read().unwrap_or_else(PoisonError::into_inner);
        body(&dev)
    };
    if let Err(e) = result {
        panic!("{name} failed on backend `{}` ({dev:?}): {e}", B::name());
    }
}

/// Instantiates the shared backend test suite: one `#[test]` per body in [`crate::testing`].
///
/// `backend_test_suite!(Backend, device_fn)` where `device_fn: fn() -> Option<Backend::Device>`
/// (a function or a non-capturing closure); when it returns `None` every test prints a skip
/// reason and passes. Optional `live_bytes = f, live_buffers = g` (both `fn() -> usize`, the
/// second optional) add the leak test `leak::flat_memory`. Invoke once per module: it defines
/// one module per op family (`creation`, `views`, ...), so test names read `views::permute`.
#[macro_export]
macro_rules! backend_test_suite {
    ($backend:ty, $device_fn:expr $(, live_bytes = $live_bytes:expr $(, live_buffers = $live_buffers:expr)?)? $(,)?) => {
        #[allow(non_camel_case_types, dead_code)]
        type __VarsSuiteBackend = $backend;

        #[allow(dead_code)]
        fn __vars_suite_device() -> ::core::option::Option<<$backend as $crate::Backend>::Device> {
            let device_fn: fn() -> ::core::option::Option<<$backend as $crate::Backend>::Device> = $device_fn;
            device_fn()
        }

        // ---- THE list of suite tests: `group: [body, ...]`, bodies in `vars_core::testing::group`.
        $crate::__vars_suite_groups! {
            creation: [
                full_zeros_ones, from_vec_roundtrip, arange_eye, random_matches_rng,
                random_moments,
            ],
            views: [
                reshape_contiguous, reshape_non_contiguous, permute, transpose_and_t, narrow, chunk,
                squeeze_unsqueeze, flatten, broadcast_as, contiguous, composed_views,
            ],
            elementwise: [
                unary_contiguous, unary_non_contiguous, unary_special_values, gelu_erf_exact,
                unary_integer, scalar_ops, binary_same_shape, binary_broadcast,
                binary_non_contiguous, comparisons, maximum_minimum, binary_integer, where_cond,
            ],
            reduce: [
                sum_mean, max_min, argmax_argmin, norms, sum_all_mean_all, sum_deterministic,
                reduce_integer,
            ],
            matmul: [
                matmul_2d, matmul_batched, matmul_broadcast_batch, matmul_transposed_views,
                matmul_degenerate,
            ],
            index: [
                index_select, index_add_into, cat, stack, pad_into, to_dtype_round_trips,
            ],
            autodiff: [
                grad_unary, grad_unary_views, grad_binary_broadcast, grad_where_cond,
                grad_reductions, grad_matmul, grad_views, grad_index_cat, grad_to_dtype,
                grad_softmax_composite, grad_mlp, grad_accumulation, no_grad_records_nothing,
                detach, requires_grad_plain_backend_errors, second_backward_errors,
                maximum_ties_split, reduce_max_ties_share, norm_l2_zero_gradient, kink_conventions,
                grad_store_and_untracked, backward_with_explicit_grad, inner_round_trip,
                deep_graph_drop,
            ],
            custom_op: [
                cube_matches_fd_and_composite, two_input_op, none_gradient, wrong_gradient_count,
                forward_error_names_op, plain_backend_forward, chained_with_builtins,
                gradcheck_catches_wrong_backward, wrong_gradient_shape,
            ],
            errors: [
                binary_broadcast_mismatch, matmul_mismatch, reshape_element_count, narrow_out_of_range,
                permute_invalid, dim_errors, index_select_errors, cat_errors, dtype_mismatch,
                to_vec_wrong_type, backward_errors, creation_errors, unsupported_dtype,
                reduce_errors,
            ],
            props: [
                permute_inverse_is_identity, broadcast_add_matches_loops, sum_all_matches_host_sum,
                matmul_associative, chunk_cat_round_trip, reshape_round_trip,
            ],
            nn: [
                linear_forward, linear_grad, softmax_forward, softmax_grad, cross_entropy_forward,
                cross_entropy_grad, layer_norm_forward, layer_norm_grad, batch_norm_hand_computed,
                batch_norm_forward, batch_norm_grad, conv2d_forward, conv2d_errors, conv2d_grad,
                max_pool2d_forward, max_pool2d_grad, global_avg_pool, shrink_forward, shrink_grad,
                dropout_behaviour, drop_path_behaviour, dropout_grad,
            ],
            fft: [
                rfft2_matches_dft, irfft2_matches_closed_form, fft_round_trip, fft_parseval,
                irfft2_dc_nyquist, fft_gradient_rules, fft_grad, fft_errors,
            ],
        }

        $(
            fn __vars_suite_counters() -> ::std::vec::Vec<$crate::testing::leak::Counter> {
                ::std::vec![
                    ("live_bytes", $live_bytes as fn() -> usize),
                    $( ("live_buffers", $live_buffers as fn() -> usize), )?
                ]
            }

            mod leak {
                #[test]
                fn flat_memory() {
                    let counters = super::__vars_suite_counters();
                    $crate::testing::run_test::<super::__VarsSuiteBackend>(
                        "leak::flat_memory",
                        super::__vars_suite_device,
                        true,
                        |dev| $crate::testing::leak::flat_memory::<super::__VarsSuiteBackend>(dev, &counters),
                    );
                }
            }
        )?
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __vars_suite_groups {
    ($($group:ident: [$($name:ident),* $(,)?]),* $(,)?) => {
        $(
            mod $group {
                $(
                    #[test]
                    fn $name() {
                        $crate::testing::run_test::<super::__VarsSuiteBackend>(
                            concat!(stringify!($group), "::", stringify!($name)),
                            super::__vars_suite_device,
                            false,
                            $crate::testing::$group::$name::<super::__VarsSuiteBackend>,
                        );
                    }
                )*
            }
        )*
    };
}
