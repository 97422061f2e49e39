// Native CPU kernels for Dia's decoding steps on x86 CPUs.
//
// A decoding step multiplies two activation rows (the guidance pair) by every projection weight,
// so its speed is how fast the weights stream from memory. PyTorch's bfloat16 GEMM on CPUs
// without native bf16 dot products converts in a slow, compute-bound path (about half the memory
// bandwidth here), and it has no weight-only int8 kernel that keeps up with memory either. The bf16
// kernel widens each weight to float32 in registers (a 16-bit shift) and accumulates in float32 with
// FMA, so it runs at memory speed. The same widening lets a step attend over a bfloat16 key/value
// cache (half the bytes of float32) where PyTorch's bf16 attention is several times slower than its
// float32 one. The int8 and int4 kernels meet integer activation codes in integer dot products
// (see "int8" and "int4" below), and store whole blocks of 4 weight rows interleaved, so that a block
// is one sequential stream.
//
//   dia_native::gemv_bf16(x, w)          x (R, K) float32, w (N, K) bfloat16        -> (R, N) float32
//   dia_native::gemv_int8(x, w, scales)  x (R, K) float32, w (N, K) int8 (block_int8's order), scales (N)
//                                        -> (R, N) float32
//   dia_native::block_int8(q)            plain (N, K) int8 weights -> the blocked order gemv_int8 reads
//   dia_native::attend_bf16(q, k, v, mask, scale)  single-query attention over a bf16 K/V cache
//   dia_native::quantize_int8(w)        per-row symmetric int8 weights and float32 scales, one pass
//   dia_native::gemv_int4(x, w, scales, offsets)  group-wise int4 weights (see "int4" below) -> (R, N) float32
//   dia_native::quantize_int4(w)        int4 weights, bf16 scales and offsets per group of 128, one pass
//   dia_native::rms_norm(x, w, eps)      RMSNorm of a few float32 rows in one pass
//   dia_native::stream_sum(buf)          float32 sum of a large buffer: the read-bandwidth probe of the bench
//   dia_native::isa()                    "avx512_vnni", "avx512", "avx2" or "scalar" (portable loop: callers
//                                        prefer PyTorch)
//
// int4: each row of w (N, K) is cut into groups of kInt4Group = 128 weights (K padded with zeros
// to whole groups). A group stores w ~ q * scale + offset, q in 0..15 (two per byte, 64 bytes per
// group), scale = bf16((max - min) / 15), offset = bf16(min). Within a group, byte j holds weight j in
// its low nibble and weight j + 64 in its high nibble, so one AND (or a shift and an AND) gives 64
// (AVX-512) or 32 (AVX2) weights as unsigned bytes. ``w`` is stored as uint8 (N, groups * 64), scales
// and offsets as bfloat16 (N, groups); whole blocks of kRowsPerBlock rows are stored group by group (see
// blocked_offset), which streams from memory about twice as fast as four rows 1 KiB apart. The
// activations enter as int8 codes per group of 128
// (x ~ code * max|x| / 127: error <= 1/254 of the group's largest value, several times below the
// weights' rounding of 1/30 of a group's range), so the products are exact integer multiply-adds of byte
// quads (VNNI's vpdpbusd, or vpmaddubsw + vpmaddwd): four times the products per instruction of
// widening nibbles to float. llama.cpp's Q4 x Q8 dot products work the same way.
//
// Work is split over output rows / attention heads with at::parallel_for (PyTorch's thread pool).

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define DIA_X86 1
#include <immintrin.h>
#endif

