"""Maximising objectives: ``ppl.fit``.

``fit`` runs an optax optimiser on an objective's unbiased gradient
estimates. The step is compiled once and run in chunks of steps inside
``lax.scan``, so Python only sees the loop between chunks (to draw the
progress bar, save checkpoints and stop early).

    >>> import ppl, jax, optax
    >>> m = ppl.compile('''
    ... gen model() { z ~ normal(0.0, 1.0); x ~ normal(z, 1.0) }
    ... gen guide() { param mu: real = 0.0; z ~ normal(mu, 1.0) }''')
    >>> obj = ppl.stdlib.elbo(m.model() | {"x": 2.0}, m.guide())
    >>> schedule = optax.cosine_decay_schedule(0.1, 1000)   # a decaying step settles the fit
    >>> result = ppl.fit(obj, steps=1000, optimizer=optax.adam(schedule), progress=False)
    >>> abs(float(result.constrained_params["guide.mu"]) - 1.0) < 0.2   # the posterior mean is 1
    True

Design notes:

- **Reproducible.** Step ``s`` uses ``fold_in(key, s)`` (and draws its
  minibatch from it), so chunk sizes do not change results and a resumed run
  continues exactly as an uninterrupted one.
- **Minibatches.** ``fit(build, data=..., batch_size=B)`` calls ``build`` on
  a batch (a dict or array with leading axis N, sliced to B rows) to get the
  objective. Each step draws a fresh random batch and calls ``build`` on it
  inside the compiled step, so whatever ``build`` computes from the batch
  (``b["x"] * 2.0``) follows the data by value. Which of the objective's
  inputs come from the batch is found by tracing ``build`` once on the
  batch (``jax.vmap``); those inputs are the program's minibatched inputs. A
  plate that reads them along its axis has its log density scaled by N/B,
  as NumPyro's subsampled plates are, so the full-data objective stays
  unbiased; a ``for`` loop or a choice outside such a plate that reads the
  batch is a compile error (passes/expand.py).
- **Compiled once.** The chunk runner is cached on the module by the
  objective's entry key, the optimiser, the data's layout and the chunk
  length: a second ``fit`` of the same objective with data of the same
  shapes compiles nothing. For a minibatch fit the key also holds what
  ``build`` computes from a batch *by value* (its jaxpr and the bytes of
  the arrays it closes over), never the function's identity: a ``build``
  whose closure changed between fits gets its own program.
- **Dependable.** A non-finite objective or gradient stops the run (the
  scan freezes the state at the last good step), and the result names the
  step and the parameters affected; its parameters are those of the last
  step whose objective and gradient were finite. Ctrl-C returns the result
  so far.
  Checkpoints hold the parameters, optimiser state, step, key and history.
- **Early stopping** (optional, ``patience=P``): the objective is averaged
  over windows of ``window`` steps; the run stops when the best window
  average has not improved by ``min_delta`` for ``P`` windows in a row.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .compiler.diagnostics import DataError, Diagnostic
from .combinators import initial_params
from .entries import check_key
from .result import FitResult
from .jit import jit

DEFAULT_OPTIMIZER = "optax.adam(1e-2)"
_DEFAULT_OPTIMIZER: optax.GradientTransformation | None = None


def default_optimizer() -> optax.GradientTransformation:
    """``optax.adam(1e-2)``, one object per process (so fits with it share compiled code)."""
    global _DEFAULT_OPTIMIZER
    if _DEFAULT_OPTIMIZER is None:
        _DEFAULT_OPTIMIZER = optax.adam(1e-2)
    return _DEFAULT_OPTIMIZER


def fit(objective, steps: int | None = None, optimizer: optax.GradientTransformation | None = None,
        key=None, params: dict | None = None, data: Any = None, batch_size: int | None = None,
        epochs: int | None = None, per_datapoint: bool = False,
        chunk: int = 100, progress: bool | None = None, checkpoint: str | None = None,
        checkpoint_every: int | None = None, resume: "str | FitResult | None" = None,
        patience: int | None = None, window: int = 100, min_delta: float = 0.0,
        shard: bool | None = None, estimates: int = 1) -> FitResult:
    """Maximise ``objective`` with ``optimizer`` (default ``optax.adam(1e-2)``).

    ``objective`` is an :class:`~ppl.objective.Objective`, or, with ``data``
    and ``batch_size``, a function from a batch to one. Run ``steps`` steps
    (default 1000), or ``epochs`` passes over the data (N / batch_size steps
    each). ``per_datapoint`` maximises the objective divided by the number of
    data points N (an average per data point, as amortised objectives are
    usually reported); its optimum is the same. ``params`` start the
    run (default: ``objective.init``). ``progress`` shows a progress bar
    (default: on at a terminal, off under CI). ``resume`` continues a run from
    its checkpoint file, or from its :class:`FitResult` (its parameters,
    optimiser state, step count, history and key: ``fit(obj, steps=2000,
    resume=fit(obj, steps=1000))`` is one run of 2000 steps). ``shard`` splits each minibatch across the local
    devices (default: when there are several and they divide the batch).
    ``estimates=E`` averages E independent estimates of the objective and its
    gradient per step (vectorised, one program; NumPyro's ``num_particles``):
    the history holds their mean. Returns a :class:`FitResult`.
    """
    key = jax.random.PRNGKey(0) if key is None else check_key(key, "fit(key=...)")
    optimizer = optimizer if optimizer is not None else default_optimizer()
    batcher = Batcher(objective, data, batch_size, shard) if callable(objective) and not hasattr(
        objective, "value_and_grad") else Batcher.whole(objective, data, batch_size)
    obj = batcher.objective
    if epochs is not None:
        if steps is not None:
            raise DataError(Diagnostic("give fit() either steps= or epochs=, not both"))
        per_epoch = -(-batcher.n // batcher.batch_size) if batcher.n else 1
        steps = epochs * per_epoch
    steps = 1000 if steps is None else steps
    divide = float(batcher.n) if per_datapoint and batcher.n else 1.0
    if per_datapoint and not batcher.n:
        raise DataError(Diagnostic("per_datapoint=True needs data= (to know the number of points)"))
    start, history, opt_state = 0, [], None
    if resume is not None:
        state = _resumed(resume)
        params, opt_state, start = state["params"], state["opt_state"], state["step"]
        history, key = list(state["history"]), jnp.asarray(state["key"])
    if params is None:
        params = initial_params(obj, batcher.entry.init_folded(key, 0x5EED),
                                jax.random.fold_in(key, 0x5EED))
    params = {k: jnp.asarray(v, jnp.float32) for k, v in batcher.entry.params(params).items()}
    if not params:
        raise DataError(Diagnostic(
            f"{obj!r} has no parameters, so fit has nothing to optimise",
            help="declare the family's (or the model's) learnable values with 'param'; "
                 "to estimate the objective's value, use its .value(key)"))
    if opt_state is None:
        opt_state = optimizer.init(params)
    if isinstance(estimates, bool) or not isinstance(estimates, (int, np.integer)) or estimates < 1:
        raise DataError(Diagnostic(f"fit(estimates=...) must be a positive integer, got "
                                   f"{estimates!r}"))
    run_chunk = _chunk_runner(batcher, optimizer, divide, int(estimates))
    bar = _progress_bar(steps, start, progress)
    t0 = time.perf_counter()
    status, failure = "completed", None
    best, stale, windows = -np.inf, 0, []
    step = start
    try:
        while step < steps:
            n = min(chunk, steps - step)
            new_params, new_opt, values, ok, bad_step, bad_leaves = run_chunk(
                params, opt_state, key, jnp.int32(step), n)
            values = np.asarray(values)
            if not bool(ok):
                # The state is the one step ``bad - 1`` was evaluated at (before its update),
                # so the history holds steps 0 .. bad - 2 and a resume re-runs step bad - 1.
                chunk_start = step
                step = max(int(bad_step) - 1, 0)
                history.extend(values[:max(step - chunk_start, 0)].tolist())
                params, opt_state = new_params, new_opt
                affected = [p for p, bad in zip(sorted(params), np.asarray(bad_leaves)) if bad]
                failure = (f"the objective or its gradient is not finite at step {int(bad_step)}"
                           + (f" (non-finite gradients: {', '.join(affected)})" if affected else "")
                           + "; the result holds the parameters of the last good step")
                status = "failed"
                break
            params, opt_state = new_params, new_opt
            history.extend(values.tolist())
            step += n
            if bar is not None:
                bar.update(n)
                bar.set_postfix(objective=f"{_smoothed(history):.4g}")
            if checkpoint and checkpoint_every and (step // checkpoint_every
                                                    != (step - n) // checkpoint_every):
                save_checkpoint(checkpoint, params, opt_state, step, key, history)
            if patience:
                while len(history) >= (len(windows) + 1) * window:
                    w = len(windows)
                    windows.append(float(np.mean(history[w * window:(w + 1) * window])))
                    if windows[-1] > best + min_delta:
                        best, stale = windows[-1], 0
                    else:
                        stale += 1
                if stale >= patience:
                    status = "stopped early"
                    break
    except KeyboardInterrupt:
        status = "interrupted"
    finally:
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - t0
    if checkpoint:
        save_checkpoint(checkpoint, params, opt_state, step, key, history)
    result = FitResult(objective=obj, params=params, opt_state=opt_state,
                       history=np.asarray(history, np.float64), steps=step, seconds=elapsed,
                       status=status, message=failure, key=key)
    if failure is not None:
        print(f"ppl.fit: {failure}", file=sys.stderr)
    return result


def running_mean(grads: dict, baseline: str, weight: str | None):
    """Σ_u c_u (ℓ_u − b) / Σ_u c_u: the mean of a running baseline's uses' ℓ − b, from
    the gradient estimates of the baseline and of its weight (0 where it was not used)."""
    if weight is None:
        return grads[baseline]
    w = grads[weight]
    return jnp.where(w != 0, grads[baseline] / jnp.where(w != 0, w, 1.0), 0.0)


def _smoothed(history: list[float], span: int = 50) -> float:
    tail = np.asarray(history[-span:])
    finite = tail[np.isfinite(tail)]
    return float(finite.mean()) if finite.size else float("nan")


def _progress_bar(steps: int, start: int, progress: bool | None):
    if progress is None:
        progress = sys.stderr.isatty() and not os.environ.get("CI")
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=steps, initial=start, unit="step", desc="fit", dynamic_ncols=True)


# ---------------------------------------------------------------- the compiled chunk


def _chunk_runner(batcher: "Batcher", optimizer, divide: float = 1.0,
                  estimates: int = 1) -> Callable:
    """``run(params, opt_state, key, first_step, n)``: ``n`` steps in one ``lax.scan``.

    The scan freezes the state at the first non-finite objective or gradient
    and reports that step and which parameters' gradients were not finite.
    The jitted chunk is cached on the module (see the module docstring); the
    data enter it as arguments, never as constants.
    """
    program = batcher.entry.program
    running = {p: info.running for p, info in program.params.items() if info.running is not None}
    # Each running baseline's weight (a state held at 0): b moves by the weighted mean of its
    # uses' ℓ − b, g_b / g_w (see ParamInfo); both are state, untouched by the optimiser.
    weights = {info.weight_of: p for p, info in program.params.items() if info.weight_of}
    state = set(running) | set(weights.values())
    try:
        hash(optimizer)
        opt_key = optimizer
    except TypeError:
        opt_key = ("id", id(optimizer))
    cache_key = ("fit", batcher.key(), opt_key, float(divide), estimates)
    runners = batcher.objective.module.entries.runners
    if cache_key not in runners:
        runners[cache_key] = ({}, optimizer)  # the optimiser is kept alive with its chunks
    compiled = runners[cache_key][0]

    def body(key, full_data, static, carry, step):
        params, opt_state, prev, ok, bad_step, bad_leaves = carry
        value, grads = _averaged(batcher, estimates, params, jax.random.fold_in(key, step),
                                 full_data, static)
        if divide != 1.0:
            value = value / divide
            grads = {p: g if p in state else g / divide for p, g in grads.items()}
        leaves_ok = jnp.stack([jnp.all(jnp.isfinite(grads[p])) for p in sorted(grads)])
        finite = jnp.isfinite(value) & jnp.all(leaves_ok)
        # Objectives are maximised; optax minimises, so it is given the negated gradient.
        # Running-average baselines are state, not optimised: b ← b + (1 − decay)(ℓ − b),
        # ℓ − b averaged over the baseline's uses (the steps of a loop, a plate's estimates).
        descent = {p: jnp.zeros_like(g) if p in state else -g for p, g in grads.items()}
        updates, new_opt = optimizer.update(descent, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        for p, decay in running.items():
            new_params[p] = params[p] + (1.0 - decay) * running_mean(grads, p, weights.get(p))
        for w in weights.values():
            new_params[w] = params[w]
        take = ok & finite
        keep = lambda new, old: jnp.where(take, new, old)  # noqa: E731
        # ``prev`` is the state this step was evaluated at: if the next step fails, it is
        # the last state whose objective and gradient were finite.
        prev = jax.tree_util.tree_map(keep, (params, opt_state), prev)
        params = jax.tree_util.tree_map(keep, new_params, params)
        opt_state = jax.tree_util.tree_map(keep, new_opt, opt_state)
        bad_step = jnp.where(ok & ~finite, step, bad_step)
        bad_leaves = jnp.where(ok & ~finite, ~leaves_ok, bad_leaves)
        return (params, opt_state, prev, take, bad_step, bad_leaves), value

    def chunk(n: int) -> Callable:
        if n not in compiled:
            @jit
            def run(params, opt_state, key, first_step, full_data, static):
                init = (params, opt_state, (params, opt_state), jnp.bool_(True), jnp.int32(-1),
                        jnp.zeros((len(params),), bool))
                steps = first_step + jnp.arange(n, dtype=jnp.int32)
                carry, values = jax.lax.scan(
                    lambda c, s: body(key, full_data, static, c, s), init, steps)
                params, opt_state, (prev_params, prev_opt), ok, bad_step, bad_leaves = carry
                # On failure, hand back the state of the last finite step.
                params = jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), params, prev_params)
                opt_state = jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), opt_state, prev_opt)
                return params, opt_state, values, ok, bad_step, bad_leaves
            compiled[n] = run
        return compiled[n]

    return lambda params, opt_state, key, first_step, n: chunk(n)(
        params, opt_state, key, first_step, batcher.full_data, batcher.static)


def _averaged(batcher: "Batcher", estimates: int, params, key, full_data, static):
    """The mean of ``estimates`` independent (value, gradient) estimates, vectorised;
    one estimate is the batcher's own (so ``estimates=1`` is the plain step)."""
    if estimates == 1:
        return batcher.value_and_grad(params, key, full_data, static)
    values, grads = jax.vmap(lambda k: batcher.value_and_grad(params, k, full_data, static))(
        jax.random.split(key, estimates))
    return jnp.mean(values), jax.tree_util.tree_map(lambda g: jnp.mean(g, axis=0), grads)


# ---------------------------------------------------------------- minibatches


class Batcher:
    """Feeds an objective its data: the whole of it, or a random batch per step.

    ``value_and_grad(params, key, full_data, static)`` is one step's estimate:
    for a minibatch fit, ``build`` applied to a random batch drawn with
    ``fold_in(key, 1)``, its batch inputs taken by value and the others from
    ``static`` (the objective's inputs); the estimate uses ``fold_in(key, 0)``.
    ``batcher(params, key)`` is the same step on the batcher's own data.
    """

    def __init__(self, build: Callable, data: Any, batch_size: int | None, shard: bool | None = None):
        if data is None or batch_size is None:
            raise DataError(Diagnostic("fit(build, ...) with a function needs data= and batch_size="))
        leaves, self.treedef = jax.tree_util.tree_flatten(data)
        leaves = [jnp.asarray(x) for x in leaves]
        sizes = {x.shape[0] if x.ndim else None for x in leaves}
        if len(sizes) != 1 or None in sizes:
            raise DataError(Diagnostic("every data array must have the same leading size (the "
                                       f"number of data points); got leading sizes {sorted(map(str, sizes))}"))
        self.n = sizes.pop()
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or not 0 < batch_size <= self.n:
            raise DataError(Diagnostic(f"batch_size must be between 1 and the number of data "
                                       f"points ({self.n}), got {batch_size!r}"))
        self.batch_size = int(batch_size)
        self.build = build
        sample = [x[:self.batch_size] for x in leaves]
        self.objective = self._built(sample)
        if not hasattr(self.objective, "lower_inputs"):
            raise DataError(Diagnostic(f"the function given to fit() must return an objective, "
                                       f"got {type(self.objective).__name__}"))
        inputs, _, _, self.signature = self.objective.lower_inputs()
        self.minibatched = self._inputs_reading_the_batch(sample, len(inputs.arrays))
        if not self.minibatched:
            raise DataError(Diagnostic("the objective built from a batch does not use the batch",
                                       help="pass the batch's arrays (or values computed from "
                                            "them) to the model or family"))
        for i in sorted(self.minibatched):
            a = inputs.arrays[i]
            if not hasattr(a, "shape") or not a.shape or a.shape[0] != self.batch_size:
                shape = list(getattr(a, "shape", ())) if hasattr(a, "shape") else "a trace"
                raise DataError(Diagnostic(
                    f"input {inputs.vars[i].hint!r} of the objective is computed from the batch "
                    f"but has shape {shape}, not a leading axis of the batch's {self.batch_size} "
                    "rows, so it cannot be scaled to the full data",
                    help="compute per-row values from the batch (b['x'] * 2.0), keeping the rows "
                         "first; reductions over the batch belong inside the program"))
        self.entry, inputs = self.objective.compiled(self.n / self.batch_size, self.minibatched)
        self.static = list(inputs.arrays)
        self.full_data = leaves
        self.sharding = _data_sharding(self.batch_size, shard)
        self.batch_program = self._batch_program(sample)

    def _built(self, rows: list):
        try:
            return self.build(jax.tree_util.tree_unflatten(self.treedef, list(rows)))
        except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError,
                jax.errors.TracerBoolConversionError, jax.errors.TracerIntegerConversionError) as e:
            raise DataError(Diagnostic(
                "the function given to fit() needs the batch's values in Python "
                f"({type(e).__name__}); it is traced on each batch, like a jax.jit function",
                help="compute with jax.numpy on the batch, and keep sizes and flags static")) from None

    def _inputs_reading_the_batch(self, sample: list, count: int) -> frozenset[int]:
        """Which of the objective's inputs are computed from the batch: ``build`` traced
        under ``jax.vmap`` sees the batch as tracers, and only what it computes from them
        is a tracer (values from elsewhere stay concrete)."""
        found: list[frozenset] = []

        def probe(*rows):
            obj = self._built(rows)
            inputs, _, _, sig = obj.lower_inputs()
            if sig != self.signature:
                raise DataError(Diagnostic("the objective built from a batch changes with the "
                                           "batch's values (its arguments differ between batches)"))
            found.append(frozenset(i for i, a in enumerate(inputs.arrays)
                                   if any(isinstance(x, jax.core.Tracer)
                                          for x in jax.tree_util.tree_leaves(a))))
            return jnp.zeros(())

        jax.vmap(probe)(*[x[None] for x in sample])
        return found[0]

    def _batch_program(self, sample: list) -> tuple:
        """What ``build`` computes from a batch, by value: the jaxpr from the batch's rows
        to the minibatched inputs, and the dtype, shape and bytes of every array it closes
        over (JAX would bake those into the compiled step as constants)."""
        order = sorted(self.minibatched)

        def from_batch(*rows):
            arrays = self._built(rows).lower_inputs()[0].arrays
            return [arrays[i] for i in order]

        closed = jax.make_jaxpr(from_batch)(*sample)
        consts = tuple((str(np.asarray(c).dtype), np.shape(c), np.asarray(c).tobytes())
                       for c in closed.consts)
        return str(closed.jaxpr), consts

    @classmethod
    def whole(cls, objective, data, batch_size):
        if data is not None or batch_size is not None:
            raise DataError(Diagnostic(
                "to fit over minibatches, pass a function from a batch to the objective: "
                "fit(lambda batch: elbo(model | {\"y\": batch[\"y\"]}, guide), data=..., batch_size=...)"))
        if not hasattr(objective, "compiled"):
            raise DataError(Diagnostic(f"fit() needs an objective (or, with data= and batch_size=,"
                                       f" a function from a batch to one), got "
                                       f"{type(objective).__name__}"))
        self = cls.__new__(cls)
        self.objective = objective
        self.build = None
        self.entry, inputs = objective.compiled()
        self.static = list(inputs.arrays)
        self.full_data = None
        self.minibatched = frozenset()
        self.n = None
        self.batch_size = None
        self.treedef = None
        self.sharding = None
        return self

    def key(self) -> tuple:
        """What the compiled step depends on besides the entry: the data's layout."""
        if self.full_data is None:
            return (self.entry.key,)
        layout = tuple((tuple(x.shape), str(x.dtype)) for x in self.full_data)
        return (self.entry.key, self.batch_program, self.treedef, layout, self.batch_size,
                self.sharding is not None)

    def value_and_grad(self, params, key, full_data, static):
        if self.full_data is None:
            return self.entry.value_and_grad(params, jax.random.fold_in(key, 0), static)
        idx = jax.random.choice(jax.random.fold_in(key, 1), self.n, (self.batch_size,),
                                replace=False)
        rows = [x[idx] for x in full_data]
        if self.sharding is not None:
            # Each device takes its slice of the batch; XLA adds the reductions (GSPMD).
            rows = [jax.lax.with_sharding_constraint(r, self.sharding) for r in rows]
        obj = self._built(rows)
        inputs, _, _, sig = obj.lower_inputs()
        if sig != self.signature:
            raise DataError(Diagnostic("the objective built from a batch changes with the "
                                       "batch's values (its arguments differ between batches)"))
        arrays = [a if i in self.minibatched else s
                  for i, (a, s) in enumerate(zip(inputs.arrays, static))]
        return self.entry.value_and_grad(params, jax.random.fold_in(key, 0), arrays)

    def __call__(self, params, key):
        return self.value_and_grad(params, key, self.full_data, self.static)


