"""Model families. Importing this package imports every module in it, and so registers every
built-in model with :mod:`ppl_models.registry` (a new file here needs no other edit). Each model
class and its config are also available here by name (``ppl_models.models.VAE(VAEConfig(), (28, 28))``),
for users who want only
the Pyro program (``.model`` and ``.guide``) and their own training loop."""

import importlib
import pkgutil

for _info in pkgutil.iter_modules(__path__):
    _module = importlib.import_module(f"{__name__}.{_info.name}")
    for _name, _obj in vars(_module).items():  # its model classes (they declare observed_sites) and configs
        if isinstance(_obj, type) and _obj.__module__ == _module.__name__ and (
                hasattr(_obj, "observed_sites") or _name.endswith("Config")):
            globals()[_name] = _obj
