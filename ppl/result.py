"""The result of a fit: parameters, history, timing and diagnostics.

    >>> # result = ppl.fit(obj, steps=2000)
    >>> # result.params                 unconstrained, to pass back to obj / simulate
    >>> # result.constrained_params     the values the program sees
    >>> # result.history                the objective at every step (maximised; nats)
    >>> # result.gradient_snr(key)      signal-to-noise of the gradient per parameter
    >>> # result.effective_sample_size() ESS of the family as an importance sampler
    >>> # result.save("run.pkl"); FitResult.load("run.pkl"); result.plot("objective.png")

``summarize(traces)`` gives per-address mean, standard deviation and
quantiles of stacked traces (from ``GenerativeFunction.sample``).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .compiler.diagnostics import DataError, Diagnostic


@dataclass
class FitResult:
    objective: Any
    params: dict
    opt_state: Any
    history: np.ndarray
    steps: int
    seconds: float
    status: str = "completed"       # completed | stopped early | interrupted | failed
    message: str | None = None
    key: Any = None
    extra: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        last = f"{np.mean(self.history[-50:]):.6g}" if len(self.history) else "n/a"
        return (f"FitResult({self.status}: {self.steps} steps in {self.seconds:.2f} s, "
                f"objective ≈ {last} (mean of the last 50 steps), "
                f"{len(self.params)} parameters)")

    @property
    def steps_per_second(self) -> float:
        return len(self.history) / self.seconds if self.seconds > 0 else float("nan")

    @property
    def constrained_params(self) -> dict:
        """Parameter values as the program sees them (constraints applied)."""
        program = self.objective.compiled()[0].program if self.objective is not None else None
        if program is None:
            return dict(self.params)
        lib = self.objective.module.library
        return {p: lib.constraint(program.params[p].constraint).to_constrained(v)
                if p in program.params else v for p, v in self.params.items()}

    # ---------------------------------------------------------- diagnostics

    def gradient_snr(self, key=None, estimates: int = 64) -> dict[str, float]:
        """Signal-to-noise ratio |mean| / sd of the gradient estimate, per parameter.

        Computed from ``estimates`` extra gradient estimates at the final
        parameters (averaged over each parameter's elements). A low SNR says
        the estimator is noisy for that parameter: try more particles, a
        baseline, or another estimator.
        """
        key = jax.random.PRNGKey(1) if key is None else key
        step = self.objective.compiled_value_and_grad()
        keys = jax.random.split(key, estimates)
        _, grads = jax.vmap(lambda k: step(self.params, k))(keys)
        out = {}
        for p, g in grads.items():
            mean, sd = jnp.mean(g, 0), jnp.std(g, 0)
            out[p] = float(jnp.mean(jnp.abs(mean) / jnp.maximum(sd, 1e-12)))
        return out

    def effective_sample_size(self, key=None, draws: int = 1000) -> float:
        """Kish's effective sample size (Σw)²/Σw² of the fitted family as an importance
        sampler for the target, from ``draws`` weights w = p(z, x)/q(z), z ~ q.

        For objectives whose first two arguments are the target and the family
        (elbo, iwelbo and the like). ESS / draws near 1 means q matches the
        posterior well; near 0, that a few draws carry all the weight.
        """
        args = getattr(self.objective, "args", ())
        if len(args) < 2 or not all(hasattr(a, "gen_value") for a in args[:2]):
            raise DataError(Diagnostic("effective_sample_size() needs an objective whose first "
                                       "two arguments are the target and the family"))
        key = jax.random.PRNGKey(2) if key is None else key
        p, q = args[0], args[1]
        log_w = p.module.call_fn("importance_log_weights", (p, q, int(draws)), {},
                                 params=self.params, key=key)
        log_w = jnp.asarray(log_w)
        return float(jnp.exp(2 * jax.nn.logsumexp(log_w) - jax.nn.logsumexp(2 * log_w)))

    # ---------------------------------------------------------- persistence

    def save(self, path: str) -> None:
        """Write parameters, optimiser state and history to ``path`` (a pickle of arrays)."""
        state = {"params": {k: np.asarray(v) for k, v in self.params.items()},
                 "opt_state": jax.tree_util.tree_map(np.asarray, self.opt_state),
                 "history": np.asarray(self.history), "steps": self.steps,
                 "seconds": self.seconds, "status": self.status, "message": self.message,
                 "key": None if self.key is None else np.asarray(self.key)}
        with open(path, "wb") as f:
            pickle.dump(state, f)

    @classmethod
    def load(cls, path: str, objective: Any = None) -> "FitResult":
        try:
            with open(path, "rb") as f:
                state = pickle.load(f)
        except (OSError, pickle.UnpicklingError, EOFError) as e:
            raise DataError(Diagnostic(f"cannot read the fit result {path}: {e}")) from None
        return cls(objective=objective,
                   params={k: jnp.asarray(v) for k, v in state["params"].items()},
                   opt_state=jax.tree_util.tree_map(jnp.asarray, state["opt_state"]),
                   history=state["history"], steps=state["steps"], seconds=state["seconds"],
                   status=state["status"], message=state["message"], key=state["key"])

    def plot(self, path: str, smooth: int = 50) -> str:
        """Plot the objective per step (and a moving average) to a PNG file."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise DataError(Diagnostic("plot() needs matplotlib: pip install 'ppl[plot]'")) from None
        fig, ax = plt.subplots(figsize=(7, 4))
        h = np.asarray(self.history)
        ax.plot(np.arange(len(h)), h, lw=0.6, alpha=0.5, label="objective")
        if len(h) >= smooth:
            ma = np.convolve(h, np.ones(smooth) / smooth, mode="valid")
            ax.plot(np.arange(smooth - 1, len(h)), ma, lw=1.5, label=f"moving average ({smooth})")
        name = getattr(self.objective, "name", "objective")
        ax.set_xlabel("step")
        ax.set_ylabel(f"{name} (nats, maximised)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


def summarize(traces, quantiles=(0.05, 0.5, 0.95)) -> dict[str, dict[str, np.ndarray]]:
    """Per-address mean, sd and quantiles over the leading (sample) axis of stacked traces."""
    out = {}
    for address in traces:
        v = np.asarray(traces[address], np.float64)
        row = {"mean": v.mean(0), "sd": v.std(0)}
        for q in quantiles:
            row[f"q{int(round(q * 100))}"] = np.quantile(v, q, axis=0)
        out[address] = row
    return out
