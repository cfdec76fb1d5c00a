// Hugging Face Llama checkpoints with seeded random weights, written in the test (never
// committed): the files a visitor would open in the studio, and broken variants of them.

/** A seeded generator of normal values (mulberry32 and Box-Muller). */
function normals(seed) {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(uniform() || 1e-12)) * Math.cos(2 * Math.PI * uniform());
}

/** Every tensor of a Llama config, with Hugging Face's names and shapes. */
export function llamaTensors(config) {
  const d = config.hidden_size;
  const headDim = config.head_dim ?? d / config.num_attention_heads;
  const q = config.num_attention_heads * headDim;
  const kv = config.num_key_value_heads * headDim;
  const f = config.intermediate_size;
  const out = [['model.embed_tokens.weight', [config.vocab_size, d]]];
  for (let l = 0; l < config.num_hidden_layers; l++) {
    const p = `model.layers.${l}`;
    out.push(
      [`${p}.input_layernorm.weight`, [d]],
      [`${p}.self_attn.q_proj.weight`, [q, d]],
      [`${p}.self_attn.k_proj.weight`, [kv, d]],
      [`${p}.self_attn.v_proj.weight`, [kv, d]],
      [`${p}.self_attn.o_proj.weight`, [d, q]],
      [`${p}.post_attention_layernorm.weight`, [d]],
      [`${p}.mlp.gate_proj.weight`, [f, d]],
      [`${p}.mlp.up_proj.weight`, [f, d]],
      [`${p}.mlp.down_proj.weight`, [d, f]],
    );
  }
  out.push(['model.norm.weight', [d]]);
  if (!config.tie_word_embeddings) out.push(['lm_head.weight', [config.vocab_size, d]]);
  return out;
}

/**
 * A safetensors file of `tensors` ([name, shape, values: Float32Array]) stored as
 * `dtype` ('BF16', 'F16' is not needed here, or 'F32').
 */
export function safetensors(tensors, dtype = 'BF16') {
  const size = dtype === 'F32' ? 4 : 2;
  const header = {};
  let at = 0;
  for (const [name, shape, values] of tensors) {
    header[name] = { dtype, shape, data_offsets: [at, at + values.length * size] };
    at += values.length * size;
  }
  let json = JSON.stringify(header);
  // The format pads the header with spaces to a multiple of 8 bytes.
  json += ' '.repeat((8 - ((json.length + 8) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + headerBytes.length + at);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let offset = 8 + headerBytes.length;
  const bits = new Uint32Array(1);
  const float = new Float32Array(bits.buffer);
  for (const [, , values] of tensors) {
    for (const v of values) {
      if (dtype === 'F32') {
        out.writeFloatLE(v, offset);
        offset += 4;
      } else {
        float[0] = v;
        // bf16: the high half of the f32, rounded to nearest even.
        const rounded = bits[0] + 0x7fff + ((bits[0] >>> 16) & 1);
        out.writeUInt16LE((rounded >>> 16) & 0xffff, offset);
        offset += 2;
      }
    }
  }
  return out;
}

/**
 * A random-weight checkpoint of `config` split into `shards` files with an index (one
 * `model.safetensors` when `shards` is 1): `{ files: [{name, buffer}], tensors }`.
 * Norm weights are 1, the rest normal with standard deviation `std`.
 */
export function checkpoint(config, { shards = 1, seed = 1, std = 0.05, tokenizer, dtype = 'BF16' }) {
  const next = normals(seed);
  const tensors = llamaTensors(config).map(([name, shape]) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const values = new Float32Array(n);
    const norm = name.endsWith('layernorm.weight') || name === 'model.norm.weight';
    for (let i = 0; i < n; i++) values[i] = norm ? 1 : std * next();
    return [name, shape, values];
  });
  const files = [
    { name: 'config.json', buffer: Buffer.from(JSON.stringify(config, null, 2)) },
    { name: 'tokenizer.json', buffer: tokenizer },
  ];
  if (shards === 1) {
    files.push({ name: 'model.safetensors', buffer: safetensors(tensors, dtype) });
  } else {
    const per = Math.ceil(tensors.length / shards);
    const weightMap = {};
    for (let s = 0; s < shards; s++) {
      const name = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
      const part = tensors.slice(s * per, (s + 1) * per);
      for (const [t] of part) weightMap[t] = name;
      files.push({ name, buffer: safetensors(part, dtype) });
    }
    files.push({
      name: 'model.safetensors.index.json',
      buffer: Buffer.from(JSON.stringify({ metadata: {}, weight_map: weightMap })),
    });
  }
  return { files, tensors };
}

/** Playwright's file payloads for `setInputFiles`. */
export const asInputFiles = (files) =>
  files.map(({ name, buffer }) => ({ name, mimeType: 'application/octet-stream', buffer }));
