// Few-row matrix-vector products for Dia's decoding steps on x86 CPUs.
//
// A decoding step multiplies two activation rows (the guidance pair) by every projection weight,
// so its speed is how fast the weights stream from memory. PyTorch's bfloat16 GEMM on CPUs
// without native bf16 dot products converts in a slow, compute-bound path (about half the memory
// bandwidth here), and it has no weight-only int8 kernel that keeps up with memory either. These
// kernels widen each weight to float32 in registers (bf16: a 16-bit shift; int8: sign extension
// and conversion) and accumulate in float32 with FMA, so they run at memory speed.
//
//   dia_native::gemv_bf16(x, w)          x (R, K) float32, w (N, K) bfloat16        -> (R, N) float32
//   dia_native::gemv_int8(x, w, scales)  x (R, K) float32, w (N, K) int8, scales (N) -> (R, N) float32
//   dia_native::isa()                    "avx512", "avx2" or "scalar" (portable loop: callers prefer PyTorch)
//
// Work is split over output rows with at::parallel_for (PyTorch's own thread pool).

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define DIA_X86 1
#include <immintrin.h>
#endif

namespace {

constexpr int64_t kRowsPerBlock = 4;  // weight rows walked together: 4 streams, 8 accumulators for R=2

inline float bf16_to_float(uint16_t v) {
  uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Portable reference used for tails and for checking the vector paths in tests.
template <typename W>
inline float widen(W v);
template <>
inline float widen<uint16_t>(uint16_t v) { return bf16_to_float(v); }
template <>
inline float widen<int8_t>(int8_t v) { return static_cast<float>(v); }

template <typename W>
void dot_rows_scalar(const float* x, int64_t rows, int64_t K, const W* w, int64_t n0, int64_t n1,
                     float* out, int64_t N, int64_t k0) {
  for (int64_t n = n0; n < n1; ++n) {
    const W* wr = w + n * K;
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = x + r * K;
      float acc = 0.f;
      for (int64_t k = k0; k < K; ++k) acc += widen<W>(wr[k]) * xr[k];
      out[r * N + n] += acc;
    }
  }
}

// One 64-byte cache line of a weight row holds this many weights.
template <typename W>
constexpr int64_t kLine = 64 / static_cast<int64_t>(sizeof(W));

#ifdef DIA_X86

namespace avx512 {
#define DIA_TARGET __attribute__((target("avx512f,avx512bw")))
struct Vec {
  using T = __m512;
  static constexpr int64_t kLanes = 16;
  DIA_TARGET static inline T zero() { return _mm512_setzero_ps(); }
  DIA_TARGET static inline T load(const float* p) { return _mm512_loadu_ps(p); }
  DIA_TARGET static inline T widen(const uint16_t* p) {  // bf16 -> f32 is a 16-bit shift
    __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
  }
  DIA_TARGET static inline T widen(const int8_t* p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  DIA_TARGET static inline T fma(T a, T b, T acc) { return _mm512_fmadd_ps(a, b, acc); }
  DIA_TARGET static inline float sum(T v) { return _mm512_reduce_add_ps(v); }
};
#include "gemv_block.inc"
#undef DIA_TARGET
}  // namespace avx512

namespace avx2 {
#define DIA_TARGET __attribute__((target("avx2,fma")))
struct Vec {
  using T = __m256;
  static constexpr int64_t kLanes = 8;
  DIA_TARGET static inline T zero() { return _mm256_setzero_ps(); }
  DIA_TARGET static inline T load(const float* p) { return _mm256_loadu_ps(p); }
  DIA_TARGET static inline T widen(const uint16_t* p) {
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
  }
  DIA_TARGET static inline T widen(const int8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  DIA_TARGET static inline T fma(T a, T b, T acc) { return _mm256_fmadd_ps(a, b, acc); }
  DIA_TARGET static inline float sum(T v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};
#include "gemv_block.inc"
#undef DIA_TARGET
}  // namespace avx2

enum class Isa { kNone, kAvx2, kAvx512 };

// DIA_NATIVE_ISA=avx2|scalar caps the path taken (tests run every path on one machine).
Isa detect_isa() {
  const char* cap = std::getenv("DIA_NATIVE_ISA");
  if (cap != nullptr && std::strcmp(cap, "scalar") == 0) return Isa::kNone;
  const bool allow512 = cap == nullptr || std::strcmp(cap, "avx512") == 0;
  __builtin_cpu_init();
  if (allow512 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) return Isa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
  return Isa::kNone;
}

#else

enum class Isa { kNone };
Isa detect_isa() { return Isa::kNone; }

#endif

Isa isa() {
  static const Isa value = detect_isa();
  return value;
}

template <typename W>
void run_block(const float* x, int64_t rows, int64_t K, const W* w, int64_t n0, int64_t n1, float* out,
               int64_t N) {
#ifdef DIA_X86
  if (isa() == Isa::kAvx512) return avx512::block<W>(x, rows, K, w, n0, n1, out, N);
  if (isa() == Isa::kAvx2) return avx2::block<W>(x, rows, K, w, n0, n1, out, N);
#endif
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t n = n0; n < n1; ++n) out[i * N + n] = 0.f;
  dot_rows_scalar<W>(x, rows, K, w, n0, n1, out, N, 0);
}

at::Tensor check_x(const at::Tensor& x, const at::Tensor& w) {
  TORCH_CHECK(x.device().is_cpu() && w.device().is_cpu(), "dia_native: CPU tensors only");
  TORCH_CHECK(x.dim() == 2 && w.dim() == 2, "dia_native: x must be (R, K) and w (N, K)");
  TORCH_CHECK(x.size(1) == w.size(1), "dia_native: x has ", x.size(1), " columns, w has ", w.size(1));
  TORCH_CHECK(w.is_contiguous(), "dia_native: w must be contiguous");
  return x.to(at::kFloat).contiguous();
}

template <typename W>
at::Tensor gemv(const at::Tensor& x32, const at::Tensor& w, const W* wp) {
  const int64_t rows = x32.size(0), K = x32.size(1), N = w.size(0);
  at::Tensor out = at::empty({rows, N}, x32.options());
  const float* xp = x32.data_ptr<float>();
  float* op = out.data_ptr<float>();
  // grain: at least 64 output rows per task, so small projections are not split into tiny pieces
  const int64_t blocks = (N + kRowsPerBlock - 1) / kRowsPerBlock;
  at::parallel_for(0, blocks, 16, [&](int64_t b0, int64_t b1) {
    run_block<W>(xp, rows, K, wp, b0 * kRowsPerBlock, std::min(N, b1 * kRowsPerBlock), op, N);
  });
  return out;
}

at::Tensor gemv_bf16(const at::Tensor& x, const at::Tensor& w) {
  TORCH_CHECK(w.scalar_type() == at::kBFloat16, "dia_native::gemv_bf16: w must be bfloat16");
  at::Tensor x32 = check_x(x, w);
  return gemv<uint16_t>(x32, w, reinterpret_cast<const uint16_t*>(w.data_ptr<at::BFloat16>()));
}

at::Tensor gemv_int8(const at::Tensor& x, const at::Tensor& w, const at::Tensor& scales) {
  TORCH_CHECK(w.scalar_type() == at::kChar, "dia_native::gemv_int8: w must be int8");
  TORCH_CHECK(scales.dim() == 1 && scales.size(0) == w.size(0), "dia_native::gemv_int8: one scale per row of w");
  at::Tensor x32 = check_x(x, w);
  at::Tensor out = gemv<int8_t>(x32, w, w.data_ptr<int8_t>());
  return out.mul_(scales.to(at::kFloat));
}

std::string isa_name() {
  switch (isa()) {
#ifdef DIA_X86
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
#endif
    default: return "scalar";
  }
}

}  // namespace

TORCH_LIBRARY(dia_native, m) {
  m.def("gemv_bf16(Tensor x, Tensor w) -> Tensor");
  m.def("gemv_int8(Tensor x, Tensor w, Tensor scales) -> Tensor");
  m.def("isa() -> str", &isa_name);
}

TORCH_LIBRARY_IMPL(dia_native, CPU, m) {
  m.impl("gemv_bf16", &gemv_bf16);
  m.impl("gemv_int8", &gemv_int8);
}
