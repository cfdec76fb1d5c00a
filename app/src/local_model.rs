//! A model opened from the visitor's own disk: a Hugging Face checkpoint folder
//! (`config.json`, `tokenizer.json`, and `model.safetensors` or the shards that
//! `model.safetensors.index.json` lists). The files are read by the page and never
//! leave the machine.
//!
//! Everything that can be refused is refused from the small parts first: the config,
//! the tokenizer, the index, and each weight file's header (its first bytes, read with
//! `Blob.slice`), checked by `engine::checkpoint::CheckpointPlan`; then the memory the
//! model will take is compared with what a tab can hold. Only then are the weights read,
//! with progress. The model then joins the page's list under an id starting `local-`,
//! which a URL names like any other; opening such a link without the files asks for
//! them ([`missing_local_models`]).

use std::rc::Rc;
use std::sync::Arc;

use engine::checkpoint::{
    studio_config, CheckpointPlan, SafetensorsHeader, ShardIndex, SHARD_INDEX, SINGLE_FILE,
    TOKENIZER_CONFIG,
};
use engine::{ModelConfig, TextTokenizer};
use js_sys::Uint8Array;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, File};

use crate::error::{js_message, AppError};
use crate::format::{human_bytes, human_count};
use crate::manifest::{read_stream, FileEntry, ModelEntry, ModelFiles};
use crate::model_store::DownloadedModel;
use crate::pause::next_frame;

/// The id prefix of a model opened from disk (shipped ids never start with it).
pub const LOCAL_PREFIX: &str = "local-";

/// The most WebAssembly memory a model may need in one place: the page holds the files
/// (and one tensor widened at a time on its way to the GPU), the CPU worker holds the
/// weights in 32 bits; each has its own memory, which ends at 4 GiB, less what the
/// rest of the page or worker needs.
pub const MEMORY_CAP: u64 = 3 << 30;

/// The files of a checkpoint, sorted into their roles by name (`T`: a file handle in
/// the browser, a name in tests).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointFiles<T> {
    /// What to call the model: the folder's name, if a folder was given.
    pub folder: Option<String>,
    /// `config.json`.
    pub config: T,
    /// `tokenizer.json`.
    pub tokenizer: T,
    /// `tokenizer_config.json`, where given (it says whether prompts start with the
    /// beginning-of-sequence token).
    pub tokenizer_config: Option<T>,
    /// `model.safetensors.index.json`, for a sharded checkpoint.
    pub index: Option<T>,
    /// Every `.safetensors` file, by name.
    pub safetensors: Vec<(String, T)>,
}

impl<T: Clone> CheckpointFiles<T> {
    /// Sorts files given as `(path, handle)`, the path relative to a chosen folder
    /// (`SmolLM-135M/config.json`) or a bare name. Files in subfolders of the checkpoint
    /// (`onnx/...`) are ignored; a name given twice keeps the shallower one.
    pub fn sort(files: Vec<(String, T)>) -> Result<Self, String> {
        if files.is_empty() {
            return Err("no files were given".into());
        }
        let depth = |path: &str| path.matches('/').count();
        let shallowest = files.iter().map(|(p, _)| depth(p)).min().unwrap_or(0);
        let top: Vec<(String, T)> = files
            .iter()
            .filter(|(p, _)| depth(p) == shallowest)
            .map(|(p, f)| (p.rsplit('/').next().unwrap_or(p).to_string(), f.clone()))
            .collect();
        let folder = files
            .iter()
            .find(|(p, _)| depth(p) == shallowest && shallowest > 0)
            .map(|(p, _)| p.split('/').nth(shallowest - 1).unwrap_or("").to_string())
            .filter(|f| !f.is_empty());
        let find = |name: &str| top.iter().find(|(n, _)| n == name).map(|(_, f)| f.clone());
        let names: Vec<&str> = top.iter().map(|(n, _)| n.as_str()).collect();
        let missing = |what: &str| {
            format!(
                "no {what} among the files given ({}); a Hugging Face checkpoint folder has \
                 config.json, tokenizer.json and model.safetensors (or its shards with \
                 {SHARD_INDEX})",
                names.join(", ")
            )
        };
        let config = find("config.json").ok_or_else(|| missing("config.json"))?;
        let tokenizer = find("tokenizer.json").ok_or_else(|| missing("tokenizer.json"))?;
        let index = find(SHARD_INDEX);
        let tokenizer_config = find(TOKENIZER_CONFIG);
        let safetensors: Vec<(String, T)> = top
            .iter()
            .filter(|(n, _)| n.ends_with(".safetensors"))
            .cloned()
            .collect();
        if safetensors.is_empty() {
            return Err(missing(&format!("{SINGLE_FILE} or shards")));
        }
        Ok(CheckpointFiles {
            folder,
            config,
            tokenizer,
            tokenizer_config,
            index,
            safetensors,
        })
    }

