"""One process of a multi-process test run (tests/test_distributed.py starts it under torchrun, or
alone for the 1-process baseline): `unlearn` with the given config into the given store; rank 0
writes {run_id, status, error, losses (per step), checkpoints} as JSON.

    python tests/dist_worker.py '{"config": {...}, "store": PATH, "out": PATH, "kill": [rank, step]}'
"""
from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

torch.set_num_threads(1)

from engine.store import Store  # noqa: E402
from engine.train import RunConfig, loop, unlearn  # noqa: E402


def main() -> None:
    args = json.loads(sys.argv[1])
    rank = int(os.environ.get("RANK", "0"))
    kill = args.get("kill")
    if kill is not None and rank == kill[0]:  # this rank dies (SIGKILL: no cleanup) after step kill[1]
        real = loop.step

        def dying(state, micro):
            out = real(state, micro)
            if state.step >= kill[1]:
                os.kill(os.getpid(), signal.SIGKILL)
            return out
        loop.step = dying
    losses: list[float] = []

    def progress(info: dict) -> None:
        if info.phase == "train" and info.loss is not None:
            losses.append(info.loss)
    # The launcher's SIGTERM (another rank died) is the engine's to handle during the run
    # (engine.train.distributed.on_sigterm); after the run it must not cut the result file short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    result = unlearn(RunConfig.from_dict(args["config"]), Store(args["store"]), progress=progress)
    if result.run_id is not None:
        Path(args["out"]).write_text(json.dumps({"run_id": result.run_id, "status": result.status,
                                                         "error": result.error, "losses": losses,
                                                         "checkpoints": result.checkpoints}))
    sys.exit(0 if result.status == "finished" else 1)


if __name__ == "__main__":
    main()
