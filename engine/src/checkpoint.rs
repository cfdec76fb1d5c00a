//! A Hugging Face checkpoint folder as a visitor opens it in the studio: `config.json`,
//! `tokenizer.json`, and the weights as one `model.safetensors` or as shards listed in
//! `model.safetensors.index.json`.
//!
//! The files come from strangers and can be large, so everything is checked from the
//! small parts first ([`CheckpointPlan::check`]): the config, the index, and each
//! safetensors file's header (read from the file's first bytes, [`SafetensorsHeader`]),
//! before any weight is read. A header that claims more bytes than its file holds, a
//! tensor missing or of the wrong shape, or a storage type the studio cannot widen is
//! refused with its name, and the plan says how much memory the model will take.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::ModelConfig;
use crate::error::{EngineError, Result};
use crate::weights::tensor_layout;

/// The largest safetensors header the studio reads (the format's own limit is 100 MB;
/// real headers are kilobytes): a larger claim is refused before allocating for it.
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// The name of a single-file checkpoint's weights.
pub const SINGLE_FILE: &str = "model.safetensors";

/// The name of the shard index of a sharded checkpoint.
pub const SHARD_INDEX: &str = "model.safetensors.index.json";

/// A tensor's storage type, of those the studio widens to f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// 32-bit float.
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    Bf16,
}

impl Storage {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "F32" => Some(Storage::F32),
            "F16" => Some(Storage::F16),
            "BF16" => Some(Storage::Bf16),
            _ => None,
        }
    }

    /// Bytes per value.
    pub fn size(self) -> u64 {
        match self {
            Storage::F32 => 4,
            Storage::F16 | Storage::Bf16 => 2,
        }
    }

    /// Little-endian stored values widened to f32.
    pub fn widen(self, bytes: &[u8]) -> Vec<f32> {
        match self {
            Storage::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Storage::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Storage::Bf16 => bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        }
    }
}

/// One tensor as a safetensors header describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    /// Storage type (`None`: one the studio does not read, e.g. I64; it is an error
    /// only for a tensor the model needs).
    pub storage: Option<Storage>,
    /// The type's name as written, for messages.
    pub dtype: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Byte range within the data section.
    pub offsets: (u64, u64),
}

/// The header of a safetensors file: its tensors, where its data starts, and how long
/// the file is. Parsed from the file's first `8 + N` bytes; every range is checked
/// against the file's length.
#[derive(Debug, Clone, PartialEq)]
pub struct SafetensorsHeader {
    /// Tensors by name.
    pub tensors: BTreeMap<String, TensorEntry>,
    /// Byte offset of the data section (`8 + N`).
    pub data_start: u64,
    /// The whole file's length.
    pub file_len: u64,
}

/// The header as JSON: a name -> entry map, plus optional `__metadata__`.
#[derive(Deserialize)]
struct RawEntry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: (u64, u64),
}

impl SafetensorsHeader {
    /// How many bytes to read from the start of a file of `file_len` bytes to have its
    /// whole header, from its first 8 bytes.
    pub fn bytes_needed(first: &[u8], file_len: u64) -> std::result::Result<u64, String> {
        let len: [u8; 8] = first
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or("shorter than a safetensors header (8 bytes)")?;
        let n = u64::from_le_bytes(len);
        if n > MAX_HEADER_BYTES {
            return Err(format!(
                "its header claims {n} bytes (more than {MAX_HEADER_BYTES}): not a safetensors \
                 file, or a damaged one"
            ));
        }
        let needed = 8 + n;
        if needed > file_len {
            return Err(format!(
                "its header claims {n} bytes, but the file holds {file_len}: truncated?"
            ));
        }
        Ok(needed)
    }