    /// The weight files to read: those the index names (each must be given), or without
    /// an index `model.safetensors` if given, else every `.safetensors` file.
    pub fn weight_files(&self, index: Option<&ShardIndex>) -> Result<Vec<(String, T)>, String> {
        let given = |name: &str| self.safetensors.iter().find(|(n, _)| n == name).cloned();
        match index {
            Some(index) => index
                .files()
                .iter()
                .map(|name| {
                    given(name).ok_or_else(|| {
                        format!("{SHARD_INDEX} lists the shard {name}, which was not given")
                    })
                })
                .collect(),
            None => Ok(match given(SINGLE_FILE) {
                Some(single) => vec![single],
                None => self.safetensors.clone(),
            }),
        }
    }
}

/// The model's id and name on the page: from the folder's name, else the config's
/// `_name_or_path`, else "model".
pub fn local_identity(folder: Option<&str>, config_json: &[u8]) -> (String, String) {
    let from_config = serde_json::from_slice::<serde_json::Value>(config_json)
        .ok()
        .and_then(|v| v.get("_name_or_path")?.as_str().map(str::to_string))
        .and_then(|p| {
            p.trim_end_matches('/')
                .rsplit('/')
                .next()
                .map(str::to_string)
        });
    let name = folder
        .map(str::to_string)
        .or(from_config)
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "model".into());
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug: String = slug.trim_matches('-').chars().take(40).collect();
    let slug = if slug.is_empty() {
        "model".into()
    } else {
        slug
    };
    (
        format!("{LOCAL_PREFIX}{}", slug.trim_end_matches('-')),
        name,
    )
}

/// What loading the model will take, said before it is read, or why it will not fit.
pub fn memory_verdict(plan: &CheckpointPlan) -> Result<String, String> {
    let summary = format!(
        "{} parameters, {} to read and {} in 32-bit floats (on the GPU, or in the CPU \
         worker's memory)",
        human_count(plan.config.parameter_count() as u64),
        human_bytes(plan.file_bytes),
        human_bytes(plan.f32_bytes),
    );
    if plan.file_bytes.max(plan.f32_bytes) > MEMORY_CAP {
        return Err(format!(
            "{summary}: more than the {} that the page or its worker can hold \
             (WebAssembly memory ends at 4 GiB). Models up to about 800M parameters fit",
            human_bytes(MEMORY_CAP)
        ));
    }
    Ok(summary)
}

/// Where opening a model is, for the page to show.
#[derive(Debug, Clone, PartialEq)]
pub enum OpenStage {
    /// Reading and checking the config, the tokenizer and the weight files' headers.
    Checking,
    /// The checks passed: what the model is, and the weights being read.
    Reading {
        /// The model's name and what it needs ([`memory_verdict`]).
        summary: String,
        /// Bytes read so far.
        read: u64,
        /// Bytes to read.
        total: u64,
    },
}

/// A model read from disk, ready for the page's list and its download slot.
pub struct OpenedModel {
    /// Its entry for the page's list of models (id `local-...`).
    pub entry: ModelEntry,
    /// Its files, as if downloaded.
    pub download: Rc<DownloadedModel>,
    /// What was said before reading ([`memory_verdict`]).
    pub summary: String,
}

/// A file the visitor gave, with the path under the chosen folder.
pub fn file_path(file: &File) -> String {
    // `webkitRelativePath` (set for files of a chosen folder) is not in web-sys.
    js_sys::Reflect::get(file, &"webkitRelativePath".into())
        .ok()
        .and_then(|p| p.as_string())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| file.name())
}

