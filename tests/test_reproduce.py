"""The reproduction suite (memjax.reproduce): every experiment end to end at tiny scale, the
paper-scale dry run of every experiment, and the pieces the reports are built from."""

import json
import math
import pathlib

import pytest

from memjax import cli, reproduce
from memjax.experiments import reporting, suite

# One xdist worker runs every test here (--dist loadgroup): the session fixture below trains ~40
# tiny runs, which the other workers need not wait for.
pytestmark = pytest.mark.xdist_group("reproduce")


@pytest.fixture(scope="session")
def reproduced(tmp_path_factory, data_cache):
  """Every experiment at tiny scale in one workdir (runs shared between experiments train once)."""
  import os

  import filelock

  # One folder for the whole test session, shared by xdist workers: a worker may set this fixture up
  # more than once (xdist tears session fixtures down when its queue runs dry), and finished runs
  # are then read back, not trained again. MEMJAX_REPRODUCE_ROOT: reuse an earlier tiny workdir.
  base = tmp_path_factory.getbasetemp()
  shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
  root = pathlib.Path(os.environ.get("MEMJAX_REPRODUCE_ROOT") or shared / "reproduce")
  summaries = {}
  with filelock.FileLock(str(shared / "reproduce.lock")):
    for name in reproduce.EXPERIMENTS:
      experiment = reproduce.experiment(name)
      summaries[name] = suite.run_experiment(experiment, "tiny", root, progress=False)
  return root, summaries


@pytest.mark.parametrize("name", reproduce.EXPERIMENTS)
def test_each_experiment_writes_its_results_table_and_figures(reproduced, name):
  root, summaries = reproduced
  out = root / name
  saved = json.loads((out / "results.json").read_text())
  assert saved["experiment"] == name and saved["scale"] == "tiny"
  assert saved["rows"] == summaries[name]["rows"] and saved["rows"]
  markdown = (out / "results.md").read_text()
  assert saved["table"] in markdown and markdown.count("\n|") >= len(saved["rows"])
  for figure in saved["figures"]:
    assert (out / figure).stat().st_size > 5_000  # a drawn PNG
  for run, result in saved["runs"].items():
    assert (root / suite.RUNS / run / "config.json").exists() and result["step"] >= 1


def test_information_rows_are_one_per_family_and_encoder(reproduced):
  rows = reproduced[1]["information"]["rows"]
  assert [(r["family"], r["encoder"]) for r in rows] == [
      (family, label) for family in ("mixer", "transformer")
      for label in ("Untrained", "Causal LM", "Autoencoder", "Memory model (CLM)", "Memory model (combined)")]
  for row in rows:
    assert 0.0 <= row["token_accuracy"] <= 1.0 and row["cross_entropy"] > 0
    # I_e = 1 - CE / H0, H0 for uniform U[0,1) logits over the tiny 512-token vocabulary (hand value)
    h0 = math.log(512 * (math.e - 1)) - 0.5
    assert row["entropy_proportion"] == pytest.approx(1 - row["cross_entropy"] / h0, abs=2e-3)


def test_runs_are_shared_between_experiments_and_probes_read_the_right_encoders(reproduced):
  root, summaries = reproduced
  assert "mixer_memory_clm" in summaries["memory"]["runs"] and "mixer_memory_clm" in summaries["information"]["runs"]
  probe = json.loads((root / suite.RUNS / "mixer_probe_causal_lm" / "config.json").read_text())
  assert probe["encoder"]["checkpoint"] == str(root / suite.RUNS / "mixer_clm")
  assert probe["encoder"]["embed_index"] == -2 and probe["encoder"]["frozen"]
  memory_probe = json.loads((root / suite.RUNS / "mixer_probe_memory_model_clm" / "config.json").read_text())
  memory_run = json.loads((root / suite.RUNS / "mixer_memory_clm" / "config.json").read_text())
  assert memory_probe["data"]["n_ctx"] == memory_run["data"]["n_ctx"] // memory_run["memory"]["chunks"]
  quantized = json.loads((root / suite.RUNS / "mixer_probe_autoencoder_int8" / "config.json").read_text())
  assert "mixer_probe_autoencoder" in summaries["quantize"]["runs"]  # 'none': the information probe
  assert quantized["encoder"]["checkpoint"] == str(root / suite.RUNS / "mixer_autoencoder")
  assert quantized["encoder"]["quantize"] == "int8" and quantized["encoder"]["frozen"]


