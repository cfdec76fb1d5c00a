//! The training step with its backward pass written out by hand, on plain `f32` buffers.
//!
//! candle's autograd (what the trainer ran before, `train.rs`'s `Gradients::Autograd`)
//! spends about as long around the matrix products as in them (`trainer bench`): every
//! gradient is added into a fresh zero tensor, the products' backward copies transposes,
//! the heads are split and merged with copies, and every op allocates its output. Here
//! the model's forward keeps what its backward needs in buffers allocated once
//! ([`Workspace`]), the heads are strided blocks of the `[tokens, heads * D]`
//! activations, products read transposes in place and add into their destination
//! (`matmul.rs`), and the element-wise parts are the engine's own CPU kernels
//! (`engine::cpu::{norm, rotary, softmax, swiglu, cross_entropy}`), the same code the
//! candle ops and the studio's CPU path run. A test holds the loss and every gradient to
//! the autograd step's.

use candle_core::{Tensor, Var};
use engine::cpu::{cross_entropy, norm, rotary, softmax, swiglu, RotaryTables};
use engine::ModelConfig;

use crate::matmul::{matmul, Out, View, Write};

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// One block's weights (or their gradients), as flat row-major values.
#[derive(Clone, Default)]
struct Layer {
    input_norm: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    o: Vec<f32>,
    post_norm: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    down: Vec<f32>,
    qk_norm: Option<(Vec<f32>, Vec<f32>)>,
}

impl Layer {
    /// Every tensor in `tensor_layout` order (`engine::weights`), which is also the order
    /// of the trainer's variables.
    fn tensors_mut(&mut self) -> Vec<&mut Vec<f32>> {
        let mut out = vec![
            &mut self.input_norm,
            &mut self.q,
            &mut self.k,
            &mut self.v,
            &mut self.o,
            &mut self.post_norm,
            &mut self.gate,
            &mut self.up,
            &mut self.down,
        ];
        if let Some((q, k)) = &mut self.qk_norm {
            out.extend([q, k]);
        }
        out
    }
}

/// The model's weights (or their gradients), flat, in the variables' order.
#[derive(Default)]
struct Params {
    embed: Vec<f32>,
    layers: Vec<Layer>,
    norm: Vec<f32>,
    lm_head: Option<Vec<f32>>,
}

impl Params {
    /// Zero-length tensors shaped like `config`'s model (filled by [`Params::tensors_mut`]).
    fn empty(config: &ModelConfig) -> Self {
        let layer = Layer {
            qk_norm: config.qk_norm.then(Default::default),
            ..Layer::default()
        };
        Params {
            embed: Vec::new(),
            layers: vec![layer; config.num_hidden_layers],
            norm: Vec::new(),
            lm_head: (!config.tie_word_embeddings).then(Vec::new),
        }
    }

    fn tensors_mut(&mut self) -> Vec<&mut Vec<f32>> {
        let mut out = vec![&mut self.embed];
        for layer in &mut self.layers {
            out.extend(layer.tensors_mut());
        }
        out.push(&mut self.norm);
        if let Some(head) = &mut self.lm_head {
            out.push(head);
        }
        out
    }

    /// The output projection: `lm_head`, or the embedding when tied.
    fn head(&self) -> &[f32] {
        self.lm_head.as_deref().unwrap_or(&self.embed)
    }
}

/// What one layer's forward keeps for its backward.
#[derive(Default)]
struct Saved {
    /// The layer's input `[N, C]`, its first norm's output, and after attention's residual.
    x: Vec<f32>,
    h1: Vec<f32>,
    mid: Vec<f32>,
    h2: Vec<f32>,
    /// Queries and keys before the QK-norm (only with it), then as attention used them.
    q_raw: Vec<f32>,
    k_raw: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    /// `[B, heads, T, T]` attention probabilities.
    probs: Vec<f32>,
    /// Attention's output before `o_proj`, heads merged: `[N, heads * D]`.
    attended: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    act: Vec<f32>,
}

