//! Ctrl-C for `vars train`: the first SIGINT sets a flag (the training loop then stops after the
//! current step and writes a checkpoint); the handler also restores the default action, so a
//! second Ctrl-C ends the process at once.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

/// Whether Ctrl-C was pressed since [`install`].
pub fn requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

#[cfg(unix)]
extern "C" fn on_sigint(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
    // SAFETY: `signal` is async-signal-safe; SIG_DFL is a valid disposition for SIGINT.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
    }
}

/// Installs the handler (unix; elsewhere Ctrl-C keeps its default action).
pub fn install() {
    STOP.store(false, Ordering::SeqCst);
    #[cfg(unix)]
    {
        let handler: extern "C" fn(libc::c_int) = on_sigint;
        // SAFETY: the handler only stores to an atomic and calls `signal`, both
        // async-signal-safe; installing it races with nothing (no other handler is set here).
        unsafe {
            libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        }
    }
}
