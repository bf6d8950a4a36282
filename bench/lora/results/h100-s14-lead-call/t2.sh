B=/tmp/lb; O=$OUT
INC="-Inative/include -Inative/src/lora -Inative/src/lora/test -Inative/src/cuda -Inative/src/cuda/test -Ibench/lora"
NV="nvcc -std=c++17 -O3 -gencode arch=compute_90a,code=sm_90a -gencode arch=compute_90,code=compute_90 $INC -Xcompiler -pthread"
$NV -c native/src/lora/lora_expand.cpp -o $B/lora_expand_cpu.o & $NV -Xcompiler -mavx512f,-mavx512bw,-mfma -c native/src/lora/lora_expand_avx512.cpp -o $B/lora_expand_avx512.o & wait
X="$B/lora_expand_cpu.o $B/lora_expand_avx512.o"
K="$B/lora_shrink.o $B/lora_expand.o $B/lora_embed.o $B/lora_small_shrink.o $B/lora_small_expand.o $B/lora_small_fused.o"
$NV $B/host_adapter.o $B/lora_pool.o $B/lora_apply.o $X $B/test_thread_pool.o $B/lora_cuda_test.o $K -o $B/lora_cuda_test > $O/link1.log 2>&1 & 
$NV $B/host_adapter.o $B/lora_pool.o $B/lora_apply.o $X $B/test_thread_pool.o $B/lora_device_pool_test.o $B/lora_device_pool.o $B/lora_host_image.o $K -o $B/lora_device_pool_test > $O/link2.log 2>&1 & wait
head -c 600 $O/link1.log
LORA_TEST_PATHS="tiled/wide shrink,tiled/wide" timeout 25 $B/lora_cuda_test > $O/kt-wide.log 2>&1; echo "kt-wide rc=$?"; grep -E "cases|passed" $O/kt-wide.log | tail -2; grep FAIL $O/kt-wide.log | head -3
TSLORA_CUDA_LORA_SMALL_V10=1 TSLORA_CUDA_LORA_SMALL_REDUCE=1 LORA_TEST_PATHS="small,small/1 split,small/3 splits" timeout 25 $B/lora_cuda_test > $O/kt-v10.log 2>&1; echo "kt-v10 rc=$?"; grep -E "cases|passed" $O/kt-v10.log | tail -2; grep FAIL $O/kt-v10.log | head -3
TSLORA_CUDA_LORA_WIDE_SHRINK=1 TSLORA_CUDA_LORA_WIDE_EXPAND=1 timeout 15 $B/lora_device_pool_test > $O/pool-wide.log 2>&1; echo "pool-wide rc=$? $(tail -1 $O/pool-wide.log)"
TSLORA_CUDA_LORA_SMALL_V10=1 TSLORA_CUDA_LORA_SMALL_REDUCE=1 timeout 15 $B/lora_device_pool_test > $O/pool-v10.log 2>&1; echo "pool-v10 rc=$? $(tail -1 $O/pool-v10.log)"
