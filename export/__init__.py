"""Export: a training checkpoint → an ONNX model package (model.onnx + config.json + model card), parity-checked."""
