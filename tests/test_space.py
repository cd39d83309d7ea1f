"""Deployment as a Hugging Face Space and the first run: README front matter, the address a Space
gives the app, model preloading before the server starts, and the start-up banner."""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest
from huggingface_hub import SpaceCard, constants

import app
from components.config import AppConfig
from components.status import ModelStatus
from pipelines.loading import load_model, needs_download
from pipelines.registry import ASR_REGISTRY, DEFAULT_ASR_MODEL, REGISTRY

ROOT = Path(__file__).resolve().parents[1]
SPACE_COLOURS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
# Licence ids the Hub accepts (a subset: the ones this project could plausibly use).
HUB_LICENSES = {"apache-2.0", "mit", "bsd-3-clause", "gpl-3.0", "cc-by-4.0", "other"}


# ---------------------------------------------------------------- README front matter


@pytest.fixture(scope="module")
def card() -> dict:
    return SpaceCard.load(ROOT / "README.md").data.to_dict()


def _pinned(package: str) -> str:
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        match = re.match(rf"{re.escape(package)}==([\w.]+)", line.strip())
        if match:
            return match.group(1)
    raise AssertionError(f"{package} is not pinned with == in requirements.txt")


def test_front_matter_is_a_valid_gradio_space_config(card):
    assert card["sdk"] == "gradio"
    assert card["sdk_version"] == _pinned("gradio"), "the Space must run the gradio version the app pins"
    assert (ROOT / card["app_file"]).is_file()
    assert card["title"] and len(card["title"]) <= 64
    assert 0 < len(card["short_description"]) <= 60, "the Hub refuses short descriptions over 60 characters"
    assert card["license"] in HUB_LICENSES
    assert card["colorFrom"] in SPACE_COLOURS and card["colorTo"] in SPACE_COLOURS
    assert len(card["emoji"]) == 1 and not card["emoji"].isascii()
    assert re.fullmatch(r"3\.(1[0-9])(\.\d+)?", str(card["python_version"])), "Python 3.10+ as a string"


def test_front_matter_preloads_the_default_models(card):
    sources = {spec.source for spec in [*REGISTRY.values(), *ASR_REGISTRY.values()]}
    preload = card["preload_from_hub"]
    defaults = {REGISTRY[app.DEFAULT_CPU_MODEL].source, REGISTRY[app.DEFAULT_CUDA_MODEL].source,
                ASR_REGISTRY[DEFAULT_ASR_MODEL].source}  # the first video chat hears with it
    assert defaults <= set(preload)
    assert set(preload) <= sources and set(card["models"]) <= sources


def test_readme_documents_space_deployment():
    text = (ROOT / "README.md").read_text()
    assert "## Deploy as a Space" in text and "ZeroGPU" in text


# ---------------------------------------------------------------- a Space's environment


