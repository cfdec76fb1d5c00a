//! The page's handle on the CPU worker (`worker/`, built by trunk next to the app and
//! started from `worker_loader.js`), and `WorkerBackend`: a model whose forward passes
//! run there, so a long prompt on the CPU path never freezes the page.
//!
//! The first worker serves every model; a comparison of several series on the CPU path
//! spreads its sessions over more workers (up to [`max_workers`]), each loading its own
//! copy of a model from the bytes the page already holds, so k series run side by side
//! on k cores without downloading anything again. Messages wait in a queue until a
//! worker says it is ready. When the worker cannot start (no `worker_loader.js`, as in
//! component tests, or a browser without workers) a model runs on the page's own thread
//! instead where the build has that path (`page_cpu.rs`: the tests' builds, not the
//! studio's).

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use engine::wire::{decode_output, encode_input};
use engine::{Backend, DeviceKind, EngineError, ForwardInput, ForwardOutput, ModelConfig};
use futures_channel::oneshot;
use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Event, MessageEvent, Worker};

use crate::assets::asset_url;
use crate::page_cpu::{PageCache, PageCpu};

/// The worker's script, relative to the page (so a deployment under a sub-path works).
pub const WORKER_SCRIPT: &str = "worker_loader.js";

/// How long the page waits for the worker to report ready before running models on
/// its own thread (the worker's wasm is about 300 kB compressed).
const START_TIMEOUT_MS: i32 = 20_000;

enum Phase {
    /// Started; messages queue until it reports ready.
    Starting(Vec<(Object, Option<JsValue>)>),
    Ready,
    /// Could not start, or crashed: the reason.
    Failed(String),
}

type Reply = Result<Vec<u8>, String>;

/// The worker's message and error listeners, kept alive with it.
type Handlers = (Closure<dyn FnMut(MessageEvent)>, Closure<dyn FnMut(Event)>);

/// The running worker and the calls waiting for its replies.
pub struct CpuWorker {
    worker: Option<Worker>,
    phase: RefCell<Phase>,
    waiting_for_start: RefCell<Vec<oneshot::Sender<()>>>,
    pending: RefCell<HashMap<u32, oneshot::Sender<Reply>>>,
    /// KV caches (sessions) placed here and not yet dropped: how busy it is.
    live_caches: Cell<usize>,
    /// 0 for the shared worker, 1, 2, ... for the others in the order started.
    index: Cell<usize>,
    _handlers: Option<Handlers>,
}

thread_local! {
    static SHARED: OnceCell<Rc<CpuWorker>> = const { OnceCell::new() };
    /// Workers started besides the shared one, for series run side by side.
    static EXTRA: RefCell<Vec<Rc<CpuWorker>>> = const { RefCell::new(Vec::new()) };
    /// Ids of models, caches and calls: one sequence for every worker, so a model or
    /// a cache keeps its id in whichever worker it is placed.
    static NEXT_ID: Cell<u32> = const { Cell::new(0) };
}

/// A fresh id for a model, a cache or a call.
fn next_id() -> u32 {
    NEXT_ID.with(|next| {
        let id = next.get();
        next.set(id.wrapping_add(1));
        id
    })
}

/// How many workers may run CPU passes at once: one per core and one more. Each worker
/// runs one thread, and the page's own thread is idle while they compute, so on a
/// 2-core machine three series in three workers keep both cores busy (the system shares
/// them) where two workers would leave the third series for later.
pub fn max_workers() -> usize {
    let cores = web_sys::window().map_or(1.0, |w| w.navigator().hardware_concurrency());
    workers_for_cores(cores)
}

/// [`max_workers`] for `cores` logical processors: cores + 1, at most 8 (each worker
/// holds its own copy of a model); one when the browser does not say (0), which is
/// also how `cargo xtask bench` times series one after another.
pub fn workers_for_cores(cores: f64) -> usize {
    if cores.is_finite() && cores >= 1.0 {
        (cores as usize + 1).min(8)
    } else {
        1
    }
}

/// The largest model (weights in 32-bit floats) that is copied into more than one
/// worker; a larger one runs all its series in the shared worker, one at a time.
pub const SPREAD_MODEL_BYTES: u64 = 256 << 20;

