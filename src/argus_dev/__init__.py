"""The development harness: real servers without Docker (``devservers``) and the local multi-process cluster
(``cluster``).

It is a separate module tree on purpose: the runtime (``argus.*``) never imports it, so a production image can
leave it out and nothing a deployment runs depends on test tooling. ``tests/unit/test_packaging.py`` checks that.
"""
