"""Small programs shared by several ADEV test files.

``ONE_FLIP``: one binary latent ``b`` with a Gaussian observation ``y`` and a
Bernoulli family, small enough that K-particle objectives can be computed
exactly by enumerating the particles (tests/adev/test_detach.py for ``vimco``,
tests/adev/test_wake_and_chi.py for ``rws``, ``forward_kl`` and ``cubo``).
"""

ONE_FLIP = """
gen model() {
    param a: real = 0.4
    b ~ bernoulli(sigmoid(a))
    y ~ normal(2.0 * float(b), 1.0)
}

gen family() {
    param t: real = -0.3
    b ~ bernoulli(sigmoid(t))
}
"""
