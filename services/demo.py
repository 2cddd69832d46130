"""The serving part of ``make demo``: start the service, score bookings it has never seen.

The bookings come from the months after the training window (``spec.split.end``), so the
printed predictions are what the model would have said about the future at booking time.
"""

from __future__ import annotations

import sys
from typing import Any

import httpx

from shipway.core.launch import ServiceHandle, start_service, wait_ready
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.data.readiness import EVENT_TS
from shipway.data.replay import future_bookings, request_body


def serve_and_predict(
    settings: Settings,
    spec: UseCaseSpec,
    n: int = 10,
    *,
    port: int | None = None,
    keep_running: bool = False,
) -> list[dict[str, Any]] | ServiceHandle:
    """Start the service, predict ``n`` future bookings and print them with the model version.

    Returns the responses, or (``keep_running=True``) the running service's handle with
    the responses in ``handle.responses``; call ``handle.stop()`` when done.
    """
    from rich.console import Console
    from rich.table import Table

    console = Console()
    port = port or settings.service_port
    handle = start_service(settings, spec, port)
    try:
        wait_ready(handle)
        rows = future_bookings(settings, spec, n)
        table = Table(
            "arrival",
            *spec.entity_columns,
            "actual",
            "predicted",
            "version",
            "variant",
            title=f"{spec.name}: bookings after the training window ({spec.split.end})",
        )
        with httpx.Client(base_url=handle.url, timeout=30) as client:
            for _, row in rows.iterrows():
                resp = client.post("/predict", json=request_body(spec, row))
                resp.raise_for_status()
                ans = resp.json()
                handle.responses.append(ans)
                table.add_row(
                    f"{row[EVENT_TS]:%Y-%m-%d}",
                    *[str(row[k]) for k in spec.entity_columns],
                    f"{row[spec.target.column]}",
                    f"{ans['prediction']:.2f}" + (f" ({ans['label']})" if ans.get("label") else ""),
                    f"v{ans['model_version']}",
                    ans["variant"],
                )
        console.print(table)
        console.print(
            f"service at {handle.url} (OpenAPI: {handle.url}/, metrics: {handle.url}/metrics)"
        )
    except BaseException:
        handle.stop()
        raise
    if keep_running:
        return handle
    handle.stop()
    return handle.responses


if __name__ == "__main__":  # python -m services.demo [n]
    from shipway.core.settings import get_settings
    from shipway.core.usecases import load_usecase

    s = get_settings()
    serve_and_predict(s, load_usecase(s.usecase, s), int(sys.argv[1]) if len(sys.argv) > 1 else 10)
