// The embedding of each tile: the mean of its patch tokens (every token but CLS, token 0)
// scaled to unit L2 length; one workgroup per tile. An all-zero mean stays zero. Prepended
// with reduce.wgsl.

struct Dims { tokens: u32, dim: u32, _pad0: u32, _pad1: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> dims: Dims;

@compute @workgroup_size(64)
fn pool_normalize(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let tile = wid.x;
    var squares = 0.0;
    for (var d = lid; d < dims.dim; d += THREADS) {
        var sum = 0.0;
        for (var t = 1u; t < dims.tokens; t++) {
            sum += x[(tile * dims.tokens + t) * dims.dim + d];
        }
        let mean = sum / f32(dims.tokens - 1u);
        out[tile * dims.dim + d] = mean;
        squares += mean * mean;
    }
    let norm = sqrt(workgroup_reduce(squares, lid, false));
    if (norm > 0.0) {
        for (var d = lid; d < dims.dim; d += THREADS) {
            out[tile * dims.dim + d] /= norm;
        }
    }
}