/// The buffers of a training step, allocated for one `(batch, length)` and reused by
/// every step of that shape.
#[derive(Default)]
pub struct Workspace {
    /// The sizes the buffers were made for (batch, length, the model's widths, layers,
    /// QK-norm): a step of any other shape reallocates.
    shape: Vec<usize>,
    layers: Vec<Saved>,
    /// The last block's output, the final norm's output, the logits (then their
    /// gradient).
    x_out: Vec<f32>,
    final_normed: Vec<f32>,
    logits: Vec<f32>,
    /// Gradients flowing back: the residual stream `[N, C]` and scratch of each size.
    dx: Vec<f32>,
    d_c: Vec<f32>,
    d_c2: Vec<f32>,
    d_q: Vec<f32>,
    d_q2: Vec<f32>,
    d_k: Vec<f32>,
    d_k2: Vec<f32>,
    d_v: Vec<f32>,
    d_i: Vec<f32>,
    d_gate: Vec<f32>,
    d_up: Vec<f32>,
    /// The output projection's weight gradient, transposed: `[hidden, vocab]`.
    head_t: Vec<f32>,
    /// One head's `[T, T]` scores and their gradient.
    tile: Vec<f32>,
    tile2: Vec<f32>,
}

/// Sizes of one step.
#[derive(Clone, Copy)]
struct Dims {
    batch: usize,
    len: usize,
    tokens: usize,
    hidden: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    inter: usize,
    vocab: usize,
    eps: f64,
}

impl Dims {
    fn new(config: &ModelConfig, batch: usize, len: usize) -> Self {
        Dims {
            batch,
            len,
            tokens: batch * len,
            hidden: config.hidden_size,
            heads: config.num_attention_heads,
            kv_heads: config.kv_heads(),
            head_dim: config.head_dim(),
            inter: config.intermediate_size,
            vocab: config.vocab_size,
            eps: config.rms_norm_eps,
        }
    }

    fn q_width(&self) -> usize {
        self.heads * self.head_dim
    }

    fn kv_width(&self) -> usize {
        self.kv_heads * self.head_dim
    }
}

impl Workspace {
    /// Sizes every buffer for one step shape once; a step of another shape resizes.
    fn prepare(&mut self, config: &ModelConfig, d: Dims) {
        let shape = vec![
            d.batch,
            d.len,
            d.hidden,
            d.heads,
            d.kv_heads,
            d.head_dim,
            d.inter,
            d.vocab,
            config.num_hidden_layers,
            usize::from(config.qk_norm),
        ];
        if self.shape == shape {
            return;
        }
        let (n, c, q, kv, i) = (d.tokens, d.hidden, d.q_width(), d.kv_width(), d.inter);
        let raw = |width: usize| {
            if config.qk_norm {
                vec![0f32; n * width]
            } else {
                Vec::new()
            }
        };
        self.layers = (0..config.num_hidden_layers)
            .map(|_| Saved {
                x: vec![0.0; n * c],
                h1: vec![0.0; n * c],
                mid: vec![0.0; n * c],
                h2: vec![0.0; n * c],
                q_raw: raw(q),
                k_raw: raw(kv),
                q: vec![0.0; n * q],
                k: vec![0.0; n * kv],
                v: vec![0.0; n * kv],
                probs: vec![0.0; d.batch * d.heads * d.len * d.len],
                attended: vec![0.0; n * q],
                gate: vec![0.0; n * i],
                up: vec![0.0; n * i],
                act: vec![0.0; n * i],
            })
            .collect();
        self.x_out = vec![0.0; n * c];
        self.final_normed = vec![0.0; n * c];
        self.logits = vec![0.0; n * d.vocab];
        self.dx = vec![0.0; n * c];
        self.d_c = vec![0.0; n * c];
        self.d_c2 = vec![0.0; n * c];
        self.d_q = vec![0.0; n * q];
        self.d_q2 = vec![0.0; n * q];
        self.d_k = vec![0.0; n * kv];
        self.d_k2 = vec![0.0; n * kv];
        self.d_v = vec![0.0; n * kv];
        self.d_i = vec![0.0; n * i];
        self.d_gate = vec![0.0; n * i];
        self.d_up = vec![0.0; n * i];
        self.head_t = vec![0.0; c * d.vocab];
        self.tile = vec![0.0; d.len * d.len];
        self.tile2 = vec![0.0; d.len * d.len];
        self.shape = shape;
    }
}

