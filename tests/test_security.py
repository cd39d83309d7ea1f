"""Nobody reads what they should not: file routes, FileData paths and URLs, upload size, launch
defaults, model loading and ffmpeg calls. Attacks go to the running app on 127.0.0.1 only."""

from __future__ import annotations

import ast
import http.server
import json
import os
import shutil
import threading
import uuid
from pathlib import Path

import httpx
import pytest

from app import parse_args
from components.config import ASSETS_DIR
from pipelines.errors import ModelUnavailableError
from pipelines.limits import LIMITS
from pipelines.loading import load_model
from tests.app_server import serve

ROOT = Path(__file__).resolve().parent.parent
SECRET = "root:"  # what /etc/passwd starts with


@pytest.fixture(scope="module")
def app(tiny_smolvlm):
    with serve(tiny_smolvlm, limits=LIMITS.with_value("max_upload_mb", 1)) as served:
        yield served


@pytest.fixture(scope="module")
def web(app):
    with httpx.Client(base_url=app[0], timeout=60) as client:
        yield client


FILE_ROUTES = [
    "/gradio_api/file=/etc/passwd",
    "/gradio_api/file=../../../../../../etc/passwd",
    "/gradio_api/file=%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/gradio_api/file=..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/gradio_api/file=//etc/passwd",
    "/gradio_api/file=\\etc\\passwd",
    "/gradio_api/file=file:///etc/passwd",
    "/gradio_api/file=/ETC/PASSWD",
    "/GRADIO_API/FILE=/etc/passwd",
    "/Gradio_Api/File=/etc/passwd",
    "/file=/etc/passwd",
    "/gradio_api/file=/proc/self/environ",
    f"/gradio_api/file={ASSETS_DIR}/../app.py",
    f"/gradio_api/file={ASSETS_DIR}/%2e%2e/app.py",
    f"/gradio_api/file={ROOT}/app.py",
    "/static/../../../../etc/passwd",
    "/assets/../../../../etc/passwd",
]


@pytest.mark.parametrize("route", FILE_ROUTES)
def test_file_routes_refuse_everything_outside_the_allowed_folders(web, route):
    response = web.get(route)
    assert response.status_code in (403, 404), (route, response.status_code)
    assert SECRET not in response.text and "import" not in response.text


def test_temp_dir_escape_is_refused(web, app):
    response = web.get(f"/gradio_api/file={os.environ['GRADIO_TEMP_DIR']}/../../etc/passwd")
    assert response.status_code == 403 and SECRET not in response.text


def test_assets_are_served(web):
    """The positive control: allowed_paths is assets/ and it works."""
    response = web.get(f"/gradio_api/file={ASSETS_DIR}/scene.jpg")
    assert response.status_code == 200 and response.content.startswith(b"\xff\xd8\xff")


def _chat_events(web, demo, files: list[dict]) -> dict:
    """Send /chat with raw FileData (what a hostile client can craft) and return the final event."""
    fn_index = next(i for i, fn in demo.fns.items() if fn.api_name == "chat")
    session = uuid.uuid4().hex[:12]
    data = [{"text": "What is this?", "files": files}, [], demo.vlm_status.config.model, "", 3, True, 0.7, 0.9,
            "auto", 1.0, 0, True]  # every input: raw HTTP gets no defaults filled in
    joined = web.post("/gradio_api/queue/join", json={"data": data, "fn_index": fn_index, "session_hash": session,
                                                       "event_data": None, "trigger_id": None})
    assert joined.status_code == 200
    with web.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as events:
        for line in events.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return message
    raise AssertionError("no completion event")


def test_the_raw_chat_request_itself_is_answered(web, app):
    """The positive control of the refusals below: the same raw request without a crafted file
    succeeds (so they fail for the file, not for a malformed request)."""
    assert _chat_events(web, app[1], [])["success"] is True


@pytest.mark.parametrize("path", ["/etc/passwd", "{temp}/../../etc/passwd", str(ASSETS_DIR / "scene.jpg"),
                                  "../../../etc/passwd"])
def test_filedata_paths_not_uploaded_by_the_user_are_refused(web, app, path):
    path = path.format(temp=os.environ["GRADIO_TEMP_DIR"])
    final = _chat_events(web, app[1], [{"path": path, "meta": {"_type": "gradio.FileData"}}])
    assert final["success"] is False and SECRET not in json.dumps(final)


