"""Image completion by posterior inference: fill in the hidden part of an image, several ways, measured
side by side (``ppl complete``).

- :mod:`.masks`: what is hidden (named masks, ``.npy`` files, checks);
- :mod:`.masked_likelihood`: a model conditioned on its observed pixels only;
- :mod:`.method`: the settings, a method's result (:class:`Completion`) and the registry
  (:func:`registered_methods` imports the built-in methods on first use);
- the methods, in the order they run: :mod:`.latent` (infer z), :mod:`.pixels` (mean-field
  Bernoulli over the hidden pixels, the CS236 notes' formulation), :mod:`.conditional` (``cvae``),
  :mod:`.autoregressive` (PixelCNN ancestral sampling);
- :mod:`.complete` (the Python door: a model, images, a mask), :mod:`.run_complete` (run
  directories in, files out), :mod:`.report`, :mod:`.figures`.
"""

from ppl_models.completion.complete import CompletionResult, CompletionScore, complete
from ppl_models.completion.masks import Mask, parse_mask
from ppl_models.completion.method import Completion, CompletionSettings, registered_methods

__all__ = ["Completion", "CompletionResult", "CompletionScore", "CompletionSettings", "Mask", "complete",
           "parse_mask", "registered_methods"]
