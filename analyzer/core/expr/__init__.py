"""expr-lang v1.17.8 as Argo Rollouts runs it: lexer, parser, checker + optimizer, compiler.

Design: source -> tokens -> AST -> one pass that applies expr's type checker (with the nature
of the concrete ``result``, as Argo compiles it), its constant folding and the optimizer
rewrites that change outcomes, and emits Python closures. The closures are cached per
(expression, result nature), so the hot path is a few function calls per evaluation.
"""
