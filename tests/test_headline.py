import json

import pytest

from memjax.experiments import headline


def test_the_headline_runs_end_to_end_and_reports_the_table(tmp_path):
  from conftest import load_config

  cfg = load_config("headline.py:tiny")
  for run in (cfg.clm, cfg.autoencoder, cfg.probe):
    run.train.update(progress=False, async_checkpoints=False)
  summary = headline.run(cfg, str(tmp_path))
  assert [row["encoder"] for row in summary["rows"]] == ["Untrained", "Causal LM", "Autoencoder"]
  assert (tmp_path / "headline.png").stat().st_size > 10_000
  assert json.loads((tmp_path / "results.json").read_text())["rows"] == summary["rows"]
  probe_cfg = json.loads((tmp_path / "probe_causal" / "config.json").read_text())
  assert probe_cfg["encoder"]["checkpoint"] == str(tmp_path / "clm") and probe_cfg["encoder"]["embed_index"] == -2
  assert summary["probe_frozen_scope"] == "all"
  text = headline.table(summary["rows"])
  assert "Autoencoder" in text and "I_e" in text


@pytest.mark.parametrize("preset", ["cpu", "tiny"])
def test_causal_lm_and_autoencoder_get_equal_budgets(preset):
  from conftest import load_config

  cfg = load_config(f"headline.py:{preset}")
  for key in ("steps", "batch_size", "lr"):
    assert cfg.clm.train[key] == cfg.autoencoder.train[key], key
  assert cfg.clm.data.n_ctx == cfg.autoencoder.data.n_ctx