namespace {

constexpr int64_t kRowsPerBlock = 4;  // weight rows walked together: 4 streams, 8 accumulators for R=2
constexpr int64_t kInt4Group = 128;   // int4 weights per scale/offset pair (64 bytes: one cache line)
constexpr int64_t kLineBytes = 64;    // bytes of a weight row stored together in an int8/int4 block (blocked_offset)
constexpr int64_t kPrefetchBlocks = 2;  // int8/int4 blocks read ahead (measured on int4: 1 and 4 are slower)

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

// Ask for the cache lines of ``count`` elements from ``p`` ahead of use (keys/values stream from memory).
template <typename KV>
inline void prefetch_rows(const KV* p, int64_t count) {
#ifdef DIA_X86
  const char* bytes = reinterpret_cast<const char*>(p);
  for (int64_t b = 0; b < count * static_cast<int64_t>(sizeof(KV)); b += 64) _mm_prefetch(bytes + b, _MM_HINT_T0);
#else
  (void)p;
  (void)count;
#endif
}

// Portable single-query attention (see attend_task in kernels_simd.inc, which falls back to it).
template <typename KV>
void attend_scalar(const float* q, int64_t g, int64_t d, const KV* k, const KV* v, int64_t L, const uint8_t* mask,
                   float scale, float* scores, float* out) {
  for (int64_t gi = 0; gi < g; ++gi) {
    const float* qg = q + gi * d;
    float* s = scores + gi * L;
    float top = -std::numeric_limits<float>::infinity();
    for (int64_t l = 0; l < L; ++l) {
      float acc = 0.f;
      for (int64_t j = 0; j < d; ++j) acc += widen<KV>(k[l * d + j]) * qg[j];
      s[l] = (mask != nullptr && mask[l] == 0) ? -std::numeric_limits<float>::infinity() : acc * scale;
      top = std::max(top, s[l]);
    }
    float* o = out + gi * d;
    for (int64_t j = 0; j < d; ++j) o[j] = 0.f;
    if (top == -std::numeric_limits<float>::infinity()) continue;
    float total = 0.f;
    for (int64_t l = 0; l < L; ++l) total += (s[l] = std::exp(s[l] - top));
    for (int64_t l = 0; l < L; ++l) {
      const float p = s[l] / total;
      for (int64_t j = 0; j < d; ++j) o[j] += p * widen<KV>(v[l * d + j]);
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
  using I = __m512i;
  static constexpr int64_t kLanes = 16;
  static constexpr int64_t kBytes = 64;
  static constexpr int64_t kWords = 32;
  DIA_TARGET static inline I izero() { return _mm512_setzero_si512(); }
  DIA_TARGET static inline I load_words(const void* p) { return _mm512_loadu_si512(p); }
  DIA_TARGET static inline I widen16(const int8_t* p) {  // 32 int8 -> int16 lanes
    return _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  DIA_TARGET static inline I dot16(I acc, I a, I b) { return _mm512_add_epi32(acc, _mm512_madd_epi16(a, b)); }
  DIA_TARGET static inline I low_nibbles(I v) { return _mm512_and_si512(v, _mm512_set1_epi8(15)); }
  DIA_TARGET static inline I high_nibbles(I v) { return _mm512_and_si512(_mm512_srli_epi16(v, 4), _mm512_set1_epi8(15)); }
  // acc + the sums of four adjacent products of unsigned bytes u and signed bytes s, per int32 lane
  DIA_TARGET static inline I dot_u8s8(I acc, I u, I s) {
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1)));
  }
  DIA_TARGET static inline T to_float(I v) { return _mm512_cvtepi32_ps(v); }
  DIA_TARGET static inline T abs(T v) { return _mm512_abs_ps(v); }
  DIA_TARGET static inline T max(T a, T b) { return _mm512_max_ps(a, b); }
  DIA_TARGET static inline float hmax(T v) { return _mm512_reduce_max_ps(v); }
  // int32 codes round(x * inv) of kLanes floats (in range: |x * inv| <= the code type's largest)
  DIA_TARGET static inline I codes(const float* x, float inv) {
    return _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x), _mm512_set1_ps(inv)));
  }
  DIA_TARGET static inline void store_codes(int16_t* q, I c) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), _mm512_cvtepi32_epi16(c));
  }
  DIA_TARGET static inline void store_codes(int8_t* q, I c) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q), _mm512_cvtepi32_epi8(c));
  }
  DIA_TARGET static inline I iadd(I a, I b) { return _mm512_add_epi32(a, b); }
  DIA_TARGET static inline int32_t isum(I v) { return _mm512_reduce_add_epi32(v); }
  DIA_TARGET static inline T zero() { return _mm512_setzero_ps(); }
  DIA_TARGET static inline T load(const float* p) { return _mm512_loadu_ps(p); }
  DIA_TARGET static inline void store(float* p, T v) { _mm512_storeu_ps(p, v); }
  DIA_TARGET static inline T set1(float v) { return _mm512_set1_ps(v); }
  DIA_TARGET static inline T widen(const uint16_t* p) {  // bf16 -> f32 is a 16-bit shift
    __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
  }
  DIA_TARGET static inline T fma(T a, T b, T acc) { return _mm512_fmadd_ps(a, b, acc); }
  DIA_TARGET static inline T add(T a, T b) { return _mm512_add_ps(a, b); }
  DIA_TARGET static inline T sub(T a, T b) { return _mm512_sub_ps(a, b); }
  DIA_TARGET static inline T mul(T a, T b) { return _mm512_mul_ps(a, b); }
  DIA_TARGET static inline float sum(T v) { return _mm512_reduce_add_ps(v); }
  // e^x for x <= 0 (softmax): range reduction by ln 2, degree-6 polynomial (~1 ulp), exact 0 below -87.3
  DIA_TARGET static inline T exp(T x) {
    const T lo = _mm512_set1_ps(-87.3f);
    const __mmask16 keep = _mm512_cmp_ps_mask(x, lo, _CMP_GE_OQ);
    x = _mm512_max_ps(x, lo);
    const T n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    T r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
    T p = _mm512_set1_ps(1.f / 720);
    for (float c : {1.f / 120, 1.f / 24, 1.f / 6, 0.5f, 1.f, 1.f}) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    return _mm512_maskz_mov_ps(keep, _mm512_scalef_ps(p, n));
  }
};
#include "kernels_simd.inc"
#undef DIA_TARGET
}  // namespace avx512

namespace avx2 {
#define DIA_TARGET __attribute__((target("avx2,fma")))
struct Vec {
  using T = __m256;
  using I = __m256i;
  static constexpr int64_t kLanes = 8;
  static constexpr int64_t kBytes = 32;
  static constexpr int64_t kWords = 16;
  DIA_TARGET static inline I izero() { return _mm256_setzero_si256(); }
  DIA_TARGET static inline I load_words(const void* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  DIA_TARGET static inline I widen16(const int8_t* p) {  // 16 int8 -> int16 lanes
    return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  DIA_TARGET static inline I dot16(I acc, I a, I b) { return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b)); }
  DIA_TARGET static inline I low_nibbles(I v) { return _mm256_and_si256(v, _mm256_set1_epi8(15)); }
  DIA_TARGET static inline I high_nibbles(I v) { return _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(15)); }
  DIA_TARGET static inline I dot_u8s8(I acc, I u, I s) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
  }
  DIA_TARGET static inline T to_float(I v) { return _mm256_cvtepi32_ps(v); }
  DIA_TARGET static inline T abs(T v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.f), v); }
  DIA_TARGET static inline T max(T a, T b) { return _mm256_max_ps(a, b); }
  DIA_TARGET static inline float hmax(T v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
  }
  DIA_TARGET static inline I codes(const float* x, float inv) {
    return _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), _mm256_set1_ps(inv)));
  }
  DIA_TARGET static inline __m128i pack16(I c) {  // eight int32 -> eight int16 (values in range)
    return _mm_packs_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
  }
  DIA_TARGET static inline void store_codes(int16_t* q, I c) { _mm_storeu_si128(reinterpret_cast<__m128i*>(q), pack16(c)); }
  DIA_TARGET static inline void store_codes(int8_t* q, I c) {
    const __m128i w = pack16(c);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(q), _mm_packs_epi16(w, w));
  }
  DIA_TARGET static inline I iadd(I a, I b) { return _mm256_add_epi32(a, b); }
  DIA_TARGET static inline int32_t isum(I v) {
    __m128i t = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4E));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xB1));
    return _mm_cvtsi128_si32(t);
  }
  DIA_TARGET static inline T zero() { return _mm256_setzero_ps(); }
  DIA_TARGET static inline T load(const float* p) { return _mm256_loadu_ps(p); }
  DIA_TARGET static inline void store(float* p, T v) { _mm256_storeu_ps(p, v); }
  DIA_TARGET static inline T set1(float v) { return _mm256_set1_ps(v); }
  DIA_TARGET static inline T widen(const uint16_t* p) {
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
  }
  DIA_TARGET static inline T fma(T a, T b, T acc) { return _mm256_fmadd_ps(a, b, acc); }
  DIA_TARGET static inline T add(T a, T b) { return _mm256_add_ps(a, b); }
  DIA_TARGET static inline T sub(T a, T b) { return _mm256_sub_ps(a, b); }
  DIA_TARGET static inline T mul(T a, T b) { return _mm256_mul_ps(a, b); }
  DIA_TARGET static inline float sum(T v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  DIA_TARGET static inline T exp(T x) {  // as avx512::Vec::exp, with 2^n built in the exponent bits
    const T lo = _mm256_set1_ps(-87.3f);
    const T keep = _mm256_cmp_ps(x, lo, _CMP_GE_OQ);
    x = _mm256_max_ps(x, lo);
    const T n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    T r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187e-06f), r);
    T p = _mm256_set1_ps(1.f / 720);
    for (float c : {1.f / 120, 1.f / 24, 1.f / 6, 0.5f, 1.f, 1.f}) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(keep, _mm256_mul_ps(p, _mm256_castsi256_ps(bits)));
  }
};
#include "kernels_simd.inc"
#undef DIA_TARGET
}  // namespace avx2

