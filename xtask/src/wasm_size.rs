//! `cargo xtask wasm-size [FILE..]`: what makes up the studio's WebAssembly, by crate and
//! by part of the product (issue 19: a smaller first download starts with knowing where
//! the bytes are). It reads the wasm that `cargo build --release --target
//! wasm32-unknown-unknown` (run by `trunk build --release`) leaves in `target/`, before
//! wasm-bindgen and wasm-opt strip the function names: each function body's size goes to
//! the crate its (mangled) name starts with; the data section is counted apart. The
//! shipped `dist/*.wasm` sizes are printed beside it. Std only, like the rest of xtask.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use crate::util::{root, Result};

/// Function bodies and data of one module.
#[derive(Debug, Default, PartialEq)]
pub struct Composition {
    /// Bytes of function bodies by crate.
    pub code_by_crate: BTreeMap<String, u64>,
    /// Bytes of the data section (string constants, tables).
    pub data: u64,
}

impl Composition {
    /// Bytes of every function body.
    pub fn code(&self) -> u64 {
        self.code_by_crate.values().sum()
    }
}

/// An unsigned LEB128 at `*at`, moving past it.
fn leb(bytes: &[u8], at: &mut usize) -> Result<u64> {
    let (mut value, mut shift) = (0u64, 0);
    loop {
        let byte = *bytes.get(*at).ok_or("the module ends inside a number")?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(value);
        }
        shift += 7;
        if shift > 63 {
            return Err("a number longer than 64 bits".into());
        }
    }
}

/// A length-prefixed name at `*at`.
fn name<'a>(bytes: &'a [u8], at: &mut usize) -> Result<&'a [u8]> {
    let len = leb(bytes, at)? as usize;
    let name = bytes
        .get(*at..*at + len)
        .ok_or("the module ends inside a name")?;
    *at += len;
    Ok(name)
}

/// Reads a module: imported functions (which have no body), body sizes (the code
/// section), function names (the custom `name` section) and the data section's size.
pub fn composition(bytes: &[u8]) -> Result<Composition> {
    if bytes.get(..4) != Some(b"\0asm") {
        return Err("not a WebAssembly module".into());
    }
    let mut at = 8;
    let (mut imported, mut bodies, mut names, mut data) = (0u64, Vec::new(), BTreeMap::new(), 0);
    while at < bytes.len() {
        let id = bytes[at];
        at += 1;
        let size = leb(bytes, &mut at)? as usize;
        let end = at + size;
        let section = bytes.get(at..end).ok_or("a section runs past the end")?;
        let mut i = 0;
        match id {
            // Imports: module, field, kind, then the kind's description.
            2 => {
                for _ in 0..leb(section, &mut i)? {
                    name(section, &mut i)?;
                    name(section, &mut i)?;
                    let kind = section[i];
                    i += 1;
                    match kind {
                        0 => {
                            leb(section, &mut i)?;
                            imported += 1;
                        }
                        // Table: element type, then limits; memory: limits.
                        1 | 2 => {
                            i += usize::from(kind == 1);
                            let flags = section[i];
                            i += 1;
                            leb(section, &mut i)?;
                            if flags & 1 == 1 {
                                leb(section, &mut i)?;
                            }
                        }
                        // Global: value type and mutability.
                        3 => i += 2,
                        // Tag: attribute and type.
                        _ => {
                            i += 1;
                            leb(section, &mut i)?;
                        }
                    }
                }
            }
            10 => {
                let count = leb(section, &mut i)?;
                for index in 0..count {
                    let start = i;
                    let len = leb(section, &mut i)? as usize;
                    i += len;
                    bodies.push((imported + index, (i - start) as u64));
                }
            }
            11 => data = size as u64,
            0 if name(section, &mut i)? == b"name" => {
                while i < section.len() {
                    let kind = section[i];
                    i += 1;
                    let len = leb(section, &mut i)? as usize;
                    let next = i + len;
                    if kind == 1 {
                        for _ in 0..leb(section, &mut i)? {
                            let index = leb(section, &mut i)?;
                            let text = String::from_utf8_lossy(name(section, &mut i)?);
                            names.insert(index, text.into_owned());
                        }
                    }
                    i = next;
                }
            }
            _ => {}
        }
        at = end;
    }
    let mut code_by_crate = BTreeMap::new();
    for (index, size) in bodies {
        let name = names.get(&index);
        // Type descriptors that wasm-bindgen reads and removes: never shipped.
        if name.is_some_and(|n| n.starts_with("__wbindgen_describe")) {
            continue;
        }
        let krate = name.map_or("(no name)".into(), |n| crate_of(n));
        *code_by_crate.entry(krate).or_insert(0) += size;
    }
    Ok(Composition {
        code_by_crate,
        data,
    })
}