def test_timing_counts_every_run_and_this_call_only_what_it_trained(reproduced):
  """`training_minutes_all_runs` (an experiment's cost from an empty workdir) sums each of its runs'
  recorded training time, shared runs included; `training_minutes_this_call` leaves out runs read
  back, e.g. copy's frozen encoders, trained by the information experiment before it."""
  root, summaries = reproduced
  copy = summaries["copy"]
  seconds = {run: json.loads((root / suite.RUNS / run / "results.json").read_text())["seconds"]
             for run in copy["runs"]}
  assert copy["training_minutes_all_runs"] == pytest.approx(sum(seconds.values()) / 60)
  shared = seconds["mixer_clm"] + seconds["mixer_autoencoder"]
  assert copy["training_minutes_this_call"] <= copy["training_minutes_all_runs"] - shared / 60 + 1e-9


def test_cpu_scale_windows_let_memory_models_reuse_the_information_encoders():
  """At cpu scale a memory model's chunk is the causal LMs' and autoencoders' window, so the frozen
  encoders of `copy` and `frozen` are the information experiment's runs, not runs of their own."""
  from memjax import config as mc
  from memjax.experiments import runs

  window = mc.SIZES["cpu"]["n_ctx"]
  for family in suite.FAMILIES:
    trained = runs.shared("cpu", family)
    memory = trained["memory_clm"].cfg
    assert memory.data.n_ctx == memory.memory.chunks * window
    assert memory.train.batch_size == mc.SIZES["cpu"]["memory_batch_size"]
    assert {key: spec.name for key, spec in runs.chunk_encoders("cpu", family).items()} == {
        "clm": f"{family}_clm", "autoencoder": f"{family}_autoencoder"}
    assert trained["autoencoder"].cfg.data.n_ctx == window


@pytest.mark.parametrize("scale", suite.SCALES)
def test_shared_runs_are_their_config_files_at_the_scale_preset(scale):
  """A scale is a preset of configs/: `configs/memory.py:cpu,family=mixer` is the cpu scale's
  mixer_memory_clm, with nothing changed in Python; the suite only adds a run's own keys."""
  from conftest import load_config

  from memjax.experiments import runs

  preset = suite.PRESETS[scale]
  for family in suite.FAMILIES:
    trained = runs.shared(scale, family)
    for key, file in (("clm", "clm.py"), ("autoencoder", "autoencoder.py"), ("memory_clm", "memory.py")):
      assert load_config(f"{file}:{preset},family={family}").to_dict() == trained[key].cfg.to_dict(), key
    combined = load_config(f"memory.py:{preset},family={family},stages=combined,steps={runs.COMBINED_STEPS.get(scale, 0)}")
    combined.objective.combined_copy = "copy"
    assert combined.to_dict() == trained["memory_combined"].cfg.to_dict()


def test_chained_stages_start_from_the_previous_stage(reproduced):
  """The curriculum's copy stage and its negative control start from the blank-copy run's decoder."""
  import numpy as np

  from memjax.training import checkpoint, run_folder

  root = reproduced[0]
  def decoder_embedding(run, step):
    mngr = checkpoint.manager(root / suite.RUNS / run / run_folder.CHECKPOINTS)
    shapes = checkpoint.stored_shapes(mngr, step)
    import jax
    target = {"params": {"decoder": {"embed": {"embedding": jax.ShapeDtypeStruct(
        shapes["params/decoder/embed/embedding"], "float32")}}}}
    value = checkpoint.restore(mngr, step, target)["params"]["decoder"]["embed"]["embedding"]
    mngr.close()
    return np.asarray(value)

  source = decoder_embedding("mixer_blank_copy_frozen_ae", 2)
  for run in ("mixer_curriculum_frozen_ae", "mixer_curriculum_no_memory"):
    config = json.loads((root / suite.RUNS / run / "config.json").read_text())
    assert config["train"]["init_from"] == str(root / suite.RUNS / "mixer_blank_copy_frozen_ae")
    continued = decoder_embedding(run, 2)
    # two AdamW steps at the tiny lr move each entry by at most ~2 * lr
    assert np.abs(continued - source).max() < 3 * config["train"]["lr"]