def test_the_address_a_space_gives_is_used():
    config = app.parse_args([], environ={"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "7860"})
    assert (config.host, config.port) == ("0.0.0.0", 7860)
    assert app.parse_args([], environ={}).host == "127.0.0.1"  # local: never the network by default
    override = app.parse_args([], environ={"GRADIO_SERVER_NAME": "0.0.0.0", "VLMS_HOST": "127.0.0.2"})
    assert override.host == "127.0.0.2"


class _FakeDemo:
    def __init__(self, calls: list):
        self.calls = calls
        self.vlm_status = types.SimpleNamespace(wait=lambda timeout=None: calls.append("wait for the model"))

    def queue(self, **kwargs):
        self.calls.append("queue")

    def launch(self, **kwargs):
        self.calls.append("launch")


@pytest.mark.parametrize("space_id, expected", [
    ("someone/vlm-studio", ["wait for the model", "queue", "launch"]),
    (None, ["queue", "launch"]),
])
def test_on_a_space_the_model_is_loaded_before_the_server_starts(monkeypatch, space_id, expected):
    calls: list = []
    monkeypatch.setattr("components.layout.build_app", lambda config: _FakeDemo(calls))
    if space_id:
        monkeypatch.setenv("SPACE_ID", space_id)
    else:
        monkeypatch.delenv("SPACE_ID", raising=False)
    app.launch(AppConfig(model="smolvlm2-256m"))
    assert calls == expected


# ---------------------------------------------------------------- first run


@pytest.fixture()
def empty_hub_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    return tmp_path


def _cache_model(cache: Path, repo_id: str) -> None:
    """The layout huggingface_hub leaves after a download (refs/main -> snapshots/<rev>/...)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    (repo / "snapshots" / ("0" * 40)).mkdir(parents=True)
    (repo / "snapshots" / ("0" * 40) / "config.json").write_text("{}")


def test_a_model_not_in_the_cache_is_downloaded_first(empty_hub_cache, tiny_smolvlm):
    assert needs_download("smolvlm2-256m")
    _cache_model(empty_hub_cache, REGISTRY["smolvlm2-256m"].source)
    assert not needs_download("smolvlm2-256m")
    assert not needs_download(str(tiny_smolvlm))  # a local checkpoint is never downloaded
    assert not needs_download("no-such-model")  # the load itself reports an unknown name


def test_banner_says_downloading_then_names_the_failure_and_the_fix(empty_hub_cache, monkeypatch):
    status = ModelStatus(AppConfig(model="smolvlm2-256m", device="cpu", dtype="fp32"))
    monkeypatch.setattr(status, "_load", lambda: None)  # keep it "loading" to read that banner
    status.preload()
    assert "Downloading and loading **smolvlm2-256m**" in status.banner() and "terminal" in status.banner()

    status = ModelStatus(AppConfig(model="smolvlm2-256m", device="cpu", dtype="fp32"))
    status.preload()  # HF_HUB_OFFLINE=1 and an empty cache: this is the no-network first run
    status.wait(60)
    banner = status.banner()
    assert status.state == "failed"
    assert "could not be loaded" in banner and "SmolVLM2 256M" in banner
    assert "HuggingFaceTB/SmolVLM2-256M-Video-Instruct" in banner and "python app.py --model DIR" in banner


def test_banner_while_loading_a_local_checkpoint(tiny_smolvlm, monkeypatch):
    status = ModelStatus(AppConfig(model=str(tiny_smolvlm), device="cpu", dtype="fp32"))
    monkeypatch.setattr(status, "_load", lambda: None)
    status.preload()
    assert status.banner().startswith("⏳ Loading **") and "Downloading" not in status.banner()


def test_loading_shows_progress_in_the_terminal(tiny_smolvlm, capfd):
    """Nothing in the app silences the hub's and transformers' progress bars (the download uses
    the same tqdm machinery as the weight loading seen here; a real download cannot run offline)."""
    from huggingface_hub.utils import are_progress_bars_disabled

    assert not are_progress_bars_disabled()
    load_model(str(tiny_smolvlm), "cpu", "bf16")  # a placement no other test caches: a real load
    assert "Loading weights" in capfd.readouterr().err


def test_no_network_fails_in_seconds_not_minutes(empty_hub_cache, monkeypatch):
    """With no route to the hub, the hub client would retry each file for minutes; the app asks
    once (a TCP connect) and reports the model as unavailable at once."""
    import socket
    import time

    from pipelines import loading
    from pipelines.errors import ModelUnavailableError

    def unreachable(address, timeout=None):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # as on a machine that simply has no network
    monkeypatch.setattr(loading.socket, "create_connection", unreachable)
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert not loading.hub_reachable()
    started = time.monotonic()
    with pytest.raises(ModelUnavailableError) as info:
        loading.load_model("smolvlm2-256m", "cpu", "fp32")
    assert time.monotonic() - started < 5
    assert "SmolVLM2 256M" in str(info.value) and "python app.py --model DIR" in str(info.value)

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert loading.hub_reachable()  # behind a proxy only the hub client can tell
