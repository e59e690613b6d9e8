"""One module per feature kind: `feature_names(spec)`, `frame_rate(spec)`, `extract(item, spec)`.

`build` imports the kind it needs by name, and the features rule declares only that kind's code
as its input, so editing the audio extractor reruns the log-mel features and not the MIDI ones.
"""