// AVX-512 with VNNI (Intel Cascade Lake+, AMD Zen 4+): the int4 products' multiply-add of byte
// quads is one instruction (vpdpbusd) instead of three, the int8 products' of 16-bit pairs (vpdpwssd)
// one instead of two. Everything else is avx512's code (the other
// kernels compiled here too are never called: run_block and run_attend take avx512's).
namespace avx512vnni {
#define DIA_TARGET __attribute__((target("avx512f,avx512bw,avx512vnni")))
struct Vec : avx512::Vec {
  DIA_TARGET static inline I dot_u8s8(I acc, I u, I s) { return _mm512_dpbusd_epi32(acc, u, s); }
  DIA_TARGET static inline I dot16(I acc, I a, I b) { return _mm512_dpwssd_epi32(acc, a, b); }
};
#include "kernels_simd.inc"
#undef DIA_TARGET
}  // namespace avx512vnni

enum class Isa { kNone, kAvx2, kAvx512, kAvx512Vnni };

// DIA_NATIVE_ISA=avx512|avx2|scalar caps the path taken (tests run every path on one machine).
Isa detect_isa() {
  const char* cap = std::getenv("DIA_NATIVE_ISA");
  if (cap != nullptr && cap[0] == '\0') cap = nullptr;  // set but empty: no cap
  if (cap != nullptr && std::strcmp(cap, "scalar") == 0) return Isa::kNone;
  const bool allow_vnni = cap == nullptr || std::strcmp(cap, "avx512_vnni") == 0;
  const bool allow512 = allow_vnni || std::strcmp(cap, "avx512") == 0;
  __builtin_cpu_init();
  const bool has512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  if (allow_vnni && has512 && __builtin_cpu_supports("avx512vnni")) return Isa::kAvx512Vnni;
  if (allow512 && has512) return Isa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
  return Isa::kNone;
}

#else

enum class Isa { kNone, kAvx2, kAvx512, kAvx512Vnni };
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
  if (isa() == Isa::kAvx512 || isa() == Isa::kAvx512Vnni) return avx512::block<W>(x, rows, K, w, n0, n1, out, N);
  if (isa() == Isa::kAvx2) return avx2::block<W>(x, rows, K, w, n0, n1, out, N);
#endif
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t n = n0; n < n1; ++n) out[i * N + n] = 0.f;
  dot_rows_scalar<W>(x, rows, K, w, n0, n1, out, N, 0);
}

template <typename KV>
void run_attend(const float* q, int64_t g, int64_t d, const KV* k, const KV* v, int64_t L, const uint8_t* mask,
                float scale, float* scores, float* out) {
#ifdef DIA_X86
  if (isa() == Isa::kAvx512 || isa() == Isa::kAvx512Vnni)
    return avx512::attend_task<KV>(q, g, d, k, v, L, mask, scale, scores, out);
  if (isa() == Isa::kAvx2) return avx2::attend_task<KV>(q, g, d, k, v, L, mask, scale, scores, out);
#endif
  attend_scalar<KV>(q, g, d, k, v, L, mask, scale, scores, out);
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
    const int64_t n0 = b0 * kRowsPerBlock, n1 = std::min(N, b1 * kRowsPerBlock);
    run_block<W>(xp, rows, K, wp, n0, n1, op, N);
  });
  return out;
}

at::Tensor gemv_bf16(const at::Tensor& x, const at::Tensor& w) {
  TORCH_CHECK(w.scalar_type() == at::kBFloat16, "dia_native::gemv_bf16: w must be bfloat16");
  at::Tensor x32 = check_x(x, w);
  return gemv<uint16_t>(x32, w, reinterpret_cast<const uint16_t*>(w.data_ptr<at::BFloat16>()));
}

