"""expr-lang (v1.17) subset used by Argo conditions: lexer, parser, type check, compiler.

Design: source -> tokens -> AST -> static check (per result shape, like expr's compile-time
checker that Argo runs with the concrete result in the environment) -> Python closures.
The closures are cached, so the hot path is a couple of function calls per evaluation.
"""
