//! Highest-random-weight placement, bit-compatible with AIStore and the
//! official SDK's client-side `direct=True` selection: `xxh64(uname, seed
//! 1103515245) ^ id_digest`, mixed through a xoshiro256-style finaliser; the
//! largest value wins.

use xxhash_rust::xxh64::xxh64;

pub const XX_HASH_SEED: u64 = 1103515245;
const GOLDEN_RATIO: u64 = 0x9e37_79b9_7f4a_7c15;
const CONST1: u64 = 0xbf58_476d_1ce4_e5b9;
const CONST2: u64 = 0x94d0_49bb_1331_11eb;

pub fn digest(s: &str) -> u64 {
    xxh64(s.as_bytes(), XX_HASH_SEED)
}

pub fn xoshiro256_hash(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(GOLDEN_RATIO);
    z = (z ^ (z >> 30)).wrapping_mul(CONST1);
    z = (z ^ (z >> 27)).wrapping_mul(CONST2);
    z = (z ^ (z >> 31)).wrapping_add(GOLDEN_RATIO);
    z = (z ^ (z >> 30)).wrapping_mul(CONST1);
    z = (z ^ (z >> 27)).wrapping_mul(CONST2);
    z = (z ^ (z >> 31)).wrapping_mul(5);
    z.rotate_left(7).wrapping_mul(9)
}

/// Picks the index of the winning candidate (each given by its id digest).
pub fn select<I>(uname: &str, candidates: I) -> Option<usize>
where
    I: IntoIterator<Item = u64>,
{
    let d = digest(uname);
    let mut best: Option<(u64, usize)> = None;
    for (i, id_digest) in candidates.into_iter().enumerate() {
        let cs = xoshiro256_hash(id_digest ^ d);
        if best.is_none_or(|(m, _)| cs > m) {
            best = Some((cs, i));
        }
    }
    best.map(|(_, i)| i)
}

/// Indices of all candidates, best first (the first is [`select`]'s pick):
/// where an object's extra copies go.
pub fn order<I>(uname: &str, candidates: I) -> Vec<usize>
where
    I: IntoIterator<Item = u64>,
{
    let d = digest(uname);
    let mut w: Vec<(u64, usize)> = candidates
        .into_iter()
        .enumerate()
        .map(|(i, id)| (xoshiro256_hash(id ^ d), i))
        .collect();
    w.sort_by_key(|e| std::cmp::Reverse(e.0));
    w.into_iter().map(|(_, i)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_starts_with_the_selected_one() {
        let ids: Vec<u64> = (0..7).map(|i| digest(&format!("mp{i}"))).collect();
        for n in 0..50 {
            let u = format!("ais/@#/b/o{n}");
            let o = order(&u, ids.iter().copied());
            assert_eq!(Some(o[0]), select(&u, ids.iter().copied()));
            let mut sorted = o.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..7).collect::<Vec<_>>());
        }
    }

    #[test]
    fn matches_sdk_reference_values() {
        // Reference values computed with aistore==2.0.0's
        // `aistore.sdk.utils.get_digest` / `xoshiro256_hash`.
        assert_eq!(xoshiro256_hash(0), 0x1a70_a846_bd9c_c2a9);
        assert_eq!(
            digest("ais/@#/imagenet/train/0000353.jpg"),
            0x87f5_e247_1580_c8f2
        );
        assert_eq!(
            xoshiro256_hash(digest("t1") ^ digest("x")),
            0x53da_b072_5914_2151
        );
    }

    #[test]
    fn select_is_stable_and_spreads() {
        let ids: Vec<u64> = ["a", "b", "c"].iter().map(|s| digest(s)).collect();
        let mut counts = [0usize; 3];
        for i in 0..3000 {
            let u = format!("ais/@#/b/obj-{i}");
            let w = select(&u, ids.iter().copied()).unwrap();
            assert_eq!(Some(w), select(&u, ids.iter().copied()));
            counts[w] += 1;
        }
        for c in counts {
            assert!(c > 800, "{counts:?}");
        }
    }
}
