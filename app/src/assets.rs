//! Where the studio's files (models, results, samples, the CPU worker) are fetched
//! from. On the studio page they sit beside the page, so relative paths work as they
//! are; an embed on someone else's page (a blog post at `/posts/drope.html` loading
//! `/drope-studio/drope-studio.js`) must fetch them beside the *script* instead. The
//! loader (`public/drope-studio.js`) tells the wasm where that is, once, before any
//! view mounts.

use std::cell::RefCell;

thread_local! {
    static BASE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Sets the folder every relative asset path is resolved against (an absolute URL
/// ending in `/`). Not setting it keeps paths relative to the page.
pub fn set_asset_base(base: &str) -> Result<(), String> {
    let parsed = web_sys::Url::new(base).map_err(|_| format!("not an absolute URL: `{base}`"))?;
    let mut href = parsed.href();
    // "https://host/drope-studio" names a file; the folder is what was meant.
    if !href.ends_with('/') {
        href.push('/');
    }
    BASE.with(|cell| *cell.borrow_mut() = Some(href));
    Ok(())
}

/// `path` (relative, like `models/manifest.json`) as the URL to fetch: resolved against
/// the asset base when one is set, else unchanged (relative to the page).
pub fn asset_url(path: &str) -> String {
    BASE.with(|cell| match cell.borrow().as_deref() {
        Some(base) => web_sys::Url::new_with_base(path, base)
            .map(|u| u.href())
            .unwrap_or_else(|_| path.to_string()),
        None => path.to_string(),
    })
}

/// The asset base, if one was set (the embed's link back to the studio uses it).
pub fn asset_base() -> Option<String> {
    BASE.with(|cell| cell.borrow().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    // web_sys::Url needs a browser.
    #[wasm_bindgen_test::wasm_bindgen_test]
    fn paths_resolve_beside_the_script_once_a_base_is_set() {
        assert_eq!(asset_url("models/manifest.json"), "models/manifest.json");
        assert!(set_asset_base("not a url").is_err());
        set_asset_base("https://example.org/drope-studio").unwrap();
        assert_eq!(
            asset_url("models/manifest.json"),
            "https://example.org/drope-studio/models/manifest.json"
        );
        assert_eq!(
            asset_base().as_deref(),
            Some("https://example.org/drope-studio/")
        );
        BASE.with(|cell| *cell.borrow_mut() = None);
    }
}