// Single-query attention over a bf16 key/value cache: q (R, Hq, 1, d) float32, k/v (R, Hkv, L, d)
// bfloat16 with contiguous rows (any row/head strides: a slice of a longer cache is fine),
// mask (R, L) bool or None -> (R, Hq, 1, d) float32. Hq must be a multiple of Hkv.
at::Tensor attend_bf16(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                       const c10::optional<at::Tensor>& mask, double scale) {
  TORCH_CHECK(q.device().is_cpu() && k.device().is_cpu() && v.device().is_cpu(), "dia_native: CPU tensors only");
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4 && q.size(2) == 1,
              "dia_native::attend_bf16: q must be (R, Hq, 1, d), k and v (R, Hkv, L, d)");
  TORCH_CHECK(k.scalar_type() == at::kBFloat16 && v.scalar_type() == at::kBFloat16,
              "dia_native::attend_bf16: k and v must be bfloat16");
  TORCH_CHECK(k.sizes() == v.sizes(), "dia_native::attend_bf16: k and v differ in shape");
  const int64_t R = q.size(0), Hq = q.size(1), d = q.size(3), Hkv = k.size(1), L = k.size(2);
  TORCH_CHECK(k.size(0) == R && k.size(3) == d && Hkv > 0 && Hq % Hkv == 0,
              "dia_native::attend_bf16: q and k/v shapes do not match");
  TORCH_CHECK(k.stride(3) == 1 && k.stride(2) == d && v.stride(3) == 1 && v.stride(2) == d &&
                  k.stride(1) == v.stride(1) && k.stride(0) == v.stride(0),
              "dia_native::attend_bf16: k/v rows must be contiguous with the same layout");
  at::Tensor m8;
  if (mask.has_value()) {
    TORCH_CHECK(mask->dim() == 2 && mask->size(0) == R && mask->size(1) == L, "dia_native::attend_bf16: mask must be (R, L)");
    m8 = mask->to(at::kByte).contiguous();
  }
  at::Tensor q32 = q.to(at::kFloat).contiguous();
  at::Tensor out = at::empty({R, Hq, 1, d}, q32.options());
  const int64_t g = Hq / Hkv;
  const float* qp = q32.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const auto* kp = reinterpret_cast<const uint16_t*>(k.data_ptr<at::BFloat16>());
  const auto* vp = reinterpret_cast<const uint16_t*>(v.data_ptr<at::BFloat16>());
  const uint8_t* mp = m8.defined() ? m8.data_ptr<uint8_t>() : nullptr;
  at::parallel_for(0, R * Hkv, 1, [&](int64_t t0, int64_t t1) {
    std::vector<float> scores(static_cast<size_t>(g * L));
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t r = t / Hkv, h = t % Hkv;
      const int64_t kv_off = r * k.stride(0) + h * k.stride(1);
      run_attend<uint16_t>(qp + (r * Hq + h * g) * d, g, d, kp + kv_off, vp + kv_off, L,
                           mp != nullptr ? mp + r * L : nullptr, static_cast<float>(scale), scores.data(),
                           op + (r * Hq + h * g) * d);
    }
  });
  return out;
}

// Per-row symmetric int8 quantisation in one pass (the engine's --quantize int8 at load time):
// scale = max(|w_row|, 1e-12) / 127, q = round-half-even(w / scale) in [-127, 127]. The same float32
// operations as the PyTorch expression in layers.Int8Linear.from_linear, so the results are equal.
std::tuple<at::Tensor, at::Tensor> quantize_int8(const at::Tensor& w) {
  TORCH_CHECK(w.device().is_cpu() && w.dim() == 2, "dia_native::quantize_int8: w must be a 2-D CPU tensor");
  const bool bf16 = w.scalar_type() == at::kBFloat16;
  TORCH_CHECK(bf16 || w.scalar_type() == at::kFloat, "dia_native::quantize_int8: w must be bfloat16 or float32");
  const at::Tensor wc = w.contiguous();
  const int64_t N = w.size(0), K = w.size(1);
  at::Tensor q = at::empty({N, K}, w.options().dtype(at::kChar));
  at::Tensor scales = at::empty({N}, w.options().dtype(at::kFloat));
  const auto* src16 = bf16 ? reinterpret_cast<const uint16_t*>(wc.data_ptr<at::BFloat16>()) : nullptr;
  const float* src32 = bf16 ? nullptr : wc.data_ptr<float>();
  int8_t* qp = q.data_ptr<int8_t>();
  float* sp = scales.data_ptr<float>();
  at::parallel_for(0, N, 64, [&](int64_t n0, int64_t n1) {
    std::vector<float> row(static_cast<size_t>(K));
    for (int64_t n = n0; n < n1; ++n) {
      float top = 0.f;
      for (int64_t k = 0; k < K; ++k) {
        row[k] = bf16 ? bf16_to_float(src16[n * K + k]) : src32[n * K + k];
        top = std::max(top, std::fabs(row[k]));
      }
      const float scale = std::max(top, 1e-12f) / 127.f;
      sp[n] = scale;
      for (int64_t k = 0; k < K; ++k)
        qp[n * K + k] = static_cast<int8_t>(std::min(127.f, std::max(-127.f, std::nearbyint(row[k] / scale))));
    }
  });
  return std::make_tuple(q, scales);
}

// ---------------------------------------------------------------------------------------------- int4

// The int4 products in plain C++ (the "scalar" path), the same integer arithmetic as int4_rows.
template <int NR>
void int4_rows_scalar(const int8_t* x0, const int8_t* x1, const float* step0, const float* step1,
                      const float* sum0, const float* sum1, int64_t groups, const uint8_t* w,
                      const uint16_t* scales, const uint16_t* offsets, int64_t row_stride, int64_t group_stride,
                      float* out0, float* out1) {
  for (int i = 0; i < NR; ++i) {
    const uint8_t* wr = w + i * row_stride;
    float y0 = 0.f, y1 = 0.f, off0 = 0.f, off1 = 0.f;
    for (int64_t g = 0; g < groups; ++g) {
      int32_t a0 = 0, a1 = 0;
      for (int64_t j = 0; j < kInt4Group; ++j) {  // weight j: byte j % 64, low nibble for j < 64
        const uint8_t byte = wr[g * group_stride + j % 64];
        const int32_t q = j < 64 ? (byte & 15) : (byte >> 4);
        a0 += q * x0[g * kInt4Group + j];
        a1 += q * x1[g * kInt4Group + j];
      }
      const float scale = bf16_to_float(scales[i * groups + g]), m = bf16_to_float(offsets[i * groups + g]);
      y0 += static_cast<float>(a0) * (scale * step0[g]);
      y1 += static_cast<float>(a1) * (scale * step1[g]);
      off0 += m * sum0[g];
      off1 += m * sum1[g];
    }
    out0[i] = y0 + off0;
    out1[i] = y1 + off1;
  }
}

