import pytest

from memjax.objectives import curriculum


def test_stages_cover_the_run():
  stages = curriculum.parse("blank_copy:100, copy:50,combined", 400)
  assert [(s.objective, s.start, s.stop) for s in stages] == [
      ("blank_copy", 0, 100), ("copy", 100, 150), ("combined", 150, 400)]
  assert curriculum.stage_at(stages, 99).objective == "blank_copy"
  assert curriculum.stage_at(stages, 100).objective == "copy"
  assert curriculum.stage_at(stages, 399).objective == "combined"
  assert curriculum.parse("clm", 10) == (curriculum.Stage("clm", 0, 10),)
  assert curriculum.parse("copy:4,clm:6", 10)[-1].stop == 10


@pytest.mark.parametrize("spec, match", [
    ("", "empty"), ("copy,clm", "needs a length"), ("copy:x,clm", "not a number"),
    ("copy:20,clm", "is empty"), ("copy:4,clm:3", "would end at step 7"),
])
def test_bad_curricula_are_explained(spec, match):
  with pytest.raises(ValueError, match=match):
    curriculum.parse(spec, 10)
