//! Helpers shared by the component tests: a container to mount into, a way to let the
//! reactive system settle, and DOM queries.
#![allow(dead_code)]

use wasm_bindgen::JsCast;
use web_sys::{Element, HtmlElement};

/// A fresh `<div>` in the body to mount one component into.
pub fn container() -> HtmlElement {
    let document = web_sys::window().unwrap().document().unwrap();
    let div: HtmlElement = document.create_element("div").unwrap().unchecked_into();
    document.body().unwrap().append_child(&div).unwrap();
    div
}

/// Lets effects and reactive updates run.
pub async fn settle() {
    for _ in 0..5 {
        leptos::task::tick().await;
    }
}

/// Every element under `root` matching `selector`.
pub fn all(root: &HtmlElement, selector: &str) -> Vec<Element> {
    let list = root.query_selector_all(selector).unwrap();
    (0..list.length())
        .map(|i| list.item(i).unwrap().unchecked_into())
        .collect()
}