fn field(value: &JsValue, key: &str) -> JsValue {
    Reflect::get(value, &key.into()).unwrap_or(JsValue::UNDEFINED)
}

fn message(fields: &[(&str, JsValue)]) -> Object {
    let object = Object::new();
    for (key, value) in fields {
        let _ = Reflect::set(&object, &(*key).into(), value);
    }
    object
}

/// A worker started from a `blob:` copy of the loader (`importScripts` of `worker.js`,
/// then its wasm) with absolute URLs: a document with an opaque origin (an iframe
/// sandboxed with `allow-scripts` only) may start a worker from a blob it made, not from
/// the site's URL. The worker then loads the same files as any other (the site must
/// serve them to such frames, as it serves them the page's own wasm).
fn loader_blob_worker(script: &str) -> Result<Worker, JsValue> {
    let page = web_sys::window().ok_or("no window")?.location().href()?;
    let base = web_sys::Url::new_with_base(script, &page)?;
    let at = |file: &str| web_sys::Url::new_with_base(file, &base.href()).map(|u| u.href());
    let source = format!(
        "importScripts({:?});wasm_bindgen({:?});",
        at("worker.js")?,
        at("worker_bg.wasm")?
    );
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("text/javascript");
    let parts = Array::of1(&JsValue::from_str(&source));
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options)?;
    let url = web_sys::Url::create_object_url_with_blob(&blob)?;
    Worker::new(&url)
}

impl CpuWorker {
    /// The page's worker, started on first use.
    pub fn shared() -> Rc<CpuWorker> {
        SHARED.with(|cell| {
            Rc::clone(cell.get_or_init(|| CpuWorker::start(&asset_url(WORKER_SCRIPT))))
        })
    }

