"""Hand-tuned kernels, apart from the layers that call them (maxtext's `kernels/`).

Each module is a function of arrays with no model state: `attention` chooses an attention path by
name (`ATTENTIONS`), `cpu_attention` and `swiglu` are custom backward passes tuned for XLA:CPU,
`splash` runs the Pallas splash-attention kernel over the mesh (TPU; interpreted elsewhere) and
`placement` tells the mesh and platform a traced computation runs on.
"""
