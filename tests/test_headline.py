import json
import pathlib

import pytest

from memjax.experiments import headline, suite


def test_the_headline_runs_end_to_end_and_reports_the_table(tmp_path):
  summary = headline.run("tiny", tmp_path, progress=False)
  out = tmp_path / headline.EXPERIMENT.name
  assert [row["encoder"] for row in summary["rows"]] == ["Untrained", "Causal LM", "Autoencoder"]
  assert (out / "headline.png").stat().st_size > 10_000
  assert json.loads((out / "results.json").read_text())["rows"] == summary["rows"]
  probe_cfg = json.loads((suite.run_dir(tmp_path, "mixer_probe_causal_lm") / "config.json").read_text())
  assert probe_cfg["encoder"]["checkpoint"] == str(suite.run_dir(tmp_path, "mixer_clm")) and probe_cfg["encoder"]["embed_index"] == -2
  assert summary["probe_frozen_scope"] == "all"
  text = summary["table"]
  assert "Autoencoder" in text and "I_e" in text


@pytest.mark.parametrize("scale", ["demo", "tiny"])
def test_causal_lm_and_autoencoder_get_equal_budgets(scale):
  specs = {spec.name: spec.cfg for spec in headline.EXPERIMENT.plan(scale, pathlib.Path("/planned"))}
  clm, autoencoder = specs["mixer_clm"], specs["mixer_autoencoder"]
  for key in ("steps", "batch_size", "lr"):
    assert clm.train[key] == autoencoder.train[key], key
  assert clm.data.n_ctx == autoencoder.data.n_ctx
