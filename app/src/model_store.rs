//! A model ready to run: its manifest entry, the backend holding its weights (on the
//! GPU or the CPU), and its tokenizer; the download that produces one; and the WebGPU
//! device the page shares between models.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use engine::checkpoint::reader_over;
use engine::gpu::{GpuBackend, GpuContext};
use engine::{Backend, EngineError, ModelConfig, SchemeSpec, TextTokenizer};
use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::backend::StudioBackend;
use crate::cpu_worker::{CpuWorker, WeightFiles, WorkerBackend};
use crate::error::AppError;
use crate::manifest::{FileEntry, ModelEntry};
use crate::pause::next_frame;
use crate::weight_cache::fetch_verified;

/// What the browser offers for running models on the GPU, found once at startup.
#[derive(Clone)]
pub enum GpuStatus {
    /// A WebGPU device, shared by every model loaded onto it, and its adapter's name.
    Ready {
        /// The device.
        context: Rc<GpuContext>,
        /// The adapter, for display.
        adapter: String,
        /// A software adapter (a fallback adapter, SwiftShader, llvmpipe): slower than
        /// the CPU path, so the page runs on the CPU unless WebGPU is chosen.
        software: bool,
    },
    /// No `navigator.gpu`, or it offers no adapter.
    NoAdapter,
    /// An adapter exists but the device could not be opened; the reason.
    Failed(String),
}

impl GpuStatus {
    /// The device, if there is one.
    pub fn context(&self) -> Option<Rc<GpuContext>> {
        match self {
            GpuStatus::Ready { context, .. } => Some(Rc::clone(context)),
            GpuStatus::NoAdapter | GpuStatus::Failed(_) => None,
        }
    }
}

/// What the browser tells about its WebGPU adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct BrowserAdapter {
    /// `GPUAdapterInfo`'s vendor, architecture, device and description (often empty).
    pub name: String,
    /// A software adapter: the browser says it is a fallback adapter, or its name is a
    /// known software rasteriser ([`is_software_adapter`]).
    pub software: bool,
}

