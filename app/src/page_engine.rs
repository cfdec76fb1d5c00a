//! The engine one page shares: one WebGPU device, one download of each model, one
//! loaded copy per device, and one fetch of the model list and the prompt samples. The
//! studio and every embedded view on a page (several `<drope-studio>` elements in one
//! blog post) ask here, so three figures of the same model cost one download of its
//! weights, and views that start together wait for the first one's download instead of
//! starting their own.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::thread::LocalKey;

use engine::gpu::GpuContext;
use futures_channel::oneshot;

use crate::error::AppError;
use crate::manifest::{fetch_manifest, Manifest, ModelEntry};
use crate::model_store::{
    download_model, load_on, open_gpu, pooled_model, DownloadProgress, DownloadedModel, GpuStatus,
    LoadedModel, ModelPool,
};
use crate::samples::{fetch_samples, SampleSet};
use crate::turns::Turns;

/// A value computed once and handed to everyone who asks, including those who asked
/// while it was being computed.
enum Once<T> {
    Empty,
    Pending(Vec<oneshot::Sender<T>>),
    Ready(T),
}

/// Joins the computation in `slot` if there is one, else runs `make` and hands its
/// value to every waiter. `keep` says whether the value stays (a failed download does
/// not, so the next ask tries again).
async fn once<T: Clone + 'static, F: Future<Output = T>>(
    slot: impl Fn(&mut dyn FnMut(&mut Once<T>)) + Clone,
    make: impl FnOnce() -> F,
    keep: impl Fn(&T) -> bool,
) -> T {
    let mut waiting = None;
    let mut ready = None;
    slot(&mut |state| match state {
        Once::Ready(value) => ready = Some(value.clone()),
        Once::Pending(waiters) => {
            let (send, receive) = oneshot::channel();
            waiters.push(send);
            waiting = Some(receive);
        }
        Once::Empty => *state = Once::Pending(Vec::new()),
    });
    if let Some(value) = ready {
        return value;
    }
    if let Some(receive) = waiting {
        if let Ok(value) = receive.await {
            return value;
        }
        // No value came: the computing future was dropped mid-way (see `Abandoned`).
        // Compute here (or join whoever asked again first).
        return Box::pin(once(slot, make, keep)).await;
    }
    let abandoned = Abandoned(Some(slot.clone()), std::marker::PhantomData);
    let value = make().await;
    abandoned.disarm();
    let mut waiters = Vec::new();
    slot(&mut |state| {
        if let Once::Pending(list) = std::mem::replace(state, Once::Empty) {
            waiters = list;
        }
        if keep(&value) {
            *state = Once::Ready(value.clone());
        }
    });
    for waiter in waiters {
        let _ = waiter.send(value.clone());
    }
    value
}

/// Empties a pending slot if the future computing its value is dropped before the
/// value comes (a resource re-run or a view gone mid-download): the waiters' channels
/// close with it, so they compute the value themselves instead of waiting forever.
struct Abandoned<T, S: Fn(&mut dyn FnMut(&mut Once<T>))>(Option<S>, std::marker::PhantomData<T>);

impl<T, S: Fn(&mut dyn FnMut(&mut Once<T>))> Abandoned<T, S> {
    /// The value came: nothing to undo.
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl<T, S: Fn(&mut dyn FnMut(&mut Once<T>))> Drop for Abandoned<T, S> {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            slot(&mut |state| {
                if matches!(state, Once::Pending(_)) {
                    *state = Once::Empty;
                }
            });
        }
    }
}

type Download = Result<Rc<DownloadedModel>, String>;
type Fetched<T> = Result<Rc<T>, String>;

