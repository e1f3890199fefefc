"""`sluice backend serve`: its arguments, and the start-up of the engine's own HTTP server.

Registered by gateway.cli; nothing heavy (torch, transformers) is imported until it runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backend.engine_config import EngineConfig

log = logging.getLogger("sluicegate.backend")


def add_backend_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    backend = subparsers.add_parser("backend", help="the built-in inference engine")
    commands = backend.add_subparsers(dest="backend_command", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve the engine alone as an OpenAI-compatible server",
        description="Load a model and serve /v1/chat/completions, /v1/completions, /v1/models, "
        "/health and /metrics. Models are never downloaded: give a local path.",
    )
    serve.add_argument(
        "--model",
        default="smollm2-135m-instruct",
        help="embedded model name, Hugging Face folder or .gguf file "
        "(default: smollm2-135m-instruct)",
    )
    serve.add_argument(
        "--served-model-name", help="the name clients put in 'model' (default: --model)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    serve.add_argument(
        "--kv-cache-gb", type=float, help="KV-cache memory (default: 1 on CPU, 80%% free on GPU)"
    )
    serve.add_argument("--max-num-seqs", type=int, help="sequences per batch (default: 64)")
    serve.add_argument(
        "--max-model-len", type=int, help="prompt + output tokens (default: the model's)"
    )
    serve.add_argument("--device", help="auto, cpu, cuda, cuda:N (default: auto)")
    serve.add_argument("--dtype", choices=["float32", "float16", "bfloat16"])
    serve.add_argument(
        "--weights",
        choices=["auto", "int8"],
        help="int8: linear layers quantized at load, per output channel "
        "(default: auto, as --dtype)",
    )
    serve.add_argument(
        "--kv-cache",
        choices=["auto", "int8"],
        help="int8: K/V stored as int8 with a scale per token and head, about twice the tokens "
        "of a 16-bit cache (default: auto, as --dtype)",
    )
    serve.add_argument(
        "--kernels",
        choices=["auto", "triton", "torch"],
        help="triton: the Triton kernels (CUDA); torch: plain PyTorch "
        "(default: auto, triton on CUDA when it is installed)",
    )
    serve.add_argument(
        "--no-cuda-graphs",
        dest="cuda_graphs",
        action="store_false",
        default=None,
        help="run decode steps eagerly on CUDA (default: replayed from CUDA graphs)",
    )
    serve.set_defaults(run=run_serve)


def engine_config(args: argparse.Namespace) -> EngineConfig:
    """The EngineConfig the flags ask for (unset flags keep its defaults); ValueError if bad."""
    from backend.engine_config import EngineConfig

    knobs = {
        "kv_cache_gb": args.kv_cache_gb,
        "max_num_seqs": args.max_num_seqs,
        "max_model_len": args.max_model_len,
        "device": args.device,
        "dtype": args.dtype,
        "weights": args.weights,
        "kv_cache_dtype": args.kv_cache,
        "kernels": args.kernels,
        "cuda_graphs": args.cuda_graphs,
    }
    return EngineConfig(model=args.model, **{k: v for k, v in knobs.items() if v is not None})


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from backend.model_config import ModelLoadError
    from backend.model_files import resolve_model
    from backend.server import create_app

    try:
        config = engine_config(args)
        config.resolved_kernels(config.torch_device())  # --kernels triton where it cannot run
        # Converts a GGUF (with a progress bar) now, and fails here with a clear message.
        resolve_model(config.model, progress=True)
    except (ValueError, ModelLoadError) as exc:
        print(f"sluice backend serve: {exc}", file=sys.stderr)
        return 2
    app = create_app(config, model_name=args.served_model_name)
    log.warning(
        "sluice backend: loading %s, then serving on http://%s:%s", args.model, args.host, args.port
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level=args.log_level,
    )
    return 0
