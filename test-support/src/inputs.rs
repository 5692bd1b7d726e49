//! Hostile inputs for tests that stand in for a fuzzer where none can run (stable Rust, CI).
//!
//! [`HostileInputs`] is a small, deterministic, dependency-free input generator in the
//! spirit of libFuzzer's mutators: from a few seeds (well-formed inputs) it yields random
//! bytes, text of the right alphabet, and seeds mutated by bit flips, byte swaps for the
//! bytes parsers trip on (`;`, `=`, `"`, NUL, CR, LF, 0x80, 0xFF...), insertions, deletions,
//! duplications, truncations and splices. The same seed number always yields the same
//! inputs, so a failure reproduces.
//!
//! ```
//! use session_layer::id::SessionId;
//! use session_layer_test_support::inputs::HostileInputs;
//!
//! let good = SessionId::generate().expose();
//! for input in HostileInputs::new(7, [good.as_bytes()]).take(1_000) {
//!     // The decoder must never panic, and accept only its own spelling.
//!     if let Some(id) = SessionId::parse(&input) {
//!         assert_eq!(id.expose().as_bytes(), &input[..]);
//!     }
//! }
//! ```

/// Bytes that parsers of cookies, base64, JSON and Redis replies treat specially.
const INTERESTING: &[u8] = b"\0\t\n\r \"%'()*+,-./:;<=>?@[\\]_{}\x7f\x80\xbf\xc0\xfe\xff0Aaz=";

/// A deterministic stream of hostile inputs built from seeds. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct HostileInputs {
    state: u64,
    seeds: Vec<Vec<u8>>,
    max_len: usize,
}

impl HostileInputs {
    /// A stream numbered `seed` (any number; the same number gives the same stream) that
    /// mutates `seeds`. With no seeds, it yields generated inputs only.
    pub fn new<I, B>(seed: u64, seeds: I) -> Self
    where
        I: IntoIterator<Item = B>,
        B: AsRef<[u8]>,
    {
        Self {
            // xorshift must not start at zero.
            state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            seeds: seeds.into_iter().map(|s| s.as_ref().to_vec()).collect(),
            max_len: 4096,
        }
    }

    /// Caps the length of generated inputs and of mutants grown by insertions. Default:
    /// 4,096 bytes. Seeds longer than this are still mutated.
    #[must_use]
    pub fn with_max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len.max(1);
        self
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }

    /// A number below `n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        if self.below(3) == 0 {
            INTERESTING[self.below(INTERESTING.len())]
        } else {
            self.next_u64() as u8
        }
    }

    fn generated(&mut self) -> Vec<u8> {
        let len = match self.below(4) {
            0 => self.below(8),
            1 => self.below(64),
            _ => self.below(self.max_len + 1),
        };
        match self.below(3) {
            0 => (0..len).map(|_| self.next_u64() as u8).collect(),
            1 => (0..len).map(|_| self.byte()).collect(),
            _ => {
                const TEXT: &[u8] =
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=";
                (0..len).map(|_| TEXT[self.below(TEXT.len())]).collect()
            }
        }
    }

    fn mutate(&mut self, mut input: Vec<u8>) -> Vec<u8> {
        let rounds = 1 + self.below(4);
        for _ in 0..rounds {
            let len = input.len();
            match self.below(9) {
                // Flip one bit.
                0 if len > 0 => {
                    let i = self.below(len);
                    input[i] ^= 1 << self.below(8);
                }
                // Replace one byte.
                1 if len > 0 => {
                    let i = self.below(len);
                    input[i] = self.byte();
                }
                // Insert a few bytes.
                2 if len < self.max_len => {
                    let at = self.below(len + 1);
                    let n = 1 + self.below(8);
                    let bytes: Vec<u8> = (0..n).map(|_| self.byte()).collect();
                    input.splice(at..at, bytes);
                }
                // Delete a range.
                3 if len > 0 => {
                    let at = self.below(len);
                    let n = 1 + self.below(len - at);
                    input.drain(at..at + n);
                }
                // Duplicate a range in place.
                4 if len > 0 && len < self.max_len => {
                    let at = self.below(len);
                    let n = (1 + self.below(len - at)).min(self.max_len - len);
                    let copy = input[at..at + n].to_vec();
                    input.splice(at..at, copy);
                }
                // Truncate.
                5 if len > 0 => input.truncate(self.below(len)),
                // Splice with another seed.
                6 if !self.seeds.is_empty() => {
                    let pick = self.below(self.seeds.len());
                    let other = self.seeds[pick].clone();
                    let cut = self.below(len + 1);
                    let from = self.below(other.len() + 1);
                    input.truncate(cut);
                    input.extend_from_slice(&other[from..]);
                }
                // Repeat the whole input (many cookies, long values).
                7 if len > 0 && len * 2 <= self.max_len => {
                    input.extend_from_within(..);
                }
                // Swap two bytes.
                _ if len > 1 => {
                    let (a, b) = (self.below(len), self.below(len));
                    input.swap(a, b);
                }
                _ => input.push(self.byte()),
            }
        }
        input
    }
}

impl Iterator for HostileInputs {
    type Item = Vec<u8>;

    /// The next input: a seed as it is (one time in 16), a mutated seed (most of the time
    /// when there are seeds), or a generated input. The stream never ends.
    fn next(&mut self) -> Option<Vec<u8>> {
        if self.seeds.is_empty() || self.below(4) == 0 {
            return Some(self.generated());
        }
        let pick = self.below(self.seeds.len());
        let seed = self.seeds[pick].clone();
        if self.below(16) == 0 {
            return Some(seed);
        }
        Some(self.mutate(seed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_number_gives_the_same_inputs() {
        let a: Vec<_> = HostileInputs::new(3, [b"abc"]).take(200).collect();
        let b: Vec<_> = HostileInputs::new(3, [b"abc"]).take(200).collect();
        let c: Vec<_> = HostileInputs::new(4, [b"abc"]).take(200).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn inputs_vary_and_respect_the_length_cap() {
        let inputs: Vec<_> = HostileInputs::new(1, [&b"name=value"[..]])
            .with_max_len(64)
            .take(2_000)
            .collect();
        let distinct: std::collections::HashSet<_> = inputs.iter().collect();
        assert!(distinct.len() > 1_000, "only {} distinct", distinct.len());
        assert!(inputs.iter().all(|i| i.len() <= 64 * 2));
        assert!(inputs.iter().any(|i| i.contains(&0)));
        assert!(inputs.iter().any(|i| i.contains(&b';')));
        assert!(inputs.iter().any(|i| i.is_empty()));
    }
}
