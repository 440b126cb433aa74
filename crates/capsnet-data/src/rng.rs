//! A small deterministic random number generator (xoshiro256**) whose whole state is four
//! `u64`s, plus seed derivation so that the randomness of any (epoch, batch) can be
//! recomputed from the run seed alone.

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// The SplitMix64 output function: a bijective 64-bit mixer.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// xoshiro256** (Blackman & Vigna): fast, statistically strong, not cryptographic.
///
/// The same seed gives the same sequence on every platform and in every version of this
/// crate; [`Rng::state`] / [`Rng::from_state`] save and restore it exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator seeded from `seed` (expanded with SplitMix64, as the authors recommend).
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let s = std::array::from_fn(|_| {
            x = x.wrapping_add(GOLDEN_GAMMA);
            mix64(x)
        });
        // mix64 is a bijection and the four inputs differ, so at most one word is zero.
        Self { s }
    }

    /// A generator for one stream of randomness derived from a run `seed` and a path of
    /// stream ids, e.g. `Rng::derive(seed, &[AUGMENT, epoch, batch])`.
    ///
    /// Different paths give independent-looking generators, so the randomness of a batch
    /// depends only on (seed, epoch, batch) and a resumed run repeats it exactly.
    pub fn derive(seed: u64, streams: &[u64]) -> Self {
        let mut h = mix64(seed ^ 0x6a09_e667_f3bc_c909);
        for &id in streams {
            h = mix64(h.wrapping_add(GOLDEN_GAMMA) ^ mix64(id));
        }
        Self::new(mix64(h ^ streams.len() as u64))
    }

    /// The full state, for checkpoints.
    pub fn state(&self) -> [u64; 4] {
        self.s
    }

    /// Restores a state saved by [`Rng::state`]; `None` for the all-zero state, which
    /// xoshiro cannot leave.
    pub fn from_state(state: [u64; 4]) -> Option<Self> {
        (state != [0; 4]).then_some(Self { s: state })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A uniform integer in `0..n`, without modulo bias (Lemire's method).
    ///
    /// # Panics
    /// If `n == 0`.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0): empty range");
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
            }
        }
        (m >> 64) as u64
    }

    /// A uniform integer in `-max..=max`.
    pub fn symmetric(&mut self, max: u32) -> i32 {
        let span = 2 * u64::from(max) + 1;
        (self.below(span) as i64 - i64::from(max)) as i32
    }

    /// A uniform `f32` in `[0, 1)` (24 random bits).
    pub fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u32 << 24) as f32)
    }
}

