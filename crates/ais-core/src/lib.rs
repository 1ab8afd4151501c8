//! Bottom layer of aistore-rs: bucket/object naming rules, HRW placement, the
//! cluster metadata types (Smap, BMD) and the JSON/msgpack wire types of
//! AIStore's REST API. Nothing here does I/O.

pub mod api;
pub mod config;
pub mod dsort;
pub mod error;
pub mod hrw;
pub mod meta;
pub mod names;
pub mod paths;

pub use error::CoreError;
pub use names::Bck;

/// Random alphanumeric id (node ids, listing UUIDs, job ids).
pub fn gen_id(len: usize) -> String {
    use rand::Rng;
    const ALPHA: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| ALPHA[rng.gen_range(0..ALPHA.len())] as char)
        .collect()
}

/// Current time as unix nanoseconds.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
