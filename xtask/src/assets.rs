//! `dist/asset-manifest.json`: the size and SHA-256 of every file of a release build that
//! the studio's service worker (`public/sw.js`) keeps for offline visits (the page, its
//! scripts and wasm, styles, samples and published results). The worker stores a file
//! only when its bytes match this list, and serves a stored one offline only when they
//! still do: the check the model files get against `models/manifest.json`, which lists
//! them (so `models/` is left out here, all but that manifest).
//!
//! Written after every `trunk build` that xtask runs; a build without it (`trunk serve`)
//! is never cached by the worker. xtask depends on nothing, so SHA-256 is here (FIPS
//! 180-4), checked against the standard's test vectors.

use std::fmt::Write as _;
use std::path::Path;

use crate::util::Result;

/// The list's file name, in `dist/`.
pub const MANIFEST: &str = "asset-manifest.json";

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// SHA-256 of `bytes`, as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    // The message, a 1 bit, zeros to 56 mod 64 bytes, and its length in bits.
    let mut message = bytes.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((bytes.len() as u64) * 8).to_be_bytes());
    for block in message.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let choice = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(choice)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let majority = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(majority);
            (hh, g, f, e, d, c, b, a) = (g, f, e, d.wrapping_add(t1), c, b, a, t1.wrapping_add(t2));
        }
        for (slot, value) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *slot = slot.wrapping_add(value);
        }
    }
    h.iter().fold(String::new(), |mut out, word| {
        let _ = write!(out, "{word:08x}");
        out
    })
}

/// Whether a file under `dist/` (its path with `/`) belongs in the list.
fn listed(path: &str) -> bool {
    path != MANIFEST && (!path.starts_with("models/") || path == "models/manifest.json")
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = format!("{prefix}{name}");
        let kind = entry.file_type().map_err(|e| format!("{path}: {e}"))?;
        if kind.is_dir() {
            walk(&entry.path(), &format!("{path}/"), out)?;
        } else if listed(&path) {
            let bytes = std::fs::read(entry.path()).map_err(|e| format!("{path}: {e}"))?;
            out.push((path, bytes));
        }
    }
    Ok(())
}

/// Writes `dist/asset-manifest.json` for the build in `dist`; returns how many files it
/// lists.
pub fn write_manifest(dist: &Path) -> Result<usize> {
    let mut files = Vec::new();
    walk(dist, "", &mut files)?;
    let entries: Vec<String> = files
        .iter()
        .map(|(path, bytes)| {
            format!(
                "    \"{path}\": {{\"bytes\": {}, \"sha256\": \"{}\"}}",
                bytes.len(),
                sha256_hex(bytes)
            )
        })
        .collect();
    let json = format!("{{\n  \"files\": {{\n{}\n  }}\n}}\n", entries.join(",\n"));
    std::fs::write(dist.join(MANIFEST), json).map_err(|e| format!("{MANIFEST}: {e}"))?;
    Ok(files.len())
}

/// `cargo xtask assets [DIR]`: writes the list for the build in DIR (`dist`).
pub fn run(args: &[String]) -> Result<()> {
    let dist = crate::root().join(args.first().map_or("dist", String::as_str));
    let n = write_manifest(&dist)?;
    println!("{}: {n} files", dist.join(MANIFEST).display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_the_standards_test_vectors() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // Two blocks: 56 bytes leave no room for the length in the first.
        assert_eq!(
            sha256_hex(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        assert_eq!(
            sha256_hex(&vec![b'a'; 1_000_000]),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
    }

    #[test]
    fn the_list_leaves_out_model_files_but_not_their_manifest() {
        let dist = std::env::temp_dir().join(format!("drope-assets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dist);
        std::fs::create_dir_all(dist.join("models/rope")).unwrap();
        std::fs::create_dir_all(dist.join("results")).unwrap();
        std::fs::write(dist.join("index.html"), "<!doctype html>").unwrap();
        std::fs::write(dist.join("results/niah.json"), "{}").unwrap();
        std::fs::write(dist.join("models/manifest.json"), "{}").unwrap();
        std::fs::write(dist.join("models/rope/model.safetensors"), "w").unwrap();
        std::fs::write(dist.join("models/tokenizer.json"), "t").unwrap();
        assert_eq!(write_manifest(&dist).unwrap(), 3);
        let json = std::fs::read_to_string(dist.join(MANIFEST)).unwrap();
        assert!(json.contains(&format!(
            "\"index.html\": {{\"bytes\": 15, \"sha256\": \"{}\"}}",
            sha256_hex(b"<!doctype html>")
        )));
        assert!(
            json.contains("\"results/niah.json\"") && json.contains("\"models/manifest.json\"")
        );
        assert!(!json.contains("safetensors") && !json.contains("tokenizer"));
        // Written again, the list does not list itself.
        assert_eq!(write_manifest(&dist).unwrap(), 3);
        std::fs::remove_dir_all(&dist).unwrap();
    }
}
