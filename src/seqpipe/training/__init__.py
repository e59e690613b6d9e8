"""Training: one (task, model, seed) job, end to end.

`train` (the `seqpipe train` entry: settings parsed once, device, data, resume state, MLflow) <
`loop` (`fit`: the epochs as named steps: early stopping, the records, the resume state, progress) <
`epoch` (`run_epoch`: one pass over a split, the training step) and `records` (scalars.csv,
events.jsonl, model.pt); `start` (the model a run starts from: build, init_from, freeze), `device`
(device, seeds, GPU share), `checkpoint`, `losses`, `schedule`, `precision`, `backends`, `gpus`, `figures`.
"""
