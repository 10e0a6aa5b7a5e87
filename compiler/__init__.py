"""The ppl compiler: source text to IR to a JAX callable.

Pipeline: :mod:`parser` (text to AST), :mod:`check` (semantic checks, all
errors at once), :mod:`lower` (AST to IR, specialising on static
arguments), :mod:`passes` (inline, expand ``sim``/``density``, address
checks, dead-code elimination), and :mod:`backend` (IR to JAX; the only part
of the compiler that imports JAX). The library of distributions and
functions arrives as an argument implementing :mod:`library`'s protocols.
"""
