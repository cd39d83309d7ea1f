"""The engine boundary's structure (issue 13): pipelines/ imports point one way (no cycle, lazy
imports inside functions included), and UI timing (heartbeats) stays out of pipeline signatures."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from pipelines import chat, compare, engines, generation, side_by_side, zerogpu
from pipelines.highlights import windows

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PIPELINES.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Module -> the pipelines modules it imports anywhere in its body."""
    files = {_module_name(path): path for path in PIPELINES.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            graph[name] |= {target for target in targets if target in files and target != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        for following in sorted(graph[node]):
            found = visit(following, path + [node])
            if found:
                return found
        done.add(node)
        return None

    for start in sorted(graph):
        found = visit(start, [])
        if found:
            return found
    return None


def test_pipelines_have_no_import_cycle():
    graph = _imports()
    assert "pipelines.zerogpu" in graph["pipelines.engines.local"]  # the graph sees real edges
    assert "pipelines.zerogpu" not in graph["pipelines.generation"]
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_no_pipeline_signature_takes_a_heartbeat():
    functions = [chat.start_chat, chat.ChatStream.__init__, compare.start_multi_image, side_by_side.stream_side_by_side,
                 generation.stream_generate, zerogpu.stream_on_gpu, windows.iter_window_clips,
                 engines.LocalEngine.stream, engines.ZeroGPUEngine.stream, engines.ServerEngine.stream]
    for function in functions:
        assert "heartbeat_s" not in inspect.signature(function).parameters, function.__qualname__
    sources = "".join(path.read_text() for path in PIPELINES.rglob("*.py"))
    assert "heartbeat_s" not in sources