def test_paper_scale_dry_run_sizes_every_experiment():
  from memjax.experiments import dryrun

  report = dryrun.dry_run([reproduce.experiment(n) for n in reproduce.EXPERIMENTS], devices=8,
                          lower=False)
  by_run = {r["run"]: r for r in report["rows"]}
  assert set(report["totals"]["by_experiment"]) == set(reproduce.EXPERIMENTS)
  # The causal LM the reference's probe reads (clm_transformer_information.py): d 512, 8 layers, 8k
  # vocab; 200k x 128 x 512 tokens
  clm = by_run["transformer_clm"]
  assert clm["tokens"] == 200_000 * 128 * 512
  blocks = 8 * (4 * 512 * 512 + 3 * 512 * 2048)  # attention + SwiGLU, by hand
  assert clm["params"] == pytest.approx(blocks + 2 * 8000 * 512, rel=0.01)
  assert clm["flops_per_token"] == pytest.approx(6 * (blocks + 8000 * 512) + 8 * 6 * 512 * 512, rel=0.01)
  assert by_run["mixer_memory_frozen_ae"]["frozen_params"] > 0 and by_run["mixer_memory_clm"]["frozen_params"] == 0
  for row in report["rows"]:
    assert row["params"] > 0 and row["accelerator_hours"] > 0
    assert row["accelerator_hours"] == pytest.approx(
        row["total_flops"] / (989e12 * 0.4) / 3600, rel=1e-9)
  assert "transformer_clm" in dryrun.table(report)


def test_dry_run_flops_match_xla_and_memory_is_compiled(tiny):
  """The analytic FLOP count agrees with XLA's count of the compiled train step (which also counts
  norms, softmaxes and the optimizer); the compiled step's per-device memory is reported."""
  import jax

  from memjax.experiments import dryrun, runs

  specs = [runs.autoencoder("tiny", "transformer"), runs.memory("tiny", "mixer", stages="combined")]
  scanned = runs.autoencoder("tiny", "mixer")  # XLA counts a scanned stack's body once: not here
  scanned.cfg.encoder.update(scan_layers=True, n_layers=3)
  scanned.cfg.decoder.update(scan_layers=True, n_layers=3)
  for spec in [*specs, scanned]:
    sized = dryrun.size_run(spec, jax.devices()[:8], compile_memory=True, cache={})
    for entry in sized["objectives"].values():
      assert 0.95 < entry["step_flops"] / entry["analytic_step_flops"] < 1.35
      assert entry["memory_gib_per_device"] > 0


def test_markdown_table_and_fraction_recovered_curve():
  table = reporting.markdown_table(["a", "b"], [["x", 0.12345], ["y", None]])
  assert table.splitlines() == ["| a | b |", "|---|---|", "| x | 0.1235 |", "| y | — |"]

  class Ctx:
    def curve(self, name, key):
      return {"frozen": [(10, 4.0), (20, 3.0)], "none": [(10, 5.0), (20, 4.0)],
              "trainable": [(10, 3.0), (20, 2.0)]}[name]

  from memjax.experiments import frozen
  # (5 - 4) / (5 - 3) = 0.5 and (4 - 3) / (4 - 2) = 0.5, by hand
  assert frozen.fraction_curve(Ctx(), "frozen", "none", "trainable") == [(10, 0.5), (20, 0.5)]


def test_unigram_floor_by_hand():
  import numpy as np

  # vocabulary 4; training counts 0:1, 1:4, 2:1, 3:0, add-one smoothed: 2, 5, 2, 1 of 10
  train = np.array([0, 1, 1, 1, 1, 2])
  batches = [{"tokens": np.array([[1, 2, 3]]), "mask": np.array([[1, 1, 0]])},  # the 3 is padding
             {"tokens": np.array([[1, 0]]), "mask": np.array([[1, 1]])}]
  floor = reporting.unigram_floor(train, batches, vocab_size=4)
  assert floor["tokens"] == 4
  assert floor["token_accuracy"] == pytest.approx(2 / 4)  # the 1s are predicted, the 2 and 0 are not
  expected = -(2 * math.log(0.5) + math.log(0.2) + math.log(0.2)) / 4
  assert floor["cross_entropy"] == pytest.approx(expected)