    /// Where CPU passes of the page's worker run (see [`CpuWorker::placement`]), or
    /// `None` when no model has needed the worker yet (it is not started just to ask).
    pub fn shared_placement() -> Option<&'static str> {
        SHARED.with(|cell| cell.get().map(|worker| worker.placement()))
    }

    /// A handle in `phase` with nothing pending yet.
    fn with(worker: Option<Worker>, phase: Phase, handlers: Option<Handlers>) -> CpuWorker {
        CpuWorker {
            worker,
            phase: RefCell::new(phase),
            waiting_for_start: RefCell::default(),
            pending: RefCell::default(),
            live_caches: Cell::new(0),
            index: Cell::new(0),
            _handlers: handlers,
        }
    }

    /// Starts a worker from `script`; where the page may not (a sandboxed iframe: an
    /// opaque origin is refused workers from the site's URLs), from a loader of its own
    /// made here (see [`loader_blob_worker`]).
    pub fn start(script: &str) -> Rc<CpuWorker> {
        let worker =
            match Worker::new(script).or_else(|e| loader_blob_worker(script).map_err(|_| e)) {
                Ok(worker) => worker,
                Err(e) => {
                    let reason = crate::error::js_message(&e);
                    return Rc::new(CpuWorker::with(None, Phase::Failed(reason), None));
                }
            };
        Rc::new_cyclic(|me: &Weak<CpuWorker>| {
            let on_message = {
                let me = me.clone();
                Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                    if let Some(me) = me.upgrade() {
                        me.received(event.data());
                    }
                })
            };
            // A script that fails to load fires a plain `Event` (no message); an error
            // inside the worker an `ErrorEvent`.
            let on_error = {
                let me = me.clone();
                Closure::<dyn FnMut(Event)>::new(move |event: Event| {
                    let reason = field(&event, "message")
                        .as_string()
                        .filter(|m| !m.is_empty())
                        .unwrap_or_else(|| format!("{WORKER_SCRIPT} could not be loaded"));
                    if let Some(me) = me.upgrade() {
                        me.fail(reason);
                    }
                })
            };
            // A worker whose wasm fails to load reports nothing (the loader's promise
            // rejects inside it): give up waiting after a while and run on the page.
            {
                let me = me.clone();
                let give_up = Closure::once(move || {
                    if let Some(me) = me.upgrade() {
                        if matches!(*me.phase.borrow(), Phase::Starting(_)) {
                            me.fail(format!(
                                "the CPU worker did not start within {} s",
                                START_TIMEOUT_MS / 1000
                            ));
                        }
                    }
                });
                if let Some(window) = web_sys::window() {
                    let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(
                        give_up.as_ref().unchecked_ref(),
                        START_TIMEOUT_MS,
                    );
                }
                // Runs once, when the timer fires.
                give_up.forget();
            }
            worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
            worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
            CpuWorker::with(
                Some(worker),
                Phase::Starting(Vec::new()),
                Some((on_message, on_error)),
            )
        })
    }

    /// Resolves once the worker is ready (`Ok`) or could not start (`Err`).
    pub async fn started(&self) -> Result<(), String> {
        let wait = match &*self.phase.borrow() {
            Phase::Ready => return Ok(()),
            Phase::Failed(reason) => return Err(reason.clone()),
            Phase::Starting(_) => {
                let (sender, receiver) = oneshot::channel();
                self.waiting_for_start.borrow_mut().push(sender);
                receiver
            }
        };
        let _ = wait.await;
        match &*self.phase.borrow() {
            Phase::Ready => Ok(()),
            Phase::Failed(reason) => Err(reason.clone()),
            Phase::Starting(_) => Err("the CPU worker stopped starting".into()),
        }
    }

    /// Where CPU passes run now: `"worker"`, `"page"` (the worker could not start) or
    /// `"starting"`.
    pub fn placement(&self) -> &'static str {
        match &*self.phase.borrow() {
            Phase::Ready => "worker",
            Phase::Failed(_) => "page",
            Phase::Starting(_) => "starting",
        }
    }

    /// The worker for a new session: the least busy of the started ones that have not
    /// failed, or a new one when each already holds a session and fewer than
    /// [`max_workers`] run.
    pub fn least_busy() -> Rc<CpuWorker> {
        let shared = CpuWorker::shared();
        EXTRA.with(|extra| {
            let mut extra = extra.borrow_mut();
            let usable = std::iter::once(&shared)
                .chain(extra.iter())
                .filter(|w| !matches!(*w.phase.borrow(), Phase::Failed(_)));
            let best = usable.min_by_key(|w| w.live_caches.get()).map(Rc::clone);
            match best {
                Some(best) if best.live_caches.get() == 0 => best,
                _ if 1 + extra.len() < max_workers() => {
                    let started = CpuWorker::start(&asset_url(WORKER_SCRIPT));
                    started.index.set(1 + extra.len());
                    extra.push(Rc::clone(&started));
                    started
                }
                best => best.unwrap_or(shared),
            }
        })
    }

    /// Counts a session placed here ([`Self::least_busy`] reads the count).
    fn hold_session(&self) {
        self.live_caches.set(self.live_caches.get() + 1);
    }

    /// Counts a session gone from here.
    fn release_session(&self) {
        self.live_caches
            .set(self.live_caches.get().saturating_sub(1));
    }

    /// Sends `message`, moving the buffers of `transfer` (an array) with it.
    fn post(&self, message: Object, transfer: Option<JsValue>) {
        let mut phase = self.phase.borrow_mut();
        match &mut *phase {
            Phase::Starting(queue) => queue.push((message, transfer)),
            Phase::Ready => {
                if let Some(worker) = &self.worker {
                    let sent = match &transfer {
                        Some(list) => worker.post_message_with_transfer(&message, list),
                        None => worker.post_message(&message),
                    };
                    if let Err(e) = sent {
                        let reason = crate::error::js_message(&e);
                        drop(phase);
                        self.fail(format!("could not send to the CPU worker: {reason}"));
                    }
                }
            }
            Phase::Failed(_) => {}
        }
    }

    fn received(&self, data: JsValue) {
        match field(&data, "kind").as_string().as_deref() {
            Some("ready") => {
                let queued = match std::mem::replace(&mut *self.phase.borrow_mut(), Phase::Ready) {
                    Phase::Starting(queue) => queue,
                    _ => Vec::new(),
                };
                for (message, transfer) in queued {
                    self.post(message, transfer);
                }
                for waiter in self.waiting_for_start.borrow_mut().drain(..) {
                    let _ = waiter.send(());
                }
            }
            Some("reply") => {
                let id = field(&data, "id").as_f64().unwrap_or(-1.0) as u32;
                let Some(sender) = self.pending.borrow_mut().remove(&id) else {
                    return;
                };
                let reply = if field(&data, "ok").as_bool() == Some(true) {
                    field(&data, "bytes")
                        .dyn_into::<Uint8Array>()
                        .map(|a| a.to_vec())
                        .map_err(|_| "the CPU worker replied without data".to_string())
                } else {
                    Err(field(&data, "message")
                        .as_string()
                        .unwrap_or_else(|| "the CPU worker failed".into()))
                };
                let _ = sender.send(reply);
            }
            _ => {}
        }
    }

    /// Marks the worker failed: waiting calls get `reason`, later models run on the page.
    fn fail(&self, reason: String) {
        *self.phase.borrow_mut() = Phase::Failed(reason.clone());
        for waiter in self.waiting_for_start.borrow_mut().drain(..) {
            let _ = waiter.send(());
        }
        for (_, sender) in self.pending.borrow_mut().drain() {
            let _ = sender.send(Err(format!("the CPU worker stopped: {reason}")));
        }
        if let Some(worker) = &self.worker {
            worker.terminate();
        }
    }

    fn load(&self, model: u32, config: &[u8], shards: &[Vec<u8>]) {
        // Each file is copied out of the page's memory once and its buffer transferred.
        let (files, buffers) = (Array::new(), Array::new());
        for shard in shards {
            let bytes = Uint8Array::from(&shard[..]);
            buffers.push(&bytes.buffer());
            files.push(&bytes);
        }
        let load = message(&[
            ("kind", "load".into()),
            ("model", model.into()),
            ("config", Uint8Array::from(config).into()),
            ("weights", files.into()),
        ]);
        self.post(load, Some(buffers.into()));
    }

    async fn forward(&self, model: u32, cache: u32, input: Vec<u8>) -> Reply {
        let id = next_id();
        let (sender, receiver) = oneshot::channel();
        self.pending.borrow_mut().insert(id, sender);
        let input = Uint8Array::from(&input[..]);
        let buffer: JsValue = Array::of1(&input.buffer()).into();
        self.post(
            message(&[
                ("kind", "forward".into()),
                ("id", id.into()),
                ("model", model.into()),
                ("cache", cache.into()),
                ("input", input.into()),
            ]),
            Some(buffer),
        );
        receiver
            .await
            .unwrap_or_else(|_| Err("the CPU worker dropped a call".into()))
    }

    fn unload(&self, model: u32) {
        self.post(
            message(&[("kind", "unload".into()), ("model", model.into())]),
            None,
        );
    }

    fn drop_cache(&self, cache: u32) {
        self.post(
            message(&[("kind", "drop".into()), ("cache", cache.into())]),
            None,
        );
    }
}

