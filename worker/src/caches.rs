//! The worker's KV caches, by the page's cache id. A forward pass takes its cache out
//! while it runs and puts it back after; a `drop` or `unload` that arrives meanwhile
//! (the page let go of a session whose pass was still running) is remembered, so the
//! pass does not put back a cache nobody will use or drop again.

use std::collections::HashMap;

/// Caches of type `C`, each tagged with the id of the model it belongs to.
pub struct Caches<C> {
    idle: HashMap<u32, (u32, C)>,
    /// Caches taken by a running pass: their model, and whether they were dropped since.
    busy: HashMap<u32, (u32, bool)>,
}

impl<C> Default for Caches<C> {
    fn default() -> Self {
        Caches {
            idle: HashMap::new(),
            busy: HashMap::new(),
        }
    }
}

impl<C> Caches<C> {
    /// Takes cache `id` of `model` for a pass (`None`: a new cache, the page's first
    /// pass with it).
    pub fn take(&mut self, id: u32, model: u32) -> Option<C> {
        self.busy.insert(id, (model, false));
        self.idle.remove(&id).map(|(_, cache)| cache)
    }

    /// Ends the pass that took `id`: keeps `cache` (the pass succeeded) unless the cache
    /// was dropped meanwhile; `None` forgets it (a failed pass may have left part of
    /// itself in it).
    pub fn finish(&mut self, id: u32, cache: Option<C>) {
        let Some((model, dropped)) = self.busy.remove(&id) else {
            return;
        };
        if let (false, Some(cache)) = (dropped, cache) {
            self.idle.insert(id, (model, cache));
        }
    }

    /// Forgets cache `id` (now, or when the pass using it ends).
    pub fn drop_cache(&mut self, id: u32) {
        self.idle.remove(&id);
        if let Some((_, dropped)) = self.busy.get_mut(&id) {
            *dropped = true;
        }
    }

    /// Forgets every cache of `model`.
    pub fn unload(&mut self, model: u32) {
        self.idle.retain(|_, (owner, _)| *owner != model);
        for (owner, dropped) in self.busy.values_mut() {
            if *owner == model {
                *dropped = true;
            }
        }
    }

    /// How many caches are kept between passes.
    #[cfg(test)]
    pub fn kept(&self) -> usize {
        self.idle.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_is_kept_between_passes_until_dropped() {
        let mut caches = Caches::default();
        assert_eq!(caches.take(1, 7), None);
        caches.finish(1, Some("a"));
        assert_eq!(caches.take(1, 7), Some("a"));
        caches.finish(1, Some("ab"));
        assert_eq!(caches.kept(), 1);
        caches.drop_cache(1);
        assert_eq!(caches.kept(), 0);
    }

    #[test]
    fn a_drop_during_a_pass_keeps_the_pass_from_putting_it_back() {
        let mut caches = Caches::default();
        // The page dropped the session during its first pass (before any reply).
        assert_eq!(caches.take(1, 7), None);
        caches.drop_cache(1);
        caches.finish(1, Some("a"));
        assert_eq!(caches.kept(), 0);
        // The same during a later pass.
        caches.take(2, 7);
        caches.finish(2, Some("b"));
        caches.take(2, 7);
        caches.drop_cache(2);
        caches.finish(2, Some("bc"));
        assert_eq!(caches.kept(), 0);
    }

    #[test]
    fn unloading_a_model_forgets_its_caches_even_mid_pass() {
        let mut caches = Caches::default();
        caches.take(1, 7);
        caches.finish(1, Some("kept of 7"));
        caches.take(2, 8);
        caches.finish(2, Some("kept of 8"));
        caches.take(3, 7);
        caches.unload(7);
        caches.finish(3, Some("running for 7"));
        assert_eq!(caches.kept(), 1);
        assert_eq!(caches.take(2, 8), Some("kept of 8"));
    }

    #[test]
    fn a_failed_pass_forgets_its_cache() {
        let mut caches = Caches::default();
        caches.take(1, 7);
        caches.finish(1, Some("a"));
        caches.take(1, 7);
        caches.finish(1, None);
        assert_eq!(caches.kept(), 0);
    }
}
