"""`python -m caxton_local.kubelet --state-dir DIR --kubeconfig FILE`: run the process kubelet."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from caxton_local.kubelet.agent import run
from caxton_local.layout import Layout


def main() -> None:
    parser = argparse.ArgumentParser(prog="caxton-process-kubelet", description=__doc__)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    run(Layout(args.state_dir), args.kubeconfig)


if __name__ == "__main__":
    main()