/// A checkpoint's safetensors files (one, or its shards), shared without copying. Each
/// stays the `Vec` it was read into: turning it into an `Rc<[u8]>` would copy it whole.
pub type WeightFiles = Rc<[Vec<u8>]>;

/// A model on the CPU path, run in the worker (or on the page when the worker is
/// unavailable); with several sessions, in several workers.
pub struct WorkerBackend {
    /// Where its sessions run: the shared worker, or one of [`CpuWorker::least_busy`]'s
    /// when the model is small enough to copy ([`SPREAD_MODEL_BYTES`]).
    first: Rc<CpuWorker>,
    spread: bool,
    /// The workers the model has been sent to.
    loaded: RefCell<Vec<Rc<CpuWorker>>>,
    model: u32,
    config: ModelConfig,
    bytes: (Rc<[u8]>, WeightFiles),
    /// The same model on the page's thread, used only if the worker fails to start.
    local: PageCpu,
}

/// A [`WorkerBackend`]'s KV cache: held in one worker (by id), or on the page.
pub struct WorkerCache {
    worker: Rc<CpuWorker>,
    id: u32,
    len: usize,
    /// A pass was sent to the worker with this cache (perhaps still running there).
    in_worker: bool,
    local: Option<PageCache>,
}

impl WorkerCache {
    /// Which worker holds it: 0 for the shared one, then in the order started.
    pub fn worker_index(&self) -> usize {
        self.worker.index.get()
    }
}

