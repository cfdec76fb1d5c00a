//! The native half of `cargo xtask bench` (run it through xtask, which also runs the
//! browser half and writes docs/BENCHMARKS.md):
//! `cargo run --profile bench-native -p engine --features gpu --example bench -- [--quick]
//! [--gpu-only] [--large-matmul] [--tilings] [--lengths 256,2048] [--forward-only]
//! [--model DIR]`.
//! Forward-pass times of the shipped RoPE model on the CPU path and on the WebGPU path
//! (whatever Vulkan adapter exists: lavapipe here, a real GPU on a benchmark machine),
//! the cost of extending by one token, and matmul GFLOP/s of the WGSL kernel beside
//! candle's CPU matmul on the same shapes; `--tilings` also times every register
//! blocking of the matmul kernel (`MatmulTiling::ALL`) on each shape.

#[path = "../tests/support/bench.rs"]
mod bench;

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use candle_core::{Device, Tensor};
use engine::cpu::CpuBackend;
use engine::gpu::bench::MatmulBench;
use engine::gpu::kernels::{MatVecShape, MatmulTiling};
use engine::gpu::{GpuBackend, GpuContext};
use pollster::block_on;

const LENGTHS: &[usize] = &[256, 512, 1024, 2048];

fn main() {
    if let Err(e) = run() {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let gpu_only = args.iter().any(|a| a == "--gpu-only");
    let large = args.iter().any(|a| a == "--large-matmul");
    let tilings = args.iter().any(|a| a == "--tilings");
    let forward_only = args.iter().any(|a| a == "--forward-only");
    // --cpu-only: the CPU forward pass alone, under its own --label (xtask runs it once
    // more with RAYON_NUM_THREADS=1: the single-threaded reference for the wasm path).
    let cpu_only = args.iter().any(|a| a == "--cpu-only");
    let cpu_label = match args.iter().position(|a| a == "--label") {
        Some(i) => args.get(i + 1).ok_or("--label needs a name")?.clone(),
        None => "CPU native".to_string(),
    };
    // --lengths: fewer prompt lengths (with DROPE_GPU_PROFILE, to profile one pass).
    let lengths: Vec<usize> = match args.iter().position(|a| a == "--lengths") {
        Some(i) => args
            .get(i + 1)
            .ok_or("--lengths needs a list such as 256,2048")?
            .split(',')
            .map(|n| {
                n.parse()
                    .map_err(|_| format!("--lengths: bad number {n:?}"))
            })
            .collect::<Result<_, _>>()?,
        None => LENGTHS.to_vec(),
    };
    let started = Instant::now();
    let now_ms = move || started.elapsed().as_secs_f64() * 1e3;
    let repeats = if quick { 1 } else { 3 };

    // --model DIR: the copied binary on a benchmark machine reads the checkout there.
    let dir = match args.iter().position(|a| a == "--model") {
        Some(i) => PathBuf::from(args.get(i + 1).ok_or("--model needs a folder")?),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../public/models/rope"),
    };
    let read = |f: &str| std::fs::read(dir.join(f)).map_err(|e| format!("{f}: {e}"));
    let (config, weights) = (read("config.json")?, read("model.safetensors")?);

    if !gpu_only {
        let cpu = CpuBackend::load(&config, &weights).map_err(|e| e.to_string())?;
        block_on(bench::forward_suite(
            &cpu_label, &cpu, &lengths, repeats, &now_ms,
        ))?;
    }
    if cpu_only {
        return Ok(());
    }
    let context = match block_on(GpuContext::new()) {
        Ok(context) => Rc::new(context),
        Err(e) => {
            println!("no GPU adapter: {e}");
            return Ok(());
        }
    };
    println!("BENCH\tadapter\t{}\t-\t0", context.adapter);
    let gpu =
        GpuBackend::load(Rc::clone(&context), &config, &weights).map_err(|e| e.to_string())?;
    block_on(bench::forward_suite(
        "WebGPU native",
        &gpu,
        &lengths,
        repeats,
        &now_ms,
    ))?;
    // Both shapes of the few-rows kernel side by side (the adapter's own is used above):
    // which one extends a prompt faster is a property of the device, so it is measured.
    if let Some(&n) = lengths.iter().max() {
        let own = context.matvec_shape();
        for shape in MatVecShape::ALL {
            context.set_matvec_shape(shape);
            let ms = block_on(bench::extend_in_run_ms(&gpu, n, repeats, &now_ms))?;
            let mark = if shape == own { ", the adapter's" } else { "" };
            bench::report(
                "extend_one",
                "WebGPU native",
                &format!("T={n} ms, in a run of +1s, matvec {}{mark}", shape.name()),
                ms,
            );
        }
        context.set_matvec_shape(own);
    }

    // Matmul shapes: the model's logits (T=2048, vocab 4096, width 192), its MLP
    // (2048 x 1024 x 192 stacked gate/up), and a square one; the large one for real GPUs.
    if forward_only {
        return Ok(());
    }
    let mut shapes = vec![(2048, 4096, 192), (2048, 1024, 192), (1024, 1024, 1024)];
    if large {
        shapes.push((4096, 4096, 4096));
        shapes.push((8192, 8192, 8192));
    }
    for (m, n, k) in shapes {
        let flops = 2.0 * (m * n * k) as f64;
        let case = format!("{m}x{n}x{k}");
        let gflops = |bench: MatmulBench<'_>, budget: f64| -> Result<f64, String> {
            block_on(bench.run(1)).map_err(|e| e.to_string())?;
            let repeats = ((budget / flops) as usize).clamp(3, 200);
            let start = now_ms();
            block_on(bench.run(repeats)).map_err(|e| e.to_string())?;
            let seconds = (now_ms() - start) / 1e3 / repeats as f64;
            Ok(flops / seconds / 1e9)
        };
        let chosen = gflops(MatmulBench::new(&context, m, n, k), 5e10)?;
        bench::report("matmul_gflops", "WebGPU native", &case, chosen);
        if tilings {
            for tiling in MatmulTiling::ALL
                .into_iter()
                .filter(|t| t.fits(&context.limits))
            {
                let bench = MatmulBench::with_tiling(&context, m, n, k, tiling);
                let value = gflops(bench, 2e10)?;
                bench::report("matmul_tiling", &tiling.name(), &case, value);
            }
        }
        if !gpu_only && m * n * k <= 1 << 31 {
            let x = Tensor::ones((m, k), candle_core::DType::F32, &Device::Cpu)
                .map_err(|e| e.to_string())?;
            let w = Tensor::ones((n, k), candle_core::DType::F32, &Device::Cpu)
                .map_err(|e| e.to_string())?;
            let wt = w.t().map_err(|e| e.to_string())?;
            let _ = x.matmul(&wt).map_err(|e| e.to_string())?;
            let cpu_repeats = 3;
            let start = now_ms();
            for _ in 0..cpu_repeats {
                let _ = x.matmul(&wt).map_err(|e| e.to_string())?;
            }
            let seconds = (now_ms() - start) / 1e3 / cpu_repeats as f64;
            bench::report("matmul_gflops", "candle CPU", &case, flops / seconds / 1e9);
        }
    }
    Ok(())
}
