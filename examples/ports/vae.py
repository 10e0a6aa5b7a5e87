"""NumPyro's ``vae.py``: a variational autoencoder (an encoder network to the mean and
scale of z, a decoder network from z to Bernoulli pixel probabilities, one softplus
hidden layer each) trained by the ELBO on minibatches with Adam, reporting the test
loss per image (the negative ELBO) after each epoch. NumPyro downloads MNIST; this
port uses scikit-learn's 8x8 digits, binarised as examples/vae_digits.py does
(that example trains a deeper VAE by the ELBO, IWAE and DReG bounds).

    python examples/ports/vae.py           # and NumPyro's SVI on the same data beside it
    python examples/ports/vae.py --quick   # a few epochs, ppl only
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
from jax.example_libraries import stax
from numpyro import optim
from numpyro.infer import SVI, Trace_ELBO

import ppl

try:
    from .common import parse_quick
except ImportError:  # run as a script
    from common import parse_quick

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vae_digits import load_digits  # noqa: E402  (the binarised digits, train and held out)

# ppl:begin
SOURCE = """
gen model(batch: real[B, D], hidden: int, z_dim: int) {
    plate i in B {
        z ~ normal(zeros(z_dim), 1.0)
        h ~ dense(z, hidden)
        img_loc ~ dense(softplus(h), D)
        obs ~ bernoulli(logits=img_loc)
    }
}

gen guide(batch: real[B, D], hidden: int, z_dim: int) {
    plate i in B {
        h ~ dense(batch[i], hidden)
        z_loc ~ dense(softplus(h), z_dim)
        z_scale ~ dense(softplus(h), z_dim)
        z ~ normal(z_loc, exp(z_scale))
    }
}

objective vae_elbo(batch: real[B, D], hidden: int, z_dim: int) {
    return elbo(model(batch, hidden, z_dim) | {obs: batch}, guide(batch, hidden, z_dim))
}
"""


def train(m, images, hidden, z_dim, epochs, batch_size, lr, key, params=None):
    return ppl.fit(lambda b: m.vae_elbo(b["x"], hidden, z_dim), data={"x": images},
                   batch_size=batch_size, epochs=epochs, optimizer=optax.adam(lr), key=key,
                   params=params, progress=False)
# ppl:end


def load_model() -> ppl.Module:
    return ppl.compile(SOURCE)


def test_loss(m, params, test, hidden, z_dim, key, estimates=100) -> float:
    """The negative ELBO per held-out image, averaged over ``estimates`` draws."""
    objective = m.vae_elbo(test, hidden, z_dim)
    values = [float(objective.value(k, params)) for k in jax.random.split(key, estimates)]
    return -float(np.mean(values)) / len(test)


# numpyro:begin
def encoder(hidden_dim, z_dim):
    return stax.serial(
        stax.Dense(hidden_dim, W_init=stax.randn()), stax.Softplus, stax.FanOut(2),
        stax.parallel(stax.Dense(z_dim, W_init=stax.randn()),
                      stax.serial(stax.Dense(z_dim, W_init=stax.randn()), stax.Exp)))


def decoder(hidden_dim, out_dim):
    return stax.serial(stax.Dense(hidden_dim, W_init=stax.randn()), stax.Softplus,
                       stax.Dense(out_dim, W_init=stax.randn()), stax.Sigmoid)


def numpyro_model(batch, hidden_dim=400, z_dim=100):
    batch_dim, out_dim = jnp.shape(batch)
    decode = numpyro.module("decoder", decoder(hidden_dim, out_dim), (batch_dim, z_dim))
    with numpyro.plate("batch", batch_dim):
        z = numpyro.sample("z", dist.Normal(0, 1).expand([z_dim]).to_event(1))
        img_loc = decode(z)
        return numpyro.sample("obs", dist.Bernoulli(img_loc).to_event(1), obs=batch)


def numpyro_guide(batch, hidden_dim=400, z_dim=100):
    batch_dim, out_dim = jnp.shape(batch)
    encode = numpyro.module("encoder", encoder(hidden_dim, z_dim), (batch_dim, out_dim))
    z_loc, z_std = encode(batch)
    with numpyro.plate("batch", batch_dim):
        return numpyro.sample("z", dist.Normal(z_loc, z_std).to_event(1))


def numpyro_vae(train_images, test, hidden_dim, z_dim, epochs, batch_size, lr, seed):
    svi = SVI(numpyro_model, numpyro_guide, optim.Adam(lr), Trace_ELBO(),
              hidden_dim=hidden_dim, z_dim=z_dim)
    rng_key = jax.random.key(seed)
    svi_state = svi.init(rng_key, train_images[:batch_size])
    update = jax.jit(svi.update)
    for epoch in range(epochs):
        rng_key, perm_key = jax.random.split(rng_key)
        order = jax.random.permutation(perm_key, len(train_images))
        for i in range(len(train_images) // batch_size):
            batch = train_images[order[i * batch_size:(i + 1) * batch_size]]
            svi_state, _ = update(svi_state, batch)
    return np.mean([float(svi.evaluate(svi_state, test)) for _ in range(100)]) / len(test)
# numpyro:end


def main(quick: bool = False, seed: int = 0) -> dict:
    train_images, test = load_digits(seed)
    hidden, z_dim, batch_size, lr = 128, 16, 100, 1e-3
    epochs = 5 if quick else 300
    m = load_model()
    fit = train(m, train_images, hidden, z_dim, epochs, batch_size, lr, jax.random.PRNGKey(seed))
    loss = test_loss(m, fit.params, test, hidden, z_dim, jax.random.PRNGKey(seed + 1),
                     estimates=10 if quick else 100)
    print(f"{len(train_images)} training and {len(test)} test images of {train_images.shape[1]} "
          f"pixels; {fit}")
    print(f"Epoch {epochs}: test loss = {loss:.3f} nats per image")
    result = {"fit": fit, "test_loss": loss}
    if not quick:
        theirs = numpyro_vae(train_images, test, hidden, z_dim, epochs, batch_size, lr, seed)
        print(f"NumPyro's SVI, the same networks and steps: test loss = {theirs:.3f} nats per "
              "image")
        result["numpyro_test_loss"] = theirs
    return result


if __name__ == "__main__":
    main(quick=parse_quick())