thread_local! {
    static MANIFEST: RefCell<Once<Fetched<Manifest>>> = const { RefCell::new(Once::Empty) };
    static SAMPLES: RefCell<Once<Fetched<SampleSet>>> = const { RefCell::new(Once::Empty) };
    static GPU: RefCell<Once<GpuStatus>> = const { RefCell::new(Once::Empty) };
    static DOWNLOADS: RefCell<HashMap<String, Once<Download>>> = RefCell::new(HashMap::new());
    static POOL: Rc<RefCell<ModelPool>> = Rc::new(RefCell::new(ModelPool::default()));
    static LOAD_TURNS: Turns = Turns::default();
    static LOCAL_OPENED: Cell<u64> = const { Cell::new(0) };
}

/// The page's WebGPU device (opened on the first ask).
pub async fn page_gpu() -> GpuStatus {
    once(
        |f: &mut dyn FnMut(&mut Once<GpuStatus>)| GPU.with(|cell| f(&mut cell.borrow_mut())),
        open_gpu,
        |_| true,
    )
    .await
}

/// Records that the page's WebGPU device was lost: views that ask afterwards get
/// [`GpuStatus::Failed`] and load their models on the CPU instead of finding the
/// loss again.
pub fn page_gpu_failed(reason: &str) {
    GPU.with(|cell| {
        let mut state = cell.borrow_mut();
        if matches!(*state, Once::Ready(_)) {
            *state = Once::Ready(GpuStatus::Failed(reason.to_string()));
        }
    });
}

/// Forgets the page's WebGPU device after it was lost, and every model loaded on it:
/// the next [`page_gpu`] asks the browser for a new adapter and device (the visitor
/// chose WebGPU again).
pub fn page_gpu_retry() {
    GPU.with(|cell| *cell.borrow_mut() = Once::Empty);
    POOL.with(|pool| pool.borrow_mut().forget_gpu_models());
}

/// The value `fetch` gives, fetched once per page and kept in `cell` (a failure is not
/// kept, so the next ask tries again).
async fn fetched_once<T: 'static, F: Future<Output = Result<T, AppError>>>(
    cell: &'static LocalKey<RefCell<Once<Fetched<T>>>>,
    fetch: impl FnOnce() -> F,
) -> Result<Rc<T>, AppError> {
    once(
        |f: &mut dyn FnMut(&mut Once<Fetched<T>>)| cell.with(|c| f(&mut c.borrow_mut())),
        || async { fetch().await.map(Rc::new).map_err(|e| e.to_string()) },
        Result::is_ok,
    )
    .await
    .map_err(AppError::Input)
}

/// `models/manifest.json`, fetched once per page.
pub async fn page_manifest() -> Result<Rc<Manifest>, AppError> {
    fetched_once(&MANIFEST, fetch_manifest).await
}

/// `samples.json`, fetched once per page.
pub async fn page_samples() -> Result<Rc<SampleSet>, AppError> {
    fetched_once(&SAMPLES, fetch_samples).await
}

/// The models the page has loaded, by id (each on the device it last ran on).
pub fn page_pool() -> Rc<RefCell<ModelPool>> {
    POOL.with(Rc::clone)
}

/// The model's files, downloaded once per page: a second ask while the first is
/// downloading waits for it (only the first reports progress).
pub async fn page_download(
    entry: &ModelEntry,
    on_progress: impl Fn(DownloadProgress),
) -> Result<Rc<DownloadedModel>, AppError> {
    let id = entry.id.clone();
    let slot = move |f: &mut dyn FnMut(&mut Once<Download>)| {
        DOWNLOADS.with(|map| f(map.borrow_mut().entry(id.clone()).or_insert(Once::Empty)))
    };
    let entry = entry.clone();
    once(
        slot,
        || async move {
            download_model(&entry, on_progress)
                .await
                .map_err(|e| e.to_string())
        },
        Result::is_ok,
    )
    .await
    .map_err(AppError::Input)
}

/// Whether a model's files are on the page already (downloaded, or opened from disk),
/// so loading it costs no download.
pub fn page_has_files(id: &str) -> bool {
    DOWNLOADS.with(|map| matches!(map.borrow().get(id), Some(Once::Ready(Ok(_)))))
}