def test_memory_advantage_note_warns_only_on_a_tiny_denominator():
  assert "mean nothing" not in reporting.memory_advantage_note({"mixer": 0.31, "transformer": -0.2})
  note = reporting.memory_advantage_note({"mixer": 0.31, "transformer": 0.013})
  assert "transformer +0.013" in note and "(transformer)" in note and "mean nothing" in note


def test_information_reports_the_unigram_floor(reproduced):
  floor = reproduced[1]["information"]["unigram_floor"]
  for family in suite.FAMILIES:
    assert 0 < floor[family]["token_accuracy"] < 1 and floor[family]["cross_entropy"] > 0
  assert "unigram floor" in reproduced[1]["information"]["table"]


def test_retrieval_runs_continue_their_base_run_and_are_probed_like_the_others(reproduced):
  """§5.1's Causal → Retrieval (both families) and Autoencoder → Retrieval (mixers, as the paper):
  the shared run continued on retrieval alone, probed as the information experiment probes."""
  root, summaries = reproduced
  summary = summaries["retrieval"]
  shared = ["Untrained", "Causal LM", "Causal → Retrieval", "Autoencoder"]
  assert [(r["family"], r["encoder"]) for r in summary["rows"]] == (
      [("mixer", label) for label in shared + ["Autoencoder → Retrieval"]]
      + [("transformer", label) for label in shared])
  assert {"mixer_probe_causal_lm", "transformer_probe_autoencoder"} <= set(summaries["information"]["runs"]) \
      & set(summary["runs"])  # shared with information, not retrained
  for family, base, index in (("mixer", "clm", -2), ("mixer", "autoencoder", -1), ("transformer", "clm", -2)):
    run = f"{family}_{base}_retrieval"
    config = json.loads((root / suite.RUNS / run / "config.json").read_text())
    assert config["train"]["init_from"] == str(root / suite.RUNS / f"{family}_{base}")
    assert config["objective"]["stages"] == "retrieval" and config["objective"]["retrieval_base"] == ""
    evaluated = json.loads((root / suite.RUNS / run / "results.json").read_text())["eval"]
    assert evaluated["retrieval/chance"] == pytest.approx(1 / config["train"]["batch_size"])  # a row each
    assert "clm/loss" not in evaluated and "reconstruction/loss" not in evaluated
    probe = json.loads((root / suite.RUNS / f"{family}_probe_{base}_retrieval" / "config.json").read_text())
    assert probe["encoder"]["checkpoint"] == str(root / suite.RUNS / run) and probe["encoder"]["frozen"]
    assert probe["encoder"]["embed_index"] == index
  assert [(v["finding"].split(": ")[1], v["paper"]) for v in summary["verdicts"]] == [
      ("Causal → Retrieval vs Causal LM", "more"), ("Autoencoder → Retrieval vs Autoencoder", "less"),
      ("Causal → Retrieval vs Causal LM", "less")]


def test_cli_names_bad_input():
  for argv, message in ((["nonsense"], "unknown experiment"), (["memory", "--scale=huge"], "one of <tiny|cpu|paper>"),
                        (["memory", "--dry-run"], "--scale=paper"),
                        (["memory", "--scale=paper", "--dry-run", "--mfu=2"], "--mfu")):
    with pytest.raises(SystemExit) as exited:  # its message is what the user reads on stderr
      cli.call(reproduce, argv)
    assert message in str(exited.value.code)


def test_warm_start_refuses_a_folder_that_is_not_a_run(tmp_path, tiny):
  from memjax.training import loop

  cfg = tiny("clm.py:tiny", steps=3)
  cfg.train.init_from = str(tmp_path / "missing")
  with pytest.raises(FileNotFoundError, match="init_from"):
    loop.run(cfg, str(tmp_path / "run"))


