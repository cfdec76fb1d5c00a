
// Puts rotary pair c (dims c and c + D/2) of head slot `slot` of new token t where
// attention reads it: slots [0, H) are queries (into q[t, H, D]), [H, H + KV) keys
// and the rest values (both into the KV cache after the cached rows). Queries and keys
// are rotated first with cos/sin[t, D/2] when p.rotate is set. Shared by
// attention_inputs.wgsl and qkv_decode.wgsl (kernels.rs appends it to each): the kernel
// declares Params with tokens, heads, kv_heads, head_dim, cache_offset and rotate, and
// the bindings `tables`, `q`, `keys` and `values`.
fn place_pair(t: u32, slot: u32, c: u32, pair: vec2<f32>) {
    let half = p.head_dim / 2u;
    var first = pair.x;
    var second = pair.y;
    let is_value = slot >= p.heads + p.kv_heads;
    if (p.rotate != 0u && !is_value) {
        let cos_t = tables[t * half + c];
        let sin_t = tables[(p.tokens + t) * half + c];
        let rotated = first * cos_t - second * sin_t;
        second = second * cos_t + first * sin_t;
        first = rotated;
    }
    if (slot < p.heads) {
        let at = (t * p.heads + slot) * p.head_dim + c;
        q[at] = first;
        q[at + half] = second;
    } else if (!is_value) {
        let at = p.cache_offset + (t * p.kv_heads + slot - p.heads) * p.head_dim + c;
        keys[at] = first;
        keys[at + half] = second;
    } else {
        let at = p.cache_offset + (t * p.kv_heads + slot - p.heads - p.kv_heads) * p.head_dim + c;
        values[at] = first;
        values[at + half] = second;
    }
}
