// Shared by the two matrix products (matmul.wgsl, patch_embed.wgsl): a 64×64 output tile
// per workgroup of 16×16 threads, each thread owning a 4×4 block strided by 16 (so that a
// warp's loads from the tiles hit consecutive addresses), K consumed 16 at a time through
// workgroup memory. 2 × 16 × 64 floats = 8 KiB, half of WebGPU's default 16 KiB.
//
// The file it is prepended to defines where the operands come from and where results go:
//   fn load_tiles(k0: u32, row0: u32, col0: u32, t: u32)  fills a_tile and b_tile
//   fn store(row: u32, col: u32, value: f32)               one output, in bounds

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

// The m × n product of K = k, one 64×64 tile per workgroup (grid ⌈n/64⌉ × ⌈m/64⌉).
fn tile_product(wid: vec3<u32>, lid: vec3<u32>, m: u32, n: u32, k: u32) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    var acc: Acc;
    for (var k0 = 0u; k0 < k; k0 += TILE_K) {
        load_tiles(k0, row0, col0, lid.y * 16u + lid.x);
        workgroupBarrier();
        acc = tile_accumulate(acc, lid.x, lid.y);
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + lid.y + 16u * i;
        let sums = acc_at(acc, i);
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + lid.x + 16u * j;
            if (row < m && col < n) {
                store(row, col, sums[j]);
            }
        }
    }
}
