from __future__ import annotations

import pytest

from memora import InvalidOptionError, ModelNotFoundError, available_models, load_model, model_path


def test_default_model_is_the_bundled_gguf() -> None:
    path = model_path("default")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 90_000_000
    assert path.read_bytes()[:4] == b"GGUF"
    assert [m.name for m in available_models()] == ["smollm2-135m-instruct"]


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ModelNotFoundError) as info:
        load_model("smollm2-135m-instuct")
    message = str(info.value)
    assert "did you mean 'smollm2-135m-instruct'" in message.lower()
    assert "default" in message and ".gguf" in message


def test_unknown_backend_option_is_an_error() -> None:
    with pytest.raises(InvalidOptionError, match="did you mean 'n_ctx'"):
        load_model("default", n_ctxx=512)


@pytest.mark.slow
def test_load_by_name_and_by_path() -> None:
    from memora.llm.llamacpp import LlamaCppLLM

    with load_model("default", n_ctx=256, n_threads=1) as by_name:
        assert by_name.name == "smollm2-135m-instruct"
        text = by_name.generate("Hi", temperature=0, max_tokens=3).text
    with load_model(str(model_path("default")), n_ctx=256, n_threads=1) as by_path:
        assert by_path.name == "SmolLM2-135M-Instruct.Q4_1"
        assert by_path.generate("Hi", temperature=0, max_tokens=3).text == text
    with LlamaCppLLM("default", n_ctx=256, n_threads=1) as direct:
        assert direct.name == "smollm2-135m-instruct"
        assert direct.path == model_path("default")