/// Rust's legacy escapes in symbol names (`$LT$` for `<`...), and `..` for `::`.
fn unescape(ident: &str) -> String {
    let mut out = ident.trim_start_matches('_').to_string();
    for (from, to) in [
        ("$LT$", "<"),
        ("$GT$", ">"),
        ("$u20$", " "),
        ("$RF$", "&"),
        ("$BP$", "*"),
        ("$C$", ","),
        ("$u5b$", "["),
        ("$u5d$", "]"),
        ("$u7b$", "{"),
        ("$u7d$", "}"),
        ("$u27$", "'"),
        ("..", "::"),
    ] {
        out = out.replace(from, to);
    }
    out
}

/// The crate a function belongs to, from its name: the first path segment of a legacy
/// mangled name (`_ZN4core3fmt5write...`) or a demangled one; for a trait method
/// `<Type as Trait>::f`, the type's crate, or the trait's when the type is generic or
/// primitive (`<T as Trait>`, `<f32 as Trait>`).
pub fn crate_of(symbol: &str) -> String {
    if let Some(v0) = symbol.strip_prefix("_R") {
        return v0_crate(v0).unwrap_or_else(|| symbol.to_string());
    }
    let first = match symbol.strip_prefix("_ZN") {
        Some(rest) => {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let len: usize = digits.parse().unwrap_or(0);
            unescape(rest.get(digits.len()..digits.len() + len).unwrap_or(rest))
        }
        None => symbol.to_string(),
    };
    let segment = |path: &str| -> Option<String> {
        let path = path
            .trim_start_matches(['<', '&', '*', '['])
            .trim_start_matches("const ")
            .trim_start_matches("mut ")
            .trim_start_matches("dyn ");
        let head = path.split(['<', ' ', ',', ';', ']', '>']).next()?;
        head.contains("::")
            .then(|| head.split("::").next().unwrap_or(head).to_string())
    };
    let Some(inner) = first.strip_prefix('<') else {
        return segment(&first).unwrap_or(first);
    };
    match inner.split_once(" as ") {
        Some((ty, tr)) => segment(ty)
            .or_else(|| segment(tr))
            .unwrap_or_else(|| "(generic)".into()),
        None => segment(inner).unwrap_or_else(|| "(generic)".into()),
    }
}

/// The first crate root of a v0 mangled name (`_R...Cs<hash>_4core...`): the path's
/// innermost crate, which for a generic function instantiated elsewhere is the crate
/// that defines it.
fn v0_crate(v0: &str) -> Option<String> {
    let bytes = v0.as_bytes();
    let mut at = 0;
    while at + 1 < bytes.len() {
        if bytes[at] == b'C' {
            let mut i = at + 1;
            // An optional disambiguator `s<base-62>_`.
            if bytes.get(i) == Some(&b's') {
                while i < bytes.len() && bytes[i] != b'_' {
                    i += 1;
                }
                i += 1;
            }
            let digits = bytes[i.min(bytes.len())..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if digits > 0 {
                let len: usize = v0[i..i + digits].parse().ok()?;
                return v0.get(i + digits..i + digits + len).map(str::to_string);
            }
        }
        at += 1;
    }
    None
}

/// The part of the product a crate serves, for the summary table.
pub fn area(krate: &str) -> &'static str {
    match krate {
        "app" => "the studio's own code (app)",
        "worker" => "the worker's own code",
        "engine" => "engine",
        k if k.starts_with("candle") || k.starts_with("gemm") => "candle and gemm (CPU tensors)",
        "half" | "safetensors" | "pulp" | "dyn_stack" | "seq_macro" | "num_traits" => {
            "candle and gemm (CPU tensors)"
        }
        k if k.starts_with("wgpu") || k == "naga" => "wgpu (WebGPU)",
        k if k.starts_with("regex")
            || k.starts_with("unicode")
            || matches!(
                k,
                "tokenizers" | "fancy_regex" | "aho_corasick" | "onig" | "esaxx_rs" | "monostate"
            ) =>
        {
            "tokenizer (tokenizers, regex)"
        }
        k if k.starts_with("leptos")
            || matches!(
                k,
                "tachys"
                    | "reactive_graph"
                    | "reactive_stores"
                    | "any_spawner"
                    | "or_poisoned"
                    | "send_wrapper"
                    | "throw_error"
                    | "server_fn"
                    | "hydration_context"
                    | "oco_ref"
                    | "next_tuple"
                    | "either_of"
                    | "slotmap"
            ) =>
        {
            "leptos (UI)"
        }
        k if k.starts_with("web_sys")
            || k.starts_with("js_sys")
            || k.starts_with("wasm_bindgen")
            || k.starts_with("__wbg")
            || k.starts_with("__wbindgen") =>
        {
            "wasm-bindgen, js-sys, web-sys"
        }
        k if k.starts_with("serde") => "serde, serde_json",
        "core" | "alloc" | "std" | "compiler_builtins" | "dlmalloc" | "hashbrown" => {
            "Rust's standard library"
        }
        _ => "other",
    }
}