/// Whether an adapter's name is one of the software rasterisers browsers fall back to
/// (SwiftShader in Chromium, llvmpipe / lavapipe on Linux, WARP's "Microsoft Basic
/// Render Driver"): they run WebGPU on the CPU, slower than the studio's CPU path.
pub fn is_software_adapter(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "swiftshader",
        "llvmpipe",
        "lavapipe",
        "softpipe",
        "software",
        "basic render",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// Asks `navigator.gpu` for an adapter: `None` when there is none, else what the
/// browser tells about it. Checked before asking wgpu, so that "this browser has no
/// WebGPU" is told apart from "WebGPU failed", and wgpu never starts without
/// `navigator.gpu`.
pub async fn browser_adapter() -> Option<BrowserAdapter> {
    let get = |object: &JsValue, key: &str| Reflect::get(object, &JsValue::from_str(key)).ok();
    let gpu = get(&web_sys::window()?.navigator(), "gpu")?;
    if gpu.is_undefined() || gpu.is_null() {
        return None;
    }
    let request = get(&gpu, "requestAdapter")?.dyn_into::<Function>().ok()?;
    let promise = request.call0(&gpu).ok()?;
    let adapter = JsFuture::from(Promise::resolve(&promise)).await.ok()?;
    if adapter.is_null() || adapter.is_undefined() {
        return None;
    }
    let info = get(&adapter, "info").unwrap_or_default();
    let words: Vec<String> = ["vendor", "architecture", "device", "description"]
        .iter()
        .filter_map(|key| get(&info, key)?.as_string())
        .filter(|word| !word.is_empty())
        .collect();
    let name = words.join(" ");
    // `info.isFallbackAdapter` in current browsers, `adapter.isFallbackAdapter` before.
    let fallback = [&info, &adapter]
        .iter()
        .any(|o| get(o, "isFallbackAdapter").and_then(|v| v.as_bool()) == Some(true));
    Some(BrowserAdapter {
        software: fallback || is_software_adapter(&name),
        name,
    })
}

/// Opens the WebGPU device if the browser has an adapter.
pub async fn open_gpu() -> GpuStatus {
    let Some(browser) = browser_adapter().await else {
        return GpuStatus::NoAdapter;
    };
    let browser_name = browser.name;
    match GpuContext::new().await {
        Ok(context) => {
            // In a browser wgpu does not learn the adapter's name: prefer what the page
            // itself read from navigator.gpu (vendor and architecture).
            let adapter = if browser_name.is_empty() {
                context.adapter.clone()
            } else {
                browser_name
            };
            GpuStatus::Ready {
                software: browser.software || is_software_adapter(&adapter),
                context: Rc::new(context),
                adapter,
            }
        }
        Err(EngineError::Gpu(reason)) => GpuStatus::Failed(reason),
        Err(e) => GpuStatus::Failed(e.to_string()),
    }
}

/// A downloaded and parsed model on one device.
pub struct LoadedModel {
    /// What the manifest says about it.
    pub entry: ModelEntry,
    /// The weights on the GPU or the CPU (shared with every session).
    pub backend: Arc<StudioBackend>,
    /// The tokenizer the model was trained with.
    pub tokenizer: Arc<TextTokenizer>,
    /// The files it was built from, to re-create it on the other device.
    download: Rc<DownloadedModel>,
}

impl LoadedModel {
    /// The same model re-created on the GPU (`Some`) or the CPU (`None`) from the
    /// downloaded bytes.
    pub async fn on_device(&self, gpu: Option<Rc<GpuContext>>) -> Result<Self, AppError> {
        self.download.load(gpu, &|_| {}).await
    }

    /// Whether the model runs on WebGPU.
    pub fn on_gpu(&self) -> bool {
        self.backend.on_gpu()
    }

    /// The model's `config.json`.
    pub fn config(&self) -> &ModelConfig {
        self.backend.config()
    }

    /// The training length `L`.
    pub fn training_length(&self) -> usize {
        self.config().training_length()
    }

    /// The longest prompt the page runs ([`token_cap`]).
    pub fn max_tokens(&self) -> usize {
        token_cap(self.config()).tokens
    }

    /// The inference scheme that matches how the model was trained (its own
    /// `rope_scaling`, if it has one).
    pub fn default_scheme(&self) -> SchemeSpec {
        self.config().trained_scheme()
    }
}

/// The most memory one recorded series' attention may take: every head's causal map,
/// `T (T + 1) / 2` floats each, kept so that choosing another head needs no rerun.
/// Measured with three series of SmolLM-135M's shape over 2304 tokens on the CPU path
/// (`tests/e2e/long-local.measure.mjs`): the browser's peak was 4.2 GB at 512 MB a
/// series, 2.8 GB at 256 MB.
pub const ATTENTION_BUDGET_BYTES: u64 = 256 << 20;

/// The most memory one series' keys and values may take (the KV cache, on the GPU or in
/// the CPU worker), which bounds how far a prompt can grow.
pub const KV_CACHE_BUDGET_BYTES: u64 = 1 << 30;

/// The longest prompt the page runs through a model, and what sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCap {
    /// Tokens, the first token included.
    pub tokens: usize,
    /// Why there, for messages ("8 x the training length L = 128").
    pub reason: String,
}

/// 8L, the range the studio studies, unless the keys and values of that many tokens
/// would take more than [`KV_CACHE_BUDGET_BYTES`] (a model opened from disk with many
/// layers and a long L: SmolLM-360M's 8L = 16384 would take 1.3 GB).
pub fn token_cap(config: &ModelConfig) -> TokenCap {
    let l = config.training_length();
    let eight_l = 8 * l;
    let per_token =
        (config.num_hidden_layers * 2 * config.kv_heads() * config.head_dim() * 4).max(1) as u64;
    let by_memory = (KV_CACHE_BUDGET_BYTES / per_token) as usize;
    if eight_l <= by_memory {
        TokenCap {
            tokens: eight_l,
            reason: format!("8 x the training length L = {l}"),
        }
    } else {
        TokenCap {
            tokens: by_memory.max(2),
            reason: format!(
                "the keys and values of more tokens would take over {} MB; 8L = {eight_l} \
                 does not fit",
                KV_CACHE_BUDGET_BYTES >> 20
            ),
        }
    }
}

