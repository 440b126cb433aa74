//! Allocator settings for training and inference, applied in-process at start by [`apply`]:
//! the `capsnet` binary, the criterion benches and the profiling examples all call it first, so
//! what the benches time is what users run (docs/performance.md, "Allocator").
//!
//! - mimalloc (the global allocator; flex's tensors): freed pages stay mapped for 1 s before
//!   they go back to the OS (purge delay), so a training step reuses last step's buffers
//!   instead of faulting in fresh zeroed pages.
//! - glibc malloc (libtorch's tensors on the `tch` backend): every block from the heap
//!   (`M_MMAP_MAX = 0`, no fresh mapping for blocks above 32 MiB), the heap trimmed only past
//!   128 MiB free (`M_TRIM_THRESHOLD`).
//!
//! With the defaults every training step maps and zero-fills its buffers again: measured
//! 20–40% slower on the paper network. A setting the user made through the allocators' own
//! environment variables (`MIMALLOC_PURGE_DELAY`, `GLIBC_TUNABLES`) is left alone. Nothing is
//! set in the environment, so child processes start with the user's environment.
//!
//! [`apply`] is the workspace's only `unsafe` code (the lint is `deny`, allowed on that one
//! function): two C calls with integer arguments and no pointers.

pub use capsnet_common::bench::AllocatorSettings;

/// mimalloc's option index of `purge_delay` (`mi_option_purge_delay` in `mimalloc.h`, v2 and
/// v3; `libmimalloc-sys` has no constant for it). The test
/// `allocator_settings_are_applied_in_process` checks it against `MIMALLOC_PURGE_DELAY`.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Purge delay set when the user did not choose one (ms).
pub const PURGE_DELAY_MS: i64 = 1000;

/// glibc `M_TRIM_THRESHOLD` set when `GLIBC_TUNABLES` is not (bytes).
pub const TRIM_THRESHOLD: i32 = 128 << 20;

/// Applies the allocator settings to this process (see the module docs) and returns what is
/// in effect. Call it first in `main`, before any large allocation; calling it again is
/// harmless. The workspace's one function allowed `unsafe`.
#[allow(unsafe_code)]
pub fn apply() -> AllocatorSettings {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: `mi_option_set` takes an option index and an integer, touches only
        // mimalloc's option table, and may be called at any time.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS as _) };
    }
    let glibc = match std::env::var("GLIBC_TUNABLES") {
        Ok(tunables) => format!("GLIBC_TUNABLES={tunables} (the user's)"),
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        Err(_) => {
            // SAFETY: `mallopt` takes two integers and changes malloc's parameters under its
            // own lock.
            let ok = unsafe {
                libc::mallopt(libc::M_MMAP_MAX, 0) == 1
                    && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
            };
            if ok {
                format!("mallopt M_MMAP_MAX=0, M_TRIM_THRESHOLD={TRIM_THRESHOLD}")
            } else {
                "mallopt refused the settings: glibc's defaults".into()
            }
        }
        #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
        Err(_) => "not glibc: the platform's defaults".into(),
    };
    // SAFETY: reads one entry of mimalloc's option table by index.
    let purge_delay = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
    // `c_long` is i64 here but i32 on some platforms.
    #[allow(clippy::useless_conversion)]
    let purge_delay = i64::from(purge_delay);
    AllocatorSettings {
        global: "mimalloc".into(),
        mimalloc_purge_delay_ms: purge_delay,
        glibc,
    }
}
