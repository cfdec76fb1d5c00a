//! The studio's CPU path in a Web Worker (built by trunk from index.html's
//! `data-type="worker"` link; the page starts it from `worker_loader.js`). A forward pass
//! of a long prompt takes seconds on the CPU: here it does not freeze the page.
//!
//! Protocol (plain objects; byte payloads are `Uint8Array`s whose buffers are
//! transferred, numbers are `u32` ids):
//! - the worker first posts `{kind: "ready"}`;
//! - `{kind: "load", model, config, weights}`: parse a model whose `weights` are an array
//!   of safetensors files (one, or a checkpoint's shards); no reply: an error is kept
//!   and returned by the model's next forward call, so the page need not wait;
//! - `{kind: "forward", id, model, cache, input}`: run `engine::wire`-encoded input
//!   after the tokens of cache `cache` (created empty on first use), reply
//!   `{kind: "reply", id, ok: true, bytes}` with the encoded output, or
//!   `{kind: "reply", id, ok: false, message}`;
//! - `{kind: "drop", cache}`: forget a cache (also one a running pass uses: that pass
//!   then does not keep it);
//! - `{kind: "unload", model}`: forget a model and its caches.

#[cfg(any(target_arch = "wasm32", test))]
mod caches;

#[cfg(target_arch = "wasm32")]
mod worker {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::rc::Rc;

    use engine::checkpoint::{SafetensorsHeader, TensorReader};
    use engine::cpu::{CpuBackend, LayerCache};
    use engine::wire::{decode_input, encode_output};
    use engine::{Backend, EngineError, ModelConfig, ModelWeights};

    use crate::caches::Caches;
    use js_sys::{Object, Reflect, Uint8Array};
    use wasm_bindgen::prelude::*;
    use wasm_bindgen::JsCast;
    use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

    #[derive(Default)]
    struct State {
        models: HashMap<u32, Result<Rc<CpuBackend>, String>>,
        caches: Caches<Vec<LayerCache>>,
    }

    thread_local! {
        static STATE: RefCell<State> = RefCell::new(State::default());
    }

    fn scope() -> DedicatedWorkerGlobalScope {
        js_sys::global().unchecked_into()
    }

    fn get(message: &JsValue, key: &str) -> JsValue {
        Reflect::get(message, &key.into()).unwrap_or(JsValue::UNDEFINED)
    }

    fn number(message: &JsValue, key: &str) -> Result<u32, String> {
        get(message, key)
            .as_f64()
            .map(|n| n as u32)
            .ok_or_else(|| format!("the message has no number `{key}`"))
    }

    fn bytes(message: &JsValue, key: &str) -> Result<Vec<u8>, String> {
        get(message, key)
            .dyn_into::<Uint8Array>()
            .map(|a| a.to_vec())
            .map_err(|_| format!("the message has no bytes `{key}`"))
    }

    /// The checkpoint's safetensors files: an array of byte arrays, left in JavaScript's
    /// memory (each tensor is copied into this worker's memory when it is read).
    fn shards(message: &JsValue) -> Result<Vec<Uint8Array>, String> {
        let list = get(message, "weights")
            .dyn_into::<js_sys::Array>()
            .map_err(|_| "the message has no list of weight files".to_string())?;
        list.iter()
            .map(|file| {
                file.dyn_into::<Uint8Array>()
                    .map_err(|_| "a weight file in the message is not bytes".to_string())
            })
            .collect()
    }

    /// Builds the model one tensor at a time from the files, so this worker holds the
    /// weights in 32 bits and one tensor's stored bytes, never a whole file as well.
    fn load_model(config_json: &[u8], files: &[Uint8Array]) -> engine::Result<CpuBackend> {
        let config = ModelConfig::from_json(config_json)?;
        let range = |file: &Uint8Array, start: u64, end: u64| -> Vec<u8> {
            let end = end.min(file.length() as u64);
            file.subarray(start.min(end) as u32, end as u32).to_vec()
        };
        let headers = files
            .iter()
            .map(|file| {
                let len = file.length() as u64;
                let bad =
                    |e: String| EngineError::Weights(format!("not a valid safetensors file ({e})"));
                let needed =
                    SafetensorsHeader::bytes_needed(&range(file, 0, 8), len).map_err(bad)?;
                SafetensorsHeader::parse(&range(file, 0, needed), len).map_err(bad)
            })
            .collect::<engine::Result<Vec<_>>>()?;
        let mut reader = TensorReader::new(headers, |file, start, end| {
            Ok(range(&files[file], start, end))
        });
        let weights = ModelWeights::from_reader(&config, &mut reader)?;
        CpuBackend::from_weights(config, weights)
    }