/// The loss of one batch and the gradient of every variable, in the variables' order.
pub struct LossAndGradients {
    /// Mean cross-entropy over the batch's tokens.
    pub loss: f64,
    /// One tensor per variable, shaped like it.
    pub gradients: Vec<Tensor>,
    /// Seconds in the forward pass and loss.
    pub forward: f64,
    /// Seconds in the backward pass.
    pub backward: f64,
}

/// `x @ w^T` for row-major `x: [rows, in]` and `w: [out, in]`, written or added into
/// `out: [rows, out]`.
fn linear(
    out: &mut [f32],
    x: &[f32],
    w: &[f32],
    (rows, inputs, outputs): (usize, usize, usize),
    write: Write,
) {
    matmul(
        Out::rows(out, rows, outputs),
        View::rows(x, rows, inputs),
        View::rows(w, outputs, inputs).t(),
        write,
    );
}

/// The gradients of a linear layer `y = x @ w^T` from `dy: [rows, out]`: adds `dy^T x`
/// to `dw: [out, in]` (or writes it), and writes or adds `dy @ w` into `dx: [rows, in]`.
#[allow(clippy::too_many_arguments)]
fn linear_backward(
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    (rows, inputs, outputs): (usize, usize, usize),
    dw: &mut [f32],
    dw_write: Write,
    dx: &mut [f32],
    dx_write: Write,
) {
    matmul(
        Out::rows(dw, outputs, inputs),
        View::rows(dy, rows, outputs).t(),
        View::rows(x, rows, inputs),
        dw_write,
    );
    matmul(
        Out::rows(dx, rows, inputs),
        View::rows(dy, rows, outputs),
        View::rows(w, outputs, inputs),
        dx_write,
    );
}

