"""check_onnx.py - checks an ONNX file with the onnx package's own checker
(onnx.checker.check_model with full_check=True: the schema of every node, and shape
inference through the graph) and prints what the tests compare, as one line of JSON:
IR version, opsets, producer, the graph's inputs and outputs with their shapes, the
ops in order and the metadata_props.

Needs python3-onnx (Debian 12: onnx 1.12; scripts/bootstrap.sh --onnx installs it).
    /usr/bin/python3 tests/onnx/check_onnx.py MODEL.onnx
Exit status 1, with the checker's message, when the model is not valid ONNX."""
import json
import sys

import onnx


def shape(value_info):
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_param if d.HasField("dim_param") else d.dim_value for d in dims]


def main():
    if len(sys.argv) != 2:
        print("usage: check_onnx.py MODEL.onnx", file=sys.stderr)
        return 2
    model = onnx.load(sys.argv[1])
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as e:
        print(f"check_onnx.py: {sys.argv[1]}: {e}", file=sys.stderr)
        return 1
    print(json.dumps({
        "checker": "passed",
        "ir_version": model.ir_version,
        "opset": {o.domain or "ai.onnx": o.version for o in model.opset_import},
        "producer": f"{model.producer_name} {model.producer_version}",
        "inputs": {v.name: shape(v) for v in model.graph.input},
        "outputs": {v.name: shape(v) for v in model.graph.output},
        "ops": [n.op_type for n in model.graph.node],
        "metadata": {p.key: p.value for p in model.metadata_props},
        "doc_string": model.doc_string,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