/// Reads, checks and opens a checkpoint from `files`, reporting each stage.
pub async fn open_local(
    files: Vec<File>,
    on_stage: impl Fn(OpenStage),
) -> Result<OpenedModel, AppError> {
    on_stage(OpenStage::Checking);
    let named: Vec<(String, File)> = files.into_iter().map(|f| (file_path(&f), f)).collect();
    let sorted = CheckpointFiles::sort(named).map_err(AppError::Input)?;
    let tokenizer_json = read_whole(&sorted.tokenizer, "tokenizer.json").await?;
    let tokenizer_config = match &sorted.tokenizer_config {
        Some(file) => Some(read_whole(file, TOKENIZER_CONFIG).await?),
        None => None,
    };
    // Whether prompts start with the beginning-of-sequence token is the tokenizer's say.
    let config_json = studio_config(
        &read_whole(&sorted.config, "config.json").await?,
        &tokenizer_json,
        tokenizer_config.as_deref(),
    )
    .map_err(AppError::Input)?;
    let config = ModelConfig::from_json(&config_json)?;
    let index = match &sorted.index {
        Some(file) => Some(
            ShardIndex::parse(&read_whole(file, SHARD_INDEX).await?).map_err(AppError::Input)?,
        ),
        None => None,
    };
    let weight_files = sorted
        .weight_files(index.as_ref())
        .map_err(AppError::Input)?;
    let mut headers = Vec::new();
    for (name, file) in &weight_files {
        headers.push((name.clone(), read_header(name, file).await?));
    }
    let plan = CheckpointPlan::check(&config_json, index.as_ref(), &headers)?;
    let verdict = memory_verdict(&plan).map_err(AppError::Input)?;
    // The tokenizer is parsed before the weights are read: a bad one is refused early.
    next_frame().await;
    let tokenizer = TextTokenizer::from_json(&tokenizer_json)
        .map_err(|e| AppError::Input(format!("tokenizer.json cannot be loaded: {e}")))?;
    if tokenizer.vocab_size() > config.vocab_size {
        return Err(AppError::Input(format!(
            "tokenizer.json has {} tokens but config.json's vocab_size is {}",
            tokenizer.vocab_size(),
            config.vocab_size
        )));
    }
    let (id, name) = local_identity(sorted.folder.as_deref(), &config_json);
    let summary = format!("{name}: {verdict}");
    let needed = plan.files();
    let total = plan.file_bytes;
    let mut shards: Vec<Vec<u8>> = Vec::new();
    let mut done = 0u64;
    for (name, file) in weight_files.iter().filter(|(n, _)| needed.contains(n)) {
        let stream = file.stream();
        let size = file.size() as u64;
        let bytes = read_stream(&stream, size, |read| {
            on_stage(OpenStage::Reading {
                summary: summary.clone(),
                read: done + read,
                total,
            })
        })
        .await
        .map_err(|reason| AppError::Input(format!("{name} could not be read: {reason}")))?;
        done += bytes.len() as u64;
        shards.push(bytes);
    }
    let entry = ModelEntry {
        id,
        label: format!("{name} (local)"),
        trained: true,
        description: format!("Opened from this computer's disk: {summary}."),
        training_length: config.training_length(),
        parameters: config.parameter_count() as u64,
        files: ModelFiles {
            config: local_entry("config.json", config_json.len() as u64),
            weights: local_entry(
                needed.first().map_or(SINGLE_FILE, String::as_str),
                plan.file_bytes,
            ),
            tokenizer: local_entry("tokenizer.json", tokenizer_json.len() as u64),
        },
        trained_scheme: Some(config.trained_scheme().to_string()),
    };
    let download =
        DownloadedModel::with_tokenizer(entry.clone(), config_json, Arc::new(tokenizer), shards);
    Ok(OpenedModel {
        entry,
        download,
        summary,
    })
}

fn local_entry(path: &str, bytes: u64) -> FileEntry {
    FileEntry {
        path: path.into(),
        bytes,
        sha256: String::new(),
    }
}

/// A small file read whole.
async fn read_whole(file: &File, what: &str) -> Result<Vec<u8>, AppError> {
    read_range(file, 0, file.size() as u64)
        .await
        .map_err(|reason| AppError::Input(format!("{what} could not be read: {reason}")))
}

