// Shared by the row kernels (layernorm.wgsl, attention.wgsl's softmax, pool.wgsl): one
// workgroup of THREADS threads per row, and a tree reduction through workgroup memory.

const THREADS: u32 = 64u;
var<workgroup> partial: array<f32, THREADS>;

// The sum (or, with `is_max`, the maximum) of every thread's `value`, returned to all.
fn workgroup_reduce(value: f32, lid: u32, is_max: bool) -> f32 {
    partial[lid] = value;
    workgroupBarrier();
    for (var stride = THREADS / 2u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            if (is_max) {
                partial[lid] = max(partial[lid], partial[lid + stride]);
            } else {
                partial[lid] += partial[lid + stride];
            }
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}