template <typename C>
void prepare_group_scalar(const float* x, int64_t count, C* q, float* step, float* sum) {
  constexpr float kMax = static_cast<float>(std::numeric_limits<C>::max());
  float top = 0.f;
  for (int64_t j = 0; j < count; ++j) top = std::max(top, std::fabs(x[j]));
  std::memset(q, 0, kInt4Group * sizeof(C));
  *step = top / kMax;
  *sum = 0.f;
  if (!(top > 0.f)) return;
  const float inv = kMax / top;
  int32_t total = 0;
  for (int64_t j = 0; j < count; ++j) total += (q[j] = static_cast<C>(std::nearbyint(x[j] * inv)));
  *sum = static_cast<float>(total) * *step;
}

uint16_t to_bf16_bits(float v) { return c10::BFloat16(v).x; }  // round to nearest even, as torch

// The activations as the integer kernels read them, once per call: codes per group (rows padded
// with zeros to whole groups), each group's step and its sum (see prepare_group).
template <typename C>
struct GroupCodes {
  std::vector<C> codes;      // (rows, groups * kInt4Group)
  std::vector<float> steps;  // (rows, groups)
  std::vector<float> sums;   // (rows, groups)
};

template <typename C>
GroupCodes<C> prepare_codes(const float* x, int64_t rows, int64_t K, int64_t groups, Isa path) {
  GroupCodes<C> a;
  a.codes.resize(static_cast<size_t>(rows * groups * kInt4Group));
  a.steps.resize(static_cast<size_t>(rows * groups));
  a.sums.resize(static_cast<size_t>(rows * groups));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t count = std::min(kInt4Group, K - g * kInt4Group);
      const float* xg = x + r * K + g * kInt4Group;
      C* q = a.codes.data() + (r * groups + g) * kInt4Group;
      float* step = a.steps.data() + r * groups + g;
      float* sum = a.sums.data() + r * groups + g;
#ifdef DIA_X86
      if (path == Isa::kAvx512 || path == Isa::kAvx512Vnni) {
        avx512::prepare_group<C>(xg, count, q, step, sum);
        continue;
      }
      if (path == Isa::kAvx2) {
        avx2::prepare_group<C>(xg, count, q, step, sum);
        continue;
      }
#endif
      prepare_group_scalar<C>(xg, count, q, step, sum);
    }
  }
  return a;
}

template <int NR>
void int4_dispatch(Isa path, const GroupCodes<int8_t>& a, int64_t groups, int64_t r0, int64_t r1, const uint8_t* w,
                   const uint16_t* sc, const uint16_t* of, int64_t row_stride, int64_t group_stride,
                   const uint8_t* next, float* scratch, float* out0, float* out1) {
  const int8_t* x0 = a.codes.data() + r0 * groups * kInt4Group;
  const int8_t* x1 = a.codes.data() + r1 * groups * kInt4Group;
  const float *st0 = a.steps.data() + r0 * groups, *st1 = a.steps.data() + r1 * groups;
  const float *su0 = a.sums.data() + r0 * groups, *su1 = a.sums.data() + r1 * groups;
#ifdef DIA_X86
  if (path == Isa::kAvx512Vnni)
    return avx512vnni::int4_rows<NR>(x0, x1, st0, st1, su0, su1, groups, w, sc, of, row_stride, group_stride, next,
                                     scratch, out0, out1);
  if (path == Isa::kAvx512)
    return avx512::int4_rows<NR>(x0, x1, st0, st1, su0, su1, groups, w, sc, of, row_stride, group_stride, next,
                                 scratch, out0, out1);
  if (path == Isa::kAvx2)
    return avx2::int4_rows<NR>(x0, x1, st0, st1, su0, su1, groups, w, sc, of, row_stride, group_stride, next,
                               scratch, out0, out1);
#endif
  (void)next;
  (void)scratch;
  int4_rows_scalar<NR>(x0, x1, st0, st1, su0, su1, groups, w, sc, of, row_stride, group_stride, out0, out1);
}

void check_int4(const at::Tensor& w, const at::Tensor& scales, const at::Tensor& offsets) {
  TORCH_CHECK(w.device().is_cpu() && w.dim() == 2 && w.scalar_type() == at::kByte && w.is_contiguous(),
              "dia_native: int4 weights must be a contiguous uint8 (N, groups * 64) CPU tensor");
  TORCH_CHECK(w.size(1) % 64 == 0, "dia_native: int4 weight rows must be whole groups of 64 bytes");
  const int64_t groups = w.size(1) / 64;
  for (const at::Tensor* t : {&scales, &offsets}) {
    TORCH_CHECK(t->scalar_type() == at::kBFloat16 && t->is_contiguous() && t->dim() == 2 && t->size(0) == w.size(0) &&
                    t->size(1) == groups,
                "dia_native: int4 scales and offsets must be contiguous bfloat16 (N, groups)");
  }
}

