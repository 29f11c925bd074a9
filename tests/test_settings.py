from pathlib import Path

import pytest

from threadline.core.errors import ConfigurationError
from threadline.core.settings import Settings, load_settings


def test_defaults_are_the_embedded_product(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.model == "offline"
    assert settings.embeddings == "local"
    assert settings.data_dir == Path(".threadline")
    assert settings.sqlalchemy_url == f"sqlite:///{tmp_path / '.threadline' / 'threadline.db'}"
    assert not settings.is_postgres


def test_environment_prefix_and_postgres_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THREADLINE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    monkeypatch.setenv("THREADLINE_PORT", "9001")
    settings = load_settings()
    assert settings.sqlalchemy_url == "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    assert settings.is_postgres
    assert settings.port == 9001


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("THREADLINE_DATABASE_URL", "mysql://root@localhost/db", "unsupported database URL scheme"),
        ("THREADLINE_MODEL", "gpt-4o", "model must be 'offline' or 'openai:<model name>'"),
        ("THREADLINE_PORT", "70000", "THREADLINE_PORT"),
        ("THREADLINE_EMBEDDINGS", "cohere", "THREADLINE_EMBEDDINGS"),
    ],
)
def test_invalid_settings_fail_fast_with_the_variable_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match="invalid settings") as info:
        load_settings()
    assert fragment in info.value.message


def test_openai_key_falls_back_to_the_standard_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("THREADLINE_MODEL", "openai:gpt-4o-mini")
    settings = Settings()
    assert settings.openai_api_key is not None
    assert settings.openai_api_key.get_secret_value() == "sk-test"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::", "shop.example.com"])
def test_the_demo_page_is_refused_at_start_up_beyond_loopback(host: str) -> None:
    with pytest.raises(ConfigurationError, match=r"THREADLINE_DEMO_PAGE: .*loopback"):
        load_settings(demo_page=True, host=host)
    assert load_settings(demo_page=True, host=host, demo_page_public=True).demo_page
    for loopback in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert load_settings(demo_page=True, host=loopback).demo_page
