//! The node's secrets from its environment, taken once at start-up and
//! then wiped from the process's own environment block, which
//! `/proc/<pid>/environ` shows to any process of the same uid (ETL workers
//! of a target that is not root run as the target's uid). Code reads them
//! here, never with `std::env::var`.
//!
//! A leaf module: it imports nothing of the node.

use std::collections::HashMap;
use std::sync::OnceLock;

/// Variables holding credentials.
pub const SECRET_VARS: &[&str] = &[
    "AIS_AUTH_SECRET",
    "AIS_AUTH_ADMIN_PASSWORD",
    "AIS_S3_KEYS",
    "AIS_S3_SECRET_KEY",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

static TAKEN: OnceLock<HashMap<&'static str, String>> = OnceLock::new();

/// Takes [`SECRET_VARS`] from the environment and overwrites their values
/// in place in the environment block (what `/proc/self/environ` reads).
/// Call first thing in `main`, before any other thread exists (the block is
/// written without the environment lock). Later calls do nothing.
pub fn take_and_wipe() {
    if TAKEN.get().is_some() {
        return;
    }
    let taken: HashMap<&'static str, String> = SECRET_VARS
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (*k, v)))
        .collect();
    let _ = TAKEN.set(taken);
    // SAFETY: single-threaded start-up (documented contract); `environ` is
    // the C library's NULL-terminated array of NUL-terminated strings; we
    // only overwrite bytes inside each matching string, never its length.
    unsafe {
        extern "C" {
            static mut environ: *const *mut libc::c_char;
        }
        let mut p = environ;
        if p.is_null() {
            return;
        }
        while !(*p).is_null() {
            let s = *p;
            let len = libc::strlen(s);
            let bytes = std::slice::from_raw_parts_mut(s.cast::<u8>(), len);
            if let Some(eq) = bytes.iter().position(|b| *b == b'=') {
                let key = &bytes[..eq];
                if SECRET_VARS.iter().any(|k| k.as_bytes() == key) {
                    // The value's bytes become '*': the entry keeps its size
                    // (nothing else moves), the secret is gone.
                    for b in &mut bytes[eq + 1..] {
                        *b = b'*';
                    }
                }
            }
            p = p.add(1);
        }
    }
}

/// A secret variable's value as the process started with it (after
/// [`take_and_wipe`]; before it, straight from the environment).
pub fn get(key: &str) -> Option<String> {
    match TAKEN.get() {
        Some(m) => m.get(key).cloned(),
        None => std::env::var(key).ok(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_are_kept_and_wiped_from_the_environment_block() {
        // (No other test of this binary reads or sets this variable.)
        std::env::set_var("AWS_SESSION_TOKEN", "tok-123-secret");
        super::take_and_wipe();
        assert_eq!(
            super::get("AWS_SESSION_TOKEN").as_deref(),
            Some("tok-123-secret")
        );
        let v = std::env::var("AWS_SESSION_TOKEN").unwrap_or_default();
        assert!(!v.contains("secret"), "{v}");
    }
}
