"""The estimator-site interface is declared once (``compiler/library.py``'s
``EstimatorSite``) and the backend's ``Site``, the estimator rules and the distribution
rows keep to it: a rule may call only what the protocol declares, the site implements
all of it, and every row implements the ``Distribution`` protocol."""

from __future__ import annotations

import inspect
import re

from ppl.compiler import library as protocols
from ppl.compiler.backend.site import Site
from ppl.stdlib import estimators
from ppl.stdlib.library import STANDARD


def declared(protocol) -> set[str]:
    """The methods and attributes a Protocol class declares."""
    names = {n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")}
    return names | set(getattr(protocol, "__annotations__", {}))


def test_site_implements_the_protocol():
    site_protocol = declared(protocols.EstimatorSite)
    methods = {n for n, v in vars(protocols.EstimatorSite).items() if callable(v) and not n.startswith("_")}
    assert {"sample", "rsample", "score", "element_scores", "support", "probs", "alternatives",
            "contract_alternatives", "evaluate_alternatives", "with_terms_along",
            "enumerate_separable"} <= methods
    missing = {n for n in methods if not callable(getattr(Site, n, None))}
    assert not missing, missing
    # the attributes are set in __init__: find each assignment in its source
    init = inspect.getsource(Site.__init__)
    for attribute in site_protocol - methods:
        assert f"self.{attribute} =" in init or f"self.{attribute}," in init, attribute


def test_estimator_rules_use_only_the_protocol():
    source = inspect.getsource(estimators)
    used = set(re.findall(r"\bsite\.(\w+)", source))
    assert used, "the rules reach sites through the name 'site'"
    assert used <= declared(protocols.EstimatorSite), used - declared(protocols.EstimatorSite)


def test_every_row_implements_the_distribution_protocol():
    needed = declared(protocols.Distribution)
    for name, row in STANDARD.distributions.items():
        missing = {n for n in needed if not hasattr(row, n)}
        assert not missing, (name, missing)


def test_estimator_names_come_from_the_registry():
    names = tuple(STANDARD.estimators)
    assert names == ("reparam", "reinforce", "enum", "mvd")
    assert STANDARD.estimator_tail <= set(names)
    for name, row in STANDARD.distributions.items():
        assert row.default_estimator in row.estimators <= set(names), name
        for estimator in names:
            reason = row.unsound_reason(estimator)
            assert (reason is None) == (estimator in row.estimators), (name, estimator)
            assert reason is None or name in reason
        assert ("mvd" in row.estimators) == (row.weak_derivative is not None), name
        assert ("enum" in row.estimators) == row.enumerable, name