def test_filedata_urls_are_never_fetched(web, app):
    hits: list = []
    server = http_server(hits)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/secret.png"
        final = _chat_events(web, app[1], [{"path": "secret.png", "url": url, "meta": {"_type": "gradio.FileData"}}])
    finally:
        server.shutdown()
        server.server_close()
    assert final["success"] is False and hits == []


class _Handler(http.server.BaseHTTPRequestHandler):
    hits: list = []

    def do_GET(self):  # noqa: N802 - http.server's name
        self.hits.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def http_server(hits: list) -> http.server.ThreadingHTTPServer:
    handler = type("Counting", (_Handler,), {"hits": hits})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_uploads_over_the_size_limit_are_refused(web):
    big = web.post("/gradio_api/upload", files={"files": ("big.jpg", b"\xff\xd8\xff" + bytes(2 * 2**20))})
    assert big.status_code == 413
    small = web.post("/gradio_api/upload", files={"files": ("small.jpg", b"\xff\xd8\xff" + bytes(1000))})
    assert small.status_code == 200


def test_launch_defaults_are_private(app):
    demo = app[1]
    config = parse_args([], environ={})
    assert config.host == "127.0.0.1" and config.share is False
    assert config.max_file_size == f"{int(LIMITS.max_upload_mb.value)}mb"
    assert demo.share is False and demo.server_name == "127.0.0.1"
    assert demo.max_file_size == 1 * 2**20  # this test server: --max-file-size 1
    assert [Path(p) for p in demo.allowed_paths] == [ASSETS_DIR]
    assert demo.delete_cache and demo.delete_cache[0] > 0  # uploads and outputs are cleaned up


def test_models_load_from_safetensors_only(tiny_smolvlm, tmp_path):
    import torch
    from safetensors.torch import load_file

    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_smolvlm, pickled)
    weights = pickled / "model.safetensors"
    torch.save(load_file(str(weights)), pickled / "pytorch_model.bin")  # a pickle can run code on load
    weights.unlink()
    with pytest.raises(ModelUnavailableError) as caught:
        load_model(str(pickled), "cpu", "fp32")
    assert "pickled" in str(caught.value)


def test_remote_code_in_a_checkpoint_never_runs(tiny_smolvlm, tmp_path):
    hostile = tmp_path / "hostile"
    shutil.copytree(tiny_smolvlm, hostile)
    marker = tmp_path / "pwned"
    (hostile / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    config = json.loads((hostile / "config.json").read_text())
    config["auto_map"] = {"AutoModelForImageTextToText": "modeling_evil.Evil", "AutoConfig": "modeling_evil.Cfg"}
    (hostile / "config.json").write_text(json.dumps(config))
    try:
        load_model(str(hostile), "cpu", "fp32")
    except ModelUnavailableError:
        pass  # refusing is fine too; running the code is not
    assert not marker.exists()


def test_subprocesses_never_use_a_shell():
    """Every subprocess call in the app passes an argument list; nothing goes through a shell."""
    for source in [*ROOT.glob("pipelines/**/*.py"), *ROOT.glob("components/*.py"), ROOT / "app.py"]:
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = ast.unparse(node.func)
                assert name not in ("os.system", "os.popen", "subprocess.getoutput"), f"{source}: {name}"
                for keyword in node.keywords:
                    if keyword.arg == "shell":
                        assert isinstance(keyword.value, ast.Constant) and keyword.value.value is False, source


def test_ffmpeg_reads_local_files_only(short_video, tmp_path):
    render = pytest.importorskip("pipelines.highlights.render")
    from pipelines import media
    from pipelines.highlights.selection import Segment

    info = media.probe_video(short_video)
    command = render.concat_command(short_video, [Segment(0.0, 1.0), Segment(2.0, 3.0)], tmp_path / "r.mp4", info)
    inputs = [k for k, arg in enumerate(command) if arg == "-i"]
    assert inputs and isinstance(command, list)
    for k in inputs:
        assert command[k - 2:k] == ["-protocol_whitelist", "file"]


def test_readme_documents_every_limit():
    from pipelines.limits import Limits

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Limits and security"):]
    missing = [name for name in Limits.names() if f"VLMS_{name.upper()}" not in section]
    assert not missing, f"limits missing from README 'Limits and security': {missing}"