    /// Parses the header from `prefix`, the file's first bytes (at least
    /// [`SafetensorsHeader::bytes_needed`] of them), of a file of `file_len` bytes.
    pub fn parse(prefix: &[u8], file_len: u64) -> std::result::Result<Self, String> {
        let needed = Self::bytes_needed(prefix, file_len)?;
        let json = prefix
            .get(8..needed as usize)
            .ok_or("the header was not read whole")?;
        let raw: BTreeMap<String, serde_json::Value> =
            serde_json::from_slice(json).map_err(|e| format!("its header is not JSON ({e})"))?;
        let data_len = file_len - needed;
        let mut tensors = BTreeMap::new();
        for (name, value) in raw {
            if name == "__metadata__" {
                continue;
            }
            let entry: RawEntry = serde_json::from_value(value)
                .map_err(|e| format!("tensor `{name}` in its header: {e}"))?;
            let storage = Storage::parse(&entry.dtype);
            let (start, end) = entry.data_offsets;
            if start > end || end > data_len {
                return Err(format!(
                    "tensor `{name}` lies at bytes {start}..{end}, past the {data_len} bytes of \
                     data: truncated?"
                ));
            }
            // Shapes multiply in u128, so a header claiming huge dimensions cannot
            // overflow into a small, plausible size.
            let values = entry
                .shape
                .iter()
                .try_fold(1u128, |n, &d| n.checked_mul(d as u128));
            if let Some(storage) = storage {
                let bytes = values.and_then(|v| v.checked_mul(storage.size() as u128));
                if bytes != Some((end - start) as u128) {
                    return Err(format!(
                        "tensor `{name}` has shape {:?} of {} but {} bytes",
                        entry.shape,
                        entry.dtype,
                        end - start
                    ));
                }
            }
            tensors.insert(
                name,
                TensorEntry {
                    storage,
                    dtype: entry.dtype,
                    shape: entry.shape,
                    offsets: (start, end),
                },
            );
        }
        Ok(SafetensorsHeader {
            tensors,
            data_start: needed,
            file_len,
        })
    }
}

/// A checkpoint's tensors read one at a time, widened to f32: each file's header, and
/// `read(file, start, end)` for a byte range of file number `file`. Only one tensor's
/// bytes are copied at a time, so a caller that holds the files elsewhere (a worker's
/// transferred buffers, a page's `Blob`s, a GPU upload) never holds a second whole copy.
pub struct TensorReader<R: ReadRange> {
    headers: Vec<SafetensorsHeader>,
    read: R,
}

/// `read(file, start, end)`: bytes `start..end` of file number `file`.
pub trait ReadRange: FnMut(usize, u64, u64) -> Result<Vec<u8>> {}

impl<F: FnMut(usize, u64, u64) -> Result<Vec<u8>>> ReadRange for F {}

impl<R: ReadRange> TensorReader<R> {
    /// A reader over files with these headers (in the order `read` numbers them).
    pub fn new(headers: Vec<SafetensorsHeader>, read: R) -> Self {
        TensorReader { headers, read }
    }

    /// Tensor `name` from the first file that has it, checked against `shape`, widened
    /// to f32; a NaN or infinite value is an error (it would make every output NaN).
    pub fn values(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let (file, entry) = self
            .headers
            .iter()
            .enumerate()
            .find_map(|(i, h)| Some((i, h.tensors.get(name)?)))
            .ok_or_else(|| {
                EngineError::Weights(format!(
                    "missing tensor `{name}` (Hugging Face Llama naming expected)"
                ))
            })?;
        if entry.shape != shape {
            return Err(EngineError::Shape {
                name: name.to_string(),
                expected: shape.to_vec(),
                found: entry.shape.clone(),
            });
        }
        let storage = entry.storage.ok_or_else(|| {
            EngineError::Weights(format!(
                "tensor `{name}` is stored as {}; only F32, F16 and BF16 are supported",
                entry.dtype
            ))
        })?;
        let start = self.headers[file].data_start + entry.offsets.0;
        let end = self.headers[file].data_start + entry.offsets.1;
        let bytes = (self.read)(file, start, end)?;
        if bytes.len() as u64 != end - start {
            return Err(EngineError::Weights(format!(
                "tensor `{name}`: read {} of its {} bytes",
                bytes.len(),
                end - start
            )));
        }
        let values = storage.widen(&bytes);
        let non_finite = values.iter().filter(|v| !v.is_finite()).count();
        if non_finite > 0 {
            return Err(EngineError::Weights(format!(
                "tensor `{name}` holds {non_finite} NaN or infinite values"
            )));
        }
        Ok(values)
    }
}

