// Layer normalization of each row of x (rows × dim), one workgroup per row, two passes
// (mean, then the variance of the centred values) as the ONNX graph computes it. Prepended
// with reduce.wgsl.

struct Dims { rows: u32, dim: u32, eps: f32, _pad: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
// [gamma; dim], [beta; dim].
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> dims: Dims;

@compute @workgroup_size(64)
fn layernorm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    // Rows beyond 65,535 continue on the grid's second dimension.
    let row = wid.x + wid.y * groups.x;
    if (row >= dims.rows) {
        return;
    }
    let base = row * dims.dim;
    var sum = 0.0;
    for (var d = lid; d < dims.dim; d += THREADS) {
        sum += x[base + d];
    }
    let mean = workgroup_reduce(sum, lid, false) / f32(dims.dim);
    var squares = 0.0;
    for (var d = lid; d < dims.dim; d += THREADS) {
        let c = x[base + d] - mean;
        squares += c * c;
    }
    let inv = 1.0 / sqrt(workgroup_reduce(squares, lid, false) / f32(dims.dim) + dims.eps);
    for (var d = lid; d < dims.dim; d += THREADS) {
        out[base + d] = (x[base + d] - mean) * inv * params[d] + params[dims.dim + d];
    }
}
