//! Drawing a 2048 x 2048 attention map (the largest the studio shows at 8L): colour
//! every cell and put the pixels on a canvas. Prints `BENCH` lines that `cargo xtask
//! bench` gathers into docs/BENCHMARKS.md (median of 5 draws per colour scale); as a
//! test it checks the canvas it drew, never the time.
#![cfg(target_arch = "wasm32")]

use app::analysis::AttentionMap;
use app::views::attention_heatmap::draw;
use app::views::HeatScale;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};
use web_sys::HtmlCanvasElement;

wasm_bindgen_test_configure!(run_in_browser);

const N: usize = 2048;

fn now_ms() -> f64 {
    js_sys::Date::now()
}

#[wasm_bindgen_test]
fn a_2048_map_draws() {
    // Row q: most weight near the diagonal, a little on the first token, the rest spread.
    let rows: Vec<Vec<f32>> = (0..N)
        .map(|q| {
            let mut row = vec![0.2 / (q + 1) as f32; q + 1];
            row[0] += 0.3;
            row[q] += 0.5;
            row
        })
        .collect();
    let map = AttentionMap::from_rows(rows.iter().map(|r| &r[..]));
    let document = web_sys::window().unwrap().document().unwrap();
    let canvas: HtmlCanvasElement = document.create_element("canvas").unwrap().unchecked_into();
    for (scale, name) in [(HeatScale::Linear, "linear"), (HeatScale::Log, "log")] {
        let mut times = Vec::new();
        for _ in 0..5 {
            let start = now_ms();
            draw(&canvas, &map, scale).unwrap();
            times.push(now_ms() - start);
        }
        times.sort_by(f64::total_cmp);
        console_log!(
            "BENCH\theatmap_ms\tChromium (wasm)\t{N}x{N} {name} scale\t{:.2}",
            times[2]
        );
        assert_eq!((canvas.width(), canvas.height()), (N as u32, N as u32));
    }
}
