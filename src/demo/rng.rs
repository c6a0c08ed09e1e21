//! Deterministic pseudo-random numbers for the demo generator: SplitMix64 to derive independent
//! streams from (seed, keys…) and xoshiro256** to draw from them. Only integer arithmetic and
//! exactly rounded IEEE operations are used, so the output never changes with crate versions,
//! platforms or libm implementations.

/// One step of SplitMix64 (Steele, Lea, Flood 2014): advances `state` and returns a mixed word.
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A bijective 64-bit mixer (one SplitMix64 step from `x`).
pub(crate) fn mix(x: u64) -> u64 {
    let mut s = x;
    splitmix64(&mut s)
}

/// xoshiro256** (Blackman, Vigna 2018).
#[derive(Clone, Debug)]
pub(crate) struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// The stream named by `seed` and a path of keys, e.g. `[STREAM_PATIENT, index]`. Different key
    /// paths give statistically independent streams.
    pub(crate) fn new(seed: u64, keys: &[u64]) -> Self {
        let mut h = mix(seed ^ 0x6B69_6C6E_2D64_656D);
        for &k in keys {
            h = mix(h ^ mix(k.wrapping_add(0x632B_E59B_D9B4_E019)));
        }
        let mut st = h;
        let mut s = [splitmix64(&mut st), splitmix64(&mut st), splitmix64(&mut st), splitmix64(&mut st)];
        if s == [0; 4] {
            s[0] = 1;
        }
        Rng { s }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `0..n` (multiply-shift; `n` must be > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `0..n` as a `usize` index.
    pub(crate) fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// Uniform integer in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: i64, hi: i64) -> i64 {
        debug_assert!(lo <= hi);
        lo + self.below((hi - lo) as u64 + 1) as i64
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Approximately standard normal (Irwin–Hall sum of four uniforms, rescaled): mean 0, sd 1,
    /// bounded to ±3.46, with no transcendental functions.
    pub(crate) fn normal(&mut self) -> f64 {
        let s = self.unit() + self.unit() + self.unit() + self.unit();
        (s - 2.0) * 1.732_050_807_568_877_2
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }

    /// An index chosen with the given integer weights (at least one must be > 0).
    pub(crate) fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut x = self.below(total);
        for (i, &w) in weights.iter().enumerate() {
            if x < u64::from(w) {
                return i;
            }
            x -= u64::from(w);
        }
        weights.len() - 1
    }

    /// Fisher–Yates shuffle.
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.index(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// First four draws of `Rng::new(42, &[])` (computed independently from the published algorithms).
    const PINNED: [u64; 4] = [0xC9DBCD93D7967EF2, 0x44C49185AD5504A8, 0x871AFAF3C40CDBB4, 0x28F21FE8E29458D1];

    fn draws(seed: u64, keys: &[u64]) -> Vec<u64> {
        let mut r = Rng::new(seed, keys);
        (0..4).map(|_| r.next_u64()).collect()
    }

    #[test]
    fn streams_are_reproducible_and_distinct() {
        assert_eq!(draws(7, &[1, 2]), draws(7, &[1, 2]));
        assert_ne!(draws(7, &[1, 2]), draws(7, &[1, 3]));
        assert_ne!(draws(7, &[1, 2]), draws(8, &[1, 2]));
        assert_ne!(draws(7, &[1, 2]), draws(7, &[2, 1]));
    }

    #[test]
    fn known_values_never_change() {
        // Pinned outputs: if these change, every generated data set changes.
        let mut s = 0u64;
        assert_eq!(splitmix64(&mut s), 0xE220_A839_7B1D_CDAF);
        assert_eq!(draws(42, &[]), PINNED.to_vec());
    }

    #[test]
    fn helpers_stay_in_range() {
        let mut r = Rng::new(1, &[9]);
        for _ in 0..10_000 {
            assert!(r.below(7) < 7);
            let x = r.range(-3, 3);
            assert!((-3..=3).contains(&x));
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
            let n = r.normal();
            assert!(n.abs() <= 3.47);
        }
        let mut v: Vec<u32> = (0..10).collect();
        r.shuffle(&mut v);
        let mut sorted = v.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
    }
}