/// How many of a run's first positions record every head's attention rows: all of a
/// run up to [`token_cap`] unless that would take more than [`ATTENTION_BUDGET_BYTES`]
/// (SmolLM-135M's 270 heads allow about 700 of its 8L = 16384). Positions after them
/// run without their rows: perplexity and the other views go on to the cap.
pub fn attention_rows(config: &ModelConfig) -> usize {
    let maps = (config.num_hidden_layers * config.num_attention_heads).max(1) as u64;
    let bytes = |t: u64| maps * t * (t + 1) / 2 * 4;
    let mut rows = ((2 * ATTENTION_BUDGET_BYTES / 4 / maps) as f64).sqrt() as u64;
    while rows > 0 && bytes(rows) > ATTENTION_BUDGET_BYTES {
        rows -= 1;
    }
    (rows as usize).clamp(2, token_cap(config).tokens.max(2))
}

/// How far getting a model ready has come, for the progress bar: its files' bytes
/// downloaded, then its layers uploaded to the GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadProgress {
    /// Bytes received over all of the model's files, or layers uploaded.
    pub received: u64,
    /// Sum of the manifest's sizes, or the layers to upload.
    pub total: u64,
    /// Which of the two.
    pub stage: LoadStage,
}

/// The part of loading a [`DownloadProgress`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadStage {
    /// The files, in bytes.
    Download,
    /// The weights to the GPU, in layers (the embedding table and the output head
    /// count as one each).
    Upload,
}

/// A model's files, downloaded and verified, with its tokenizer parsed: kept for the
/// visit so the model can move between devices without downloading again.
pub struct DownloadedModel {
    /// The manifest entry.
    pub entry: ModelEntry,
    /// The parsed tokenizer.
    pub tokenizer: Arc<TextTokenizer>,
    /// `config.json`.
    config: Rc<[u8]>,
    /// The safetensors files: `model.safetensors`, or a checkpoint's shards.
    weights: WeightFiles,
}

impl DownloadedModel {
    /// A model from files already in memory (tests; a page that has the bytes): the
    /// tokenizer is parsed now, the weights when the model is loaded.
    pub fn from_bytes(
        entry: ModelEntry,
        config: Vec<u8>,
        tokenizer_json: &[u8],
        weights: Vec<u8>,
    ) -> Result<Rc<Self>, AppError> {
        let tokenizer = Arc::new(TextTokenizer::from_json(tokenizer_json)?);
        Ok(Self::with_tokenizer(
            entry,
            config,
            tokenizer,
            vec![weights],
        ))
    }

    /// The same with the tokenizer already parsed (shared by models trained with it)
    /// and the weights as one or more safetensors files.
    pub fn with_tokenizer(
        entry: ModelEntry,
        config: Vec<u8>,
        tokenizer: Arc<TextTokenizer>,
        weights: Vec<Vec<u8>>,
    ) -> Rc<Self> {
        Rc::new(DownloadedModel {
            entry,
            tokenizer,
            config: config.into(),
            weights: weights.into(),
        })
    }

    /// Builds the model on the GPU when `gpu` is given, else on the CPU path in the
    /// page's worker (`cpu_worker.rs`). On the GPU, parsing the weights and uploading
    /// each layer are tasks of their own, so the page stays responsive meanwhile.
    pub async fn load(
        self: &Rc<Self>,
        gpu: Option<Rc<GpuContext>>,
        on_progress: &dyn Fn(DownloadProgress),
    ) -> Result<LoadedModel, AppError> {
        let backend = match gpu {
            Some(gpu) => {
                let config = ModelConfig::from_json(&self.config)?;
                let shards: Vec<&[u8]> = self.weights.iter().map(|s| &s[..]).collect();
                // Tensor by tensor: each is widened and uploaded while only the files
                // are held whole, never all the weights in 32 bits as well.
                let mut reader = reader_over(&shards)?;
                next_frame().await;
                let fetch = |name: &str, shape: &[usize]| reader.values(name, shape);
                // `upload_from` pauses after the embedding table and after each layer.
                let total = config.num_hidden_layers as u64 + 2;
                let mut done = 0;
                let pause = || {
                    done += 1;
                    on_progress(DownloadProgress {
                        received: done,
                        total,
                        stage: LoadStage::Upload,
                    });
                    next_frame()
                };
                let model = GpuBackend::upload_from(gpu, config, fetch, pause).await?;
                StudioBackend::Gpu(model)
            }
            None => StudioBackend::Worker(WorkerBackend::new(
                CpuWorker::shared(),
                Rc::clone(&self.config),
                Rc::clone(&self.weights),
            )?),
        };
        // `Session` takes an `Arc`; the page is single-threaded, so the backend's wgpu
        // handles (not `Send` in a browser) never cross threads.
        #[allow(clippy::arc_with_non_send_sync)]
        let backend = Arc::new(backend);
        Ok(LoadedModel {
            entry: self.entry.clone(),
            backend,
            tokenizer: Arc::clone(&self.tokenizer),
            download: Rc::clone(self),
        })
    }
}

