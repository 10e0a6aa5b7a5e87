"""NumPyro's ``baseball.py``: batting averages of 18 players (Efron & Morris 1975)
from their first 45 at-bats, by four models (complete, no and partial pooling, and
partial pooling on the logit scale), each sampled with NUTS; the posterior
predictive of the hits, and the log pointwise predictive density of the whole
season's hits.

    python examples/ports/baseball.py           # and NumPyro's NUTS on the same models
    python examples/ports/baseball.py --quick   # few draws, ppl only (the test suite's run)
"""

from __future__ import annotations

import jax
import numpy as np
from jax.scipy.special import logsumexp
from jax.scipy.stats import binom

import ppl

try:
    from .common import parse_quick, side_by_side
except ImportError:  # run as a script
    from common import parse_quick, side_by_side

# ppl:begin
SOURCE = """
gen fully_pooled(at_bats: int[N]) {
    phi ~ uniform(0.0, 1.0)
    plate i in N { obs ~ binomial(at_bats[i], phi) }
}

gen not_pooled(at_bats: int[N]) {
    plate i in N {
        phi ~ uniform(0.0, 1.0)
        obs ~ binomial(at_bats[i], phi)
    }
}

gen partially_pooled(at_bats: int[N]) {
    m ~ uniform(0.0, 1.0)
    kappa ~ pareto(1.0, 1.5)
    plate i in N {
        phi ~ beta(m * kappa, (1.0 - m) * kappa)
        obs ~ binomial(at_bats[i], phi)
    }
}

gen partially_pooled_with_logit(at_bats: int[N]) {
    loc ~ normal(-1.0, 1.0)
    scale ~ halfcauchy(1.0)
    plate i in N {
        alpha ~ normal(loc, scale)
        obs ~ binomial(at_bats[i], logits=alpha)
    }
}
"""


def run_inference(model, at_bats, hits, key, draws):
    return ppl.nuts(model(at_bats) | {"obs": hits}, num_samples=draws, num_warmup=draws,
                    chains=1, chain_method="sequential", key=key).samples
# ppl:end

MODELS = ("fully_pooled", "not_pooled", "partially_pooled", "partially_pooled_with_logit")

# Efron & Morris (1975): name, hits in the first 45 at-bats, at-bats and hits in the season.
PLAYERS = [
    ("Roberto Clemente", 18, 412, 145), ("Frank Robinson", 17, 471, 144),
    ("Frank Howard", 16, 566, 160), ("Jay Johnstone", 15, 320, 76), ("Ken Berry", 14, 463, 128),
    ("Jim Spencer", 14, 511, 140), ("Don Kessinger", 13, 631, 168), ("Luis Alvarado", 12, 183, 41),
    ("Ron Santo", 11, 555, 148), ("Ron Swaboda", 11, 245, 57), ("Rico Petrocelli", 10, 583, 152),
    ("Ellie Rodriguez", 10, 231, 52), ("George Scott", 10, 480, 142), ("Del Unser", 10, 322, 83),
    ("Billy Williams", 10, 636, 205), ("Bert Campaneris", 9, 603, 168),
    ("Thurman Munson", 8, 453, 137), ("Max Alvis", 7, 115, 21),
]
NAMES = [p[0] for p in PLAYERS]
AT_BATS = np.full(len(PLAYERS), 45, np.int32)
HITS = np.array([p[1] for p in PLAYERS], np.int32)
SEASON_AT_BATS = np.array([p[2] for p in PLAYERS], np.int32)
SEASON_HITS = np.array([p[3] for p in PLAYERS], np.int32)


def load_model() -> ppl.Module:
    return ppl.compile(SOURCE)


def probability(draws) -> np.ndarray:
    """Each draw's success probabilities, [draws, players] (the logit model's sigmoid)."""
    if "alpha" in draws:
        return jax.nn.sigmoid(np.asarray(draws["alpha"]))
    phi = np.asarray(draws["phi"])
    return np.broadcast_to(phi[:, None] if phi.ndim == 1 else phi, (phi.shape[0], len(PLAYERS)))


def log_predictive_density(draws, at_bats, hits) -> float:
    """Sum over players of log mean over draws of p(hits | draw)."""
    loglik = binom.logpmf(hits, at_bats, probability(draws))
    return float((logsumexp(loglik, axis=0) - np.log(loglik.shape[0])).sum())


