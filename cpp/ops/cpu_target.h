// The x86 instruction sets the CPU kernels are compiled for, one function at a time (the rest of the library stays
// baseline x86-64); which of them runs is chosen once at run time (ops::cpu_kernel in gemm.h). The only place these
// target lists are written.
#pragma once

#define MBFAST_AVX2 __attribute__((target("avx2,fma")))
#define MBFAST_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#define MBFAST_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx512bf16")))
#define MBFAST_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx512vnni")))