/// The report for `files`, as Markdown tables.
pub fn report(files: &[(PathBuf, Composition, Option<u64>)]) -> String {
    let mut out = String::new();
    for (path, c, shipped) in files {
        let code = c.code().max(1);
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into());
        let _ = writeln!(
            out,
            "\n### {name}: {:.2} MB of code, {:.2} MB of data{}\n",
            c.code() as f64 / 1e6,
            c.data as f64 / 1e6,
            shipped.map_or(String::new(), |s| format!(
                " (shipped after wasm-bindgen and wasm-opt: {:.2} MB)",
                s as f64 / 1e6
            ))
        );
        let mut areas: BTreeMap<&str, u64> = BTreeMap::new();
        for (krate, size) in &c.code_by_crate {
            *areas.entry(area(krate)).or_insert(0) += size;
        }
        let mut areas: Vec<_> = areas.into_iter().collect();
        areas.sort_by_key(|b| std::cmp::Reverse(b.1));
        out.push_str("| part | code (kB) | share |\n|---|---:|---:|\n");
        for (area, size) in areas {
            let _ = writeln!(
                out,
                "| {area} | {} | {:.1}% |",
                size / 1000,
                100.0 * size as f64 / code as f64
            );
        }
        let mut crates: Vec<_> = c.code_by_crate.iter().collect();
        crates.sort_by(|a, b| b.1.cmp(a.1));
        let others: Vec<String> = crates
            .iter()
            .filter(|(k, _)| area(k) == "other")
            .take(12)
            .map(|(k, size)| format!("{k} {} kB", *size / 1000))
            .collect();
        if !others.is_empty() {
            let _ = writeln!(out, "\nOther, largest first: {}.", others.join(", "));
        }
        out.push_str("\n| largest crates | code (kB) | share |\n|---|---:|---:|\n");
        for (krate, size) in crates.into_iter().take(15) {
            let _ = writeln!(
                out,
                "| {krate} | {} | {:.1}% |",
                size / 1000,
                100.0 * *size as f64 / code as f64
            );
        }
    }
    out
}

pub fn run(args: &[String]) -> Result<()> {
    let built = root().join("target/wasm32-unknown-unknown/release");
    let files: Vec<PathBuf> = match args.is_empty() {
        true => ["app", "worker"]
            .iter()
            .map(|n| built.join(format!("{n}.wasm")))
            .collect(),
        false => args.iter().map(PathBuf::from).collect(),
    };
    let mut read = Vec::new();
    for path in files {
        let bytes = std::fs::read(&path)
            .map_err(|e| format!("{}: {e} (run `cargo xtask build` first)", path.display()))?;
        let shipped = path
            .file_stem()
            .and_then(|stem| {
                std::fs::metadata(root().join(format!("dist/{}_bg.wasm", stem.to_string_lossy())))
                    .ok()
            })
            .map(|m| m.len());
        read.push((
            path.clone(),
            composition(&bytes).map_err(|e| format!("{}: {e}", path.display()))?,
            shipped,
        ));
    }
    print!("{}", report(&read));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crates_are_read_from_mangled_and_trait_names() {
        assert_eq!(crate_of("_ZN4core3fmt5write17h0123456789abcdefE"), "core");
        assert_eq!(
            crate_of("_ZN71_$LT$candle_core..cpu_backend..CpuStorage$u20$as$u20$candle_core..backend..BackendStorage$GT$6matmul17h0E"),
            "candle_core"
        );
        // A generic or primitive type: the trait's crate.
        assert_eq!(
            crate_of("_ZN50_$LT$T$u20$as$u20$tachys..view..any_view..IntoAny$GT$8into_any17h0E"),
            "tachys"
        );
        assert_eq!(
            crate_of("_ZN42_$LT$$RF$T$u20$as$u20$core..fmt..Debug$GT$3fmt17h0E"),
            "core"
        );
        assert_eq!(crate_of("engine::gpu::matrix::Matrix::upload"), "engine");
        assert_eq!(crate_of("memcpy"), "memcpy");
        assert_eq!(
            crate_of(
                "_RINvNtNtCsgXGp5Oqx2Ny_4core3fmt5float32float_to_decimal_common_shortestdEB6_"
            ),
            "core"
        );
    }

    /// A module built by hand: one imported function, two bodies (3 and 5 bytes with
    /// their length prefixes), names for both, and 4 bytes of data.
    #[test]
    fn a_module_is_split_by_crate() {
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        let section = |m: &mut Vec<u8>, id: u8, body: &[u8]| {
            m.push(id);
            m.push(body.len() as u8);
            m.extend_from_slice(body);
        };
        // Import "e"."f", a function of type 0.
        section(&mut m, 2, b"\x01\x01e\x01f\x00\x00");
        section(&mut m, 10, b"\x02\x02\x00\x0b\x04\x00\x01\x01\x0b");
        section(&mut m, 11, b"abcd");
        let names = b"\x04name\x01\x0e\x02\x01\x05a::f1\x02\x04b::g";
        section(&mut m, 0, names);
        let c = composition(&m).unwrap();
        assert_eq!(c.data, 4);
        assert_eq!(c.code_by_crate.get("a"), Some(&3));
        assert_eq!(c.code_by_crate.get("b"), Some(&5));
        assert!(composition(b"nope").is_err());
    }
}
