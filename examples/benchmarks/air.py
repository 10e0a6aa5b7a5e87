"""AIR gradient-step benchmark: ppl vs Pyro vs NumPyro, side by side (CPU).

Attend-Infer-Repeat (Eslami et al. 2016) as AIR_SPEC fixes it: T = 3 steps on
32x32 canvases of 0-2 scikit-learn digits (``examples/air/data.py``), a 16x16
window, z_what of 20, an LSTM of 256, a batch of 64. One gradient step is the
objective's value and its gradient in every parameter (no optimiser update):
``compiled_value_and_grad`` in ppl and NumPyro (``jax.jit(jax.value_and_grad)``),
``loss_and_grads`` (which runs ``backward``) in Pyro. Each repetition runs every
implementation once, in turn; the table shows medians after warm-up, the
first-call (compile / first trace) time, and ppl's ratio to each.

Rows (ppl estimator : Pyro : NumPyro); z_where and z_what are reparameterised in all:

- ``reinforce``: ELBO, z_pres by the score function : ``TraceGraph_ELBO`` :
  ``TraceGraph_ELBO``
- ``baseline``: the same with a running-average baseline (ppl ``running(0.9)``) :
  ``TraceGraph_ELBO`` with ``use_decaying_avg_baseline`` (beta 0.9) : not expressible
  (NumPyro's ``TraceGraph_ELBO`` has no baselines)
- ``learned_baseline``: Pyro's AIR example's learned baselines, ``dense(h.detach())``
  per step (ppl: ``critic(stop_gradient(h), t)`` as ``reinforce(baseline=...)``; Pyro:
  as ``baseline_value``) : not expressible
- ``enum``: ELBO, z_pres enumerated. ppl: one expectation per image (a plate of
  ``elbo``s), each image's z_pres summed over {0, 1} at every step, the image's later
  steps re-run for each value (its 2^T paths); Pyro and NumPyro: ``TraceEnum_ELBO``
  with z_pres enumerated in the guide (all 2^T paths of every image at once). The
  same exact sum over the presence paths.
- ``iwelbo_reinforce``: IWELBO, K = 2, z_pres by the score function. ppl: per image
  (a plate of ``iwelbo``s: K particles of each image, the standard IWAE bound); Pyro:
  ``RenyiELBO(alpha=0, num_particles=2)`` (vectorised particles), whose weights are the
  whole batch's joint (one bound of the batch, looser); the same work per step.
  NumPyro: not expressible (its ``RenyiELBO`` has no score-function term for a
  non-reparameterisable site: its gradient in the presence network would be wrong)

The three compute the same model and family: ``equivalence`` (run first, and in the
tests) checks log p(x, z) and log q(z | x) at one point against ppl's, and each
spatial transformer against ppl's builtin. Pyro's transformer is ``affine_grid`` +
``grid_sample(align_corners=True)``, NumPyro's two interpolation matrices (the
separable form of the same bilinear map).

    python examples/benchmarks/air.py                # the table (50 repetitions)
    python examples/benchmarks/air.py --objective enum --reps 10   # one row
    python examples/benchmarks/air.py --quick        # a smoke run (tests use it)

Pyro and torch are optional: ``pip install -e .[air-bench]`` and, on a CPU-only
machine, torch from a CPU wheel first (``pip install torch --index-url
https://download.pytorch.org/whl/cpu``; the default wheel is the multi-gigabyte CUDA
build). Without them the Pyro column says why. torch runs with 1 thread by default
(``--torch-threads``); XLA uses every core.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
AIR_DIR = os.path.join(os.path.dirname(HERE), "air")

T, CANVAS, WINDOW, Z_WHAT, HIDDEN, MLP_HIDDEN, BATCH = 3, 32, 16, 20, 256, 200, 64
RNN_IN = CANVAS * CANVAS + 3 + Z_WHAT + 1
WHERE_LOC, WHERE_SCALE, LIKELIHOOD_SD = (3.0, 0.0, 0.0), (0.2, 1.0, 1.0), 0.3
# Gating as in examples/air/air.ppl: a presence logit gets (prev - 1) * GATE, so once
# absent, absent after (probability exp(-1e4) = 0 in float32, finite log densities).
GATE = 1e4
OBJECTIVES = ("reinforce", "baseline", "learned_baseline", "enum", "iwelbo_reinforce")
GATES = "ifog"  # ppl's lstm_cell: input, forget (+1 bias), output, candidate

# ------------------------------------------------------------------ shared parameters
# One set of weights, named as below, is handed to every implementation (ppl's
# own names are mapped onto these by ``from_ppl_params``), so the three compute
# the same function at the same point.

SHAPES = {
    **{f"lstm.{g}.W": (RNN_IN + HIDDEN, HIDDEN) for g in GATES},
    **{f"lstm.{g}.b": (HIDDEN,) for g in GATES},
    "pres.W": (HIDDEN, 1), "pres.b": (1,),
    "where.W": (HIDDEN, 6), "where.b": (6,),
    "enc.input.W": (WINDOW * WINDOW, MLP_HIDDEN), "enc.input.b": (MLP_HIDDEN,),
    "enc.output.W": (MLP_HIDDEN, 2 * Z_WHAT), "enc.output.b": (2 * Z_WHAT,),
    "dec.input.W": (Z_WHAT, MLP_HIDDEN), "dec.input.b": (MLP_HIDDEN,),
    "dec.output.W": (MLP_HIDDEN, WINDOW * WINDOW), "dec.output.b": (WINDOW * WINDOW,),
    "baseline.W": (T, HIDDEN, 1), "baseline.b": (T, 1),
}
MODEL_PARAMS = tuple(k for k in SHAPES if k.startswith("dec."))
GUIDE_PARAMS = tuple(k for k in SHAPES if not k.startswith("dec."))


def init_params(seed: int = 0) -> dict[str, np.ndarray]:
    """LeCun-normal weights, zero biases (ppl's ``dense`` defaults), float32 numpy.

        >>> init_params()["lstm.i.W"].shape
        (1304, 256)
    """
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in SHAPES.items():
        fan_in = shape[-2] if len(shape) >= 2 else 1
        w = rng.normal(0.0, fan_in ** -0.5, shape) if name.endswith(".W") else np.zeros(shape)
        out[name] = w.astype(np.float32)
    return out


# ------------------------------------------------------------------ ppl (examples/air)


def load_air_example():
    """``examples/air/air.py`` as a module, or None where it is not there."""
    path = os.path.join(AIR_DIR, "air.py")
    if not os.path.exists(path):
        return None
    if AIR_DIR not in sys.path:
        sys.path.insert(0, AIR_DIR)
    spec = importlib.util.spec_from_file_location("air_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_images(n: int = BATCH, seed: int = 0) -> np.ndarray:
    """The benchmark's images, float32 [n, 32, 32], from ``examples/air/data.py``."""
    spec = importlib.util.spec_from_file_location("air_data", os.path.join(AIR_DIR, "data.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.multi_digits(n, seed)[0]


# ------------------------------------------------------------------ JAX pieces (NumPyro)


def _hat(coords, n):
    """Bilinear weights [..., len, n] of points ``coords`` [..., len] on pixels 0..n-1."""
    return jax.nn.relu(1.0 - jnp.abs(coords[..., None] - jnp.arange(n, dtype=coords.dtype)))


def jax_spatial_transformer(image, scale, shift, height, width):
    """The window of ``image`` [..., R, C] at ``scale * g + shift`` (shift = (row, col)),
    bilinear, zero outside, as two interpolation matrices (separable): Wy @ image @ Wx^T.

        >>> img = jnp.arange(9.0).reshape(3, 3)
        >>> bool(jnp.allclose(jax_spatial_transformer(img, 1.0, jnp.zeros(2), 3, 3), img))
        True
    """
    image, scale, shift = jnp.asarray(image), jnp.asarray(scale), jnp.asarray(shift)
    rows, cols = image.shape[-2:]
    gy, gx = jnp.linspace(-1.0, 1.0, height), jnp.linspace(-1.0, 1.0, width)
    y = (scale[..., None] * gy + shift[..., 0:1] + 1.0) * 0.5 * (rows - 1)
    x = (scale[..., None] * gx + shift[..., 1:2] + 1.0) * 0.5 * (cols - 1)
    return _hat(y, rows) @ image @ jnp.swapaxes(_hat(x, cols), -1, -2)


def _jcat(*xs):
    batch = jnp.broadcast_shapes(*(x.shape[:-1] for x in xs))
    return jnp.concatenate([jnp.broadcast_to(x, batch + x.shape[-1:]) for x in xs], -1)


def _jmlp(p, name, x):
    h = jax.nn.relu(x @ p[f"{name}.input.W"] + p[f"{name}.input.b"])
    return h @ p[f"{name}.output.W"] + p[f"{name}.output.b"]


def _jlstm(W, b, x, h, c):
    gates = _jcat(x, h) @ W + b
    i, f, o, g = jnp.split(gates, 4, axis=-1)
    c = jax.nn.sigmoid(f + 1.0) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    return jax.nn.sigmoid(o) * jnp.tanh(c), c


def numpyro_model(x, steps=T):
    import numpyro
    import numpyro.distributions as dist

    p = {k: numpyro.param(k, None) for k in MODEL_PARAMS}
    n = x.shape[0]
    loc, scale = jnp.array(WHERE_LOC), jnp.array(WHERE_SCALE)
    with numpyro.plate("data", n):
        canvas, pres = jnp.zeros((n, CANVAS, CANVAS)), jnp.ones(n)
        for t in range(steps):
            pres = numpyro.sample(f"pres_{t}", dist.Bernoulli(logits=(pres - 1.0) * GATE))
            pres = jnp.asarray(pres, jnp.float32)
            where = numpyro.sample(f"where_{t}", dist.Normal(loc, scale).expand([n, 3]).to_event(1))
            what = numpyro.sample(f"what_{t}", dist.Normal(0.0, 1.0).expand([n, Z_WHAT]).to_event(1))
            window = jax.nn.sigmoid(_jmlp(p, "dec", what)).reshape(what.shape[:-1] + (WINDOW, WINDOW))
            s = where[..., 0]
            patch = jax_spatial_transformer(window, s, where[..., 1:], CANVAS, CANVAS)
            canvas = canvas + pres[..., None, None] * patch
        numpyro.sample("x", dist.Normal(canvas.reshape(canvas.shape[:-2] + (-1,)), LIKELIHOOD_SD)
                       .to_event(1), obs=x.reshape(n, -1))


def numpyro_guide(x, steps=T, enumerate_presence=False):
    import numpyro
    import numpyro.distributions as dist

    p = {k: numpyro.param(k, None) for k in GUIDE_PARAMS}
    W = jnp.concatenate([p[f"lstm.{g}.W"] for g in GATES], -1)
    b = jnp.concatenate([p[f"lstm.{g}.b"] for g in GATES], -1)
    n = x.shape[0]
    flat = x.reshape(n, -1)
    h, c = jnp.zeros((n, HIDDEN)), jnp.zeros((n, HIDDEN))
    where, what, pres = jnp.zeros((n, 3)), jnp.zeros((n, Z_WHAT)), jnp.ones(n)
    infer = {"enumerate": "parallel"} if enumerate_presence else {}
    loc = jnp.array(WHERE_LOC)
    with numpyro.plate("data", n):
        for t in range(steps):
            h, c = _jlstm(W, b, _jcat(flat, where, what, pres[..., None]), h, c)
            logit = (h @ p["pres.W"] + p["pres.b"])[..., 0] + (pres - 1.0) * GATE
            pres = numpyro.sample(f"pres_{t}", dist.Bernoulli(logits=logit), infer=infer)
            pres = jnp.asarray(pres, jnp.float32)
            o = h @ p["where.W"] + p["where.b"]
            where = numpyro.sample(f"where_{t}", dist.Normal(o[..., :3] + loc, jax.nn.softplus(o[..., 3:]))
                                   .to_event(1))
            s = where[..., 0]
            glimpse = jax_spatial_transformer(x, 1.0 / s, -where[..., 1:] / s[..., None], WINDOW,
                                              WINDOW)
            e = _jmlp(p, "enc", glimpse.reshape(glimpse.shape[:-2] + (-1,)))
            what = numpyro.sample(f"what_{t}", dist.Normal(e[..., :Z_WHAT], jax.nn.softplus(e[..., Z_WHAT:]))
                                  .to_event(1))


NUMPYRO_NOT_EXPRESSIBLE = {
    "baseline": "not expressible: NumPyro's TraceGraph_ELBO has no baselines",
    "learned_baseline": "not expressible: NumPyro's TraceGraph_ELBO has no baselines",
    "iwelbo_reinforce": "not expressible: NumPyro's RenyiELBO has no score-function term "
                        "(presence gradient wrong)",
}


def numpyro_step(objective: str, steps: int = T):
    """``f(params, key, x) -> (value, grads)`` of NumPyro's objective (maximised), jitted;
    a string saying why where NumPyro cannot express it."""
    if objective in NUMPYRO_NOT_EXPRESSIBLE:
        return NUMPYRO_NOT_EXPRESSIBLE[objective]
    from numpyro.infer import TraceEnum_ELBO, TraceGraph_ELBO

    if objective == "reinforce":
        loss, enum = TraceGraph_ELBO(), False
    elif objective == "enum":
        loss, enum = TraceEnum_ELBO(max_plate_nesting=1), True
    else:
        raise ValueError(objective)

    def guide(x):
        return numpyro_guide(x, steps, enumerate_presence=enum)

    def model(x):
        return numpyro_model(x, steps)

    def value(p, key, x):
        return -loss.loss(key, p, model, guide, x)
    return jax.jit(jax.value_and_grad(value))


def numpyro_log_joint(params, x, latents):
    """log p(x, latents) of the NumPyro model (latents by site name: pres_t, where_t, what_t)."""
    from numpyro.infer.util import log_density

    p = {k: jnp.asarray(params[k]) for k in MODEL_PARAMS}
    steps = len(latents) // 3
    return jax.jit(lambda p, x, z: log_density(numpyro_model, (x, steps), {}, {**p, **z})[0])(
        p, jnp.asarray(x), latents)


def numpyro_log_guide(params, x, latents):
    """log q(latents | x) of the NumPyro guide."""
    from numpyro.infer.util import log_density

    p = {k: jnp.asarray(params[k]) for k in GUIDE_PARAMS}
    steps = len(latents) // 3
    return jax.jit(lambda p, x, z: log_density(numpyro_guide, (x, steps), {}, {**p, **z})[0])(
        p, jnp.asarray(x), latents)


# ------------------------------------------------------------------ torch pieces (Pyro)


def torch_spatial_transformer(image, scale, shift, height, width):
    """The same window with ``affine_grid`` + ``grid_sample(align_corners=True)``:
    theta = [[s, 0, col shift], [0, s, row shift]] (grid x is the column)."""
    import torch
    import torch.nn.functional as F

    batch = torch.broadcast_shapes(image.shape[:-2], scale.shape, shift.shape[:-1])
    rows, cols = image.shape[-2:]
    img = image.expand(batch + (rows, cols)).reshape(-1, 1, rows, cols)
    s = scale.expand(batch).reshape(-1)
    sh = shift.expand(batch + (2,)).reshape(-1, 2)
    zero = torch.zeros_like(s)
    theta = torch.stack([torch.stack([s, zero, sh[:, 1]], -1), torch.stack([zero, s, sh[:, 0]], -1)], -2)
    grid = F.affine_grid(theta, [s.shape[0], 1, height, width], align_corners=True)
    out = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.reshape(batch + (height, width))


def _tcat(*xs):
    import torch

    batch = torch.broadcast_shapes(*(x.shape[:-1] for x in xs))
    return torch.cat([x.expand(batch + x.shape[-1:]) for x in xs], -1)


class PyroAIR:
    """AIR's model and guide in Pyro, on torch copies of the shared parameters.

    ``baseline``: None; ``"running"``, Pyro's decaying-average baseline of each presence
    site's downstream cost (``baseline_beta=0.9``, as ppl's ``running(0.9)``); or
    ``"learned"``, ``dense(h.detach())`` per step as the site's ``baseline_value``, which
    TraceGraph_ELBO trains by its squared error (as in Pyro's AIR example);
    ``enumerate_presence``: presence sites are enumerated in parallel (TraceEnum_ELBO).
    """

    def __init__(self, params, baseline=None, enumerate_presence=False, steps=T):
        import torch

        self.module = torch.nn.Module()
        self.module.p = torch.nn.ParameterDict(
            {k.replace(".", "_"): torch.nn.Parameter(torch.tensor(v)) for k, v in params.items()})
        self.baseline, self.enumerate_presence, self.steps = baseline, enumerate_presence, steps

    def __getitem__(self, name):
        return self.module.p[name.replace(".", "_")]

    def _mlp(self, name, x):
        import torch

        h = torch.relu(x @ self[f"{name}.input.W"] + self[f"{name}.input.b"])
        return h @ self[f"{name}.output.W"] + self[f"{name}.output.b"]

    def model(self, x):
        import pyro
        import pyro.distributions as dist
        import torch

        pyro.module("air", self.module)
        n = x.shape[0]
        loc, scale = torch.tensor(WHERE_LOC), torch.tensor(WHERE_SCALE)
        with pyro.plate("data", n):
            canvas, pres = torch.zeros(n, CANVAS, CANVAS), torch.ones(n)
            for t in range(self.steps):
                pres = pyro.sample(f"pres_{t}", dist.Bernoulli(logits=(pres - 1.0) * GATE))
                where = pyro.sample(f"where_{t}", dist.Normal(loc, scale).expand([n, 3]).to_event(1))
                what = pyro.sample(f"what_{t}", dist.Normal(0.0, 1.0).expand([n, Z_WHAT]).to_event(1))
                window = torch.sigmoid(self._mlp("dec", what)).reshape(what.shape[:-1] + (WINDOW, WINDOW))
                s = where[..., 0]
                patch = torch_spatial_transformer(window, s, where[..., 1:], CANVAS, CANVAS)
                canvas = canvas + pres[..., None, None] * patch
            pyro.sample("x", dist.Normal(canvas.reshape(canvas.shape[:-2] + (-1,)), LIKELIHOOD_SD)
                        .to_event(1), obs=x.reshape(n, -1))

    def guide(self, x):
        import pyro
        import pyro.distributions as dist
        import torch
        import torch.nn.functional as F

        pyro.module("air", self.module)
        W = torch.cat([self[f"lstm.{g}.W"] for g in GATES], -1)
        b = torch.cat([self[f"lstm.{g}.b"] for g in GATES], -1)
        n = x.shape[0]
        flat = x.reshape(n, -1)
        h, c = torch.zeros(n, HIDDEN), torch.zeros(n, HIDDEN)
        where, what, pres = torch.zeros(n, 3), torch.zeros(n, Z_WHAT), torch.ones(n)
        loc = torch.tensor(WHERE_LOC)
        with pyro.plate("data", n):
            for t in range(self.steps):
                gates = _tcat(flat, where, what, pres[..., None], h) @ W + b
                i, f, o, g = gates.chunk(4, -1)
                c = torch.sigmoid(f + 1.0) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                logit = (h @ self["pres.W"] + self["pres.b"])[..., 0] + (pres - 1.0) * GATE
                infer = {}
                if self.enumerate_presence:
                    infer["enumerate"] = "parallel"
                if self.baseline == "running":
                    infer["baseline"] = {"use_decaying_avg_baseline": True, "baseline_beta": 0.9}
                elif self.baseline == "learned":
                    bl = (h.detach() @ self["baseline.W"][t] + self["baseline.b"][t])[..., 0]
                    infer["baseline"] = {"baseline_value": bl}
                pres = pyro.sample(f"pres_{t}", dist.Bernoulli(logits=logit), infer=infer)
                o = h @ self["where.W"] + self["where.b"]
                where = pyro.sample(f"where_{t}", dist.Normal(o[..., :3] + loc, F.softplus(o[..., 3:]))
                                    .to_event(1))
                s = where[..., 0]
                glimpse = torch_spatial_transformer(x, 1.0 / s, -where[..., 1:] / s[..., None],
                                                    WINDOW, WINDOW)
                e = self._mlp("enc", glimpse.reshape(glimpse.shape[:-2] + (-1,)))
                what = pyro.sample(f"what_{t}", dist.Normal(e[..., :Z_WHAT], F.softplus(e[..., Z_WHAT:]))
                                   .to_event(1))

    def zero_grad(self):
        for q in self.module.parameters():
            q.grad = None


def pyro_step(objective: str, params, x, steps: int = T):
    """A callable ``f(seed) -> value``: one Pyro value-and-gradient step (``loss_and_grads``,
    which runs ``backward``; the gradients are left in the parameters' ``.grad``)."""
    import pyro
    import torch
    from pyro.infer import RenyiELBO, TraceEnum_ELBO, TraceGraph_ELBO

    air = PyroAIR(params, baseline={"baseline": "running", "learned_baseline": "learned"}.get(objective),
                  enumerate_presence=objective == "enum", steps=steps)
    if objective in ("reinforce", "baseline", "learned_baseline"):
        elbo = TraceGraph_ELBO()
    elif objective == "enum":
        elbo = TraceEnum_ELBO(max_plate_nesting=1)
    elif objective == "iwelbo_reinforce":
        elbo = RenyiELBO(alpha=0.0, num_particles=2, vectorize_particles=True, max_plate_nesting=1)
    else:
        raise ValueError(objective)
    xt = torch.tensor(np.asarray(x))

    pyro.clear_param_store()

    def step(seed):
        pyro.set_rng_seed(seed)
        air.zero_grad()
        return -elbo.loss_and_grads(air.model, air.guide, xt)
    return step


def pyro_log_joint(params, x, latents):
    """log p(x, latents) of the Pyro model (latents by site name)."""
    import pyro.poutine as poutine
    import torch

    air = PyroAIR(params, steps=len(latents) // 3)
    values = {k: torch.tensor(np.asarray(v)) for k, v in latents.items()}
    tr = poutine.trace(poutine.condition(air.model, values)).get_trace(torch.tensor(np.asarray(x)))
    return float(tr.log_prob_sum().detach())


def pyro_log_guide(params, x, latents):
    """log q(latents | x) of the Pyro guide."""
    import pyro.poutine as poutine
    import torch

    air = PyroAIR(params, steps=len(latents) // 3)
    values = {k: torch.tensor(np.asarray(v)) for k, v in latents.items()}
    tr = poutine.trace(poutine.condition(air.guide, values)).get_trace(torch.tensor(np.asarray(x)))
    return float(tr.log_prob_sum().detach())


def pyro_available() -> str | None:
    """None where torch and Pyro import, else why not."""
    try:
        import pyro  # noqa: F401
        import torch  # noqa: F401
    except ImportError as err:
        return f"not installed ({err.name})"
    return None


# ------------------------------------------------------------------ timing


def time_calls(steps: dict, reps: int) -> dict:
    """Median seconds per call and first-call seconds of each ``step(i)`` (which must
    block until its result is ready), interleaved: each repetition calls every step once,
    in turn, after one first call and three warm-up calls each."""
    first, times = {}, {name: [] for name in steps}
    for name, step in steps.items():
        t0 = time.perf_counter()
        step(0)
        first[name] = time.perf_counter() - t0
        for i in range(1, 4):
            step(i)
    for r in range(reps):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step(4 + r)
            times[name].append(time.perf_counter() - t0)
    return {name: (statistics.median(times[name]), first[name]) for name in steps}


def _jax_call(step, params, x, calls: int):
    keys = jax.random.split(jax.random.PRNGKey(1), calls)

    def call(i):
        return jax.block_until_ready(step(params, keys[i], x))
    return call


# ------------------------------------------------------------------ ppl's parameters and choices

_PPL_NAMES = (  # (pattern in ppl's parameter path, name here); {g}: a gate, {wb}: W or b
    ("air_family.step.state.{g}.{wb}", "lstm.{g}.{wb}"),
    ("air_family.step.presence.{wb}", "pres.{wb}"),
    ("air_family.place.o.{wb}", "where.{wb}"),
    ("air_family.e.out.input.{wb}", "enc.input.{wb}"),
    ("air_family.e.out.output.{wb}", "enc.output.{wb}"),
    ("air_model.net.out.input.{wb}", "dec.input.{wb}"),
    ("air_model.net.out.output.{wb}", "dec.output.{wb}"),
)


def from_ppl_params(ppl_params, seed: int = 0) -> dict[str, np.ndarray]:
    """The shared parameters (names of ``SHAPES``) at ppl's values; the learned baseline
    (which examples/air does not have) from ``init_params(seed)``."""
    out = init_params(seed)
    for pattern, name in _PPL_NAMES:
        for g in GATES if "{g}" in pattern else [""]:
            for wb in "Wb":
                path = pattern.format(g=g, wb=wb)
                if path not in ppl_params:
                    raise KeyError(f"ppl parameter {path!r} not found (have {sorted(ppl_params)})")
                value = np.asarray(ppl_params[path], np.float32)
                key = name.format(g=g, wb=wb)
                if value.shape != SHAPES[key]:
                    raise ValueError(f"{path}: shape {value.shape}, expected {SHAPES[key]}")
                out[key] = value
    return out


def ppl_objective(air, module, name: str, images, steps: int = T):
    """ppl's objective for a row of the table (the estimator of examples/air by that name)."""
    return air.objective(module, name, images, T=steps)


def _ppl_model_family(module, image, steps):
    """examples/air's model of one image conditioned on ``image`` ([C, C]) and its family,
    at examples/air's sizes."""
    air = load_air_example()
    z = {**air.SIZES, "T": steps}
    target = module.air_model(steps, image.shape[-1], z["W"], z["D"], z["H"])
    family = module.air_family(image, steps, z["W"], z["D"], z["H"], z["L"], 0)
    return target | {"x": image}, family


def ppl_log_densities(module, images, choices, params, steps: int = T) -> tuple[float, float]:
    """ppl's log p(x, z) and log q(z | x) of a batch: the sums over its images of the
    per-image model's and family's (``choices`` stacked as [T, B, ...])."""
    joint = guide = 0.0
    for i in range(images.shape[0]):
        target, family = _ppl_model_family(module, images[i], steps)
        mine = {k: v[:, i] for k, v in choices.items()}
        joint += float(target.density(mine, params))
        guide += float(family.density(mine, params))
    return joint, guide


def latents_by_site(trace) -> dict[str, np.ndarray]:
    """ppl's choices (a trace or a dict) z_pres [T, B], z_where [T, B, 3], z_what [T, B, 20] as the Pyro /
    NumPyro sites pres_t, where_t, what_t."""
    out = {}
    for t in range(np.shape(trace["z_pres"])[0]):
        out[f"pres_{t}"] = np.asarray(trace["z_pres"][t], np.float32)
        out[f"where_{t}"] = np.asarray(trace["z_where"][t], np.float32)
        out[f"what_{t}"] = np.asarray(trace["z_what"][t], np.float32)
    return out


def equivalence(module, images, ppl_params, steps: int = T, seed: int = 0, log=print) -> dict:
    """At one point (``ppl_params``, ppl's parameters, each shifted by noise of 0.05 so
    that no bias is at its zero start, and random choices): log p(x, z) and log q(z | x) of
    ppl, NumPyro and (where installed) Pyro, and the largest difference of each spatial
    transformer from ppl's builtin on random inputs (reading a glimpse, writing a window).
    ``module``: examples/air's compiled module; ``images`` [B, 32, 32]. Returns the
    numbers (the tests compare them)."""
    from ppl.stdlib.functions import spatial_transformer

    images = jnp.asarray(images)
    batch = images.shape[0]
    rng = np.random.default_rng(seed + 1)
    ppl_params = {k: v + 0.05 * rng.standard_normal(v.shape).astype(np.float32)
                  for k, v in ppl_params.items()}
    params = from_ppl_params(ppl_params)
    # The point: image i holds i mod (T + 1) objects (so both gates are seen), random
    # scales in [2, 4], shifts in [-1, 1] and z_what.
    objects = np.arange(batch) % (steps + 1)
    where = np.concatenate([rng.uniform(2.0, 4.0, (steps, batch, 1)),
                            rng.uniform(-1.0, 1.0, (steps, batch, 2))], -1)
    choices = {"z_pres": jnp.asarray(np.arange(steps)[:, None] < objects, jnp.int32),
               "z_where": jnp.asarray(where, jnp.float32),
               "z_what": jnp.asarray(rng.standard_normal((steps, batch, Z_WHAT)), jnp.float32)}
    latents = latents_by_site(choices)
    ppl_joint, ppl_guide = ppl_log_densities(module, images, choices, ppl_params, steps)
    out = {"ppl_log_joint": ppl_joint, "ppl_log_guide": ppl_guide,
           "numpyro_log_joint": float(numpyro_log_joint(params, images, latents)),
           "numpyro_log_guide": float(numpyro_log_guide(params, images, latents)),
           "objects": objects.tolist()}
    # A negative control: z_where's row and column shifts swapped (a transposed transformer).
    swapped = {k: v[..., jnp.array([0, 2, 1])] if k.startswith("where") else v for k, v in latents.items()}
    out["numpyro_log_joint_transposed"] = float(numpyro_log_joint(params, images, swapped))
    img = rng.random((5, CANVAS, CANVAS)).astype(np.float32)
    s = rng.uniform(0.3, 1.5, 5).astype(np.float32)
    sh = rng.uniform(-1.2, 1.2, (5, 2)).astype(np.float32)
    win = rng.random((5, WINDOW, WINDOW)).astype(np.float32)
    s2 = rng.uniform(2.0, 4.0, 5).astype(np.float32)
    cases = {"read": (img, s, sh, WINDOW, WINDOW), "write": (win, 1 / s2, -sh / s2[:, None], CANVAS, CANVAS)}
    refs = {c: np.asarray(spatial_transformer(*a)) for c, a in cases.items()}
    out["numpyro_transformer_err"] = max(
        float(np.abs(np.asarray(jax_spatial_transformer(*a)) - refs[c]).max()) for c, a in cases.items())
    if pyro_available() is None:
        import torch

        out["pyro_log_joint"] = pyro_log_joint(params, images, latents)
        out["pyro_log_guide"] = pyro_log_guide(params, images, latents)
        out["pyro_transformer_err"] = max(float(np.abs(torch_spatial_transformer(
            torch.tensor(a[0]), torch.tensor(a[1]), torch.tensor(a[2]), a[3], a[4]).numpy() - refs[c]).max())
            for c, a in cases.items())
    for k, v in out.items():
        log(f"  {k:<24} {v}")
    return out


# ------------------------------------------------------------------ the table

ROW_NOTES = {
    "reinforce": "ELBO, z_pres by score function | Pyro, NumPyro: TraceGraph_ELBO",
    "baseline": "+ running-average baseline 0.9 | Pyro: TraceGraph_ELBO, use_decaying_avg_baseline",
    "learned_baseline": "+ learned baseline dense(h.detach()) per step | Pyro: TraceGraph_ELBO, "
                        "baseline_value",
    "enum": "ppl: enum, one expectation per image (its 2^T presence paths) | Pyro, NumPyro: "
            "TraceEnum_ELBO, guide enumeration (2^T joint paths)",
    "iwelbo_reinforce": "IWELBO K=2, z_pres by score function | Pyro: RenyiELBO(alpha=0, num_particles=2)",
}


def main(argv=None) -> dict:
    """Prints the table; returns ``{"rows": [one dict per objective], "equivalence": the
    check's numbers (None with --no-check)}``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objective", action="append", choices=OBJECTIVES,
                    help="rows to time (default all)")
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--batch", type=int, default=BATCH)
    ap.add_argument("--steps", type=int, help=f"AIR's T, objects at most (default {T}; 1 with --quick)")
    ap.add_argument("--torch-threads", type=int, default=1,
                    help="torch.set_num_threads (default 1: on a shared, loaded 2-core machine "
                         "torch's second OpenMP thread made Pyro's steps several times slower)")
    ap.add_argument("--only", action="append", choices=["ppl", "pyro", "numpyro"],
                    help="implementations to run (default all)")
    ap.add_argument("--no-check", action="store_true", help="skip the equivalence check")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: batch 4, T = 1, the reinforce row, 2 repetitions")
    args = ap.parse_args(argv)
    objectives = args.objective or list(OBJECTIVES)
    reps, batch, steps = args.reps, args.batch, args.steps or T
    if args.quick:
        objectives, reps, batch, steps = args.objective or ["reinforce"], 2, 4, args.steps or 1
    only = set(args.only or ["ppl", "pyro", "numpyro"])
    no_pyro = pyro_available()
    if no_pyro is None:
        import pyro
        import torch

        torch.set_num_threads(args.torch_threads)
        pyro.enable_validation(False)  # Pyro's argument checks off while timing

    air = load_air_example()
    images = load_images(batch)
    x = jnp.asarray(images)
    module = air.load_module() if air is not None else None
    ppl_objectives = {}
    if air is not None:
        ppl_objectives["reinforce"] = air.objective(module, "reinforce", x, T=steps)
        shared = ppl_objectives["reinforce"].init(jax.random.PRNGKey(0))
        params = from_ppl_params(shared)
    else:
        shared, params = None, init_params(0)
    jparams = {k: jnp.asarray(v) for k, v in params.items()}

    print(f"AIR (T={steps}, 32x32, batch {batch}): one value-and-gradient step; medians of {reps} "
          f"interleaved repetitions after 3 warm-up calls")
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind} ({jax.default_backend()}), "
          f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.2f} at the start")
    if no_pyro is None:
        print(f"torch {torch.__version__} with {torch.get_num_threads()} threads, pyro {pyro.__version__} "
              f"(validation off)")
    check = None
    if not args.no_check and air is not None:
        print("equivalence at one point (the same parameters and choices):")
        check = equivalence(module, x[:4], shared, steps)

    rows = []
    header = (f"{'objective':<18}{'ppl ms':>9}{'pyro ms':>10}{'numpyro ms':>12}{'ppl/pyro':>10}"
              f"{'ppl/numpyro':>13}  first call s (ppl/pyro/numpyro)")
    print(header)
    for name in objectives:
        calls, why = {}, {}
        if "ppl" in only:
            obj = ppl_objectives.get(name) or (
                ppl_objective(air, module, name, x, steps) if air is not None else None)
            if obj is None:
                why["ppl"] = "no such objective in examples/air" if air is not None \
                    else "examples/air/air.py missing"
            else:
                init = obj.init(jax.random.PRNGKey(0))
                p_ppl = {k: shared.get(k, v) for k, v in init.items()}
                raw = obj.compiled_value_and_grad()
                calls["ppl"] = _jax_call(lambda p, k, xb, raw=raw: raw(p, k, [xb]), p_ppl, x, reps + 4)
        if "pyro" in only:
            if no_pyro:
                why["pyro"] = no_pyro
            else:
                calls["pyro"] = pyro_step(name, params, images, steps)
        if "numpyro" in only:
            st = numpyro_step(name, steps)
            if isinstance(st, str):
                why["numpyro"] = st
            else:
                calls["numpyro"] = _jax_call(st, jparams, x, reps + 4)
        res = time_calls(calls, reps)
        row = {"objective": name, **{f"{n}_ms": res[n][0] * 1e3 for n in res},
               **{f"{n}_first_s": res[n][1] for n in res}, **{f"{n}_why": w for n, w in why.items()}}
        rows.append(row)

        def ms(n):
            return f"{row[n + '_ms']:.1f}" if n + "_ms" in row else "-"

        def ratio(n):
            return f"{row['ppl_ms'] / row[n + '_ms']:.2f}" if "ppl_ms" in row and n + "_ms" in row else "-"

        firsts = "/".join(f"{row[n + '_first_s']:.1f}" if n + "_first_s" in row else "-"
                          for n in ("ppl", "pyro", "numpyro"))
        print(f"{name:<18}{ms('ppl'):>9}{ms('pyro'):>10}{ms('numpyro'):>12}{ratio('pyro'):>10}"
              f"{ratio('numpyro'):>13}  {firsts}", flush=True)
        for n, w in why.items():
            print(f"{'':<18}{n}: {w}")
    print("\nrows:")
    for name in objectives:
        print(f"  {name:<18} {ROW_NOTES[name]}")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    return {"rows": rows, "equivalence": check}


if __name__ == "__main__":
    main()
