"""Engines from the command line.

    python -m pipelines.engines serve --model DIR [--port 8000] [--name NAME]

starts a local vLLM OpenAI server (CPU build, installed by .ci/install_vllm) for a SmolVLM2
checkpoint directory, prints the ``--engine-url`` to give the app and the highlights CLI, and
stops it (all its processes) on Ctrl-C. For trying the server engine on one machine; production
runs vLLM on GPUs (README "Scaling out with vLLM").
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .vllm_server import READY_TIMEOUT_S, VllmNotInstalledError, VllmServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.engines", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="start a local vLLM server for a SmolVLM2 checkpoint directory")
    serve.add_argument("--model", required=True, metavar="DIR", help="SmolVLM2 checkpoint directory")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--name", help="the model's name on the server (default: the directory's name)")
    serve.add_argument("--venv", help="vLLM's virtual environment (default: .venv-vllm or $VLMS_VLLM_VENV)")
    args = parser.parse_args(argv)
    server = VllmServer(args.model, args.port, args.name, args.venv, args.host)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        server.start()
        print(f"Starting vLLM for {server.model_dir} (log: {server.log_path}) ...", flush=True)
        server.wait_ready(READY_TIMEOUT_S)
        print(f"Ready: python app.py --engine-url {server.url}   (model: {server.name}; Ctrl-C stops it)", flush=True)
        while not stopped.wait(1.0):
            if server.process is None or server.process.poll() is not None:
                print(f"vLLM stopped:\n{server.log_tail()}", file=sys.stderr)
                return 1
    except VllmNotInstalledError as error:
        print(error, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