/// How many times a model was opened from disk on this page: a run started before the
/// latest opening may hold a model that has since been replaced.
pub fn local_openings() -> u64 {
    LOCAL_OPENED.with(Cell::get)
}

/// Makes a model opened from disk available to every view of the page, as if it had
/// been downloaded: the next `page_model` for its id loads these files. Opening another
/// checkpoint under the same id replaces it (and the copy loaded from the old files).
pub fn add_local_model(download: Rc<DownloadedModel>) {
    LOCAL_OPENED.with(|n| n.set(n.get() + 1));
    let id = download.entry.id.clone();
    DOWNLOADS.with(|map| {
        map.borrow_mut()
            .insert(id.clone(), Once::Ready(Ok(download)));
    });
    POOL.with(|pool| pool.borrow_mut().remove(&id));
}

/// Loads onto a device run one at a time page-wide: a model's upload spans several
/// tasks, and two views asking for the same model meanwhile must get one copy (the
/// second finds it in the pool when its turn comes).
fn load_turns() -> Turns {
    LOAD_TURNS.with(Turns::clone)
}

/// The model on the GPU of `gpu` (the CPU when `None`): from the page's pool, else
/// downloaded (once per page) and loaded. The second value is the GPU's reason when it
/// refused the model and it came back on the CPU.
pub async fn page_model(
    entry: &ModelEntry,
    gpu: Option<Rc<GpuContext>>,
    on_progress: impl Fn(DownloadProgress),
) -> (Result<Rc<LoadedModel>, AppError>, Option<String>) {
    let pool = page_pool();
    // Instant for a model in the pool: only kept downloads are ever loaded.
    let download = match page_download(entry, &on_progress).await {
        Ok(download) => download,
        Err(e) => return (Err(e), None),
    };
    let _turn = load_turns().take().await;
    // Loaded before (by this view or another, perhaps while this one waited for its
    // turn): taken from the pool, moved to this device if need be.
    match pooled_model(&pool, &entry.id, gpu.clone()).await {
        (Ok(Some(model)), failure) => return (Ok(model), failure),
        (Ok(None), _) => {}
        (Err(e), failure) => return (Err(e), failure),
    }
    // Loading (parsing and uploading the weights) in tasks of their own.
    crate::pause::next_frame().await;
    let (loaded, failure) = load_on(gpu, |c| download.load(c, &on_progress)).await;
    if let Ok(model) = &loaded {
        pool.borrow_mut().insert(Rc::clone(model));
    }
    (loaded, failure)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    thread_local! {
        static SLOT: RefCell<Once<u32>> = const { RefCell::new(Once::Empty) };
    }

    fn poll<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(Waker::noop()))
    }

    fn slot(f: &mut dyn FnMut(&mut Once<u32>)) {
        SLOT.with(|cell| f(&mut cell.borrow_mut()))
    }

    #[test]
    fn waiters_get_the_value_once_and_recompute_when_its_computation_is_dropped() {
        let computed = Cell::new(0);
        let make = |value: u32| {
            let computed = &computed;
            move || async move {
                computed.set(computed.get() + 1);
                value
            }
        };
        // A computation that never finishes, joined by a waiter, then dropped.
        let mut stuck = Box::pin(once(slot, std::future::pending::<u32>, |_| true));
        assert!(poll(stuck.as_mut()).is_pending());
        let mut waiter = Box::pin(once(slot, make(7), |_| true));
        assert!(poll(waiter.as_mut()).is_pending());
        drop(stuck);
        assert_eq!(poll(waiter.as_mut()), Poll::Ready(7), "the waiter hangs");
        // Kept: later asks get it without computing.
        assert_eq!(poll(pin!(once(slot, make(8), |_| true))), Poll::Ready(7));
        assert_eq!(computed.get(), 1);
    }
}