thread_local! {
    /// Tokenizers parsed this visit, by their file's SHA-256: a model downloaded after
    /// another with the same tokenizer (every shipped one has the same) skips its
    /// download, parse and warm-up. Two downloads at once may both parse it.
    static TOKENIZERS: RefCell<HashMap<String, Arc<TextTokenizer>>> = RefCell::new(HashMap::new());
}

/// Downloads (or reads from the browser's cache) and verifies a model's files,
/// reporting progress over all of them, and parses the tokenizer (or takes the one
/// parsed before from the same file).
pub async fn download_model(
    entry: &ModelEntry,
    on_progress: impl Fn(DownloadProgress),
) -> Result<Rc<DownloadedModel>, AppError> {
    let total = entry.total_bytes();
    let files = &entry.files;
    // Progress counts every file, in this order: config, tokenizer, weights.
    let download = |file: &FileEntry, start: u64| {
        let on_progress = &on_progress;
        let file = file.clone();
        async move {
            let (bytes, _source) = fetch_verified(&file, |received| {
                on_progress(DownloadProgress {
                    received: start + received,
                    total,
                    stage: LoadStage::Download,
                })
            })
            .await?;
            Ok::<_, AppError>(bytes)
        }
    };
    let config = download(&files.config, 0).await?;
    let tokenizer = match known_tokenizer(&files.tokenizer) {
        Some(tokenizer) => tokenizer,
        None => {
            let json = download(&files.tokenizer, files.config.bytes).await?;
            // Parsing takes tens of milliseconds: a task of its own, so the page stays
            // responsive (no task over 100 ms).
            next_frame().await;
            let tokenizer = Arc::new(TextTokenizer::from_json(&json)?);
            warm_up(&tokenizer).await;
            if !files.tokenizer.sha256.is_empty() {
                TOKENIZERS.with(|known| {
                    known
                        .borrow_mut()
                        .insert(files.tokenizer.sha256.clone(), Arc::clone(&tokenizer))
                });
            }
            tokenizer
        }
    };
    let weights = download(&files.weights, files.config.bytes + files.tokenizer.bytes).await?;
    Ok(DownloadedModel::with_tokenizer(
        entry.clone(),
        config,
        tokenizer,
        vec![weights],
    ))
}

/// The tokenizer parsed before from a file with `file`'s SHA-256, if any.
fn known_tokenizer(file: &FileEntry) -> Option<Arc<TextTokenizer>> {
    if file.sha256.is_empty() {
        return None;
    }
    TOKENIZERS.with(|known| known.borrow().get(&file.sha256).cloned())
}

/// The first encodes of a tokenizer run code for the first time (compiled on first
/// call in the browser) and compile the pre-tokenizer's regex: 60-90 ms in Chromium,
/// after which a whole sample takes a few ms. Here they get tasks of their own, in
/// steps that split the cost (an empty text, then a space, took 25 and 12 ms in a
/// test), rather than landing in the run's start with the prompt's tokenization.
async fn warm_up(tokenizer: &TextTokenizer) {
    for text in ["", " ", "Warm up."] {
        next_frame().await;
        let _ = tokenizer.encode(text);
    }
}

/// The models this visit has downloaded, by id, each kept on the device it last ran on:
/// asking again for a model is instant, and moving it to the other device re-creates
/// it from the bytes already downloaded.
#[derive(Default)]
pub struct ModelPool {
    models: HashMap<String, Rc<LoadedModel>>,
}

impl ModelPool {
    /// The model with this id, on whichever device it last ran.
    pub fn get(&self, id: &str) -> Option<Rc<LoadedModel>> {
        self.models.get(id).cloned()
    }

    /// Forgets every model on the GPU (its device is gone).
    pub fn forget_gpu_models(&mut self) {
        self.models.retain(|_, model| !model.on_gpu());
    }

    /// Forgets the model with this id (its files were replaced).
    pub fn remove(&mut self, id: &str) {
        self.models.remove(id);
    }

