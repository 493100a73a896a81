# %% [markdown]
# # ppl-models from a notebook
#
# A percent-format notebook (Jupyter, VS Code and `jupytext` open it as cells): train a VAE on
# scikit-learn's digits, evaluate it, look at samples, and ask whether inference worked.
# Run it whole with `python examples/notebook.py` (`EPOCHS=2` for a quick pass).

# %%
import os

import ppl_models as ppl

EPOCHS = int(os.environ.get("EPOCHS", 50))
OUT = os.environ.get("OUT", "runs/notebook")

# %% Train: any registered model, a model class, or "path/to/file.py:NAME"; settings are keywords.
run = ppl.train("vae", data="digits", epochs=EPOCHS, out=OUT, latent_dim=8, likelihood="gaussian")
run

# %% Evaluate: the same numbers as `ppl eval OUT`, as a frozen dataclass.
result = run.evaluate(nll_samples=200)
print(f"test ELBO {result.elbo:.2f}, log p(x) {-result.nll:.2f} nats per image ({result.n} images)")

# %% Sample: tensors, and a PNG grid.
images = run.sample(16, mean=True)
print(images.shape, run.save_samples(f"{OUT}/grid.png", n=64, mean=True))

# %% Did inference work? k-hat, ESS, gaps; the report, figures and ArviZ data go to OUT/diagnostics.
report = run.diagnose(samples=200, gaps=True, gap_max_steps=500)
print(f"k-hat > 0.7 for {report.summary['khat']['bad']:.0%} of the test images; "
      f"amortization gap {report.summary['gaps']['amortization_gap']:.2f} nats")

# %% Any run directory loads back, the CLI's included.
again = ppl.load(OUT)
print(again, again.evaluate(nll_samples=200).nll == result.nll)
