// out = epilogue(A · dequant(W) + bias) for A: M×K f32 activations and W: K×N int8
// weights packed four to a u32 along N (rows padded to a multiple of 4), symmetric with one
// scale per output column. The scale is applied once per output (Σ a·q·s = s·Σ a·q), so the
// GPU holds only the int8 weights. Prepended with tile.wgsl.

struct Dims { m: u32, n: u32, k: u32, _pad: u32 }

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<u32>;
// [scale; N], [bias; N], then for RESIDUAL [layer scale; N].
@group(0) @binding(2) var<storage, read> params: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> dims: Dims;

// 0: out = v; 1: out = gelu(v) (exact, erf); 2: out += layer_scale · v (residual add).
override EPILOGUE: u32 = 0u;

// erf by Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7): WGSL has no erf.
fn erf(x: f32) -> f32 {
    let z = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * z);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    return sign(x) * (1.0 - poly * exp(-z * z));
}

fn gelu(x: f32) -> f32 {
    return 0.5 * x * (1.0 + erf(x * 0.70710678118654752));
}

// A: 64 rows × 16 k, four per thread, consecutive threads along k; W: 16 k × 16 words
// (64 columns), one word per thread.
fn load_tiles(k0: u32, row0: u32, col0: u32, t: u32) {
    for (var i = 0u; i < 4u; i++) {
        let e = t + 256u * i;
        let r = e / TILE_K;
        let kk = e % TILE_K;
        let row = row0 + r;
        let k = k0 + kk;
        var v = 0.0;
        if (row < dims.m && k < dims.k) {
            v = a[row * dims.k + k];
        }
        a_tile[kk * TILE + r] = v;
    }
    let words = (dims.n + 3u) / 4u;
    let kk = t / 16u;
    let word = col0 / 4u + t % 16u;
    let k = k0 + kk;
    var packed = 0u;
    if (k < dims.k && word < words) {
        packed = w[k * words + word];
    }
    for (var b = 0u; b < 4u; b++) {
        b_tile[kk * TILE + (t % 16u) * 4u + b] = f32(extractBits(bitcast<i32>(packed), 8u * b, 8u));
    }
}

fn store(row: u32, col: u32, sum: f32) {
    let v = sum * params[col] + params[dims.n + col];
    let at = row * dims.n + col;
    if (EPILOGUE == 1u) {
        out[at] = gelu(v);
    } else if (EPILOGUE == 2u) {
        out[at] += params[2u * dims.n + col] * v;
    } else {
        out[at] = v;
    }
}

@compute @workgroup_size(16, 16)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    tile_product(wid, lid, dims.m, dims.n, dims.k);
}