def test_finished_runs_accept_options_added_later_only_at_their_defaults(tmp_path):
  cfg = suite.config("clm.py", "tiny", 2)
  saved = json.loads(cfg.to_json_best_effort())
  del saved["train"]["init_from"]  # a run trained before train.init_from existed
  (tmp_path / "config.json").write_text(json.dumps(saved))
  suite.check_finished(tmp_path, cfg)
  cfg.train.init_from = "/elsewhere"
  with pytest.raises(ValueError, match="init_from"):
    suite.check_finished(tmp_path, cfg)
  cfg.train.init_from, cfg.train.lr = "", 1.0
  with pytest.raises(ValueError, match="train.lr"):
    suite.check_finished(tmp_path, cfg)
  memory = suite.config("memory.py", "tiny", 2)  # a memory model trained before memory.quantize existed
  saved = json.loads(memory.to_json_best_effort())
  del saved["memory"]["quantize"], saved["memory"]["quantize_noise"]
  (tmp_path / "config.json").write_text(json.dumps(saved))
  suite.check_finished(tmp_path, memory)
  memory.memory.quantize = "int8"
  with pytest.raises(ValueError, match="memory.quantize"):
    suite.check_finished(tmp_path, memory)


@pytest.mark.parametrize("scale", suite.SCALES)
def test_a_run_name_stands_for_one_config_across_experiments(scale):
  """Shared runs come from one registry (experiments/runs.py): wherever two experiments plan a run
  of the same name, its config is the same, so the run trains once and is read back by the other."""
  import pathlib

  configs = {}
  for name in reproduce.EXPERIMENTS:
    for spec in reproduce.experiment(name).plan(scale, pathlib.Path("/planned")):
      configs.setdefault(spec.name, []).append(spec.cfg.to_dict())
  assert all(cfg == cfgs[0] for cfgs in configs.values() for cfg in cfgs)
  assert sum(len(cfgs) > 1 for cfgs in configs.values()) >= 5  # clm, autoencoder, memory_clm, probes ...


@pytest.mark.parametrize("scale", ["tiny", "cpu"])
def test_one_run_alone_gets_the_config_the_suite_trains_it_with(scale, tmp_path, capsys):
  """configs/experiments.py:RUN,scale=..,workdir=.. (what `reproduce NAME --commands` prints) is the
  suite's config of that run: shared runs, probes of their encoders and curriculum stages alike."""
  from conftest import load_config

  root = tmp_path / "reproduce"
  cli.call(reproduce, ["copy", "--commands", f"--scale={scale}", f"--workdir={root}"])
  printed = capsys.readouterr().out.splitlines()
  specs = {spec.name: spec for name in ("copy", "information")
           for spec in reproduce.experiment(name).plan(scale, root)}
  assert len(printed) == len(reproduce.experiment("copy").plan(scale, root))
  for line in printed:
    config_arg = line.split("--config=configs/")[1].split()[0]
    run = config_arg.split(":")[1].split(",")[0]
    assert line.endswith(f"--workdir={suite.run_dir(root, run)}")
    assert load_config(config_arg).to_dict() == specs[run].cfg.to_dict()
  for run in ("mixer_probe_causal_lm", "transformer_memory_combined"):
    assert load_config(f"experiments.py:{run},scale={scale},workdir={root}").to_dict() == specs[run].cfg.to_dict()
  assert load_config(f"experiments.py:mixer_clm,scale={scale}").train.steps == specs["mixer_clm"].cfg.train.steps


