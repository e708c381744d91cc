"""``python -m train CONFIG [key=value ...]``: train a solver from a YAML config, judge it, log it.

    python -m train configs/investment_linear_euler_relu.yaml
    python -m train configs/investment_linear_euler_relu.yaml solver.lr=5e-4 env.n_agents=512 run.steps=200
    python -m train configs/ks_classical.yaml logger.mode=disabled run.name=ks-ref
    python -m train --resume runs/ks-ref                       # continue a run from its last checkpoint
    python -m train --validate configs/*.yaml                  # check configs, run nothing
    python -m train configs/ks_euler.yaml --print-config       # the fully resolved config
    torchrun --standalone --nproc_per_node=2 -m train configs/investment_linear_euler_identity.yaml   # data-parallel

Exit codes: 0 ok; 1 unexpected error; 2 bad config; 3 NaN/inf loss (last good checkpoint kept); 4 not converged
within the steps/budget; 130 interrupted. Failures print one line ``error: <reason>`` on stderr.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from .config import ConfigFileError, load_experiment
from .run import EXIT_CONFIG, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, TrainError, run_experiment


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m train", description="Train a solver from a YAML config, judge it and log it.",
        epilog="Overrides are dotted key=value pairs with YAML values, e.g. solver.lr=1e-4 env.n_agents=512 "
               "run.steps=null logger.mode=disabled. Exit codes: 0 ok, 1 error, 2 bad config, 3 NaN/inf, "
               "4 not converged, 130 interrupted.",
    )
    parser.add_argument("items", nargs="*", metavar="CONFIG | key=value",
                        help="the config file, then overrides (with --validate: several config files)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its latest checkpoint "
                        "(CONFIG defaults to RUN_DIR/config.yaml)")
    parser.add_argument("--validate", action="store_true", help="validate the config(s) and exit")
    parser.add_argument("--print-config", action="store_true", help="print the fully resolved config and exit")
    return parser


def _error(message: str) -> None:
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)


def _sigterm(signum, frame):  # pragma: no cover (signal handler)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_intermixed_args(argv)
    configs = [item for item in args.items if "=" not in item]
    overrides = [item for item in args.items if "=" in item]
    if args.resume and not configs:
        configs = [str(Path(args.resume) / "config.yaml")]
    if not configs:
        _error("no config file given: python -m train CONFIG [key=value ...] (see configs/)")
        return EXIT_CONFIG
    if args.validate:
        code = EXIT_OK
        for config in configs:
            try:
                exp = load_experiment(config, overrides)
                print(f"{config}: ok ({exp.solver_name} on {exp.env.id})")
            except ConfigFileError as err:
                _error(err)
                code = EXIT_CONFIG
        return code
    if len(configs) > 1:
        _error(f"one config at a time (got {', '.join(configs)}); compare several with python -m train.compare")
        return EXIT_CONFIG
    try:
        exp = load_experiment(configs[0], overrides)
        if args.print_config:
            print(exp.to_yaml(), end="")
            return EXIT_OK
        previous = signal.signal(signal.SIGTERM, _sigterm) if sys.platform != "win32" else None
        try:
            result = run_experiment(exp, resume=args.resume)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
    except ConfigFileError as err:
        _error(err)
        return EXIT_CONFIG
    except TrainError as err:
        _error(err)
        return err.exit_code
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except Exception as err:  # anything else: still one line (the traceback is in the run's error.log if it got one)
        _error(f"{type(err).__name__}: {err}")
        return EXIT_ERROR
    if result.exit_code != EXIT_OK:
        _error(result.message)
    elif result.message:  # (empty on the processes of a distributed run other than rank 0)
        print(result.message)
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
