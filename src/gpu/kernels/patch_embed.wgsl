// Patch embedding, the 14×14 stride-14 convolution as a matrix product read straight from
// the images (no im2col buffer): token t ≥ 1 of tile b is patch t - 1 in row-major order,
// its K = 3·14·14 inputs in the convolution weight's (channel, y, x) order. Token 0 (CLS)
// has no pixels: it is its row of `token_bias` alone. token_bias[t] already holds the
// convolution bias plus the interpolated position embedding (CLS: its token plus its
// position), so out = A · Wᵀ + token_bias[t]. Prepended with tile.wgsl.

struct Dims { m: u32, n: u32, k: u32, tokens: u32, grid: u32, size: u32, _pad0: u32, _pad1: u32 }

const PATCH: u32 = 14u;

// Planar normalized pixels, tile after tile: [B][3][size][size].
@group(0) @binding(0) var<storage, read> image: array<f32>;
// Convolution weight as [N][K].
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> token_bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> dims: Dims;

fn pixel(row: u32, k: u32) -> f32 {
    let token = row % dims.tokens;
    if (token == 0u) {
        return 0.0;
    }
    let tile = row / dims.tokens;
    let p = token - 1u;
    let c = k / (PATCH * PATCH);
    let y = (p / dims.grid) * PATCH + (k / PATCH) % PATCH;
    let x = (p % dims.grid) * PATCH + k % PATCH;
    return image[((tile * 3u + c) * dims.size + y) * dims.size + x];
}

// Pixels and weights, both 64 rows (tokens, output channels) × 16 k, four per thread.
fn load_tiles(k0: u32, row0: u32, col0: u32, t: u32) {
    for (var i = 0u; i < 4u; i++) {
        let e = t + 256u * i;
        let r = e / TILE_K;
        let kk = e % TILE_K;
        let k = k0 + kk;
        var av = 0.0;
        if (row0 + r < dims.m && k < dims.k) {
            av = pixel(row0 + r, k);
        }
        a_tile[kk * TILE + r] = av;
        var bv = 0.0;
        if (col0 + r < dims.n && k < dims.k) {
            bv = weight[(col0 + r) * dims.k + k];
        }
        b_tile[kk * TILE + r] = bv;
    }
}

fn store(row: u32, col: u32, sum: f32) {
    out[row * dims.n + col] = sum + token_bias[(row % dims.tokens) * dims.n + col];
}

@compute @workgroup_size(16, 16)
fn patch_embed(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    tile_product(wid, lid, dims.m, dims.n, dims.k);
}
