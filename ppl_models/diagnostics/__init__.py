"""Posterior diagnostics: did inference work?

``diagnose(module, x)`` runs every diagnostic on any model and data; ``diagnose_run(RUN)`` does it
for a run directory and writes the report (``ppl diagnose``).
"""

from ppl_models.diagnostics.diagnose import DiagnoseConfig, Diagnostics, diagnose
from ppl_models.diagnostics.gaps import GapSettings
from ppl_models.diagnostics.run_diagnose import diagnose_run, write_diagnostics

__all__ = ["DiagnoseConfig", "Diagnostics", "GapSettings", "diagnose", "diagnose_run", "write_diagnostics"]