impl Drop for WorkerCache {
    fn drop(&mut self) {
        self.worker.release_session();
        // Also when the first pass is still running (len 0): the worker then does not
        // keep what that pass leaves.
        if self.in_worker {
            self.worker.drop_cache(self.id);
        }
    }
}

impl Drop for WorkerBackend {
    fn drop(&mut self) {
        // Moving a model between devices makes a new backend: free the workers' copies.
        for worker in self.loaded.borrow().iter() {
            worker.unload(self.model);
        }
    }
}

impl WorkerBackend {
    /// Sends the model to `worker` (asynchronously: its parse errors come back from
    /// the first forward call); sessions made later may copy it to other workers.
    pub fn new(
        worker: Rc<CpuWorker>,
        config_json: Rc<[u8]>,
        weights: WeightFiles,
    ) -> Result<WorkerBackend, EngineError> {
        let config = ModelConfig::from_json(&config_json)?;
        config.validate()?;
        let model = next_id();
        worker.load(model, &config_json, &weights);
        let spread = config.parameter_count() as u64 * 4 <= SPREAD_MODEL_BYTES;
        Ok(WorkerBackend {
            first: Rc::clone(&worker),
            spread,
            loaded: RefCell::new(vec![worker]),
            model,
            config,
            bytes: (config_json, weights),
            local: PageCpu::new(),
        })
    }

    /// Whether forward passes run in the worker (`false` once it failed to start).
    pub async fn in_worker(&self) -> bool {
        self.first.started().await.is_ok()
    }

    /// Sends the model to `worker` unless it already holds it.
    fn load_into(&self, worker: &Rc<CpuWorker>) {
        let mut loaded = self.loaded.borrow_mut();
        if !loaded.iter().any(|w| Rc::ptr_eq(w, worker)) {
            worker.load(self.model, &self.bytes.0, &self.bytes.1);
            loaded.push(Rc::clone(worker));
        }
    }
}

impl Backend for WorkerBackend {
    type Cache = WorkerCache;

    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn kind(&self) -> DeviceKind {
        DeviceKind::Cpu
    }

    fn new_cache(&self) -> WorkerCache {
        let worker = if self.spread {
            CpuWorker::least_busy()
        } else {
            Rc::clone(&self.first)
        };
        worker.hold_session();
        WorkerCache {
            worker,
            id: next_id(),
            len: 0,
            in_worker: false,
            local: None,
        }
    }

    fn cache_len(&self, cache: &WorkerCache) -> usize {
        cache.len
    }

    async fn forward(
        &self,
        cache: &mut WorkerCache,
        input: ForwardInput<'_>,
    ) -> engine::Result<ForwardOutput> {
        let mut started = match cache.local {
            None => cache.worker.started().await,
            Some(_) => Err("it had stopped before".into()),
        };
        if started.is_err() && cache.len == 0 && !Rc::ptr_eq(&cache.worker, &self.first) {
            // An extra worker that could not start: the session moves to the first one.
            cache.worker.release_session();
            cache.worker = Rc::clone(&self.first);
            cache.worker.hold_session();
            cache.in_worker = false;
            started = cache.worker.started().await;
        }
        let remote = started.is_ok();
        if !remote && cache.local.is_none() && cache.len > 0 {
            // The worker died holding this cache: the session must start again.
            return Err(EngineError::Input(
                "the CPU worker stopped part way; run the prompt again".into(),
            ));
        }
        let output = if remote {
            cache.in_worker = true;
            self.load_into(&cache.worker);
            let reply = cache
                .worker
                .forward(self.model, cache.id, encode_input(&input))
                .await
                .map_err(EngineError::Input)?;
            decode_output(&reply)?
        } else {
            let why = started.err().unwrap_or_default();
            let files = (&self.bytes.0[..], &self.bytes.1);
            self.local
                .forward(files, &mut cache.local, input, &why)
                .await?
        };
        cache.len += input.tokens.len();
        Ok(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_worker_more_than_cores_at_most_eight() {
        assert_eq!(workers_for_cores(2.0), 3);
        assert_eq!(workers_for_cores(1.0), 2);
        assert_eq!(workers_for_cores(0.0), 1);
        assert_eq!(workers_for_cores(f64::NAN), 1);
        assert_eq!(workers_for_cores(4.0), 5);
        assert_eq!(workers_for_cores(64.0), 8);
    }
}
