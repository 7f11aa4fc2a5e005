"""Writes fuzz/corpus/model_bytes/seed-tiny.onnx: the smallest graph shaped like the
embedder's (1x3xHxW image in, 1x8 vector out: spatial mean, then a 3x8 MatMul), the seed
the model_bytes target mutates. Needs `pip install onnx`; tests/native/fuzz_seeds.rs checks it loads."""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

weights = numpy_helper.from_array(np.arange(24, dtype=np.float32).reshape(3, 8) / 24, "w")
graph = helper.make_graph(
    [
        helper.make_node("ReduceMean", ["pixel_values"], ["m"], axes=[2, 3], keepdims=0),
        helper.make_node("MatMul", ["m", "w"], ["embedding"]),
    ],
    "tiny",
    [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, [1, 3, "h", "w"])],
    [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, 8])],
    [weights],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, "fuzz/corpus/model_bytes/seed-tiny.onnx")
