// Shared by the two matrix products (matmul.wgsl, patch_embed.wgsl): a 64×64 output tile
// per workgroup of 16×16 threads, each thread owning a 4×4 block strided by 16 (so that a
// warp's loads from the tiles hit consecutive addresses), K consumed 16 at a time through
// workgroup memory. 2 × 16 × 64 floats = 8 KiB, half of WebGPU's default 16 KiB.

const TILE: u32 = 64u;
const TILE_K: u32 = 16u;

// Both tiles are stored K-major: a_tile[k * TILE + row], b_tile[k * TILE + col].
var<workgroup> a_tile: array<f32, 1024>;
var<workgroup> b_tile: array<f32, 1024>;

// acc[i * 4 + j] += A[ty + 16 i, k] * B[k, tx + 16 j] over the 16 k of the loaded tiles.
fn tile_accumulate(acc: ptr<function, array<f32, 16>>, tx: u32, ty: u32) {
    for (var k = 0u; k < TILE_K; k++) {
        var a: array<f32, 4>;
        var b: array<f32, 4>;
        for (var i = 0u; i < 4u; i++) {
            a[i] = a_tile[k * TILE + ty + 16u * i];
            b[i] = b_tile[k * TILE + tx + 16u * i];
        }
        for (var i = 0u; i < 4u; i++) {
            for (var j = 0u; j < 4u; j++) {
                (*acc)[i * 4u + j] = fma(a[i], b[j], (*acc)[i * 4u + j]);
            }
        }
    }
}
