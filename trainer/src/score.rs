//! `trainer score`: the per-token NLLs of a text under a Hugging Face checkpoint folder,
//! on the engine's native CPU path, as JSON. The studio opens the same folders in the
//! browser (`app/src/local_model.rs`); the end-to-end test compares the two.
//!
//! ```text
//! trainer score --model DIR --text FILE [--length N] [--scheme rope|yarn:dyn|...]
//! ```
//!
//! The folder is checked as the studio checks it (`engine::checkpoint::CheckpointPlan`
//! from the config, the shard index and each file's header) before its weights are
//! read. The text is tokenized with the folder's `tokenizer.json`, the config's first
//! token (`bos_token_id`) put in front as the studio does, and cut to `--length` tokens.
//! Prints `{"tokens": [ids], "nll": [null, n1, n2, ...]}`: the first token has no NLL.

use std::path::Path;
use std::sync::Arc;

use engine::checkpoint::{
    studio_config, CheckpointPlan, SafetensorsHeader, ShardIndex, SHARD_INDEX, SINGLE_FILE,
    TOKENIZER_CONFIG,
};
use engine::cpu::CpuBackend;
use engine::{SchemeSpec, TextTokenizer};

use crate::args::Args;
use crate::eval::session_nll;

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// A checkpoint folder's `config.json` and weight files, read whole.
pub struct CheckpointFolder {
    /// `config.json` as the studio reads it (`engine::checkpoint::studio_config`).
    pub config: Vec<u8>,
    /// `tokenizer.json`.
    pub tokenizer: Vec<u8>,
    /// Each weight file's name and bytes.
    pub files: Vec<(String, Vec<u8>)>,
}

/// Reads a checkpoint folder, checked as the studio checks it.
pub fn read_checkpoint(dir: &Path) -> Result<CheckpointFolder, String> {
    let tokenizer = read(&dir.join("tokenizer.json"))?;
    let settings = dir.join(TOKENIZER_CONFIG);
    let settings = match settings.exists() {
        true => Some(read(&settings)?),
        false => None,
    };
    let config = studio_config(
        &read(&dir.join("config.json"))?,
        &tokenizer,
        settings.as_deref(),
    )?;
    let index_path = dir.join(SHARD_INDEX);
    let index = match index_path.exists() {
        true => Some(ShardIndex::parse(&read(&index_path)?)?),
        false => None,
    };
    let names = match &index {
        Some(index) => index.files(),
        None => vec![SINGLE_FILE.to_string()],
    };
    let mut files = Vec::new();
    let mut headers = Vec::new();
    for name in names {
        let bytes = read(&dir.join(&name))?;
        let header = SafetensorsHeader::parse(&bytes, bytes.len() as u64)
            .map_err(|e| format!("{name}: {e}"))?;
        headers.push((name.clone(), header));
        files.push((name, bytes));
    }
    CheckpointPlan::check(&config, index.as_ref(), &headers).map_err(|e| e.to_string())?;
    Ok(CheckpointFolder {
        config,
        tokenizer,
        files,
    })
}

/// `trainer score`.
pub fn run(argv: &[String]) -> Result<(), String> {
    let args = Args::parse(argv, &["model", "text", "length", "scheme"])?;
    let dir = Path::new(args.required("model")?);
    let text = String::from_utf8(read(Path::new(args.required("text")?))?)
        .map_err(|_| "the text is not UTF-8".to_string())?;
    let folder = read_checkpoint(dir)?;
    let shards: Vec<&[u8]> = folder.files.iter().map(|(_, b)| b.as_slice()).collect();
    let backend =
        Arc::new(CpuBackend::load_shards(&folder.config, &shards).map_err(|e| e.to_string())?);
    let tokenizer = TextTokenizer::from_json(&folder.tokenizer).map_err(|e| e.to_string())?;
    let config = engine::Backend::config(backend.as_ref()).clone();
    let scheme: SchemeSpec = match args.get_or("scheme", String::new())?.as_str() {
        "" => config.trained_scheme(),
        text => text.parse().map_err(|e| format!("--scheme: {e}"))?,
    };
    let ids: Vec<u32> = tokenizer
        .encode(&text)
        .map_err(|e| e.to_string())?
        .iter()
        .map(|p| p.id)
        .collect();
    let mut tokens = config.with_bos(&ids);
    tokens.truncate(args.get_or("length", tokens.len())?);
    let nll = session_nll(&backend, scheme, &tokens)?;
    let out = serde_json::json!({
        "tokens": tokens,
        "nll": std::iter::once(None).chain(nll.into_iter().map(Some)).collect::<Vec<_>>(),
    });
    println!("{out}");
    Ok(())
}
