from pathlib import Path

from seqpipe.codedeps import source_files

SRC = str(Path(__file__).resolve().parents[1] / "src")


def names(modules):
    return {Path(f).relative_to(SRC).as_posix() for f in source_files(tuple(modules), SRC)}


def test_feature_build_closure():
    files = names(["seqpipe.features.build"])
    assert {"seqpipe/__init__.py", "seqpipe/features/__init__.py", "seqpipe/features/build.py", "seqpipe/features/merge.py", "seqpipe/features/parts.py", "seqpipe/io.py"} <= files
    assert not any(f.startswith("seqpipe/training") for f in files)
    # kinds are imported by name at run time: declared per feature set, not via build
    assert "seqpipe/features/audio.py" not in files


def test_kind_modules_are_separate():
    logmel = names(["seqpipe.features.kinds.logmel"])
    grid = names(["seqpipe.features.kinds.drum_grid"])
    assert "seqpipe/features/audio.py" in logmel and "seqpipe/features/midi.py" not in logmel
    assert "seqpipe/features/midi.py" in grid and "seqpipe/features/audio.py" not in grid


def test_training_does_not_depend_on_feature_extractors():
    files = names(["seqpipe.training.train"])
    assert "seqpipe/models/rnn.py" in files and "seqpipe/training/losses.py" in files
    assert not any(f.startswith("seqpipe/features") for f in files)


def test_relative_imports(tmp_path):
    pkg = tmp_path / "seqpipe"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("from . import b\nfrom ..c import thing\n\ndef f():\n    import seqpipe.d\n")
    (pkg / "sub" / "b.py").write_text("")
    (pkg / "c.py").write_text("thing = 1\n")
    (pkg / "d.py").write_text("")
    (pkg / "unused.py").write_text("")
    got = {Path(f).relative_to(tmp_path).as_posix() for f in source_files(("seqpipe.sub.a",), str(tmp_path))}
    assert got == {"seqpipe/__init__.py", "seqpipe/sub/__init__.py", "seqpipe/sub/a.py", "seqpipe/sub/b.py", "seqpipe/c.py", "seqpipe/d.py"}