def test_verdict_rule_on_hand_made_numbers():
  """docs/results.md's rule: reproduces when the rows' intervals separate in the paper's direction,
  does not when they separate the other way, not resolved when they overlap or one seed was run."""
  assert reporting.verdict([0.5, 0.6], [0.1, 0.2], "more") == "reproduces"  # [0.5, 0.6] above [0.1, 0.2]
  assert reporting.verdict([0.5, 0.6], [0.1, 0.2], "less") == "does not reproduce"
  assert reporting.verdict([0.1, 0.2], [0.5, 0.6], "less") == "reproduces"
  # means 0.35 and 0.30 differ in the paper's direction, but [0.2, 0.5] and [0.1, 0.5] overlap
  assert reporting.verdict([0.2, 0.5], [0.1, 0.5], "more") == "not resolved at this scale (intervals overlap)"
  assert reporting.verdict([0.9], [0.1], "more") == "not resolved at this scale (1 seed)"
  assert reporting.verdict([0.9, float("nan")], [0.1, 0.2], "more").startswith("not resolved at this scale")
  # four seeds: t-intervals. [1, 2, 3, 4]: mean 2.5, sd sqrt(5/3), t(0.975, 3) = 3.1824 -> 2.5 ± 2.0543
  mean, low, high = reporting.interval([1.0, 2.0, 3.0, 4.0])
  assert (mean, low, high) == pytest.approx((2.5, 2.5 - 2.0543, 2.5 + 2.0543), abs=1e-4)
  # [4.6, 4.7, 4.8, 4.9]: 4.75 ± 3.1824 * sqrt(0.05 / 3) / 2 = [4.5446, 4.9554], which overlaps
  # [0.4457, 4.5543] though every value is above 4; three seeds of each: min-max, [1, 3] below [4.6, 4.8]
  assert reporting.verdict([1.0, 2.0, 3.0, 4.0], [4.6, 4.7, 4.8, 4.9], "less") == (
      "not resolved at this scale (intervals overlap)")
  assert reporting.verdict([1.0, 2.0, 3.0], [4.6, 4.7, 4.8], "less") == "reproduces"
  assert reporting.interval([3.0, 1.0, 2.0]) == (2.0, 1.0, 3.0)  # three seeds: min-max
  assert reporting.interval_kind(3) == "min-max of the seeds"
  assert reporting.interval_kind(4) == "95 % t-interval of the mean"
  with pytest.raises(ValueError):
    reporting.verdict([1.0, 2.0], [0.0, 0.0], "bigger")



def test_family_findings_compare_within_each_family_and_skip_missing_rows():
  rows = [{"family": "mixer", "model": "a", "loss": 1.0}, {"family": "mixer", "model": "b", "loss": 2.0},
          {"family": "transformer", "model": "a", "loss": 3.0}]
  found = reporting.family_findings(rows, "model", "loss", "{family}: {first} vs {second}",
                                    lambda family: [("a", "b", "less"), ("b", "a", "more")])
  # the transformer family has no 'b' row: nothing to compare there
  assert found == [{"finding": "mixer: a vs b", "ours": 1.0, "than": 2.0, "paper": "less"},
                   {"finding": "mixer: b vs a", "ours": 2.0, "than": 1.0, "paper": "more"}]

def test_seeds_combine_line_by_line():
  """Recorded reports of two seeds: numbers the same in both once, others as mean [min, max]; a
  line that reads differently per seed (a warning) once per seed."""
  texts, numbers = [], []
  for ratio, gain in ((6.0, 0.31), (8.0, 0.01)):
    with reporting.recording() as recorded:
      texts.append(reporting.markdown_table(["a", "b"], [["x", 0.5], ["y", ratio]]) + "\n\n"
                   + reporting.memory_advantage_note({"mixer": gain}))
    numbers.append(list(recorded))
  combined = reporting.combine(texts, numbers).splitlines()
  assert combined[2:4] == ["| x | 0.5000 |", "| y | 7.000 [6.000, 8.000] |"]
  assert combined[5] == "(seed 0) " + reporting.memory_advantage_note({"mixer": 0.31})
  assert combined[6] == "(seed 1) " + reporting.memory_advantage_note({"mixer": 0.01})
  assert reporting.render(texts[0], numbers[0]) == (reporting.markdown_table(["a", "b"], [["x", 0.5], ["y", 6.0]])
                                                    + "\n\n" + reporting.memory_advantage_note({"mixer": 0.31}))