at::Tensor gemv_int4(const at::Tensor& x, const at::Tensor& w, const at::Tensor& scales, const at::Tensor& offsets) {
  TORCH_CHECK(x.device().is_cpu() && x.dim() == 2, "dia_native::gemv_int4: x must be a (R, K) CPU tensor");
  check_int4(w, scales, offsets);
  const int64_t rows = x.size(0), K = x.size(1), N = w.size(0), groups = w.size(1) / 64, Kp = groups * kInt4Group;
  TORCH_CHECK(K <= Kp && K > Kp - kInt4Group, "dia_native::gemv_int4: x has ", K, " columns, w has ", Kp,
              " (whole groups of ", kInt4Group, ")");
  const at::Tensor x32 = x.to(at::kFloat).contiguous();
  const Isa path = isa();
  const GroupCodes<int8_t> a = prepare_codes<int8_t>(x32.data_ptr<float>(), rows, K, groups, path);
  at::Tensor out = at::empty({rows, N}, x32.options());
  float* op = out.data_ptr<float>();
  const uint8_t* wp = w.data_ptr<uint8_t>();
  const auto* sp = reinterpret_cast<const uint16_t*>(scales.data_ptr<at::BFloat16>());
  const auto* fp = reinterpret_cast<const uint16_t*>(offsets.data_ptr<at::BFloat16>());
  const int64_t row_bytes = groups * 64;
  const int64_t blocks = (N + kRowsPerBlock - 1) / kRowsPerBlock;
  at::parallel_for(0, blocks, 16, [&](int64_t b0, int64_t b1) {
    const int64_t n0 = b0 * kRowsPerBlock, n1 = std::min(N, b1 * kRowsPerBlock);
    std::vector<float> scratch(static_cast<size_t>(kRowsPerBlock * 2 * groups));
    for (int64_t r0 = 0; r0 < rows; r0 += 2) {
      const int64_t r1 = std::min(r0 + 1, rows - 1);  // an odd last row is computed twice, written once
      int64_t n = n0;
      for (; n + kRowsPerBlock <= n1; n += kRowsPerBlock) {  // a block: row i's group g at (g * 4 + i) * 64 bytes
        const uint8_t* next = n + (kPrefetchBlocks + 1) * kRowsPerBlock <= n1
                                  ? wp + (n + kPrefetchBlocks * kRowsPerBlock) * row_bytes
                                  : nullptr;
        int4_dispatch<kRowsPerBlock>(path, a, groups, r0, r1, wp + n * row_bytes, sp + n * groups, fp + n * groups,
                                     kLineBytes, kLineBytes * kRowsPerBlock, next, scratch.data(), op + r0 * N + n,
                                     op + r1 * N + n);
      }
      for (; n < n1; ++n)  // the rows after the last whole block, stored one after another
        int4_dispatch<1>(path, a, groups, r0, r1, wp + n * row_bytes, sp + n * groups, fp + n * groups, row_bytes, 64,
                         nullptr, scratch.data(), op + r0 * N + n, op + r1 * N + n);
    }
  });
  return out;
}

// ---------------------------------------------------------------------------------------------- int8

// The int8 products in plain C++ (the "scalar" path), the same arithmetic as int8_rows.
template <int NR>
void int8_rows_scalar(const int16_t* x0, const int16_t* x1, const float* step0, const float* step1, int64_t K,
                      const int8_t* w, int64_t row_stride, int64_t chunk_stride, int64_t tail_stride, float* out0,
                      float* out1) {
  const int64_t chunks = K / kLineBytes, kv = chunks * kLineBytes;
  for (int i = 0; i < NR; ++i) {
    float y0 = 0.f, y1 = 0.f;
    int32_t a0 = 0, a1 = 0;
    for (int64_t k = 0; k < kv; ++k) {
      const int32_t q = w[(k / kLineBytes) * chunk_stride + i * row_stride + k % kLineBytes];
      a0 += q * x0[k];
      a1 += q * x1[k];
      if (k % kInt4Group == kInt4Group - 1 || k == kv - 1) {
        y0 += static_cast<float>(a0) * step0[k / kInt4Group];
        y1 += static_cast<float>(a1) * step1[k / kInt4Group];
        a0 = a1 = 0;
      }
    }
    const int8_t* tail = w + chunks * chunk_stride + i * tail_stride;
    for (int64_t k = kv; k < K; ++k) {
      y0 += static_cast<float>(tail[k - kv]) * (static_cast<float>(x0[k]) * step0[k / kInt4Group]);
      y1 += static_cast<float>(tail[k - kv]) * (static_cast<float>(x1[k]) * step1[k / kInt4Group]);
    }
    out0[i] = y0;
    out1[i] = y1;
  }
}

template <int NR>
void int8_dispatch(Isa path, const GroupCodes<int16_t>& a, int64_t groups, int64_t K, int64_t r0, int64_t r1,
                   const int8_t* w, int64_t row_stride, int64_t chunk_stride, int64_t tail_stride, const int8_t* next,
                   float* out0, float* out1) {
  const int16_t* x0 = a.codes.data() + r0 * groups * kInt4Group;
  const int16_t* x1 = a.codes.data() + r1 * groups * kInt4Group;
  const float *st0 = a.steps.data() + r0 * groups, *st1 = a.steps.data() + r1 * groups;
#ifdef DIA_X86
  if (path == Isa::kAvx512Vnni)
    return avx512vnni::int8_rows<NR>(x0, x1, st0, st1, K, w, row_stride, chunk_stride, tail_stride, next, out0, out1);
  if (path == Isa::kAvx512)
    return avx512::int8_rows<NR>(x0, x1, st0, st1, K, w, row_stride, chunk_stride, tail_stride, next, out0, out1);
  if (path == Isa::kAvx2)
    return avx2::int8_rows<NR>(x0, x1, st0, st1, K, w, row_stride, chunk_stride, tail_stride, next, out0, out1);
#endif
  (void)next;
  int8_rows_scalar<NR>(x0, x1, st0, st1, K, w, row_stride, chunk_stride, tail_stride, out0, out1);
}

// Where byte k of row n lies in a blocked (N, K) byte matrix (int8 weights; int4's packed groups): whole
// blocks of kRowsPerBlock rows are stored kLineBytes at a time (the block's rows' line 0, then their line 1,
// ..., then their last K % kLineBytes bytes row after row), so a block's GEMV reads one sequential stream;
// the rows after the last whole block are stored as they are.
int64_t blocked_offset(int64_t n, int64_t k, int64_t N, int64_t K) {
  if (n >= N - N % kRowsPerBlock) return n * K + k;
  const int64_t block = (n - n % kRowsPerBlock) * K, i = n % kRowsPerBlock, kv = K - K % kLineBytes;
  if (k < kv) return block + (k / kLineBytes) * kLineBytes * kRowsPerBlock + i * kLineBytes + k % kLineBytes;
  return block + kv * kRowsPerBlock + i * (K - kv) + (k - kv);
}

