// Multi-head self-attention over the fused projection qkv (B·T rows of [q | k | v], each
// `heads` × `head_dim` wide), in three dispatches: scores = scale · Q Kᵀ per (tile, head),
// a softmax over each score row, and ctx = P V written back in (token, head · head_dim)
// order, ready for the output projection. Prepended with reduce.wgsl.

struct Dims { tokens: u32, heads: u32, head_dim: u32, batch: u32, scale: f32, _pad0: u32, _pad1: u32, _pad2: u32 }

@group(0) @binding(0) var<storage, read> qkv: array<f32>;
// [B·heads][T][T].
@group(0) @binding(1) var<storage, read_write> scores: array<f32>;
@group(0) @binding(2) var<storage, read_write> ctx: array<f32>;
@group(0) @binding(3) var<uniform> dims: Dims;

const T16: u32 = 16u;
var<workgroup> left: array<f32, 256>;
var<workgroup> right: array<f32, 256>;

fn width() -> u32 {
    return dims.heads * dims.head_dim;
}

// Element d of the q (part 0), k (1) or v (2) vector of token `token` in tile b, head h.
fn qkv_at(part: u32, b: u32, token: u32, h: u32, d: u32) -> f32 {
    return qkv[(b * dims.tokens + token) * 3u * width() + part * width() + h * dims.head_dim + d];
}

// One 16×16 block of one (tile, head)'s score matrix; grid (⌈T/16⌉, ⌈T/16⌉, B·heads).
@compute @workgroup_size(16, 16)
fn attention_scores(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let bh = wid.z;
    let b = bh / dims.heads;
    let h = bh % dims.heads;
    let i = wid.y * T16 + lid.y;
    let j = wid.x * T16 + lid.x;
    // Rows of the key block are loaded by lid.y, so right[y][x] = K[j0 + y][d0 + x].
    let j_load = wid.x * T16 + lid.y;
    var acc = 0.0;
    for (var d0 = 0u; d0 < dims.head_dim; d0 += T16) {
        let d = d0 + lid.x;
        var q = 0.0;
        var k = 0.0;
        if (i < dims.tokens && d < dims.head_dim) {
            q = qkv_at(0u, b, i, h, d);
        }
        if (j_load < dims.tokens && d < dims.head_dim) {
            k = qkv_at(1u, b, j_load, h, d);
        }
        left[lid.y * T16 + lid.x] = q;
        right[lid.y * T16 + lid.x] = k;
        workgroupBarrier();
        for (var e = 0u; e < T16; e++) {
            acc = fma(left[lid.y * T16 + e], right[lid.x * T16 + e], acc);
        }
        workgroupBarrier();
    }
    if (i < dims.tokens && j < dims.tokens) {
        scores[(bh * dims.tokens + i) * dims.tokens + j] = acc * dims.scale;
    }
}

// One score row per workgroup, in place; rows beyond 65,535 continue on the grid's y.
@compute @workgroup_size(64)
fn attention_softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * groups.x;
    if (row >= dims.batch * dims.heads * dims.tokens) {
        return;
    }
    let base = row * dims.tokens;
    var top = -3.4e38;
    for (var j = lid; j < dims.tokens; j += THREADS) {
        top = max(top, scores[base + j]);
    }
    top = workgroup_reduce(top, lid, true);
    var sum = 0.0;
    for (var j = lid; j < dims.tokens; j += THREADS) {
        let e = exp(scores[base + j] - top);
        scores[base + j] = e;
        sum += e;
    }
    let inv = 1.0 / workgroup_reduce(sum, lid, false);
    for (var j = lid; j < dims.tokens; j += THREADS) {
        scores[base + j] *= inv;
    }
}

// One 16 (tokens) × 16 (head dims) block of ctx; grid (⌈head_dim/16⌉, ⌈T/16⌉, B·heads).
@compute @workgroup_size(16, 16)
fn attention_context(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let bh = wid.z;
    let b = bh / dims.heads;
    let h = bh % dims.heads;
    let i = wid.y * T16 + lid.y;
    let d = wid.x * T16 + lid.x;
    var acc = 0.0;
    for (var j0 = 0u; j0 < dims.tokens; j0 += T16) {
        // left[y][x] = P[i0 + y][j0 + x]; right[y][x] = V[j0 + y][d0 + x].
        let j = j0 + lid.x;
        var p = 0.0;
        if (i < dims.tokens && j < dims.tokens) {
            p = scores[(bh * dims.tokens + i) * dims.tokens + j];
        }
        let jv = j0 + lid.y;
        var v = 0.0;
        if (jv < dims.tokens && d < dims.head_dim) {
            v = qkv_at(2u, b, jv, h, d);
        }
        left[lid.y * T16 + lid.x] = p;
        right[lid.y * T16 + lid.x] = v;
        workgroupBarrier();
        for (var e = 0u; e < T16; e++) {
            acc = fma(left[lid.y * T16 + e], right[e * T16 + lid.x], acc);
        }
        workgroupBarrier();
    }
    if (i < dims.tokens && d < dims.head_dim) {
        ctx[(b * dims.tokens + i) * width() + h * dims.head_dim + d] = acc;
    }
}