/// Fisher–Yates shuffle of `items` in place.
pub fn shuffle<T>(items: &mut [T], rng: &mut Rng) {
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

/// Stream id of the per-epoch shuffle (see [`Rng::derive`]).
pub const STREAM_SHUFFLE: u64 = 0x5348_5546; // "SHUF"
/// Stream id of the per-batch augmentation (see [`Rng::derive`]).
pub const STREAM_AUGMENT: u64 = 0x4155_474d; // "AUGM"
/// Stream id of the class-balanced training subset (see [`crate::ImageSet::balanced_subset`]).
pub const STREAM_SUBSET: u64 = 0x5355_4253; // "SUBS"
/// Stream id of a class-balanced held-out split (see [`crate::ImageSet::split_balanced`]).
pub const STREAM_VALIDATION: u64 = 0x5641_4c49; // "VALI"

/// The order in which epoch `epoch` of a run seeded with `seed` visits `n` items: a
/// permutation of `0..n` that depends only on `(n, seed, epoch)`.
///
/// # Panics
/// If `n` exceeds `u32::MAX`.
pub fn epoch_permutation(n: usize, seed: u64, epoch: u64) -> Vec<u32> {
    let n = u32::try_from(n).expect("epoch_permutation: more than u32::MAX items");
    let mut order: Vec<u32> = (0..n).collect();
    shuffle(&mut order, &mut Rng::derive(seed, &[STREAM_SHUFFLE, epoch]));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_is_fixed_by_the_seed() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::new(42);
                move |_| r.next_u64()
            })
            .collect();
        let mut r = Rng::new(42);
        assert_eq!(a, (0..4).map(|_| r.next_u64()).collect::<Vec<_>>());
        assert_ne!(Rng::new(42).next_u64(), Rng::new(43).next_u64());
    }

    #[test]
    fn matches_reference_xoshiro256starstar() {
        // xoshiro256** from state {1, 2, 3, 4}, computed independently from the reference C code.
        let mut r = Rng::from_state([1, 2, 3, 4]).unwrap();
        let got: Vec<u64> = (0..6).map(|_| r.next_u64()).collect();
        assert_eq!(
            got,
            [
                11520,
                0,
                1509978240,
                1215971899390074240,
                1216172134540287360,
                607988272756665600
            ]
        );
    }

    #[test]
    fn state_round_trips_mid_stream() {
        let mut r = Rng::new(7);
        r.next_u64();
        let saved = r.state();
        let expect: Vec<u64> = (0..5).map(|_| r.next_u64()).collect();
        let mut restored = Rng::from_state(saved).unwrap();
        assert_eq!(
            expect,
            (0..5).map(|_| restored.next_u64()).collect::<Vec<_>>()
        );
        assert!(Rng::from_state([0; 4]).is_none());
    }

    #[test]
    fn derive_separates_streams() {
        let first = |seed, s: &[u64]| Rng::derive(seed, s).next_u64();
        let a = first(1, &[STREAM_SHUFFLE, 0]);
        assert_eq!(a, first(1, &[STREAM_SHUFFLE, 0]));
        assert_ne!(a, first(2, &[STREAM_SHUFFLE, 0]));
        assert_ne!(a, first(1, &[STREAM_SHUFFLE, 1]));
        assert_ne!(a, first(1, &[STREAM_AUGMENT, 0]));
        assert_ne!(first(1, &[0, 1]), first(1, &[1, 0]));
        assert_ne!(first(1, &[0]), first(1, &[0, 0]));
    }

    #[test]
    fn below_stays_in_range_and_is_roughly_uniform() {
        let mut r = Rng::new(3);
        let mut counts = [0u32; 7];
        for _ in 0..70_000 {
            counts[r.below(7) as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
        assert_eq!(r.below(1), 0);
        let big = u64::MAX / 3 * 2;
        assert!((0..1000).all(|_| r.below(big) < big));
    }

    #[test]
    fn symmetric_covers_the_closed_range() {
        let mut r = Rng::new(5);
        let mut seen = [false; 5];
        for _ in 0..1000 {
            let v = r.symmetric(2);
            assert!((-2..=2).contains(&v));
            seen[(v + 2) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(r.symmetric(0), 0);
    }

    #[test]
    fn f32_is_in_unit_interval() {
        let mut r = Rng::new(9);
        let xs: Vec<f32> = (0..10_000).map(|_| r.f32()).collect();
        assert!(xs.iter().all(|&x| (0.0..1.0).contains(&x)));
        let mean = xs.iter().sum::<f32>() / xs.len() as f32;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
    }

    #[test]
    fn shuffle_permutes() {
        let mut v: Vec<u32> = (0..100).collect();
        shuffle(&mut v, &mut Rng::new(1));
        assert_ne!(v, (0..100).collect::<Vec<_>>());
        v.sort_unstable();
        assert_eq!(v, (0..100).collect::<Vec<_>>());
        let mut empty: [u8; 0] = [];
        shuffle(&mut empty, &mut Rng::new(1));
    }

    #[test]
    fn epoch_permutation_is_deterministic_per_epoch() {
        let p = epoch_permutation(1000, 11, 0);
        assert_eq!(p, epoch_permutation(1000, 11, 0));
        assert_ne!(p, epoch_permutation(1000, 11, 1));
        assert_ne!(p, epoch_permutation(1000, 12, 0));
        let mut sorted = p.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<u32>>());
        assert!(epoch_permutation(0, 1, 1).is_empty());
    }
}
