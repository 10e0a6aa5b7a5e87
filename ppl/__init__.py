"""ppl: probabilistic programming with programmable variational inference.

Write models, variational families and your own objectives in the ppl
language; get unbiased gradient estimators by program transformation (ADEV)
and run them on JAX.

    >>> import ppl, jax
    >>> m = ppl.compile("gen coin(n: int) { p ~ beta(2.0, 2.0); plate i in n { y ~ bernoulli(p) } }")
    >>> trace, logp = m.coin(3).simulate(jax.random.PRNGKey(0))
    >>> sorted(trace)
    ['p', 'y']
"""

from . import compiler, stdlib  # noqa: F401  (the subpackages ppl.compiler and ppl.stdlib)
from .errors import CheckError, CompileError, DataError, PPLError, SyntaxErrorPPL
from .fitting import fit
from .inference_data import to_arviz
from .module import GenerativeFunction, Module, compile, load
from .mcmc import NutsResult, nuts
from .nn import eqx_module, flax_module
from .objective import Objective
from .result import FitResult, summarize
from .stdlib.initializers import init_to_median, init_to_sample, init_to_uniform, init_to_value
from .trace import Trace

__all__ = ["load", "compile", "fit", "nuts", "to_arviz", "Module", "GenerativeFunction",
           "Objective", "FitResult", "NutsResult", "summarize", "Trace", "PPLError",
           "flax_module", "eqx_module",
           "init_to_median", "init_to_sample", "init_to_uniform", "init_to_value",
           "SyntaxErrorPPL", "CheckError", "CompileError", "DataError"]
__version__ = "0.1.0"
