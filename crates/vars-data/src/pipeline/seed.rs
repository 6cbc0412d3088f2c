//! Seeding of the loader: every random draw is a pure function of `(seed, epoch, position)`.
//!
//! The scheme, in the style of [`crate::rng`] (SplitMix64's finaliser `mix64` and the
//! counter-based generator `vars_core::rng::bits`):
//!
//! 1. **Epoch key.** `e = mix64(mix64(seed ⊕ K) ⊕ epoch)` with `K = 0x5641_5253_2d44_4c01`
//!    ("VARS-DL", version 1).
//! 2. **Order.** The epoch's permutation of the data set is a Fisher–Yates shuffle on the stream
//!    `sub_seed(e, SHUFFLE)`: for `i = n−1 … 1`, `j = ⌊bits(stream, i)·(i+1) / 2⁶⁴⌋`, swap `i` and
//!    `j` ([`permutation`]; the multiply-shift bias is below `n/2⁶⁴`).
//! 3. **Samples.** The sample at position `p` of the epoch (its place in the epoch's sequence,
//!    `batch·batch_size + row`, so each repeat of repeated augmentation has its own) has the key
//!    `s = mix64(sub_seed(e, SAMPLE) ⊕ p)`. Each random quantity of its augmentation draws from
//!    its own stream `sub_seed(s, tag)` ([`tags`]), sequentially through [`crate::rng::Stream`]
//!    (uniform from the top 53 bits, normal by Box–Muller, integers by `lo + ⌊u·(hi − lo)⌋`);
//!    the RandomErasing noise is `normal_at(sub_seed(s, ERASE_PIXELS), k)` for element `k` of the
//!    box (`CHW` order).
//!
//! So a batch depends only on `(seed, epoch, index)` and the loader's settings — not on the order
//! in which batches are requested or on the thread count. Changing a formula or tag changes every
//! augmented batch: bump `K` when you must.

use vars_core::rng::{bits, mix64};

use crate::rng::{sub_seed, Stream};

/// Version key of the loader's seeding scheme ("VARS-DL", version 1).
pub const LOADER_KEY: u64 = 0x5641_5253_2d44_4c01;

/// Stream tags (see the module docs).
pub mod tags {
    /// The epoch's permutation.
    pub const SHUFFLE: u64 = 0x5348;
    /// Derivation of the per-sample keys.
    pub const SAMPLE: u64 = 0x5341;
    /// Random crop (`Small`: padded crop offsets; `ImageNet`: RandomResizedCrop).
    pub const CROP: u64 = 1;
    /// Horizontal flip.
    pub const FLIP: u64 = 2;
    /// RandAugment (op choice, application, magnitude noise, sign).
    pub const RAND_AUGMENT: u64 = 3;
    /// RandomErasing (whether, box size, aspect and place).
    pub const ERASE: u64 = 4;
    /// RandomErasing's per-pixel normal noise.
    pub const ERASE_PIXELS: u64 = 5;
}

/// The key of `epoch` in a loader seeded with `seed`.
pub fn epoch_key(seed: u64, epoch: u64) -> u64 {
    mix64(mix64(seed ^ LOADER_KEY) ^ epoch)
}

/// The stream seed of the epoch's shuffle.
pub fn shuffle_seed(seed: u64, epoch: u64) -> u64 {
    sub_seed(epoch_key(seed, epoch), tags::SHUFFLE)
}

/// The key of the sample at `position` of `epoch`.
pub fn sample_key(seed: u64, epoch: u64, position: u64) -> u64 {
    mix64(sub_seed(epoch_key(seed, epoch), tags::SAMPLE) ^ position)
}

/// The sequential stream `tag` of a sample key.
pub fn stream(sample_key: u64, tag: u64) -> Stream {
    Stream::new(sub_seed(sample_key, tag))
}

/// A seeded permutation of `0..n` (Fisher–Yates, see the module docs).
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = ((bits(seed, i as u64) as u128 * (i as u128 + 1)) >> 64) as usize;
        p.swap(i, j);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_is_a_permutation_and_seeded() {
        let p = permutation(1000, 3);
        let mut s = p.clone();
        s.sort_unstable();
        assert_eq!(s, (0..1000).collect::<Vec<_>>());
        assert_eq!(p, permutation(1000, 3));
        assert_ne!(p, permutation(1000, 4));
        assert!(permutation(0, 1).is_empty());
        assert_eq!(permutation(1, 1), vec![0]);
    }

    #[test]
    fn permutation_positions_are_uniform() {
        // element 0 lands in each of 4 places about equally often
        let mut counts = [0usize; 4];
        for seed in 0..8000u64 {
            counts[permutation(4, seed).iter().position(|&v| v == 0).unwrap()] += 1;
        }
        for c in counts {
            assert!((c as f64 - 2000.0).abs() < 150.0, "{counts:?}");
        }
    }

    #[test]
    fn keys_depend_on_every_component() {
        let k = sample_key(1, 2, 3);
        assert_ne!(k, sample_key(0, 2, 3));
        assert_ne!(k, sample_key(1, 3, 3));
        assert_ne!(k, sample_key(1, 2, 4));
        assert_ne!(shuffle_seed(1, 2), shuffle_seed(1, 3));
    }
}
