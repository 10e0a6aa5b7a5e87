"""The standard library: distributions, builtin functions, initialisers, constraints and objectives."""


def _objective(name: str, p, q, **kwargs):
    """Apply the standard objective ``name`` to a target and a family from one program."""
    module = getattr(p, "module", None)
    if module is None or getattr(q, "module", None) is None:
        raise TypeError(f"{name}(p, q) takes generative functions from a loaded program, "
                        f"got {type(p).__name__} and {type(q).__name__}")
    return module.objective(name, (p, q), kwargs)


def elbo(p, q):
    """The evidence lower bound E_q[log p(z, x) − log q(z)] (see objectives.ppl).

    >>> # obj = ppl.stdlib.elbo(m.model(N) | {"y": y}, m.guide())
    """
    return _objective("elbo", p, q)


def iwelbo(p, q, K: int):
    """The importance-weighted bound with ``K`` particles (IWAE; see objectives.ppl)."""
    return _objective("iwelbo", p, q, K=K)
