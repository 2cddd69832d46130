"""Per-request work nobody asked for is off by default (issue 15): BentoML's access log
line and OpenTelemetry spans. Checked on BentoML's own configuration container after the
service's config is injected, as ``bentoml serve`` does in every worker (``to_asgi``)."""

from __future__ import annotations

from bentoml._internal.configuration.containers import BentoMLContainer


def test_access_log_and_tracing_are_off_by_default() -> None:
    from services.prediction import SETTINGS, PredictionService

    assert not SETTINGS.access_log and not SETTINGS.tracing
    PredictionService.inject_config()
    assert BentoMLContainer.api_server_config.logging.access.enabled.get() is False
    excluded = BentoMLContainer.tracing_excluded_urls.get()
    for route in ("/predict", "/predict_batch", "/feedback", "/metrics"):
        assert excluded.url_disabled(f"http://127.0.0.1:3000{route}"), route
