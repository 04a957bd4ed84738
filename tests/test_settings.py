from __future__ import annotations

import pytest

from memora import InvalidOptionError, load_settings


def test_settings_come_from_memora_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMORA_MODEL", "openai:smollm2")
    monkeypatch.setenv("MEMORA_OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-openai-variable")
    settings = load_settings()
    options = settings.model_options()
    assert options["base_url"] == "http://127.0.0.1:8000/v1"
    assert options["api_key"] == "sk-from-openai-variable"
    assert "sk-from" not in repr(settings)
    monkeypatch.setenv("MEMORA_OPENAI_API_KEY", "sk-memora")
    assert load_settings().model_options()["api_key"] == "sk-memora"


def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMORA_N_CTX", "lots")
    with pytest.raises(InvalidOptionError, match="MEMORA_N_CTX"):
        load_settings()


def test_unknown_setting_is_an_error() -> None:
    with pytest.raises(InvalidOptionError, match="N_CTXX"):
        load_settings(n_ctxx=4)


def test_local_options() -> None:
    assert load_settings(n_threads=1).model_options() == {
        "n_ctx": 4096,
        "n_threads": 1,
        "n_gpu_layers": 0,
        "seed": 0,
    }


def test_openai_defaults_surface_a_hung_server_in_one_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    options = load_settings(model="openai:m").model_options()
    assert options["timeout"] == 15.0 and options["max_retries"] == 3
    monkeypatch.setenv("MEMORA_OPENAI_TIMEOUT", "120")
    assert load_settings(model="openai:m").model_options()["timeout"] == 120.0
    with pytest.raises(InvalidOptionError, match="MEMORA_OPENAI_TIMEOUT"):
        load_settings(openai_timeout=0)
