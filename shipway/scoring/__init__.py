"""Scoring shared by the prediction service, the one-process batch job and the KFP batch
pipeline: online features with the declared missing-value policy (``features``), the
fast exact scorer of a registered pipeline (``rowscorer``), a registered version pinned
and loaded (``models``) and the scored output table of a chunk of input rows
(``tables``).

It sits below ``pipelines``, ``services`` and ``monitoring`` (which may not import each
other), so a row scored over HTTP, by ``shipway predict batch`` or by a shard of the
batch pipeline goes through the same code and gets the same number.
"""