/// A reader over safetensors files held in memory whole.
pub fn reader_over<'a>(files: &'a [&'a [u8]]) -> Result<TensorReader<impl ReadRange + 'a>> {
    let headers = files
        .iter()
        .map(|bytes| {
            SafetensorsHeader::parse(bytes, bytes.len() as u64)
                .map_err(|e| EngineError::Weights(format!("not a valid safetensors file ({e})")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(TensorReader::new(headers, move |file, start, end| {
        Ok(files[file][start as usize..end as usize].to_vec())
    }))
}

/// `model.safetensors.index.json`: which shard holds each tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardIndex {
    /// Tensor name -> shard file name.
    pub weight_map: BTreeMap<String, String>,
}

impl ShardIndex {
    /// Parses an index; every shard must be a plain file name (no folders).
    pub fn parse(bytes: &[u8]) -> std::result::Result<Self, String> {
        #[derive(Deserialize)]
        struct Raw {
            weight_map: BTreeMap<String, String>,
        }
        let raw: Raw = serde_json::from_slice(bytes)
            .map_err(|e| format!("{SHARD_INDEX} is not a shard index ({e})"))?;
        if let Some(bad) = raw
            .weight_map
            .values()
            .find(|f| f.is_empty() || f.contains(['/', '\\']) || f.as_str() == "..")
        {
            return Err(format!(
                "{SHARD_INDEX} names a shard `{bad}` that is not a file name"
            ));
        }
        Ok(ShardIndex {
            weight_map: raw.weight_map,
        })
    }

    /// The shard files, each once, in name order.
    pub fn files(&self) -> Vec<String> {
        each_once(self.weight_map.values().map(String::as_str))
    }
}

/// Where each tensor of a model is, and what loading it will take. Built from the small
/// parts of a checkpoint only.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointPlan {
    /// The model's configuration, checked.
    pub config: ModelConfig,
    /// Each needed tensor's file, in [`tensor_layout`] order.
    pub tensor_files: Vec<(String, String)>,
    /// Bytes of the weight files to read.
    pub file_bytes: u64,
    /// Bytes of the weights once widened to f32 (what the engine holds).
    pub f32_bytes: u64,
}

impl CheckpointPlan {
    /// Checks a checkpoint from its config and the headers of its weight files (`(file
    /// name, header)`; with an index, only the files it names are consulted). Every
    /// missing or misshapen tensor is named (the first few, and how many in all).
    pub fn check(
        config_json: &[u8],
        index: Option<&ShardIndex>,
        headers: &[(String, SafetensorsHeader)],
    ) -> Result<Self> {
        let config = ModelConfig::from_json(config_json)?;
        let header_of = |file: &str| headers.iter().find(|(name, _)| name == file);
        let mut problems = Vec::new();
        let mut tensor_files = Vec::new();
        let mut f32_bytes = 0u64;
        for (name, shape) in tensor_layout(&config) {
            let file = match index {
                Some(index) => match index.weight_map.get(&name) {
                    Some(file) => file.clone(),
                    None => {
                        problems.push(format!("`{name}` is not in {SHARD_INDEX}"));
                        continue;
                    }
                },
                None => match headers.iter().find(|(_, h)| h.tensors.contains_key(&name)) {
                    Some((file, _)) => file.clone(),
                    None => {
                        problems.push(format!("`{name}` is missing"));
                        continue;
                    }
                },
            };
            let Some((_, header)) = header_of(&file) else {
                problems.push(format!("`{name}` is in `{file}`, which was not given"));
                continue;
            };
            let Some(entry) = header.tensors.get(&name) else {
                problems.push(format!("`{name}` is missing (from `{file}`)"));
                continue;
            };
            if entry.shape != shape {
                problems.push(format!(
                    "`{name}` has shape {:?}; the config implies {shape:?}",
                    entry.shape
                ));
                continue;
            }
            if entry.storage.is_none() {
                problems.push(format!(
                    "`{name}` is stored as {}; only F32, F16 and BF16 are read",
                    entry.dtype
                ));
                continue;
            }
            f32_bytes += 4 * shape.iter().product::<usize>() as u64;
            tensor_files.push((name, file));
        }
        if !problems.is_empty() {
            let shown: Vec<&str> = problems.iter().take(4).map(String::as_str).collect();
            let more = problems.len().saturating_sub(shown.len());
            return Err(EngineError::Weights(format!(
                "{}{}",
                shown.join("; "),
                if more > 0 {
                    format!("; and {more} more")
                } else {
                    String::new()
                }
            )));
        }
        let file_bytes = each_once(tensor_files.iter().map(|(_, f)| f.as_str()))
            .iter()
            .filter_map(|f| header_of(f))
            .map(|(_, h)| h.file_len)
            .sum();
        Ok(CheckpointPlan {
            config,
            tensor_files,
            file_bytes,
            f32_bytes,
        })
    }

    /// The weight files to read, each once, in name order.
    pub fn files(&self) -> Vec<String> {
        each_once(self.tensor_files.iter().map(|(_, f)| f.as_str()))
    }
}

/// The name of the tokenizer's settings file, where a checkpoint has one.
pub const TOKENIZER_CONFIG: &str = "tokenizer_config.json";

/// A checkpoint's `config.json` as the studio reads it: with `bos_token_id` present
/// exactly when the checkpoint's own tokenizer starts every text with that token.
///
/// In Hugging Face's files `bos_token_id` only names the token; whether a prompt starts
/// with it is the tokenizer's business: `add_bos_token` in `tokenizer_config.json` when
/// present, else a `TemplateProcessing` post-processor in `tokenizer.json` whose single-
/// sequence template starts with a special token (Llama 2, TinyLlama, Llama 3), else
/// none (SmolLM's GPT-2-style tokenizer adds nothing). In the studio, `bos_token_id`
/// means "every prompt starts with it" (its models were trained so), so the config is
/// rewritten to say what the tokenizer does. A config written by the studio's trainer
/// (it has `position_embedding`) already means that and is kept.
pub fn studio_config(
    config_json: &[u8],
    tokenizer_json: &[u8],
    tokenizer_config: Option<&[u8]>,
) -> std::result::Result<Vec<u8>, String> {
    use serde_json::Value;
    let parse = |bytes: &[u8], what: &str| {
        serde_json::from_slice::<Value>(bytes).map_err(|e| format!("{what} is not JSON ({e})"))
    };
    let mut config = parse(config_json, "config.json")?;
    let map = config
        .as_object_mut()
        .ok_or("config.json is not a JSON object")?;
    if map.contains_key("position_embedding") {
        return Ok(config_json.to_vec());
    }
    let tokenizer = parse(tokenizer_json, "tokenizer.json")?;
    // A token's id by its text: the added (special) tokens first, then the vocabulary.
    let id_of = |text: &str| -> Option<u64> {
        let added = tokenizer["added_tokens"].as_array().and_then(|list| {
            list.iter()
                .find(|t| t["content"].as_str() == Some(text))
                .and_then(|t| t["id"].as_u64())
        });
        added.or_else(|| tokenizer["model"]["vocab"][text].as_u64())
    };
    let settings = tokenizer_config
        .map(|bytes| parse(bytes, TOKENIZER_CONFIG))
        .transpose()?;
    let named_bos = settings.as_ref().and_then(|s| match &s["bos_token"] {
        Value::String(text) => Some(text.clone()),
        other => other["content"].as_str().map(str::to_string),
    });
    let first = match settings.as_ref().and_then(|s| s["add_bos_token"].as_bool()) {
        Some(false) => None,
        Some(true) => map
            .get("bos_token_id")
            .and_then(Value::as_u64)
            .or_else(|| named_bos.as_deref().and_then(id_of)),
        None => template_start(&tokenizer["post_processor"]).and_then(|text| {
            let ids = &tokenizer["post_processor"]["special_tokens"][text.as_str()]["ids"];
            ids[0].as_u64().or_else(|| id_of(&text))
        }),
    };
    match first {
        Some(id) => map.insert("bos_token_id".into(), id.into()),
        None => map.remove("bos_token_id"),
    };
    serde_json::to_vec(&config).map_err(|e| e.to_string())
}

/// The special token a `TemplateProcessing` post-processor (alone or inside a
/// `Sequence`) puts before a single text, if any.
fn template_start(processor: &serde_json::Value) -> Option<String> {
    match processor["type"].as_str()? {
        "TemplateProcessing" => processor["single"][0]["SpecialToken"]["id"]
            .as_str()
            .map(str::to_string),
        "Sequence" => processor["processors"]
            .as_array()?
            .iter()
            .find_map(template_start),
        _ => None,
    }
}

/// File names, each once, in name order.
fn each_once<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    names
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `bos_token_id` after [`studio_config`], for a config naming token 1 and a
    /// tokenizer whose `<s>` is 1, with the given post-processor and settings.
    fn first_token(post_processor: &str, settings: Option<&str>, config: &str) -> Option<u64> {
        let tokenizer = format!(
            r#"{{"added_tokens": [{{"id": 1, "content": "<s>"}}], "model": {{"vocab": {{"a": 7}}}},
                "post_processor": {post_processor}}}"#
        );
        let out = studio_config(
            config.as_bytes(),
            tokenizer.as_bytes(),
            settings.map(str::as_bytes),
        )
        .unwrap();
        serde_json::from_slice::<serde_json::Value>(&out).unwrap()["bos_token_id"].as_u64()
    }

    #[test]
    fn the_first_token_is_what_the_checkpoint_tokenizer_adds() {
        let names_it = r#"{"bos_token_id": 1, "hidden_size": 64}"#;
        let llama2 = r#"{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>",
            "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}"#;
        let llama3 =
            format!(r#"{{"type": "Sequence", "processors": [{{"type": "ByteLevel"}}, {llama2}]}}"#);
        // Llama 2 / TinyLlama and Llama 3: the template adds it.
        assert_eq!(first_token(llama2, None, names_it), Some(1));
        assert_eq!(first_token(&llama3, None, names_it), Some(1));
        // SmolLM: a GPT-2-style tokenizer adds nothing, whatever the config names.
        assert_eq!(
            first_token(r#"{"type": "ByteLevel"}"#, None, names_it),
            None
        );
        assert_eq!(first_token("null", None, names_it), None);
        // tokenizer_config.json decides when it says: off, or on with the token by name.
        assert_eq!(
            first_token(llama2, Some(r#"{"add_bos_token": false}"#), names_it),
            None
        );
        let by_name = r#"{"add_bos_token": true, "bos_token": {"content": "<s>"}}"#;
        assert_eq!(
            first_token("null", Some(by_name), r#"{"hidden_size": 64}"#),
            Some(1)
        );
        // The studio's own files already mean "every prompt starts with it".
        let ours = r#"{"bos_token_id": 1, "position_embedding": "none"}"#;
        assert_eq!(first_token("null", None, ours), Some(1));
        assert!(studio_config(b"[]", b"{}", None).is_err());
    }

    /// A safetensors file's bytes with the given tensors (name, dtype, shape, byte len).
    fn file(tensors: &[(&str, &str, &[usize], usize)]) -> Vec<u8> {
        let mut header = serde_json::Map::new();
        let mut at = 0;
        for (name, dtype, shape, len) in tensors {
            header.insert(
                name.to_string(),
                serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [at, at + len]}),
            );
            at += len;
        }
        header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
        let json = serde_json::to_vec(&header).unwrap();
        let mut out = (json.len() as u64).to_le_bytes().to_vec();
        out.extend(json);
        out.extend(vec![0u8; at]);
        out
    }

    #[test]
    fn a_header_is_read_from_the_first_bytes() {
        let bytes = file(&[("a", "BF16", &[2, 3], 12), ("b", "F32", &[4], 16)]);
        let needed = SafetensorsHeader::bytes_needed(&bytes, bytes.len() as u64).unwrap();
        let header =
            SafetensorsHeader::parse(&bytes[..needed as usize], bytes.len() as u64).unwrap();
        assert_eq!(header.data_start, needed);
        assert_eq!(header.tensors["a"].storage, Some(Storage::Bf16));
        assert_eq!(header.tensors["b"].offsets, (12, 28));
        assert!(!header.tensors.contains_key("__metadata__"));
    }

    #[test]
    fn damaged_headers_are_refused_before_allocating() {
        let bytes = file(&[("a", "F32", &[4], 16)]);
        let len = bytes.len() as u64;
        // Truncated data: the tensor's range runs past the end.
        let cut = &bytes[..bytes.len() - 4];
        let e = SafetensorsHeader::parse(cut, cut.len() as u64).unwrap_err();
        assert!(e.contains("truncated"), "{e}");
        // A header length far beyond the file, and one beyond the cap.
        let mut huge = bytes.clone();
        huge[..8].copy_from_slice(&(MAX_HEADER_BYTES + 1).to_le_bytes());
        assert!(SafetensorsHeader::bytes_needed(&huge, len)
            .unwrap_err()
            .contains("claims"));
        huge[..8].copy_from_slice(&(len * 2).to_le_bytes());
        assert!(SafetensorsHeader::bytes_needed(&huge, len)
            .unwrap_err()
            .contains("truncated"));
        assert!(SafetensorsHeader::bytes_needed(&bytes[..5], len).is_err());
        // Shape and byte length disagree; a shape that overflows is no escape.
        let wrong = file(&[("a", "F32", &[5], 16)]);
        let e = SafetensorsHeader::parse(&wrong, wrong.len() as u64).unwrap_err();
        assert!(e.contains("shape [5]"), "{e}");
        let vast = file(&[("a", "F32", &[usize::MAX, usize::MAX, 4], 16)]);
        assert!(SafetensorsHeader::parse(&vast, vast.len() as u64).is_err());
        // Not JSON.
        let mut junk = 4u64.to_le_bytes().to_vec();
        junk.extend(b"{{{{");
        assert!(SafetensorsHeader::parse(&junk, junk.len() as u64)
            .unwrap_err()
            .contains("not JSON"));
    }

    #[test]
    fn an_index_names_plain_files() {
        let index = ShardIndex::parse(
            br#"{"metadata": {"total_size": 1}, "weight_map": {"a": "m-2.safetensors", "b": "m-1.safetensors", "c": "m-2.safetensors"}}"#,
        )
        .unwrap();
        assert_eq!(index.files(), ["m-1.safetensors", "m-2.safetensors"]);
        for bad in [
            r#"{"weight_map": {"a": "../x.safetensors"}}"#,
            r#"{"weight_map": {"a": ""}}"#,
            r#"{"weights": {}}"#,
        ] {
            assert!(ShardIndex::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