// Plain (N, K) int8 weights -> the blocked order gemv_int8 reads (see blocked_offset).
at::Tensor block_int8(const at::Tensor& q) {
  TORCH_CHECK(q.device().is_cpu() && q.dim() == 2 && q.scalar_type() == at::kChar,
              "dia_native::block_int8: q must be a 2-D int8 CPU tensor");
  const at::Tensor qc = q.contiguous();
  const int64_t N = q.size(0), K = q.size(1);
  at::Tensor out = at::empty_like(qc);
  const int8_t* src = qc.data_ptr<int8_t>();
  int8_t* dst = out.data_ptr<int8_t>();
  at::parallel_for(0, N, 64, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n)
      for (int64_t k = 0; k < K; ++k) dst[blocked_offset(n, k, N, K)] = src[n * K + k];
  });
  return out;
}

// x (R, K) @ (codes * scales).T for blocked int8 weights (block_int8) and per-row float32 scales. The
// activations enter as int16 codes per group of kInt4Group (x ~ code * max|x| / 32767: error <= 2^-16 of the
// group's largest value, a hundred times below the weights' rounding), so the products are exact integer
// multiply-adds of pairs: a third of the instructions of widening every weight to float.
at::Tensor gemv_int8(const at::Tensor& x, const at::Tensor& w, const at::Tensor& scales) {
  TORCH_CHECK(w.scalar_type() == at::kChar, "dia_native::gemv_int8: w must be int8");
  TORCH_CHECK(scales.dim() == 1 && scales.size(0) == w.size(0), "dia_native::gemv_int8: one scale per row of w");
  const at::Tensor x32 = check_x(x, w);
  const at::Tensor s32 = scales.to(at::kFloat).contiguous();
  const int64_t rows = x32.size(0), K = x32.size(1), N = w.size(0), groups = (K + kInt4Group - 1) / kInt4Group;
  const Isa path = isa();
  const GroupCodes<int16_t> a = prepare_codes<int16_t>(x32.data_ptr<float>(), rows, K, groups, path);
  at::Tensor out = at::empty({rows, N}, x32.options());
  float* op = out.data_ptr<float>();
  const float* sp = s32.data_ptr<float>();
  const int8_t* wp = w.data_ptr<int8_t>();
  const int64_t tail = K % kLineBytes;
  const int64_t blocks = (N + kRowsPerBlock - 1) / kRowsPerBlock;
  at::parallel_for(0, blocks, 16, [&](int64_t b0, int64_t b1) {
    const int64_t n0 = b0 * kRowsPerBlock, n1 = std::min(N, b1 * kRowsPerBlock);
    for (int64_t r0 = 0; r0 < rows; r0 += 2) {
      const int64_t r1 = std::min(r0 + 1, rows - 1);  // an odd last row is computed twice, written once
      int64_t n = n0;
      for (; n + kRowsPerBlock <= n1; n += kRowsPerBlock) {
        const int8_t* next = n + (kPrefetchBlocks + 1) * kRowsPerBlock <= n1
                                 ? wp + (n + kPrefetchBlocks * kRowsPerBlock) * K
                                 : nullptr;
        int8_dispatch<kRowsPerBlock>(path, a, groups, K, r0, r1, wp + n * K, kLineBytes, kLineBytes * kRowsPerBlock, tail,
                                     next, op + r0 * N + n, op + r1 * N + n);
      }
      for (; n < n1; ++n)
        int8_dispatch<1>(path, a, groups, K, r0, r1, wp + n * K, K, kLineBytes, K, nullptr, op + r0 * N + n,
                         op + r1 * N + n);
      for (int64_t m = n0; m < n1; ++m) {
        op[r0 * N + m] *= sp[m];
        if (r1 != r0) op[r1 * N + m] *= sp[m];
      }
    }
  });
  return out;
}

// Group-wise int4 quantisation in one pass, the same float32 operations as layers.quantize_int4_reference:
// rows padded with zeros to whole groups; per group lo/hi = min/max, scale = bf16(max((hi - lo) / 15, 1e-30)),
// offset = bf16(lo), q = clamp(round-half-even((w - offset) / scale), 0, 15).
std::tuple<at::Tensor, at::Tensor, at::Tensor> quantize_int4(const at::Tensor& w) {
  TORCH_CHECK(w.device().is_cpu() && w.dim() == 2, "dia_native::quantize_int4: w must be a 2-D CPU tensor");
  const bool bf16 = w.scalar_type() == at::kBFloat16;
  TORCH_CHECK(bf16 || w.scalar_type() == at::kFloat, "dia_native::quantize_int4: w must be bfloat16 or float32");
  const at::Tensor wc = w.contiguous();
  const int64_t N = w.size(0), K = w.size(1), groups = (K + kInt4Group - 1) / kInt4Group;
  at::Tensor packed = at::zeros({N, groups * 64}, w.options().dtype(at::kByte));
  at::Tensor scales = at::empty({N, groups}, w.options().dtype(at::kBFloat16));
  at::Tensor offsets = at::empty({N, groups}, w.options().dtype(at::kBFloat16));
  const auto* src16 = bf16 ? reinterpret_cast<const uint16_t*>(wc.data_ptr<at::BFloat16>()) : nullptr;
  const float* src32 = bf16 ? nullptr : wc.data_ptr<float>();
  uint8_t* pp = packed.data_ptr<uint8_t>();
  auto* sp = reinterpret_cast<uint16_t*>(scales.data_ptr<at::BFloat16>());
  auto* fp = reinterpret_cast<uint16_t*>(offsets.data_ptr<at::BFloat16>());
  at::parallel_for(0, N, 16, [&](int64_t n0, int64_t n1) {
    std::vector<float> row(static_cast<size_t>(groups * kInt4Group));
    for (int64_t n = n0; n < n1; ++n) {
      std::fill(row.begin(), row.end(), 0.f);
      for (int64_t k = 0; k < K; ++k) row[k] = bf16 ? bf16_to_float(src16[n * K + k]) : src32[n * K + k];
      for (int64_t g = 0; g < groups; ++g) {
        const float* v = row.data() + g * kInt4Group;
        float lo = v[0], hi = v[0];
        for (int64_t j = 1; j < kInt4Group; ++j) {
          lo = std::min(lo, v[j]);
          hi = std::max(hi, v[j]);
        }
        const uint16_t s16 = to_bf16_bits(std::max((hi - lo) / 15.f, 1e-30f)), m16 = to_bf16_bits(lo);
        sp[n * groups + g] = s16;
        fp[n * groups + g] = m16;
        const float scale = bf16_to_float(s16), m = bf16_to_float(m16);
        uint8_t* out = pp + blocked_offset(n, g * 64, N, groups * 64);  // a group is one line
        for (int64_t j = 0; j < kInt4Group; ++j) {
          const auto q = static_cast<uint8_t>(std::min(15.f, std::max(0.f, std::nearbyint((v[j] - m) / scale))));
          out[j % 64] |= static_cast<uint8_t>(j < 64 ? q : q << 4);
        }
      }
    }
  });
  return std::make_tuple(packed, scales, offsets);
}

