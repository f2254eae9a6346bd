// profile/step_breakdown: the split of profiled steps into categories, on hand-made timelines
// whose answers are known, for the host (self time, scopes, backward nodes) and the device
// (kernels by scope or name, idle, overlap); and the Chrome trace round trip.
#include <gtest/gtest.h>

#include <fstream>

#include "profile/step_breakdown.h"
#include "profile/trace_events.h"
#include "support/test_support.h"
#include "util/error.h"

namespace lctrain {
namespace {

TraceEvent host(const std::string& name, double start, double duration, int64_t sequence = -1) {
  const bool scope = name.rfind("lctrain::", 0) == 0;
  return {name,     scope ? TraceEventKind::kAnnotation : TraceEventKind::kHostOp,
          7,        start,
          duration, sequence};
}

TraceEvent kernel(const std::string& name, double start, double duration, uint64_t stream = 1) {
  return {name, TraceEventKind::kDevice, stream, start, duration, -1};
}

double ms(const StepBreakdown& breakdown, TimeCategory category) {
  return breakdown.category_us[static_cast<size_t>(category)];
}

TEST(ClassifyByName, HostOperatorsAndCudaKernels) {
  EXPECT_EQ(classify_by_name("aten::mm"), TimeCategory::kGemm);
  EXPECT_EQ(classify_by_name("aten::addmm"), TimeCategory::kGemm);
  EXPECT_EQ(classify_by_name("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n"), TimeCategory::kGemm);
  EXPECT_EQ(classify_by_name("nvjet_tst_192x192_64x4_2x1_v_bz_coopB_TNT"), TimeCategory::kGemm);
  EXPECT_EQ(classify_by_name("void pytorch_flash::flash_bwd_dq_dk_dv_loop_kernel<...>"),
            TimeCategory::kAttention);
  // Memory-efficient attention's kernels are CUTLASS kernels: attention, not GEMM.
  EXPECT_EQ(classify_by_name("fmha_cutlassF_bf16_aligned_64x128_rf_sm80"),
            TimeCategory::kAttention);
  EXPECT_EQ(classify_by_name("ncclDevKernel_AllGather_RING_LL(ncclDevComm*, ...)"),
            TimeCategory::kCommunication);
  EXPECT_EQ(classify_by_name("Memcpy DtoH (Device -> Pinned)"), TimeCategory::kCommunication);
  EXPECT_EQ(classify_by_name("void at::native::(anonymous namespace)::multi_tensor_apply_kernel<"
                             "FusedAdamMathFunctor<float, 4>>"),
            TimeCategory::kOptimizer);
  EXPECT_EQ(classify_by_name("aten::silu"), TimeCategory::kElementwise);
  EXPECT_EQ(classify_by_name("aten::sum"), TimeCategory::kElementwise);
}

TEST(StepBreakdown, HostSelfTimesScopesAndBackwardNodes) {
  // One step of 100 us: a GEMM (linear 20 = mm 15 + 5 of its own), attention's scope whose bmm
  // (seq 4) counts as attention, its backward node later (seq 4 again: attention), an optimizer
  // scope with elementwise work inside, a copy outside any scope, 14 us in no operator (idle).
  const std::vector<TraceEvent> events = {
      host("lctrain::step", 0, 100),
      host("aten::linear", 1, 20),
      host("aten::mm", 3, 15),
      host("lctrain::attention", 25, 20),
      host("aten::bmm", 26, 12, 4),
      host("aten::softmax", 39, 5, 5),
      host("autograd::engine::evaluate_function: BmmBackward0", 50, 10, 4),
      host("aten::bmm", 51, 8),
      host("autograd::engine::evaluate_function: MmBackward0", 61, 6, 9),
      host("lctrain::optimizer", 70, 15),
      host("aten::addcdiv_", 71, 10),
      host("aten::copy_", 85, 1),
      // Outside the step: not counted.
      host("aten::mm", 200, 50),
  };
  const StepBreakdown breakdown = break_down(events);
  EXPECT_EQ(breakdown.timeline, "host");
  EXPECT_EQ(breakdown.steps, 1);
  EXPECT_DOUBLE_EQ(breakdown.wall_us, 100);
  EXPECT_DOUBLE_EQ(ms(breakdown, TimeCategory::kGemm), 15);
  EXPECT_DOUBLE_EQ(ms(breakdown, TimeCategory::kAttention), 20 + 10);
  EXPECT_DOUBLE_EQ(ms(breakdown, TimeCategory::kOptimizer), 15);
  // linear's own 5, MmBackward's node 6, the copy 1.
  EXPECT_DOUBLE_EQ(ms(breakdown, TimeCategory::kElementwise), 5 + 6 + 1);
  EXPECT_DOUBLE_EQ(ms(breakdown, TimeCategory::kIdle), 100 - 15 - 30 - 15 - 12);
  double total = 0;
  for (double us : breakdown.category_us) total += us;
  EXPECT_DOUBLE_EQ(total, breakdown.wall_us);
}

TEST(StepBreakdown, HostTimeBetweenStepsIsIdle) {
  const std::vector<TraceEvent> events = {host("lctrain::step", 0, 10), host("aten::mm", 0, 10),
                                          host("lctrain::step", 15, 10), host("aten::mm", 15, 10)};
  const StepBreakdown breakdown = break_down(events);
  EXPECT_EQ(breakdown.steps, 2);
  EXPECT_DOUBLE_EQ(breakdown.wall_us, 25);
  EXPECT_DOUBLE_EQ(ms(breakdown, TimeCategory::kGemm), 20);
  EXPECT_DOUBLE_EQ(ms(breakdown, TimeCategory::kIdle), 5);
}

TEST(StepBreakdown, DeviceKernelsByScopeOrNameIdleAndOverlap) {
  // The host step ends at 50 but its kernels run until 80; kernels launched under the
  // optimizer's scope (projected onto the device) count as optimizer whatever their names.
  std::vector<TraceEvent> events = {
      host("lctrain::step", 0, 50),
      host("aten::mm", 1, 2),  // host side: ignored once there is a device timeline
      kernel("sm80_xmma_gemm_bf16", 10, 20),
      kernel("flash_fwd_kernel", 30, 10),
      kernel("ncclDevKernel_AllGather", 35, 10, 2),  // beside the attention kernel: 5 overlap
      kernel("vectorized_elementwise_kernel<mul>", 60, 10),
      kernel("vectorized_elementwise_kernel<addcdiv>", 70, 10),
      kernel("before the step", -20, 10),  // before the first step: outside
  };
  events.push_back({"lctrain::optimizer", TraceEventKind::kDeviceAnnotation, 1, 69, 12, -1});
  const StepBreakdown breakdown = break_down(events);
  EXPECT_EQ(breakdown.timeline, "device");
  EXPECT_DOUBLE_EQ(breakdown.wall_us, 80);
  EXPECT_DOUBLE_EQ(ms(breakdown, TimeCategory::kGemm), 20);
  EXPECT_DOUBLE_EQ(ms(breakdown, TimeCategory::kAttention), 10);
  EXPECT_DOUBLE_EQ(ms(breakdown, TimeCategory::kCommunication), 10);
  EXPECT_DOUBLE_EQ(ms(breakdown, TimeCategory::kElementwise), 10);
  EXPECT_DOUBLE_EQ(ms(breakdown, TimeCategory::kOptimizer), 10);
  // Busy 10-45 and 60-80 = 55 of 80.
  EXPECT_DOUBLE_EQ(ms(breakdown, TimeCategory::kIdle), 25);
  EXPECT_DOUBLE_EQ(breakdown.overlap_us, 5);
  EXPECT_NE(format_breakdown(breakdown).find("beside other kernels"), std::string::npos);
}

TEST(StepBreakdown, NoStepScopeIsAnError) {
  EXPECT_THROW(break_down({host("aten::mm", 0, 1)}), Error);
  EXPECT_THROW(break_down({}), Error);
}

TEST(ChromeTrace, RoundTripAndTorchProfilerExports) {
  const testing::ScratchDir scratch;
  const std::vector<TraceEvent> events = {host("lctrain::step", 0, 10),
                                          host("aten::bmm", 1, 2.5, 3), kernel("gemm", 2, 3, 7)};
  write_chrome_trace(scratch / "trace.json", events);
  const auto back = read_chrome_trace(scratch / "trace.json");
  ASSERT_EQ(back.size(), events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(back[i].name, events[i].name);
    EXPECT_EQ(back[i].kind, events[i].kind);
    EXPECT_EQ(back[i].thread, events[i].thread);
    EXPECT_DOUBLE_EQ(back[i].start_us, events[i].start_us);
    EXPECT_DOUBLE_EQ(back[i].duration_us, events[i].duration_us);
    EXPECT_EQ(back[i].sequence, events[i].sequence);
  }
  // torch.profiler's export: string thread ids, other phases, GPU annotations, memcpy events.
  testing::write_text(scratch / "torch.json", R"({"schemaVersion": 1, "traceEvents": [
    {"ph": "X", "cat": "user_annotation", "name": "lctrain::step", "pid": 9, "tid": 9,
     "ts": 100.5, "dur": 50},
    {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 9, "tid": 9, "ts": 101, "dur": 2,
     "args": {"Sequence number": 12}},
    {"ph": "X", "cat": "kernel", "name": "nvjet_gemm", "pid": 0, "tid": "stream 7", "ts": 110,
     "dur": 20},
    {"ph": "X", "cat": "gpu_memcpy", "name": "Memcpy DtoH", "pid": 0, "tid": "stream 7",
     "ts": 131, "dur": 1},
    {"ph": "X", "cat": "gpu_user_annotation", "name": "lctrain::optimizer", "pid": 0,
     "tid": "stream 7", "ts": 140, "dur": 5},
    {"ph": "f", "cat": "ac2g", "name": "flow", "id": 3, "ts": 101},
    {"ph": "M", "name": "process_name", "pid": 0, "args": {"name": "GPU 0"}}]})");
  const auto torch_events = read_chrome_trace(scratch / "torch.json");
  ASSERT_EQ(torch_events.size(), 5u);
  EXPECT_EQ(torch_events[1].sequence, 12);
  EXPECT_EQ(torch_events[2].kind, TraceEventKind::kDevice);
  EXPECT_EQ(torch_events[3].kind, TraceEventKind::kDevice);
  EXPECT_EQ(torch_events[4].kind, TraceEventKind::kDeviceAnnotation);
  const StepBreakdown breakdown = break_down(torch_events);
  EXPECT_DOUBLE_EQ(ms(breakdown, TimeCategory::kGemm), 20);
  EXPECT_DOUBLE_EQ(ms(breakdown, TimeCategory::kCommunication), 1);

  testing::write_text(scratch / "not-a-trace.json", "{\"events\": []}");
  EXPECT_THROW(read_chrome_trace(scratch / "not-a-trace.json"), Error);
  testing::write_text(scratch / "broken.json", "{\"traceEvents\": [");
  EXPECT_THROW(read_chrome_trace(scratch / "broken.json"), Error);
  EXPECT_THROW(read_chrome_trace(scratch / "absent.json"), Error);
}

}  // namespace
}  // namespace lctrain
