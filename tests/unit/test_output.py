"""What a command prints and what its log file holds (shipway/cli/output.py, logs.py, and
the kfp.local capture of pipelines/runner.py): one line per step with its result and
time, third-party chatter only in the log, credentials never in it."""

from __future__ import annotations

import io
import logging
import os
import re
import sys
import time
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import typer
from rich.console import Console

from pipelines.runner import KfpOutput, failure_cause, reporting
from shipway.cli import logs, output
from shipway.cli.app import UserError, friendly

ROOT = Path(__file__).resolve().parents[2]
SITE = "/opt/venv/lib/python3.11/site-packages/somelib/api.py"


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Puts global logging, warnings, the consoles and the MLflow settings back after a
    test that set up a command's output."""
    for name in ("MLFLOW_CONFIGURE_LOGGING", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"):
        monkeypatch.delenv(name, raising=False)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, warnings.filters[:], warnings.showwarning)
    levels = {n: logging.getLogger(n).level for n in logs.NOISY}
    mlflow = {
        n: (logging.getLogger(n).handlers[:], logging.getLogger(n).propagate)
        for n in logs.MLFLOW_LOGGERS
    }
    try:
        yield
    finally:
        for n, (handlers, propagate) in mlflow.items():
            logging.getLogger(n).handlers, logging.getLogger(n).propagate = handlers, propagate
        output.teardown()
        root.handlers[:], warnings.filters[:] = saved[0], saved[2]
        root.setLevel(saved[1])
        warnings.showwarning = saved[3]
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)


@pytest.fixture
def cli(tmp_path: Path, isolated: None) -> Path:
    """A command's output set up as the app's callback does; returns its log folder.

    The setup runs when the test first needs it (pytest swaps ``sys.stdout`` between
    a fixture and its test, and the consoles pin the stream of the moment)."""
    return tmp_path / "logs"


def _setup(log_dir: Path, verbose: bool = False) -> None:
    output.setup("train", verbose=verbose, log_dir=log_dir)


def _log_text(log_dir: Path) -> str:
    (path,) = log_dir.glob("*.log")
    return path.read_text()


def _steps(text: str) -> list[str]:
    """Step lines with the elapsed time normalized."""
    return [
        re.sub(r"\((\d+m )?[\d.]+s\)$", "(T)", ln)
        for ln in text.splitlines()
        if ln.strip() and not ln.startswith("log:")
    ]