def test_two_seeds_train_in_their_own_folders_and_tables_show_their_range(reproduced, tmp_path):
  """`--seeds=2` on a workdir holding a one-seed reproduction: seed 0 is that workdir's runs, read
  back (not trained again), seed 1 trains in seed1/ with cfg.seed 1, and every measured number of
  the table is the mean and min-max of the two seeds' values."""
  import shutil

  from memjax.experiments import memory

  root, one_seed = reproduced[0], reproduced[1]["memory"]
  for name in one_seed["runs"]:  # the memory runs read no other run, so a copy is the same run
    shutil.copytree(root / suite.RUNS / name, tmp_path / suite.RUNS / name)
  summary = suite.run_experiment(memory.EXPERIMENT, "tiny", tmp_path, progress=False, seeds=2)
  seed0, seed1 = summary["per_seed"]
  assert seed0["rows"] == one_seed["rows"]  # seed 0 is what a one-seed run made
  assert not any(run["trained_now"] for run in seed0["runs"].values())
  assert all(run["trained_now"] for run in seed1["runs"].values())
  for name in one_seed["runs"]:
    assert json.loads((tmp_path / "seed1" / suite.RUNS / name / "config.json").read_text())["seed"] == 1
    assert json.loads((tmp_path / suite.RUNS / name / "config.json").read_text())["seed"] == 0
  assert (tmp_path / "seed1" / "memory" / "results.md").exists()  # seed 1's own report
  losses = [(a["eval_loss"], b["eval_loss"]) for a, b in zip(seed0["rows"], seed1["rows"])]
  assert all(a != b for a, b in losses)  # another init and data order: other numbers
  saved = json.loads((tmp_path / "memory" / "results.json").read_text())
  assert saved["seeds"] == 2 and saved["interval"] == "min-max of the seeds"
  table = summary["table"].splitlines()
  for row, (a, b) in zip(seed0["rows"], losses):
    line = next(line for line in table if line.startswith(f"| mixer | {row['model']} |"))
    assert f"| {(a + b) / 2:.3f} [{min(a, b):.3f}, {max(a, b):.3f}] |" in line  # by hand: min-max of 2
    combined = next(r for r in saved["rows"] if r["model"] == row["model"])["eval_loss"]
    assert (combined["low"], combined["high"], combined["per_seed"]) == (min(a, b), max(a, b), [a, b])
  first = saved["verdicts"][0]  # parallel vs no memory, each seed's eval CE
  assert first["ours"] == [losses[0][0], losses[0][1]] and first["verdict"] == reporting.verdict(
      first["ours"], first["than"], "less")
  assert "Verdicts" in summary["table"] and "min-max of the seeds" in (tmp_path / "memory" / "results.md").read_text()


def test_commands_of_each_seed_read_that_seeds_runs(tmp_path, capsys):
  """`--commands --seeds=2`: seed 1's runs in seed1/runs/, their configs (seed=1) reading seed 1's
  encoders and earlier stages."""
  from conftest import load_config

  cli.call(reproduce, ["copy", "--commands", "--scale=tiny", "--seeds=2", f"--workdir={tmp_path}"])
  printed = capsys.readouterr().out.splitlines()
  plan = suite.plan(reproduce.experiment("copy"), "tiny", tmp_path, seed=1)
  assert len(printed) == 2 * len(plan)
  line = next(line for line in printed if "mixer_curriculum_frozen_ae,scale=tiny" in line and "seed=1" in line)
  assert line.endswith(f"--workdir={tmp_path / 'seed1' / suite.RUNS / 'mixer_curriculum_frozen_ae'}")
  cfg = load_config(line.split("--config=configs/")[1].split()[0])
  assert cfg.seed == 1 and cfg.train.init_from == str(tmp_path / "seed1" / suite.RUNS / "mixer_blank_copy_frozen_ae")
  assert cfg.encoder.checkpoint == str(tmp_path / "seed1" / suite.RUNS / "mixer_autoencoder")


