"""Model families. Importing this package registers every built-in model with the registry."""

from ppl_models.models import vae  # noqa: F401  (registers "vae")
