"""HBM traffic by source, on a hand-written scheduled HLO whose bytes are counted by hand."""

from memjax.training import hbm_traffic

HLO = """HloModule m

FileNames
1 "/src/memjax/models/mixer.py"
2 "/venv/site-packages/jax/_src/numpy.py"
FunctionNames
1 "TokenMixing.__call__"
2 "negative"
FileLocations
1 {file_name_id=1 function_name_id=1 line=10 end_line=10 column=1 end_column=1}
2 {file_name_id=2 function_name_id=2 line=5 end_line=5 column=1 end_column=1}
StackFrames
1 {file_location_id=1 parent_frame_id=0}
2 {file_location_id=2 parent_frame_id=1}

%fused (p: f32[8,128]) -> f32[8,128] {
  %p = f32[8,128]{1,0} parameter(0)
  ROOT %n = f32[8,128]{1,0} negate(%p), metadata={op_name="jit(f)/transpose(jvp())/neg" stack_frame_id=2}
}

ENTRY %main (a: f32[8,128], b: bf16[3,5]) -> (f32[8,128], bf16[3,5]) {
  %a = f32[8,128]{1,0:T(8,128)} parameter(0), metadata={op_name="args[0].params['w']"}
  %b = bf16[3,5]{1,0:T(8,128)(2,1)} parameter(1), metadata={op_name="args[1]"}
  %f = f32[8,128]{1,0:T(8,128)} fusion(%a), kind=kLoop, calls=%fused
  %c = f32[8,128]{1,0:T(8,128)S(1)} copy(%f)
  %d = bf16[3,5]{1,0:T(8,128)(2,1)} copy(%b)
  ROOT %t = (f32[8,128]{1,0:T(8,128)S(1)}, bf16[3,5]{1,0:T(8,128)(2,1)}) tuple(%c, %d)
}
"""


def test_bytes_by_source_counted_by_hand():
  # fusion %f: reads a (8 x 128 f32 = 4096 B) and writes 4096 B; its only frame is jax's `negative`
  # called from TokenMixing (innermost memjax frame), and its op is a transpose: backward.
  # copy %c: reads f (4096 B) and writes to on-chip memory S(1) (not HBM); it inherits f's source.
  # copy %d: a bf16 [3, 5] batch padded to the (8, 128) tile: 2048 B read + 2048 B written.
  assert hbm_traffic.breakdown(HLO) == {
      "memjax/models/mixer.py:TokenMixing.__call__ [backward]": 4096 * 3,
      "step inputs: batch": 2048 * 2,
  }


# A Pallas kernel's custom call as libtpu prints it: its kernel metadata holds newlines, and one of its
# continuation lines starts with '}'. The instructions after it belong to the same computation.
PALLAS_HLO = """HloModule m

FileNames
1 "/src/memjax/kernels/splash.py"
FunctionNames
1 "splash_attention"
FileLocations
1 {file_name_id=1 function_name_id=1 line=10 end_line=10 column=1 end_column=1}
StackFrames
1 {file_location_id=1 parent_frame_id=0}

ENTRY %main (a: f32[8,128]) -> f32[8,128] {
  %a = f32[8,128]{1,0:T(8,128)} parameter(0), metadata={op_name="args[0].params['w']"}
  %k = f32[8,128]{1,0:T(8,128)} custom-call(%a), custom_call_target="tpu_custom_call", frontend_attributes={kernel_metadata={
"xprof_metadata":"{\\"block_q\\": 128}"
}}, metadata={op_name="jit(f)/transpose(jvp())/pallas_call" stack_frame_id=1}
  ROOT %c = f32[8,128]{1,0:T(8,128)} copy(%k)
}
"""


def test_a_kernel_spanning_lines_does_not_end_its_computation():
  # custom call %k: reads a (4096 B), writes 4096 B, backward (transpose), in splash_attention.
  # copy %c, after the kernel: reads k and writes 4096 B, inheriting k's source: 8192 B more.
  assert hbm_traffic.breakdown(PALLAS_HLO) == {"memjax/kernels/splash.py:splash_attention [backward]": 4096 * 4}
