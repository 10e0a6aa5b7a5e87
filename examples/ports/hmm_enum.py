"""NumPyro's ``hmm_enum.py``, its first model: a hidden Markov model of polyphonic
music (a hidden state per step, one Bernoulli note per piano key), the states
summed out exactly (the forward algorithm, per sequence; steps past a sequence's
length masked) and the two "style" parameters, transition probabilities
``probs_x`` (Dirichlet rows) and note probabilities ``probs_y`` (beta), sampled with
NUTS. NumPyro downloads the JSB chorales; this port draws sequences of the same
kind from the model (fewer, shorter, fewer keys). examples/hmm.py fits an HMM
with Gaussian emissions by maximum marginal likelihood and by VI.

    python examples/ports/hmm_enum.py           # and NumPyro's NUTS beside it
    python examples/ports/hmm_enum.py --quick   # few draws, ppl only
"""

from __future__ import annotations

import jax
import numpy as np

import ppl

try:
    from .common import parse_quick, print_summary, side_by_side
except ImportError:  # run as a script
    from common import parse_quick, print_summary, side_by_side

# ppl:begin
SOURCE = """
gen model_1(lengths: int[S], T: int, D: int, H: int) {
    probs_x ~ dirichlet(0.9 * eye(H) + 0.1)
    probs_y ~ beta(0.1 * ones(H, D), 0.9)
    plate i in S {
        x = 0
        for t in T {
            x ~ categorical(probs=probs_x[x]) if t < lengths[i]
            plate d in D { y ~ bernoulli(probs_y[x, d]) if t < lengths[i] }
        }
    }
}
"""


def run_inference(m, sequences, lengths, H, draws, key):
    S, T, D = sequences.shape
    target = ppl.stdlib.marginal(m.model_1(lengths, T, D, H), keep=["probs_x", "probs_y", "y"],
                                 exact=True) | {"y": sequences}
    return ppl.nuts(target, num_samples=draws, num_warmup=draws, chains=1, key=key)
# ppl:end


def load_model() -> ppl.Module:
    return ppl.compile(SOURCE)


def get_data(S=20, T=24, D=8, H=2, seed=0):
    """Sequences [S, T, D] of notes from a sticky two-state chain, with lengths T/2..T."""
    rng = np.random.default_rng(seed)
    probs_x = np.array([[0.9, 0.1], [0.2, 0.8]])
    probs_y = rng.beta(0.5, 0.9, size=(H, D))
    sequences = np.zeros((S, T, D), np.int32)
    lengths = rng.integers(T // 2, T + 1, size=S).astype(np.int32)
    for i in range(S):
        x = 0
        for t in range(lengths[i]):
            x = rng.choice(H, p=probs_x[x])
            sequences[i, t] = rng.random(D) < probs_y[x]
    return sequences, lengths


def numpyro_model_1(sequences, lengths, hidden_dim, include_prior=True):
    """NumPyro's model_1, as hmm_enum.py writes it (``args.hidden_dim`` an argument)."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.contrib.control_flow import scan
    from numpyro.handlers import mask

    # numpyro:begin
    num_sequences, max_length, data_dim = sequences.shape
    with mask(mask=include_prior):
        probs_x = numpyro.sample(
            "probs_x", dist.Dirichlet(0.9 * jnp.eye(hidden_dim) + 0.1).to_event(1))
        probs_y = numpyro.sample(
            "probs_y", dist.Beta(0.1, 0.9).expand([hidden_dim, data_dim]).to_event(2))

    def transition_fn(carry, y):
        x_prev, t = carry
        with numpyro.plate("sequences", num_sequences, dim=-2):
            with mask(mask=(t < lengths)[..., None]):
                x = numpyro.sample("x", dist.Categorical(probs_x[x_prev]),
                                   infer={"enumerate": "parallel"})
                with numpyro.plate("tones", data_dim, dim=-1):
                    numpyro.sample("y", dist.Bernoulli(probs_y[x.squeeze(-1)]), obs=y)
        return (x, t + 1), None

    x_init = jnp.zeros((num_sequences, 1), dtype=jnp.int32)
    scan(transition_fn, (x_init, 0), jnp.swapaxes(sequences, 0, 1))


def numpyro_inference(sequences, lengths, hidden_dim, draws, seed):
    from numpyro.infer import MCMC, NUTS
    mcmc = MCMC(NUTS(numpyro_model_1), num_warmup=draws, num_samples=draws, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(seed), sequences, lengths, hidden_dim)
    mcmc.print_summary()
    # numpyro:end
    return {k: np.asarray(v) for k, v in mcmc.get_samples().items()}


def main(quick: bool = False, seed: int = 0) -> dict:
    H = 2
    sequences, lengths = get_data(S=8 if quick else 20, H=H)
    print(f"Training model_1 on {len(sequences)} sequences of shape {sequences[0].shape}")
    draws = 50 if quick else 500
    posterior = run_inference(load_model(), sequences, lengths, H, draws, jax.random.PRNGKey(seed))
    print(posterior)
    print_summary(posterior.summary, limit=4)
    result = {"posterior": posterior}
    if not quick:
        print("\nNumPyro's NUTS:")
        import jax.numpy as jnp
        reference = numpyro_inference(jnp.asarray(sequences), jnp.asarray(lengths), H, draws, seed)
        # The states' labels are nearly exchangeable (only the start at state 0 tells them
        # apart), so two chains may settle in differently labelled modes: compare NumPyro's
        # draws under the labelling closest to ppl's.
        order = min(([0, 1], [1, 0]), key=lambda o: np.abs(
            reference["probs_y"][:, o].mean(0) - posterior.samples["probs_y"].mean(0)).sum())
        if order != [0, 1]:
            print(f"(NumPyro's states relabelled {order})")
            reference = {"probs_x": reference["probs_x"][:, order][:, :, order],
                         "probs_y": reference["probs_y"][:, order]}
        rows = {f"probs_x[{i},{i}]": (lambda d, i=i: d["probs_x"][:, i, i]) for i in range(H)}
        rows.update({f"probs_y[{i},{j}]": (lambda d, i=i, j=j: d["probs_y"][:, i, j])
                     for i in range(H) for j in (0, 1)})
        result["gaps"] = side_by_side(rows, posterior.samples, reference)
    return result


if __name__ == "__main__":
    main(quick=parse_quick())
