"""Model families. Importing this package imports every module in it, and so registers every
built-in model with :mod:`ppl_models.registry` (a new file here needs no other edit)."""

import importlib
import pkgutil

for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")
