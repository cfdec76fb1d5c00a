//! A small fuzzer for the parsers that read what strangers give the studio (model files,
//! URLs). Stable Rust, no extra tools: each target is a function of bytes that must
//! return (an error is fine) and never panic. [`fuzz`] mutates seed inputs for a time
//! budget and saves every input that made the target panic; [`replay`] runs a saved
//! corpus, which `cargo xtask test` does on every run and `cargo xtask fuzz` grows.
//!
//! The mutations are the ones that find parser bugs: flipped bits, bytes inserted,
//! deleted and duplicated, chunks of one input spliced into another, and numbers and
//! tokens that sit at the edges of what a parser expects (huge lengths, negative or
//! non-finite values, empty containers).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::init::SplitMix64;

/// Byte strings worth splicing into JSON and binary headers.
const INTERESTING: &[&[u8]] = &[
    b"0",
    b"-1",
    b"1e309",
    b"-0.0",
    b"NaN",
    b"18446744073709551615",
    b"18446744073709551616",
    b"4294967296",
    b"9007199254740993",
    b"null",
    b"true",
    b"[]",
    b"{}",
    b"\"\"",
    b"\\u0000",
    b"\xff\xfe",
    b"\xf0\x9f\x98\x80",
    b"%",
    b"%zz",
    b"&",
    b"=",
    b"+",
    b":",
    b"\xff\xff\xff\xff\xff\xff\xff\x7f",
];

/// How long each target runs and the mutator's seed, from `DROPE_FUZZ_SECONDS`
/// (default 10) and `DROPE_FUZZ_SEED` (default 1), as `cargo xtask fuzz` sets them.
pub fn budget_from_env() -> (Duration, u64) {
    let read = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    (
        Duration::from_secs(read("DROPE_FUZZ_SECONDS", 10)),
        read("DROPE_FUZZ_SEED", 1),
    )
}

/// What a fuzzing run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuzzReport {
    /// Inputs tried.
    pub inputs: u64,
    /// One input per place the target panicked at (saved under the corpus folder).
    pub crashes: Vec<PathBuf>,
    /// Inputs that panicked, all places together.
    pub panics: u64,
}

/// Mutates inputs, deterministically from a seed.
pub struct Mutator {
    rng: SplitMix64,
}

impl Mutator {
    /// A mutator from `seed`.
    pub fn new(seed: u64) -> Self {
        Mutator {
            rng: SplitMix64::new(seed),
        }
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.rng.next_u64() % n as u64) as usize
        }
    }

    /// `input` with one to four mutations; `other` is spliced from.
    pub fn mutate(&mut self, input: &[u8], other: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        for _ in 0..1 + self.below(4) {
            let at = self.below(out.len() + 1);
            match self.below(7) {
                0 if !out.is_empty() => {
                    let i = self.below(out.len());
                    out[i] ^= 1 << self.below(8);
                }
                1 => out.insert(at, self.rng.next_u64() as u8),
                2 if !out.is_empty() => {
                    let end = (at + 1 + self.below(16)).min(out.len());
                    out.drain(at.min(out.len() - 1)..end);
                }
                3 => {
                    let token = INTERESTING[self.below(INTERESTING.len())];
                    out.splice(at..at, token.iter().copied());
                }
                4 if !out.is_empty() => {
                    // Replace a run of digits (or any byte) with an edge-case number.
                    let token = INTERESTING[self.below(9)];
                    let end = (at + 1 + self.below(8)).min(out.len());
                    out.splice(at.min(out.len() - 1)..end, token.iter().copied());
                }
                5 if !other.is_empty() => {
                    let from = self.below(other.len());
                    let end = (from + 1 + self.below(64)).min(other.len());
                    out.splice(at..at, other[from..end].iter().copied());
                }
                _ if !out.is_empty() => {
                    let from = self.below(out.len());
                    let end = (from + 1 + self.below(32)).min(out.len());
                    let chunk = out[from..end].to_vec();
                    out.splice(at..at, chunk);
                }
                _ => out.push(self.rng.next_u64() as u8),
            }
        }
        out
    }
}

/// Held while a run has replaced the panic hook (which is process-wide), so runs in
/// parallel test threads take turns and the hook is always put back.
static QUIET: Mutex<()> = Mutex::new(());

