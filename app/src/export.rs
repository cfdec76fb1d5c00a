//! Saving a figure: its data as CSV or JSON, and an SVG chart as a PNG, through a
//! download link (no server involved). The PNG carries the page's own style sheet, so it
//! looks like the chart on screen.

use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{
    Blob, BlobPropertyBag, Element, HtmlAnchorElement, HtmlCanvasElement, HtmlImageElement, Url,
};

use crate::error::js_message;

/// Pixels per SVG unit in exported PNGs (sharp on high-density screens and in print).
const PNG_SCALE: f64 = 2.0;

/// Offers the resource at `url` (an object or data URL) as a download named `filename`.
fn offer(url: &str, filename: &str) -> Result<(), String> {
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?;
    let anchor: HtmlAnchorElement = document
        .create_element("a")
        .map_err(|e| js_message(&e))?
        .unchecked_into();
    anchor.set_href(url);
    anchor.set_download(filename);
    anchor.click();
    Ok(())
}

/// Offers `blob` as a download named `filename`.
fn save_blob(blob: &Blob, filename: &str) -> Result<(), String> {
    let url = Url::create_object_url_with_blob(blob).map_err(|e| js_message(&e))?;
    let offered = offer(&url, filename);
    let _ = Url::revoke_object_url(&url);
    offered
}

fn blob_of(text: &str, mime: &str) -> Result<Blob, String> {
    let parts = js_sys::Array::of1(&JsValue::from_str(text));
    let options = BlobPropertyBag::new();
    options.set_type(mime);
    Blob::new_with_str_sequence_and_options(&parts, &options).map_err(|e| js_message(&e))
}

/// Offers `text` as a download.
pub fn save_text(filename: &str, mime: &str, text: &str) -> Result<(), String> {
    save_blob(&blob_of(text, mime)?, filename)
}

/// A CSV field, quoted when it holds a separator, a quote or a line break.
pub fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// Offers a canvas' pixels as a PNG named `filename` (the attention map: one pixel per
/// query/key pair, exactly as computed).
pub fn save_canvas_as_png(canvas: &HtmlCanvasElement, filename: &str) -> Result<(), String> {
    if canvas.width() == 0 {
        return Err("there is no map to save yet".into());
    }
    let data_url = canvas
        .to_data_url_with_type("image/png")
        .map_err(|e| js_message(&e))?;
    offer(&data_url, filename)
}

/// Renders `svg` (with the page's style sheet inlined) onto a canvas at
/// [`PNG_SCALE`] and offers it as `filename`. Asynchronous: the image decodes first.
pub fn save_svg_as_png(svg: &Element, filename: &str, style_sheet: &str) -> Result<(), String> {
    let copy: Element = svg
        .clone_node_with_deep(true)
        .map_err(|e| js_message(&e))?
        .unchecked_into();
    copy.set_attribute("xmlns", "http://www.w3.org/2000/svg")
        .map_err(|e| js_message(&e))?;
    let rect = svg.get_bounding_client_rect();
    let (width, height) = (rect.width().max(1.0), rect.height().max(1.0));
    copy.set_attribute("width", &width.to_string())
        .map_err(|e| js_message(&e))?;
    copy.set_attribute("height", &height.to_string())
        .map_err(|e| js_message(&e))?;
    // The chart inside an outer <svg> that holds the style sheet: the sheet's rules are
    // scoped to match below their root (style.css), so the chart must not be the root.
    // CDATA: the sheet may hold `<` or `&`, which would end the SVG's XML (the image
    // would never load).
    let markup = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\">\
         <style><![CDATA[{}]]></style>{}</svg>",
        style_sheet.replace("]]>", ""),
        copy.outer_html()
    );
    let url = Url::create_object_url_with_blob(&blob_of(&markup, "image/svg+xml")?)
        .map_err(|e| js_message(&e))?;
    let image = HtmlImageElement::new().map_err(|e| js_message(&e))?;
    let filename = filename.to_string();
    let loaded = image.clone();
    let svg_url = url.clone();
    let on_load = Closure::once(move || {
        let _ = Url::revoke_object_url(&svg_url);
        let drawn = (|| -> Result<(), String> {
            let document = web_sys::window()
                .and_then(|w| w.document())
                .ok_or("no document")?;
            let canvas: HtmlCanvasElement = document
                .create_element("canvas")
                .map_err(|e| js_message(&e))?
                .unchecked_into();
            canvas.set_width((width * PNG_SCALE) as u32);
            canvas.set_height((height * PNG_SCALE) as u32);
            let context: web_sys::CanvasRenderingContext2d = canvas
                .get_context("2d")
                .map_err(|e| js_message(&e))?
                .ok_or("no 2d context")?
                .unchecked_into();
            // An opaque background: a transparent PNG reads badly in most viewers.
            context.set_fill_style_str("#ffffff");
            context.fill_rect(0.0, 0.0, width * PNG_SCALE, height * PNG_SCALE);
            context
                .draw_image_with_html_image_element_and_dw_and_dh(
                    &loaded,
                    0.0,
                    0.0,
                    width * PNG_SCALE,
                    height * PNG_SCALE,
                )
                .map_err(|e| js_message(&e))?;
            let data_url = canvas
                .to_data_url_with_type("image/png")
                .map_err(|e| js_message(&e))?;
            offer(&data_url, &filename)
        })();
        if let Err(e) = drawn {
            web_sys::console::error_1(&JsValue::from_str(&format!("PNG export failed: {e}")));
        }
    });
    let failed_url = url.clone();
    let on_error = Closure::once(move || {
        let _ = Url::revoke_object_url(&failed_url);
        web_sys::console::error_1(&JsValue::from_str(
            "PNG export failed: the chart's SVG could not be drawn as an image",
        ));
    });
    image.set_onload(Some(on_load.as_ref().unchecked_ref()));
    image.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    // Each closure runs at most once, when the image has loaded or failed; they live until then.
    on_load.forget();
    on_error.forget();
    image.set_src(&url);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field(" a,b"), "\" a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("line\nbreak"), "\"line\nbreak\"");
    }
}