def _data_sharding(batch_size: int, shard: bool | None):
    """A sharding of the batch axis over the local devices, or None for one device."""
    devices = jax.devices()
    if shard is False or len(devices) == 1:
        return None
    if batch_size % len(devices):
        if shard:
            raise DataError(Diagnostic(f"batch_size {batch_size} does not divide among "
                                       f"{len(devices)} devices"))
        return None
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    return NamedSharding(Mesh(np.array(devices), ("data",)), PartitionSpec("data"))


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(path: str, params, opt_state, step: int, key, history) -> None:
    """Write parameters, optimiser state, step, key and history (atomically)."""
    state = {"params": jax.tree_util.tree_map(np.asarray, params),
             "opt_state": jax.tree_util.tree_map(np.asarray, opt_state),
             "step": int(step), "key": np.asarray(key), "history": np.asarray(history)}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        pickle.dump(state, f)
    os.replace(tmp, path)


def _resumed(resume) -> dict:
    """The state a run continues from: a checkpoint file's, or a :class:`FitResult`'s."""
    if isinstance(resume, FitResult):
        if resume.key is None or resume.opt_state is None:
            raise DataError(Diagnostic("fit(resume=...) needs the FitResult of a fit run (it has "
                                       "no optimiser state or key)"))
        return {"params": dict(resume.params), "opt_state": resume.opt_state,
                "step": int(resume.steps), "history": list(np.asarray(resume.history)),
                "key": resume.key}
    if not isinstance(resume, (str, os.PathLike)):
        raise DataError(Diagnostic(f"fit(resume=...) takes a checkpoint's path or a FitResult, "
                                   f"not {type(resume).__name__}"))
    return load_checkpoint(resume)


def load_checkpoint(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            state = pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError) as e:
        raise DataError(Diagnostic(f"cannot read the checkpoint {path}: {e}")) from None
    state["params"] = {k: jnp.asarray(v) for k, v in state["params"].items()}
    state["opt_state"] = jax.tree_util.tree_map(jnp.asarray, state["opt_state"])
    return state
