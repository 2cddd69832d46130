"""Work BentoML repeats on every request although its answer never changes, done once.

py-spy under the load benchmark's mix (issue #15) found two such costs in the event
loop's thread, where every request of a worker waits its turn:

* an ``IORootModel`` (the list-typed input and output of ``/predict_batch``) rebuilds its
  JSON schema through a new pydantic ``TypeAdapter`` on every request, only to learn
  whether the body is a string or a file (``model_validate_json``, ``mime_type``). With
  5% of the mix on ``/predict_batch`` that was about 13% of the event loop's time. A
  class's schema never changes, so :func:`cache_root_schemas` computes the argument-less
  form once (each call gets its own top-level copy); calls with arguments (the OpenAPI
  page's ``ref_template``) still build theirs.
* ``APIMethod.__get__`` runs ``inspect.signature`` and ``functools.wraps`` each time the
  server looks an API method up on the service instance, which it does per request
  (about 30 us). :func:`bind_api_methods` binds each method once per instance.

Neither changes what a request does: the same parser, validation and answer.
"""

from __future__ import annotations

from typing import Any

from _bentoml_sdk.io_models import IORootModel
from _bentoml_sdk.method import APIMethod

_BUILD_SCHEMA = IORootModel.model_json_schema.__func__


def _frozen_schema(spec: type[IORootModel]) -> classmethod:
    """``spec.model_json_schema`` computed once for the argument-less call."""
    computed: dict[str, Any] = _BUILD_SCHEMA(spec)

    def model_json_schema(cls: type[IORootModel], *args: Any, **kwargs: Any) -> dict[str, Any]:
        if args or kwargs or cls is not spec:
            return _BUILD_SCHEMA(cls, *args, **kwargs)  # built anew: the caller's own
        return dict(computed)

    return classmethod(model_json_schema)


def cache_root_schemas(service: Any) -> int:
    """Freeze the argument-less schema of every root-model input and output of
    ``service`` (a ``bentoml.Service``); returns how many specs were frozen."""
    frozen = 0
    for method in service.apis.values():
        for spec in {method.input_spec, method.output_spec}:
            root = isinstance(spec, type) and issubclass(spec, IORootModel)
            if root and "model_json_schema" not in vars(spec):
                spec.model_json_schema = _frozen_schema(spec)
                frozen += 1
    return frozen


def bind_api_methods(instance: object) -> list[str]:
    """Bind each API method of ``instance``'s class once, into the instance.

    ``APIMethod`` defines only ``__get__``, so an instance attribute of the same name
    takes precedence; it holds exactly what ``__get__`` returns (the local caller, with
    ``.local`` set, as BentoML's server calls it). Call it from ``__init__``: before the
    server installs its self-proxy, which only redirects calls a service makes to itself.
    """
    bound = []
    for name, attr in vars(type(instance)).items():
        if isinstance(attr, APIMethod):
            instance.__dict__[name] = attr.__get__(instance, type(instance))
            bound.append(name)
    return bound