def test_control_scores_random_tokens_against_ln_vocab_and_reads_the_code_corpus(reproduced, data_cache):
  """The trivial-code control at tiny scale: every controlled run's terms on random tokens, ln|V| of
  the smoke preset's 512 tokens (by hand: 6.238), a causal term above it (Gibbs: a prediction that
  cannot see its target scores at least the target's entropy, ln|V| for uniform targets), the random
  autoencoder's losses, and the OOD rows evaluated on the stdlib's code (its token cache built)."""
  summary = reproduced[1]["control"]
  rows = {(r["model"], r["term"]): r for r in summary["rows"]}
  assert set(rows) == {("Autoencoder", "reconstruction"), ("Memory model (CLM)", "clm"),
                       ("Memory model (combined)", "clm"), ("Memory model (combined)", "copy")}
  for row in rows.values():
    assert row["ln_vocab"] == pytest.approx(6.2383, abs=1e-4)
  assert rows["Memory model (CLM)", "clm"]["random_loss"] > 6.2383
  random_ae = summary["random_autoencoder"]
  assert random_ae["steps"] == 2 and random_ae["first_logged_step"] == 1
  assert math.isfinite(random_ae["first_train_loss"]) and math.isfinite(random_ae["eval_loss"])
  assert [r["model"] for r in summary["ood_rows"]] == [
      "Autoencoder", "Probe of autoencoder", "Probe of memory model (combined)"]
  assert all(0 < r["ood_unigram_floor_accuracy"] < 1 for r in summary["ood_rows"][1:])
  assert any(p.name.startswith("stdlib-code") for p in (data_cache / "tokens").iterdir())
  config = json.loads((reproduced[0] / suite.RUNS / "mixer_autoencoder_random_tokens" / "config.json").read_text())
  assert config["data"]["source"] == "random:64:stdlib"
def test_pretrained_decoder_runs_start_from_the_shared_causal_lm(reproduced):
  """§5.8 at tiny scale: the 'pretrained' decoder is the shared transformer causal LM, read into the
  memory model, the random-encoding control and the no-memory model; the from-scratch one is not."""
  import numpy as np

  from memjax.experiments import runs
  from memjax.training import checkpoint, run_folder

  root, summaries = reproduced
  summary = summaries["pretrained"]

  def decoder_embedding(run):
    import jax

    mngr = checkpoint.manager(root / suite.RUNS / run / run_folder.CHECKPOINTS)
    step = mngr.latest_step()
    shape = checkpoint.stored_shapes(mngr, step)["params/decoder/embed/embedding"]
    target = {"params": {"decoder": {"embed": {"embedding": jax.ShapeDtypeStruct(shape, "float32")}}}}
    value = checkpoint.restore(mngr, step, target)["params"]["decoder"]["embed"]["embedding"]
    mngr.close()
    return np.asarray(value)

  clm = runs.clm("tiny", "transformer").name
  assert list(summary["runs"]) == [clm, "transformer_pretrained_copy", "transformer_pretrained_copy_random",
                                   "transformer_pretrained_copy_no_memory", "transformer_scratch_copy"]
  config = {name: json.loads((root / suite.RUNS / name / "config.json").read_text()) for name in summary["runs"]}
  assert config["transformer_pretrained_copy"]["decoder"]["checkpoint"] == str(root / suite.RUNS / clm)
  assert config["transformer_scratch_copy"]["decoder"]["checkpoint"] == ""
  assert config["transformer_pretrained_copy_random"]["memory"]["encoding"] == "random"
  assert config["transformer_pretrained_copy_no_memory"]["memory"]["kind"] == "none"
  source = decoder_embedding(clm)
  lr = config["transformer_pretrained_copy"]["train"]["lr"]
  for run in ("transformer_pretrained_copy", "transformer_pretrained_copy_random",
              "transformer_pretrained_copy_no_memory"):
    assert np.abs(decoder_embedding(run) - source).max() < 3 * lr  # two AdamW steps: at most ~2 * lr each
  assert np.abs(decoder_embedding("transformer_scratch_copy") - source).max() > 10 * lr
  for row in summary["rows"]:
    assert 0.0 <= row["copy_accuracy"] <= 1.0 and row["copy_loss"] > 0
    assert row["copy_accuracy_gain"] == pytest.approx(row["copy_accuracy"] - row["copy_accuracy_first_eval"])
  assert [f["paper"] for f in summary["verdicts"]] == ["more", "more", "more"]


def test_memory_long_rows_are_at_twice_the_memory_experiments_length(reproduced):
  from memjax.experiments import memory_long

  from memjax.experiments import runs

  summary = reproduced[1]["memory_long"]
  assert [(r["family"], r["model"], r["n_ctx"]) for r in summary["rows"]] == [
      ("mixer", label, 2 * runs.memory("tiny", "mixer").cfg.data.n_ctx) for label, _ in memory_long.VARIANTS]
  assert [f["paper"] for f in summary["verdicts"]] == ["less"]  # tiny scale trains mixers: no transformer finding