// RMSNorm of a few float32 rows (a decoding step's): x * w / sqrt(mean(x^2) + eps) per row, the sum of
// squares in double. One pass instead of the five PyTorch ops behind F.rms_norm, whose dispatch costs
// ~40 us per call at decoding sizes (56 calls a step).
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
  TORCH_CHECK(x.device().is_cpu() && w.device().is_cpu(), "dia_native: CPU tensors only");
  TORCH_CHECK(w.dim() == 1 && w.scalar_type() == at::kFloat && x.dim() >= 1 && x.size(-1) == w.size(0),
              "dia_native::rms_norm: w must be float32 (D) and x (..., D)");
  const at::Tensor x32 = x.to(at::kFloat).contiguous();
  const at::Tensor wc = w.contiguous();
  at::Tensor out = at::empty_like(x32);
  const int64_t D = w.size(0), rows = D == 0 ? 0 : x32.numel() / D;
  const float* xp = x32.data_ptr<float>();
  const float* wp = wc.data_ptr<float>();
  float* op = out.data_ptr<float>();
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = xp + r * D;
    double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t k = 0;
    for (; k + 8 <= D; k += 8)
      for (int j = 0; j < 8; ++j) part[j] += static_cast<double>(xr[k + j]) * xr[k + j];
    double total = 0;
    for (; k < D; ++k) total += static_cast<double>(xr[k]) * xr[k];
    for (double v : part) total += v;
    const auto scale = static_cast<float>(1.0 / std::sqrt(total / static_cast<double>(D) + eps));
    for (int64_t j = 0; j < D; ++j) op[r * D + j] = xr[j] * scale * wp[j];
  }
  return out;
}

// Sum of a float32 buffer over PyTorch's threads (the bench's read-bandwidth probe).
at::Tensor stream_sum(const at::Tensor& buf) {
  TORCH_CHECK(buf.device().is_cpu() && buf.scalar_type() == at::kFloat && buf.is_contiguous(),
              "dia_native::stream_sum: a contiguous float32 CPU tensor");
  constexpr int64_t kChunk = 1 << 16;  // floats per task: 256 KiB
  const int64_t n = buf.numel(), chunks = n / kChunk;
  const float* p = buf.data_ptr<float>();
  std::vector<float> partial(static_cast<size_t>(chunks), 0.f);
  at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
#ifdef DIA_X86
      if (isa() == Isa::kAvx512 || isa() == Isa::kAvx512Vnni) {
        partial[c] = avx512::stream_sum(p + c * kChunk, kChunk);
        continue;
      }
      if (isa() == Isa::kAvx2) {
        partial[c] = avx2::stream_sum(p + c * kChunk, kChunk);
        continue;
      }
#endif
      float acc = 0.f;
      for (int64_t i = 0; i < kChunk; ++i) acc += p[c * kChunk + i];
      partial[c] = acc;
    }
  });
  double total = 0.0;
  for (float v : partial) total += v;
  for (int64_t i = chunks * kChunk; i < n; ++i) total += p[i];
  return at::scalar_tensor(total, buf.options().dtype(at::kDouble));
}

std::string isa_name() {
  switch (isa()) {
#ifdef DIA_X86
    case Isa::kAvx512Vnni: return "avx512_vnni";
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
  m.def("block_int8(Tensor q) -> Tensor");
  m.def("attend_bf16(Tensor q, Tensor k, Tensor v, Tensor? mask, float scale) -> Tensor");
  m.def("quantize_int8(Tensor w) -> (Tensor, Tensor)");
  m.def("gemv_int4(Tensor x, Tensor w, Tensor scales, Tensor offsets) -> Tensor");
  m.def("quantize_int4(Tensor w) -> (Tensor, Tensor, Tensor)");
  m.def("stream_sum(Tensor buf) -> Tensor");
  m.def("rms_norm(Tensor x, Tensor w, float eps) -> Tensor");
  m.def("isa() -> str", &isa_name);
}

TORCH_LIBRARY_IMPL(dia_native, CPU, m) {
  m.impl("gemv_bf16", &gemv_bf16);
  m.impl("gemv_int8", &gemv_int8);
  m.impl("block_int8", &block_int8);
  m.impl("attend_bf16", &attend_bf16);
  m.impl("quantize_int8", &quantize_int8);
  m.impl("gemv_int4", &gemv_int4);
  m.impl("quantize_int4", &quantize_int4);
  m.impl("stream_sum", &stream_sum);
  m.impl("rms_norm", &rms_norm);
}