/// Where the last panic under [`quietly`] happened (`file:line`).
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Runs `f` with panic messages silenced (the fuzzer expects panics and counts them);
/// each panic's location is kept in [`LAST_PANIC`].
fn quietly<T>(f: impl FnOnce() -> T) -> T {
    let _turn = QUIET.lock().unwrap_or_else(|e| e.into_inner());
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()));
        *LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }));
    let out = f();
    std::panic::set_hook(hook);
    out
}

/// Whether `target` panics on `input`.
fn panics(target: &dyn Fn(&[u8]), input: &[u8]) -> bool {
    catch_unwind(AssertUnwindSafe(|| target(input))).is_err()
}

/// The inputs saved in `corpus` (one per file), sorted by name.
pub fn corpus_inputs(corpus: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus)
        .map(|dir| dir.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .into_iter()
        .filter_map(|path| std::fs::read(&path).ok().map(|bytes| (path, bytes)))
        .collect()
}

/// Runs `target` on every input saved in `corpus`; the paths of those that panic.
pub fn replay(corpus: &Path, target: impl Fn(&[u8])) -> Vec<PathBuf> {
    quietly(|| {
        corpus_inputs(corpus)
            .into_iter()
            .filter(|(_, input)| panics(&target, input))
            .map(|(path, _)| path)
            .collect()
    })
}

/// Mutates `seeds` and the inputs already in `corpus` for `budget`, running `target` on
/// each. The first input that panics at each new place (file and line) is saved to
/// `corpus` as `crash-<seed>-<n>`; later ones at the same place only count.
pub fn fuzz(
    corpus: &Path,
    seeds: &[Vec<u8>],
    budget: Duration,
    seed: u64,
    target: impl Fn(&[u8]),
) -> std::io::Result<FuzzReport> {
    std::fs::create_dir_all(corpus)?;
    let mut pool: Vec<Vec<u8>> = seeds.to_vec();
    pool.extend(corpus_inputs(corpus).into_iter().map(|(_, b)| b));
    if pool.is_empty() {
        pool.push(Vec::new());
    }
    let mut mutator = Mutator::new(seed);
    let mut report = FuzzReport {
        inputs: 0,
        crashes: Vec::new(),
        panics: 0,
    };
    let mut places = std::collections::BTreeSet::new();
    let started = Instant::now();
    quietly(|| {
        while started.elapsed() < budget {
            let a = mutator.below(pool.len());
            let b = mutator.below(pool.len());
            let input = mutator.mutate(&pool[a], &pool[b]);
            report.inputs += 1;
            if panics(&target, &input) {
                report.panics += 1;
                let place = LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()).take();
                if places.insert(place.unwrap_or_default()) {
                    let path = corpus.join(format!("crash-{seed}-{}", report.inputs));
                    std::fs::write(&path, &input)?;
                    report.crashes.push(path);
                }
            }
        }
        Ok(report)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_change_inputs_deterministically() {
        let mut a = Mutator::new(3);
        let mut b = Mutator::new(3);
        let seed = br#"{"a": [1, 2, 3]}"#;
        let outs: Vec<Vec<u8>> = (0..50).map(|_| a.mutate(seed, b"xyz")).collect();
        let again: Vec<Vec<u8>> = (0..50).map(|_| b.mutate(seed, b"xyz")).collect();
        assert_eq!(outs, again);
        assert!(outs.iter().filter(|o| o.as_slice() != seed).count() > 40);
        // Empty inputs grow (a later mutation may delete again).
        let mut m = Mutator::new(1);
        assert!((0..20).filter(|_| !m.mutate(b"", b"").is_empty()).count() > 10);
    }

    #[test]
    fn a_panicking_target_is_caught_saved_and_replayed() {
        let dir = std::env::temp_dir().join(format!("drope-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let target = |input: &[u8]| assert!(!input.contains(&b'!'), "found the bug");
        let report = fuzz(
            &dir,
            &[b"hello".to_vec()],
            Duration::from_millis(200),
            7,
            target,
        )
        .unwrap();
        assert!(report.inputs > 100, "{report:?}");
        assert!(!report.crashes.is_empty(), "a `!` is easy to find");
        assert_eq!(replay(&dir, target).len(), report.crashes.len());
        assert!(replay(&dir, |_: &[u8]| ()).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
