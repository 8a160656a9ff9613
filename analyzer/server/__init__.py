"""The HTTP service (``analyzer serve``): Argo web-provider verdicts, health, metrics, Slack.

Import the pieces from their modules (``analyzer.server.app.build_app``,
``analyzer.server.verdict.compute_verdict``); this package imports nothing heavy itself, so the
``judge`` metric provider can share ``verdict`` without pulling in the web framework.
"""
