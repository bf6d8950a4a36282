// TSLORA_HD: a function shared by CUDA kernels and their host checks (host + device, inlined under nvcc; plain
// inline under g++, where the host tests and the emulator compile the same rules).
#pragma once

#if defined(__CUDACC__)
#define TSLORA_HD __host__ __device__ __forceinline__
#else
#define TSLORA_HD inline
#endif
