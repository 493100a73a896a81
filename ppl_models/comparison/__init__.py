"""Compare model families on the same data with the same metrics: ``ppl compare``.

Latent-variable models (VAE, IWAE, two-layer VAE), autoregressive models (PixelCNN, PixelRNN) and a
GAN are trained into ``OUT/runs/<name>`` by the one training loop, then measured alike: test NLL
(importance-sampled, exact, or "no likelihood"), bits per dimension, sample quality against the
real-data floor (:mod:`ppl_models.evaluate.sample_quality`), training and sampling time, and size.
"""

from ppl_models.comparison.contenders import Contender, available_contenders, get_contender, register_contender
from ppl_models.comparison.compare import ModelComparisonConfig, compare_models

__all__ = ["Contender", "ModelComparisonConfig", "available_contenders", "compare_models", "get_contender",
           "register_contender"]
