//! The CPU path on the page's own thread, for when the worker cannot start: component
//! tests run without the worker's script, and need it. The studio's build leaves it out
//! (the `page-cpu` feature, off in `index.html`'s trunk link): it is all that put candle
//! in the page's wasm (about 1 MB of code; `cargo xtask wasm-size`), and every browser
//! that runs the studio's wasm runs a worker. Without it, a worker that could not start
//! is an error that says why.

use engine::{ForwardInput, ForwardOutput};

use crate::cpu_worker::WeightFiles;

#[cfg(feature = "page-cpu")]
mod on_page {
    use std::cell::OnceCell;

    use engine::cpu::{CpuBackend, LayerCache};
    use engine::Backend;

    use super::*;

    /// A model built on the page's thread on first use.
    #[derive(Default)]
    pub struct PageCpu {
        model: OnceCell<CpuBackend>,
    }

    /// Its KV cache.
    pub type PageCache = Vec<LayerCache>;

    impl PageCpu {
        /// Nothing built until the first pass.
        pub fn new() -> Self {
            Self::default()
        }

        /// Runs `input` on the page (the worker could not start: `_why`).
        pub async fn forward(
            &self,
            (config_json, weights): (&[u8], &WeightFiles),
            cache: &mut Option<PageCache>,
            input: ForwardInput<'_>,
            _why: &str,
        ) -> engine::Result<ForwardOutput> {
            let model = match self.model.get() {
                Some(model) => model,
                None => {
                    let shards: Vec<&[u8]> = weights.iter().map(|s| &s[..]).collect();
                    let backend = CpuBackend::load_shards(config_json, &shards)?;
                    self.model.get_or_init(|| backend)
                }
            };
            let held = cache.get_or_insert_with(|| model.new_cache());
            model.forward(held, input).await
        }
    }
}

#[cfg(not(feature = "page-cpu"))]
mod on_page {
    use engine::EngineError;

    use super::*;

    /// No CPU path on the page in the studio's build.
    #[derive(Default)]
    pub struct PageCpu;

    /// Never holds anything.
    pub type PageCache = ();

    impl PageCpu {
        /// The placeholder.
        pub fn new() -> Self {
            PageCpu
        }

        /// The reason the CPU path cannot run.
        pub async fn forward(
            &self,
            _files: (&[u8], &WeightFiles),
            _cache: &mut Option<PageCache>,
            _input: ForwardInput<'_>,
            why: &str,
        ) -> engine::Result<ForwardOutput> {
            Err(EngineError::Input(format!(
                "the CPU path runs in a Web Worker, and this page could not start one \
                 ({why}); reload the page, or allow workers from this site"
            )))
        }
    }
}

pub use on_page::{PageCache, PageCpu};