# ---------------------------------------------------------------- steps
def test_a_step_prints_one_line_with_its_result_and_time(
    cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _setup(cli)
    with output.step("fetch data") as s:
        time.sleep(0.05)
        s.ok("1,204 rows")
    out = capsys.readouterr().out
    assert _steps(out) == ["✓ fetch data: 1,204 rows (T)"]
    seconds = float(re.search(r"\(([\d.]+)s\)", out).group(1))  # type: ignore[union-attr]
    assert 0.05 <= seconds < 5
    assert "✓ fetch data: 1,204 rows" in _log_text(cli)  # the log has every step line


def test_a_failing_step_is_marked_and_the_error_propagates(
    cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _setup(cli)
    with pytest.raises(ValueError, match="no rows"), output.step("validate"):
        raise ValueError("no rows after the split\nsecond line of detail")
    assert _steps(capsys.readouterr().out) == ["✗ validate: ValueError (T)"]


def test_nested_steps_title_the_parent_once_and_indent_the_children(
    cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _setup(cli)
    with output.step("train hotel_rates") as parent:
        parent.set_total(2)
        with output.step("train"):
            pass
        with output.step("gate") as g:
            g.warn("passed, not promoted")
        assert parent.done == 2  # each finished child advances the parent's bar
        parent.ok("v3")
    assert _steps(capsys.readouterr().out) == [
        "train hotel_rates",
        "  ✓ train (T)",
        "  ! gate: passed, not promoted (T)",
        "✓ train hotel_rates: v3 (T)",
    ]


def test_markup_in_titles_and_results_is_printed_as_is(
    cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _setup(cli)
    with output.step("register [model]") as s:
        s.fail("Untrusted types ['numpy.dtype']")
    assert _steps(capsys.readouterr().out) == [
        "✗ register [model]: Untrusted types ['numpy.dtype'] (T)"
    ]


def test_on_a_terminal_steps_and_progress_draw_a_live_display(
    cli: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _setup(cli)
    screen = io.StringIO()
    tty = Console(file=screen, force_terminal=True, width=80)
    monkeypatch.setattr(output, "console", tty)
    with output.step("replay", total=3) as s:
        for _ in output.progress(range(3), "rows"):
            s.advance()
        s.ok("3 rows")
    assert output._state.live is None  # stopped once the last step ended
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())
    assert "✓ replay: 3 rows" in text


def test_elapsed_time_reads_naturally() -> None:
    assert [output.elapsed_text(s) for s in (0.04, 12.345, 125, 3720)] == [
        "0.0s",
        "12.3s",
        "2m 05s",
        "1h 02m",
    ]


# ---------------------------------------------------------------- terminal or log file
def test_third_party_chatter_goes_to_the_log_only(
    cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _setup(cli)
    logging.getLogger("mlflow.store").warning("Model logged without a signature")
    logging.getLogger("shipway.data").info("ingested 1,204 rows")
    logging.getLogger("kfp.local").error("component crashed")
    logging.getLogger("shipway.core.registry").info("credit_risk@challenger -> version 6")
    warnings.warn_explicit("fetch_arrow_table() is deprecated", DeprecationWarning, SITE, 332)
    warnings.warn_explicit(
        "a spec default changed", UserWarning, str(ROOT / "shipway/core/spec/usecase.py"), 9
    )
    output.detail("[KFP Executor] Got executor_input: {...}", "kfp")
    err = capsys.readouterr().err
    assert "ingested 1,204 rows" in err and "component crashed" in err
    assert "a spec default changed" in err  # the project's own warning: actionable
    assert "without a signature" not in err and "fetch_arrow_table" not in err
    assert "executor_input" not in err and "-> version 6" not in err  # component detail
    log = _log_text(cli)
    for said in ("without a signature", "fetch_arrow_table", "executor_input", "version 6"):
        assert said in log


def test_verbose_shows_the_rest(
    tmp_path: Path, isolated: None, capsys: pytest.CaptureFixture[str]
) -> None:
    _setup(tmp_path, verbose=True)
    logging.getLogger("mlflow.store").warning("Model logged without a signature")
    output.detail("[KFP Executor] Got executor_input", "kfp")
    captured = capsys.readouterr()
    assert "without a signature" in captured.err
    assert "[KFP Executor] Got executor_input" in captured.out


def test_warnings_know_whether_they_are_ours() -> None:
    assert logs.first_party(str(ROOT / "shipway" / "spec.py"))
    assert not logs.first_party(SITE)
    assert not logs.first_party(str(ROOT / ".venv/lib/python3.11/site-packages/feast/x.py"))
    assert not logs.first_party("<frozen importlib._bootstrap>")
    assert not logs.first_party("/usr/lib/python3.11/json/decoder.py")


def test_captured_prints_land_in_the_log_line_by_line(
    cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _setup(cli)
    with output.captured("feast"):
        print("Materializing 2 feature views", end="")
        print(" into the sqlite online store.")
        print("done", file=sys.stderr)
    assert capsys.readouterr().out == ""
    log = _log_text(cli)
    assert "shipway.out.feast: Materializing 2 feature views into the sqlite online store." in log
    assert "shipway.out.feast: done" in log


# ---------------------------------------------------------------- credentials
def test_credentials_never_reach_the_log(
    tmp_path: Path,
    isolated: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SHIPWAY_API_TOKEN", "tok-4f9a8c7e1b")
    _setup(tmp_path)
    log = logging.getLogger("shipway.core.settings")
    log.info("tracking %s", "postgresql://mlflow:s3cr3t-pw@db:5432/mlflow")
    log.info("client sent Authorization: Bearer tok-4f9a8c7e1b")
    log.info('redis options {"password": "hunter2hunter2", "db": 0}')
    output.detail("aws_secret_access_key=AKIAXYZ123456789 region=eu-west-1", "kfp")
    try:
        raise RuntimeError("cannot connect with token tok-4f9a8c7e1b")
    except RuntimeError as exc:
        logs.log_exception("serve failed", exc)
    text = _log_text(tmp_path) + capsys.readouterr().err
    for secret in ("s3cr3t-pw", "tok-4f9a8c7e1b", "hunter2hunter2", "AKIAXYZ123456789"):
        assert secret not in text
    assert "postgresql://mlflow:***@db:5432/mlflow" in text
    assert "region=eu-west-1" in text and "Traceback" in text  # the rest stays readable


def test_redaction_leaves_ordinary_text_alone() -> None:
    redact = logs.Redactor.from_env({"SHIPWAY_TOKEN_REQUIRED": "true", "HOME": "/root/x1234567"})
    text = "token required: true; sqlite:////root/x1234567/mlflow.db; https://host:3000/docs"
    assert (
        redact(text)
        == "token required: true; sqlite:////root/x1234567/mlflow.db; https://host:3000/docs"
    )


# ---------------------------------------------------------------- the log file itself
def test_log_file_is_named_after_the_command_and_old_ones_are_pruned(tmp_path: Path) -> None:
    assert logs.log_file_name("train", datetime(2026, 12, 4, 16, 45, 24)) == (
        "train-20261204-164524.log"
    )
    assert logs.log_file_name("../x y") == logs.log_file_name("x-y")
    for i in range(5):
        old = tmp_path / f"old-{i}.log"
        old.write_text("x")
        os.utime(old, (1_000_000 + i, 1_000_000 + i))
    logs.prune_logs(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.glob("*.log")) == ["old-3.log", "old-4.log"]


def test_a_quiet_command_leaves_no_log_file(cli: Path) -> None:
    _setup(cli)
    assert not list(cli.glob("*.log"))
    assert output.log_path() is not None


def test_expected_errors_are_one_line_and_point_to_the_log(
    cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _setup(cli)

    @friendly
    def cmd() -> None:
        raise UserError("no use case named 'nope' under usecases/")

    with pytest.raises(typer.Exit) as exit_:
        cmd()
    assert exit_.value.exit_code == 1
    err = capsys.readouterr().err
    assert "error: no use case named 'nope'" in err and "Traceback" not in err
    assert f"full log: {output.log_path()}" in err
    assert "Traceback" in _log_text(cli) and "UserError" in _log_text(cli)


def test_unexpected_errors_keep_their_traceback_and_are_logged(cli: Path) -> None:
    _setup(cli)

    @friendly
    def cmd() -> None:
        raise KeyError("version")

    with pytest.raises(KeyError):
        cmd()
    assert "KeyError: 'version'" in _log_text(cli)


# ---------------------------------------------------------------- kfp.local runs
KFP_RUN = """\
\x1b[0m17:01:02.000 - INFO - Running pipeline: \x1b[95m'shipway-training'\x1b[0m
--------------------------------------------------------------------------------
17:01:02.010 - INFO - Executing task \x1b[96m'fetch-data'\x1b[0m
17:01:02.011 - INFO - Streamed logs:

    [KFP Executor 2026-12-04 17:01:02,100 INFO]: Got executor_input:
    {
        "inputs": {"parameterValues": {"usecase": "hotel_rates"}}
    }
17:01:03.000 - INFO - Task \x1b[96m'fetch-data'\x1b[0m finished with status \x1b[92mSUCCESS\x1b[0m
17:01:03.010 - INFO - Executing task \x1b[96m'register-model'\x1b[0m
    Traceback (most recent call last):
      File "register.py", line 3, in register
    RuntimeError: register step failed after creating hotel_rates v4: NotADirectoryError
"""


def test_a_kfp_run_is_one_line_per_component_and_the_rest_is_logged(
    cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _setup(cli)
    titles = {"fetch-data": "fetch data version (DVC)", "register-model": "register (MLflow)"}
    with output.step("train hotel_rates") as parent:
        steps = output.PipelineSteps()
        steps.pipeline_started("shipway-training", 2)
        out = KfpOutput(steps, titles)
        for chunk in (KFP_RUN[:100], KFP_RUN[100:333], KFP_RUN[333:]):  # arbitrary chunks
            out.write(chunk)
        out.close()  # kfp.local raised: the running component failed
        parent.fail("pipeline failed")
    shown = _steps(capsys.readouterr().out)
    assert shown == [
        "train hotel_rates",
        "  ✓ fetch data version (DVC) (T)",
        "  ✗ register (MLflow): failed (T)",
        "✗ train hotel_rates: pipeline failed (T)",
    ]
    assert out.reporter_error is None and parent.done == 2
    assert failure_cause(out.lines).startswith("RuntimeError: register step failed")
    log = _log_text(cli)
    assert '"inputs": {"parameterValues": {"usecase": "hotel_rates"}}' in log
    assert "\x1b[" not in log  # colour codes stripped


def test_a_step_counts_the_components_of_every_pipeline_it_runs(
    cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _setup(cli)
    steps = output.PipelineSteps()
    with output.step("retrain") as parent:
        for _ in range(2):  # e.g. a retraining that runs the pipeline twice
            steps.pipeline_started("shipway-training", 3)
            for task in ("fetch", "train", "gate"):
                steps.task_started(task)
                steps.task_finished(task, True, 0.1)
        assert (parent.done, parent.total) == (6, 6)
    with output.step("replay", total=10) as other:  # counts rows, not components
        steps.pipeline_started("shipway-training", 3)
        assert other.total == 10


def test_a_failing_reporter_never_fails_the_run() -> None:
    class Broken(output.PipelineSteps):
        def task_started(self, task: str) -> None:
            raise RuntimeError("display broke")

    out = KfpOutput(Broken())
    out.write(KFP_RUN)  # must not raise into kfp.local's print
    out.close()
    assert isinstance(out.reporter_error, RuntimeError)
    assert failure_cause(out.lines).startswith("RuntimeError: register step failed")


def test_pipeline_steps_reports_runs_started_deep_inside_other_code() -> None:
    from pipelines import runner

    assert runner._reporter.get() is None
    with output.pipeline_steps():
        assert isinstance(runner._reporter.get(), output.PipelineSteps)
    mine = output.PipelineSteps()
    with reporting(mine):
        assert runner._reporter.get() is mine
    assert runner._reporter.get() is None


def test_a_logging_error_traceback_is_not_the_cause() -> None:
    """kfp.local's parallel tasks can log into a stream another task closed: logging prints
    that as a traceback of its own, after the failed shard's; the cause stays the shard's."""
    lines = [
        "    Traceback (most recent call last):",
        '      File "ephemeral_component.py", line 13, in score_shard',
        "    ValueError: batch input 'b.csv' lacks column(s): lead_time",
        "--- Logging error ---",
        "Traceback (most recent call last):",
        '  File "logging/__init__.py", line 1114, in emit',
        "ValueError: I/O operation on closed file.",
        "Call stack:",
    ]
    assert failure_cause(lines) == "ValueError: batch input 'b.csv' lacks column(s): lead_time"


def test_a_chained_logging_error_with_flat_source_lines_is_not_the_cause() -> None:
    """As CI printed it once: logging's own failure while kfp.local reported the failed
    run, two chained tracebacks whose source lines sit at the header's indent, then the
    call stack, message and arguments. The cause stays the shard's."""
    lines = [
        "    Traceback (most recent call last):",
        '      File "/work/pipelines/steps/batch.py", line 161, in shard_task',
        "        check_columns(spec, batch.schema.names, keys, where)",
        "    ValueError: batch input 'b.csv' lacks column(s): lead_time",
        "--- Logging error ---",
        "    Traceback (most recent call last):",
        '      File "kfp/local/pipeline_orchestrator.py", line 149, in _run_local',
        "    log_and_maybe_raise_for_failure(",
        '      File "kfp/local/pipeline_orchestrator.py", line 184, in log_and_maybe',
        "    raise RuntimeError(msg)",
        "    RuntimeError: Pipeline 'shipway-batch-scoring' finished with status FAILURE.",
        "    ",
        "During handling of the above exception, another exception occurred:",
        "",
        "    Traceback (most recent call last):",
        '      File "logging/__init__.py", line 1114, in emit',
        "    self.flush()",
        '      File "logging/__init__.py", line 1094, in flush',
        "    self.stream.flush()",
        "    ValueError: I/O operation on closed file.",
        "Call stack:",
        '      File "kfp/local/enhanced_dag_orchestrator.py", line 575, in run_enhanced_dag',
        "    logging.info(f'Skipping task {task_name}: upstream task(s) '",
        "Message: \"Skipping task commit-batch: upstream task(s) ['for-loop-1'] failed.\"",
        "Arguments: ()",
        "01:23:21.166 - INFO - Cleaned up workspace: /tmp/kfp-workspace-5u30mehm",
    ]
    assert failure_cause(lines) == "ValueError: batch input 'b.csv' lacks column(s): lead_time"


@pytest.mark.parametrize(
    ("line", "is_cause"),
    [
        ("ValueError: bad", True),
        ("shipway.core.errors.GateFailed: gate 'auc' failed", True),
        ("KeyError", True),
        ("RuntimeError:", True),
        ("self.flush()", False),
        ("raise RuntimeError(msg)", False),
        ("log_and_maybe_raise_for_failure(", False),
        ("return x", False),
    ],
)
def test_only_exception_shaped_lines_end_a_traceback(line: str, is_cause: bool) -> None:
    lines = ["Traceback (most recent call last):", '  File "x.py", line 1, in f', line]
    assert failure_cause(lines) == (line if is_cause else "")
