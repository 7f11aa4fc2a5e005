// Shared by the two matrix products (matmul.wgsl, patch_embed.wgsl): a 64×64 output tile
// per workgroup of 16×16 threads, each thread owning a 4×4 block strided by 16 (so that a
// warp's loads from the tiles hit consecutive addresses), K consumed 16 at a time through
// workgroup memory. 2 × 16 × 64 floats = 8 KiB, half of WebGPU's default 16 KiB.

const TILE: u32 = 64u;
const TILE_K: u32 = 16u;

// Both tiles are stored K-major: a_tile[k * TILE + row], b_tile[k * TILE + col].
var<workgroup> a_tile: array<f32, 1024>;
var<workgroup> b_tile: array<f32, 1024>;

// A thread's 4×4 outputs: row[i][j] is output (ty + 16 i, tx + 16 j). Vectors in named
// fields, not an indexed array, so that they stay in registers (lavapipe spilled an array).
struct Acc { r0: vec4<f32>, r1: vec4<f32>, r2: vec4<f32>, r3: vec4<f32> }

fn acc_at(acc: Acc, i: u32) -> vec4<f32> {
    switch i {
        case 0u: { return acc.r0; }
        case 1u: { return acc.r1; }
        case 2u: { return acc.r2; }
        default: { return acc.r3; }
    }
}

// acc += A[ty + 16 i, k] * B[k, tx + 16 j] over the 16 k of the loaded tiles.
fn tile_accumulate(start: Acc, tx: u32, ty: u32) -> Acc {
    var acc = start;
    for (var k = 0u; k < TILE_K; k++) {
        let a = k * TILE + ty;
        let b0 = k * TILE + tx;
        let b = vec4<f32>(b_tile[b0], b_tile[b0 + 16u], b_tile[b0 + 32u], b_tile[b0 + 48u]);
        acc.r0 = fma(vec4<f32>(a_tile[a]), b, acc.r0);
        acc.r1 = fma(vec4<f32>(a_tile[a + 16u]), b, acc.r1);
        acc.r2 = fma(vec4<f32>(a_tile[a + 32u]), b, acc.r2);
        acc.r3 = fma(vec4<f32>(a_tile[a + 48u]), b, acc.r3);
    }
    return acc;
}
