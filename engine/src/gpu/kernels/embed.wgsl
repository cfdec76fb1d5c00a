// out[t, c] = table[token[t], c]: the embedding lookup, for the tokens whose ids fall in
// the block of table rows first_row..first_row + table_rows (a table too large for one
// binding is uploaded in blocks, one dispatch each; every token lies in one block).

struct Params {
    rows: u32,
    width: u32,
    first_row: u32,
    table_rows: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> token_ids: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let index = (wid.y * groups.x + wid.x) * 64u + li;
    if (index >= p.rows * p.width) {
        return;
    }
    let t = index / p.width;
    let c = index % p.width;
    // Ids below first_row wrap to large values: one comparison covers both ends.
    let row = token_ids[t] - p.first_row;
    if (row < p.table_rows) {
        out[index] = table[row * p.width + c];
    }
}
