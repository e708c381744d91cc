"""train: the command line — YAML configs -> solver -> logs, checkpoints, tables and figures.

* ``python -m train CONFIG [key=value ...] [--resume RUN_DIR]`` (:mod:`train.__main__`, :mod:`train.run`)
* ``python -m train.compare CONFIG1 CONFIG2 ... [--seeds 5]`` (:mod:`train.compare`)
* configs and their validation (:mod:`train.config`), checkpoints (:mod:`train.checkpoint`), metrics.jsonl and
  Weights & Biases (:mod:`train.logger`), figures (:mod:`train.plots`)
* ``python -m train.demo``: a simulation demo of both economies (no training)

This package is the only place that knows about files, W&B and progress bars.
"""
