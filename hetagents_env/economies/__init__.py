"""The economies: the :class:`Economy` interface, validated parameters, the models and their exact solutions.

Every module of this package is imported here, so an economy module that decorates its class with
:func:`register_economy` is known to ``hetagents_env.make`` (and to Gymnasium) as soon as the file exists.
Nothing here knows about training or about the ecosystem interfaces.
"""

import importlib
import pkgutil

from .core import Economy, Policy
from .registry import economy_class, list_envs, make_economy, register_economy

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Economy", "Policy", "economy_class", "list_envs", "make_economy", "register_economy"]