def print_predictions(header, predictions, at_bats, hits):
    print(f"\n {header}\n")
    print(f"{'':>20} {'At-bats':>10} {'ActualHits':>10} {'Pred(p25)':>10} {'Pred(p50)':>10} "
          f"{'Pred(p75)':>10}")
    q = np.quantile(np.asarray(predictions), [0.25, 0.5, 0.75], axis=0)
    for i, name in enumerate(NAMES):
        print(f"{name:>20} {at_bats[i]:>10.0f} {hits[i]:>10.0f} {q[0, i]:>10.2f} {q[1, i]:>10.2f} "
              f"{q[2, i]:>10.2f}")


def numpyro_models():
    """NumPyro's four models, as baseball.py writes them."""
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    # numpyro:begin
    def fully_pooled(at_bats, hits=None):
        phi = numpyro.sample("phi", dist.Uniform(0, 1))
        with numpyro.plate("num_players", at_bats.shape[0]):
            return numpyro.sample("obs", dist.Binomial(at_bats, probs=phi), obs=hits)

    def not_pooled(at_bats, hits=None):
        with numpyro.plate("num_players", at_bats.shape[0]):
            phi = numpyro.sample("phi", dist.Uniform(0, 1))
            return numpyro.sample("obs", dist.Binomial(at_bats, probs=phi), obs=hits)

    def partially_pooled(at_bats, hits=None):
        m = numpyro.sample("m", dist.Uniform(0, 1))
        kappa = numpyro.sample("kappa", dist.Pareto(1, 1.5))
        with numpyro.plate("num_players", at_bats.shape[0]):
            phi = numpyro.sample("phi", dist.Beta(m * kappa, (1 - m) * kappa))
            return numpyro.sample("obs", dist.Binomial(at_bats, probs=phi), obs=hits)

    def partially_pooled_with_logit(at_bats, hits=None):
        loc = numpyro.sample("loc", dist.Normal(-1, 1))
        scale = numpyro.sample("scale", dist.HalfCauchy(1))
        with numpyro.plate("num_players", at_bats.shape[0]):
            alpha = numpyro.sample("alpha", dist.Normal(loc, scale))
            return numpyro.sample("obs", dist.Binomial(at_bats, logits=alpha), obs=hits)

    def run_inference(model, at_bats, hits, rng_key, draws):
        mcmc = MCMC(NUTS(model), num_warmup=draws, num_samples=draws, progress_bar=False)
        mcmc.run(rng_key, at_bats, hits)
        return mcmc.get_samples()
    # numpyro:end

    models = {"fully_pooled": fully_pooled, "not_pooled": not_pooled,
              "partially_pooled": partially_pooled,
              "partially_pooled_with_logit": partially_pooled_with_logit}
    return models, run_inference


def main(quick: bool = False, seed: int = 0) -> dict:
    m = load_model()
    draws = 100 if quick else 3000
    models = MODELS[2:3] if quick else MODELS
    theirs, numpyro_inference = ({}, None) if quick else numpyro_models()
    results = {}
    for i, name in enumerate(models):
        key, predict_key = jax.random.split(jax.random.PRNGKey(seed + i + 1))
        zs = run_inference(getattr(m, name), AT_BATS, HITS, key, draws)
        if not quick:  # the binomial sampler with per-player counts is slow to compile
            train = getattr(m, name)(AT_BATS).predictive(predict_key, zs)["obs"]
            print_predictions("=" * 30 + name + " - TRAIN" + "=" * 30, train, AT_BATS, HITS)
        lppd = log_predictive_density(zs, SEASON_AT_BATS, SEASON_HITS)
        print(f"\nLog pointwise predictive density (season): {lppd:.2f}")
        results[name] = {"samples": zs, "lppd": lppd}
        if name in theirs:
            reference = numpyro_inference(theirs[name], AT_BATS, HITS, key, draws)
            print(f"NumPyro's NUTS: log pointwise predictive density "
                  f"{log_predictive_density(reference, SEASON_AT_BATS, SEASON_HITS):.2f}")
            rows = {f"p[{j}] {NAMES[j].split()[-1]}": (lambda d, j=j: probability(d)[:, j])
                    for j in (0, 8, 17)}
            results[name]["gaps"] = side_by_side(rows, zs, reference)
    return results


if __name__ == "__main__":
    main(quick=parse_quick())