    fn post(fields: &[(&str, JsValue)], transfer: Option<&JsValue>) {
        let reply = Object::new();
        for (key, value) in fields {
            let _ = Reflect::set(&reply, &(*key).into(), value);
        }
        let outcome = match transfer {
            Some(buffer) => scope().post_message_with_transfer(&reply, &js_sys::Array::of1(buffer)),
            None => scope().post_message(&reply),
        };
        if let Err(e) = outcome {
            web_sys::console::error_2(&"worker: could not post a reply".into(), &e);
        }
    }

    fn load(message: &JsValue) -> Result<(), String> {
        let model = number(message, "model")?;
        let loaded = load_model(&bytes(message, "config")?, &shards(message)?)
            .map(Rc::new)
            .map_err(|e| e.to_string());
        STATE.with(|s| s.borrow_mut().models.insert(model, loaded));
        Ok(())
    }

    async fn forward(message: &JsValue) -> Result<Vec<u8>, String> {
        let (model, cache_id) = (number(message, "model")?, number(message, "cache")?);
        let input = decode_input(&bytes(message, "input")?).map_err(|e| e.to_string())?;
        let backend = STATE.with(|s| s.borrow().models.get(&model).cloned());
        let backend = match backend {
            Some(Ok(backend)) => backend,
            Some(Err(e)) => return Err(e),
            None => return Err(format!("model {model} was never loaded in the worker")),
        };
        let mut cache = STATE
            .with(|s| s.borrow_mut().caches.take(cache_id, model))
            .unwrap_or_else(|| backend.new_cache());
        let output = backend.forward(&mut cache, input.as_input()).await;
        // A failed chunk may leave part of itself in the cache: drop it (the caller
        // starts a new cache after an error, as with any backend).
        let kept = output.is_ok().then_some(cache);
        STATE.with(|s| s.borrow_mut().caches.finish(cache_id, kept));
        output.map(|o| encode_output(&o)).map_err(|e| e.to_string())
    }

    fn handle(event: MessageEvent) {
        let message = event.data();
        match get(&message, "kind").as_string().as_deref() {
            Some("load") => {
                if let Err(e) = load(&message) {
                    web_sys::console::error_1(&format!("worker: {e}").into());
                }
            }
            Some("unload") => {
                if let Ok(model) = number(&message, "model") {
                    STATE.with(|s| {
                        let mut s = s.borrow_mut();
                        s.models.remove(&model);
                        s.caches.unload(model);
                    });
                }
            }
            Some("drop") => {
                if let Ok(cache) = number(&message, "cache") {
                    STATE.with(|s| s.borrow_mut().caches.drop_cache(cache));
                }
            }
            Some("forward") => {
                let id = get(&message, "id");
                wasm_bindgen_futures::spawn_local(async move {
                    match forward(&message).await {
                        Ok(bytes) => {
                            let array = Uint8Array::from(&bytes[..]);
                            let buffer = array.buffer().into();
                            post(
                                &[
                                    ("kind", "reply".into()),
                                    ("id", id),
                                    ("ok", true.into()),
                                    ("bytes", array.into()),
                                ],
                                Some(&buffer),
                            );
                        }
                        Err(message) => post(
                            &[
                                ("kind", "reply".into()),
                                ("id", id),
                                ("ok", false.into()),
                                ("message", message.into()),
                            ],
                            None,
                        ),
                    }
                });
            }
            other => {
                web_sys::console::error_1(&format!("worker: unknown message kind {other:?}").into())
            }
        }
    }

    pub fn start() {
        console_error_panic_hook::set_once();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(handle);
        scope().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        // The handler lives as long as the worker.
        on_message.forget();
        post(&[("kind", "ready".into())], None);
    }
}

fn main() {
    #[cfg(target_arch = "wasm32")]
    worker::start();
}