/// `dst += src`, element by element.
fn add_into(dst: &mut [f32], src: &[f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

/// RMSNorm's backward: writes the input's gradient into `dx_out` and adds the weight's
/// to `dw`.
fn norm_backward(x: &[f32], w: &[f32], g: &[f32], eps: f64, dx_out: &mut [f32], dw: &mut [f32]) {
    let mut acc = vec![0f64; w.len()];
    norm::backward(x, w, g, eps, dx_out, &mut acc);
    for (d, a) in dw.iter_mut().zip(acc) {
        *d += a as f32;
    }
}

/// Reads every variable's values into `params`, in order.
fn read_params(config: &ModelConfig, vars: &[(String, Var)]) -> Result<Params, String> {
    let mut params = Params::empty(config);
    let slots = params.tensors_mut();
    if slots.len() != vars.len() {
        return Err(format!(
            "the model has {} tensors, {} variables were given",
            slots.len(),
            vars.len()
        ));
    }
    for (slot, (_, var)) in slots.into_iter().zip(vars) {
        *slot = var
            .as_tensor()
            .flatten_all()
            .map_err(err)?
            .to_vec1::<f32>()
            .map_err(err)?;
    }
    Ok(params)
}

/// The loss of `inputs -> targets` (`[batch, length]` tokens each) under the variables'
/// values, and every variable's gradient; `rotary` holds the tables of positions
/// `0..length` (or `None` without positions), `logit_scale` multiplies every attention
/// logit.
pub fn loss_and_gradients(
    workspace: &mut Workspace,
    config: &ModelConfig,
    vars: &[(String, Var)],
    rotary: Option<&RotaryTables>,
    logit_scale: f64,
    (inputs, targets): (&[u32], &[u32]),
    (batch, len): (usize, usize),
) -> Result<LossAndGradients, String> {
    let started = std::time::Instant::now();
    if inputs.len() != batch * len || targets.len() != batch * len {
        return Err(format!(
            "a batch of {batch} x {len} tokens, got {} inputs and {} targets",
            inputs.len(),
            targets.len()
        ));
    }
    if let Some(&bad) = inputs
        .iter()
        .chain(targets)
        .find(|&&t| t as usize >= config.vocab_size)
    {
        return Err(format!(
            "token {bad} is not below the vocabulary of {}",
            config.vocab_size
        ));
    }
    let d = Dims::new(config, batch, len);
    let values = rotary.map(RotaryTables::cos_sin).transpose().map_err(err)?;
    if let Some((cos, _)) = &values {
        if cos.len() != len * (d.head_dim / 2) {
            return Err(format!(
                "rotary tables hold {} values, {len} positions of {} pairs need {}",
                cos.len(),
                d.head_dim / 2,
                len * (d.head_dim / 2)
            ));
        }
    }
    let tables = values
        .as_ref()
        .map(|(cos, sin)| (cos.as_slice(), sin.as_slice()));
    let params = read_params(config, vars)?;
    workspace.prepare(config, d);
    let scale = (logit_scale / (d.head_dim as f64).sqrt()) as f32;
    let loss = forward(
        workspace,
        &params,
        d,
        tables.as_ref(),
        scale,
        inputs,
        targets,
    );
    let forward_s = started.elapsed().as_secs_f64();
    // Every gradient shaped like its weight, zeroed.
    let mut grads = Params::empty(config);
    for (slot, (_, var)) in grads.tensors_mut().into_iter().zip(vars) {
        *slot = vec![0.0; var.elem_count()];
    }
    backward(
        workspace,
        &params,
        &mut grads,
        d,
        tables.as_ref(),
        scale,
        inputs,
    );
    let backward_s = started.elapsed().as_secs_f64() - forward_s;
    let gradients = grads
        .tensors_mut()
        .into_iter()
        .zip(vars)
        .map(|(g, (_, var))| {
            Tensor::from_vec(std::mem::take(g), var.shape(), var.device()).map_err(err)
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(LossAndGradients {
        loss,
        gradients,
        forward: forward_s,
        backward: backward_s,
    })
}

/// The row of the rotary tables for row `r` of a `[tokens, heads, D]` buffer.
fn position(r: usize, heads: usize, len: usize) -> usize {
    (r / heads) % len
}

/// Rotates `x` (`[tokens, heads, D]`) in place through `scratch`.
fn rotate_in_place(
    x: &mut Vec<f32>,
    scratch: &mut Vec<f32>,
    tables: (&[f32], &[f32]),
    d: Dims,
    heads: usize,
    inverse: bool,
) {
    let half = d.head_dim / 2;
    rotary::rotate(
        x,
        (tables.0, tables.1, half),
        |r| position(r, heads, d.len),
        inverse,
        scratch,
    );
    std::mem::swap(x, scratch);
}

/// The forward pass: fills the workspace and returns the mean loss; leaves the loss's
/// gradient with respect to the logits in `workspace.logits`.
fn forward(
    ws: &mut Workspace,
    p: &Params,
    d: Dims,
    tables: Option<&(&[f32], &[f32])>,
    scale: f32,
    inputs: &[u32],
    targets: &[u32],
) -> f64 {
    let (n, c, qw, kvw) = (d.tokens, d.hidden, d.q_width(), d.kv_width());
    let repeat = d.heads / d.kv_heads;
    // The embedding rows are the first layer's input.
    let first = &mut ws.layers[0].x;
    for (row, &token) in first.chunks_exact_mut(c).zip(inputs) {
        row.copy_from_slice(&p.embed[token as usize * c..][..c]);
    }
    for l in 0..p.layers.len() {
        let w = &p.layers[l];
        let (done, rest) = ws.layers.split_at_mut(l + 1);
        let s = &mut done[l];
        norm::forward(&s.x, &w.input_norm, d.eps, &mut s.h1);
        linear(&mut s.q, &s.h1, &w.q, (n, c, qw), Write::Set);
        linear(&mut s.k, &s.h1, &w.k, (n, c, kvw), Write::Set);
        linear(&mut s.v, &s.h1, &w.v, (n, c, kvw), Write::Set);
        if let Some((qn, kn)) = &w.qk_norm {
            std::mem::swap(&mut s.q, &mut s.q_raw);
            std::mem::swap(&mut s.k, &mut s.k_raw);
            norm::forward(&s.q_raw, qn, d.eps, &mut s.q);
            norm::forward(&s.k_raw, kn, d.eps, &mut s.k);
        }
        if let Some(&(cos, sin)) = tables {
            rotate_in_place(&mut s.q, &mut ws.d_q, (cos, sin), d, d.heads, false);
            rotate_in_place(&mut s.k, &mut ws.d_k, (cos, sin), d, d.kv_heads, false);
        }
        let tt = d.len * d.len;
        for b in 0..d.batch {
            for h in 0..d.heads {
                let g = h / repeat;
                let q = View::block(
                    &s.q,
                    b * d.len * qw + h * d.head_dim,
                    (d.len, d.head_dim),
                    qw,
                );
                let k = View::block(
                    &s.k,
                    b * d.len * kvw + g * d.head_dim,
                    (d.len, d.head_dim),
                    kvw,
                );
                let v = View::block(
                    &s.v,
                    b * d.len * kvw + g * d.head_dim,
                    (d.len, d.head_dim),
                    kvw,
                );
                matmul(Out::rows(&mut ws.tile, d.len, d.len), q, k.t(), Write::Set);
                let probs = &mut s.probs[(b * d.heads + h) * tt..][..tt];
                softmax::forward(&ws.tile, (d.len, d.len), scale, probs);
                matmul(
                    Out::block(
                        &mut s.attended,
                        b * d.len * qw + h * d.head_dim,
                        (d.len, d.head_dim),
                        qw,
                    ),
                    View::rows(probs, d.len, d.len),
                    v,
                    Write::Set,
                );
            }
        }
        s.mid.copy_from_slice(&s.x);
        linear(&mut s.mid, &s.attended, &w.o, (n, qw, c), Write::Add);
        norm::forward(&s.mid, &w.post_norm, d.eps, &mut s.h2);
        linear(&mut s.gate, &s.h2, &w.gate, (n, c, d.inter), Write::Set);
        linear(&mut s.up, &s.h2, &w.up, (n, c, d.inter), Write::Set);
        swiglu::forward(&s.gate, &s.up, &mut s.act);
        let next = match rest.first_mut() {
            Some(next) => &mut next.x,
            None => &mut ws.x_out,
        };
        next.copy_from_slice(&s.mid);
        linear(next, &s.act, &w.down, (n, d.inter, c), Write::Add);
    }
    norm::forward(&ws.x_out, &p.norm, d.eps, &mut ws.final_normed);
    linear(
        &mut ws.logits,
        &ws.final_normed,
        p.head(),
        (n, c, d.vocab),
        Write::Set,
    );
    cross_entropy::loss_and_gradient_in_place(&mut ws.logits, d.vocab, targets, 1.0 / n as f32)
        / n as f64
}

/// The backward pass from the logits' gradient in `ws.logits`: writes every gradient
/// into `g` (zeroed on entry).
fn backward(
    ws: &mut Workspace,
    p: &Params,
    g: &mut Params,
    d: Dims,
    tables: Option<&(&[f32], &[f32])>,
    scale: f32,
    inputs: &[u32],
) {
    let (n, c, qw, kvw) = (d.tokens, d.hidden, d.q_width(), d.kv_width());
    let repeat = d.heads / d.kv_heads;
    // The output projection's weight gradient, dlogits^T x: gemm reads the `[tokens,
    // vocab]` gradient transposed at about half its speed on rows (20 ms against 10 at
    // the recipe's shape, measured), so compute its transpose x^T dlogits, whose operands
    // it reads well, and transpose the `[hidden, vocab]` result into place.
    matmul(
        Out::rows(&mut ws.head_t, c, d.vocab),
        View::rows(&ws.final_normed, n, c).t(),
        View::rows(&ws.logits, n, d.vocab),
        Write::Set,
    );
    let d_head = match &mut g.lm_head {
        Some(head) => head,
        None => &mut g.embed,
    };
    for (v, row) in d_head.chunks_exact_mut(c).enumerate() {
        for (h, value) in row.iter_mut().enumerate() {
            *value = ws.head_t[h * d.vocab + v];
        }
    }
    matmul(
        Out::rows(&mut ws.d_c, n, c),
        View::rows(&ws.logits, n, d.vocab),
        View::rows(p.head(), d.vocab, c),
        Write::Set,
    );
    norm_backward(&ws.x_out, &p.norm, &ws.d_c, d.eps, &mut ws.dx, &mut g.norm);
    for l in (0..p.layers.len()).rev() {
        let (w, gl, s) = (&p.layers[l], &mut g.layers[l], &ws.layers[l]);
        // The MLP: x_out = mid + swiglu(h2 Wg^T, h2 Wu^T) Wd^T.
        linear_backward(
            &ws.dx,
            &s.act,
            &w.down,
            (n, d.inter, c),
            &mut gl.down,
            Write::Set,
            &mut ws.d_i,
            Write::Set,
        );
        swiglu::backward(&s.gate, &s.up, &ws.d_i, &mut ws.d_gate, &mut ws.d_up);
        linear_backward(
            &ws.d_gate,
            &s.h2,
            &w.gate,
            (n, c, d.inter),
            &mut gl.gate,
            Write::Set,
            &mut ws.d_c,
            Write::Set,
        );
        linear_backward(
            &ws.d_up,
            &s.h2,
            &w.up,
            (n, c, d.inter),
            &mut gl.up,
            Write::Set,
            &mut ws.d_c,
            Write::Add,
        );
        norm_backward(
            &s.mid,
            &w.post_norm,
            &ws.d_c,
            d.eps,
            &mut ws.d_c2,
            &mut gl.post_norm,
        );
        add_into(&mut ws.dx, &ws.d_c2);
        // Attention: mid = x + attended Wo^T.
        linear_backward(
            &ws.dx,
            &s.attended,
            &w.o,
            (n, qw, c),
            &mut gl.o,
            Write::Set,
            &mut ws.d_q2,
            Write::Set,
        );
        let tt = d.len * d.len;
        for b in 0..d.batch {
            for h in 0..d.heads {
                let kv = h / repeat;
                // The first head of a key/value group writes its gradient, the rest add.
                let kv_write = if h % repeat == 0 {
                    Write::Set
                } else {
                    Write::Add
                };
                let q_at = b * d.len * qw + h * d.head_dim;
                let kv_at = b * d.len * kvw + kv * d.head_dim;
                let block = (d.len, d.head_dim);
                let probs = View::rows(&s.probs[(b * d.heads + h) * tt..][..tt], d.len, d.len);
                let d_out = View::block(&ws.d_q2, q_at, block, qw);
                // dP = dO V^T, dV = P^T dO.
                matmul(
                    Out::rows(&mut ws.tile, d.len, d.len),
                    d_out,
                    View::block(&s.v, kv_at, block, kvw).t(),
                    Write::Set,
                );
                matmul(
                    Out::block(&mut ws.d_v, kv_at, block, kvw),
                    probs.t(),
                    d_out,
                    kv_write,
                );
                // dS = softmax's backward; dQ = dS K, dK = dS^T Q.
                softmax::backward(
                    &s.probs[(b * d.heads + h) * tt..][..tt],
                    &ws.tile,
                    (d.len, d.len),
                    scale,
                    &mut ws.tile2,
                );
                let d_scores = View::rows(&ws.tile2, d.len, d.len);
                matmul(
                    Out::block(&mut ws.d_q, q_at, block, qw),
                    d_scores,
                    View::block(&s.k, kv_at, block, kvw),
                    Write::Set,
                );
                matmul(
                    Out::block(&mut ws.d_k, kv_at, block, kvw),
                    d_scores.t(),
                    View::block(&s.q, q_at, block, qw),
                    kv_write,
                );
            }
        }
        if let Some(&(cos, sin)) = tables {
            // A rotation's gradient is the inverse rotation.
            rotate_in_place(&mut ws.d_q, &mut ws.d_q2, (cos, sin), d, d.heads, true);
            rotate_in_place(&mut ws.d_k, &mut ws.d_k2, (cos, sin), d, d.kv_heads, true);
        }
        if let (Some((qn, kn)), Some((gqn, gkn))) = (&w.qk_norm, &mut gl.qk_norm) {
            norm_backward(&s.q_raw, qn, &ws.d_q, d.eps, &mut ws.d_q2, gqn);
            norm_backward(&s.k_raw, kn, &ws.d_k, d.eps, &mut ws.d_k2, gkn);
            std::mem::swap(&mut ws.d_q, &mut ws.d_q2);
            std::mem::swap(&mut ws.d_k, &mut ws.d_k2);
        }
        linear_backward(
            &ws.d_q,
            &s.h1,
            &w.q,
            (n, c, qw),
            &mut gl.q,
            Write::Set,
            &mut ws.d_c,
            Write::Set,
        );
        linear_backward(
            &ws.d_k,
            &s.h1,
            &w.k,
            (n, c, kvw),
            &mut gl.k,
            Write::Set,
            &mut ws.d_c,
            Write::Add,
        );
        linear_backward(
            &ws.d_v,
            &s.h1,
            &w.v,
            (n, c, kvw),
            &mut gl.v,
            Write::Set,
            &mut ws.d_c,
            Write::Add,
        );
        norm_backward(
            &s.x,
            &w.input_norm,
            &ws.d_c,
            d.eps,
            &mut ws.d_c2,
            &mut gl.input_norm,
        );
        add_into(&mut ws.dx, &ws.d_c2);
    }
    // The embedding's gradient: each input token's row gets its position's gradient
    // (after the output projection's, when tied).
    for (row, &token) in ws.dx.chunks_exact(c).zip(inputs) {
        add_into(&mut g.embed[token as usize * c..][..c], row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimizer::gradients_in_order;
    use crate::train::{training_rotary, variables};
    use engine::cpu::{cross_entropy, ForwardSettings, Kernels, Transformer};
    use engine::init::{random_weights, SplitMix64};
    use engine::ModelWeights;

    /// The loss and gradients of candle's autograd over the reference ops, the definition
    /// the hand-written step must agree with.
    fn autograd(
        config: &ModelConfig,
        vars: &[(String, Var)],
        settings: &ForwardSettings<'_>,
        inputs: &Tensor,
        targets: &Tensor,
    ) -> (f64, Vec<Tensor>) {
        let weights = ModelWeights::from_layout(config, |name, _| {
            Ok(vars
                .iter()
                .find(|(n, _)| n == name)
                .unwrap()
                .1
                .as_tensor()
                .clone())
        })
        .unwrap();
        let logits = Transformer::new(config, &weights)
            .with_kernels(Kernels::Reference)
            .forward(inputs, settings, None, |_, _| Ok(()))
            .unwrap();
        let loss = cross_entropy(&logits, targets).unwrap();
        let grads = gradients_in_order(vars, &loss.backward().unwrap()).unwrap();
        (loss.to_scalar::<f32>().unwrap() as f64, grads)
    }

    /// Checks loss and every gradient of the hand-written step against autograd's, each
    /// gradient to within `1e-4` of its own largest value.
    fn agrees_with_autograd(json: &str, logit_scale: f64) {
        let config = ModelConfig::from_json(json.as_bytes()).unwrap();
        // Weights far from zero (0.3), so attention is peaked and the norms matter.
        let weights = random_weights(&config, 3, 0.3).unwrap();
        let vars = variables(&weights).unwrap();
        let (batch, len) = (3, config.training_length());
        let mut rng = SplitMix64::new(11);
        let vocab = config.vocab_size as u64;
        let mut tokens = || -> Vec<u32> {
            (0..batch * len)
                .map(|_| (rng.next_u64() % vocab) as u32)
                .collect()
        };
        let (inputs, targets) = (tokens(), tokens());
        let rotary = training_rotary(&config).unwrap();
        let settings = ForwardSettings {
            rotary: rotary.as_ref(),
            logit_scale,
            head_scales: None,
        };
        let as_tensor =
            |t: &[u32]| Tensor::from_slice(t, (batch, len), &candle_core::Device::Cpu).unwrap();
        let (loss, expected) = autograd(
            &config,
            &vars,
            &settings,
            &as_tensor(&inputs),
            &as_tensor(&targets),
        );
        let mut workspace = Workspace::default();
        // Twice through one workspace: the second step must not see the first's buffers.
        for _ in 0..2 {
            let out = loss_and_gradients(
                &mut workspace,
                &config,
                &vars,
                rotary.as_ref(),
                logit_scale,
                (&inputs, &targets),
                (batch, len),
            )
            .unwrap();
            assert!(
                (out.loss - loss).abs() < 1e-5,
                "loss {} vs {loss}",
                out.loss
            );
            for ((name, _), (got, want)) in vars.iter().zip(out.gradients.iter().zip(&expected)) {
                assert_eq!(got.dims(), want.dims(), "{name}");
                let want = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
                assert!(scale > 0.0, "{name}: the reference gradient is zero");
                let diff = got
                    .iter()
                    .zip(&want)
                    .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(
                    diff <= 1e-4 * scale,
                    "{name}: differs by {diff}, largest {scale}"
                );
            }
        }
    }

    #[test]
    fn rope_with_grouped_heads_qk_norm_and_an_untied_head_matches_autograd() {
        agrees_with_autograd(
            r#"{"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "intermediate_size": 48, "vocab_size": 50,
            "max_position_embeddings": 12, "tie_word_embeddings": false,
            "position_embedding": "rope", "qk_norm": true}"#,
            1.0,
        );
    }

    #[test]
    fn no_positions_tied_embeddings_and_a_logit_scale_match_autograd() {
        agrees_with_autograd(
            r#"{"hidden_size": 24, "num_hidden_layers": 3, "num_attention_heads": 3,
            "intermediate_size": 40, "vocab_size": 40, "max_position_embeddings": 10,
            "tie_word_embeddings": true, "position_embedding": "none"}"#,
            1.7,
        );
    }

    #[test]
    fn a_batch_of_the_wrong_size_or_an_unknown_token_is_refused() {
        let config = ModelConfig::from_json(
            br#"{"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
            "intermediate_size": 8, "vocab_size": 10, "max_position_embeddings": 4}"#,
        )
        .unwrap();
        let vars = variables(&random_weights(&config, 1, 0.1).unwrap()).unwrap();
        let mut ws = Workspace::default();
        let run = |ws: &mut Workspace, inputs: &[u32], targets: &[u32]| {
            loss_and_gradients(ws, &config, &vars, None, 1.0, (inputs, targets), (1, 4))
        };
        let err = run(&mut ws, &[1, 2, 3], &[1, 2, 3, 4]).err().unwrap();
        assert!(err.contains("1 x 4"), "{err}");
        let err = run(&mut ws, &[1, 2, 3, 10], &[1, 2, 3, 4]).err().unwrap();
        assert!(err.contains("token 10"), "{err}");
        assert!(run(&mut ws, &[1, 2, 3, 9], &[1, 2, 3, 4]).is_ok());
    }
}
