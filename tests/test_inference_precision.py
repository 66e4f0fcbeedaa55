"""Inference precision (issue 26): bf16 autocast on any device (default on CUDA, fp32 on CPU), recorded per map;
and the CLI's warnings and help around it."""
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from disyre_v2.inference.model_loading import LoadedModel
from disyre_v2.inference.predict_folder import predict_folder
from disyre_v2.inference.predictor import DisyrePredictor
from disyre_v2.run import predict as predict_cli
from disyre_v2.run import train as train_cli
from tests.test_predictor import plans_for, write_case
from tests.test_predictor_compiled import tiny_network


def _volume() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    mask = np.zeros((4, 30, 26), bool)
    mask[1:3, 4:27, 3:23] = True
    return (rng.random((1, 4, 30, 26)) * mask).astype(np.float32), mask


def _predictor(network: torch.nn.Module, **kwargs) -> DisyrePredictor:
    return DisyrePredictor(plans_for(1), "2d_small", [LoadedModel(network, True, Path("m"))], **kwargs)


def test_bf16_maps_differ_from_fp32_but_closely():
    data, mask = _volume()
    network = tiny_network()
    maps = {p: _predictor(network, precision=p).predict_preprocessed(data, mask)[0] for p in ("fp32", "bf16")}
    assert _predictor(network).precision == "fp32"  # the default on a CPU
    assert _predictor(network, device="cuda").describe()["precision"] == "bf16"  # and on CUDA (nothing runs here)
    np.testing.assert_array_equal(maps["fp32"], _predictor(network).predict_preprocessed(data, mask)[0])
    difference = np.abs(maps["bf16"] - maps["fp32"])
    assert difference.max() > 0  # autocast really ran in bf16 on the CPU
    assert difference.max() < 0.05 * maps["fp32"].max()  # bf16 keeps about 3 significant digits
    assert float(np.abs(maps["bf16"][~mask]).max()) == 0.0  # still exactly 0 outside the brain


def test_bf16_autocast_is_active_inside_the_network_on_cpu():
    seen = []

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 1, 1)

        def forward(self, x, t=None):
            out = self.conv(x)
            seen.append(out.dtype)
            return out

    data, mask = _volume()
    _predictor(Recorder(), precision="bf16").predict_preprocessed(data, mask)
    _predictor(Recorder(), precision="fp32").predict_preprocessed(data, mask)
    assert seen[0] == torch.bfloat16 and seen[-1] == torch.float32


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision 'fp16'.*fp32, bf16"):
        _predictor(tiny_network(), precision="fp16")


def test_cli_validates_precision(capsys):
    with pytest.raises(SystemExit) as exit_info:
        predict_cli.build_parser().parse_args(["-i", "in", "-o", "out", "-d", "1", "-c", "2d_small",
                                               "--precision", "fp16"])
    assert exit_info.value.code == 2 and "invalid choice: 'fp16'" in capsys.readouterr().err
    args = predict_cli.build_parser().parse_args(["-i", "in", "-o", "out", "-d", "1", "-c", "2d_small",
                                                  "--precision", "bf16"])
    assert args.precision == "bf16"


def test_sidecar_records_the_precision(tmp_path):
    write_case(tmp_path / "in", "a")
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        predict_folder(_predictor(tiny_network(), precision=precision), tmp_path / "in", out)
        assert json.loads((out / ".a.json").read_text())["precision"] == precision


def test_predict_help_has_no_doubled_percent(capsys):
    with pytest.raises(SystemExit):
        predict_cli.main(["-h"])
    help_text = capsys.readouterr().out
    assert "%%" not in help_text and "top 1% of brain voxels" in help_text


@pytest.mark.parametrize("configuration, device, warned", [("2d", "cpu", True), ("2d_small", "cpu", False),
                                                           ("2d", "cuda", False)])
def test_paper_sized_network_on_cpu_warns(caplog, configuration, device, warned):
    with caplog.at_level(logging.WARNING):
        train_cli.warn_if_paper_network_on_cpu(configuration, device, "training")
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert bool(messages) == warned
    if warned:
        assert "-device cuda" in messages[0] and "2d_small" in messages[0]


def test_cli_warns_before_running_2d_on_cpu(tmp_path, monkeypatch, caplog):
    # Neither command gets far (no dataset here), but the warning comes first, from both.
    for key in ("DISYRE_raw", "DISYRE_preprocessed", "DISYRE_results"):
        (tmp_path / key).mkdir()
        monkeypatch.setenv(key, str(tmp_path / key))
    (tmp_path / "in").mkdir()
    with caplog.at_level(logging.WARNING):
        assert predict_cli.main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-d", "1", "-c", "2d"]) != 0
        assert train_cli.main(["1", "2d", "0"]) != 0
    warnings = [r.getMessage() for r in caplog.records if "paper-sized" in r.getMessage()]
    assert len(warnings) == 2 and "prediction" in warnings[0] and "training" in warnings[1]