    /// Adds a freshly loaded model (replacing the same model on the other device).
    pub fn insert(&mut self, model: Rc<LoadedModel>) {
        self.models.insert(model.entry.id.clone(), model);
    }
}

/// The model with this id from `pool` on the GPU of `gpu` (the CPU when `None`),
/// re-created there if it is on the other device; `None` when it was not downloaded
/// yet. When the GPU refuses it, the model comes back on the CPU with the GPU's reason.
pub async fn pooled_model(
    pool: &RefCell<ModelPool>,
    id: &str,
    gpu: Option<Rc<GpuContext>>,
) -> (Result<Option<Rc<LoadedModel>>, AppError>, Option<String>) {
    // The pool is not borrowed across the load: other views use it meanwhile.
    let Some(model) = pool.borrow().get(id) else {
        return (Ok(None), None);
    };
    if model.on_gpu() == gpu.is_some() {
        return (Ok(Some(model)), None);
    }
    let (outcome, failure) = load_on(gpu, |c| model.on_device(c)).await;
    if let Ok(moved) = &outcome {
        pool.borrow_mut().insert(Rc::clone(moved));
    }
    (outcome.map(Some), failure)
}

/// Builds a model with `load` on the GPU of `context`, or on the CPU when `context` is
/// `None` or the GPU refuses the model; in that case the GPU's reason comes back too.
pub async fn load_on<F: Future<Output = Result<LoadedModel, AppError>>>(
    context: Option<Rc<GpuContext>>,
    load: impl Fn(Option<Rc<GpuContext>>) -> F,
) -> (Result<Rc<LoadedModel>, AppError>, Option<String>) {
    let on_gpu = context.is_some();
    match load(context).await {
        Err(AppError::Engine(EngineError::Gpu(reason))) if on_gpu => {
            (load(None).await.map(Rc::new), Some(reason))
        }
        outcome => (outcome.map(Rc::new), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_adapters_are_known_by_name() {
        for name in [
            "google swiftshader",
            "SwiftShader Device (Subzero)",
            "mesa llvmpipe (LLVM 17.0.6, 256 bits)",
            "Microsoft Basic Render Driver",
        ] {
            assert!(is_software_adapter(name), "{name}");
        }
        for name in ["nvidia ampere", "apple metal-3", "intel gen-12lp", ""] {
            assert!(!is_software_adapter(name), "{name}");
        }
    }

    fn config(layers: usize, heads: usize, kv: usize, hidden: usize, l: usize) -> ModelConfig {
        ModelConfig::from_json(
            format!(
                r#"{{"hidden_size": {hidden}, "intermediate_size": {}, "num_attention_heads": {heads},
                "num_key_value_heads": {kv}, "num_hidden_layers": {layers}, "vocab_size": 4096,
                "max_position_embeddings": {l}, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
                "tie_word_embeddings": true}}"#,
                3 * hidden
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn prompts_stop_at_8l_unless_the_kv_cache_would_not_fit() {
        // The shipped models: 8L, with every position's attention.
        let shipped = config(4, 4, 4, 128, 128);
        assert_eq!(token_cap(&shipped).tokens, 1024);
        assert_eq!(
            token_cap(&shipped).reason,
            "8 x the training length L = 128"
        );
        assert_eq!(attention_rows(&shipped), 1024);
        // SmolLM-135M's shape: 8L = 16384 tokens of keys and values take 755 MB; its 270
        // attention maps over 16384 tokens would need 145 GB, so about 700 record them.
        let smol = config(30, 9, 3, 576, 2048);
        assert_eq!(token_cap(&smol).tokens, 16384);
        let t = attention_rows(&smol) as u64;
        assert!((690..710).contains(&t), "{t}");
        assert!(270 * t * (t + 1) / 2 * 4 <= ATTENTION_BUDGET_BYTES);
        assert!(270 * (t + 1) * (t + 2) / 2 * 4 > ATTENTION_BUDGET_BYTES);
        // SmolLM-360M's shape (32 layers, 5 key/value heads of 64): 80 kB a token.
        let smol360 = config(32, 15, 5, 960, 2048);
        let cap = token_cap(&smol360);
        assert_eq!(cap.tokens, (1 << 30) / (32 * 2 * 5 * 64 * 4));
        assert!(cap.reason.contains("keys and values"), "{}", cap.reason);
        assert!(
            cap.reason.contains("8L = 16384 does not fit"),
            "{}",
            cap.reason
        );
    }
}