/// Bytes `start..end` of a file (`Blob.slice`: only those are read).
async fn read_range(blob: &Blob, start: u64, end: u64) -> Result<Vec<u8>, String> {
    let part = blob
        .slice_with_f64_and_f64(start as f64, end as f64)
        .map_err(|e| js_message(&e))?;
    let buffer = JsFuture::from(part.array_buffer())
        .await
        .map_err(|e| js_message(&e))?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// A safetensors file's header, from its first bytes only.
async fn read_header(name: &str, file: &File) -> Result<SafetensorsHeader, AppError> {
    let bad = |reason: String| AppError::Input(format!("{name}: {reason}"));
    let len = file.size() as u64;
    let first = read_range(file, 0, len.min(8)).await.map_err(bad)?;
    let needed = SafetensorsHeader::bytes_needed(&first, len).map_err(bad)?;
    let prefix = read_range(file, 0, needed).await.map_err(bad)?;
    SafetensorsHeader::parse(&prefix, len).map_err(bad)
}

/// The local models a set of series names that the page does not hold: a link made on
/// another visit, whose files the visitor must open again.
pub fn missing_local_models<'a>(
    series_models: impl Iterator<Item = &'a str>,
    known: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut missing: Vec<String> = Vec::new();
    for model in series_models {
        if model.starts_with(LOCAL_PREFIX) && !known(model) && !missing.iter().any(|m| m == model) {
            missing.push(model.to_string());
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sort(paths: &[&str]) -> Result<CheckpointFiles<String>, String> {
        CheckpointFiles::sort(
            paths
                .iter()
                .map(|p| (p.to_string(), p.to_string()))
                .collect(),
        )
    }

    #[test]
    fn a_folder_is_sorted_into_roles_and_named() {
        let files = sort(&[
            "SmolLM-135M/config.json",
            "SmolLM-135M/tokenizer.json",
            "SmolLM-135M/model.safetensors",
            "SmolLM-135M/onnx/model.safetensors",
            "SmolLM-135M/README.md",
        ])
        .unwrap();
        assert_eq!(files.folder.as_deref(), Some("SmolLM-135M"));
        assert_eq!(files.config, "SmolLM-135M/config.json");
        assert_eq!(files.index, None);
        // The one in a subfolder is not the model's.
        assert_eq!(
            files.weight_files(None).unwrap(),
            vec![(
                "model.safetensors".to_string(),
                "SmolLM-135M/model.safetensors".to_string()
            )]
        );
    }

    #[test]
    fn shards_come_from_the_index_and_a_missing_one_is_named() {
        let files = sort(&[
            "config.json",
            "tokenizer.json",
            SHARD_INDEX,
            "model-00001-of-00002.safetensors",
        ])
        .unwrap();
        assert_eq!(files.folder, None);
        let index = ShardIndex::parse(
            br#"{"weight_map": {"a": "model-00001-of-00002.safetensors",
                                 "b": "model-00002-of-00002.safetensors"}}"#,
        )
        .unwrap();
        let err = files.weight_files(Some(&index)).unwrap_err();
        assert!(err.contains("model-00002-of-00002.safetensors"), "{err}");
    }

    #[test]
    fn missing_parts_are_named_with_what_was_given() {
        let err = sort(&["config.json", "model.safetensors"]).unwrap_err();
        assert!(
            err.contains("no tokenizer.json") && err.contains("config.json, model.safetensors"),
            "{err}"
        );
        let err = sort(&["config.json", "tokenizer.json"]).unwrap_err();
        assert!(err.contains("model.safetensors"), "{err}");
        assert!(sort(&[]).is_err());
    }

    #[test]
    fn identity_comes_from_the_folder_then_the_config() {
        let config = br#"{"_name_or_path": "HuggingFaceTB/SmolLM-135M"}"#;
        assert_eq!(
            local_identity(Some("My Llama v2!"), config),
            ("local-my-llama-v2".to_string(), "My Llama v2!".to_string())
        );
        assert_eq!(local_identity(None, config).0, "local-smollm-135m");
        assert_eq!(local_identity(None, b"{}").0, "local-model");
        assert_eq!(local_identity(Some("???"), b"{}").0, "local-model");
        // Every id is one a URL can carry.
        let (id, _) = local_identity(Some(&"x".repeat(100)), b"{}");
        assert!(id.len() <= LOCAL_PREFIX.len() + 40);
    }

    #[test]
    fn memory_is_stated_before_loading_and_too_much_is_refused() {
        // SmolLM-135M's shape.
        let config = ModelConfig::from_json(
            br#"{"architectures": ["LlamaForCausalLM"], "hidden_size": 576,
                "intermediate_size": 1536, "num_attention_heads": 9, "num_hidden_layers": 30,
                "num_key_value_heads": 3, "vocab_size": 49152, "max_position_embeddings": 2048,
                "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": true}"#,
        )
        .unwrap();
        let params = config.parameter_count() as u64;
        let plan = |bytes_per_value: u64| CheckpointPlan {
            config: config.clone(),
            tensor_files: Vec::new(),
            file_bytes: bytes_per_value * params,
            f32_bytes: 4 * params,
        };
        let fits = memory_verdict(&plan(2)).unwrap();
        assert!(
            fits.starts_with("134.5M parameters, 269.0 MB to read"),
            "{fits}"
        );
        // The same model claimed at 8x the size does not fit.
        let mut huge = plan(2);
        huge.f32_bytes *= 8;
        let err = memory_verdict(&huge).unwrap_err();
        assert!(err.contains("more than the 3.22 GB"), "{err}");
        // The files and the 32-bit weights live in different memories.
        let mut both = plan(2);
        (both.file_bytes, both.f32_bytes) = (2_000_000_000, 3_000_000_000);
        assert!(memory_verdict(&both).is_ok());
    }

    #[test]
    fn links_to_local_models_the_page_lacks_are_listed_once() {
        let models = ["rope", "local-a", "local-b", "local-a"];
        let missing = missing_local_models(models.iter().copied(), |m| m == "local-b");
        assert_eq!(missing, vec!["local-a".to_string()]);
    }
}
